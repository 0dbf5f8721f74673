//! Per-credential permissions: which tools one credential may use, and on
//! which databases.
//!
//! Permissions are a set of (tool, database) pairs. They are written as
//! grants, each allowing every tool of its `tools:` on every database of its
//! `databases:`; a credential's permissions are the union of its grants'
//! pairs, never more. A Postgres tool (built-in or curated) may run on a
//! database only if **one** grant allows both; a grant that leaves out
//! `databases:` says nothing about the tools of other grants. A tool that
//! runs on no database (`search_knowledgebase`) needs only to be in some
//! grant's `tools:`.
//!
//! The same value comes from an API token of `tokens.yaml` and a user of
//! `users.yaml` (one grant each: the entry's two fields) and from the
//! scopes and claims of an OAuth access token (the configuration's
//! `oauth_permissions` grants that match it). A credential with no
//! permission fields is unrestricted, as every credential was before:
//! pgEdge files keep their meaning, and pgEdge's server ignores the fields.
//!
//! ```yaml
//! tools: [search_knowledgebase, query_database]  # only these tools
//! databases: [analytics]                         # ... on this database
//! ```
//! `"*"` in a list means "all"; an absent (or null) list means "all" too.
//! An empty list means none.
//!
//! `from_entry` reads the two fields of one entry of `tokens.yaml` or
//! `users.yaml`, and [`EntryLists`] writes them into a new or edited one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use crate::yaml::Text;
use crate::{Error, Result};

/// A set of names, or every name (`None`).
pub type Names = Option<BTreeSet<String>>;

/// One grant: every tool of `tools` on every database of `databases`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Grant {
    /// The tools (built-in or curated, by name); `None`: every tool.
    pub tools: Names,
    /// The databases those tools may run on; `None`: every database.
    pub databases: Names,
}

impl Grant {
    /// From the lists as written (`None`: the field was absent). A list
    /// holding `"*"` allows everything.
    pub fn from_lists(tools: Option<Vec<String>>, databases: Option<Vec<String>>) -> Grant {
        fn set(list: Option<Vec<String>>) -> Names {
            let list = list?;
            if list.iter().any(|t| t == ALL) {
                return None;
            }
            Some(list.into_iter().collect())
        }
        Grant {
            tools: set(tools),
            databases: set(databases),
        }
    }

    pub fn allows_tool(&self, tool: &str) -> bool {
        contains(&self.tools, tool)
    }

    /// Whether this grant allows `tool` on `database`.
    pub fn allows(&self, tool: &str, database: &str) -> bool {
        self.allows_tool(tool) && contains(&self.databases, database)
    }

    fn describe(&self) -> String {
        let list = |set: &Names| match set {
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
}

fn contains(set: &Names, name: &str) -> bool {
    set.as_ref().is_none_or(|s| s.contains(name))
}

/// Both sets' names (`None`, every name, absorbs).
fn either(a: &Names, b: &Names) -> Names {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.union(b).cloned().collect()),
        _ => None,
    }
}

/// What one credential may use: for each tool, the databases it may run
/// on, as the union of its grants' (tool, database) pairs.
///
/// Kept in one canonical form: the tools no grant names share one answer
/// (`others`), and a named tool is recorded only where it may do more than
/// they. Permissions that allow the same tools and pairs are equal, and so
/// are their [`Permissions::fingerprint`]s.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Permissions {
    /// Each tool that may do more than `others`, and the databases it may
    /// run on.
    tools: BTreeMap<String, Names>,
    /// Any other tool: `None`, not allowed; `Some(databases)`, allowed on
    /// those (a grant of every tool).
    others: Option<Names>,
}

impl Default for Permissions {
    /// Everything, as a credential without permission fields.
    fn default() -> Self {
        Permissions::everything()
    }
}

/// The wildcard that stands for every tool or database in a list.
pub const ALL: &str = "*";

impl Permissions {
    /// One grant of the lists as written (`None`: the field was absent). A
    /// list holding `"*"` allows everything.
    pub fn from_lists(tools: Option<Vec<String>>, databases: Option<Vec<String>>) -> Permissions {
        Permissions::from_grant(&Grant::from_lists(tools, databases))
    }

    /// What one grant allows.
    pub fn from_grant(grant: &Grant) -> Permissions {
        match &grant.tools {
            None => Permissions {
                tools: BTreeMap::new(),
                others: Some(grant.databases.clone()),
            },
            Some(tools) => Permissions {
                tools: tools
                    .iter()
                    .map(|t| (t.clone(), grant.databases.clone()))
                    .collect(),
                others: None,
            },
        }
    }

    /// The union of `grants`: a pair is allowed when one grant allows it.
    pub fn from_grants<'a>(grants: impl IntoIterator<Item = &'a Grant>) -> Permissions {
        grants.into_iter().fold(Permissions::none(), |acc, g| {
            acc.union(&Permissions::from_grant(g))
        })
    }

    /// Everything allowed: a credential without permission fields.
    pub fn everything() -> Permissions {
        Permissions {
            tools: BTreeMap::new(),
            others: Some(None),
        }
    }

    /// Nothing at all: the start of a union over grants.
    pub fn none() -> Permissions {
        Permissions {
            tools: BTreeMap::new(),
            others: None,
        }
    }

    /// The one shared value of every unrestricted credential.
    pub fn unrestricted() -> Arc<Permissions> {
        static ONE: OnceLock<Arc<Permissions>> = OnceLock::new();
        ONE.get_or_init(|| Arc::new(Permissions::everything()))
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

    /// The fewest grants that allow exactly these pairs: one for the tools
    /// no grant names (if they are allowed), then one per set of databases,
    /// with the named tools that may run on it.
    pub fn grants(&self) -> Vec<Grant> {
        let mut by_databases: BTreeMap<&Names, BTreeSet<String>> = BTreeMap::new();
        for (tool, dbs) in &self.tools {
            by_databases.entry(dbs).or_default().insert(tool.clone());
        }
        let others = self.others.as_ref().map(|dbs| Grant {
            tools: None,
            databases: dbs.clone(),
        });
        others
            .into_iter()
            .chain(by_databases.into_iter().map(|(dbs, tools)| Grant {
                tools: Some(tools),
                databases: dbs.clone(),
            }))
            .collect()
    }

    /// One line for people (`token list`): `all`, `none`, or each grant,
    /// e.g. `tools=a,b databases=x`, `;`-separated.
    pub fn describe(&self) -> String {
        if self.is_unrestricted() {
            return "all".to_string();
        }
        let grants = self.grants();
        if grants.is_empty() {
            return "none".to_string();
        }
        let each: Vec<String> = grants.iter().map(Grant::describe).collect();
        each.join("; ")
    }

    pub fn is_unrestricted(&self) -> bool {
        self.others == Some(None)
    }

    /// The databases `tool` may run on (`None`: every one), or `None` in
    /// the outer option when it may not be used at all.
    fn entry(&self, tool: &str) -> Option<&Names> {
        self.tools.get(tool).or(self.others.as_ref())
    }

    /// Whether some grant lets the credential use `tool` (on whatever
    /// databases it names): what `tools/list` shows and what a tool that
    /// runs on no database needs.
    pub fn allows_tool(&self, tool: &str) -> bool {
        self.entry(tool).is_some()
    }

    /// Whether one grant allows `tool` on `database`.
    pub fn allows(&self, tool: &str, database: &str) -> bool {
        self.entry(tool).is_some_and(|dbs| contains(dbs, database))
    }

    /// The databases `tool` may run on (`None`: every one; empty when the
    /// tool may not be used).
    pub fn databases_for(&self, tool: &str) -> Names {
        match self.entry(tool) {
            Some(dbs) => dbs.clone(),
            None => Some(BTreeSet::new()),
        }
    }

    /// What the grants of both allow, pair by pair (a token with two
    /// mapped scopes may use what each of them allows, and nothing more).
    pub fn union(&self, other: &Permissions) -> Permissions {
        let others = match (&self.others, &other.others) {
            (Some(a), Some(b)) => Some(either(a, b)),
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        let mut tools = BTreeMap::new();
        for name in self.tools.keys().chain(other.tools.keys()) {
            let dbs = match (self.entry(name), other.entry(name)) {
                (Some(a), Some(b)) => either(a, b),
                (Some(a), None) | (None, Some(a)) => a.clone(),
                (None, None) => continue,
            };
            // Only where it does more than any other tool.
            if others.as_ref() != Some(&dbs) {
                tools.insert(name.clone(), dbs);
            }
        }
        Permissions { tools, others }
    }

    /// Bytes that differ between any two different permissions, for keying
    /// answers that depend on them; empty when unrestricted.
    pub fn fingerprint(&self) -> Vec<u8> {
        if self.is_unrestricted() {
            return Vec::new();
        }
        fn names(out: &mut Vec<u8>, list: &Names) {
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
        let mut out = Vec::new();
        match &self.others {
            None => out.push(b'-'),
            Some(dbs) => names(&mut out, dbs),
        }
        for (tool, dbs) in &self.tools {
            out.push(b'(');
            out.extend_from_slice(&(tool.len() as u64).to_le_bytes());
            out.extend_from_slice(tool.as_bytes());
            names(&mut out, dbs);
        }
        out
    }
}

/// The permissions of entry `n` under `section:` of `file` from its
/// `tools:` and `databases:` fields as read (`None`: absent or null): one
/// grant. A name that is empty is refused, naming the entry by position,
/// never by a value of the file.
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
/// and the PostgreSQL role (`--role`, see [`crate::role`]), to write into
/// an entry of `tokens.yaml` or `users.yaml`.
#[derive(Debug, Clone, Copy, Default)]
pub struct EntryLists<'a> {
    /// Written as `tools:`; `None`: the field is not written.
    pub tools: Option<&'a [String]>,
    /// Written as `databases:`; `None`: the field is not written.
    pub databases: Option<&'a [String]>,
    /// Written as `role:`; `None`: the field is not written; `Some("")`:
    /// the field is removed (no role).
    pub role: Option<&'a str>,
}

impl EntryLists<'_> {
    /// Write the lists into an entry being added or edited: each list
    /// given replaces its field (`["*"]` is written as is: "all",
    /// explicitly); a list not given leaves the field as it was. So does
    /// the role.
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
        match self.role.map(str::trim) {
            None => {}
            Some("") => {
                entry.remove("role");
            }
            Some(role) => {
                entry.insert("role".into(), role.into());
            }
        }
    }
}

#[cfg(test)]
mod tests;
