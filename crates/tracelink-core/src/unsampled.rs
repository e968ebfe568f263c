//! What an operation that sampling dropped adds to the standard metrics, reported without
//! its item (SPEC 8.6): [`Unsampled`], re-exported as `metrics::Unsampled`.

use std::time::Duration;

use crate::model::{SeverityLevel, Telemetry, TelemetryData, tags};

/// What one request, dependency, exception or trace adds to the standard metrics, without
/// its item: what the middleware reports to [`TelemetrySink::count_unsampled`](crate::TelemetrySink::count_unsampled) for an
/// operation that sampling dropped, and what [`StandardMetrics::count`](crate::metrics::StandardMetrics::count) counts. Everything
/// is borrowed: making one allocates nothing.
///
/// The role and instance are the [`StandardMetrics`](crate::metrics::StandardMetrics)' own unless given, as for an item
/// without the tags; `operation/synthetic` is `False` unless [`Unsampled::synthetic`].
///
/// ```
/// use std::time::Duration;
/// use tracelink_core::metrics::Unsampled;
/// use tracelink_core::model::{Dependency, Telemetry};
///
/// let mut d = Dependency::new("GET /x", "Http");
/// d.target = "api:8080".into();
/// d.result_code = "200".into();
/// let item = Telemetry::new(d);
/// let from_item = Unsampled::of(&item).unwrap();
/// let made = Unsampled::dependency("Http", "api:8080", "200", true, Duration::ZERO);
/// assert_eq!(from_item, made);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Unsampled<'a> {
    pub(crate) kind: Kind<'a>,
    pub(crate) role: Option<&'a str>,
    pub(crate) instance: Option<&'a str>,
    pub(crate) synthetic: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Kind<'a> {
    Request {
        response_code: &'a str,
        success: bool,
        duration: Duration,
    },
    Dependency {
        dependency_type: &'a str,
        target: &'a str,
        result_code: &'a str,
        success: bool,
        duration: Duration,
    },
    Exception,
    Trace {
        severity: Option<SeverityLevel>,
    },
}

impl<'a> Unsampled<'a> {
    fn new(kind: Kind<'a>) -> Self {
        Self {
            kind,
            role: None,
            instance: None,
            synthetic: false,
        }
    }

    /// A request answered with `response_code` after `duration`.
    pub fn request(response_code: &'a str, success: bool, duration: Duration) -> Self {
        Self::new(Kind::Request {
            response_code,
            success,
            duration,
        })
    }

    /// A dependency of `dependency_type` (`Http`, `InProc`, ...) on `target`.
    pub fn dependency(
        dependency_type: &'a str,
        target: &'a str,
        result_code: &'a str,
        success: bool,
        duration: Duration,
    ) -> Self {
        Self::new(Kind::Dependency {
            dependency_type,
            target,
            result_code,
            success,
            duration,
        })
    }

    /// An exception.
    pub fn exception() -> Self {
        Self::new(Kind::Exception)
    }

    /// A trace (log line) of `severity`.
    pub fn trace(severity: Option<SeverityLevel>) -> Self {
        Self::new(Kind::Trace { severity })
    }

    /// What `item` adds: its kind's values, and the role, instance and synthetic source of
    /// its tags. `None` for items the standard metrics do not count (events, metrics, page
    /// views, availability results).
    pub fn of(item: &'a Telemetry) -> Option<Self> {
        let kind = match &item.data {
            TelemetryData::Request(r) => Kind::Request {
                response_code: &r.response_code,
                success: r.success,
                duration: r.duration,
            },
            TelemetryData::Dependency(d) => Kind::Dependency {
                dependency_type: &d.dependency_type,
                target: &d.target,
                result_code: &d.result_code,
                success: d.success,
                duration: d.duration,
            },
            TelemetryData::Exception(_) => Kind::Exception,
            TelemetryData::Trace(t) => Kind::Trace {
                severity: t.severity,
            },
            _ => return None,
        };
        Some(Self {
            kind,
            role: item.tags.get(tags::CLOUD_ROLE),
            instance: item.tags.get(tags::CLOUD_ROLE_INSTANCE),
            synthetic: item
                .tags
                .get(tags::OPERATION_SYNTHETIC_SOURCE)
                .is_some_and(|s| !s.is_empty()),
        })
    }

    /// With this `ai.cloud.role` (`None`: the standard metrics' own).
    pub fn role(mut self, role: Option<&'a str>) -> Self {
        self.role = role;
        self
    }

    /// With this `ai.cloud.roleInstance` (`None`: the standard metrics' own).
    pub fn instance(mut self, instance: Option<&'a str>) -> Self {
        self.instance = instance;
        self
    }

    /// Whether the operation is synthetic (it has an `ai.operation.syntheticSource`).
    pub fn synthetic(mut self, synthetic: bool) -> Self {
        self.synthetic = synthetic;
        self
    }
}
