//! How a guarded request ended: the `outcome` label of its metrics and log
//! line, one name per way.

/// How a request ended, as the `outcome` label of its metrics and log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered with success.
    Ok,
    /// A tool answered with `isError`.
    ToolError,
    /// A JSON-RPC error: the body is not a valid message, or rmcp refused it.
    RpcError,
    /// Refused before authentication mattered: body, Origin, rmcp's non-2xx.
    Rejected,
    Unauthorized,
    /// A valid OAuth token without a required scope (403).
    Forbidden,
    RateLimited,
    Timeout,
    /// rmcp's answer could not be read.
    Error,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ToolError => "tool_error",
            Outcome::RpcError => "rpc_error",
            Outcome::Rejected => "rejected",
            Outcome::Unauthorized => "unauthorized",
            Outcome::Forbidden => "forbidden",
            Outcome::RateLimited => "rate_limited",
            Outcome::Timeout => "timeout",
            Outcome::Error => "error",
        }
    }
}
