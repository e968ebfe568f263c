//! `tracelink-collector`: serve the local ingestion endpoint, or query its database.
//!
//! ```text
//! tracelink-collector [serve] [--listen ADDR] [--db PATH] [--retention-days N] [--max-items N]
//!     [--max-bytes BYTES] [--max-body BYTES] [--wal-limit BYTES] [--login-token TOKEN]
//!     [--otlp-api-key KEY] [--ikeys KEY,KEY]
//! tracelink-collector query operations [--db PATH] [--limit N] [--role ROLE] [--failed]
//! tracelink-collector query operation <operation_Id> [--db PATH]
//! tracelink-collector query items [--db PATH] [--type TYPE] [--role ROLE] [--limit N]
//! ```
//!
//! Environment: `TRACELINK_COLLECTOR_LISTEN`, `TRACELINK_COLLECTOR_DB`,
//! `TRACELINK_COLLECTOR_LOGIN_TOKEN`, `TRACELINK_COLLECTOR_OTLP_API_KEY`,
//! `TRACELINK_COLLECTOR_IKEYS`.
//!
//! `serve` prints where to send telemetry and, when bound beyond loopback, the login URL, the
//! OTLP API key and the accepted instrumentation key. It stops on Ctrl-C or SIGTERM, closing
//! the database (the WAL checkpointed and truncated).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use tracelink_collector::query::{self, ItemFilter, OperationFilter};
use tracelink_collector::{Collector, Config, Retention, Store, default_db_path};

const USAGE: &str = "usage:
  tracelink-collector [serve] [--listen ADDR] [--db PATH] [--retention-days N] [--max-items N]
      [--max-bytes BYTES] [--max-body BYTES] [--wal-limit BYTES] [--login-token TOKEN]
      [--otlp-api-key KEY] [--ikeys KEY,KEY]
  tracelink-collector query operations [--db PATH] [--limit N] [--role ROLE] [--failed]
  tracelink-collector query operation <operation_Id> [--db PATH]
  tracelink-collector query items [--db PATH] [--type TYPE] [--role ROLE] [--limit N]";

struct Args {
    positional: Vec<String>,
    flags: HashMap<String, String>,
}

fn parse(args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut flags = HashMap::new();
    let mut it = args.peekable();
    while let Some(a) = it.next() {
        if let Some(name) = a.strip_prefix("--") {
            if name == "help" {
                return Err(String::new());
            }
            if name == "failed" {
                flags.insert(name.to_owned(), "true".to_owned());
                continue;
            }
            let value = it.next().ok_or(format!("--{name} needs a value"))?;
            flags.insert(name.to_owned(), value);
        } else {
            positional.push(a);
        }
    }
    Ok(Args { positional, flags })
}

fn flag<T: std::str::FromStr>(a: &Args, name: &str) -> Result<Option<T>, String> {
    a.flags
        .get(name)
        .map(|v| {
            v.parse()
                .map_err(|_| format!("--{name}: invalid value {v:?}"))
        })
        .transpose()
}

/// An error and its sources, joined with `": "`.
fn report(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}

fn db(a: &Args) -> PathBuf {
    a.flags
        .get("db")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("TRACELINK_COLLECTOR_DB").map(PathBuf::from))
        .unwrap_or_else(default_db_path)
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("{e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match args.positional.first().map(String::as_str) {
        None | Some("serve") => serve(&args),
        Some("query") => run_query(&args),
        Some(other) => Err(format!("unknown command {other:?}\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tracelink-collector: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A flag, else an environment variable.
fn setting(a: &Args, flag: &str, env: &str) -> Option<String> {
    a.flags
        .get(flag)
        .cloned()
        .or_else(|| std::env::var(env).ok())
        .filter(|v| !v.is_empty())
}

fn serve(a: &Args) -> Result<(), String> {
    let listen = setting(a, "listen", "TRACELINK_COLLECTOR_LISTEN")
        .unwrap_or_else(|| tracelink_collector::DEFAULT_LISTEN.to_owned());
    let listen = listen
        .parse()
        .map_err(|_| format!("--listen: invalid address {listen:?}"))?;
    let mut retention = Retention::default();
    if let Some(d) = flag(a, "retention-days")? {
        retention = retention.days(d);
    }
    if let Some(n) = flag(a, "max-items")? {
        retention = retention.items(n);
    }
    if let Some(b) = flag(a, "max-bytes")? {
        retention = retention.bytes(b);
    }
    let mut config = Config::new(db(a)).listen(listen).retention(retention);
    if let Some(b) = flag(a, "max-body")? {
        config = config.max_body(b);
    }
    if let Some(b) = flag(a, "wal-limit")? {
        config = config.wal_limit(b);
    }
    if let Some(t) = setting(a, "login-token", "TRACELINK_COLLECTOR_LOGIN_TOKEN") {
        config = config.login_token(t);
    }
    if let Some(k) = setting(a, "otlp-api-key", "TRACELINK_COLLECTOR_OTLP_API_KEY") {
        config = config.otlp_api_key(k);
    }
    if let Some(keys) = setting(a, "ikeys", "TRACELINK_COLLECTOR_IKEYS") {
        for k in keys.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            config = config.instrumentation_key(k);
        }
    }
    let path = db(a);
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let c = Collector::start(config).await.map_err(|e| report(&e))?;
        println!(
            "tracelink-collector listening on {} (database {})",
            c.url(),
            path.display()
        );
        if c.login_token().is_some() {
            println!("pages and API: {}", c.login_url());
        }
        println!("connection string: {}", c.connection_string());
        match c.otlp_api_key() {
            Some(key) => println!(
                "OTLP/HTTP: OTEL_EXPORTER_OTLP_ENDPOINT={} OTEL_EXPORTER_OTLP_HEADERS={}={key}",
                c.url(),
                tracelink_collector::OTLP_API_KEY_HEADER
            ),
            None => println!("OTLP/HTTP: OTEL_EXPORTER_OTLP_ENDPOINT={}", c.url()),
        }
        stopped().await;
        c.shutdown().await;
        Ok(())
    })
}

/// Ctrl-C, or SIGTERM where there is one.
async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn run_query(a: &Args) -> Result<(), String> {
    let store = Store::open(&db(a), Retention::default()).map_err(|e| report(&e))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| e.to_string())?;
    let read = |e: tracelink_collector::StoreError| report(&e);
    match a.positional.get(1).map(String::as_str) {
        Some("operation") => {
            let id = a
                .positional
                .get(2)
                .ok_or("query operation needs an operation_Id")?;
            let items = rt.block_on(store.operation_items(id)).map_err(read)?;
            if items.is_empty() {
                return Err(format!("no items for operation {id}"));
            }
            print!("{}", query::format_table(&items));
            Ok(())
        }
        Some("operations") => {
            let mut f = OperationFilter::default();
            f.limit = flag(a, "limit")?;
            f.role = a.flags.get("role").cloned();
            f.failed = a.flags.get("failed").map(|_| true);
            for o in rt.block_on(store.operations(&f)).map_err(read)? {
                println!(
                    "{} | {} | {} | {:.1} ms | {} | {}",
                    o.start,
                    o.operation_id,
                    o.root_name.as_deref().unwrap_or("-"),
                    o.duration_ms,
                    o.roles.join(","),
                    if o.failed { "failed" } else { "ok" }
                );
            }
            Ok(())
        }
        Some("items") => {
            let mut f = ItemFilter::default();
            f.item_type = a.flags.get("type").cloned();
            f.role = a.flags.get("role").cloned();
            f.limit = flag(a, "limit")?;
            let items = rt.block_on(store.items(&f)).map_err(read)?;
            print!("{}", query::format_table(&items));
            Ok(())
        }
        _ => Err(format!("unknown query\n{USAGE}")),
    }
}
