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
//! `"*"` in a list means "all"; an absent list means "all" too. An empty
//! list means none.

use std::collections::BTreeSet;

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
}
