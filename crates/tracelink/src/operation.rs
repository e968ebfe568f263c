//! Operations for work that is not HTTP: message consumers, producers, background jobs
//! ([`Operation`]).

use std::borrow::Cow;
use std::error::Error as StdError;
use std::future::Future;
use std::time::{Instant, SystemTime};

use tracelink_core::metrics::Unsampled;
use tracelink_core::model::{self, Telemetry};
use tracelink_core::scope::{self, CorrelationExt, EnterGuard, Scoped};
use tracelink_core::{Correlation, UserContext};

use crate::client::{self, Client};
use crate::items::Exception;
use crate::messaging::{self, MessageProperties};

pub use tracelink_core::model::LINKS_PROPERTY;

#[derive(Clone, Debug)]
enum Kind {
    Request,
    Dependency {
        dependency_type: String,
        target: String,
    },
}

/// Operations for work that is not HTTP: message consumers, producers, background jobs.
///
/// The Application Insights convention, which the other SDKs follow:
/// - a producer records the enqueue as a Dependency (type `Queue Message | <system>`, target
///   the queue or topic) and writes its context into the message
///   ([`OperationGuard::inject`]);
/// - a consumer records the processing as a Request whose parent is that Dependency, in the
///   same operation ([`Operation::parent_from`]);
/// - a background job with no incoming context starts a new operation
///   ([`Operation::request`] without a parent); started inside a request, it keeps that
///   request's user context;
/// - a consumer of a batch of messages from several operations links them: the property
///   `_MS.links` holds `[{"operation_Id": …, "id": …}, …]` ([`Operation::link_from`]).
///
/// A started operation ([`OperationGuard`]) is the current context for the code run inside
/// it ([`OperationGuard::enter`] for synchronous code, [`OperationGuard::scope`] for a
/// future), so calls, logs and items recorded there are its children; operations nest. It
/// records its item when finished, with its duration, or when dropped: a drop during a panic
/// records `success=false`, and so does [`OperationGuard::fail`].
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Arc;
/// use tracelink::Operation;
/// use tracelink::core::MemorySink;
///
/// let sink = Arc::new(MemorySink::new());
/// let _tracelink = tracelink::builder().sink(sink.clone()).init().unwrap();
///
/// // Producer: the enqueue is a dependency, its context goes into the message.
/// let mut message: HashMap<String, String> = HashMap::new();
/// let enqueue = Operation::dependency("send orders", "Queue Message | memory")
///     .target("orders")
///     .start();
/// enqueue.inject(&mut message);
/// enqueue.finish();
///
/// // Consumer: processing is a request whose parent is the enqueue.
/// let process = Operation::request("process orders").parent_from(&message).start();
/// {
///     let _in = process.enter();
///     tracelink::track_trace("processing", tracelink::Severity::Information);
/// }
/// process.finish();
///
/// let items = sink.take();
/// let (dep, log, req) = (&items[0], &items[1], &items[2]);
/// assert_eq!(req.operation_id(), dep.operation_id());
/// assert_eq!(req.operation_parent_id(), dep.id());
/// assert_eq!(log.operation_parent_id(), req.id());
/// ```
#[derive(Debug)]
#[must_use = "an operation does nothing until started"]
pub struct Operation {
    name: String,
    kind: Kind,
    parent: Option<tracelink_core::extract::Incoming>,
    user: Option<UserContext>,
    links: Vec<(String, String)>,
    properties: Vec<(String, String)>,
}

impl Operation {
    /// Work done for a message, a job or a schedule: recorded as a Request. Without
    /// [`Operation::parent_from`] it starts a new operation.
    pub fn request(name: impl Into<String>) -> Self {
        Self::new(name.into(), Kind::Request)
    }

    /// A call: recorded as a Dependency, a child of the current context (or a new
    /// operation outside of one). For an enqueue the type is `Queue Message | <system>`.
    pub fn dependency(name: impl Into<String>, dependency_type: impl Into<String>) -> Self {
        Self::new(
            name.into(),
            Kind::Dependency {
                dependency_type: dependency_type.into(),
                target: String::new(),
            },
        )
    }

    fn new(name: String, kind: Kind) -> Self {
        Self {
            name,
            kind,
            parent: None,
            user: None,
            links: Vec::new(),
            properties: Vec::new(),
        }
    }

    /// A dependency's target: the queue, topic or host.
    pub fn target(mut self, target: impl Into<String>) -> Self {
        if let Kind::Dependency { target: t, .. } = &mut self.kind {
            *t = target.into();
        }
        self
    }

    /// The parent is the context a producer wrote into `message` (see
    /// [`crate::messaging`]); a message without a valid one starts a new operation.
    pub fn parent_from<P: MessageProperties + ?Sized>(mut self, message: &P) -> Self {
        let propagation = client::current_client()
            .map(|c| c.shared().settings.propagation.clone())
            .unwrap_or_default();
        self.parent = messaging::extract(message, &propagation);
        self
    }

    /// Takes the user context a producer wrote into `message` (opt-in, see
    /// [`crate::messaging`]).
    pub fn user_from_message<P: MessageProperties + ?Sized>(mut self, message: &P) -> Self {
        let user = messaging::extract_user(message);
        self.user = (!user.is_empty()).then_some(user);
        self
    }

    /// Links the operation to the one `message` came from (`_MS.links`), for a consumer of
    /// a batch of messages.
    pub fn link_from<P: MessageProperties + ?Sized>(mut self, message: &P) -> Self {
        let propagation = client::current_client()
            .map(|c| c.shared().settings.propagation.clone())
            .unwrap_or_default();
        if let Some(incoming) = messaging::extract(message, &propagation)
            && let Some(parent) = incoming.parent_id()
        {
            self.links
                .push((incoming.trace_id().to_hex().to_string(), parent.to_string()));
        }
        self
    }

    /// Adds a custom property to the operation's item.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// Starts it with the client of the running setup. Without one, the operation still
    /// propagates (its context is current, [`OperationGuard::inject`] writes it) but
    /// records nothing.
    pub fn start(self) -> OperationGuard {
        let client = client::current_client();
        self.start_inner(client)
    }

    /// Starts it with `client`.
    pub fn start_with(self, client: &Client) -> OperationGuard {
        self.start_inner(Some(client.clone()))
    }

    fn start_inner(self, client: Option<Client>) -> OperationGuard {
        let current = scope::current();
        let propagation = client
            .as_ref()
            .map(|c| c.shared().settings.propagation.clone())
            .unwrap_or_default();
        let sampling = |t| {
            client
                .as_ref()
                .map_or(tracelink_core::SamplingDecision::KEEP_ALL, |c| {
                    c.shared().sink.sampling(t)
                })
        };
        let correlation = match (self.parent, &current, &self.kind) {
            (Some(incoming), _, _) => {
                let decision = sampling(incoming.trace_id());
                incoming.into_request(&propagation, decision, Some(&self.name))
            }
            (None, Some(parent), Kind::Dependency { .. }) => parent.new_child(),
            (None, _, _) => {
                let trace_id = tracelink_core::TraceId::random();
                let root =
                    Correlation::root(trace_id, &propagation, sampling(trace_id), Some(&self.name));
                if let Some(user) = current.as_ref().and_then(Correlation::user) {
                    root.set_user((*user).clone());
                }
                root
            }
        };
        if let Some(user) = self.user {
            correlation.set_user(user);
        }
        OperationGuard {
            client,
            correlation,
            name: self.name,
            kind: self.kind,
            links: self.links,
            properties: self.properties,
            time: SystemTime::now(),
            start: Instant::now(),
            success: None,
            result_code: None,
            done: false,
        }
    }
}

/// A started operation; records its item when finished or dropped. See [`Operation`].
#[derive(Debug)]
#[must_use = "the operation ends when the guard is dropped"]
pub struct OperationGuard {
    client: Option<Client>,
    correlation: Correlation,
    name: String,
    kind: Kind,
    links: Vec<(String, String)>,
    properties: Vec<(String, String)>,
    time: SystemTime,
    start: Instant,
    success: Option<bool>,
    result_code: Option<Cow<'static, str>>,
    done: bool,
}

impl OperationGuard {
    /// The operation's context.
    pub fn correlation(&self) -> &Correlation {
        &self.correlation
    }

    /// Makes the operation current on this thread until the returned guard is dropped.
    pub fn enter(&self) -> EnterGuard {
        scope::enter(self.correlation.clone())
    }

    /// Runs `future` with the operation current.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let job = tracelink::Operation::request("nightly cleanup").start();
    /// let id = job.correlation().id().clone();
    /// let seen = job.scope(async { tracelink::core::scope::current().map(|c| c.id().clone()) }).await;
    /// assert_eq!(seen, Some(id));
    /// job.finish();
    /// # }
    /// ```
    pub fn scope<F: Future>(&self, future: F) -> Scoped<F> {
        future.in_correlation(self.correlation.clone())
    }

    /// Writes the operation's context into a message (a producer's enqueue), see
    /// [`crate::messaging`].
    pub fn inject<P: MessageProperties + ?Sized>(&self, message: &mut P) {
        let propagation = self
            .client
            .as_ref()
            .map(|c| c.shared().settings.propagation.clone())
            .unwrap_or_default();
        messaging::inject(&self.correlation, &propagation, message);
    }

    /// Writes the operation's user context into a message (opt-in), see
    /// [`crate::messaging`].
    pub fn inject_user<P: MessageProperties + ?Sized>(&self, message: &mut P) {
        if let Some(user) = self.correlation.user() {
            messaging::inject_user(&user, message);
        }
    }

    /// Adds a custom property to the operation's item.
    pub fn property(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.properties.push((key.into(), value.into()));
    }

    /// Sets the result code (default: none).
    pub fn result_code(&mut self, code: impl Into<Cow<'static, str>>) {
        self.result_code = Some(code.into());
    }

    /// Sets whether the operation succeeded (default: it did, unless dropped in a panic).
    pub fn success(&mut self, success: bool) {
        self.success = Some(success);
    }

    /// Marks the operation failed and records `error` (with its causes) as an Exception
    /// under it.
    pub fn fail<E: StdError + ?Sized + 'static>(&mut self, error: &E) {
        self.success = Some(false);
        if let Some(c) = &self.client {
            let _in = self.enter();
            c.track_exception(Exception::from_error(error));
        }
    }

    /// Ends the operation and records it.
    pub fn finish(mut self) {
        self.record();
    }

    /// Ends the operation with the outcome of the work: an `Err` marks it failed and is
    /// recorded as an Exception under it.
    pub fn finish_result<T, E: StdError + 'static>(mut self, result: &Result<T, E>) {
        if let Err(e) = result {
            self.fail(e);
        }
        self.record();
    }

    fn record(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let Some(client) = &self.client else { return };
        let success = self.success.unwrap_or(!std::thread::panicking());
        if !self.correlation.is_sampled() {
            // Sampling dropped the operation: counted into the standard metrics, no item.
            let sink = &client.shared().sink;
            if sink.counts_unsampled() {
                let code = self.result_code.as_deref().unwrap_or("");
                let duration = self.start.elapsed();
                let what = match &self.kind {
                    Kind::Request => Unsampled::request(code, success, duration),
                    Kind::Dependency {
                        dependency_type,
                        target,
                    } => Unsampled::dependency(dependency_type, target, code, success, duration),
                };
                sink.count_unsampled(&what);
            }
            return;
        }
        let duration = self.start.elapsed();
        let code = self.result_code.take().unwrap_or(Cow::Borrowed(""));
        let mut item: Telemetry = match &self.kind {
            Kind::Request => {
                let mut r = model::Request::new(self.name.clone(), code, duration);
                r.success = success;
                self.correlation.to_item(r)
            }
            Kind::Dependency {
                dependency_type,
                target,
            } => {
                let mut d = model::Dependency::new(self.name.clone(), dependency_type.clone());
                d.target = target.clone();
                d.duration = duration;
                d.result_code = code;
                d.success = success;
                self.correlation.to_item(d)
            }
        };
        item.time = self.time;
        item.properties.extend(self.properties.drain(..));
        if !self.links.is_empty() {
            let links = model::links_json(self.links.iter().map(|(o, i)| (o.as_str(), i.as_str())));
            item.properties.insert(LINKS_PROPERTY.into(), links);
        }
        client.send(item);
    }
}

impl Drop for OperationGuard {
    fn drop(&mut self) {
        self.record();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Arc;
    use tracelink_core::model::{TelemetryData, TelemetryKind};
    use tracelink_core::{MemorySink, Propagation, SamplingDecision};

    fn setup() -> (Arc<MemorySink>, crate::Tracelink, Client) {
        let sink = Arc::new(MemorySink::new());
        let t = crate::Builder::from_vars([("OTEL_SERVICE_NAME", "jobs")])
            .sink(sink.clone())
            .init_local()
            .unwrap();
        let c = t.client();
        (sink, t, c)
    }

    fn success(item: &Telemetry) -> bool {
        match &item.data {
            TelemetryData::Request(r) => r.success,
            TelemetryData::Dependency(d) => d.success,
            _ => panic!("not an operation item"),
        }
    }

    #[test]
    fn operations_nest_and_record_on_finish() {
        let (sink, _t, client) = setup();
        let job = Operation::request("nightly").start_with(&client);
        {
            let _in = job.enter();
            let call = Operation::dependency("SELECT 1", "SQL")
                .target("db")
                .start_with(&client);
            assert_eq!(call.correlation().parent_id(), Some(job.correlation().id()));
            call.finish();
        }
        job.finish();
        let items = sink.take();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].kind(), TelemetryKind::Dependency);
        assert_eq!(items[0].operation_parent_id(), items[1].id());
        assert_eq!(items[1].operation_parent_id(), None);
        assert_eq!(items[1].tags.get("ai.cloud.role"), Some("jobs"));
        assert_eq!(items[1].tags.get("ai.operation.name"), Some("nightly"));
        assert!(success(&items[0]) && success(&items[1]));
    }

    #[test]
    fn a_panic_or_an_error_records_failure() {
        let (sink, _t, client) = setup();
        let c = client.clone();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _job = Operation::request("doomed").start_with(&c);
            panic!("boom");
        }));
        assert!(r.is_err());
        let items = sink.take();
        assert_eq!(items.len(), 1);
        assert!(!success(&items[0]));

        let mut job = Operation::request("fails").start_with(&client);
        job.fail(&std::io::Error::other("disk full"));
        let id = job.correlation().id().to_string();
        job.finish();
        let items = sink.take();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].kind(), TelemetryKind::Exception);
        assert_eq!(items[0].operation_parent_id(), Some(id.as_str()));
        assert!(!success(&items[1]));

        let job = Operation::request("fails too").start_with(&client);
        let result: Result<(), std::io::Error> = Err(std::io::Error::other("no"));
        job.finish_result(&result);
        let items = sink.take();
        assert_eq!(items.len(), 2);
        assert!(!success(&items[1]));
    }

    #[test]
    fn a_batch_consumer_links_the_operations_of_its_messages() {
        let (sink, _t, client) = setup();
        let cfg = Propagation::default();
        let mut messages = Vec::new();
        for _ in 0..2 {
            let producer = Correlation::new_root(&cfg, SamplingDecision::KEEP_ALL);
            let mut props: HashMap<String, String> = HashMap::new();
            messages.push((producer.clone(), {
                crate::messaging::inject(&producer, &cfg, &mut props);
                props
            }));
        }
        let mut op = Operation::request("process batch");
        for (_, props) in &messages {
            op = op.link_from(props);
        }
        op.start_with(&client).finish();
        let items = sink.take();
        let links: serde_json::Value =
            serde_json::from_str(&items[0].properties[LINKS_PROPERTY]).unwrap();
        let links = links.as_array().unwrap();
        assert_eq!(links.len(), 2);
        for ((producer, _), link) in messages.iter().zip(links) {
            assert_eq!(link["operation_Id"], producer.trace_id().to_hex().as_str());
            assert_eq!(link["id"], producer.id().to_string());
        }
    }

    #[test]
    fn a_job_started_in_a_request_is_a_new_operation_with_its_user() {
        let (sink, _t, client) = setup();
        let request = Correlation::new_root(&Propagation::default(), SamplingDecision::KEEP_ALL);
        request.set_user(UserContext::new().user("u1").session("s1"));
        let _in = scope::enter(request.clone());
        let job = Operation::request("send receipt").start_with(&client);
        assert_ne!(job.correlation().trace_id(), request.trace_id());
        job.finish();
        let items = sink.take();
        assert_eq!(items[0].tags.get("ai.user.id"), Some("u1"));
        assert_eq!(items[0].tags.get("ai.session.id"), Some("s1"));
    }

    #[test]
    fn hostile_message_properties_start_a_new_operation() {
        let (sink, _t, client) = setup();
        let mut props: HashMap<String, String> = HashMap::new();
        props.insert("traceparent".into(), "00-ffff-zz-01".into());
        props.insert(crate::messaging::USER_ID.into(), "a;b=c".into());
        let op = Operation::request("process")
            .parent_from(&props)
            .user_from_message(&props)
            .start_with(&client);
        assert!(op.correlation().parent_id().is_none());
        op.finish();
        let items = sink.take();
        assert_eq!(items[0].operation_parent_id(), None);
        assert_eq!(items[0].tags.get("ai.user.id"), None);
    }
}
