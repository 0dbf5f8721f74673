//! Classify one HTTP reply body as success, MCP tool error or JSON-RPC error.
//!
//! The check runs on every reply of a load test, so it first looks for the
//! two marker strings with a fast substring search and only parses JSON when
//! one is present. Inside a JSON string a quote is always escaped, so the
//! markers can only match JSON structure, never the text of a tool result;
//! parsing then confirms where the key sits (top level `error`, or
//! `result.isError == true`). Bodies may be plain JSON (one message or a
//! batch) or a Server-Sent Events stream of `data:` lines.

use memchr::memmem;
use serde_json::Value;

/// What a reply body says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A result (or any body without an error marker, e.g. the baseline's).
    Ok,
    /// A `tools/call` result with `"isError": true`.
    ToolError,
    /// A JSON-RPC error object (`"error": {...}` at the top level).
    RpcError,
}

/// Classify a reply body.
pub fn classify(body: &[u8]) -> Outcome {
    let has_error = memmem::find(body, b"\"error\"").is_some();
    let has_is_error = memmem::find(body, b"\"isError\"").is_some();
    if !has_error && !has_is_error {
        return Outcome::Ok;
    }
    let mut worst = Outcome::Ok;
    let mut parsed_any = false;
    for doc in json_documents(body) {
        let Ok(value) = serde_json::from_slice::<Value>(doc) else {
            continue;
        };
        parsed_any = true;
        let messages = match &value {
            Value::Array(items) => items.iter().collect::<Vec<_>>(),
            other => vec![other],
        };
        for m in messages {
            let o = classify_message(m);
            if o == Outcome::RpcError {
                return o;
            }
            if o == Outcome::ToolError {
                worst = o;
            }
        }
    }
    if !parsed_any && memmem::find(body, b"\"error\":").is_some() {
        // Not JSON we understand but it carries an error key: count it.
        return Outcome::RpcError;
    }
    worst
}

fn classify_message(m: &Value) -> Outcome {
    if m.get("error").is_some() {
        return Outcome::RpcError;
    }
    if m.get("result")
        .and_then(|r| r.get("isError"))
        .and_then(Value::as_bool)
        == Some(true)
    {
        return Outcome::ToolError;
    }
    Outcome::Ok
}

/// The JSON documents in a body: the whole body if it is JSON, else the
/// payload of every SSE `data:` line.
fn json_documents(body: &[u8]) -> Vec<&[u8]> {
    let trimmed = body.trim_ascii_start();
    if trimmed.starts_with(b"{") || trimmed.starts_with(b"[") {
        return vec![trimmed];
    }
    body.split(|&b| b == b'\n')
        .filter_map(|line| line.strip_prefix(b"data:"))
        .map(|d| d.trim_ascii())
        .filter(|d| !d.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_ok_even_when_their_text_mentions_errors() {
        let body = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"the \"error\": field and \"isError\":true"}],"isError":false}}"#;
        assert_eq!(classify(body), Outcome::Ok);
        assert_eq!(classify(b"{\"ok\":1}"), Outcome::Ok);
        assert_eq!(classify(b""), Outcome::Ok);
    }

    #[test]
    fn tool_and_rpc_errors_are_found() {
        let tool = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}}"#;
        assert_eq!(classify(tool), Outcome::ToolError);
        let rpc = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"bad"}}"#;
        assert_eq!(classify(rpc), Outcome::RpcError);
        let sse = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1,\"message\":\"x\"}}\n\n";
        assert_eq!(classify(sse), Outcome::RpcError);
        let batch = br#"[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","id":2,"result":{"isError":true}}]"#;
        assert_eq!(classify(batch), Outcome::ToolError);
        assert_eq!(classify(br#"{"error": "#), Outcome::RpcError);
    }
}
