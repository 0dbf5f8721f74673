//! Which tools a caller sees and may call, and on which database: decided
//! here, in one place, for the built-in and the curated tools alike.
//! `tools/list`, `tools/call`, the Postgres tools' choice of database, the
//! `system_info` resource, the prompts shown and the tool lookup rmcp makes
//! for request headers all ask this module.
//!
//! A tool is offered when `tools.yaml` does not switch it off and, for a
//! curated tool, when its database is configured on this instance and, for
//! a writer, allows writers. On top of that, each credential carries its
//! [`Permissions`]: a set of (tool, database) pairs, from the `tools:` and
//! `databases:` of its `tokens.yaml` or `users.yaml` entry, or from the
//! grants the configuration maps an OAuth token's scopes and claims to.
//!
//! - a tool the credential may not call is left out of `tools/list`, and a
//!   call of it is the tool error "this credential may not call the tool
//!   X". `authenticate_user` stays callable by anyone (a caller could drop
//!   its token and call it anyway); it is listed only to credentials whose
//!   `tools:` allow it.
//! - a Postgres tool runs only on a database the credential may use *with
//!   that tool* ([`database`]): one grant must allow both. Asking for
//!   another is a tool error naming it; asking for none picks the token's
//!   binding (`database:`) or the first configured database the tool may
//!   run on. A curated tool whose database the credential may not use it
//!   on is hidden and refused; a built-in Postgres tool is hidden from a
//!   credential that may run it on no configured database.
//! - the `system_info` resource reads a database: it is listed and read
//!   only where the credential may run one of the built-in Postgres tools
//!   ([`Purpose::SystemInfo`]), so a credential whose tools leave them out
//!   reaches no database at all.
//! - a prompt is shown when every tool it names is ([`visible_prompts`]).
//!
//! Every refusal by permissions is counted in
//! `mcp_tool_calls_denied_total{tool}`, the label being a built-in or
//! curated tool's name, or `unknown`.
//!
//! `tools/list` answers are replayed to callers with the same request
//! headers, catalog and permissions (see [`crate::http::replay`]): what the
//! list shows depends on nothing else of the caller (not on a token's
//! `database:` binding, which only decides where a call runs).

use std::collections::BTreeSet;

use fleet_common::permissions::{Names, Permissions};
use fleet_common::tools_file::SqlTool;
use fleet_common::tools_file::builtins::AUTHENTICATE_USER;
use rmcp::model::Tool;

use super::Catalog;
use crate::auth::Principal;
use crate::metrics::Metrics;
use crate::pg::tools as pgt;
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
    let mut tools: Vec<Tool> = builtin
        .into_iter()
        .filter(|t| {
            switches.tool(&t.name)
                && permitted(principal, &t.name)
                && (!is_postgres_tool(&t.name)
                    || reaches(databases, principal, Purpose::Tool(&t.name)))
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

/// What a database is picked for.
#[derive(Debug, Clone, Copy)]
pub enum Purpose<'a> {
    /// A call of the tool of this name (built-in or curated).
    Tool(&'a str),
    /// The `system_info` resource: open where one of the built-in Postgres
    /// tools may run.
    SystemInfo,
}

impl Purpose<'_> {
    /// The databases the credential may use for this (`None`: all).
    fn databases(self, permissions: &Permissions) -> Names {
        match self {
            Purpose::Tool(name) => permissions.databases_for(name),
            Purpose::SystemInfo => {
                let mut out = BTreeSet::new();
                for tool in POSTGRES_TOOLS {
                    out.extend(permissions.databases_for(tool)?);
                }
                Some(out)
            }
        }
    }
}

/// The database a Postgres tool's call (or a read of `system_info`) runs
/// on: the `requested` one (the tool's `database` argument, or a curated
/// tool's database), else the credential's binding (a token's
/// `database:`), else the first configured database the credential may
/// use for it. A database the credential may not use for it is refused by
/// name ([`ToolError::is_denied`]); a credential bound to a database may
/// use only that one.
pub fn database<'a>(
    databases: &'a Databases,
    principal: Option<&Principal>,
    purpose: Purpose<'_>,
    requested: Option<&str>,
) -> Result<&'a Database, ToolError> {
    let bound = principal.and_then(|p| p.database.as_deref());
    let Some(allowed) = purpose.databases(permissions_of(principal)) else {
        return databases.pick(requested, bound);
    };
    if databases.is_empty() {
        return databases.pick(requested, bound);
    }
    let requested = requested.map(str::trim).filter(|s| !s.is_empty());
    let bound = bound.map(str::trim).filter(|s| !s.is_empty());
    let Some(name) = requested.or(bound) else {
        let first =
            first_permitted(databases, Some(&allowed)).ok_or(ToolError::NoPermittedDatabase)?;
        return databases.pick(Some(&first), None);
    };
    if !allowed.contains(name) {
        return Err(ToolError::NotPermitted {
            database: name.to_string(),
        });
    }
    if bound.is_none() && databases.get(name).is_none() {
        // Name only the databases this credential may use for it.
        let known: Vec<String> = databases
            .names()
            .into_iter()
            .filter(|n| allowed.contains(n))
            .collect();
        return Err(ToolError::UnknownDatabase {
            requested: name.to_string(),
            known: known.join(", "),
        });
    }
    databases.pick(requested, bound)
}

/// Whether the caller may use at least one configured database for
/// `purpose`: a built-in Postgres tool is not shown to a credential that
/// may run it nowhere, nor `system_info` to one that may run none of them.
pub fn reaches(databases: &Databases, principal: Option<&Principal>, purpose: Purpose<'_>) -> bool {
    let allowed = purpose.databases(permissions_of(principal));
    allowed.is_none() || first_permitted(databases, allowed.as_ref()).is_some()
}

/// The first configured database of `allowed` (`None`: any).
fn first_permitted(databases: &Databases, allowed: Option<&BTreeSet<String>>) -> Option<String> {
    databases
        .names()
        .into_iter()
        .find(|n| allowed.is_none_or(|a| a.contains(n)))
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

/// The names of the prompts served to a caller who sees the tools
/// `visible` (its `tools/list`): a prompt that names a tool the caller does
/// not see would only lead it to a refusal, and tells it what the server
/// hides from it.
pub fn visible_prompts(catalog: &Catalog, visible: &[&str]) -> Vec<String> {
    catalog
        .prompts_with_tools()
        .filter(|(_, named)| named.iter().all(|t| visible.contains(&t.as_str())))
        .map(|(p, _)| p.name.clone())
        .collect()
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
        None => match first_permitted(databases, permissions.databases_for(&tool.name).as_ref()) {
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
    if !permissions.allows(&tool.name, db.name()) {
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

/// The built-in tools that run on a database.
pub const POSTGRES_TOOLS: [&str; 5] = [
    pgt::QUERY_DATABASE,
    pgt::GET_SCHEMA_INFO,
    pgt::EXECUTE_EXPLAIN,
    pgt::COUNT_ROWS,
    pgt::SIMILARITY_SEARCH,
];

fn is_postgres_tool(name: &str) -> bool {
    POSTGRES_TOOLS.contains(&name)
}

/// The caller's permissions; without a credential (the handshake and
/// `authenticate_user`, the only requests that pass without one) nothing
/// is restricted here: the guard already limits what those requests reach.
fn permissions_of(principal: Option<&Principal>) -> &Permissions {
    static UNRESTRICTED: std::sync::LazyLock<Permissions> =
        std::sync::LazyLock::new(Permissions::everything);
    principal.map_or(&UNRESTRICTED, |p| &p.permissions)
}

/// Whether this credential may use the tool `name`.
fn permitted(principal: Option<&Principal>, name: &str) -> bool {
    permissions_of(principal).allows_tool(name)
}

#[cfg(test)]
mod tests;
