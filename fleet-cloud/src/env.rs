//! How providers read their configuration from environment variables: a
//! lookup function, so that tests can hand one its own variables instead of
//! changing the process's (which every thread shares).

/// Reads one environment variable (the process's, or a test's).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, blank values treated as unset.
pub fn process_env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.trim().is_empty())
}

/// A lookup over fixed pairs (blank values treated as unset), for tests
/// and for callers that hold their configuration in a map.
pub fn from_pairs<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |k| {
        pairs
            .iter()
            .find(|(n, v)| *n == k && !v.trim().is_empty())
            .map(|(_, v)| v.to_string())
    }
}
