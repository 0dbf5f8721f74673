//! Argument values bound to a curated statement's parameters.
//!
//! Each value, already checked against its parameter's declaration
//! ([`fleet_common::tools_file::Param::accept`]), becomes the PostgreSQL
//! type the statement is prepared with: `text`, `int8`, `float8`, `bool`, or
//! an array of one of these. It travels in the extended protocol's Bind
//! message, never in the SQL text, so no value can change the statement:
//! `'; DROP TABLE t; --` is a string like any other. A statement that needs
//! another type casts the parameter (`$1::date`).

use fleet_common::tools_file::{ParamType, Scalar};
use serde_json::Value;
use tokio_postgres::types::{ToSql, Type};

/// One parameter's value with its declared type; `NULL` when absent.
pub struct Bound {
    ty: Type,
    value: Box<dyn ToSql + Sync + Send>,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The value is the caller's: it is not shown.
        f.debug_struct("Bound")
            .field("ty", &self.ty)
            .finish_non_exhaustive()
    }
}

impl Bound {
    /// Bind `value` (`None`: NULL) to a parameter of type `ty`. A value of
    /// another JSON type is refused, though the declaration's check has
    /// already passed it: what is sent must be what was declared.
    pub fn new(ty: ParamType, value: Option<&Value>) -> Result<Bound, String> {
        let mismatch = || format!("a value is not of its declared type {ty:?}");
        Ok(match ty {
            ParamType::Scalar(s) => {
                let value: Box<dyn ToSql + Sync + Send> = match (s, value) {
                    (Scalar::String, None) => Box::new(None::<String>),
                    (Scalar::Integer, None) => Box::new(None::<i64>),
                    (Scalar::Number, None) => Box::new(None::<f64>),
                    (Scalar::Boolean, None) => Box::new(None::<bool>),
                    (_, Some(v)) => scalar(s, v).ok_or_else(mismatch)?,
                };
                Bound {
                    ty: scalar_type(s),
                    value,
                }
            }
            ParamType::Array(s) => {
                let value: Box<dyn ToSql + Sync + Send> = match value {
                    None => match s {
                        Scalar::String => Box::new(None::<Vec<String>>),
                        Scalar::Integer => Box::new(None::<Vec<i64>>),
                        Scalar::Number => Box::new(None::<Vec<f64>>),
                        Scalar::Boolean => Box::new(None::<Vec<bool>>),
                    },
                    Some(Value::Array(items)) => array(s, items).ok_or_else(mismatch)?,
                    Some(_) => return Err(mismatch()),
                };
                Bound {
                    ty: array_type(s),
                    value,
                }
            }
        })
    }

    /// The declared types, in order: what the statement is prepared with.
    pub(super) fn types(params: &[Bound]) -> Vec<Type> {
        params.iter().map(|b| b.ty.clone()).collect()
    }

    /// The values, in order, as the driver takes them.
    pub(super) fn values(params: &[Bound]) -> Vec<&(dyn ToSql + Sync)> {
        params
            .iter()
            .map(|b| b.value.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

fn scalar_type(s: Scalar) -> Type {
    match s {
        Scalar::String => Type::TEXT,
        Scalar::Integer => Type::INT8,
        Scalar::Number => Type::FLOAT8,
        Scalar::Boolean => Type::BOOL,
    }
}

fn array_type(s: Scalar) -> Type {
    match s {
        Scalar::String => Type::TEXT_ARRAY,
        Scalar::Integer => Type::INT8_ARRAY,
        Scalar::Number => Type::FLOAT8_ARRAY,
        Scalar::Boolean => Type::BOOL_ARRAY,
    }
}

fn scalar(s: Scalar, v: &Value) -> Option<Box<dyn ToSql + Sync + Send>> {
    Some(match s {
        Scalar::String => Box::new(v.as_str()?.to_string()),
        Scalar::Integer => Box::new(v.as_i64()?),
        Scalar::Number => Box::new(v.as_f64()?),
        Scalar::Boolean => Box::new(v.as_bool()?),
    })
}

fn array(s: Scalar, items: &[Value]) -> Option<Box<dyn ToSql + Sync + Send>> {
    fn all<T>(items: &[Value], f: impl Fn(&Value) -> Option<T>) -> Option<Vec<T>> {
        items.iter().map(f).collect()
    }
    Some(match s {
        Scalar::String => Box::new(all(items, |v| v.as_str().map(str::to_string))?),
        Scalar::Integer => Box::new(all(items, Value::as_i64)?),
        Scalar::Number => Box::new(all(items, Value::as_f64)?),
        Scalar::Boolean => Box::new(all(items, Value::as_bool)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_get_their_declared_types() {
        let b = Bound::new(ParamType::Scalar(Scalar::Integer), Some(&json!(5))).unwrap();
        assert_eq!(b.ty, Type::INT8);
        let b = Bound::new(ParamType::Array(Scalar::String), Some(&json!(["a"]))).unwrap();
        assert_eq!(b.ty, Type::TEXT_ARRAY);
        let b = Bound::new(ParamType::Scalar(Scalar::Boolean), None).unwrap();
        assert_eq!(b.ty, Type::BOOL);
        assert!(Bound::new(ParamType::Scalar(Scalar::Integer), Some(&json!("5"))).is_err());
        assert!(Bound::new(ParamType::Array(Scalar::Integer), Some(&json!([1, "2"]))).is_err());
        assert!(!format!("{b:?}").contains("value:"));
    }
}
