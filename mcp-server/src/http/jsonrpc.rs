//! JSON-RPC errors the guard answers itself, for bodies rmcp would not
//! answer as JSON-RPC, and the outcome of a 2xx answer read from its bytes.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::http::envelope::Body as MessageBody;
use crate::http::outcome::Outcome;

/// The JSON-RPC error for a body rmcp would not answer as JSON-RPC: not
/// JSON (-32700), not a request (-32600: a batch, no method, not JSON-RPC
/// 2.0), both with 400 as the MCP transport asks; or params that do not fit
/// the method (-32602, in a 200 answer like any JSON-RPC error). `None` for
/// a body that rmcp should answer.
pub(crate) fn malformed(message: &MessageBody, bytes: &[u8]) -> Option<Response> {
    let one = match message {
        MessageBody::Invalid => return Some(not_a_message(bytes)),
        MessageBody::Batch(_) => {
            return Some(rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                INVALID_REQUEST,
                "Invalid Request: JSON-RPC batches are not supported; send one message per request",
            ));
        }
        MessageBody::One(one) => one,
    };
    if one.jsonrpc.as_deref() != Some("2.0") {
        return Some(rpc_error(
            StatusCode::BAD_REQUEST,
            one.id,
            INVALID_REQUEST,
            "Invalid Request: `jsonrpc` must be \"2.0\"",
        ));
    }
    if one.method.is_none() && !one.other_members {
        return Some(rpc_error(
            StatusCode::BAD_REQUEST,
            one.id,
            INVALID_REQUEST,
            "Invalid Request: no `method`",
        ));
    }
    let why = one.check_params().err()?;
    Some(match one.id {
        // A notification is never answered, not even with an error.
        None => StatusCode::ACCEPTED.into_response(),
        Some(id) => rpc_error(
            StatusCode::OK,
            Some(id),
            INVALID_PARAMS,
            &format!("Invalid params: {why}"),
        ),
    })
}

const PARSE_ERROR: i32 = -32700;
const INVALID_REQUEST: i32 = -32600;
const INVALID_PARAMS: i32 = -32602;

/// 400 for a body that is not one JSON-RPC message: -32700 if it is not
/// JSON at all, -32600 if it is JSON of another shape.
pub(crate) fn not_a_message(bytes: &[u8]) -> Response {
    if serde_json::from_slice::<serde_json::Value>(bytes).is_ok() {
        rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            INVALID_REQUEST,
            "Invalid Request: not a JSON-RPC message object",
        )
    } else {
        rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            PARSE_ERROR,
            "Parse error: the body is not JSON",
        )
    }
}

/// A JSON-RPC error object answering the message with `id` (null if unknown).
fn rpc_error(
    status: StatusCode,
    id: Option<&serde_json::value::RawValue>,
    code: i32,
    message: &str,
) -> Response {
    let id = id.map_or("null", |id| id.get());
    let message = serde_json::to_string(message).unwrap_or_else(|_| "\"error\"".to_string());
    let body =
        format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":{message}}}}}"#);
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Tell a tool error or a JSON-RPC error from success in a 2xx answer.
/// Inside JSON strings quotes are escaped, so these byte patterns only match
/// keys of the message itself.
pub(crate) fn classify(bytes: &[u8]) -> Outcome {
    let has = |pattern: &[u8]| bytes.windows(pattern.len()).any(|w| w == pattern);
    if has(br#""isError":true"#) {
        Outcome::ToolError
    } else if has(br#""error":{"#) {
        Outcome::RpcError
    } else {
        Outcome::Ok
    }
}
