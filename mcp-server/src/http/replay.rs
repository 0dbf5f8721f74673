//! Replayed answers for the requests whose answer never changes.
//!
//! `tools/list` and `ping` get the same result every time from a given
//! server, `tools.yaml` generation and caller's permissions: the tool set
//! changes only when a new `tools.yaml` loads, whose catalog epoch is part
//! of the key (an answer learned for one catalog is never replayed for
//! another), and with the caller's permissions, whose fingerprint is part
//! of the key too, with the PostgreSQL roles its calls run as (empty for an
//! unrestricted caller without a role: every such credential shares one
//! answer; see [`crate::catalog::gate`] and [`crate::auth::Principal::fingerprint`]). rmcp's stateless mode still builds a service, spawns a task and
//! serialises the tool schemas for each one, which costs several times what
//! the HTTP exchange does. So the first such request goes to rmcp as usual,
//! and its answer's `result` is kept; later requests that rmcp would see as
//! the same get that result back under their own `id`, byte for byte what
//! rmcp would have sent.
//!
//! "The same" is strict: same catalog, same permissions, same method and
//! params, and the same values of every
//! header rmcp looks at (`Host`, `Accept`, `Content-Type`,
//! `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`). A request with an
//! `Origin`, a session or resumption header, any other `Mcp-*` header, a
//! repeated header or an id rmcp would rewrite is never replayed. Only a
//! plain 200 JSON answer carrying a `result` is learned, so anything rmcp
//! rejects keeps being rejected by rmcp. The table is small and bounded:
//! when full, it is emptied and learned again.

use std::sync::RwLock;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

use crate::http::envelope::Envelope;

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

/// What identifies an answer: catalog, permissions, method, params and
/// rmcp's headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(Vec<u8>);

/// A request that may be answered from the table: its key and its id as
/// rmcp would write it back.
#[derive(Debug)]
pub struct Replayable {
    key: Key,
    id: String,
}

impl Replayable {
    /// `Some` if the answer to this message may come from the table.
    /// `epoch` is the live catalog's ([`crate::catalog::Catalog::epoch`]),
    /// read before the request goes to rmcp, which answers from that
    /// catalog or a newer one. `permissions` is the caller's
    /// [`crate::auth::Principal::fingerprint`]: its permissions' and roles'
    /// (empty when unrestricted without a role, or without a credential). `varied` is
    /// [`crate::state::AppState::answers_vary_by_caller`], which decides
    /// the answer's `cacheScope`.
    pub fn of(
        msg: &Envelope,
        headers: &HeaderMap,
        epoch: u64,
        varied: bool,
        permissions: &[u8],
    ) -> Option<Replayable> {
        let method = msg.method.as_deref()?;
        if !METHODS.contains(&method) || msg.jsonrpc.as_deref() != Some("2.0") || msg.other_members
        {
            return None;
        }
        // The id as rmcp writes it back: a string re-escaped, or an integer
        // written as rmcp writes it (so not `-0`, which JSON parsers read as
        // a float).
        let raw = msg.id?.get();
        let id = if raw.starts_with('"') {
            serde_json::to_string(&serde_json::from_str::<String>(raw).ok()?).ok()?
        } else {
            Some(raw.parse::<i64>().ok()?.to_string()).filter(|id| id == raw)?
        };
        // Each header rmcp reads, at most once; no header that would make
        // rmcp look further.
        let mut keyed: [Option<&[u8]>; KEY_HEADERS.len()] = [None; KEY_HEADERS.len()];
        for (name, value) in headers {
            let n = name.as_str();
            match KEY_HEADERS.iter().position(|k| *k == n) {
                Some(i) if keyed[i].is_some() => return None,
                Some(i) => keyed[i] = Some(value.as_bytes()),
                None if n == "origin" || n == "last-event-id" || n.starts_with("mcp-") => {
                    return None;
                }
                None => {}
            }
        }
        // Params as sent: stricter than rmcp's view (whitespace counts),
        // never looser.
        let mut key = Vec::with_capacity(256 + permissions.len());
        key.extend_from_slice(&epoch.to_le_bytes());
        key.push(u8::from(varied));
        key.extend_from_slice(&(permissions.len() as u64).to_le_bytes());
        key.extend_from_slice(permissions);
        key.extend_from_slice(method.as_bytes());
        key.push(0);
        if let Some(params) = msg.params {
            key.push(1);
            key.extend_from_slice(params.get().as_bytes());
        }
        for value in keyed {
            key.push(0);
            if let Some(v) = value {
                key.push(1);
                key.extend_from_slice(v);
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

/// Results learned from rmcp, by key. A server sees a handful of distinct
/// keys, so a short list scanned in order beats hashing a key of a few
/// hundred bytes.
#[derive(Default)]
pub struct Replies(RwLock<Vec<(Key, Learned)>>);

impl Replies {
    /// The answer to `r` if it has been learned.
    pub fn answer(&self, r: &Replayable) -> Option<Response> {
        let (headers, result) = {
            let table = self.0.read().ok()?;
            let (_, learned) = table.iter().find(|(k, _)| *k == r.key)?;
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
            let mut headers = headers.clone();
            headers.remove(header::CONTENT_LENGTH);
            let learned = Learned {
                headers,
                result: Bytes::copy_from_slice(result),
            };
            if let Some(entry) = table.iter_mut().find(|(k, _)| *k == r.key) {
                entry.1 = learned;
                return;
            }
            if table.len() >= MAX_ENTRIES {
                table.clear();
            }
            table.push((r.key, learned));
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

    fn of(h: &HeaderMap, body: &[u8]) -> Option<Replayable> {
        match crate::http::envelope::Body::parse(body) {
            crate::http::envelope::Body::One(msg) => Replayable::of(&msg, h, 1, false, &[]),
            _ => None,
        }
    }

    #[test]
    fn only_plain_requests_with_known_headers_are_replayable() {
        let h = headers(BASE);
        let list = br#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#;
        assert!(of(&h, list).is_some());
        assert!(of(&h, br#"{"jsonrpc":"2.0","id":7,"method":"tools/call"}"#).is_none());
        for body in [
            &br#"{"jsonrpc":"2.0","id":1.5,"method":"tools/list"}"#[..],
            br#"{"jsonrpc":"2.0","id":1e2,"method":"tools/list"}"#,
            br#"{"jsonrpc":"2.0","id":-0,"method":"tools/list"}"#,
            br#"{"jsonrpc":"2.0","id":null,"method":"tools/list"}"#,
            br#"{"jsonrpc":"2.0","method":"tools/list"}"#,
            br#"{"jsonrpc":"1.0","id":1,"method":"tools/list"}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","extra":1}"#,
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]"#,
        ] {
            assert!(of(&h, body).is_none(), "{}", String::from_utf8_lossy(body));
        }
        for extra in [
            ("origin", "http://x"),
            ("mcp-session-id", "s"),
            ("last-event-id", "1"),
        ] {
            let mut h = headers(BASE);
            h.append(extra.0, HeaderValue::from_static(extra.1));
            assert!(of(&h, list).is_none(), "{extra:?}");
        }
        let mut twice = headers(BASE);
        twice.append("accept", HeaderValue::from_static("*/*"));
        assert!(of(&twice, list).is_none());
    }

    #[tokio::test]
    async fn keys_separate_params_and_headers_and_ids_are_written_back() {
        let h = headers(BASE);
        let key = |h: &HeaderMap, body: &[u8]| of(h, body).map(|r| r.key);
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
        // Another tools.yaml, another key: a list learned for one catalog
        // is never replayed for the next.
        let list = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        let next = match crate::http::envelope::Body::parse(list) {
            crate::http::envelope::Body::One(msg) => {
                Replayable::of(&msg, &h, 2, false, &[]).map(|r| r.key)
            }
            _ => None,
        };
        assert!(next.is_some());
        assert_ne!(plain, next);
        // Other permissions, another key: a list learned for one caller is
        // never replayed for a caller who may see other tools.
        let limited = fleet_common::permissions::Permissions::from_lists(
            Some(vec!["search_knowledgebase".into()]),
            None,
        )
        .fingerprint();
        let keyed =
            |varied: bool, fingerprint: &[u8]| match crate::http::envelope::Body::parse(list) {
                crate::http::envelope::Body::One(msg) => {
                    Replayable::of(&msg, &h, 1, varied, fingerprint).map(|r| r.key)
                }
                _ => None,
            };
        assert_eq!(plain, keyed(false, &[]));
        assert!(keyed(false, &limited).is_some());
        assert_ne!(plain, keyed(false, &limited));
        // Once answers vary by caller (their cacheScope turns private), a
        // list learned before is not replayed.
        assert_ne!(plain, keyed(true, &[]));
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
        let first = of(&h, br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).unwrap();
        let again = of(
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
