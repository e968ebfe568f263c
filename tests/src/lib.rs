//! Helpers shared by tracelink's integration tests.
//!
//! - [`breeze`]: validates envelopes against the published Breeze ingestion schema
//!   (`tests/data/schemas/breeze-swagger.json`), as SPEC 7 requires of every envelope.
//! - [`data`]: the test data files, embedded.

pub mod breeze;

/// The test data of `tests/data/`, embedded at compile time.
pub mod data {
    /// The Breeze Swagger 2.0 schema.
    pub const BREEZE_SWAGGER: &str = include_str!("../data/schemas/breeze-swagger.json");
    /// Real SDK envelopes, one JSON document per line: `(file name, contents)`.
    pub const CAPTURES: [(&str, &str); 3] = [
        (
            "node-applicationinsights-2.9.8-w3c.ndjson",
            include_str!("../data/captures/node-applicationinsights-2.9.8-w3c.ndjson"),
        ),
        (
            "node-applicationinsights-2.9.8-requestid-legacy.ndjson",
            include_str!("../data/captures/node-applicationinsights-2.9.8-requestid-legacy.ndjson"),
        ),
        (
            "python-azure-monitor-exporter-1.0.0b58.ndjson",
            include_str!("../data/captures/python-azure-monitor-exporter-1.0.0b58.ndjson"),
        ),
    ];
    /// What the Node SDK 2.9.8 sent with standard metrics, performance counters and an
    /// Entra ID credential: one JSON object per line, posts with their envelopes (see
    /// `tests/data/captures/standard-metrics/README.md`).
    pub const STANDARD_METRICS_CAPTURE: &str = include_str!(
        "../data/captures/standard-metrics/node-applicationinsights-2.9.8-standard-metrics.ndjson"
    );
}
