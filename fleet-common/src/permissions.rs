//! Per-credential permissions: which tools, and which databases for the
//! Postgres tools, one credential may use.
//!
//! The same value comes from an API token of `tokens.yaml`, a user of
//! `users.yaml` and the scopes or claims of an OAuth access token (the
//! server's configuration maps those). A credential with no permission
//! fields is unrestricted, as every credential was before: pgEdge files keep
//! their meaning, and pgEdge's server ignores the fields.
//!
//! ```yaml
//! tools: [search_knowledgebase, list_products]   # only these tools
//! databases: [analytics]                         # Postgres tools only here
//! ```
//! `"*"` in a list means "all"; an absent (or null) list means "all" too.
//! An empty list means none.
//!
//! `from_entry` reads the two fields of one entry of `tokens.yaml` or
//! `users.yaml`, and a [`Grant`] writes them into a new or edited one.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use crate::yaml::Text;
use crate::{Error, Result};

/// What one credential may use. `None` in a field: everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Permissions {
    /// The tools (built-in or curated, by name) the credential may list and
    /// call.
    pub tools: Option<BTreeSet<String>>,
    /// The configured databases the credential's Postgres tools may run on.
    pub databases: Option<BTreeSet<String>>,
}

/// The wildcard that stands for every tool or database in a list.
pub const ALL: &str = "*";

impl Permissions {
    /// Everything allowed: a credential without permission fields.
    pub const UNRESTRICTED: Permissions = Permissions {
        tools: None,
        databases: None,
    };

    /// From the lists as written (`None`: the field was absent). A list
    /// holding `"*"` allows everything.
    pub fn from_lists(tools: Option<Vec<String>>, databases: Option<Vec<String>>) -> Permissions {
        fn set(list: Option<Vec<String>>) -> Option<BTreeSet<String>> {
            let list = list?;
            if list.iter().any(|t| t == ALL) {
                return None;
            }
            Some(list.into_iter().collect())
        }
        Permissions {
            tools: set(tools),
            databases: set(databases),
        }
    }

    /// The one shared value of every unrestricted credential.
    pub fn unrestricted() -> Arc<Permissions> {
        static ONE: OnceLock<Arc<Permissions>> = OnceLock::new();
        ONE.get_or_init(|| Arc::new(Permissions::UNRESTRICTED))
            .clone()
    }

    /// `self` behind an `Arc`: the shared one when unrestricted, so that a
    /// file of a thousand unrestricted tokens holds one value.
    pub fn shared(self) -> Arc<Permissions> {
        if self.is_unrestricted() {
            Permissions::unrestricted()
        } else {
            Arc::new(self)
        }
    }

    /// One line for people (`token list`): `all`, or what is allowed, e.g.
    /// `tools=a,b databases=x`; `none` for an empty list.
    pub fn describe(&self) -> String {
        if self.is_unrestricted() {
            return "all".to_string();
        }
        let list = |set: &Option<BTreeSet<String>>| match set {
            None => "all".to_string(),
            Some(s) if s.is_empty() => "none".to_string(),
            Some(s) => s.iter().cloned().collect::<Vec<_>>().join(","),
        };
        format!(
            "tools={} databases={}",
            list(&self.tools),
            list(&self.databases)
        )
    }

    pub fn is_unrestricted(&self) -> bool {
        self.tools.is_none() && self.databases.is_none()
    }

    pub fn allows_tool(&self, name: &str) -> bool {
        self.tools.as_ref().is_none_or(|t| t.contains(name))
    }

    pub fn allows_database(&self, name: &str) -> bool {
        self.databases.as_ref().is_none_or(|d| d.contains(name))
    }

    /// What either of two grants allows (a token with two mapped scopes may
    /// use what each of them allows).
    pub fn union(&self, other: &Permissions) -> Permissions {
        fn either(
            a: &Option<BTreeSet<String>>,
            b: &Option<BTreeSet<String>>,
        ) -> Option<BTreeSet<String>> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.union(b).cloned().collect()),
                _ => None,
            }
        }
        Permissions {
            tools: either(&self.tools, &other.tools),
            databases: either(&self.databases, &other.databases),
        }
    }

    /// Nothing at all: the start of a union over grants.
    pub fn none() -> Permissions {
        Permissions {
            tools: Some(BTreeSet::new()),
            databases: Some(BTreeSet::new()),
        }
    }

    /// Bytes that differ between any two different permissions, for keying
    /// answers that depend on them; empty when unrestricted.
    pub fn fingerprint(&self) -> Vec<u8> {
        if self.is_unrestricted() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for list in [&self.tools, &self.databases] {
            match list {
                None => out.push(b'*'),
                Some(set) => {
                    out.push(b'[');
                    for name in set {
                        out.extend_from_slice(&(name.len() as u64).to_le_bytes());
                        out.extend_from_slice(name.as_bytes());
                    }
                }
            }
            out.push(b']');
        }
        out
    }
}

/// The permissions of entry `n` under `section:` of `file` from its
/// `tools:` and `databases:` fields as read (`None`: absent or null). A
/// name that is empty is refused, naming the entry by position, never by
/// a value of the file.
pub(crate) fn from_entry(
    file: &'static str,
    section: &str,
    n: usize,
    tools: Option<Vec<Text>>,
    databases: Option<Vec<Text>>,
) -> Result<Arc<Permissions>> {
    let names = |field: &str, list: Option<Vec<Text>>| -> Result<Option<Vec<String>>> {
        let Some(list) = list else { return Ok(None) };
        let mut out = Vec::with_capacity(list.len());
        for Text(name) in list {
            let name = name.trim();
            if name.is_empty() {
                return Err(Error::invalid(
                    file,
                    format!("entry {n} under `{section}:` has an empty name in `{field}:`"),
                ));
            }
            out.push(name.to_string());
        }
        Ok(Some(out))
    };
    let tools = names("tools", tools)?;
    let databases = names("databases", databases)?;
    Ok(Permissions::from_lists(tools, databases).shared())
}

/// Permission lists as an operator gives them (`token add --tools a,b`),
/// to write into an entry of `tokens.yaml` or `users.yaml`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Grant<'a> {
    /// Written as `tools:`; `None`: the field is not written.
    pub tools: Option<&'a [String]>,
    /// Written as `databases:`; `None`: the field is not written.
    pub databases: Option<&'a [String]>,
}

impl Grant<'_> {
    /// Write the lists into an entry being added or edited: each list
    /// given replaces its field (`["*"]` is written as is: "all",
    /// explicitly); a list not given leaves the field as it was.
    pub(crate) fn write(&self, entry: &mut serde_norway::Mapping) {
        for (field, list) in [("tools", self.tools), ("databases", self.databases)] {
            if let Some(list) = list {
                let items = list
                    .iter()
                    .map(|s| serde_norway::Value::String(s.trim().to_string()))
                    .collect();
                entry.insert(field.into(), serde_norway::Value::Sequence(items));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Option<Vec<String>> {
        Some(items.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn absent_and_wildcard_allow_everything_and_an_empty_list_nothing() {
        let all = Permissions::from_lists(None, list(&["*"]));
        assert!(all.is_unrestricted());
        assert!(all.allows_tool("query_database") && all.allows_database("prod"));
        let kb = Permissions::from_lists(list(&["search_knowledgebase"]), list(&[]));
        assert!(kb.allows_tool("search_knowledgebase"));
        assert!(!kb.allows_tool("query_database"));
        assert!(!kb.allows_database("prod"));
    }

    #[test]
    fn union_widens_and_fingerprints_differ() {
        let a = Permissions::from_lists(list(&["a"]), list(&["x"]));
        let b = Permissions::from_lists(list(&["b"]), None);
        let u = a.union(&b);
        assert!(u.allows_tool("a") && u.allows_tool("b") && !u.allows_tool("c"));
        assert!(u.allows_database("anything"));
        assert_eq!(Permissions::none().union(&a), a);
        assert!(Permissions::UNRESTRICTED.fingerprint().is_empty());
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), u.fingerprint());
        // A name cannot pose as two: "a\0b" is not ["a", "b"].
        let ab = Permissions::from_lists(list(&["a", "b"]), None);
        let joined = Permissions::from_lists(list(&["a\0b"]), None);
        assert_ne!(ab.fingerprint(), joined.fingerprint());
    }

    #[test]
    fn unrestricted_values_share_one_arc_and_describe_themselves() {
        let a = Permissions::from_lists(None, None).shared();
        let b = Permissions::from_lists(list(&["*"]), None).shared();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.describe(), "all");
        let kb = Permissions::from_lists(list(&["b", "a"]), list(&[])).shared();
        assert!(!Arc::ptr_eq(&a, &kb));
        assert_eq!(kb.describe(), "tools=a,b databases=none");
        let db = Permissions::from_lists(None, list(&["prod"]));
        assert_eq!(db.describe(), "tools=all databases=prod");
    }
}
