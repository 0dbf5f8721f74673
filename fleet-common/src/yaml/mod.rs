//! The one shape both auth files share: a top-level key holding either a map
//! (`id: {fields}`) or a list (`- {fields}`) of entries. Reading them, and
//! editing one while keeping everything else in the document; and how any
//! YAML error of the fleet is told ([`describe`]).
//!
//! Errors never quote the file's content. YAML parsers quote the offending
//! value (`invalid type: string "<the value>"`), and in these files the
//! offending value is often a secret pasted into the wrong field, shown on an
//! unauthenticated `/health` and in logs. [`error`] keeps the file, the line
//! and column, the path of keys and what was expected, and replaces the
//! value by its kind ("a string").
//!
//! A file with no entries at all must say so: an empty document, one of
//! comments only, or a `tokens:` with nothing under it is what a truncated
//! write leaves, and loading it would silently revoke every credential.
//! `tokens: {}` (or `[]`) loads an empty file on purpose.
//!
//! Every YAML document the fleet reads is parsed through [`from_str`] or
//! `entries`, which first refuse nesting deeper than
//! [`nesting::MAX_DEPTH`] ([`nesting`]): parsers take time that grows
//! faster than the depth, and a few hundred kilobytes of `[[[[` would hold
//! a reload, a sync or a start-up for minutes.

pub mod nesting;

use std::fmt;
use std::marker::PhantomData;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_norway::Value;

use crate::{Error, Result};

/// One entry under the top-level key.
pub(crate) struct Entry<T> {
    /// Its map key; `None` for a list item.
    pub key: Option<String>,
    /// 1-based position in the document, for messages.
    pub position: usize,
    pub value: T,
}

/// The entries under `key`, in document order, each deserialized as `T`.
/// Refuses a document without a `key:` holding a map or a list, so that an
/// empty or truncated file is an error rather than "no credentials".
pub(crate) fn entries<T: DeserializeOwned>(
    file: &'static str,
    text: &str,
    key: &'static str,
) -> Result<Vec<Entry<T>>> {
    let empty = || {
        Error::invalid(
            file,
            format!(
                "no `{key}:` entries: an empty, truncated or comment-only file is refused \
                 so that a bad write cannot lock everyone out; write `{key}: {{}}` to load \
                 a file with none on purpose"
            ),
        )
    };
    if text.trim().is_empty() {
        return Err(empty());
    }
    if let Some(why) = too_deep(text) {
        return Err(Error::Parse { file, message: why });
    }
    let de = serde_norway::Deserializer::from_str(text);
    let found = DocSeed::<T> {
        key,
        marker: PhantomData,
    }
    .deserialize(de)
    .map_err(|e| error(file, &e))?;
    found.ok_or_else(empty)
}

/// `text` as `T`: refused at once if it nests deeper than
/// [`nesting::MAX_DEPTH`], else parsed; the error is [`describe`]'s (a
/// location and what was expected, never a value).
pub fn from_str<T: DeserializeOwned>(text: &str) -> std::result::Result<T, String> {
    if let Some(why) = too_deep(text) {
        return Err(why);
    }
    serde_norway::from_str(text).map_err(|e| describe(&e))
}

/// What is wrong with `text` if it nests too deep.
fn too_deep(text: &str) -> Option<String> {
    let max = nesting::MAX_DEPTH;
    nesting::check(text.as_bytes(), max).err().map(|at| {
        format!(
            "line {} column {}: lists and mappings nested more than {max} deep; no file of \
             the fleet needs more than a few levels",
            at.line, at.column
        )
    })
}

/// A parse error of `file`, located and without any value from the file.
pub(crate) fn error(file: &'static str, err: &serde_norway::Error) -> Error {
    Error::Parse {
        file,
        message: describe(err),
    }
}

/// A YAML error as `line L column C: <what was expected>`, with any value
/// the parser quoted replaced by its kind. For every YAML file the fleet
/// reads (data files, the server's config, the sync manifest): any of them
/// may hold a secret in the wrong place.
pub fn describe(err: &serde_norway::Error) -> String {
    let mut text = err.to_string();
    let location = err.location();
    if let Some(l) = &location {
        let suffix = format!(" at line {} column {}", l.line(), l.column());
        if let Some(i) = text.find(&suffix) {
            text.replace_range(i..i + suffix.len(), "");
        }
    }
    let what = redact(&text);
    match location {
        Some(l) => format!("line {} column {}: {what}", l.line(), l.column()),
        None => what,
    }
}

/// serde's messages that quote a value, with the value replaced by its kind.
fn redact(message: &str) -> String {
    const EXPECTED: &str = ", expected ";
    for marker in ["invalid type: ", "invalid value: "] {
        if let Some(start) = message.find(marker) {
            let rest = &message[start + marker.len()..];
            // The value is quoted and escaped, and could itself contain
            // ", expected ": what serde expected is after the last one.
            let (found, expected) = match rest.rfind(EXPECTED) {
                Some(i) => (&rest[..i], Some(&rest[i + EXPECTED.len()..])),
                None => (rest, None),
            };
            let head = &message[..start + marker.len()];
            return match expected {
                Some(e) => format!("{head}{}, expected {e}", kind_of(found)),
                None => format!("{head}{}", kind_of(found)),
            };
        }
    }
    if let Some(start) = message.find("unknown variant `") {
        let tail = message[start..]
            .find("`, expected ")
            .map(|i| &message[start + i + 1..])
            .unwrap_or("");
        return format!("{}unknown variant{tail}", &message[..start]);
    }
    message.to_string()
}

/// The kind of a value as serde's `Unexpected` writes it, without the value.
fn kind_of(found: &str) -> &'static str {
    match found.split([' ', '`', '"']).next().unwrap_or("") {
        "string" => "a string",
        "integer" => "an integer",
        "floating" => "a number",
        "boolean" => "a boolean",
        "character" => "a character",
        "unit" => "null",
        "sequence" => "a list",
        "map" => "a mapping",
        "byte" => "bytes",
        _ => "a value",
    }
}

/// The whole document: a mapping in which only `key` matters.
struct DocSeed<T> {
    key: &'static str,
    marker: PhantomData<T>,
}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for DocSeed<T> {
    type Value = Option<Vec<Entry<T>>>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for DocSeed<T> {
    type Value = Option<Vec<Entry<T>>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a mapping with a `{}:` key", self.key)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found: Option<Option<Vec<Entry<T>>>> = None;
        while let Some(name) = map.next_key::<KeyText>()? {
            if name.0.as_deref() == Some(self.key) {
                if found.is_some() {
                    return Err(de::Error::custom(format!("`{}:` appears twice", self.key)));
                }
                found = Some(map.next_value_seed(EntriesSeed::<T>(PhantomData))?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found.flatten())
    }

    // Any other top-level value: say what it is, never what it holds.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(not_a("a boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Err(not_a("an integer"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Err(not_a("an integer"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Err(not_a("a number"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Err(not_a("a string"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(not_a("a list"))
    }
}

fn not_a<E: de::Error>(found: &str) -> E {
    E::custom(format!("found {found} where a mapping was expected"))
}

/// A map (`name: {fields}`) or a list (`- {fields}`) of entries anywhere
/// in a document, in document order; null is none.
pub(crate) struct EntryList<T>(pub Vec<Entry<T>>);

impl<'de, T: DeserializeOwned> de::Deserialize<'de> for EntryList<T> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        EntriesSeed::<T>(PhantomData)
            .deserialize(d)
            .map(|found| EntryList(found.unwrap_or_default()))
    }
}

/// The map or list under the top-level key; `None` if it is null.
struct EntriesSeed<T>(PhantomData<T>);

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for EntriesSeed<T> {
    type Value = Option<Vec<Entry<T>>>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for EntriesSeed<T> {
    type Value = Option<Vec<Entry<T>>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map or a list of entries")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(KeyText(key)) = map.next_key::<KeyText>()? {
            let Some(key) = key else {
                return Err(de::Error::custom("an entry's key is not a name"));
            };
            let value: T = map.next_value()?;
            out.push(Entry {
                key: Some(key),
                position: out.len() + 1,
                value,
            });
        }
        Ok(Some(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(value) = seq.next_element::<T>()? {
            out.push(Entry {
                key: None,
                position: out.len() + 1,
                value,
            });
        }
        Ok(Some(out))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(E::custom(
            "found a boolean where a map or list of entries was expected",
        ))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Err(E::custom(
            "found an integer where a map or list of entries was expected",
        ))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Err(E::custom(
            "found an integer where a map or list of entries was expected",
        ))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Err(E::custom(
            "found a number where a map or list of entries was expected",
        ))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Err(E::custom(
            "found a string where a map or list of entries was expected",
        ))
    }
}

/// A mapping key as text: strings and numbers are names; anything else
/// (a list or mapping used as a key) is `None`.
struct KeyText(Option<String>);

impl<'de> de::Deserialize<'de> for KeyText {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = KeyText;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyText, E> {
        Ok(KeyText(Some(v.to_string())))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeyText, E> {
        Ok(KeyText(Some(v.to_string())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeyText, E> {
        Ok(KeyText(Some(v.to_string())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeyText, E> {
        Ok(KeyText(Some(v.to_string())))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<KeyText, E> {
        Ok(KeyText(Some(v.to_string())))
    }
    fn visit_unit<E: de::Error>(self) -> Result<KeyText, E> {
        Ok(KeyText(None))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeyText, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(KeyText(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyText, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(KeyText(None))
    }
}

/// Text in an entry's field: a string, or a plain number or boolean taken as
/// written (pgEdge files may say `annotation: 2024`). A list or mapping is
/// refused without being quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Text(pub String);

impl<'de> de::Deserialize<'de> for Text {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked_text(d, |s| Ok(Text(s)))
    }
}

/// Deserialize a field as [`Text`] and check it with `check`, whose error
/// (a fixed message, never the value) is reported at the field's own line
/// and column.
pub(crate) fn checked_text<'de, D, T>(
    d: D,
    check: impl FnOnce(String) -> Result<T, &'static str>,
) -> Result<T, D::Error>
where
    D: de::Deserializer<'de>,
{
    struct V<F>(F);
    impl<F> V<F> {
        fn done<T, E: de::Error>(self, s: String) -> Result<T, E>
        where
            F: FnOnce(String) -> Result<T, &'static str>,
        {
            (self.0)(s).map_err(E::custom)
        }
    }
    impl<'de, T, F: FnOnce(String) -> Result<T, &'static str>> Visitor<'de> for V<F> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("text")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            self.done(v.to_string())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
            self.done(v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
            self.done(v.to_string())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
            self.done(v.to_string())
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
            self.done(v.to_string())
        }
    }
    d.deserialize_any(V(check))
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
        from_str(existing).map_err(|message| Error::Parse { file, message })?
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
    serde_norway::to_string(&doc).map_err(|e| error(file, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct E {
        #[serde(default)]
        n: Option<u32>,
    }

    #[test]
    fn values_never_appear_in_errors() {
        for (doc, want) in [
            (
                "tokens:\n  t1: SECRET-VALUE-1\n",
                "line 2 column 7: tokens.t1: invalid type: a string, expected struct E",
            ),
            (
                "tokens:\n  - SECRET-VALUE-1\n",
                "line 2 column 5: tokens[0]: invalid type: a string, expected struct E",
            ),
            (
                "tokens:\n  t1:\n    n: SECRET-VALUE-1\n",
                "line 3 column 8: tokens.t1.n: invalid type: a string, expected u32",
            ),
            (
                "tokens: SECRET-VALUE-1\n",
                "found a string where a map or list of entries was expected",
            ),
            (
                "SECRET-VALUE-1\n",
                "found a string where a mapping was expected",
            ),
            (
                "tokens:\n  t1: {n: \"SECRET-VALUE-1\\\", expected x\"}\n",
                "invalid type: a string, expected u32",
            ),
        ] {
            let err = entries::<E>("tokens.yaml", doc, "tokens")
                .err()
                .unwrap_or_else(|| panic!("{doc:?} parsed"))
                .to_string();
            assert!(!err.contains("SECRET"), "{doc:?} → {err}");
            assert!(err.starts_with("tokens.yaml: "), "{err}");
            assert!(err.contains(want), "{doc:?} → {err}");
        }
    }

    #[test]
    fn syntax_errors_are_located() {
        let err = entries::<E>("tokens.yaml", "tokens:\n  a: [1,\n  b: 2\n", "tokens")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("tokens.yaml: line "), "{err}");
    }

    #[test]
    fn empty_files_are_refused_unless_explicit() {
        for doc in [
            "",
            "  \n",
            "# only a comment\n",
            "tokens:\n",
            "tokens: ~\n",
            "other: 1\n",
        ] {
            let err = entries::<E>("tokens.yaml", doc, "tokens")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("tokens: {}"), "{doc:?} → {err}");
        }
        for doc in ["tokens: {}\n", "tokens: []\n"] {
            assert!(
                entries::<E>("tokens.yaml", doc, "tokens")
                    .unwrap()
                    .is_empty()
            );
        }
        let e = entries::<E>(
            "tokens.yaml",
            "x: 1\ntokens:\n  5: {n: 2}\n  b: {}\n",
            "tokens",
        )
        .unwrap();
        assert_eq!(e[0].key.as_deref(), Some("5"));
        assert_eq!(e[0].value.n, Some(2));
        assert_eq!(e[1].position, 2);
        let twice = entries::<E>("tokens.yaml", "tokens: {}\ntokens: {}\n", "tokens");
        assert!(twice.is_err());
    }
}
