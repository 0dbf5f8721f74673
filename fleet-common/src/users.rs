//! `users.yaml`: people who may call `authenticate_user`, in pgEdge's form.
//!
//! ```yaml
//! users:
//!   alice:
//!     username: alice
//!     password_hash: $2b$12$...        # bcrypt ($2a$/$2b$/$2y$) or argon2id PHC
//!     enabled: true
//!     annotation: on-call DBA
//!     tools: [search_knowledgebase, query_database]   # optional
//!     databases: [analytics]                          # optional
//!     role: analyst                    # optional: the PostgreSQL role of its calls
//!     last_login: ...                  # unknown fields are ignored
//! ```
//! `tools:` and `databases:` are the user's [`Permissions`], which their
//! sessions carry: absent, everything (pgEdge's behaviour); `"*"`, all; an
//! empty list, none. `role:` is the PostgreSQL role every tool call of the
//! user's sessions runs as ([`crate::role`]); absent, the server's login
//! role. Only the shape of the hash is checked here; verifying a password against
//! it is the server's job.

use std::sync::Arc;

use serde::Deserialize;

use crate::permissions::{EntryLists, Permissions};
use crate::role::RoleName;
use crate::yaml::{Text, checked_text};
use crate::{Error, Result};

const FILE: &str = "users.yaml";

/// Which algorithm a stored password hash uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashScheme {
    Bcrypt,
    Argon2id,
}

/// One user as the server needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub username: String,
    pub password_hash: String,
    pub scheme: HashScheme,
    pub enabled: bool,
    pub annotation: Option<String>,
    /// The tools and databases the user's sessions may use; one shared
    /// value for every unrestricted user.
    pub permissions: Arc<Permissions>,
    /// The PostgreSQL role its sessions' tool calls run as (`role:`);
    /// `None`: the server's login role.
    pub role: Option<Arc<str>>,
}

#[derive(Deserialize)]
#[serde(expecting = "a user entry (a mapping with `password_hash:`)")]
struct RawUser {
    #[serde(default)]
    username: Option<Text>,
    #[serde(default)]
    password_hash: Option<StoredHash>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    annotation: Option<Text>,
    #[serde(default)]
    tools: Option<Vec<Text>>,
    #[serde(default)]
    databases: Option<Vec<Text>>,
    #[serde(default)]
    role: Option<RoleName>,
}

/// A stored password hash: bcrypt or argon2id, refused without being
/// quoted otherwise (it may be a plaintext password).
struct StoredHash(String, HashScheme);

impl<'de> Deserialize<'de> for StoredHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        checked_text(d, |s| match hash_scheme(&s) {
            Some(scheme) => Ok(StoredHash(s, scheme)),
            None => Err(
                "expected a bcrypt ($2a$, $2b$, $2y$) or argon2id password hash; plaintext passwords are refused",
            ),
        })
    }
}

/// Recognise a password hash by its prefix.
pub fn hash_scheme(hash: &str) -> Option<HashScheme> {
    if ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) && hash.len() == 60 {
        Some(HashScheme::Bcrypt)
    } else if hash.starts_with("$argon2id$") {
        Some(HashScheme::Argon2id)
    } else {
        None
    }
}

/// Parse and validate a whole `users.yaml`. As for tokens, a file with no
/// users must say `users: {}`. Errors name the line and column, never a value.
pub fn parse(bytes: &[u8]) -> Result<Vec<UserEntry>> {
    let text = std::str::from_utf8(bytes).map_err(|e| Error::parse(FILE, e))?;
    let mut out: Vec<UserEntry> = Vec::new();
    for entry in crate::yaml::entries::<RawUser>(FILE, text, "users")? {
        let n = entry.position;
        let raw = entry.value;
        let username = raw
            .username
            .map(|t| t.0)
            .filter(|u| !u.is_empty())
            .or(entry.key)
            .ok_or_else(|| {
                Error::invalid(FILE, format!("entry {n} under `users:` has no username"))
            })?;
        // Entries are named by position: a username is a value of the file,
        // and values are never quoted.
        let Some(StoredHash(password_hash, scheme)) = raw.password_hash else {
            return Err(Error::invalid(
                FILE,
                format!("entry {n} under `users:` has no `password_hash:`"),
            ));
        };
        if let Some(first) = out.iter().position(|u| u.username == username) {
            return Err(Error::invalid(
                FILE,
                format!(
                    "entry {n} under `users:` repeats the username of entry {}",
                    first + 1
                ),
            ));
        }
        let permissions =
            crate::permissions::from_entry(FILE, "users", n, raw.tools, raw.databases)?;
        out.push(UserEntry {
            username,
            password_hash,
            scheme,
            enabled: raw.enabled.unwrap_or(true),
            annotation: raw.annotation.map(|t| t.0),
            permissions,
            role: raw.role.map(|r| r.0),
        });
    }
    Ok(out)
}

/// Set `username`'s password hash (adding the user if new) in a
/// `users.yaml` text, keeping every other user and field as it was. Each
/// list of `grant` given replaces the user's `tools:` / `databases:`; a
/// list not given leaves the field as it was. So does its role (`role:`;
/// an empty one removes the field).
/// Returns the new text, checked to parse.
pub fn upsert(
    existing: &str,
    username: &str,
    password_hash: &str,
    enabled: bool,
    annotation: &str,
    grant: EntryLists<'_>,
) -> Result<String> {
    use serde_norway::{Mapping, Value};
    if hash_scheme(password_hash).is_none() {
        return Err(Error::invalid(
            FILE,
            "new password_hash is neither bcrypt nor argon2id",
        ));
    }
    let apply = |entry: &mut Mapping| {
        entry.insert("username".into(), username.into());
        entry.insert("password_hash".into(), password_hash.into());
        entry.insert("enabled".into(), enabled.into());
        if !annotation.is_empty() || !entry.contains_key("annotation") {
            entry.insert("annotation".into(), annotation.into());
        }
        grant.write(entry);
    };
    let text = crate::yaml::edit(FILE, existing, "users", |users| {
        match users {
            Value::Mapping(map) => {
                let entry = map
                    .entry(username.into())
                    .or_insert(Value::Mapping(Mapping::new()));
                match entry.as_mapping_mut() {
                    Some(m) => apply(m),
                    None => {
                        return Err(Error::invalid(
                            FILE,
                            format!("user {username:?} is not a mapping"),
                        ));
                    }
                }
            }
            Value::Sequence(list) => {
                let found = list
                    .iter_mut()
                    .filter_map(Value::as_mapping_mut)
                    .find(|m| m.get("username").and_then(Value::as_str) == Some(username));
                match found {
                    Some(m) => apply(m),
                    None => {
                        let mut m = Mapping::new();
                        apply(&mut m);
                        list.push(Value::Mapping(m));
                    }
                }
            }
            _ => return Err(Error::invalid(FILE, "`users` is neither a map nor a list")),
        }
        Ok(())
    })?;
    parse(text.as_bytes())?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BCRYPT: &str = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";

    #[test]
    fn pgedge_form_loads_and_ignores_unknown_fields() {
        let y = format!(
            "users:\n  alice:\n    username: alice\n    password_hash: \"{BCRYPT}\"\n    enabled: true\n    annotation: dba\n    created_at: 2025-01-01T00:00:00Z\n    last_login: null\n    failed_attempts: 0\n  bob:\n    password_hash: \"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\"\n    enabled: false\n"
        );
        let u = parse(y.as_bytes()).unwrap();
        assert_eq!(u.len(), 2);
        assert_eq!(u[0].username, "alice");
        assert_eq!(u[0].scheme, HashScheme::Bcrypt);
        assert_eq!(u[1].username, "bob");
        assert_eq!(u[1].scheme, HashScheme::Argon2id);
        assert!(!u[1].enabled);
        // No permission fields: every tool and database, as before.
        assert!(u[0].permissions.is_unrestricted() && u[1].permissions.is_unrestricted());
        assert!(u[0].role.is_none() && u[1].role.is_none());
        assert!(Arc::ptr_eq(&u[0].permissions, &u[1].permissions));
    }

    #[test]
    fn permissions_in_the_map_and_list_forms_and_upsert_keeps_or_sets_them() {
        let map = format!(
            "users:\n  alice:\n    password_hash: \"{BCRYPT}\"\n    tools: [search_knowledgebase, query_database]\n    databases: [analytics]\n"
        );
        let u = parse(map.as_bytes()).unwrap();
        let p = &u[0].permissions;
        assert!(p.allows_tool("query_database") && !p.allows_tool("count_rows"));
        assert!(p.allows("query_database", "analytics") && !p.allows("query_database", "prod"));
        let list =
            format!("users:\n  - username: bob\n    password_hash: \"{BCRYPT}\"\n    tools: []\n");
        let u = parse(list.as_bytes()).unwrap();
        assert!(!u[0].permissions.allows_tool("search_knowledgebase"));
        assert!(!u[0].permissions.allows("query_database", "anything"));
        // A new password keeps the permissions; a grant replaces a field.
        let text = upsert(&map, "alice", BCRYPT, true, "", EntryLists::default()).unwrap();
        assert_eq!(parse(text.as_bytes()).unwrap()[0].permissions, p.clone());
        let all = vec!["*".to_string()];
        let grant = EntryLists {
            tools: Some(&all),
            databases: None,
            role: Some("analyst"),
        };
        let text = upsert(&text, "alice", BCRYPT, true, "", grant).unwrap();
        let p = parse(text.as_bytes()).unwrap()[0].permissions.clone();
        assert!(p.allows_tool("count_rows") && !p.allows("count_rows", "prod"));
        assert!(p.allows("count_rows", "analytics"));
        // The role is written; a new password keeps it; an empty one removes it.
        assert_eq!(
            parse(text.as_bytes()).unwrap()[0].role.as_deref(),
            Some("analyst")
        );
        let text = upsert(&text, "alice", BCRYPT, true, "", EntryLists::default()).unwrap();
        assert_eq!(
            parse(text.as_bytes()).unwrap()[0].role.as_deref(),
            Some("analyst")
        );
        let clear = EntryLists {
            role: Some(""),
            ..EntryLists::default()
        };
        let text = upsert(&text, "alice", BCRYPT, true, "", clear).unwrap();
        assert!(parse(text.as_bytes()).unwrap()[0].role.is_none());
        assert!(!text.contains("role"), "{text}");
        let bad = format!("users:\n  alice:\n    password_hash: \"{BCRYPT}\"\n    role: \"\"\n");
        let err = parse(bad.as_bytes()).unwrap_err().to_string();
        assert!(
            err.contains("line 4 column 11") && err.contains("role name"),
            "{err}"
        );
        let bad = format!("users:\n  alice:\n    password_hash: \"{BCRYPT}\"\n    tools: [\"\"]\n");
        let err = parse(bad.as_bytes()).unwrap_err().to_string();
        assert!(
            err.contains("entry 1 under `users:` has an empty name in `tools:`"),
            "{err}"
        );
    }

    #[test]
    fn upsert_changes_one_user_and_keeps_the_rest() {
        let y = format!(
            "users:\n  alice:\n    username: alice\n    password_hash: \"{BCRYPT}\"\n    enabled: true\n    last_login: 2025-01-01\n"
        );
        let new_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
        let text = upsert(&y, "alice", new_hash, false, "", EntryLists::default()).unwrap();
        assert!(text.contains("last_login"));
        let u = parse(text.as_bytes()).unwrap();
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].password_hash, new_hash);
        assert!(!u[0].enabled);
        let text = upsert(&text, "bob", BCRYPT, true, "new", EntryLists::default()).unwrap();
        let u = parse(text.as_bytes()).unwrap();
        assert_eq!(u.len(), 2);
        assert_eq!(u[1].annotation.as_deref(), Some("new"));
        assert!(upsert("", "x", "plaintext", true, "", EntryLists::default()).is_err());
    }

    #[test]
    fn rejects_plaintext_passwords() {
        let err = parse(b"users:\n  alice:\n    password_hash: hunter2\n").unwrap_err();
        assert!(err.to_string().contains("bcrypt"), "{err}");
        assert!(err.to_string().contains("line 3 column 20"), "{err}");
        assert!(!err.to_string().contains("hunter2"));
        for doc in [
            "users:\n  alice: hunter2\n",
            "users:\n  - hunter2\n",
            "users:\n  alice:\n    enabled: hunter2\n",
            "users:\n  alice:\n    username: [hunter2]\n",
        ] {
            let err = parse(doc.as_bytes()).unwrap_err().to_string();
            assert!(!err.contains("hunter2"), "{doc:?} → {err}");
            assert!(err.starts_with("users.yaml: line "), "{doc:?} → {err}");
        }
        assert!(parse(b"").is_err(), "an empty file must say `users: {{}}`");
        assert!(parse(b"users: {}\n").unwrap().is_empty());
    }
}
