//! A curated SQL tool: its name, description, database, parameters and
//! statement, as written in any of the accepted forms, checked.
//!
//! The forms: this project's (`parameters:` and `statement:`), Google's MCP
//! Toolbox (`kind: postgres-sql`, `source`, `statement`, `parameters` with
//! `allowedValues`, `minValue`, `maxValue`) and pgEdge's (`type: sql`,
//! `input_schema` as JSON Schema, `sql`). The statement is checked as the
//! guard checks `query_database`'s SQL, parameters allowed; a tool marked
//! `writer: true` may also insert, update, delete or merge. What a server
//! cannot do safely is refused with the reason: pgEdge's `pl-do` and
//! `pl-func` tools, Toolbox's `templateParameters` (values spliced into the
//! SQL text) and `authRequired`.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Number, Value};

use super::params::{Constraints, Declared, Param};
use crate::sql::guard::{self, Access};
use crate::sql::placeholders;
use crate::yaml::EntryList;

/// One curated SQL tool, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlTool {
    pub name: String,
    pub description: String,
    /// The configured database it runs on (`None`: the caller's, as for the
    /// built-in tools).
    pub database: Option<String>,
    /// It may write, on a database whose configuration allows writers.
    pub writer: bool,
    pub params: Vec<Param>,
    /// The statement with `$1`..`$n` for the parameters in declared order,
    /// without a trailing `;`.
    pub sql: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTool {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    /// `sql` (pgEdge) or `postgres-sql` (Toolbox); default `sql`.
    #[serde(default, alias = "type")]
    kind: Option<String>,
    /// A configured database's name (Toolbox: `source`).
    #[serde(default, alias = "source")]
    database: Option<String>,
    #[serde(default, alias = "sql")]
    statement: Option<String>,
    #[serde(default)]
    writer: bool,
    #[serde(default)]
    parameters: Option<Vec<RawParam>>,
    #[serde(default)]
    input_schema: Option<RawInputSchema>,
    // Refused, each with its reason.
    #[serde(default, rename = "templateParameters")]
    template_parameters: Option<IgnoredAny>,
    #[serde(default, rename = "authRequired")]
    auth_required: Option<IgnoredAny>,
    #[serde(default)]
    language: Option<IgnoredAny>,
    #[serde(default)]
    code: Option<IgnoredAny>,
    #[serde(default)]
    returns: Option<IgnoredAny>,
}

impl RawTool {
    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

/// A parameter in the list form, or a property of pgEdge's `input_schema`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParam {
    #[serde(default)]
    name: Option<String>,
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    required: Option<bool>,
    #[serde(default)]
    default: Option<Value>,
    #[serde(default, rename = "enum", alias = "allowedValues")]
    allowed: Option<Vec<Value>>,
    #[serde(default, alias = "minValue")]
    minimum: Option<Number>,
    #[serde(default, alias = "maxValue")]
    maximum: Option<Number>,
    #[serde(default)]
    items: Option<Box<RawParam>>,
    // Toolbox fields with no safe meaning here, refused.
    #[serde(default, rename = "excludedValues")]
    excluded: Option<IgnoredAny>,
    #[serde(default)]
    escape: Option<IgnoredAny>,
    #[serde(default, rename = "authServices")]
    auth_services: Option<IgnoredAny>,
}

/// pgEdge's `input_schema`: a JSON Schema object.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInputSchema {
    #[serde(default, rename = "type")]
    ty: Option<String>,
    #[serde(default)]
    properties: Option<EntryList<RawParam>>,
    #[serde(default)]
    required: Vec<String>,
    #[serde(default, rename = "additionalProperties")]
    _additional: Option<IgnoredAny>,
}

impl RawParam {
    fn declared(self, name: String) -> Result<Declared, String> {
        let refused = [
            (self.excluded.is_some(), "excludedValues"),
            (self.escape.is_some(), "escape"),
            (self.auth_services.is_some(), "authServices"),
        ];
        if let Some((_, field)) = refused.iter().find(|(present, _)| *present) {
            return Err(format!(
                "parameter {name}: {field} is not supported (use enum, minimum and maximum)"
            ));
        }
        let items = match self.items {
            Some(items) => Some(Box::new(items.declared(format!("{name} items"))?)),
            None => None,
        };
        Ok(Declared {
            name,
            description: self.description,
            ty: self.ty,
            items,
            required: self.required,
            default: self.default,
            constraints: Constraints {
                allowed: self.allowed,
                minimum: self.minimum,
                maximum: self.maximum,
            },
        })
    }
}

/// Check the tool named `name`.
pub(crate) fn declare(name: String, raw: RawTool) -> Result<SqlTool, String> {
    if !super::valid_entry_name(&name) {
        return Err(format!(
            "tool {name:?}: a name is 1 to 64 letters, digits, `_`, `-` or `.`"
        ));
    }
    let at = |m: String| format!("tool {name}: {m}");
    match raw.kind.as_deref() {
        None | Some("sql" | "postgres-sql") => {}
        Some(k @ ("pl-do" | "pl-func")) => {
            return Err(at(format!(
                "type {k} is not served: it runs procedural code (a DO block, or a function \
                 created at call time) that takes no bound parameters and cannot be checked \
                 before it is published; create the function in the database and call it \
                 from a sql tool (SELECT * FROM my_function($1))"
            )));
        }
        Some(other) => {
            return Err(at(format!("unknown type {other:?} (sql or postgres-sql)")));
        }
    }
    if raw.template_parameters.is_some() {
        return Err(at(
            "templateParameters are spliced into the SQL text, which this server never does: \
             pass every value as a parameter"
                .into(),
        ));
    }
    if raw.auth_required.is_some() {
        return Err(at(
            "authRequired is not supported: every call already needs a token or a session".into(),
        ));
    }
    if raw.language.is_some() || raw.code.is_some() || raw.returns.is_some() {
        return Err(at(
            "language, code and returns belong to pgEdge's pl-do and pl-func tools, which are \
             not served"
                .into(),
        ));
    }
    let description = raw
        .description
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty())
        .ok_or_else(|| at("needs a description: it is what the model chooses tools by".into()))?;
    let database = match raw.database.map(|d| d.trim().to_string()) {
        Some(d) if d.is_empty() => return Err(at("database is empty".into())),
        other => other,
    };
    let declared: Vec<Declared> = match (raw.parameters, raw.input_schema) {
        (Some(_), Some(_)) => {
            return Err(at("give parameters or input_schema, not both".into()));
        }
        (Some(list), None) => list
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let name = p
                    .name
                    .clone()
                    .ok_or_else(|| format!("parameter {} has no name", i + 1))?;
                p.declared(name)
            })
            .collect::<Result<_, _>>()
            .map_err(at)?,
        (None, Some(schema)) => from_schema(schema).map_err(at)?,
        (None, None) => Vec::new(),
    };
    let mut params: Vec<Param> = Vec::with_capacity(declared.len());
    for d in declared {
        let p = Param::declare(d).map_err(at)?;
        if params.iter().any(|q| q.name == p.name) {
            return Err(at(format!("parameter {} is declared twice", p.name)));
        }
        params.push(p);
    }
    let statement = raw
        .statement
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| at("needs a statement (statement: or sql:)".into()))?;
    let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
    let sql =
        placeholders::positional(&statement, &names).map_err(|e| at(format!("statement: {e}")))?;
    let access = if raw.writer {
        Access::Writer
    } else {
        Access::Reader
    };
    let body = match guard::check_curated(&sql, access) {
        Ok(checked) => checked.body.to_string(),
        Err(_) if !raw.writer && guard::check_curated(&sql, Access::Writer).is_ok() => {
            return Err(at(
                "statement: it writes (INSERT, UPDATE, DELETE, MERGE, INTO or a row lock): a \
                 tool that writes must say `writer: true`, and runs only on a database whose \
                 configuration allows writers"
                    .into(),
            ));
        }
        Err(e) => return Err(at(format!("statement: {e}"))),
    };
    Ok(SqlTool {
        name: name.clone(),
        description,
        database,
        writer: raw.writer,
        params,
        sql: body,
    })
}

/// The parameters of pgEdge's `input_schema`, in property order.
fn from_schema(schema: RawInputSchema) -> Result<Vec<Declared>, String> {
    if schema.ty.as_deref().is_some_and(|t| t != "object") {
        return Err("input_schema: type must be object".into());
    }
    let properties = schema.properties.map(|p| p.0).unwrap_or_default();
    for r in &schema.required {
        if !properties.iter().any(|p| p.key.as_deref() == Some(r)) {
            return Err(format!(
                "input_schema: required names {r:?}, which is not a property"
            ));
        }
    }
    properties
        .into_iter()
        .map(|e| {
            let name = e
                .key
                .ok_or_else(|| "input_schema: properties must be a map".to_string())?;
            let listed = schema.required.contains(&name);
            let mut d = e.value.declared(name)?;
            // JSON Schema: required only when listed.
            d.required = Some(listed || d.required == Some(true));
            if d.default.is_some() && !listed {
                d.required = None;
            }
            Ok(d)
        })
        .collect()
}
