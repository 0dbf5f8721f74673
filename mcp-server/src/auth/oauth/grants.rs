//! What an access token may use, from the `oauth_permissions` grants its
//! scopes and claims match: the union of those grants' (tool, database)
//! pairs, so that two grants never combine into a pair neither allows
//! ([`Permissions::union`]). With no grants configured, a valid token may
//! use everything; with some, a token that matches none may use nothing.
//!
//! Each matching grant also says the PostgreSQL role its calls run as
//! ([`Roles::ByGrant`]: the first grant that allows a call decides). A
//! grant that takes its role from a claim (`role_claim:`) matches only when
//! that claim is a string listed in `oauth_role_claim_allowed`: a token
//! without the claim, with another role, or with a claim that is not a
//! string gets nothing from that grant (never the login role instead,
//! which would give it more than the grant meant). Each such refusal is
//! reported to the caller, which logs and counts it.

use std::sync::Arc;

use fleet_common::permissions::Permissions;
use serde_json::Value;

use super::jwt::Verified;
use super::settings::{Grant, GrantRole, Match};
use crate::auth::Roles;

/// What the grants a token matches give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub permissions: Permissions,
    pub roles: Roles,
}

/// Why a grant with `role_claim:` did not match a token that its scope or
/// claim matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleClaimRefusal {
    /// The token has no such claim (or it is null).
    Missing,
    /// The claim is not a string (a list, a number, ...).
    NotString,
    /// The claim names a role `oauth_role_claim_allowed` does not list.
    NotAllowed,
}

impl RoleClaimRefusal {
    /// The label in logs and `mcp_oauth_role_claim_refusals_total{reason}`.
    pub fn label(self) -> &'static str {
        match self {
            RoleClaimRefusal::Missing => "missing",
            RoleClaimRefusal::NotString => "not_a_string",
            RoleClaimRefusal::NotAllowed => "not_allowed",
        }
    }
}

/// `None`: no grants are configured (everything allowed, the login role).
/// `refused` hears of every grant (by its 1-based position) that matched
/// but whose role claim did not hold, and so was left out.
pub fn permissions(
    grants: &[Grant],
    token: &Verified,
    mut refused: impl FnMut(usize, RoleClaimRefusal),
) -> Option<Granted> {
    if grants.is_empty() {
        return None;
    }
    let scopes = token.scopes();
    let mut out = Permissions::none();
    let mut by_grant: Vec<(Permissions, Option<Arc<str>>)> = Vec::new();
    for (i, g) in grants.iter().enumerate() {
        let matched = match &g.matches {
            Match::Scope(s) => scopes.contains(s.as_str()),
            Match::Claim { name, value } => token.claim_has(name, value),
        };
        if !matched {
            continue;
        }
        let role = match &g.role {
            None => None,
            Some(GrantRole::Fixed(role)) => Some(role.clone()),
            Some(GrantRole::Claim { name, allowed }) => match token.claims.get(name) {
                None | Some(Value::Null) => {
                    refused(i + 1, RoleClaimRefusal::Missing);
                    continue;
                }
                Some(Value::String(role)) if allowed.contains(role) => {
                    Some(Arc::from(role.as_str()))
                }
                Some(Value::String(_)) => {
                    refused(i + 1, RoleClaimRefusal::NotAllowed);
                    continue;
                }
                Some(_) => {
                    refused(i + 1, RoleClaimRefusal::NotString);
                    continue;
                }
            },
        };
        out = out.union(&g.permissions);
        by_grant.push((g.permissions.clone(), role));
    }
    let roles = if by_grant.iter().any(|(_, role)| role.is_some()) {
        Roles::ByGrant(by_grant.into())
    } else {
        Roles::Login
    };
    Some(Granted {
        permissions: out,
        roles,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The permissions only, refusals ignored.
    fn permissions(grants: &[Grant], token: &Verified) -> Option<Permissions> {
        super::permissions(grants, token, |_, _| {}).map(|g| g.permissions)
    }

    fn grant(m: Match, tools: Option<&[&str]>, dbs: Option<&[&str]>) -> Grant {
        let list = |l: Option<&[&str]>| l.map(|l| l.iter().map(|s| s.to_string()).collect());
        Grant {
            matches: m,
            permissions: Permissions::from_lists(list(tools), list(dbs)),
            role: None,
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

    fn with_role(mut g: Grant, role: GrantRole) -> Grant {
        g.role = Some(role);
        g
    }

    #[test]
    fn a_role_claim_grant_matches_only_an_allowed_string_claim() {
        let allowed = Arc::new(["analyst".to_string(), "viewer".to_string()].into());
        let sql = |dbs: &[&str]| {
            grant(
                Match::Scope("sql".into()),
                Some(&["query_database"]),
                Some(dbs),
            )
        };
        let grants = [
            with_role(
                sql(&["prod"]),
                GrantRole::Claim {
                    name: "pg_role".into(),
                    allowed,
                },
            ),
            with_role(sql(&["prod", "staging"]), GrantRole::Fixed("reader".into())),
            grant(
                Match::Scope("kb".into()),
                Some(&["search_knowledgebase"]),
                None,
            ),
        ];
        let run = |json: &str| {
            let mut refusals = Vec::new();
            let g = super::permissions(&grants, &token(json), |n, why| refusals.push((n, why)));
            (g.unwrap(), refusals)
        };
        // An allowed claim: that role on prod (the first grant allowing it),
        // the fixed role on staging.
        let (g, refused) = run(r#"{"scope":"sql","pg_role":"analyst"}"#);
        assert!(refused.is_empty());
        let p = crate::auth::Principal {
            subject: "oauth:x".into(),
            database: None,
            permissions: g.permissions.clone().shared(),
            roles: g.roles.clone(),
        };
        assert_eq!(
            p.role_for("query_database", "prod").as_deref(),
            Some("analyst")
        );
        assert_eq!(
            p.role_for("query_database", "staging").as_deref(),
            Some("reader")
        );
        // Missing, not allowed, not a string: the claim grant gives nothing,
        // and prod runs as the next grant's role, never the login role.
        for (json, why) in [
            (r#"{"scope":"sql"}"#, RoleClaimRefusal::Missing),
            (
                r#"{"scope":"sql","pg_role":null}"#,
                RoleClaimRefusal::Missing,
            ),
            (
                r#"{"scope":"sql","pg_role":"postgres"}"#,
                RoleClaimRefusal::NotAllowed,
            ),
            (
                r#"{"scope":"sql","pg_role":"Analyst"}"#,
                RoleClaimRefusal::NotAllowed,
            ),
            (
                r#"{"scope":"sql","pg_role":["analyst"]}"#,
                RoleClaimRefusal::NotString,
            ),
            (
                r#"{"scope":"sql","pg_role":7}"#,
                RoleClaimRefusal::NotString,
            ),
        ] {
            let (g, refused) = run(json);
            assert_eq!(refused, [(1, why)], "{json}");
            let Roles::ByGrant(list) = &g.roles else {
                panic!("{json}: {:?}", g.roles);
            };
            assert_eq!(list.len(), 1, "{json}: only the fixed-role grant");
            assert_eq!(list[0].1.as_deref(), Some("reader"));
        }
        // Alone, a refused claim grant leaves nothing at all.
        let (g, refused) = {
            let mut refusals = Vec::new();
            let g = super::permissions(&grants[..1], &token(r#"{"scope":"sql"}"#), |n, why| {
                refusals.push((n, why))
            });
            (g.unwrap(), refusals)
        };
        assert_eq!(refused, [(1, RoleClaimRefusal::Missing)]);
        assert!(!g.permissions.allows_tool("query_database"));
        assert_eq!(g.roles, Roles::Login);
        // A grant the token does not match is no refusal; grants without a
        // role give the login role.
        let (g, refused) = run(r#"{"scope":"kb"}"#);
        assert!(refused.is_empty());
        assert_eq!(g.roles, Roles::Login);
        assert!(g.permissions.allows_tool("search_knowledgebase"));
    }
}
