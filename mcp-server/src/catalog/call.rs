//! Running a curated tool. Every argument is checked against its
//! declaration before anything reaches PostgreSQL: an argument the tool
//! does not declare, a required one missing, a value of the wrong type or
//! outside its enum or range is a tool error naming the parameter. The
//! database is picked as for the built-in tools, by
//! [`crate::catalog::gate::database`] (a credential bound to a database may
//! use only that one, and only databases its permissions allow), and the values are bound by declared
//! type ([`crate::pg::bind`]), never spliced into the SQL. The call runs as
//! the credential's PostgreSQL role for it ([`Principal::role_for`]),
//! writer tools included.

use fleet_common::tools_file::SqlTool;
use rmcp::model::JsonObject;

use crate::auth::Principal;
use crate::pg::bind::Bound;
use crate::pg::{Databases, ToolError};

/// Call `tool` with the caller's `args` on its database (or, for a tool
/// without one, the caller's: see [`crate::catalog::gate::database`]).
pub async fn run(
    tool: &SqlTool,
    args: Option<&JsonObject>,
    databases: &Databases,
    principal: Option<&Principal>,
) -> Result<String, ToolError> {
    let values = bind(tool, args).map_err(ToolError::InvalidArgument)?;
    let purpose = super::gate::Purpose::Tool(&tool.name);
    let db = super::gate::database(databases, principal, purpose, tool.database.as_deref())?;
    let role = principal.and_then(|p| p.role_for(&tool.name, db.name()));
    crate::pg::role::scope(role, db.run_statement(&tool.sql, &values, tool.writer)).await
}

/// The arguments checked and bound, in the parameters' order.
fn bind(tool: &SqlTool, args: Option<&JsonObject>) -> Result<Vec<Bound>, String> {
    if let Some(args) = args
        && let Some(unknown) = args
            .keys()
            .find(|k| !tool.params.iter().any(|p| &p.name == *k))
    {
        let known: Vec<&str> = tool.params.iter().map(|p| p.name.as_str()).collect();
        return Err(format!(
            "the tool {} has no argument {unknown:?} (it takes: {})",
            tool.name,
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ));
    }
    tool.params
        .iter()
        .map(|p| {
            let value = p.accept(args.and_then(|a| a.get(&p.name)))?;
            Bound::new(p.ty, value.as_ref())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn bad_arguments_are_refused_before_any_database_is_touched() {
        let file = fleet_common::tools_file::parse(
            b"tools:\n  t:\n    description: d\n    parameters: [{name: limit, type: integer}]\n    statement: SELECT :limit\n",
        )
        .unwrap();
        let tool = &file.tools[0];
        // No database at all: an argument error comes first.
        let none = Databases::default();
        for (args, says) in [
            (
                json!({"limit": "1; DROP TABLE t"}),
                "argument limit: expected an integer, got a string",
            ),
            (json!({}), "argument limit is required"),
            (
                json!({"limit": 1, "other": 2}),
                "has no argument \"other\" (it takes: limit)",
            ),
        ] {
            let args = args.as_object().cloned();
            let e = run(tool, args.as_ref(), &none, None).await.unwrap_err();
            assert_eq!(e.kind(), "invalid_argument", "{e}");
            assert!(e.to_string().contains(says), "{e}");
        }
        let ok = json!({"limit": 1}).as_object().cloned();
        let e = run(tool, ok.as_ref(), &none, None).await.unwrap_err();
        assert_eq!(e.kind(), "no_database");
    }
}
