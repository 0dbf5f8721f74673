//! Log output shared by every binary: one line per event, as JSON for
//! machines or text for people, every line carrying the instance id.
//!
//! Secrets never reach a log line because no code logs one: tokens,
//! passwords, hashes and keys are not fields of any event. The test suite
//! checks that by capturing the logs of a whole run.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("log format {other:?}: use text or json")),
        }
    }
}

/// JSON for machines, text for people at a terminal.
pub fn default_format() -> LogFormat {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        LogFormat::Text
    } else {
        LogFormat::Json
    }
}

/// Now, as RFC 3339 in UTC.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Targets whose logging is capped whatever `RUST_LOG` says: rmcp logs whole
/// JSON-RPC messages at debug (passwords in `authenticate_user` calls,
/// session tokens in its answers, query text and rows) and three info lines
/// per request in stateless mode. The server logs each request itself.
/// notify logs every filesystem event it sees at trace: with the log file in
/// a watched directory, each line would be an event logged as another line.
const CAPPED: &[&str] = &["rmcp=warn", "notify=debug"];

/// Install the global subscriber. `RUST_LOG` sets the filter (default
/// `info`), except for the [`CAPPED`] targets.
pub fn init(format: LogFormat, instance_id: &str) {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    for directive in CAPPED {
        if let Ok(d) = directive.parse() {
            filter = filter.add_directive(d);
        }
    }
    let formatter = LineFormat {
        instance: instance_id.to_string(),
        json: format == LogFormat::Json,
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .event_format(formatter)
        .try_init();
}

struct LineFormat {
    instance: String,
    json: bool,
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let ts = now_rfc3339();
        if self.json {
            let mut fields = serde_json::Map::new();
            fields.insert("timestamp".into(), ts.into());
            fields.insert("level".into(), meta.level().as_str().into());
            fields.insert("instance".into(), self.instance.clone().into());
            fields.insert("target".into(), meta.target().into());
            event.record(&mut JsonVisitor(&mut fields));
            let line = serde_json::to_string(&fields).map_err(|_| fmt::Error)?;
            writeln!(writer, "{line}")
        } else {
            write!(
                writer,
                "{ts} {:>5} [{}] {}: ",
                meta.level(),
                self.instance,
                meta.target()
            )?;
            ctx.field_format().format_fields(writer.by_ref(), event)?;
            writeln!(writer)
        }
    }
}

struct JsonVisitor<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}
