//! Which tools a caller sees and may call, and on which database: decided
//! here, in one place, for the built-in and the curated tools alike.
//! `tools/list`, `tools/call`, the Postgres tools' choice of database, the
//! `system_info` resource and the tool lookup rmcp makes for request headers
//! all ask this module.
//!
//! A tool is offered when `tools.yaml` does not switch it off and, for a
//! curated tool, when its database is configured on this instance and, for
//! a writer, allows writers. On top of that, each credential carries its
//! [`Permissions`] (`tools:` and `databases:` of its `tokens.yaml` or
//! `users.yaml` entry, or what the configuration maps an OAuth token's
//! scopes and claims to):
//!
//! - a tool the credential may not call is left out of `tools/list`, and a
//!   call of it is the tool error "this credential may not call the tool
//!   X". `authenticate_user` stays callable by anyone (a caller could drop
//!   its token and call it anyway); it is listed only to credentials whose
//!   `tools:` allow it.
//! - a Postgres tool runs only on a database the credential may use
//!   ([`database`]): asking for another is a tool error naming it; asking
//!   for none picks the token's binding (`database:`) or the first
//!   configured database the credential may use. A curated tool whose
//!   database the credential may not use is hidden and refused; the
//!   built-in Postgres tools are hidden from a credential that may use no
//!   configured database.
//!
//! Every refusal by permissions is counted in
//! `mcp_tool_calls_denied_total{tool}`, the label being a built-in or
//! curated tool's name, or `unknown`.
//!
//! `tools/list` answers are replayed to callers with the same request
//! headers, catalog and permissions (see [`crate::http::replay`]): what the
//! list shows depends on nothing else of the caller (not on a token's
//! `database:` binding, which only decides where a call runs).

use fleet_common::permissions::Permissions;
use fleet_common::tools_file::SqlTool;
use fleet_common::tools_file::builtins::AUTHENTICATE_USER;
use rmcp::model::Tool;

use super::Catalog;
use crate::auth::Principal;
use crate::metrics::Metrics;
use crate::pg::{Database, Databases, ToolError};

/// Where an admitted call goes.
pub enum Target<'a> {
    /// A built-in tool, or a name the router answers as unknown.
    Router,
    /// A curated tool of `tools.yaml`.
    Curated(&'a SqlTool),
}

/// Why a tool is not offered.
enum Refusal {
    /// The credential's permissions leave it out (counted).
    Denied(String),
    /// This server does not offer it (switched off, no such database, ...).
    Off(String),
}

/// Whether the caller may call `name`, and where the call goes; the refusal
/// is the tool error the caller reads. A refusal by permissions is counted
/// in `metrics`.
pub fn admit<'a>(
    catalog: &'a Catalog,
    databases: &Databases,
    principal: Option<&Principal>,
    name: &str,
    metrics: &Metrics,
) -> Result<Target<'a>, String> {
    let refuse = |r: Refusal| match r {
        Refusal::Denied(why) => {
            denied(metrics, catalog, name);
            why
        }
        Refusal::Off(why) => why,
    };
    if name != AUTHENTICATE_USER && !permitted(principal, name) {
        return Err(refuse(Refusal::Denied(format!(
            "this credential may not call the tool {name}"
        ))));
    }
    if let Some((tool, _)) = catalog.tool(name) {
        return offered(tool, databases, permissions_of(principal))
            .map(|()| Target::Curated(tool))
            .map_err(refuse);
    }
    if is_builtin(name) && !catalog.switches().tool(name) {
        return Err(refuse(Refusal::Off(format!(
            "the tool {name} is switched off on this server (builtins.tools in tools.yaml)"
        ))));
    }
    Ok(Target::Router)
}

/// The tools the caller sees: `builtin` (the router's, as declared) less
/// those switched off or not permitted, then the curated tools offered
/// here and permitted.
pub fn listed(
    catalog: &Catalog,
    databases: &Databases,
    principal: Option<&Principal>,
    builtin: Vec<Tool>,
) -> Vec<Tool> {
    let switches = catalog.switches();
    let permissions = permissions_of(principal);
    let reaches_a_database = reaches_a_database(databases, principal);
    let mut tools: Vec<Tool> = builtin
        .into_iter()
        .filter(|t| {
            switches.tool(&t.name)
                && permitted(principal, &t.name)
                && (reaches_a_database || !is_postgres_tool(&t.name))
        })
        .collect();
    tools.extend(
        catalog
            .tools()
            .filter(|(t, _)| {
                permitted(principal, &t.name) && offered(t, databases, permissions).is_ok()
            })
            .map(|(_, d)| d.clone()),
    );
    tools
}

/// The database a Postgres tool's call runs on: the `requested` one (the
/// tool's `database` argument, or a curated tool's database), else the
/// credential's binding (a token's `database:`), else the first configured
/// database the credential may use. A database the credential's
/// `databases:` leaves out is refused by name ([`ToolError::is_denied`]);
/// a credential bound to a database may use only that one.
pub fn database<'a>(
    databases: &'a Databases,
    principal: Option<&Principal>,
    requested: Option<&str>,
) -> Result<&'a Database, ToolError> {
    let bound = principal.and_then(|p| p.database.as_deref());
    let permissions = permissions_of(principal);
    if permissions.databases.is_none() || databases.is_empty() {
        return databases.pick(requested, bound);
    }
    let requested = requested.map(str::trim).filter(|s| !s.is_empty());
    let bound = bound.map(str::trim).filter(|s| !s.is_empty());
    let Some(name) = requested.or(bound) else {
        let first =
            first_permitted(databases, permissions).ok_or(ToolError::NoPermittedDatabase)?;
        return databases.pick(Some(&first), None);
    };
    if !permissions.allows_database(name) {
        return Err(ToolError::NotPermitted {
            database: name.to_string(),
        });
    }
    if bound.is_none() && databases.get(name).is_none() {
        // Name only the databases this credential may use.
        let known: Vec<String> = databases
            .names()
            .into_iter()
            .filter(|n| permissions.allows_database(n))
            .collect();
        return Err(ToolError::UnknownDatabase {
            requested: name.to_string(),
            known: known.join(", "),
        });
    }
    databases.pick(requested, bound)
}

/// Whether the caller may use at least one configured database: without
/// one, the built-in Postgres tools and the `system_info` resource are not
/// shown to it.
pub fn reaches_a_database(databases: &Databases, principal: Option<&Principal>) -> bool {
    let permissions = permissions_of(principal);
    permissions.databases.is_none() || first_permitted(databases, permissions).is_some()
}

/// The first configured database `permissions` allow.
fn first_permitted(databases: &Databases, permissions: &Permissions) -> Option<String> {
    databases
        .names()
        .into_iter()
        .find(|n| permissions.allows_database(n))
}

/// Count a call of `name` refused by a credential's permissions, labelled
/// with the tool's name if it is a tool here, `unknown` otherwise (what a
/// caller sends must not grow the metric).
pub fn denied(metrics: &Metrics, catalog: &Catalog, name: &str) {
    let known = is_builtin(name) || catalog.tool(name).is_some();
    metrics.tool_denied(if known { name } else { "unknown" });
}

/// The descriptor of the curated tool `name`, for rmcp's checks of a
/// request's headers against the tool's schema (`None`: ask the router).
/// Given even for a tool not offered here, so that its call reaches
/// [`admit`] and gets the reason as a tool error.
pub fn descriptor(catalog: &Catalog, name: &str) -> Option<Tool> {
    catalog.tool(name).map(|(_, d)| d.clone())
}

/// Whether a resource of the built-ins is on.
pub fn resource_on(catalog: &Catalog, name: &str) -> bool {
    catalog.switches().resource(name)
}

/// A curated tool is offered where its database is configured and, for a
/// writer, allows writers, to a credential that may use that database.
/// A tool without a database runs on the first configured database the
/// credential may use (a token's binding decides only at call time).
fn offered(
    tool: &SqlTool,
    databases: &Databases,
    permissions: &Permissions,
) -> Result<(), Refusal> {
    let db = match tool.database.as_deref() {
        Some(name) => databases.get(name).ok_or_else(|| {
            Refusal::Off(format!(
                "the tool {} runs on database {name}, which is not configured on this server",
                tool.name
            ))
        })?,
        None => match first_permitted(databases, permissions) {
            Some(name) => databases.pick(Some(&name), None),
            None if databases.is_empty() => Err(ToolError::NoDatabase),
            None => Err(ToolError::NoPermittedDatabase),
        }
        .map_err(|e| {
            if e.is_denied() {
                Refusal::Denied(e.to_string())
            } else {
                Refusal::Off(e.to_string())
            }
        })?,
    };
    if !permissions.allows_database(db.name()) {
        return Err(Refusal::Denied(format!(
            "this credential may not use the database {:?}, on which the tool {} runs",
            db.name(),
            tool.name
        )));
    }
    if tool.writer && !db.allows_writers() {
        return Err(Refusal::Off(format!(
            "the tool {} writes, and database {} does not run writer tools (allow_writers is \
             not set for it in the server's configuration)",
            tool.name,
            db.name()
        )));
    }
    Ok(())
}

fn is_builtin(name: &str) -> bool {
    fleet_common::tools_file::builtins::TOOLS.contains(&name)
}

fn is_postgres_tool(name: &str) -> bool {
    use crate::pg::tools as pgt;
    [
        pgt::QUERY_DATABASE,
        pgt::GET_SCHEMA_INFO,
        pgt::EXECUTE_EXPLAIN,
        pgt::COUNT_ROWS,
    ]
    .contains(&name)
}

/// The caller's permissions; without a credential (the handshake and
/// `authenticate_user`, the only requests that pass without one) nothing
/// is restricted here: the guard already limits what those requests reach.
fn permissions_of(principal: Option<&Principal>) -> &Permissions {
    static UNRESTRICTED: Permissions = Permissions::UNRESTRICTED;
    principal.map_or(&UNRESTRICTED, |p| &p.permissions)
}

/// Whether this credential may use the tool `name`.
fn permitted(principal: Option<&Principal>, name: &str) -> bool {
    permissions_of(principal).allows_tool(name)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::pg::DatabaseConfig;
    use crate::pg::tools as pgt;

    const TOOLS: &[u8] = b"tools:\n  on_a:\n    description: d\n    database: a\n    statement: SELECT 1\n  on_b:\n    description: d\n    database: b\n    statement: SELECT 1\n  anywhere:\n    description: d\n    statement: SELECT 1\n";

    fn databases() -> Databases {
        let cfg = |name: &str| DatabaseConfig {
            name: name.into(),
            host: Some("127.0.0.1".into()),
            port: Some(1),
            user: Some("nobody".into()),
            database: Some("nothing".into()),
            ..Default::default()
        };
        Databases::new(vec![cfg("a"), cfg("b")]).unwrap()
    }

    fn principal(tools: Option<&[&str]>, dbs: Option<&[&str]>, bound: Option<&str>) -> Principal {
        let list = |l: Option<&[&str]>| l.map(|l| l.iter().map(|s| s.to_string()).collect());
        Principal {
            subject: "token:t".into(),
            database: bound.map(str::to_string),
            permissions: Arc::new(Permissions::from_lists(list(tools), list(dbs))),
        }
    }

    fn builtins() -> Vec<Tool> {
        fleet_common::tools_file::builtins::TOOLS
            .iter()
            .map(|name| {
                let mut t = Tool::default();
                t.name = name.to_string().into();
                t
            })
            .collect()
    }

    fn names(tools: Vec<Tool>) -> Vec<String> {
        let mut n: Vec<String> = tools.into_iter().map(|t| t.name.to_string()).collect();
        n.sort();
        n
    }

    fn denied_count(metrics: &Metrics, tool: &str) -> Option<String> {
        let text = metrics.encode();
        let prefix = format!("mcp_tool_calls_denied_total{{tool=\"{tool}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
    }

    #[test]
    fn the_list_shows_only_what_the_credential_may_use() {
        let catalog = Catalog::new(fleet_common::tools_file::parse(TOOLS).unwrap());
        let dbs = databases();
        let all = names(listed(&catalog, &dbs, None, builtins()));
        assert_eq!(all.len(), builtins().len() + 3, "{all:?}");
        let unrestricted = principal(None, None, None);
        assert_eq!(
            names(listed(&catalog, &dbs, Some(&unrestricted), builtins())),
            all
        );

        let kb = principal(Some(&["search_knowledgebase"]), None, None);
        assert_eq!(
            names(listed(&catalog, &dbs, Some(&kb), builtins())),
            ["search_knowledgebase"]
        );
        // databases: [b]: the tool on a is hidden; the one without a
        // database runs on b, the first the credential may use.
        let on_b = principal(None, Some(&["b"]), None);
        let shown = names(listed(&catalog, &dbs, Some(&on_b), builtins()));
        assert!(shown.contains(&"on_b".to_string()) && shown.contains(&"anywhere".to_string()));
        assert!(!shown.contains(&"on_a".to_string()), "{shown:?}");
        assert!(shown.contains(&pgt::QUERY_DATABASE.to_string()));
        // No database at all: no Postgres tool, built-in or curated.
        let none = principal(None, Some(&[]), None);
        let shown = names(listed(&catalog, &dbs, Some(&none), builtins()));
        assert_eq!(shown, ["authenticate_user", "search_knowledgebase"]);
        assert!(!reaches_a_database(&dbs, Some(&none)));
        assert!(reaches_a_database(&dbs, Some(&on_b)));
    }

    #[test]
    fn calls_are_refused_by_name_and_counted_with_bounded_labels() {
        let catalog = Catalog::new(fleet_common::tools_file::parse(TOOLS).unwrap());
        let dbs = databases();
        let metrics = Metrics::new("test");
        let kb = principal(Some(&["search_knowledgebase"]), None, None);
        let e = admit(&catalog, &dbs, Some(&kb), pgt::QUERY_DATABASE, &metrics)
            .err()
            .unwrap();
        assert_eq!(e, "this credential may not call the tool query_database");
        assert_eq!(
            denied_count(&metrics, pgt::QUERY_DATABASE).as_deref(),
            Some("1")
        );
        assert!(admit(&catalog, &dbs, Some(&kb), "search_knowledgebase", &metrics).is_ok());
        // authenticate_user stays callable, and is not counted.
        assert!(admit(&catalog, &dbs, Some(&kb), "authenticate_user", &metrics).is_ok());
        // A curated tool: its name is a label; a name that is no tool is not.
        assert!(admit(&catalog, &dbs, Some(&kb), "on_a", &metrics).is_err());
        assert_eq!(denied_count(&metrics, "on_a").as_deref(), Some("1"));
        for junk in ["no-such-tool-1", "no-such-tool-2"] {
            assert!(admit(&catalog, &dbs, Some(&kb), junk, &metrics).is_err());
        }
        assert_eq!(denied_count(&metrics, "unknown").as_deref(), Some("2"));
        assert!(!metrics.encode().contains("no-such-tool"));
        // A curated tool on a database the credential may not use.
        let on_b = principal(None, Some(&["b"]), None);
        let e = admit(&catalog, &dbs, Some(&on_b), "on_a", &metrics)
            .err()
            .unwrap();
        assert!(e.contains("may not use the database \"a\""), "{e}");
        assert_eq!(denied_count(&metrics, "on_a").as_deref(), Some("2"));
        assert!(matches!(
            admit(&catalog, &dbs, Some(&on_b), "on_b", &metrics),
            Ok(Target::Curated(_))
        ));
        // Unrestricted: everything, nothing counted.
        let all = principal(None, None, None);
        assert!(admit(&catalog, &dbs, Some(&all), pgt::QUERY_DATABASE, &metrics).is_ok());
        assert_eq!(
            denied_count(&metrics, pgt::QUERY_DATABASE).as_deref(),
            Some("1")
        );
    }

    #[test]
    fn the_database_is_one_the_credential_may_use() {
        let dbs = databases();
        let pick = |p: &Principal, requested: Option<&str>| {
            database(&dbs, Some(p), requested).map(|d| d.name().to_string())
        };
        let all = principal(None, None, None);
        assert_eq!(pick(&all, None).unwrap(), "a");
        assert_eq!(pick(&all, Some("b")).unwrap(), "b");
        assert_eq!(database(&dbs, None, None).unwrap().name(), "a");
        // Limited to one: that one by default, the other refused by name.
        let only_b = principal(None, Some(&["b"]), None);
        assert_eq!(pick(&only_b, None).unwrap(), "b");
        assert_eq!(pick(&only_b, Some(" b ")).unwrap(), "b");
        let e = pick(&only_b, Some("a")).unwrap_err();
        assert!(e.is_denied());
        assert_eq!(
            e.to_string(),
            "this credential may not use the database \"a\""
        );
        // An unknown name lists only what the credential may use.
        let two = principal(None, Some(&["b", "c"]), None);
        let e = pick(&two, Some("c")).unwrap_err();
        assert_eq!(e.kind(), "unknown_database");
        assert!(e.to_string().ends_with("configured databases: b"), "{e}");
        // None allowed.
        let none = principal(None, Some(&[]), None);
        assert!(pick(&none, None).unwrap_err().is_denied());
        // The tokens.yaml binding still holds, and must be allowed too.
        let bound_a = principal(None, None, Some("a"));
        assert_eq!(pick(&bound_a, None).unwrap(), "a");
        assert_eq!(pick(&bound_a, Some("b")).unwrap_err().kind(), "forbidden");
        let bound_outside = principal(None, Some(&["b"]), Some("a"));
        assert!(pick(&bound_outside, None).unwrap_err().is_denied());
        let bound_inside = principal(None, Some(&["a", "b"]), Some("a"));
        assert_eq!(pick(&bound_inside, None).unwrap(), "a");
        assert_eq!(
            pick(&bound_inside, Some("b")).unwrap_err().kind(),
            "forbidden"
        );
    }
}
