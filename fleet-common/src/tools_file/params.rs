//! The typed parameters of a curated tool: their declarations (type,
//! required or default, allowed values, range) and the check every argument
//! value passes before anything is sent to PostgreSQL.
//!
//! Types are `string`, `integer`, `number` (`float` is a synonym), `boolean`
//! and `array` of one of those (`items: {type: ...}`). A value is accepted
//! only as its JSON type: `"5"` is not an integer, `5.5` is not an integer,
//! `1` is not a boolean. Messages name the argument and say what was
//! expected and what kind of value came, never the value itself.

use serde_json::{Number, Value};

/// A scalar type, alone or as the items of an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    String,
    Integer,
    Number,
    Boolean,
}

impl Scalar {
    fn parse(name: &str) -> Option<Scalar> {
        Some(match name {
            "string" => Scalar::String,
            "integer" => Scalar::Integer,
            "number" | "float" => Scalar::Number,
            "boolean" => Scalar::Boolean,
            _ => return None,
        })
    }

    /// The JSON Schema type name.
    pub fn json_type(self) -> &'static str {
        match self {
            Scalar::String => "string",
            Scalar::Integer => "integer",
            Scalar::Number => "number",
            Scalar::Boolean => "boolean",
        }
    }

    fn article(self) -> &'static str {
        match self {
            Scalar::String => "a string",
            Scalar::Integer => "an integer",
            Scalar::Number => "a number",
            Scalar::Boolean => "a boolean",
        }
    }
}

/// A parameter's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    Scalar(Scalar),
    Array(Scalar),
}

/// What a scalar (or each item of an array) must also be.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Constraints {
    /// The only values accepted (`enum`, Toolbox's `allowedValues`).
    pub allowed: Option<Vec<Value>>,
    /// Inclusive bounds of a number or integer (`minimum` / `maximum`,
    /// Toolbox's `minValue` / `maxValue`).
    pub minimum: Option<Number>,
    pub maximum: Option<Number>,
}

/// One declared parameter of a curated tool.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub description: Option<String>,
    pub ty: ParamType,
    /// Must the caller give it? Never true when there is a default.
    pub required: bool,
    /// Used when the caller gives none (or null); already checked.
    pub default: Option<Value>,
    /// For an array, they apply to each item.
    pub constraints: Constraints,
}

/// A parameter as written, before it is checked: the fields every accepted
/// form shares.
pub(crate) struct Declared {
    pub name: String,
    pub description: Option<String>,
    pub ty: String,
    pub items: Option<Box<Declared>>,
    pub required: Option<bool>,
    pub default: Option<Value>,
    pub constraints: Constraints,
}

impl Param {
    /// Check a declaration: a known type, constraints that fit it, and a
    /// default that passes them.
    pub(crate) fn declare(d: Declared) -> Result<Param, String> {
        let name = d.name;
        if !valid_name(&name) {
            return Err(format!(
                "parameter {name:?}: a name is a letter or `_` then letters, digits or `_`, at most 64"
            ));
        }
        let unknown = |t: &str| {
            format!(
                "parameter {name}: unknown type {t:?} (string, integer, number, boolean, or array \
                 with items of one of these)"
            )
        };
        let (ty, constraints) = match d.ty.as_str() {
            "array" => {
                let Some(items) = d.items else {
                    return Err(format!(
                        "parameter {name}: an array needs `items: {{type: ...}}`"
                    ));
                };
                if d.constraints != Constraints::default() {
                    return Err(format!(
                        "parameter {name}: put enum, minimum and maximum of an array under `items`"
                    ));
                }
                let scalar = Scalar::parse(&items.ty).ok_or_else(|| unknown(&items.ty))?;
                (ParamType::Array(scalar), items.constraints)
            }
            t => {
                if d.items.is_some() {
                    return Err(format!("parameter {name}: only an array has `items`"));
                }
                (
                    ParamType::Scalar(Scalar::parse(t).ok_or_else(|| unknown(t))?),
                    d.constraints,
                )
            }
        };
        let scalar = match ty {
            ParamType::Scalar(s) | ParamType::Array(s) => s,
        };
        check_constraints(&name, scalar, &constraints)?;
        let required = match (d.required, &d.default) {
            (Some(true), Some(_)) => {
                return Err(format!(
                    "parameter {name}: a parameter with a default is not required"
                ));
            }
            (Some(r), None) => r,
            (_, Some(_)) => false,
            // Google's MCP Toolbox: required unless said otherwise.
            (None, None) => true,
        };
        let mut param = Param {
            name,
            description: d.description.filter(|s| !s.trim().is_empty()),
            ty,
            required,
            default: None,
            constraints,
        };
        if let Some(default) = d.default.filter(|v| !v.is_null()) {
            let checked = param
                .check_value(&default)
                .map_err(|e| format!("the default of {e}"))?;
            param.default = Some(checked);
        }
        Ok(param)
    }

    /// The value to bind for this parameter, given the caller's argument
    /// (`None` when absent): the argument checked, else the default, else
    /// `None` (SQL NULL) for an optional parameter. A missing required
    /// argument, a value of the wrong type, or one outside the constraints
    /// is an error naming the parameter.
    pub fn accept(&self, given: Option<&Value>) -> Result<Option<Value>, String> {
        match given.filter(|v| !v.is_null()) {
            Some(v) => self.check_value(v).map(Some),
            None if self.default.is_some() => Ok(self.default.clone()),
            None if self.required => Err(format!("argument {} is required", self.name)),
            None => Ok(None),
        }
    }

    fn check_value(&self, v: &Value) -> Result<Value, String> {
        match self.ty {
            ParamType::Scalar(s) => self.check_scalar(s, v, &self.name),
            ParamType::Array(s) => {
                let Value::Array(items) = v else {
                    return Err(format!(
                        "argument {}: expected an array of {}, got {}",
                        self.name,
                        plural(s),
                        kind(v)
                    ));
                };
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        if item.is_null() {
                            return Err(format!(
                                "argument {}[{i}]: expected {}, got null",
                                self.name,
                                s.article()
                            ));
                        }
                        self.check_scalar(s, item, &format!("{}[{i}]", self.name))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Value::Array)
            }
        }
    }

    fn check_scalar(&self, s: Scalar, v: &Value, label: &str) -> Result<Value, String> {
        let fits = match (s, v) {
            (Scalar::String, Value::String(text)) => {
                if text.contains('\0') {
                    return Err(format!(
                        "argument {label}: contains a NUL character, which PostgreSQL text cannot hold"
                    ));
                }
                true
            }
            (Scalar::Integer, Value::Number(n)) => n.is_i64(),
            (Scalar::Number, Value::Number(n)) => n.as_f64().is_some_and(f64::is_finite),
            (Scalar::Boolean, Value::Bool(_)) => true,
            _ => false,
        };
        if !fits {
            let what = match (s, v) {
                (Scalar::Integer, Value::Number(_)) => {
                    "a number that is not a 64-bit integer".to_string()
                }
                _ => kind(v).to_string(),
            };
            return Err(format!(
                "argument {label}: expected {}, got {what}",
                s.article()
            ));
        }
        let c = &self.constraints;
        if let Some(allowed) = &c.allowed
            && !allowed.iter().any(|a| same(a, v))
        {
            let list: Vec<String> = allowed.iter().map(show_allowed).collect();
            return Err(format!(
                "argument {label}: must be one of {}",
                list.join(", ")
            ));
        }
        if let Value::Number(n) = v {
            if let Some(min) = &c.minimum
                && below(n, min)
            {
                return Err(format!("argument {label}: must be at least {min}"));
            }
            if let Some(max) = &c.maximum
                && below(max, n)
            {
                return Err(format!("argument {label}: must be at most {max}"));
            }
        }
        Ok(v.clone())
    }
}

/// `a < b` for JSON numbers: exactly for integers, as f64 otherwise.
fn below(a: &Number, b: &Number) -> bool {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => x < y,
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x < y,
            _ => false,
        },
    }
}

/// Equal as values of the parameter's type (so `2` matches an allowed `2.0`
/// of a number).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => !below(x, y) && !below(y, x),
        _ => a == b,
    }
}

/// Allowed values are the operator's, not the caller's: they may be shown.
fn show_allowed(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn check_constraints(name: &str, s: Scalar, c: &Constraints) -> Result<(), String> {
    if (c.minimum.is_some() || c.maximum.is_some())
        && !matches!(s, Scalar::Integer | Scalar::Number)
    {
        return Err(format!(
            "parameter {name}: minimum and maximum apply to integers and numbers only"
        ));
    }
    if let (Some(min), Some(max)) = (&c.minimum, &c.maximum)
        && below(max, min)
    {
        return Err(format!("parameter {name}: minimum is above maximum"));
    }
    if s == Scalar::Integer {
        for bound in [&c.minimum, &c.maximum].into_iter().flatten() {
            if !bound.is_i64() {
                return Err(format!(
                    "parameter {name}: the bounds of an integer are integers"
                ));
            }
        }
    }
    if let Some(allowed) = &c.allowed {
        if allowed.is_empty() {
            return Err(format!("parameter {name}: enum lists no value"));
        }
        if s == Scalar::Boolean {
            return Err(format!("parameter {name}: a boolean takes no enum"));
        }
        let probe = Param {
            name: name.to_string(),
            description: None,
            ty: ParamType::Scalar(s),
            required: true,
            default: None,
            constraints: Constraints::default(),
        };
        for v in allowed {
            probe
                .check_scalar(s, v, name)
                .map_err(|e| format!("enum of parameter {name}: {e}"))?;
        }
    }
    Ok(())
}

/// Parameter and argument names: what JSON Schema, MCP clients and a
/// `:name` placeholder all accept.
pub(crate) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn plural(s: Scalar) -> &'static str {
    match s {
        Scalar::String => "strings",
        Scalar::Integer => "integers",
        Scalar::Number => "numbers",
        Scalar::Boolean => "booleans",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn declared(name: &str, ty: &str) -> Declared {
        Declared {
            name: name.into(),
            description: None,
            ty: ty.into(),
            items: None,
            required: None,
            default: None,
            constraints: Constraints::default(),
        }
    }

    fn param(d: Declared) -> Param {
        Param::declare(d).unwrap()
    }

    #[test]
    fn each_type_takes_its_json_type_only() {
        let s = param(declared("s", "string"));
        let i = param(declared("i", "integer"));
        let n = param(declared("n", "float"));
        let b = param(declared("b", "boolean"));
        let mut arr = declared("ids", "array");
        arr.items = Some(Box::new(declared("id", "integer")));
        let a = param(arr);
        assert_eq!(
            s.accept(Some(&json!("x'; DROP"))).unwrap(),
            Some(json!("x'; DROP"))
        );
        assert_eq!(i.accept(Some(&json!(-7))).unwrap(), Some(json!(-7)));
        assert_eq!(n.accept(Some(&json!(2))).unwrap(), Some(json!(2)));
        assert_eq!(n.accept(Some(&json!(2.5))).unwrap(), Some(json!(2.5)));
        assert_eq!(b.accept(Some(&json!(true))).unwrap(), Some(json!(true)));
        assert_eq!(a.accept(Some(&json!([1, 2]))).unwrap(), Some(json!([1, 2])));
        for (p, bad, says) in [
            (
                &i,
                json!("5"),
                "argument i: expected an integer, got a string",
            ),
            (
                &i,
                json!(5.5),
                "argument i: expected an integer, got a number that is not",
            ),
            (&i, json!(u64::MAX), "not a 64-bit integer"),
            (&b, json!(1), "argument b: expected a boolean, got a number"),
            (
                &s,
                json!(["x"]),
                "argument s: expected a string, got an array",
            ),
            (&s, json!("a\u{0}b"), "NUL"),
            (
                &a,
                json!(1),
                "argument ids: expected an array of integers, got a number",
            ),
            (
                &a,
                json!([1, "2"]),
                "argument ids[1]: expected an integer, got a string",
            ),
            (
                &a,
                json!([1, null]),
                "argument ids[1]: expected an integer, got null",
            ),
        ] {
            let e = p.accept(Some(&bad)).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert_eq!(
            s.accept(None).unwrap_err(),
            "argument s is required",
            "required unless said otherwise"
        );
        assert_eq!(
            s.accept(Some(&Value::Null)).unwrap_err(),
            "argument s is required"
        );
    }

    #[test]
    fn defaults_enums_and_ranges() {
        let mut d = declared("limit", "integer");
        d.default = Some(json!(10));
        d.constraints.minimum = Some(1.into());
        d.constraints.maximum = Some(100.into());
        let limit = param(d);
        assert!(!limit.required);
        assert_eq!(limit.accept(None).unwrap(), Some(json!(10)));
        assert!(
            limit
                .accept(Some(&json!(0)))
                .unwrap_err()
                .contains("at least 1")
        );
        assert!(
            limit
                .accept(Some(&json!(101)))
                .unwrap_err()
                .contains("at most 100")
        );
        let mut d = declared("status", "string");
        d.constraints.allowed = Some(vec![json!("open"), json!("closed")]);
        d.required = Some(false);
        let status = param(d);
        assert_eq!(status.accept(None).unwrap(), None, "optional: NULL");
        assert!(
            status
                .accept(Some(&json!("x")))
                .unwrap_err()
                .contains("one of open, closed")
        );
        let mut arr = declared("states", "array");
        let mut items = declared("", "string");
        items.constraints.allowed = Some(vec![json!("a")]);
        arr.items = Some(Box::new(items));
        let states = param(arr);
        assert!(
            states
                .accept(Some(&json!(["a", "b"])))
                .unwrap_err()
                .contains("states[1]")
        );
        for (bad, says) in [
            (declared("x", "text"), "unknown type \"text\""),
            (declared("1x", "string"), "a name is"),
            (declared("a", "array"), "needs `items"),
            (
                {
                    let mut d = declared("d", "integer");
                    d.default = Some(json!("ten"));
                    d
                },
                "the default of argument d",
            ),
            (
                {
                    let mut d = declared("d", "integer");
                    d.default = Some(json!(1));
                    d.required = Some(true);
                    d
                },
                "not required",
            ),
            (
                {
                    let mut d = declared("d", "string");
                    d.constraints.minimum = Some(1.into());
                    d
                },
                "integers and numbers only",
            ),
            (
                {
                    let mut d = declared("d", "integer");
                    d.constraints.allowed = Some(vec![json!("a")]);
                    d
                },
                "enum of parameter d",
            ),
            (
                {
                    let mut d = declared("d", "number");
                    d.constraints.minimum = Some(2.into());
                    d.constraints.maximum = Some(1.into());
                    d
                },
                "above maximum",
            ),
        ] {
            let e = Param::declare(bad).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }
}
