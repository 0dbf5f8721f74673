//! The sidecar's Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FileLabel {
    pub file: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub file: String,
    pub outcome: String,
}

pub struct Metrics {
    registry: Registry,
    pub syncs: Family<OutcomeLabels, Counter>,
    pub bytes: Family<FileLabel, Counter>,
    pub last_success: Family<FileLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub published: Family<FileLabel, Gauge>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("kb_sync");
        let syncs = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "syncs",
            "Sync cycles by file and outcome (published, unchanged, same_content, fetch_error, not_found, verify_error, publish_error)",
            syncs.clone(),
        );
        let bytes = Family::<FileLabel, Counter>::default();
        registry.register(
            "fetched_bytes",
            "Body bytes downloaded from sources",
            bytes.clone(),
        );
        let last_success = Family::<FileLabel, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of the last cycle that left the file current",
            last_success.clone(),
        );
        let published = Family::<FileLabel, Gauge>::default();
        registry.register(
            "file_published",
            "1 when the file has a valid published version",
            published.clone(),
        );
        Metrics {
            registry,
            syncs,
            bytes,
            last_success,
            published,
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
