//! The tracelink demo: the local collector and three instrumented services on 127.0.0.1,
//! driven by a small workload, then the correlated transaction as the collector stored it.
//!
//! - `web` (W3C with back-compat) calls `orders` with reqwest;
//! - `orders` runs in legacy hierarchical Request-Id mode (as .NET estates that forced
//!   hierarchical ids do) and calls `inventory` with reqwest;
//! - `inventory` (default mode) answers; item numbers divisible by 7 fail with 500, by 5
//!   take a slow path.
//!
//! A simulated audience ([`audience`]) adds the page views and custom events of a few dozen
//! users over several days, so that the collector's usage pages (users, sessions, events,
//! funnels, retention, user flows) have something to show.
//!
//! Each service is set up with `tracelink` from environment-style values (connection string
//! with its own appId, `OTEL_SERVICE_NAME`, `TRACELINK_PROPAGATION`) and exports to the
//! collector.

use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use tracelink::Tracelink;
use tracelink_collector::query::{self, Item};
use tracelink_collector::{Collector, Config};

pub mod audience;

/// How many checkouts the workload makes.
pub const CHECKOUTS: u32 = 24;

/// What the demo found.
#[derive(Debug)]
pub struct Report {
    /// The collector's URL.
    pub collector_url: String,
    /// The operation shown.
    pub operation_id: String,
    /// Its items, in start order.
    pub items: Vec<Item>,
    /// The docs' table of that operation.
    pub table: String,
    /// Requests, failures, dependencies and durations per role.
    pub summary: String,
    /// The simulated audience's page views and events, as posted.
    pub audience: Vec<audience::Visit>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "One end-to-end transaction (operation {}):\n",
            self.operation_id
        )?;
        writeln!(f, "{}", self.table)?;
        writeln!(f, "Per role:\n\n{}", self.summary)?;
        writeln!(
            f,
            "Collector: {}  (recent operations at /, this one at /operations/{})",
            self.collector_url, self.operation_id
        )?;
        writeln!(
            f,
            "Usage of {} simulated users ({} page views and events): {u}/users, {u}/sessions, \
             {u}/events, {u}/funnels, {u}/retention, {u}/flows, {u}/cohorts; metrics at {u}/metrics",
            audience::USERS,
            self.audience.len(),
            u = self.collector_url
        )
    }
}

/// The running demo: the collector and the services keep serving until it is dropped.
pub struct Demo {
    /// The collector.
    pub collector: Collector,
    _db: TempDb,
}

impl fmt::Debug for Demo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Demo")
            .field("collector", &self.collector)
            .finish_non_exhaustive()
    }
}

struct TempDb(std::path::PathBuf);

impl Drop for TempDb {
    fn drop(&mut self) {
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", self.0.display()));
        }
    }
}

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Service {
    tracelink: Tracelink,
    addr: SocketAddr,
}

/// The setup of one service, from the values its environment would hold.
fn setup(collector: &Collector, role: &str, app_id: &str, mode: &str) -> Result<Tracelink, Error> {
    let connection = format!("{};ApplicationId={app_id}", collector.connection_string());
    Ok(tracelink::Builder::from_vars([
        ("APPLICATIONINSIGHTS_CONNECTION_STRING", connection.as_str()),
        ("OTEL_SERVICE_NAME", role),
        ("TRACELINK_PROPAGATION", mode),
    ])
    .exporter(|e| e.no_spool())
    .shutdown_timeout(Duration::from_secs(10))
    .init()?)
}

async fn serve(app: Router) -> Result<SocketAddr, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    Ok(addr)
}

async fn inventory(collector: &Collector) -> Result<Service, Error> {
    let tracelink = setup(collector, "inventory", "inventory-app", "default")?;
    let app = Router::new()
        .route(
            "/stock/{item}",
            get(|Path(item): Path<u32>| async move {
                if item % 7 == 0 {
                    return (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "out of stock and on fire",
                    );
                }
                if item % 5 == 0 {
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
                (StatusCode::OK, "in stock")
            }),
        )
        .layer(tracelink.layer());
    Ok(Service {
        addr: serve(app).await?,
        tracelink,
    })
}

#[derive(Clone)]
struct Next {
    client: reqwest_middleware::ClientWithMiddleware,
    base: String,
}

async fn forward(State(next): State<Next>, Path(item): Path<u32>) -> (StatusCode, String) {
    match next
        .client
        .get(format!("{}/{item}", next.base))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => (StatusCode::OK, r.text().await.unwrap_or_default()),
        Ok(r) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("downstream answered {}", r.status()),
        ),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

/// A service that answers `route` by forwarding to `next` with reqwest, in its own role,
/// appId and propagation mode.
struct Forwarder {
    role: &'static str,
    app_id: &'static str,
    mode: &'static str,
    route: &'static str,
    next: String,
    traceresponse: bool,
}

async fn forwarder(collector: &Collector, f: Forwarder) -> Result<Service, Error> {
    let tracelink = setup(collector, f.role, f.app_id, f.mode)?;
    let next = Next {
        client: tracelink.reqwest_client(reqwest::Client::new()),
        base: f.next,
    };
    let mut layer = tracelink.layer();
    if f.traceresponse {
        layer = layer.traceresponse();
    }
    let app = Router::new()
        .route(f.route, get(forward))
        .with_state(next)
        .layer(layer);
    Ok(Service {
        addr: serve(app).await?,
        tracelink,
    })
}

async fn orders(collector: &Collector, inventory: SocketAddr) -> Result<Service, Error> {
    forwarder(
        collector,
        Forwarder {
            role: "orders",
            app_id: "orders-app",
            mode: "hierarchical",
            route: "/orders/{item}",
            next: format!("http://{inventory}/stock"),
            traceresponse: false,
        },
    )
    .await
}

async fn web(collector: &Collector, orders: SocketAddr) -> Result<Service, Error> {
    // web answers traceresponse so the workload knows each operation id.
    forwarder(
        collector,
        Forwarder {
            role: "web",
            app_id: "web-app",
            mode: "default",
            route: "/checkout/{item}",
            next: format!("http://{orders}/orders"),
            traceresponse: true,
        },
    )
    .await
}

async fn summary(collector: &Collector) -> Result<String, Error> {
    let roles = collector.store().roles().await?;
    let mut out = format!(
        "{:<10} | {:>8} | {:>8} | {:>12} | {:>8} | {:>8}\n{}\n",
        "role",
        "requests",
        "failures",
        "dependencies",
        "p50 ms",
        "p95 ms",
        "-".repeat(69)
    );
    for r in roles {
        let _ = writeln!(
            out,
            "{:<10} | {:>8} | {:>8} | {:>12} | {:>8.1} | {:>8.1}",
            r.role, r.requests, r.failures, r.dependencies, r.p50_ms, r.p95_ms
        );
    }
    Ok(out)
}

/// Starts everything, drives the workload, flushes, and reads the transaction back.
pub async fn run() -> Result<(Demo, Report), Error> {
    // Unique per run: two demos in one process (tests) must not share a database.
    let db = std::env::temp_dir().join(format!(
        "tracelink-demo-{}-{}.db",
        std::process::id(),
        tracelink::core::SpanId::random()
    ));
    let db = TempDb(db);
    let collector = Collector::start(Config::new(&db.0).listen("127.0.0.1:0".parse()?)).await?;
    let inventory = inventory(&collector).await?;
    let orders = orders(&collector, inventory.addr).await?;
    let web = web(&collector, orders.addr).await?;

    // The workload: a browser (with the browser SDK's cookies on odd items) checking out.
    let browser = reqwest::Client::new();
    let mut shown = None;
    for item in 1..=CHECKOUTS {
        let mut req = browser.get(format!("http://{}/checkout/{item}", web.addr));
        if item % 2 == 1 {
            req = req.header(
                "cookie",
                format!(
                    "ai_user=user{}|2026-11-21T05:00:00.000Z; ai_session=session{item}|1|1",
                    item % 4
                ),
            );
        }
        let res = req.send().await?;
        let operation = res
            .headers()
            .get("traceresponse")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split('-').nth(1))
            .map(str::to_owned);
        let ok = res.status().is_success();
        let _ = res.text().await;
        if ok && shown.is_none() {
            shown = operation;
        }
    }
    // Flush every service: items are committed when their exporter has its answers.
    for s in [web, orders, inventory] {
        s.tracelink.shutdown().await;
    }
    let operation_id = shown.ok_or("no checkout succeeded")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let audience = audience::post(&collector.url(), now).await?;
    let items = collector.store().operation_items(&operation_id).await?;
    let report = Report {
        collector_url: collector.url(),
        table: query::format_table(&items),
        summary: summary(&collector).await?,
        operation_id,
        items,
        audience,
    };
    Ok((Demo { collector, _db: db }, report))
}
