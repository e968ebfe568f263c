//! Metrics as time series: the MetricData items of one name (custom metrics, the standard
//! metrics the SDKs pre-aggregate, OpenTelemetry metrics), added up per time bucket and
//! split by one of their custom dimensions.
//!
//! A MetricData item carries a value already aggregated over its interval: `value` (the
//! sum), `count`, `min`, `max`. A bucket's average is the sum of the sums over the sum of
//! the counts, so that pre-aggregated and single-value items weigh what they stand for.
//! Items of one name are found through the partial index `items_metrics` (name, time).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rusqlite::{Connection, params};
use serde::Serialize;

use crate::usage::{Chart, Grain, Range, SeriesData};

/// The statistic a metric chart shows per bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Stat {
    Avg,
    Sum,
    Count,
    Min,
    Max,
}

impl Stat {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "avg" => Some(Self::Avg),
            "sum" => Some(Self::Sum),
            "count" => Some(Self::Count),
            "min" => Some(Self::Min),
            "max" => Some(Self::Max),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Avg => "avg",
            Self::Sum => "sum",
            Self::Count => "count",
            Self::Min => "min",
            Self::Max => "max",
        }
    }
}

/// The metrics page's answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub(crate) struct MetricsReport {
    /// Every metric name, with its items.
    pub(crate) names: Vec<(String, u64)>,
    /// The name charted.
    pub(crate) name: Option<String>,
    /// The custom dimensions its items have.
    pub(crate) dimensions: Vec<String>,
    /// Its items in the range.
    pub(crate) items: u64,
    pub(crate) chart: Chart,
}

/// Most items of one name read for a chart (the newest).
const MAX_ITEMS: i64 = 200_000;
/// Most series a split shows; the rest are summed up as `(other)`.
const MAX_SERIES: usize = 8;

/// One bucket of one series.
#[derive(Clone, Copy, Debug)]
struct Acc {
    sum: f64,
    count: f64,
    min: f64,
    max: f64,
}

impl Default for Acc {
    fn default() -> Self {
        Self {
            sum: 0.0,
            count: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl Acc {
    fn add(&mut self, o: &Acc) {
        self.sum += o.sum;
        self.count += o.count;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }

    fn value(&self, stat: Stat) -> f64 {
        if self.count == 0.0 {
            return 0.0;
        }
        match stat {
            Stat::Avg => self.sum / self.count,
            Stat::Sum => self.sum,
            Stat::Count => self.count,
            Stat::Min => self.min,
            Stat::Max => self.max,
        }
    }
}

pub(crate) fn metrics(
    conn: &Connection,
    range: &Range,
    name: Option<&str>,
    split: Option<&str>,
    stat: Stat,
) -> rusqlite::Result<MetricsReport> {
    let names: Vec<(String, u64)> = conn
        .prepare_cached(
            "SELECT name, COUNT(*) FROM items INDEXED BY items_metrics
             WHERE item_type = 'customMetric' AND name IS NOT NULL GROUP BY name ORDER BY name",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64)))?
        .collect::<rusqlite::Result<_>>()?;
    let Some(name) = name
        .map(str::to_owned)
        .or_else(|| names.first().map(|(n, _)| n.clone()))
    else {
        return Ok(MetricsReport {
            names,
            ..MetricsReport::default()
        });
    };
    let mut seqs: Vec<i64> = conn
        .prepare_cached(
            "SELECT seq FROM items INDEXED BY items_metrics
             WHERE item_type = 'customMetric' AND name = ?1 AND ts_ms >= ?2 AND ts_ms < ?3
             ORDER BY ts_ms DESC LIMIT ?4",
        )?
        .query_map(params![name, range.from_ms, range.to_ms, MAX_ITEMS], |r| {
            r.get(0)
        })?
        .collect::<rusqlite::Result<_>>()?;
    seqs.reverse();
    let items = crate::query::items_by_seq(conn, seqs)?;
    // (time, series, aggregate) per item.
    let mut points: Vec<(i64, String, Acc)> = Vec::with_capacity(items.len());
    let mut dimensions = BTreeSet::new();
    for item in &items {
        let v: serde_json::Value = serde_json::from_str(&item.raw).unwrap_or_default();
        let base = &v["data"]["baseData"];
        let props = base["properties"].as_object();
        if let Some(p) = props {
            dimensions.extend(p.keys().cloned());
        }
        let Some(m) = base["metrics"].as_array().and_then(|ms| {
            ms.iter()
                .find(|m| m["name"].as_str() == Some(name.as_str()))
        }) else {
            continue;
        };
        let Some(value) = m["value"].as_f64() else {
            continue;
        };
        let count = m["count"].as_f64().filter(|c| *c > 0.0).unwrap_or(1.0);
        let acc = Acc {
            sum: value,
            count,
            min: m["min"].as_f64().unwrap_or(value / count),
            max: m["max"].as_f64().unwrap_or(value / count),
        };
        let series = match split {
            Some(key) => props
                .and_then(|p| p.get(key))
                .map(|d| d.as_str().map_or_else(|| d.to_string(), str::to_owned))
                .unwrap_or_else(|| "(none)".into()),
            None => name.clone(),
        };
        points.push((item.ts_ms, series, acc));
    }
    let chart = chart(range, &points, stat);
    Ok(MetricsReport {
        names,
        name: Some(name),
        dimensions: dimensions.into_iter().collect(),
        items: items.len() as u64,
        chart,
    })
}

/// Aggregates points into buckets and series: the series with most items, the rest as
/// `(other)`.
fn chart(range: &Range, points: &[(i64, String, Acc)], stat: Stat) -> Chart {
    // The whole range, unless the points are far inside it (an open range).
    let far = 31 * crate::usage::DAY_MS;
    let from = match points.first() {
        Some(p) if p.0 - range.from_ms > far => p.0,
        _ => range.from_ms,
    };
    let to = match points.last() {
        Some(p) if range.to_ms.saturating_sub(p.0) > far => p.0,
        _ => range.to_ms.saturating_sub(1),
    }
    .max(from);
    let mut grain = range.grain;
    while grain != Grain::Week && grain.bucket(to) - grain.bucket(from) >= 400 {
        grain = match grain {
            Grain::Minute => Grain::Hour,
            Grain::Hour => Grain::Day,
            Grain::Day | Grain::Week => Grain::Week,
        };
    }
    let (a, b) = (grain.bucket(from), grain.bucket(to));
    let a = a.max(b - 399);
    let n = (b - a + 1).max(0) as usize;
    let mut per: HashMap<&str, (Vec<Acc>, usize)> = HashMap::new();
    for (ts, series, acc) in points {
        let i = grain.bucket(*ts) - a;
        if i < 0 || i as usize >= n {
            continue;
        }
        let e = per
            .entry(series.as_str())
            .or_insert_with(|| (vec![Acc::default(); n], 0));
        e.0[i as usize].add(acc);
        e.1 += 1;
    }
    let mut all: Vec<(&str, Vec<Acc>, usize)> =
        per.into_iter().map(|(s, (v, c))| (s, v, c)).collect();
    all.sort_by(|x, y| y.2.cmp(&x.2).then_with(|| x.0.cmp(y.0)));
    let mut series: BTreeMap<usize, SeriesData> = BTreeMap::new();
    let mut other: Option<Vec<Acc>> = None;
    for (i, (name, accs, _)) in all.into_iter().enumerate() {
        if i < MAX_SERIES {
            series.insert(
                i,
                SeriesData {
                    name: name.to_owned(),
                    values: accs.iter().map(|x| x.value(stat)).collect(),
                },
            );
        } else {
            let o = other.get_or_insert_with(|| vec![Acc::default(); n]);
            for (o, x) in o.iter_mut().zip(&accs) {
                o.add(x);
            }
        }
    }
    let mut series: Vec<SeriesData> = series.into_values().collect();
    if let Some(o) = other {
        series.push(SeriesData {
            name: "(other)".into(),
            values: o.iter().map(|x| x.value(stat)).collect(),
        });
    }
    Chart {
        grain: Some(grain),
        labels: (a..=b).map(|x| grain.label(x)).collect(),
        starts: (a..=b).map(|x| grain.start(x)).collect(),
        series,
    }
}
