//! Which tools a caller sees and may call: decided here, in one place, for
//! the built-in and the curated tools alike. `tools/list`, `tools/call` and
//! the tool lookup rmcp makes for request headers all ask this module.
//!
//! Today a tool is offered when `tools.yaml` does not switch it off and,
//! for a curated tool, when its database is configured on this instance and,
//! for a writer, allows writers. Per-credential tool permissions (issue 17)
//! belong in `permitted` (below), and nowhere else: both the list and the call go
//! through it. Note for that change: `tools/list` answers are replayed to
//! callers with the same request headers and catalog (see
//! [`crate::http::replay`]); once the list depends on the caller, the
//! replay key must carry the caller's permissions too.

use fleet_common::tools_file::SqlTool;
use rmcp::model::Tool;

use super::Catalog;
use crate::auth::Principal;
use crate::pg::Databases;

/// Where an admitted call goes.
pub enum Target<'a> {
    /// A built-in tool, or a name the router answers as unknown.
    Router,
    /// A curated tool of `tools.yaml`.
    Curated(&'a SqlTool),
}

/// Whether the caller may call `name`, and where the call goes; the refusal
/// is the tool error the caller reads.
pub fn admit<'a>(
    catalog: &'a Catalog,
    databases: &Databases,
    principal: Option<&Principal>,
    name: &str,
) -> Result<Target<'a>, String> {
    if !permitted(principal, name) {
        return Err(format!("this credential may not call the tool {name}"));
    }
    if let Some((tool, _)) = catalog.tool(name) {
        return offered(tool, databases).map(|()| Target::Curated(tool));
    }
    if is_builtin(name) && !catalog.switches().tool(name) {
        return Err(format!(
            "the tool {name} is switched off on this server (builtins.tools in tools.yaml)"
        ));
    }
    Ok(Target::Router)
}

/// The tools the caller sees: `builtin` (the router's, as declared) less
/// those switched off, then the curated tools offered here.
pub fn listed(
    catalog: &Catalog,
    databases: &Databases,
    principal: Option<&Principal>,
    builtin: Vec<Tool>,
) -> Vec<Tool> {
    let switches = catalog.switches();
    let mut tools: Vec<Tool> = builtin
        .into_iter()
        .filter(|t| switches.tool(&t.name) && permitted(principal, &t.name))
        .collect();
    tools.extend(
        catalog
            .tools()
            .filter(|(t, _)| offered(t, databases).is_ok() && permitted(principal, &t.name))
            .map(|(_, d)| d.clone()),
    );
    tools
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
/// writer, allows writers.
fn offered(tool: &SqlTool, databases: &Databases) -> Result<(), String> {
    let db = match tool.database.as_deref() {
        Some(name) => databases.get(name).ok_or_else(|| {
            format!(
                "the tool {} runs on database {name}, which is not configured on this server",
                tool.name
            )
        })?,
        None => databases.pick(None, None).map_err(|e| e.to_string())?,
    };
    if tool.writer && !db.allows_writers() {
        return Err(format!(
            "the tool {} writes, and database {} does not run writer tools (allow_writers is \
             not set for it in the server's configuration)",
            tool.name,
            db.name()
        ));
    }
    Ok(())
}

fn is_builtin(name: &str) -> bool {
    fleet_common::tools_file::builtins::TOOLS.contains(&name)
}

/// Whether this credential may use the tool `name`: every one, until
/// tokens, users and OAuth scopes carry tool permissions (issue 17).
fn permitted(_principal: Option<&Principal>, _name: &str) -> bool {
    true
}
