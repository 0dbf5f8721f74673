//! The MCP descriptor of a curated tool: its name, description, input JSON
//! Schema (from the declared parameters: types, required, defaults, enum and
//! range, no other property allowed) and annotations (read-only or not).

use std::sync::Arc;

use fleet_common::tools_file::{Param, ParamType, SqlTool};
use rmcp::model::{Tool, ToolAnnotations};
use serde_json::{Map, Value, json};

/// The descriptor `tools/list` shows for `tool`.
pub fn descriptor(tool: &SqlTool) -> Tool {
    let mut properties = Map::new();
    for p in &tool.params {
        properties.insert(p.name.clone(), Value::Object(property(p)));
    }
    let required: Vec<Value> = tool
        .params
        .iter()
        .filter(|p| p.required)
        .map(|p| Value::String(p.name.clone()))
        .collect();
    let mut schema = Map::new();
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        schema.insert("required".into(), Value::Array(required));
    }
    schema.insert("additionalProperties".into(), json!(false));
    let description = if tool.writer {
        format!("{} (Writes to the database.)", tool.description)
    } else {
        tool.description.clone()
    };
    let mut t = Tool::default();
    t.name = tool.name.clone().into();
    t.description = Some(description.into());
    t.input_schema = Arc::new(schema);
    t.annotations = Some(
        ToolAnnotations::new()
            .read_only(!tool.writer)
            .destructive(tool.writer),
    );
    t
}

fn property(p: &Param) -> Map<String, Value> {
    let mut out = Map::new();
    let constrained = |out: &mut Map<String, Value>| {
        let c = &p.constraints;
        if let Some(allowed) = &c.allowed {
            out.insert("enum".into(), Value::Array(allowed.clone()));
        }
        if let Some(min) = &c.minimum {
            out.insert("minimum".into(), Value::Number(min.clone()));
        }
        if let Some(max) = &c.maximum {
            out.insert("maximum".into(), Value::Number(max.clone()));
        }
    };
    match p.ty {
        ParamType::Scalar(s) => {
            out.insert("type".into(), json!(s.json_type()));
            constrained(&mut out);
        }
        ParamType::Array(s) => {
            out.insert("type".into(), json!("array"));
            let mut items = Map::new();
            items.insert("type".into(), json!(s.json_type()));
            constrained(&mut items);
            out.insert("items".into(), Value::Object(items));
        }
    }
    if let Some(d) = &p.description {
        out.insert("description".into(), json!(d));
    }
    if let Some(d) = &p.default {
        out.insert("default".into(), d.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parameter_type_has_its_schema() {
        let file = fleet_common::tools_file::parse(
            br#"
tools:
  t:
    description: All types.
    parameters:
      - {name: s, type: string, description: A string, enum: [a, b]}
      - {name: i, type: integer, minimum: 1, maximum: 9, default: 3}
      - {name: n, type: number}
      - {name: b, type: boolean, required: false}
      - {name: a, type: array, items: {type: integer, minimum: 0}}
    statement: SELECT :s, :i, :n, :b, :a
  w:
    description: Writes.
    writer: true
    statement: DELETE FROM t
"#,
        )
        .unwrap();
        let d = descriptor(&file.tools[0]);
        assert_eq!(
            Value::Object((*d.input_schema).clone()),
            json!({
                "type": "object",
                "properties": {
                    "s": {"type": "string", "enum": ["a", "b"], "description": "A string"},
                    "i": {"type": "integer", "minimum": 1, "maximum": 9, "default": 3},
                    "n": {"type": "number"},
                    "b": {"type": "boolean"},
                    "a": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                },
                "required": ["s", "n", "a"],
                "additionalProperties": false,
            })
        );
        assert_eq!(
            d.annotations.as_ref().and_then(|a| a.read_only_hint),
            Some(true)
        );
        let w = descriptor(&file.tools[1]);
        assert_eq!(
            w.annotations.as_ref().and_then(|a| a.read_only_hint),
            Some(false)
        );
        assert!(w.description.unwrap().contains("Writes to the database"));
    }
}
