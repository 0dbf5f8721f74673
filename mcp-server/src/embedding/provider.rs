//! Embedding a query through a provider's HTTP API: the request each API
//! expects, the vector in its answer, and what went wrong when there is
//! none ([`Failure`]). The API key travels in a header only; no error here
//! carries it, a URL with it, or the provider's answer.
//!
//! - OpenAI (and OpenAI-compatible servers): `POST {url}/embeddings`
//!   `{"model", "input": [text], "encoding_format": "float"}` →
//!   `data[0].embedding`; `Authorization: Bearer`.
//! - Voyage: the same, with `"input_type": "query"`.
//! - Ollama: `POST {url}/api/embed` `{"model", "input": text}` →
//!   `embeddings[0]`.
//! - Gemini: `POST {url}/models/{model}:embedContent` with
//!   `x-goog-api-key`, `{"content": {"parts": [{"text"}]}, "taskType":
//!   "RETRIEVAL_QUERY"}` → `embedding.values`.

use std::time::Duration;

use fleet_common::kb_vectors::Provider;
use serde_json::{Value, json};

use super::settings::HttpProvider;

/// The largest answer read from a provider (a 3,072-dimension vector in
/// JSON is about 70 KB).
pub const MAX_ANSWER_BYTES: usize = 4 << 20;

/// Why a provider gave no vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No answer within the timeout.
    Timeout,
    /// Not reachable, or a 5xx.
    Unavailable,
    /// 429.
    RateLimited,
    /// 401 / 403: the key or model is refused.
    Rejected,
    /// An answer without a usable vector (malformed, wrong dimension,
    /// another 4xx).
    Invalid(String),
}

impl Failure {
    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::Unavailable => "unavailable",
            Failure::RateLimited => "rate_limited",
            Failure::Rejected => "rejected",
            Failure::Invalid(_) => "invalid",
        }
    }

    /// For the result text and logs (never the key or the answer).
    pub fn describe(&self) -> String {
        match self {
            Failure::Timeout => "embedding provider timed out".into(),
            Failure::Unavailable => "embedding provider failed".into(),
            Failure::RateLimited => "embedding provider rate-limited".into(),
            Failure::Rejected => "embedding provider refused the key or model".into(),
            Failure::Invalid(why) => format!("embedding provider gave an invalid answer ({why})"),
        }
    }
}

/// A client for one configured provider.
pub struct ProviderClient {
    http: reqwest::Client,
    p: HttpProvider,
}

impl ProviderClient {
    pub fn new(p: HttpProvider, timeout: Duration) -> anyhow::Result<ProviderClient> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pg-mcp-server/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(ProviderClient { http, p })
    }

    pub fn settings(&self) -> &HttpProvider {
        &self.p
    }

    /// The vector of `text` (not normalised; the caller checks dimensions).
    pub async fn embed(&self, text: &str) -> Result<Vec<f32>, Failure> {
        let p = &self.p;
        let (url, body) = match p.provider {
            Provider::OpenAi => (
                format!("{}/embeddings", p.url),
                json!({"model": p.model, "input": [text], "encoding_format": "float"}),
            ),
            Provider::Voyage => (
                format!("{}/embeddings", p.url),
                json!({"model": p.model, "input": [text], "input_type": "query"}),
            ),
            Provider::Ollama => (
                format!("{}/api/embed", p.url),
                json!({"model": p.model, "input": text}),
            ),
            Provider::Gemini => (
                format!("{}/models/{}:embedContent", p.url, p.model),
                json!({"content": {"parts": [{"text": text}]}, "taskType": "RETRIEVAL_QUERY"}),
            ),
        };
        let mut req = self
            .http
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(key) = &p.api_key {
            req = match p.provider {
                Provider::Gemini => req.header("x-goog-api-key", key.expose()),
                _ => req.bearer_auth(key.expose()),
            };
        }
        let mut resp = req.send().await.map_err(transport)?;
        match resp.status().as_u16() {
            200..=299 => {}
            429 => return Err(Failure::RateLimited),
            401 | 403 => return Err(Failure::Rejected),
            500..=599 => return Err(Failure::Unavailable),
            s => return Err(Failure::Invalid(format!("HTTP {s}"))),
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(Failure::Invalid("answer too large".into()));
            }
            bytes.extend_from_slice(&chunk);
        }
        let v: Value =
            serde_json::from_slice(&bytes).map_err(|_| Failure::Invalid("not JSON".into()))?;
        let vector = match p.provider {
            Provider::OpenAi | Provider::Voyage => v.pointer("/data/0/embedding"),
            Provider::Ollama => v.pointer("/embeddings/0").or_else(|| v.get("embedding")),
            Provider::Gemini => v.pointer("/embedding/values"),
        }
        .and_then(Value::as_array)
        .ok_or_else(|| Failure::Invalid("no vector in the answer".into()))?;
        let out: Vec<f32> = vector
            .iter()
            .map(|x| x.as_f64().map(|f| f as f32).filter(|f| f.is_finite()))
            .collect::<Option<_>>()
            .ok_or_else(|| Failure::Invalid("a value that is not a finite number".into()))?;
        if out.is_empty() || out.iter().all(|x| *x == 0.0) {
            return Err(Failure::Invalid("an empty or zero vector".into()));
        }
        Ok(out)
    }
}

fn transport(e: reqwest::Error) -> Failure {
    if e.is_timeout() {
        Failure::Timeout
    } else {
        Failure::Unavailable
    }
}
