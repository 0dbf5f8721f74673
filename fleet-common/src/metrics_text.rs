//! The two text formats of `/metrics`, from the one encoding both binaries
//! make (prometheus-client writes OpenMetrics): OpenMetrics for a scraper
//! that asks for it in `Accept` (Prometheus does, by default), the
//! Prometheus text format 0.0.4 otherwise, each labelled as what it is.
//!
//! The formats differ where a plain reader of the older one trips: an
//! OpenMetrics counter family `x` has samples `x_total`, which the 0.0.4
//! parser reads as a second, untyped family. So the 0.0.4 rendering names
//! counter families after their samples and drops what 0.0.4 does not have
//! (`# EOF`, `# UNIT`).

/// `Content-Type` of OpenMetrics text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// `Content-Type` of the Prometheus text format.
pub const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The body and content type to answer a scrape with, given its `Accept`
/// header and the registry encoded as OpenMetrics.
pub fn negotiate(accept: Option<&str>, openmetrics: String) -> (&'static str, String) {
    let wants_openmetrics = accept.is_some_and(|a| {
        a.split(',').any(|part| {
            let mut fields = part.split(';').map(str::trim);
            let media = fields.next().unwrap_or("");
            let refused = fields.any(|f| f.replace(' ', "") == "q=0");
            media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
        })
    });
    if wants_openmetrics {
        (OPENMETRICS, openmetrics)
    } else {
        (PROMETHEUS, to_prometheus(&openmetrics))
    }
}

/// OpenMetrics text as Prometheus text format 0.0.4.
pub fn to_prometheus(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OM: &str = "# HELP mcp_requests Requests.\n# TYPE mcp_requests counter\nmcp_requests_total{method=\"x\"} 1\n# HELP mcp_up Up.\n# TYPE mcp_up gauge\nmcp_up 1\n# EOF\n";

    #[test]
    fn counters_are_named_after_their_samples_in_the_old_format() {
        let p = to_prometheus(OM);
        assert_eq!(
            p,
            "# HELP mcp_requests_total Requests.\n# TYPE mcp_requests_total counter\nmcp_requests_total{method=\"x\"} 1\n# HELP mcp_up Up.\n# TYPE mcp_up gauge\nmcp_up 1\n"
        );
    }

    #[test]
    fn the_scraper_chooses() {
        let prometheus_default = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(
            negotiate(Some(prometheus_default), OM.into()).0,
            OPENMETRICS
        );
        assert_eq!(negotiate(Some("text/plain"), OM.into()).0, PROMETHEUS);
        assert_eq!(negotiate(None, OM.into()).0, PROMETHEUS);
        assert_eq!(
            negotiate(
                Some("application/openmetrics-text; q=0, text/plain"),
                OM.into()
            )
            .0,
            PROMETHEUS
        );
        assert!(negotiate(None, OM.into()).1.ends_with("mcp_up 1\n"));
    }
}
