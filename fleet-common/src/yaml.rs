//! The one shape both auth files share: a top-level key holding either a map
//! (`id: {fields}`) or a list (`- {fields}`) of entries.

use serde_norway::Value;

use crate::{Error, Result};

/// The entries under `key` in document order, each with its map key (`None`
/// for list entries). A missing or null `key`, or an empty document, gives none.
pub(crate) fn entries(
    file: &'static str,
    text: &str,
    key: &str,
) -> Result<Vec<(Option<String>, Value)>> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let doc: Value = serde_norway::from_str(text).map_err(|e| Error::parse(file, e))?;
    let root = match doc {
        Value::Null => return Ok(Vec::new()),
        Value::Mapping(m) => m,
        _ => return Err(Error::invalid(file, "top level is not a mapping")),
    };
    match root.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Mapping(m)) => m
            .iter()
            .map(|(k, v)| match k {
                Value::String(s) => Ok((Some(s.clone()), v.clone())),
                Value::Number(n) => Ok((Some(n.to_string()), v.clone())),
                _ => Err(Error::invalid(
                    file,
                    format!("a key under `{key}` is not a string"),
                )),
            })
            .collect(),
        Some(Value::Sequence(list)) => Ok(list.iter().map(|v| (None, v.clone())).collect()),
        Some(_) => Err(Error::invalid(
            file,
            format!("`{key}` is neither a map nor a list"),
        )),
    }
}
