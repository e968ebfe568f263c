//! One stored item's columns, taken from its parsed envelope.

use std::time::{Duration, UNIX_EPOCH};

use tracelink_core::model::{OtherData, SeverityLevel, Telemetry, TelemetryData, tags};
use tracelink_core::wire_time;

/// The columns of one item.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Row {
    pub(crate) timestamp: String,
    pub(crate) ts_ms: i64,
    pub(crate) item_type: String,
    pub(crate) name: Option<String>,
    pub(crate) id: Option<String>,
    pub(crate) operation_id: Option<String>,
    pub(crate) parent_id: Option<String>,
    pub(crate) operation_name: Option<String>,
    pub(crate) cloud_role: Option<String>,
    pub(crate) role_instance: Option<String>,
    pub(crate) user_id: Option<String>,
    pub(crate) session_id: Option<String>,
    pub(crate) duration_ms: Option<f64>,
    pub(crate) success: Option<bool>,
    pub(crate) result_code: Option<String>,
    pub(crate) target: Option<String>,
    pub(crate) source: Option<String>,
    pub(crate) url: Option<String>,
    pub(crate) legacy_root: Option<String>,
    pub(crate) raw: Raw,
    /// What search finds the item by beyond its name and URL: the rest of a message longer
    /// than the name keeps, an exception's chain, and the property values (by key).
    pub(crate) search_text: String,
    /// The severity of a trace or exception, as sent.
    pub(crate) severity: Option<SeverityLevel>,
}

/// Where an item's envelope, as received, is kept.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Raw {
    /// In the row itself.
    Text(String),
    /// In the request body stored with the row's transaction (`batches`): bytes
    /// `at..at + len` of the decompressed body.
    Body { at: usize, len: usize },
}

impl Default for Raw {
    fn default() -> Self {
        Raw::Text(String::new())
    }
}

/// Property values, joined by newlines (in key order, as the caller gives them).
pub(crate) fn property_text<'a>(values: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for v in values.filter(|v| !v.is_empty()) {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(v);
    }
    out
}

fn prepend(text: &mut String, first: &str) {
    if text.is_empty() {
        first.clone_into(text);
    } else {
        *text = format!("{first}\n{text}");
    }
}

fn nonempty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

impl Row {
    pub(crate) fn from_item(t: &Telemetry, raw: Raw) -> Self {
        let tag = |k: &str| t.tags.get(k).map(str::to_owned);
        let ts_ms = t
            .time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut row = Row {
            timestamp: wire_time::format_time(t.time),
            ts_ms,
            operation_id: tag(tags::OPERATION_ID),
            parent_id: tag(tags::OPERATION_PARENT_ID),
            operation_name: tag(tags::OPERATION_NAME),
            cloud_role: tag(tags::CLOUD_ROLE),
            role_instance: tag(tags::CLOUD_ROLE_INSTANCE),
            user_id: tag(tags::USER_ID),
            session_id: tag(tags::SESSION_ID),
            legacy_root: t
                .properties
                .get(tracelink_core::LEGACY_ROOT_ID_PROPERTY)
                .cloned(),
            raw,
            search_text: property_text(t.properties.values().map(String::as_str)),
            ..Row::default()
        };
        let ms = |d: Duration| Some(d.as_secs_f64() * 1000.0);
        match &t.data {
            TelemetryData::Request(r) => {
                row.item_type = "request".into();
                row.name = nonempty(&r.name);
                row.id = nonempty(&r.id);
                row.duration_ms = ms(r.duration);
                row.success = Some(r.success);
                row.result_code = nonempty(&r.response_code);
                row.source = nonempty(&r.source);
                row.url = nonempty(&r.url);
            }
            TelemetryData::Dependency(d) => {
                row.item_type = "dependency".into();
                row.name = nonempty(&d.name);
                row.id = nonempty(&d.id);
                row.duration_ms = ms(d.duration);
                row.success = Some(d.success);
                row.result_code = nonempty(&d.result_code);
                row.target = nonempty(&d.target);
                row.url = nonempty(&d.data);
                row.source = nonempty(&d.dependency_type);
            }
            TelemetryData::Trace(m) => {
                row.item_type = "trace".into();
                row.name = Some(m.message.chars().take(300).collect());
                row.result_code = m.severity.map(|s| s.as_str().to_owned());
                row.severity = m.severity;
                if row.name.as_ref().is_some_and(|n| n.len() < m.message.len()) {
                    prepend(&mut row.search_text, &m.message);
                }
            }
            TelemetryData::Exception(e) => {
                row.item_type = "exception".into();
                row.name = e.exceptions.first().map(|d| {
                    format!("{}: {}", d.type_name, d.message)
                        .chars()
                        .take(300)
                        .collect()
                });
                row.success = Some(false);
                row.severity = e.severity;
                let chain: Vec<&str> = e
                    .exceptions
                    .iter()
                    .flat_map(|d| [d.type_name.as_str(), d.message.as_str()])
                    .collect();
                prepend(&mut row.search_text, &chain.join("\n"));
            }
            TelemetryData::Event(e) => {
                row.item_type = "customEvent".into();
                row.name = nonempty(&e.name);
            }
            TelemetryData::Metric(m) => {
                row.item_type = "customMetric".into();
                row.name = m.metrics.first().map(|p| p.name.clone());
            }
            TelemetryData::PageView(p) => {
                row.item_type = "pageView".into();
                row.name = nonempty(&p.name);
                row.id = nonempty(&p.id);
                row.url = nonempty(&p.url);
                row.duration_ms = p.duration.and_then(ms);
            }
            TelemetryData::Other(o) => other(&mut row, o),
            _ => row.item_type = "other".into(),
        }
        row
    }
}

/// The columns of a type the core does not model, from its `baseData`: page load timings
/// (`browserTiming`, as Application Insights names them), availability results, and any
/// other type under its own name (`baseType` without `Data`), named by its `name` or
/// `message`, else by its type, so that it shows in lists and trees.
fn other(row: &mut Row, o: &OtherData) {
    let base: serde_json::Value = serde_json::from_str(&o.base_data).unwrap_or_default();
    let text = |k: &str| {
        base.get(k)
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let ms = |k: &str| {
        text(k)
            .and_then(|d| wire_time::parse_duration(&d))
            .map(|d| d.as_secs_f64() * 1000.0)
    };
    let type_name = o.base_type.strip_suffix("Data").unwrap_or(&o.base_type);
    row.id = text("id");
    row.url = text("url");
    match o.base_type.as_str() {
        PAGE_VIEW_PERFORMANCE => {
            row.item_type = "browserTiming".into();
            row.name = text("name");
            row.duration_ms = ms("perfTotal").or_else(|| ms("duration"));
        }
        "AvailabilityData" => {
            row.item_type = "availabilityResult".into();
            row.name = text("name");
            row.duration_ms = ms("duration");
            row.success = base.get("success").and_then(serde_json::Value::as_bool);
            row.source = text("runLocation");
        }
        _ => {
            row.item_type = if type_name.is_empty() {
                "other".into()
            } else {
                type_name.to_owned()
            };
            row.name = text("name")
                .or_else(|| text("message"))
                .or_else(|| Some(row.item_type.clone()));
            row.duration_ms = ms("duration");
        }
    }
}

/// The `baseType` of page load timings, whatever spelling the SDK sent
/// (`PageviewPerformanceData`, `PageViewPerfData`, ...: see the ingest module).
pub(crate) const PAGE_VIEW_PERFORMANCE: &str = "PageViewPerformanceData";
