//! The HTTP side of the token endpoints: one client per (timeout, user
//! agent) per process, and how a failed request or an answer becomes a
//! [`Token`] or a [`CloudError`]. The object store clients of `fleet-sync`
//! use the same client and transport error mapping.

use std::sync::Mutex;
use std::time::Duration;

use reqwest::StatusCode;

use crate::error::{CloudError, chain};
use crate::token::{Token, TokenAnswer};

/// Clients already built in this process, by timeout and user agent: one
/// connection pool for every request of the same kind.
static CLIENTS: Mutex<Vec<((Duration, &'static str), reqwest::Client)>> = Mutex::new(Vec::new());

/// The shared client with connect and per-read timeouts of `timeout`. It
/// follows no redirect: neither the token endpoints nor the stores' APIs
/// send them, and a followed one could carry credentials elsewhere.
pub fn client(timeout: Duration, user_agent: &'static str) -> Result<reqwest::Client, CloudError> {
    let mut clients = CLIENTS
        .lock()
        .map_err(|_| CloudError::permanent("HTTP client cache poisoned"))?;
    let key = (timeout, user_agent);
    if let Some((_, c)) = clients.iter().find(|(k, _)| *k == key) {
        return Ok(c.clone());
    }
    let client = reqwest::Client::builder()
        .connect_timeout(timeout)
        .read_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(user_agent)
        .build()
        .map_err(|e| CloudError::permanent(format!("building an HTTP client: {}", chain(&e))))?;
    clients.push((key, client.clone()));
    Ok(client)
}

/// A request that failed before an answer: `what` says which (it must hold
/// no secret); the URL, which may carry a signature, is left out.
pub fn transport_error(what: &str, e: reqwest::Error) -> CloudError {
    let permanent = e.is_builder() || e.is_redirect();
    let msg = format!("{what}: {}", chain(&e.without_url()));
    if permanent {
        CloudError::Permanent(msg)
    } else {
        CloudError::Transient(msg)
    }
}

/// The first line of an error text, at most 300 characters: enough to say
/// why, never a whole document.
pub fn short(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    line.chars().take(300).collect()
}

/// Read a whole (small) answer body: token and metadata answers.
pub async fn small_body(what: &str, resp: reqwest::Response) -> Result<bytes::Bytes, CloudError> {
    resp.bytes().await.map_err(|e| transport_error(what, e))
}

/// A token endpoint's answer: the token, or an error class. A refusal (4xx)
/// is permanent, with the OAuth `error` code (never the body); 408, 429 and
/// 5xx are transient.
pub(crate) async fn token_answer(who: &str, resp: reqwest::Response) -> Result<Token, CloudError> {
    let status = resp.status();
    let body = small_body(who, resp).await?;
    if status.is_success() {
        return TokenAnswer::parse(&body, who);
    }
    #[derive(serde::Deserialize)]
    struct OAuthError {
        error: Option<String>,
    }
    let code = serde_json::from_slice::<OAuthError>(&body)
        .ok()
        .and_then(|e| e.error)
        .map(|e| short(&e))
        .unwrap_or_default();
    let mut msg = format!("{who}: HTTP {status}");
    if !code.is_empty() {
        msg.push_str(&format!(" ({code})"));
    }
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        Err(CloudError::Transient(msg))
    } else {
        Err(CloudError::Permanent(msg))
    }
}

/// `application/x-www-form-urlencoded` pairs.
pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    let mut f = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        f.append_pair(k, v);
    }
    f.finish()
}

/// A URL without its query string and fragment, for messages.
pub(crate) fn without_query(uri: &str) -> &str {
    uri.split(['?', '#']).next().unwrap_or(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_detail() {
        assert_eq!(short("\n  first line\nsecond"), "first line");
        assert_eq!(short(&"x".repeat(1000)).len(), 300);
    }

    #[test]
    fn queries_are_cut() {
        assert_eq!(without_query("https://h/t?sig=1#f"), "https://h/t");
        assert_eq!(without_query("https://h/t"), "https://h/t");
    }
}
