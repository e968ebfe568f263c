//! Live Metrics in the setup: whether it runs, and its client on the exporter's thread.

use tokio::runtime::Handle;
use tracelink_core::connection_string::DEFAULT_LIVE_ENDPOINT;
use tracelink_live::{LiveMetrics, LiveMetricsBuilder};

use crate::error::{InitError, InitErrorKind};
use crate::settings::Settings;

/// A change to the Live Metrics settings, from [`Builder::live_metrics`](crate::Builder::live_metrics).
pub(crate) type Configure = Box<dyn FnOnce(LiveMetricsBuilder) -> LiveMetricsBuilder + Send>;

/// What the builder was told about Live Metrics.
#[derive(Default)]
pub(crate) enum LiveChoice {
    /// On, unless ingestion is local and the connection string names no live endpoint.
    #[default]
    Auto,
    /// On, with these changes.
    Configured(Vec<Configure>),
    /// Off.
    Off,
}

impl LiveChoice {
    pub(crate) fn configure(&mut self, f: Configure) {
        match self {
            Self::Configured(changes) => changes.push(f),
            _ => *self = Self::Configured(vec![f]),
        }
    }
}

/// Whether `url` (`scheme://host[:port][/...]`) is on this machine.
fn is_local(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Starts Live Metrics on the exporter's runtime, unless it is off: by choice, or because
/// ingestion is local and the connection string names no live endpoint (a development or
/// test setup, whose instrumentation key the public service would not know). With the
/// exporter's Entra ID token (`bearer`), pings and posts carry it too.
pub(crate) fn start(
    choice: LiveChoice,
    settings: &Settings,
    runtime: &Handle,
    bearer: Option<tracelink_export::BearerToken>,
) -> Result<Option<LiveMetrics>, InitError> {
    let c = &settings.connection;
    let changes = match choice {
        LiveChoice::Off => return Ok(None),
        LiveChoice::Auto
            if c.live_endpoint() == DEFAULT_LIVE_ENDPOINT && is_local(c.ingestion_endpoint()) =>
        {
            return Ok(None);
        }
        LiveChoice::Auto => Vec::new(),
        LiveChoice::Configured(changes) => changes,
    };
    let mut builder = LiveMetrics::builder(c)
        .role(&*settings.role)
        .role_instance(&*settings.instance);
    if let Some(bearer) = bearer {
        builder = builder.authorization(move || bearer.header());
    }
    for f in changes {
        builder = f(builder);
    }
    let live = builder.build().map_err(|e| {
        InitError::new(
            InitErrorKind::InvalidSetting,
            "live_metrics",
            Some(Box::new(e)),
        )
    })?;
    let _entered = runtime.enter();
    live.start()
        .map_err(|e| InitError::new(InitErrorKind::Exporter, "live_metrics", Some(Box::new(e))))?;
    Ok(Some(live))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use axum::Router;
    use axum::body::Bytes;
    use axum::extract::State;
    use tracelink_core::TelemetrySink;
    use tracelink_core::model::{Request, Telemetry};
    use tracelink_live::protocol::{self, Answer, metric};

    use super::*;
    use crate::Builder;

    #[test]
    fn local_hosts() {
        for url in [
            "http://127.0.0.1:7421",
            "http://localhost",
            "https://LOCALHOST:1/x",
            "http://[::1]:9",
            "http://127.8.0.1",
        ] {
            assert!(is_local(url), "{url}");
        }
        for url in [
            "https://dc.services.visualstudio.com",
            "http://10.0.0.1:80",
            "http://localhost.example",
            "",
        ] {
            assert!(!is_local(url), "{url}");
        }
    }

    fn setup(connection_string: &str) -> Builder {
        Builder::from_vars([
            ("APPLICATIONINSIGHTS_CONNECTION_STRING", connection_string),
            ("OTEL_SERVICE_NAME", "live-test"),
            ("HOSTNAME", "live-host"),
        ])
        .exporter(|e| e.no_spool())
    }

    #[test]
    fn on_unless_off_or_local_without_a_live_endpoint() {
        let ikey = "InstrumentationKey=00000000-0000-0000-0000-000000000001";
        let local = format!("{ikey};IngestionEndpoint=http://127.0.0.1:9");
        let t = setup(&local).init_local().unwrap();
        assert!(t.live_metrics().is_none());
        let t = setup(&local)
            .live_metrics(|l| l.endpoint("http://127.0.0.1:9"))
            .init_local()
            .unwrap();
        assert_eq!(
            t.live_metrics().unwrap().status().endpoint,
            "http://127.0.0.1:9"
        );
        let t = setup(&format!("{local};LiveEndpoint=http://127.0.0.1:9"))
            .init_local()
            .unwrap();
        assert!(t.live_metrics().is_some());
        let t = setup(&format!("{local};LiveEndpoint=http://127.0.0.1:9"))
            .live_metrics(|l| l)
            .no_live_metrics()
            .init_local()
            .unwrap();
        assert!(t.live_metrics().is_none());
        // The local collector serves both.
        let t = Builder::from_vars([("OTEL_SERVICE_NAME", "x")])
            .exporter(|e| e.no_spool())
            .init_local()
            .unwrap();
        assert_eq!(
            t.live_metrics().unwrap().status().endpoint,
            "http://127.0.0.1:7421"
        );
        let e = setup(&local)
            .live_metrics(|l| l.endpoint("ftp://x"))
            .init_local()
            .unwrap_err();
        assert_eq!(
            (e.kind(), e.key()),
            (InitErrorKind::InvalidSetting, "live_metrics")
        );
    }

    /// What the stand-in of the service received: path and query, body.
    type Seen = Arc<Mutex<Vec<(String, Bytes)>>>;

    /// The setup counts items before the exporter samples them, and stops the client on
    /// shutdown.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn counts_before_sampling_on_the_exporters_thread_until_shutdown() {
        let seen: Seen = Arc::default();
        let app = Router::new()
            .fallback(
                |State(seen): State<Seen>, uri: http::Uri, body: Bytes| async move {
                    seen.lock().unwrap().push((uri.to_string(), body));
                    let mut h = http::HeaderMap::new();
                    Answer::subscribed().write_headers(&mut h);
                    (h, "")
                },
            )
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let tracelink = setup(&format!(
            "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://127.0.0.1:9;LiveEndpoint=http://{addr}"
        ))
        .sampling(tracelink_export::Sampling::fixed(0.0))
        .live_metrics(|l| {
            l.ping_interval(Duration::from_millis(50))
                .post_interval(Duration::from_millis(100))
        })
        .init_local()
        .unwrap();
        let live = tracelink.live_metrics().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !live.is_collecting() {
            assert!(Instant::now() < deadline, "never subscribed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let sink = tracelink.sink();
        for _ in 0..3 {
            let mut item = Telemetry::new(Request::new("GET /", "200", Duration::from_millis(8)));
            item.tags
                .insert("ai.operation.id", "4bf92f3577b34da6a3ce929d0e0e4736");
            sink.send(item);
        }
        let posted = loop {
            let found = seen.lock().unwrap().iter().find_map(|(uri, body)| {
                let point = protocol::decode(body).ok()?.pop()?;
                let d = point
                    .metrics
                    .as_ref()?
                    .iter()
                    .find(|m| m.name == metric::REQUEST_DURATION)?
                    .clone();
                uri.starts_with(protocol::POST_PATH)
                    .then_some((d.value, d.weight, point))
            });
            if let Some(f) = found {
                break f;
            }
            assert!(Instant::now() < deadline, "no post with the requests");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!((posted.0, posted.1), (8.0, 3));
        assert_eq!(posted.2.role_name.as_deref(), Some("live-test"));
        assert_eq!(posted.2.instance, "live-host");
        // The exporter sampled every one of them out.
        let stats = tracelink.stats().unwrap();
        assert_eq!((stats.enqueued, stats.sampled_out), (0, 3));
        tracelink.shutdown().await;
        assert!(!live.is_collecting());
        let n = seen.lock().unwrap().len();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(seen.lock().unwrap().len(), n, "nothing after shutdown");
    }

    /// With a credential, pings and posts carry the exporter's Entra ID token.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pings_carry_the_exporters_token() {
        type Auth = Arc<Mutex<Vec<Option<String>>>>;
        let seen: Auth = Arc::default();
        let app = Router::new()
            .fallback(
                |State(seen): State<Auth>, headers: http::HeaderMap| async move {
                    let auth = headers
                        .get(http::header::AUTHORIZATION)
                        .map(|v| v.to_str().unwrap_or_default().to_owned());
                    seen.lock().unwrap().push(auth);
                    let mut h = http::HeaderMap::new();
                    Answer::unsubscribed().write_headers(&mut h);
                    (h, "")
                },
            )
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let tracelink = setup(&format!(
            "InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://127.0.0.1:9;LiveEndpoint=http://{addr}"
        ))
        .credential(|_scope: &str| async {
            Ok(tracelink_export::AccessToken::new(
                "t0k",
                std::time::SystemTime::now() + Duration::from_secs(3600),
            ))
        })
        .live_metrics(|l| l.ping_interval(Duration::from_millis(50)))
        .init_local()
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !seen
            .lock()
            .unwrap()
            .iter()
            .any(|a| a.as_deref() == Some("Bearer t0k"))
        {
            assert!(Instant::now() < deadline, "no ping with the token");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tracelink.shutdown().await;
    }
}
