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
        match bytes.trim_ascii_start().first() {
            Some(b'[') => serde_json::from_slice(bytes).map_or(Body::Invalid, Body::Batch),
            _ => serde_json::from_slice(bytes).map_or(Body::Invalid, Body::One),
        }
    }
}

impl Envelope<'_> {
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
