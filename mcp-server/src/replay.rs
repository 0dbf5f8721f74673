//! Replayed answers for the requests whose answer never changes.
//!
//! `tools/list` and `ping` get the same result every time from a given
//! server: the tool set is fixed at start-up and neither depends on the
//! caller. rmcp's stateless mode still builds a service, spawns a task and
//! serialises the tool schemas for each one, which costs several times what
//! the HTTP exchange does. So the first such request goes to rmcp as usual,
//! and its answer's `result` is kept; later requests that rmcp would see as
//! the same get that result back under their own `id`, byte for byte what
//! rmcp would have sent.
//!
//! "The same" is strict: same method and params, and the same values of every
//! header rmcp looks at (`Host`, `Accept`, `Content-Type`,
//! `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`). A request with an
//! `Origin`, a session or resumption header, any other `Mcp-*` header, a
//! repeated header or an id rmcp would rewrite is never replayed. Only a
//! plain 200 JSON answer carrying a `result` is learned, so anything rmcp
//! rejects keeps being rejected by rmcp. The table is small and bounded:
//! when full, it is emptied and learned again.

use std::collections::HashMap;
use std::sync::RwLock;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

/// Methods whose result is replayed.
const METHODS: &[&str] = &["tools/list", "ping"];
/// Headers whose values are part of what rmcp decides on.
const KEY_HEADERS: &[&str] = &[
    "host",
    "accept",
    "content-type",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
];
/// Distinct keys kept before the table is emptied.
const MAX_ENTRIES: usize = 32;

/// What identifies an answer: method, params and rmcp's headers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key(Vec<u8>);

/// A request that may be answered from the table: its key and its id as
/// rmcp would write it back.
#[derive(Debug)]
pub struct Replayable {
    key: Key,
    id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Plain {
    jsonrpc: String,
    id: Value,
    method: String,
    #[serde(default, deserialize_with = "present")]
    params: Option<Value>,
}

/// `"params": null` is kept apart from no params at all.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl Replayable {
    /// `Some` if this request's answer may come from the table. `method` is
    /// the already-parsed method label, so most requests cost no second parse.
    pub fn of(method: &str, headers: &HeaderMap, body: &[u8]) -> Option<Replayable> {
        if !METHODS.contains(&method) {
            return None;
        }
        let plain: Plain = serde_json::from_slice(body).ok()?;
        if plain.jsonrpc != "2.0" || plain.method != method {
            return None;
        }
        let id = match &plain.id {
            Value::Number(n) => n.as_i64()?.to_string(),
            Value::String(s) => serde_json::to_string(s).ok()?,
            _ => return None,
        };
        let mut key = Vec::with_capacity(256);
        key.extend_from_slice(method.as_bytes());
        key.push(0);
        if let Some(params) = &plain.params {
            key.extend_from_slice(&serde_json::to_vec(params).ok()?);
        }
        for (name, _) in headers {
            let n = name.as_str();
            let keyed = KEY_HEADERS.contains(&n);
            if !keyed && (n == "origin" || n == "last-event-id" || n.starts_with("mcp-")) {
                return None;
            }
        }
        for name in KEY_HEADERS {
            let mut values = headers.get_all(*name).iter();
            key.push(0);
            if let Some(v) = values.next() {
                if values.next().is_some() {
                    return None;
                }
                key.push(1);
                key.extend_from_slice(v.as_bytes());
            }
        }
        Some(Replayable { key: Key(key), id })
    }
}

/// What rmcp answered: its headers and the `result` value.
struct Learned {
    headers: HeaderMap,
    result: Bytes,
}

/// Results learned from rmcp, by key.
#[derive(Default)]
pub struct Replies(RwLock<HashMap<Key, Learned>>);

impl Replies {
    /// The answer to `r` if it has been learned.
    pub fn answer(&self, r: &Replayable) -> Option<Response> {
        let (headers, result) = {
            let table = self.0.read().ok()?;
            let learned = table.get(&r.key)?;
            (learned.headers.clone(), learned.result.clone())
        };
        let mut body = Vec::with_capacity(result.len() + r.id.len() + 40);
        body.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
        body.extend_from_slice(r.id.as_bytes());
        body.extend_from_slice(br#","result":"#);
        body.extend_from_slice(&result);
        body.push(b'}');
        let mut response = Response::new(Body::from(body));
        *response.headers_mut() = headers;
        Some(response)
    }

    /// Learn from rmcp's answer to `r`, if it is a plain JSON result.
    pub fn learn(&self, r: Replayable, status: StatusCode, headers: &HeaderMap, body: &[u8]) {
        let json = headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes() == b"application/json");
        if status != StatusCode::OK || !json {
            return;
        }
        let prefix = format!(r#"{{"jsonrpc":"2.0","id":{},"result":"#, r.id);
        let Some(result) = body
            .strip_prefix(prefix.as_bytes())
            .and_then(|rest| rest.strip_suffix(b"}"))
        else {
            return;
        };
        // The result must be one JSON value on its own, or it is not learned.
        if serde_json::from_slice::<serde::de::IgnoredAny>(result).is_err() {
            return;
        }
        if let Ok(mut table) = self.0.write() {
            if table.len() >= MAX_ENTRIES && !table.contains_key(&r.key) {
                table.clear();
            }
            let mut headers = headers.clone();
            headers.remove(header::CONTENT_LENGTH);
            let learned = Learned {
                headers,
                result: Bytes::copy_from_slice(result),
            };
            table.insert(r.key, learned);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::headers;
    use axum::http::HeaderValue;

    const BASE: &[(&str, &str)] = &[
        ("host", "127.0.0.1:8080"),
        ("accept", "application/json, text/event-stream"),
        ("content-type", "application/json"),
        ("authorization", "Bearer x"),
        ("user-agent", "curl"),
    ];

    #[test]
    fn only_plain_requests_with_known_headers_are_replayable() {
        let h = headers(BASE);
        let list = br#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#;
        assert!(Replayable::of("tools/list", &h, list).is_some());
        assert!(Replayable::of("tools/call", &h, list).is_none());
        for body in [
            &br#"{"jsonrpc":"2.0","id":1.5,"method":"tools/list"}"#[..],
            br#"{"jsonrpc":"2.0","id":1e2,"method":"tools/list"}"#,
            br#"{"jsonrpc":"2.0","id":null,"method":"tools/list"}"#,
            br#"{"jsonrpc":"2.0","method":"tools/list"}"#,
            br#"{"jsonrpc":"1.0","id":1,"method":"tools/list"}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","extra":1}"#,
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]"#,
        ] {
            assert!(
                Replayable::of("tools/list", &h, body).is_none(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        for extra in [
            ("origin", "http://x"),
            ("mcp-session-id", "s"),
            ("last-event-id", "1"),
        ] {
            let mut h = headers(BASE);
            h.append(extra.0, HeaderValue::from_static(extra.1));
            assert!(
                Replayable::of("tools/list", &h, list).is_none(),
                "{extra:?}"
            );
        }
        let mut twice = headers(BASE);
        twice.append("accept", HeaderValue::from_static("*/*"));
        assert!(Replayable::of("tools/list", &twice, list).is_none());
    }

    #[tokio::test]
    async fn keys_separate_params_and_headers_and_ids_are_written_back() {
        let h = headers(BASE);
        let key = |h: &HeaderMap, body: &[u8]| Replayable::of("tools/list", h, body).map(|r| r.key);
        let plain = key(&h, br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
        assert_eq!(
            plain,
            key(&h, br#"{"id":"a","method":"tools/list","jsonrpc":"2.0"}"#)
        );
        assert_ne!(
            plain,
            key(
                &h,
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#
            )
        );
        assert_ne!(
            plain,
            key(
                &h,
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":null}"#
            )
        );
        let mut v = headers(BASE);
        v.append(
            "mcp-protocol-version",
            HeaderValue::from_static("2025-06-18"),
        );
        assert_ne!(
            plain,
            key(&v, br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        );
        let mut other_host = headers(&BASE[1..]);
        other_host.append("host", HeaderValue::from_static("evil.example"));
        assert_ne!(
            plain,
            key(
                &other_host,
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#
            )
        );

        let replies = Replies::default();
        let first = Replayable::of(
            "tools/list",
            &h,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        )
        .unwrap();
        let again = Replayable::of(
            "tools/list",
            &h,
            br#"{"jsonrpc":"2.0","id":"q\"1","method":"tools/list"}"#,
        )
        .unwrap();
        assert!(replies.answer(&again).is_none());
        let json = headers(&[("content-type", "application/json")]);
        // Not learned: an error status, another content type, an error body.
        let result = br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#;
        replies.learn(clone(&first), StatusCode::BAD_REQUEST, &json, result);
        replies.learn(
            clone(&first),
            StatusCode::OK,
            &headers(&[("content-type", "text/event-stream")]),
            result,
        );
        replies.learn(
            clone(&first),
            StatusCode::OK,
            &json,
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-1}}"#,
        );
        assert!(replies.answer(&again).is_none());
        replies.learn(first, StatusCode::OK, &json, result);
        let answer = replies.answer(&again).unwrap();
        let body = http_body_util::BodyExt::collect(answer.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(
            &body[..],
            br#"{"jsonrpc":"2.0","id":"q\"1","result":{"tools":[]}}"#
        );
    }

    fn clone(r: &Replayable) -> Replayable {
        Replayable {
            key: r.key.clone(),
            id: r.id.clone(),
        }
    }
}
