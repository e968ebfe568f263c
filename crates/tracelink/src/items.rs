//! The items the telemetry client records, each a builder: properties and measurements read
//! as part of the item.
//!
//! ```
//! use tracelink::{Event, Severity, Trace};
//!
//! let checkout = Event::new("checkout").property("order", "A-17").measurement("amount", 42.5);
//! let note = Trace::new("cart restored", Severity::Information).property("items", "3");
//! # let _ = (checkout, note);
//! ```

use std::borrow::Cow;
use std::error::Error as StdError;
use std::time::{Duration, SystemTime};

use tracelink_core::model::{self, ExceptionDetails, SeverityLevel, Telemetry};

/// The severity of a [`Trace`] or an [`Exception`].
pub type Severity = SeverityLevel;

macro_rules! item_builder {
    ($t:ident) => {
        impl $t {
            /// Adds a custom property (`customDimensions`).
            pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
                self.item.properties.insert(key.into(), value.into());
                self
            }

            /// When it happened (default: when the item was made).
            pub fn time(mut self, time: SystemTime) -> Self {
                self.item.time = time;
                self
            }

            /// The item as the data model has it.
            pub fn into_telemetry(self) -> Telemetry {
                self.item
            }
        }
    };
}

macro_rules! measurements {
    ($t:ident) => {
        impl $t {
            /// Adds a custom measurement (`customMeasurements`).
            pub fn measurement(mut self, key: impl Into<String>, value: f64) -> Self {
                self.item.measurements.insert(key.into(), value);
                self
            }
        }
    };
}

/// A custom event (`customEvents`), e.g. a business action the usage tools count.
///
/// ```
/// let e = tracelink::Event::new("checkout").measurement("amount", 9.99);
/// assert_eq!(e.into_telemetry().measurements["amount"], 9.99);
/// ```
#[derive(Clone, Debug)]
#[must_use = "an item is recorded only when tracked"]
pub struct Event {
    item: Telemetry,
}

impl Event {
    /// An event named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            item: Telemetry::new(model::Event::new(name)),
        }
    }
}
item_builder!(Event);
measurements!(Event);

/// A log line (`traces`).
#[derive(Clone, Debug)]
#[must_use = "an item is recorded only when tracked"]
pub struct Trace {
    item: Telemetry,
}

impl Trace {
    /// A trace with a message and severity.
    pub fn new(message: impl Into<String>, severity: Severity) -> Self {
        Self {
            item: Telemetry::new(model::Trace::new(message, severity)),
        }
    }
}
item_builder!(Trace);

/// An error with its causes (`exceptions`).
///
/// ```
/// use std::io;
/// use tracelink::Exception;
///
/// #[derive(Debug)]
/// struct PaymentFailed(io::Error);
/// impl std::fmt::Display for PaymentFailed {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("payment failed") }
/// }
/// impl std::error::Error for PaymentFailed {
///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> { Some(&self.0) }
/// }
///
/// let err = PaymentFailed(io::Error::new(io::ErrorKind::TimedOut, "gateway timed out"));
/// let item = Exception::from_error(&err).into_telemetry();
/// let tracelink::core::model::TelemetryData::Exception(x) = &item.data else { unreachable!() };
/// assert_eq!(x.exceptions.len(), 2);
/// assert!(x.exceptions[0].type_name.ends_with("PaymentFailed"));
/// assert_eq!(x.exceptions[1].message, "gateway timed out");
/// ```
#[derive(Clone, Debug)]
#[must_use = "an item is recorded only when tracked"]
pub struct Exception {
    item: Telemetry,
}

impl Exception {
    /// An exception of `error` and its `source()` chain, outermost first, each an entry of
    /// `exceptions[]` whose `outerId` is the one before (at most 16 entries).
    ///
    /// The outer type name is the error's Rust type (`std::any::type_name`). Causes are seen
    /// only as `dyn Error`, whose type Rust does not tell: their type name is the first word
    /// of their `Debug` form when it is an identifier (the struct or variant name, as derived
    /// `Debug` writes it), else `Error`.
    pub fn from_error<E: StdError + ?Sized + 'static>(error: &E) -> Self {
        let outer = std::any::type_name::<E>();
        let outer = if outer.starts_with("dyn ") {
            debug_type_name(error)
        } else {
            Cow::Borrowed(outer)
        };
        let mut x = model::Exception::new(outer, error.to_string());
        let mut cause = error.source();
        while let Some(e) = cause {
            if x.exceptions.len() == MAX_CAUSES {
                break;
            }
            x.exceptions
                .push(details(debug_type_name(e), e.to_string()));
            cause = e.source();
        }
        Self {
            item: Telemetry::new(x),
        }
    }

    /// An exception of a type name and message, e.g. from another language's error.
    pub fn new(type_name: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            item: Telemetry::new(model::Exception::new(type_name, message)),
        }
    }

    /// The severity (default Error).
    pub fn severity(mut self, severity: Severity) -> Self {
        if let model::TelemetryData::Exception(x) = &mut self.item.data {
            x.severity = Some(severity);
        }
        self
    }

    /// The stack of the outermost error, e.g. a captured `std::backtrace::Backtrace`
    /// (sent as its text, `hasFullStack`).
    pub fn stack(mut self, stack: impl std::fmt::Display) -> Self {
        if let model::TelemetryData::Exception(x) = &mut self.item.data
            && let Some(first) = x.exceptions.first_mut()
        {
            first.stack = stack.to_string();
        }
        self
    }
}
item_builder!(Exception);
measurements!(Exception);

/// Most causes recorded for one error.
const MAX_CAUSES: usize = 16;

fn details(type_name: Cow<'_, str>, message: String) -> ExceptionDetails {
    let mut d = ExceptionDetails::default();
    d.type_name = type_name.into_owned();
    d.message = message;
    d
}

/// The struct or variant name a derived `Debug` starts with, else `Error`.
fn debug_type_name(e: &(impl StdError + ?Sized)) -> Cow<'static, str> {
    let debug = format!("{e:?}");
    let name: String = debug
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if name.chars().next().is_some_and(|c| c.is_ascii_uppercase()) {
        Cow::Owned(name)
    } else {
        Cow::Borrowed("Error")
    }
}

/// A metric value (`customMetrics`), sent as one item.
#[derive(Clone, Debug)]
#[must_use = "an item is recorded only when tracked"]
pub struct Metric {
    item: Telemetry,
}

impl Metric {
    /// A value of the metric `name`.
    pub fn new(name: impl Into<String>, value: f64) -> Self {
        Self {
            item: Telemetry::new(model::Metric::new(name, value)),
        }
    }

    /// The metric's namespace.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        if let model::TelemetryData::Metric(m) = &mut self.item.data
            && let Some(p) = m.metrics.first_mut()
        {
            p.namespace = namespace.into();
        }
        self
    }
}
item_builder!(Metric);

/// A page view (`pageViews`), for pages rendered on the server.
#[derive(Clone, Debug)]
#[must_use = "an item is recorded only when tracked"]
pub struct PageView {
    item: Telemetry,
}

impl PageView {
    /// A view of the page `name`.
    pub fn new(name: impl Into<String>) -> Self {
        let mut data = model::PageView::default();
        data.name = name.into();
        Self {
            item: Telemetry::new(data),
        }
    }

    /// Changes the typed fields (always present: the constructor makes them).
    fn with(mut self, change: impl FnOnce(&mut model::PageView)) -> Self {
        if let model::TelemetryData::PageView(p) = &mut self.item.data {
            change(p);
        }
        self
    }

    /// The page's URL.
    pub fn url(self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.with(|f| f.url = url)
    }

    /// How long the page took.
    pub fn duration(self, duration: Duration) -> Self {
        self.with(|f| f.duration = Some(duration))
    }

    /// The referring URL.
    pub fn referrer(self, uri: impl Into<String>) -> Self {
        let uri = uri.into();
        self.with(|f| f.referred_uri = uri)
    }
}
item_builder!(PageView);
measurements!(PageView);

/// A call no middleware saw (a database driver's, an SDK's): a Dependency item.
///
/// ```
/// use std::time::Duration;
/// use tracelink::DependencyCall;
///
/// let call = DependencyCall::new("SELECT orders", "SQL")
///     .target("db.internal:5432")
///     .duration(Duration::from_millis(4))
///     .result_code("0");
/// # let _ = call;
/// ```
#[derive(Clone, Debug)]
#[must_use = "an item is recorded only when tracked"]
pub struct DependencyCall {
    item: Telemetry,
}

impl DependencyCall {
    /// A successful call named `name` of the type `dependency_type` (`SQL`, `Http`,
    /// `Azure Service Bus`, ...).
    pub fn new(name: impl Into<String>, dependency_type: impl Into<String>) -> Self {
        Self {
            item: Telemetry::new(model::Dependency::new(name, dependency_type)),
        }
    }

    /// Changes the typed fields (always present: the constructor makes them).
    fn with(mut self, change: impl FnOnce(&mut model::Dependency)) -> Self {
        if let model::TelemetryData::Dependency(d) = &mut self.item.data {
            change(d);
        }
        self
    }

    /// What was called: `host[:port]`, a queue, a database.
    pub fn target(self, target: impl Into<String>) -> Self {
        let target = target.into();
        self.with(|f| f.target = target)
    }

    /// The command or URL (`data`).
    pub fn data(self, data: impl Into<String>) -> Self {
        let data = data.into();
        self.with(|f| f.data = data)
    }

    /// How long it took.
    pub fn duration(self, duration: Duration) -> Self {
        self.with(|f| f.duration = duration)
    }

    /// The result code.
    pub fn result_code(self, code: impl Into<Cow<'static, str>>) -> Self {
        let code = code.into();
        self.with(|f| f.result_code = code)
    }

    /// Whether it succeeded (default true).
    pub fn success(self, success: bool) -> Self {
        self.with(|f| f.success = success)
    }
}
item_builder!(DependencyCall);
measurements!(DependencyCall);

/// A request no middleware saw (a protocol of the application's own): a Request item.
#[derive(Clone, Debug)]
#[must_use = "an item is recorded only when tracked"]
pub struct RequestRecord {
    item: Telemetry,
}

impl RequestRecord {
    /// A successful request named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        let mut data = model::Request::new(name, "0", Duration::ZERO);
        data.success = true;
        Self {
            item: Telemetry::new(data),
        }
    }

    /// Changes the typed fields (always present: the constructor makes them).
    fn with(mut self, change: impl FnOnce(&mut model::Request)) -> Self {
        if let model::TelemetryData::Request(r) = &mut self.item.data {
            change(r);
        }
        self
    }

    /// Its URL.
    pub fn url(self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.with(|f| f.url = url)
    }

    /// How long it took.
    pub fn duration(self, duration: Duration) -> Self {
        self.with(|f| f.duration = duration)
    }

    /// The response code.
    pub fn response_code(self, code: impl Into<Cow<'static, str>>) -> Self {
        let code = code.into();
        self.with(|f| f.response_code = code)
    }

    /// Whether it succeeded (default true).
    pub fn success(self, success: bool) -> Self {
        self.with(|f| f.success = success)
    }
}
item_builder!(RequestRecord);
measurements!(RequestRecord);

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

    #[derive(Debug)]
    struct Outer(Inner);
    #[derive(Debug)]
    enum Inner {
        Refused,
    }
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("checkout failed")
        }
    }
    impl fmt::Display for Inner {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("card refused")
        }
    }
    impl StdError for Outer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }
    impl StdError for Inner {}

    #[test]
    fn an_error_chain_becomes_linked_entries() {
        let item = Exception::from_error(&Outer(Inner::Refused)).into_telemetry();
        let model::TelemetryData::Exception(x) = &item.data else {
            panic!("not an exception")
        };
        let names: Vec<_> = x.exceptions.iter().map(|d| d.type_name.as_str()).collect();
        assert!(names[0].ends_with("items::tests::Outer"), "{names:?}");
        assert_eq!(names[1], "Refused");
        assert_eq!(x.exceptions[1].message, "card refused");
        // Seen as dyn Error, the outer type comes from Debug too.
        let boxed: Box<dyn StdError> = Box::new(Outer(Inner::Refused));
        let item = Exception::from_error(&*boxed).into_telemetry();
        let model::TelemetryData::Exception(x) = &item.data else {
            panic!("not an exception")
        };
        assert_eq!(x.exceptions[0].type_name, "Outer");
    }
}
