//! `tokens.yaml`: API bearer tokens, stored only as SHA-256 hashes.
//!
//! Two shapes load, both as pgEdge Postgres MCP Server writes or documents them:
//!
//! ```yaml
//! tokens:                       # map form (pgEdge's own token store)
//!   token-1734000000:
//!     hash: 9f86d0...           # hex SHA-256 of the bearer token
//!     expires_at: null          # or RFC 3339
//!     annotation: CI
//!     database: prod            # optional binding to a configured database
//!     tools: [search_knowledgebase]   # optional: only these tools
//!     databases: [prod]               # optional: Postgres tools only here
//!     role: analyst                   # optional: the PostgreSQL role its calls run as
//! ```
//! ```yaml
//! tokens:                       # list form
//!   - token: 9f86d0...          # `hash:` is a synonym
//!     name: api-client
//! ```
//! `tools:` and `databases:` are the token's [`Permissions`]: absent, every
//! tool and database (pgEdge's behaviour); `"*"` in a list, all; an empty
//! list, none. `role:` is the PostgreSQL role every tool call of the token
//! runs as ([`crate::role`]); absent, the server's login role. Unknown fields are ignored. Two entries with the same hash are an error:
//! the file would be ambiguous about expiry and database binding. A file
//! with no entries must say `tokens: {}`: an empty or truncated file is
//! refused rather than read as "revoke every token".

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::permissions::{EntryLists, Permissions};
use crate::role::RoleName;
use crate::yaml::{Text, checked_text};
use crate::{Error, Result};

const FILE: &str = "tokens.yaml";

/// One API token as the server needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEntry {
    /// The map key, or the list entry's `name` (or `token-<n>` if it has none).
    pub id: String,
    /// SHA-256 of the bearer token.
    pub hash: [u8; 32],
    pub expires_at: Option<OffsetDateTime>,
    pub annotation: Option<String>,
    /// Name of the database this token is bound to, if any.
    pub database: Option<String>,
    /// The tools and databases the token may use (`tools:`, `databases:`);
    /// one shared value for every unrestricted token.
    pub permissions: Arc<Permissions>,
    /// The PostgreSQL role its tool calls run as (`role:`); `None`: the
    /// server's login role.
    pub role: Option<Arc<str>>,
}

impl TokenEntry {
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

#[derive(Deserialize)]
#[serde(expecting = "a token entry (a mapping with `hash:`)")]
struct RawEntry {
    #[serde(default)]
    hash: Option<Sha256Hex>,
    #[serde(default)]
    token: Option<Sha256Hex>,
    #[serde(default)]
    name: Option<Text>,
    #[serde(default)]
    expires_at: Option<Expiry>,
    #[serde(default)]
    annotation: Option<Text>,
    #[serde(default)]
    database: Option<Text>,
    #[serde(default)]
    tools: Option<Vec<Text>>,
    #[serde(default)]
    databases: Option<Vec<Text>>,
    #[serde(default)]
    role: Option<RoleName>,
}

/// Parse and validate a whole `tokens.yaml`. An empty file, or one whose
/// `tokens:` holds nothing, is refused: a file with no tokens must say
/// `tokens: {}`. Errors name the line and column, never a value.
pub fn parse(bytes: &[u8]) -> Result<Vec<TokenEntry>> {
    let text = std::str::from_utf8(bytes).map_err(|e| Error::parse(FILE, e))?;
    let entries = crate::yaml::entries::<RawEntry>(FILE, text, "tokens")?;
    let mut seen = HashMap::with_capacity(entries.len());
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let e = entry.value;
        let n = entry.position;
        let id = entry
            .key
            .or_else(|| e.name.map(|t| t.0))
            .unwrap_or_else(|| format!("token-{}", n - 1));
        // Entries are named by position: a name is a value of the file,
        // and values are never quoted.
        let Some(Sha256Hex(hash)) = e.hash.or(e.token) else {
            return Err(Error::invalid(
                FILE,
                format!("entry {n} under `tokens:` has no `hash:`"),
            ));
        };
        if let Some(first) = seen.insert(hash, n) {
            return Err(Error::invalid(
                FILE,
                format!("entry {n} under `tokens:` repeats the hash of entry {first}"),
            ));
        }
        let permissions = crate::permissions::from_entry(FILE, "tokens", n, e.tools, e.databases)?;
        out.push(TokenEntry {
            id,
            hash,
            expires_at: e.expires_at.and_then(|x| x.0),
            annotation: e.annotation.map(|t| t.0),
            database: e.database.map(|t| t.0).filter(|d| !d.is_empty()),
            permissions,
            role: e.role.map(|r| r.0),
        });
    }
    Ok(out)
}

/// A SHA-256 written as 64 hex digits. Anything else is refused without
/// being quoted: it is most likely the token itself.
struct Sha256Hex([u8; 32]);

impl<'de> Deserialize<'de> for Sha256Hex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        checked_text(d, |s| {
            parse_hash(s.trim()).map(Sha256Hex).ok_or(
                "expected 64 hex digits (the SHA-256 of the token); store the hash, never the token",
            )
        })
    }
}

/// `expires_at`: RFC 3339, or null / empty / `never` for no expiry.
struct Expiry(Option<OffsetDateTime>);

impl<'de> Deserialize<'de> for Expiry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        checked_text(d, |s| match s.trim() {
            "" | "null" | "never" => Ok(Expiry(None)),
            t => OffsetDateTime::parse(t, &Rfc3339)
                .map(|t| Expiry(Some(t)))
                .map_err(|_| "expected an RFC 3339 time such as 2026-12-31T00:00:00Z, or null"),
        })
    }
}

fn parse_hash(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// A newly minted token: the secret to show once, and the entry to store.
pub struct NewToken {
    pub secret: String,
    pub id: String,
    pub hash_hex: String,
}

/// Mint a token as pgEdge does (32 random bytes, base64url) from caller-supplied
/// randomness, and name it `token-<unix seconds>`.
pub fn mint(random: [u8; 32], now: OffsetDateTime) -> NewToken {
    use base64::Engine;
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random);
    NewToken {
        hash_hex: crate::sha256_hex(secret.as_bytes()),
        id: format!("token-{}", now.unix_timestamp()),
        secret,
    }
}

/// Add an entry to an existing `tokens.yaml` text (or an empty one), keeping
/// every other entry and unknown field as it was. Returns the new text, which
/// has been checked to parse. `grant`'s lists become the token's `tools:`
/// and `databases:`; without them the token may use everything. Its role,
/// if any, becomes the token's `role:`.
pub fn add_entry(
    existing: &str,
    new: &NewToken,
    annotation: &str,
    expires_at: Option<OffsetDateTime>,
    database: Option<&str>,
    grant: EntryLists<'_>,
    now: OffsetDateTime,
) -> Result<String> {
    use serde_norway::{Mapping, Value};
    let fmt = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    let mut entry = Mapping::new();
    entry.insert("hash".into(), new.hash_hex.clone().into());
    entry.insert(
        "expires_at".into(),
        expires_at.map_or(Value::Null, |t| fmt(t).into()),
    );
    entry.insert("annotation".into(), annotation.into());
    entry.insert("created_at".into(), fmt(now).into());
    if let Some(db) = database {
        entry.insert("database".into(), db.into());
    }
    grant.write(&mut entry);
    let text = crate::yaml::edit(FILE, existing, "tokens", |tokens| {
        match tokens {
            Value::Mapping(map) => {
                let mut id = new.id.clone();
                let mut n = 1;
                while map.contains_key(id.as_str()) {
                    n += 1;
                    id = format!("{}-{n}", new.id);
                }
                map.insert(id.into(), Value::Mapping(entry));
            }
            Value::Sequence(list) => {
                entry.insert("name".into(), new.id.clone().into());
                list.push(Value::Mapping(entry));
            }
            _ => return Err(Error::invalid(FILE, "`tokens` is neither a map nor a list")),
        }
        Ok(())
    })?;
    parse(text.as_bytes())?;
    Ok(text)
}

/// Remove the token named `id` (its map key, or a list entry's `name`; as
/// [`TokenEntry::id`] shows it) from a `tokens.yaml` text, keeping every
/// other entry as it was. Removing the last one leaves `tokens: {}`, the
/// explicit "no API tokens". Returns the new text, checked to parse.
pub fn remove_entry(existing: &str, id: &str) -> Result<String> {
    use serde_norway::{Mapping, Value};
    // Entries are found as `parse` names them, so an unnamed list entry
    // (`token-<n>`) can be revoked too.
    let ids: Vec<String> = parse(existing.as_bytes())?
        .into_iter()
        .map(|e| e.id)
        .collect();
    let Some(position) = ids.iter().position(|i| i == id) else {
        // What was typed is not echoed: it could be a secret pasted by
        // mistake.
        return Err(Error::invalid(
            FILE,
            "no token has that id (`mcp-server token list` shows them)",
        ));
    };
    let text = crate::yaml::edit(FILE, existing, "tokens", |tokens| {
        let now_empty = match tokens {
            Value::Mapping(map) => {
                map.remove(id);
                map.is_empty()
            }
            Value::Sequence(list) => {
                list.remove(position);
                list.is_empty()
            }
            _ => return Err(Error::invalid(FILE, "`tokens` is neither a map nor a list")),
        };
        if now_empty {
            *tokens = Value::Mapping(Mapping::new());
        }
        Ok(())
    })?;
    parse(text.as_bytes())?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H1: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const H2: &str = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

    #[test]
    fn pgedge_map_form_loads_unchanged() {
        let y = format!(
            "tokens:\n  token-1734000000:\n    hash: {H1}\n    expires_at: null\n    annotation: \"CI\"\n    created_at: 2025-12-01T00:00:00Z\n    database: prod\n    future_field: 3\n  token-2:\n    hash: {H2}\n    expires_at: 2030-01-01T00:00:00Z\n"
        );
        let t = parse(y.as_bytes()).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].id, "token-1734000000");
        assert_eq!(hex::encode(t[0].hash), H1);
        assert_eq!(t[0].database.as_deref(), Some("prod"));
        assert_eq!(t[0].annotation.as_deref(), Some("CI"));
        assert!(t[0].expires_at.is_none());
        assert_eq!(t[1].expires_at.unwrap().year(), 2030);
        // No permission fields: every tool and database, as before.
        for e in &t {
            assert!(e.permissions.is_unrestricted() && e.role.is_none(), "{e:?}");
        }
        assert!(Arc::ptr_eq(&t[0].permissions, &t[1].permissions));
    }

    #[test]
    fn permissions_in_the_map_and_list_forms() {
        let map = format!(
            "tokens:\n  kb:\n    hash: {H1}\n    tools: [search_knowledgebase]\n  analyst:\n    hash: {H2}\n    tools: [\"*\"]\n    databases:\n      - analytics\n"
        );
        let t = parse(map.as_bytes()).unwrap();
        assert!(t[0].permissions.allows_tool("search_knowledgebase"));
        assert!(!t[0].permissions.allows_tool("query_database"));
        assert!(!t[0].permissions.allows("query_database", "prod"));
        assert!(t[1].permissions.allows_tool("query_database"));
        assert!(t[1].permissions.allows("query_database", "analytics"));
        assert!(!t[1].permissions.allows("query_database", "prod"));
        let list = format!(
            "tokens:\n  - token: {H1}\n    tools: []\n    databases: []\n  - hash: {H2}\n    tools: null\n"
        );
        let t = parse(list.as_bytes()).unwrap();
        assert_eq!(*t[0].permissions, Permissions::none());
        assert!(t[1].permissions.is_unrestricted());
    }

    #[test]
    fn bad_permission_fields_are_located_and_never_quoted() {
        for (doc, want) in [
            (
                format!("tokens:\n  a:\n    hash: {H1}\n    tools: SECRET-TOOL\n"),
                "line 4 column 12",
            ),
            (
                format!(
                    "tokens:\n  a:\n    hash: {H1}\n  b:\n    hash: {H2}\n    databases: [\"  \"]\n"
                ),
                "entry 2 under `tokens:` has an empty name in `databases:`",
            ),
            (
                format!("tokens:\n  - hash: {H1}\n    tools: [{{SECRET: 1}}]\n"),
                "line 3",
            ),
        ] {
            let err = parse(doc.as_bytes()).unwrap_err().to_string();
            assert!(!err.contains("SECRET"), "{doc:?} → {err}");
            assert!(err.contains(want), "{doc:?} → {err}");
        }
    }

    #[test]
    fn a_role_in_the_map_and_list_forms_and_bad_ones_refuse_the_file() {
        let map = format!(
            "tokens:\n  a:\n    hash: {H1}\n    role: analyst\n  b:\n    hash: {H2}\n    role: null\n"
        );
        let t = parse(map.as_bytes()).unwrap();
        assert_eq!(t[0].role.as_deref(), Some("analyst"));
        assert!(t[1].role.is_none());
        let list = format!("tokens:\n  - token: {H1}\n    role: \"Mixed Case\"\n  - hash: {H2}\n");
        let t = parse(list.as_bytes()).unwrap();
        assert_eq!(t[0].role.as_deref(), Some("Mixed Case"));
        assert!(t[1].role.is_none());
        let long = "SECRET".repeat(11);
        for (bad, at) in [
            ("\"\"".to_string(), "line 4 column 11"),
            (long, "line 4 column 11"),
            ("\"SECRET\\u0000x\"".to_string(), "line 4 column 11"),
            ("[SECRET]".to_string(), "line 4"),
        ] {
            let doc = format!("tokens:\n  a:\n    hash: {H1}\n    role: {bad}\n");
            let err = parse(doc.as_bytes()).unwrap_err().to_string();
            assert!(!err.contains("SECRET"), "{doc:?} → {err}");
            assert!(err.contains(at), "{doc:?} → {err}");
            if !bad.starts_with('[') {
                assert!(err.contains(crate::role::INVALID), "{doc:?} → {err}");
            }
        }
    }

    #[test]
    fn list_form_with_token_or_hash() {
        let y = format!("tokens:\n  - token: {H1}\n    name: api-client\n  - hash: {H2}\n");
        let t = parse(y.as_bytes()).unwrap();
        assert_eq!(t[0].id, "api-client");
        assert_eq!(t[1].id, "token-1");
        assert_eq!(hex::encode(t[1].hash), H2);
    }

    #[test]
    fn rejects_plaintext_tokens_duplicates_and_bad_dates() {
        let plain = "tokens:\n  a:\n    hash: my-secret-token\n";
        let err = parse(plain.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("64 hex digits"), "{err}");
        assert!(
            !err.contains("my-secret-token"),
            "error echoes the secret: {err}"
        );
        let dup = format!("tokens:\n  a:\n    hash: {H1}\n  b:\n    hash: {H1}\n");
        assert!(parse(dup.as_bytes()).is_err());
        let date = format!("tokens:\n  a:\n    hash: {H1}\n    expires_at: tomorrow\n");
        assert!(parse(date.as_bytes()).is_err());
        assert!(parse(b"tokens: [1, 2").is_err());
    }

    #[test]
    fn empty_files_are_refused_unless_they_say_so() {
        for truncated in [&b""[..], b"\n", b"# tokens\n", b"tokens:\n", b"tokens:"] {
            let err = parse(truncated).unwrap_err().to_string();
            assert!(err.contains("`tokens: {}`"), "{err}");
        }
        assert!(parse(b"tokens: {}\n").unwrap().is_empty());
        assert!(parse(b"tokens: []\n").unwrap().is_empty());
    }

    #[test]
    fn errors_locate_the_problem_and_never_quote_it() {
        for (doc, want) in [
            ("tokens: {t1: SOME-PLAINTEXT-TOKEN}\n", "line 1 column 14"),
            ("tokens:\n  - SOME-PLAINTEXT-TOKEN\n", "line 2 column 5"),
            (
                "tokens:\n  t1:\n    hash: SOME-PLAINTEXT-TOKEN\n",
                "64 hex digits",
            ),
            (
                "tokens:\n  t1:\n    hash: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n    expires_at: SOME-PLAINTEXT-TOKEN\n",
                "line 4 column 17: tokens.t1.expires_at: expected an RFC 3339 time",
            ),
            (
                "tokens:\n  t1:\n    annotation: [SOME-PLAINTEXT-TOKEN]\n",
                "line 3",
            ),
            ("tokens: [\"SOME-PLAINTEXT-TOKEN\n", "line "),
        ] {
            let err = parse(doc.as_bytes()).unwrap_err().to_string();
            assert!(!err.contains("PLAINTEXT"), "{doc:?} → {err}");
            assert!(err.starts_with("tokens.yaml: "), "{err}");
            assert!(err.contains(want), "{doc:?} → {err}");
        }
    }

    #[test]
    fn add_entry_keeps_existing_entries_and_fields() {
        let now = OffsetDateTime::from_unix_timestamp(1_734_000_000).unwrap();
        let existing = format!("tokens:\n  old:\n    hash: {H1}\n    custom: kept\n");
        let new = mint([7u8; 32], now);
        let text = add_entry(
            &existing,
            &new,
            "ci",
            None,
            Some("prod"),
            EntryLists::default(),
            now,
        )
        .unwrap();
        assert!(text.contains("custom: kept"));
        let t = parse(text.as_bytes()).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(
            hex::encode(t[1].hash),
            crate::sha256_hex(new.secret.as_bytes())
        );
        assert_eq!(t[1].database.as_deref(), Some("prod"));
        assert!(t[1].permissions.is_unrestricted());
        assert!(!text.contains(&new.secret));
        // With a grant: the lists are written, and read back.
        let tools = vec!["search_knowledgebase".to_string()];
        let dbs = vec!["analytics".to_string(), "prod".to_string()];
        let grant = EntryLists {
            tools: Some(&tools),
            databases: Some(&dbs),
            role: Some("analyst"),
        };
        let newer = mint([8u8; 32], now);
        let text = add_entry(&text, &newer, "kb", None, None, grant, now).unwrap();
        let t = parse(text.as_bytes()).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[2].role.as_deref(), Some("analyst"));
        assert!(t[0].role.is_none() && t[1].role.is_none());
        let p = &t[2].permissions;
        assert!(p.allows_tool("search_knowledgebase") && !p.allows_tool("query_database"));
        assert!(p.allows("search_knowledgebase", "analytics"));
        assert!(!p.allows("search_knowledgebase", "other"));
        assert!(t[0].permissions.is_unrestricted());
    }

    #[test]
    fn remove_entry_keeps_the_others_and_ends_explicitly_empty() {
        let map =
            format!("tokens:\n  a:\n    hash: {H1}\n    future_field: 3\n  b:\n    hash: {H2}\n");
        let text = remove_entry(&map, "a").unwrap();
        let left = parse(text.as_bytes()).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].id, "b");
        let text = remove_entry(&text, "b").unwrap();
        assert!(parse(text.as_bytes()).unwrap().is_empty());
        assert!(text.contains("tokens: {}"), "{text}");

        let list = format!("tokens:\n  - name: ci\n    hash: {H1}\n  - hash: {H2}\n");
        let text = remove_entry(&list, "token-1").unwrap();
        let left = parse(text.as_bytes()).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].id, "ci");
        let err = remove_entry(&list, "nobody").unwrap_err().to_string();
        assert!(
            err.contains("no token has that id") && !err.contains("nobody"),
            "{err}"
        );
        assert!(!err.contains(H1));
    }
}
