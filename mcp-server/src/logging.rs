//! Log output: one line per event, as JSON for machines or text for people,
//! every line carrying the instance id.
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

use crate::cli::LogFormat;

/// Install the global subscriber. `RUST_LOG` sets the filter (default `info`).
pub fn init(format: LogFormat, instance_id: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
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
        let ts = crate::files::now_rfc3339();
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
