//! The client: pings while nobody watches, posts every interval while someone does, follows
//! the service's directives, and backs off while the endpoint fails.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, EXPECT};
use http::{HeaderValue, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::process::{ProcessSampler, memory_bytes};
use crate::protocol::{
    self, Answer, Document, INVARIANT_VERSION, MetricPoint, MonitoringDataPoint, PING_PATH,
    POST_PATH, header,
};
use crate::state::{Config, Shared};

/// The longest ping interval a service's hint can set.
const MAX_POLLING_INTERVAL: Duration = Duration::from_secs(3600);

/// Most bytes of an answer's body that are read (and then dropped): enough for a
/// configuration, and the connection can be used again.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// `scheme://host[:port]` of an `http` or `https` URL; its user-info, path and query are
/// dropped.
pub(crate) fn endpoint_base(url: &str) -> Option<String> {
    let uri: http::Uri = url.trim().parse().ok()?;
    let scheme = uri.scheme_str()?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = uri.authority()?.as_str();
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    (!host_port.is_empty()).then(|| format!("{scheme}://{host_port}"))
}

/// The protocol's state: what to send next, where, and when.
#[derive(Debug)]
pub(crate) struct Machine {
    pub(crate) subscribed: bool,
    pub(crate) endpoint: String,
    pub(crate) ping_interval: Duration,
    pub(crate) etag: Option<String>,
    last_success: Instant,
    post_interval: Duration,
    post_failure_window: Duration,
    ping_failure_window: Duration,
    fallback_interval: Duration,
}

impl Machine {
    pub(crate) fn new(config: &Config, now: Instant) -> Self {
        Self {
            subscribed: false,
            endpoint: config.endpoint.clone(),
            ping_interval: config.ping_interval,
            etag: None,
            last_success: now,
            post_interval: config.post_interval,
            post_failure_window: config.post_failure_window,
            ping_failure_window: config.ping_failure_window,
            fallback_interval: config.fallback_interval,
        }
    }

    /// Takes the outcome of the exchange that just ended (`None`: no `2xx` answer in time)
    /// and returns how long after that exchange began the next one begins.
    pub(crate) fn next(&mut self, answer: Option<&Answer>, now: Instant) -> Duration {
        match answer {
            Some(a) => {
                self.last_success = now;
                if let Some(hint) = a.polling_interval_hint {
                    self.ping_interval = hint.max(self.post_interval).min(MAX_POLLING_INTERVAL);
                }
                if let Some(base) = a.endpoint_redirect.as_deref().and_then(endpoint_base) {
                    self.endpoint = base;
                }
                if let Some(etag) = &a.configuration_etag {
                    self.etag = Some(etag.clone());
                }
                self.subscribed = a.subscribed;
                if self.subscribed {
                    self.post_interval
                } else {
                    self.ping_interval
                }
            }
            None => {
                let silent = now.saturating_duration_since(self.last_success);
                if self.subscribed {
                    if silent >= self.post_failure_window {
                        self.subscribed = false;
                        self.fallback_interval
                    } else {
                        self.post_interval
                    }
                } else if silent >= self.ping_failure_window {
                    self.fallback_interval
                } else {
                    self.ping_interval
                }
            }
        }
    }
}

/// The data point of a ping (no metrics, no documents) or a post.
pub(crate) fn data_point(
    config: &Config,
    now: SystemTime,
    metrics: Option<Vec<MetricPoint>>,
    documents: Option<Vec<Document>>,
) -> MonitoringDataPoint {
    MonitoringDataPoint {
        documents,
        instrumentation_key: Some(config.instrumentation_key.clone()),
        metrics,
        invariant_version: INVARIANT_VERSION,
        timestamp: protocol::format_date(now),
        version: Some(config.version.clone()),
        stream_id: config.stream_id.clone(),
        machine_name: config.machine_name.clone(),
        instance: config.instance.clone(),
        role_name: config.role.clone(),
    }
}

/// The HTTP request of a ping (`post` false) or a post, with the headers the Node SDK sends
/// (and the configuration ETag once the service gave one). `None` when the URL is invalid.
pub(crate) fn request(
    config: &Config,
    machine: &Machine,
    post: bool,
    body: Vec<u8>,
    now: SystemTime,
) -> Option<Request<Full<Bytes>>> {
    let path = if post { POST_PATH } else { PING_PATH };
    let url = format!(
        "{}{path}?ikey={}",
        machine.endpoint, config.instrumentation_key
    );
    let mut req = Request::post(url).body(Full::new(Bytes::from(body))).ok()?;
    let h = req.headers_mut();
    h.insert(EXPECT, HeaderValue::from_static("100-continue"));
    h.insert(
        header::TRANSMISSION_TIME,
        HeaderValue::from(protocol::transmission_time(now)),
    );
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut put = |name: &'static str, value: &str| {
        // UTF-8 is fine on the wire as opaque bytes; control chars are not: left out.
        if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
            h.insert(name, v);
        }
    };
    if !post {
        put(header::STREAM_ID, &config.stream_id);
        put(header::MACHINE_NAME, &config.machine_name);
        if let Some(role) = &config.role {
            put(header::ROLE_NAME, role);
        }
        put(header::INSTANCE_NAME, &config.instance);
        put(header::INVARIANT_VERSION, &INVARIANT_VERSION.to_string());
    }
    if let Some(etag) = &machine.etag {
        put(header::CONFIGURATION_ETAG, etag);
    }
    if let Some(mut value) = config.authorization.as_ref().and_then(|f| f()) {
        value.set_sensitive(true);
        h.insert(AUTHORIZATION, value);
    }
    Some(req)
}

#[cfg(feature = "rustls")]
type Connector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;
#[cfg(not(feature = "rustls"))]
type Connector = hyper_util::client::legacy::connect::HttpConnector;

fn http_client() -> Client<Connector, Full<Bytes>> {
    // ring, named here rather than taken from the process: an application whose other
    // dependencies enable rustls' aws-lc-rs as well (reqwest's default TLS does) has no
    // process-wide default, and rustls would refuse to choose.
    #[cfg(feature = "rustls")]
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .unwrap_or_else(|_| hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots())
        .https_or_http()
        .enable_http1()
        .build();
    #[cfg(not(feature = "rustls"))]
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1)
        .build(connector)
}

/// Sends one request; the answer's directives when it is `2xx`.
async fn exchange(
    client: &Client<Connector, Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Option<Answer> {
    let res = match client.request(req).await {
        Ok(res) => res,
        Err(e) => {
            tracing::debug!(target: "tracelink_live", error = %e, "live metrics request failed");
            return None;
        }
    };
    if !res.status().is_success() {
        tracing::debug!(target: "tracelink_live", status = res.status().as_u16(),
            "live metrics endpoint refused");
        return None;
    }
    let answer = Answer::from_headers(res.headers());
    // Read (and drop) a short body, so that the connection serves the next request.
    let _ = Limited::new(res.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await;
    Some(answer)
}

/// The client's loop, until stopped.
pub(crate) async fn run(shared: Arc<Shared>) {
    let config = &shared.config;
    let client = http_client();
    let mut machine = Machine::new(config, Instant::now());
    let mut process = ProcessSampler::new();
    let mut last_sample = Instant::now();
    tracing::debug!(target: "tracelink_live", endpoint = %machine.endpoint, "live metrics started");
    let mut failing = false;
    loop {
        if shared.stopped.load(std::sync::atomic::Ordering::Acquire) {
            break;
        }
        let began = Instant::now();
        let now = SystemTime::now();
        let post = machine.subscribed;
        let body = if post {
            let totals = shared.counters.take();
            let elapsed = began.saturating_duration_since(last_sample);
            last_sample = began;
            let metrics = totals.metrics(elapsed, process.cpu_percent(), memory_bytes());
            let documents = Some(shared.take_documents()).filter(|d| !d.is_empty());
            protocol::encode_post(&[data_point(config, now, Some(metrics), documents)])
        } else {
            protocol::encode_ping(&data_point(config, now, None, None))
        };
        let answer = match request(config, &machine, post, body, now) {
            Some(req) => tokio::select! {
                biased;
                _ = shared.stop.notified() => break,
                a = tokio::time::timeout(config.timeout, exchange(&client, req)) => a.ok().flatten(),
            },
            None => None,
        };
        let was_subscribed = machine.subscribed;
        let was_endpoint = machine.endpoint.clone();
        let wait = machine.next(answer.as_ref(), Instant::now());
        if machine.subscribed != was_subscribed {
            if machine.subscribed {
                tracing::debug!(target: "tracelink_live", "live metrics viewer subscribed");
                shared.begin_collecting();
                process.reset();
                last_sample = Instant::now();
            } else {
                tracing::debug!(target: "tracelink_live", "live metrics viewer gone");
                shared.end_collecting();
            }
        }
        if machine.endpoint != was_endpoint {
            tracing::debug!(target: "tracelink_live", endpoint = %machine.endpoint,
                "live metrics endpoint redirected");
        }
        if answer.is_none() && !failing && wait >= config.fallback_interval {
            failing = true;
            tracing::warn!(target: "tracelink_live", endpoint = %machine.endpoint,
                "live metrics endpoint keeps failing: backing off");
        } else if answer.is_some() {
            failing = false;
        }
        {
            let mut s = shared.status();
            s.subscribed = machine.subscribed;
            s.endpoint.clone_from(&machine.endpoint);
            s.ping_interval = machine.ping_interval;
            s.configuration_etag.clone_from(&machine.etag);
            match (&answer, post) {
                (None, _) => s.failures += 1,
                (Some(_), true) => s.posts += 1,
                (Some(_), false) => s.pings += 1,
            }
        }
        tokio::select! {
            biased;
            _ = shared.stop.notified() => break,
            _ = tokio::time::sleep_until((began + wait).into()) => {}
        }
    }
    shared.end_collecting();
    shared.status().subscribed = false;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config {
            endpoint: "https://rt.services.visualstudio.com".into(),
            instrumentation_key: "11111111-2222-3333-4444-555555555555".into(),
            role: Some("orders".into()),
            instance: "pod-7".into(),
            machine_name: "vm".into(),
            version: "rs:tracelink:0.1.0".into(),
            stream_id: "7ca421d2c03940f799dcddce34b37d8b".into(),
            ping_interval: Duration::from_secs(5),
            post_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(3),
            post_failure_window: Duration::from_secs(20),
            ping_failure_window: Duration::from_secs(60),
            fallback_interval: Duration::from_secs(60),
            max_documents: 30,
            authorization: None,
        }
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn endpoints_keep_scheme_host_and_port() {
        assert_eq!(
            endpoint_base("https://localhost/redirected-prefix/").as_deref(),
            Some("https://localhost")
        );
        assert_eq!(
            endpoint_base("http://user:pw@127.0.0.1:7421/x?y").as_deref(),
            Some("http://127.0.0.1:7421")
        );
        assert_eq!(
            endpoint_base(" https://[::1]:443 ").as_deref(),
            Some("https://[::1]:443")
        );
        for bad in [
            "",
            "localhost",
            "ftp://x",
            "/QuickPulseService.svc",
            "https://",
        ] {
            assert_eq!(endpoint_base(bad), None, "{bad}");
        }
    }

    #[test]
    fn subscribe_post_unsubscribe_with_sticky_hint() {
        let t0 = Instant::now();
        let mut m = Machine::new(&config(), t0);
        assert_eq!(m.next(Some(&Answer::unsubscribed()), t0), S(5));
        assert_eq!(m.next(Some(&Answer::subscribed()), t0 + S(5)), S(1));
        assert!(m.subscribed);
        let hinted = Answer::unsubscribed().polling_interval_hint(Duration::from_millis(2000));
        assert_eq!(m.next(Some(&hinted), t0 + S(6)), S(2));
        assert!(!m.subscribed);
        // Sticky: later answers without the hint keep it.
        assert_eq!(m.next(Some(&Answer::unsubscribed()), t0 + S(8)), S(2));
        // Never shorter than the post interval, never absurdly long.
        let tiny = Answer::unsubscribed().polling_interval_hint(Duration::from_millis(1));
        assert_eq!(m.next(Some(&tiny), t0 + S(9)), S(1));
        let huge = Answer::unsubscribed().polling_interval_hint(Duration::from_millis(u64::MAX));
        assert_eq!(m.next(Some(&huge), t0 + S(9)), MAX_POLLING_INTERVAL);
        // A post interval above the cap never panics.
        let mut slow = config();
        slow.post_interval = S(7200);
        let mut m = Machine::new(&slow, t0);
        assert_eq!(m.next(Some(&tiny), t0), MAX_POLLING_INTERVAL);
    }

    #[test]
    fn redirect_and_etag_apply_from_then_on_bad_redirects_are_ignored() {
        let t0 = Instant::now();
        let mut m = Machine::new(&config(), t0);
        m.next(
            Some(
                &Answer::subscribed()
                    .endpoint_redirect("https://localhost/redirected-prefix/")
                    .configuration_etag("etag-1"),
            ),
            t0,
        );
        assert_eq!(m.endpoint, "https://localhost");
        assert_eq!(m.etag.as_deref(), Some("etag-1"));
        m.next(Some(&Answer::subscribed().endpoint_redirect("::bad::")), t0);
        assert_eq!(m.endpoint, "https://localhost");
        assert_eq!(m.etag.as_deref(), Some("etag-1"));
    }

    #[test]
    fn failing_posts_back_off_after_the_window_and_recover_at_once() {
        let t0 = Instant::now();
        let mut m = Machine::new(&config(), t0);
        m.next(Some(&Answer::subscribed()), t0);
        // Failing posts continue every second for 20 s ...
        for s in 1..20 {
            assert_eq!(m.next(None, t0 + S(s)), S(1), "{s}");
            assert!(m.subscribed);
        }
        // ... then the client stops posting and pings after 60 s.
        assert_eq!(m.next(None, t0 + S(20)), S(60));
        assert!(!m.subscribed);
        // Failing pings keep the 60 s fallback.
        assert_eq!(m.next(None, t0 + S(80)), S(60));
        // The first answer ends the back-off.
        assert_eq!(m.next(Some(&Answer::unsubscribed()), t0 + S(140)), S(5));
        assert_eq!(m.next(None, t0 + S(145)), S(5));
    }

    #[test]
    fn failing_pings_back_off_after_their_window() {
        let t0 = Instant::now();
        let mut m = Machine::new(&config(), t0);
        assert_eq!(m.next(None, t0), S(5));
        assert_eq!(m.next(None, t0 + S(55)), S(5));
        assert_eq!(m.next(None, t0 + S(60)), S(60));
    }

    #[test]
    fn ping_and_post_requests_carry_the_node_headers() {
        let c = config();
        let mut m = Machine::new(&c, Instant::now());
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_999_126_076);
        let ping = request(&c, &m, false, b"{}".to_vec(), now).unwrap();
        assert_eq!(
            ping.uri(),
            "https://rt.services.visualstudio.com/QuickPulseService.svc/ping?ikey=11111111-2222-3333-4444-555555555555"
        );
        let names: Vec<&str> = ping.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "expect",
                "x-ms-qps-transmission-time",
                "content-type",
                "x-ms-qps-stream-id",
                "x-ms-qps-machine-name",
                "x-ms-qps-role-name",
                "x-ms-qps-instance-name",
                "x-ms-qps-invariant-version",
            ]
        );
        assert_eq!(
            ping.headers()[header::TRANSMISSION_TIME],
            "639315959260760000"
        );
        m.etag = Some("etag-1".into());
        m.endpoint = "http://127.0.0.1:9".into();
        let post = request(&c, &m, true, b"[]".to_vec(), now).unwrap();
        assert_eq!(post.uri().path(), POST_PATH);
        let names: Vec<&str> = post.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "expect",
                "x-ms-qps-transmission-time",
                "content-type",
                "x-ms-qps-configuration-etag"
            ]
        );
        // A value that cannot be a header is left out, never a panic.
        let mut odd = c.clone();
        odd.role = Some("a\nb".into());
        let ping = request(
            &odd,
            &Machine::new(&odd, Instant::now()),
            false,
            vec![],
            now,
        )
        .unwrap();
        assert!(!ping.headers().contains_key(header::ROLE_NAME));
    }
}
