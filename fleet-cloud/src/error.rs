//! [`CloudError`]: why a credential could not be had, in two classes the
//! callers act on (retry later, or give up and say what to fix), and the
//! helpers that keep secrets out of its text.

/// Why a token or credential could not be had.
///
/// Its text never holds a token, key, password, assertion or URL query
/// string: messages name the endpoint (without its query), the file, the
/// field or the OAuth error code, never a body or a value read from a
/// credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloudError {
    /// Worth a retry: network trouble, timeouts, throttling, 5xx, an
    /// answer cut short, a metadata service that did not answer.
    #[error("{0}")]
    Transient(String),
    /// Refused for good until the configuration changes: a missing or
    /// unreadable key file, a refused client or grant (4xx), no region.
    #[error("{0}")]
    Permanent(String),
}

impl CloudError {
    pub fn is_transient(&self) -> bool {
        matches!(self, CloudError::Transient(_))
    }

    /// The message, without the class.
    pub fn message(&self) -> &str {
        match self {
            CloudError::Transient(m) | CloudError::Permanent(m) => m,
        }
    }

    pub(crate) fn transient(msg: impl Into<String>) -> CloudError {
        CloudError::Transient(msg.into())
    }

    pub(crate) fn permanent(msg: impl Into<String>) -> CloudError {
        CloudError::Permanent(msg.into())
    }
}

/// An error and its sources, `: `-separated (what a client library's error
/// needs to be told in one line).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        src = s.source();
    }
    out
}

/// `text` with the query string and userinfo of every URL in it removed:
/// for messages of other libraries, which may quote the URL they called.
pub fn scrub_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        // The scheme's letters are already copied; copy the separator and
        // the URL up to its end (whitespace or a quote), minus query and
        // userinfo.
        out.push_str(&rest[..at + 3]);
        let url = &rest[at + 3..];
        let end = url
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ')'))
            .unwrap_or(url.len());
        let (target, tail) = url.split_at(end);
        let target = target.split(['?', '#']).next().unwrap_or("");
        let (authority, path) = match target.find('/') {
            Some(i) => target.split_at(i),
            None => (target, ""),
        };
        out.push_str(authority.rsplit('@').next().unwrap_or(""));
        out.push_str(path);
        rest = tail;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubbed_urls_keep_host_and_path_only() {
        assert_eq!(
            scrub_urls("GET https://u:p@h.example/a/b?sig=s3cret&x=1 failed"),
            "GET https://h.example/a/b failed"
        );
        assert_eq!(
            scrub_urls("\"http://127.0.0.1:9/creds?t=s3cret\": refused; http://x#frag"),
            "\"http://127.0.0.1:9/creds\": refused; http://x"
        );
        assert_eq!(scrub_urls("no url here"), "no url here");
    }

    #[test]
    fn classes() {
        assert!(CloudError::transient("x").is_transient());
        assert!(!CloudError::permanent("x").is_transient());
        assert_eq!(CloudError::permanent("why").to_string(), "why");
        assert_eq!(CloudError::transient("why").message(), "why");
    }
}
