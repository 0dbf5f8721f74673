//! What an access token may use, from the `oauth_permissions` grants its
//! scopes and claims match: the union of those grants' (tool, database)
//! pairs, so that two grants never combine into a pair neither allows
//! ([`Permissions::union`]). With no grants configured, a valid token may
//! use everything; with some, a token that matches none may use nothing.

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
        assert!(both.allows("query_database", "prod"));
        assert!(!both.allows("query_database", "staging"));
        let none = permissions(&grants, &token(r#"{"scope":"mcp"}"#)).unwrap();
        assert!(!none.allows_tool("search_knowledgebase"));
    }

    /// docs/configuration.md's "Several issuers and permissions": a token
    /// with scope `kb` and the Analyst role may search, and run the
    /// Analyst's tools on `analytics` only (issue 29, finding 1: it could
    /// run `query_database` on `prod`).
    #[test]
    fn the_documented_grants_never_combine_into_more() {
        let grants = [
            grant(
                Match::Scope("kb".into()),
                Some(&["search_knowledgebase"]),
                None,
            ),
            grant(
                Match::Claim {
                    name: "roles".into(),
                    value: "Analyst".into(),
                },
                Some(&["query_database", "get_schema_info", "count_rows"]),
                Some(&["analytics"]),
            ),
        ];
        let analyst = permissions(&grants, &token(r#"{"roles":["Analyst"]}"#)).unwrap();
        assert!(!analyst.allows("query_database", "prod"));
        let both = permissions(&grants, &token(r#"{"scope":"kb","roles":["Analyst"]}"#)).unwrap();
        assert!(both.allows_tool("search_knowledgebase"));
        assert!(both.allows("query_database", "analytics"));
        assert!(!both.allows("query_database", "prod"), "{both:?}");
        assert!(!both.allows("count_rows", "prod"));
    }
}
