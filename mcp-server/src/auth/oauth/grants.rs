//! What an access token may use, from the `oauth_permissions` grants its
//! scopes and claims match: the union of those grants. With no grants
//! configured, a valid token may use everything; with some, a token that
//! matches none may use nothing.

use fleet_common::permissions::Permissions;

use super::jwt::Verified;
use super::settings::{Grant, Match};

/// `None`: no grants are configured (everything allowed).
pub fn permissions(grants: &[Grant], token: &Verified) -> Option<Permissions> {
    if grants.is_empty() {
        return None;
    }
    let scopes = token.scopes();
    let mut out = Permissions::none();
    for g in grants {
        let matched = match &g.matches {
            Match::Scope(s) => scopes.contains(s.as_str()),
            Match::Claim { name, value } => token.claim_has(name, value),
        };
        if matched {
            out = out.union(&g.permissions);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(m: Match, tools: Option<&[&str]>, dbs: Option<&[&str]>) -> Grant {
        let list = |l: Option<&[&str]>| l.map(|l| l.iter().map(|s| s.to_string()).collect());
        Grant {
            matches: m,
            permissions: Permissions::from_lists(list(tools), list(dbs)),
        }
    }

    fn token(json: &str) -> Verified {
        Verified {
            claims: serde_json::from_str(json).unwrap(),
        }
    }

    #[test]
    fn union_of_matching_grants_and_nothing_when_none_match() {
        let grants = [
            grant(
                Match::Scope("kb".into()),
                Some(&["search_knowledgebase"]),
                Some(&[]),
            ),
            grant(
                Match::Claim {
                    name: "groups".into(),
                    value: "dba".into(),
                },
                Some(&["query_database"]),
                Some(&["prod"]),
            ),
        ];
        assert_eq!(permissions(&[], &token("{}")), None);
        let kb = permissions(&grants, &token(r#"{"scope":"mcp kb"}"#)).unwrap();
        assert!(kb.allows_tool("search_knowledgebase") && !kb.allows_tool("query_database"));
        let both = permissions(&grants, &token(r#"{"scope":"kb","groups":["dba"]}"#)).unwrap();
        assert!(both.allows_tool("query_database") && both.allows_database("prod"));
        let none = permissions(&grants, &token(r#"{"scope":"mcp"}"#)).unwrap();
        assert!(!none.allows_tool("search_knowledgebase"));
    }
}
