//! One parse of a JSON-RPC request body: the envelope of each message, with
//! `id` and `params` kept as the raw JSON text they arrived as.
//!
//! The guard needs the method and tool (to let the handshake through without
//! a token and to label metrics) and the replay table needs the id, the
//! params and whether anything else was sent. All of it comes from this one
//! borrowing parse, so a request body is parsed once before rmcp sees it.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, Error, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The top-level members of one JSON-RPC message.
#[derive(Debug, Default)]
pub struct Envelope<'a> {
    pub jsonrpc: Option<Cow<'a, str>>,
    pub id: Option<&'a RawValue>,
    pub method: Option<Cow<'a, str>>,
    pub params: Option<&'a RawValue>,
    /// A member other than those four. (One of them twice fails the parse.)
    pub other_members: bool,
}

/// A request body: one message, a batch, or something else.
#[derive(Debug)]
pub enum Body<'a> {
    One(Envelope<'a>),
    Batch(Vec<Envelope<'a>>),
    Invalid,
}

impl<'a> Body<'a> {
    pub fn parse(bytes: &'a [u8]) -> Body<'a> {
        // JSON is UTF-8 throughout; members this parse skips are not decoded,
        // so check it for the whole body (rmcp decodes every member).
        let Ok(text) = std::str::from_utf8(bytes) else {
            return Body::Invalid;
        };
        match text.trim_start().as_bytes().first() {
            Some(b'[') => serde_json::from_str(text).map_or(Body::Invalid, Body::Batch),
            _ => serde_json::from_str(text).map_or(Body::Invalid, Body::One),
        }
    }
}

impl Envelope<'_> {
    /// Check the shape of the params of the MCP methods that take some, as
    /// the MCP schema defines them. rmcp answers params it cannot decode
    /// with "method not found" (-32601); a client deserves "invalid params"
    /// (-32602) and to be told which. Other methods pass unchecked.
    pub fn check_params(&self) -> Result<(), String> {
        let Some(method) = self.method.as_deref() else {
            return Ok(());
        };
        let Some(fields) = PARAMS.iter().find(|(m, _)| *m == method).map(|(_, f)| *f) else {
            return Ok(());
        };
        let required = fields.iter().any(|f| f.required);
        let raw = match self.params.map(RawValue::get) {
            None | Some("null") if !required => return Ok(()),
            None | Some("null") => return Err(format!("{method} needs params")),
            Some(raw) => raw,
        };
        let members: std::collections::BTreeMap<Cow<'_, str>, &RawValue> =
            serde_json::from_str(raw).map_err(|_| "params must be an object".to_string())?;
        for field in fields {
            match members.get(field.name).map(|v| Kind::of(v.get())) {
                None | Some(Kind::Null) if !field.required => {}
                None => return Err(format!("`{}` is required", field.name)),
                Some(kind) if kind == field.kind => {}
                Some(_) => {
                    return Err(format!("`{}` must be {}", field.name, field.kind.name()));
                }
            }
        }
        Ok(())
    }

    /// The tool a `tools/call` names, if any.
    pub fn tool(&self) -> Option<Cow<'_, str>> {
        #[derive(serde::Deserialize)]
        struct Params<'p> {
            #[serde(default, borrow)]
            name: Option<Cow<'p, str>>,
        }
        if self.method.as_deref() != Some("tools/call") {
            return None;
        }
        let params: Params = serde_json::from_str(self.params?.get()).ok()?;
        params.name
    }
}

/// A member of a method's params, as the MCP schema types it.
struct Field {
    name: &'static str,
    kind: Kind,
    required: bool,
}

const fn field(name: &'static str, kind: Kind, required: bool) -> Field {
    Field {
        name,
        kind,
        required,
    }
}

/// The params checked per method. `initialize` is left to rmcp, whose
/// reading of the handshake real clients are tested against.
const PARAMS: &[(&str, &[Field])] = &[
    (
        "tools/call",
        &[
            field("name", Kind::String, true),
            field("arguments", Kind::Object, false),
        ],
    ),
    (
        "prompts/get",
        &[
            field("name", Kind::String, true),
            field("arguments", Kind::Object, false),
        ],
    ),
    ("resources/read", &[field("uri", Kind::String, true)]),
    ("resources/subscribe", &[field("uri", Kind::String, true)]),
    ("resources/unsubscribe", &[field("uri", Kind::String, true)]),
    ("logging/setLevel", &[field("level", Kind::String, true)]),
    (
        "completion/complete",
        &[
            field("ref", Kind::Object, true),
            field("argument", Kind::Object, true),
        ],
    ),
    ("tools/list", &[field("cursor", Kind::String, false)]),
    ("prompts/list", &[field("cursor", Kind::String, false)]),
    ("resources/list", &[field("cursor", Kind::String, false)]),
    (
        "resources/templates/list",
        &[field("cursor", Kind::String, false)],
    ),
    ("ping", &[]),
];

/// The JSON type of a raw value, read from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Object,
    Other,
    Null,
}

impl Kind {
    fn of(raw: &str) -> Kind {
        match raw.trim_start().as_bytes().first() {
            Some(b'"') => Kind::String,
            Some(b'{') => Kind::Object,
            Some(b'n') => Kind::Null,
            _ => Kind::Other,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Object => "an object",
            Kind::Other | Kind::Null => "a value",
        }
    }
}

/// The members looked at; the name is matched without allocating.
#[derive(serde::Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Member {
    Jsonrpc,
    Id,
    Method,
    Params,
    #[serde(other)]
    Other,
}

/// A string borrowed from the body unless it holds escapes.
#[derive(serde::Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Envelope<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = Envelope<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON-RPC message object")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Envelope<'de>, M::Error> {
                let mut e = Envelope::default();
                while let Some(member) = map.next_key::<Member>()? {
                    // A repeated member is an error, as for rmcp's own parse.
                    let again = match member {
                        Member::Jsonrpc => e.jsonrpc.replace(map.next_value::<Text>()?.0).is_some(),
                        Member::Id => e.id.replace(map.next_value()?).is_some(),
                        Member::Method => e.method.replace(map.next_value::<Text>()?.0).is_some(),
                        Member::Params => e.params.replace(map.next_value()?).is_some(),
                        Member::Other => {
                            map.next_value::<IgnoredAny>()?;
                            e.other_members = true;
                            false
                        }
                    };
                    if again {
                        return Err(M::Error::custom("a member appears twice"));
                    }
                }
                Ok(e)
            }
        }
        d.deserialize_map(Members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(json: &str) -> Envelope<'_> {
        match Body::parse(json.as_bytes()) {
            Body::One(e) => e,
            other => panic!("{json}: {other:?}"),
        }
    }

    #[test]
    fn params_are_checked_against_the_mcp_schema() {
        let check = |json: &str| one(json).check_params();
        assert!(
            check(r#"{"method":"tools/call","params":{"name":"x","arguments":{"q":1}}}"#).is_ok()
        );
        assert!(check(r#"{"method":"tools/call","params":{"name":"x","arguments":null}}"#).is_ok());
        assert!(check(r#"{"method":"tools/call","params":{"name":"x"}}"#).is_ok());
        for (bad, why) in [
            (
                r#"{"method":"tools/call","params":{"name":"x","arguments":"hi"}}"#,
                "`arguments` must be an object",
            ),
            (
                r#"{"method":"tools/call","params":{"name":123}}"#,
                "`name` must be a string",
            ),
            (
                r#"{"method":"tools/call","params":{}}"#,
                "`name` is required",
            ),
            (r#"{"method":"tools/call"}"#, "needs params"),
            (
                r#"{"method":"tools/call","params":"x"}"#,
                "must be an object",
            ),
            (r#"{"method":"tools/list","params":5}"#, "must be an object"),
            (
                r#"{"method":"tools/list","params":{"cursor":5}}"#,
                "`cursor` must be a string",
            ),
            (
                r#"{"method":"resources/read","params":{"uri":5}}"#,
                "`uri` must be a string",
            ),
            (r#"{"method":"ping","params":[1]}"#, "must be an object"),
        ] {
            assert_eq!(
                check(bad).err().as_deref().map(|e| e.contains(why)),
                Some(true),
                "{bad}"
            );
        }
        assert!(check(r#"{"method":"tools/list"}"#).is_ok());
        assert!(check(r#"{"method":"ping","params":{"_meta":{}}}"#).is_ok());
        assert!(
            check(r#"{"method":"initialize","params":5}"#).is_ok(),
            "left to rmcp"
        );
        assert!(
            check(r#"{"method":"vendor/thing","params":5}"#).is_ok(),
            "unknown methods pass"
        );
    }

    #[test]
    fn members_are_kept_raw_and_extras_are_noticed() {
        let e = one(
            r#"{"jsonrpc":"2.0","id": "a\"b" ,"method":"tools/call","params":{"name":"x\u0079","arguments":{"q":[1,2]}}}"#,
        );
        assert!(matches!(e.jsonrpc, Some(Cow::Borrowed("2.0"))));
        assert_eq!(e.id.map(RawValue::get), Some(r#""a\"b""#));
        assert_eq!(e.method.as_deref(), Some("tools/call"));
        assert_eq!(e.tool().as_deref(), Some("xy"));
        assert!(!e.other_members);
        let escaped = one(r#"{"\u006dethod":"tools\/list"}"#);
        assert_eq!(escaped.method.as_deref(), Some("tools/list"));
        assert!(one(r#"{"method":"ping","extra":1}"#).other_members);
        assert_eq!(
            one(r#"{"method":"tools/list","params":{"name":"x"}}"#).tool(),
            None
        );
        assert_eq!(one(r#"{"method":"tools/call","params":null}"#).tool(), None);
        assert_eq!(
            one(r#"{"method":"tools/call","params":null}"#)
                .params
                .map(RawValue::get),
            Some("null")
        );
        assert!(matches!(Body::parse(b" [{\"method\":\"ping\"}]"), Body::Batch(b) if b.len() == 1));
        for bad in [
            "",
            "[",
            "1",
            "\"x\"",
            "{\"method\":1}",
            "[1]",
            "{} x",
            "{\"method\":\"initialize\",\"method\":\"tools/list\"}",
        ] {
            assert!(
                matches!(Body::parse(bad.as_bytes()), Body::Invalid),
                "{bad}"
            );
        }
    }
}
