//! What the guard reads of a JSON-RPC request before deciding on it:
//! whether it may pass without a credential, its method and tool as
//! bounded metric labels, and the request id its log line and answer carry.

use axum::http::{HeaderMap, HeaderName};

use crate::http::envelope::{Body as MessageBody, Envelope};
use crate::tools::{self, AUTHENTICATE_USER};

/// Methods a client may call before it holds a credential.
fn is_public(method: &str, tool: Option<&str>) -> bool {
    matches!(method, "initialize" | "ping" | "server/discover")
        || method.starts_with("notifications/")
        || (method == "tools/call" && tool == Some(AUTHENTICATE_USER))
}

/// Whether `msg` may pass without a token, given the tool it names.
fn message_is_public(msg: &Envelope, tool: Option<&str>) -> bool {
    msg.method.as_deref().is_some_and(|m| is_public(m, tool))
}

/// What the guard needs to know of a JSON-RPC body: whether it may pass
/// without a token, and its method and tool as bounded metric labels.
pub(crate) struct Inspected {
    pub public: bool,
    pub method: &'static str,
    pub tool: &'static str,
}

pub(crate) fn inspect(body: &MessageBody) -> Inspected {
    match body {
        MessageBody::One(one) => {
            // The tool is read from the params once, for both uses.
            let tool = one.tool();
            Inspected {
                public: message_is_public(one, tool.as_deref()),
                method: label_of(one.method.as_deref(), KNOWN_METHODS, "none"),
                tool: label_of(tool.as_deref(), tools::names(), ""),
            }
        }
        MessageBody::Batch(batch) => Inspected {
            // A batch passes without a token only if every message in it may.
            public: !batch.is_empty()
                && batch
                    .iter()
                    .all(|m| message_is_public(m, m.tool().as_deref())),
            method: "batch",
            tool: "",
        },
        MessageBody::Invalid => Inspected {
            public: false,
            method: "invalid",
            tool: "",
        },
    }
}

/// JSON-RPC methods that may appear as metric labels.
const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
];

fn label_of(
    value: Option<&str>,
    known: &'static [&'static str],
    none: &'static str,
) -> &'static str {
    match value {
        None => none,
        Some(v) if v.starts_with("notifications/") => "notification",
        Some(v) => known.iter().find(|k| **k == v).copied().unwrap_or("other"),
    }
}

pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The `X-Request-Id` to use: the client's if it is sane, else a new one.
pub(crate) fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(new_request_id)
}

/// 16 random lowercase hex digits.
fn new_request_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let n = rand::random::<u64>();
    (0..16)
        .rev()
        .map(|i| char::from(HEX[((n >> (i * 4)) & 0xf) as usize]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inspect(body: &[u8]) -> Inspected {
        super::inspect(&MessageBody::parse(body))
    }

    #[test]
    fn only_the_handshake_and_login_are_public() {
        assert!(inspect(br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#).public);
        assert!(inspect(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).public);
        assert!(inspect(br#"{"jsonrpc":"2.0","id":1,"method":"server/discover"}"#).public);
        assert!(inspect(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"authenticate_user","arguments":{}}}"#
        ).public);
        assert!(!inspect(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_knowledgebase"}}"#
        ).public);
        assert!(!inspect(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).public);
        assert!(!inspect(
            br#"[{"jsonrpc":"2.0","id":1,"method":"initialize"},{"jsonrpc":"2.0","id":2,"method":"tools/list"}]"#
        ).public);
        assert!(!inspect(b"[]").public);
        assert!(!inspect(b"not json").public);
    }

    #[test]
    fn new_request_ids_are_16_hex_digits_and_differ() {
        let (a, b) = (new_request_id(), new_request_id());
        assert_eq!(a.len(), 16);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }
}
