//! The one shape both auth files share: a top-level key holding either a map
//! (`id: {fields}`) or a list (`- {fields}`) of entries. Reading them, and
//! editing one while keeping everything else in the document.

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

/// Edit the entries under `key` of a YAML document (an empty text is an
/// empty document): `change` gets the map or list, created as an empty map
/// if missing or null, and every other key and field is kept. Returns the
/// new text; the caller checks it parses.
pub(crate) fn edit(
    file: &'static str,
    existing: &str,
    key: &str,
    change: impl FnOnce(&mut Value) -> Result<()>,
) -> Result<String> {
    use serde_norway::Mapping;
    let mut doc: Value = if existing.trim().is_empty() {
        Value::Mapping(Mapping::new())
    } else {
        serde_norway::from_str(existing).map_err(|e| Error::parse(file, e))?
    };
    let root = doc
        .as_mapping_mut()
        .ok_or_else(|| Error::invalid(file, "top level is not a mapping"))?;
    let entries = root
        .entry(key.into())
        .or_insert(Value::Mapping(Mapping::new()));
    if entries.is_null() {
        *entries = Value::Mapping(Mapping::new());
    }
    change(entries)?;
    serde_norway::to_string(&doc).map_err(|e| Error::parse(file, e))
}
