//! The head-to-head load benchmark (BENCHMARKS.md): the same hello-world axum handler served
//! bare, with tracelink, and with the OpenTelemetry stack a Rust user picks today, and the
//! same realistic handler (spans, logs, a backend call: [`real`]) served the same ways; a
//! closed-loop generator on the other core; the variants interleaved round by round so that
//! drift hits all of them alike.
//!
//! ```text
//! cargo run --release -p tracelink-load -- [--duration SECS] [--warmup SECS] [--rounds N]
//!     [--concurrency N] [--variants bare,tracelink,...] [--perf DIR] [--smoke]
//! ```
//!
//! A variant written `name@path` is served by the `tracelink-load` binary at `path` (another
//! build of this benchmark): two builds of the code compared in one interleaved run.
//!
//! `peer-forward` and `peer-real` (the peer stack calling the backend through
//! `reqwest-tracing`) are a separate binary on OpenTelemetry 0.32: build it first with
//! `cargo build --release --manifest-path benches/load-peer/Cargo.toml`. Without it they are
//! skipped, with a note.
//!
//! Each server runs as its own process pinned to core 0 (`taskset`); the generator (hyper,
//! one keep-alive connection per concurrent client) runs pinned to core 1, as does the bare
//! backend of the forwarding and realistic variants. Per variant it reports requests/s, p50
//! and p99 latency, server CPU time per request (from `/proc/<pid>/stat`, all threads: the
//! exporter's and the batch span processor's work counts), heap allocations per request (a
//! counting allocator in the server), and peak RSS (`VmHWM`).

mod real;
mod server;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};

struct Options {
    duration: Duration,
    warmup: Duration,
    rounds: usize,
    concurrency: usize,
    variants: Vec<String>,
    /// Where to write a `perf record` profile of each server's measured window.
    perf: Option<std::path::PathBuf>,
}

fn options() -> Options {
    let mut o = Options {
        duration: Duration::from_secs(5),
        warmup: Duration::from_secs(1),
        rounds: 3,
        concurrency: 32,
        variants: [
            "bare",
            "tracelink",
            "tracelink10",
            "tracelink0",
            "peer",
            "tracelink-forward",
            "bare-real",
            "tracelink-real",
            "tracelink10-real",
            "tracelink0-real",
            "tracelink-otel-real",
            "tracelink-live-real",
            "tracelink-liveidle-real",
            "tracelink-metrics-real",
            "tracelink-metrics0-real",
            "peer-real",
        ]
        .map(String::from)
        .to_vec(),
        perf: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        let secs = || Duration::from_secs_f64(value.parse().expect("seconds"));
        match args[i].as_str() {
            "--duration" => o.duration = secs(),
            "--warmup" => o.warmup = secs(),
            "--rounds" => o.rounds = value.parse().expect("rounds"),
            "--concurrency" => o.concurrency = value.parse().expect("concurrency"),
            "--variants" => o.variants = value.split(',').map(str::to_owned).collect(),
            "--perf" => o.perf = Some(value.into()),
            "--smoke" => {
                o.duration = Duration::from_millis(500);
                o.warmup = Duration::from_millis(200);
                o.rounds = 1;
                o.concurrency = 8;
                i += 1;
                continue;
            }
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    o
}

/// A server process pinned to a core.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The peer stack's variants that call the backend live in their own binary (OpenTelemetry
/// 0.32): `$TRACELINK_LOAD_PEER`, or `benches/load-peer/target/release/tracelink-load-peer`.
fn peer_binary() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("TRACELINK_LOAD_PEER") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("own path");
    // target/release/tracelink-load → the workspace root is three levels up.
    let root = exe
        .ancestors()
        .nth(3)
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    root.join("benches/load-peer/target/release/tracelink-load-peer")
}

/// Whether the variant is served by the peer binary of `benches/load-peer`.
fn in_peer_binary(variant: &str) -> bool {
    matches!(variant, "peer-forward" | "peer-real")
}

/// Whether the variant's handler calls the bare backend.
fn calls_backend(variant: &str) -> bool {
    let name = base_name(variant);
    name.ends_with("-forward") || name.ends_with("-real")
}

/// The variant without the `@binary` of another build.
fn base_name(variant: &str) -> &str {
    variant.split('@').next().unwrap_or(variant)
}

/// Serves `variant` (`name`, or `name@binary`: served by another build of this benchmark, to
/// compare two builds of the code in one interleaved run).
fn spawn(variant: &str, core: u32, backend: Option<SocketAddr>) -> Server {
    let (variant, build) = match variant.split_once('@') {
        Some((v, b)) => (v, Some(std::path::PathBuf::from(b))),
        None => (variant, None),
    };
    let exe = match build {
        Some(b) => b,
        None if in_peer_binary(variant) => peer_binary(),
        None => std::env::current_exe().expect("own path"),
    };
    let mut cmd = Command::new("taskset");
    cmd.arg("-c")
        .arg(core.to_string())
        .arg(exe)
        .arg("serve")
        .arg(variant);
    if let Some(b) = backend {
        cmd.arg(b.to_string());
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn server (is taskset installed?)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read address");
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .expect("listening line")
        .parse()
        .expect("address");
    Server { child, addr }
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process, in ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

/// A `/proc/<pid>/status` field in KiB (`VmHWM`: peak RSS, `VmRSS`: RSS now).
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn get(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    addr: SocketAddr,
    path: &str,
) -> Option<Bytes> {
    let req = http::Request::get(path)
        .header("host", addr.to_string())
        .body(Empty::new())
        .ok()?;
    let res = sender.send_request(req).await.ok()?;
    res.into_body().collect().await.ok().map(|b| b.to_bytes())
}

async fn connect(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    sender
}

async fn allocations(addr: SocketAddr) -> u64 {
    let mut s = connect(addr).await;
    get(&mut s, addr, "/__alloc")
        .await
        .and_then(|b| String::from_utf8_lossy(&b).parse().ok())
        .unwrap_or(0)
}

#[derive(Clone, Debug, Default)]
struct Measure {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us_per_req: f64,
    allocs_per_req: f64,
    peak_rss_mib: f64,
    /// RSS when the measurement started (after warm-up) and when it ended.
    rss_start_mib: f64,
    rss_end_mib: f64,
}

async fn measure(variant: &str, o: &Options, ticks_per_s: f64) -> Measure {
    let backend = calls_backend(variant).then(|| spawn("bare", 1, None));
    let server = spawn(variant, 0, backend.as_ref().map(|b| b.addr));
    let addr = server.addr;
    let pid = server.child.id();
    let start = Instant::now();
    let warm_end = start + o.warmup;
    let end = warm_end + o.duration;
    let mut tasks = Vec::new();
    for c in 0..o.concurrency {
        tasks.push(tokio::spawn(async move {
            let mut s = connect(addr).await;
            let mut lat = Vec::new();
            let mut n = c as u64;
            loop {
                let t = Instant::now();
                if t >= end {
                    break;
                }
                n += 1;
                if get(&mut s, addr, &format!("/hello/{}", n % 1000))
                    .await
                    .is_none()
                {
                    s = connect(addr).await;
                    continue;
                }
                if t >= warm_end {
                    lat.push(t.elapsed().as_micros() as u32);
                }
            }
            lat
        }));
    }
    tokio::time::sleep_until(warm_end.into()).await;
    // `--perf DIR`: the server's measured window, sampled by `perf record` (its arguments from
    // `TRACELINK_LOAD_PERF_ARGS`, else on-CPU samples without call stacks).
    let perf = o.perf.as_ref().map(|dir| {
        let args = std::env::var("TRACELINK_LOAD_PERF_ARGS")
            .unwrap_or_else(|_| "-e cpu-clock -F 4999".to_owned());
        Command::new("perf")
            .arg("record")
            .args(args.split_whitespace())
            .arg("-o")
            .arg(dir.join(format!("{}.data", variant.replace(['/', '@'], "_"))))
            .arg("-p")
            .arg(pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("perf")
    });
    let (cpu0, alloc0) = (cpu_ticks(pid), allocations(addr).await);
    let rss0 = status_kib(pid, "VmRSS:");
    tokio::time::sleep_until(end.into()).await;
    let (cpu1, alloc1) = (cpu_ticks(pid), allocations(addr).await);
    if let Some(mut p) = perf {
        // SIGINT: perf writes its data and exits.
        let _ = Command::new("kill")
            .args(["-INT", &p.id().to_string()])
            .status();
        let _ = p.wait();
    }
    let rss1 = status_kib(pid, "VmRSS:");
    let mut lat: Vec<u32> = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("client task"));
    }
    lat.sort_unstable();
    let n = lat.len().max(1) as f64;
    let pct = |p: f64| {
        f64::from(
            lat.get(((lat.len().saturating_sub(1)) as f64 * p) as usize)
                .copied()
                .unwrap_or(0),
        )
    };
    Measure {
        rps: n / o.duration.as_secs_f64(),
        p50_us: pct(0.5),
        p99_us: pct(0.99),
        cpu_us_per_req: (cpu1 - cpu0) as f64 / ticks_per_s * 1e6 / n,
        allocs_per_req: alloc1.saturating_sub(alloc0).saturating_sub(2) as f64 / n,
        peak_rss_mib: status_kib(pid, "VmHWM:") as f64 / 1024.0,
        rss_start_mib: rss0 as f64 / 1024.0,
        rss_end_mib: rss1 as f64 / 1024.0,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("serve") {
        let variant = args.next().unwrap_or_else(|| "bare".into());
        return server::run(&variant, args.next());
    }
    let mut o = options();
    let peer = peer_binary();
    if !peer.exists() {
        let missing: Vec<String> = o
            .variants
            .iter()
            .filter(|v| in_peer_binary(v))
            .cloned()
            .collect();
        if !missing.is_empty() {
            eprintln!(
                "skipping {}: {} is missing (cargo build --release --manifest-path benches/load-peer/Cargo.toml)",
                missing.join(", "),
                peer.display()
            );
            o.variants.retain(|v| !in_peer_binary(v));
        }
    }
    // The generator runs on core 1; servers on core 0.
    let _ = Command::new("taskset")
        .args(["-p", "-c", "1", &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status();
    let ticks = clock_ticks();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut results: BTreeMap<String, Vec<Measure>> = BTreeMap::new();
    for round in 0..o.rounds {
        for v in &o.variants {
            let m = rt.block_on(measure(v, &o, ticks));
            eprintln!(
                "round {round} {v}: {:.0} req/s, p50 {:.0} µs, p99 {:.0} µs, {:.1} µs CPU/req, {:.1} allocs/req, RSS {:.1} -> {:.1} MiB",
                m.rps,
                m.p50_us,
                m.p99_us,
                m.cpu_us_per_req,
                m.allocs_per_req,
                m.rss_start_mib,
                m.rss_end_mib
            );
            results.entry(v.clone()).or_default().push(m);
        }
    }
    let med = |v: &str, f: fn(&Measure) -> f64| {
        results.get(v).map(|ms| median(ms.iter().map(f).collect()))
    };
    // Each variant is compared with the bare server and the peer stack serving its handler.
    let baselines = |v: &str| match base_name(v).ends_with("-real") {
        true => ("bare-real", "peer-real"),
        false => ("bare", "peer"),
    };
    println!(
        "| variant | req/s | p50 µs | p99 µs | server CPU µs/req | CPU added µs/req | allocs/req | peak RSS MiB | RSS MiB start -> end | req/s vs bare | req/s vs peer |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for v in &o.variants {
        let (bare, peer) = baselines(v);
        let g = |f: fn(&Measure) -> f64| med(v, f).unwrap_or(0.0);
        let (rps, cpu) = (g(|m| m.rps), g(|m| m.cpu_us_per_req));
        let ratio = |base: Option<f64>| {
            base.filter(|b| *b > 0.0)
                .map_or("-".to_owned(), |b| format!("{:.2}x", rps / b))
        };
        let added =
            med(bare, |m| m.cpu_us_per_req).map_or("-".to_owned(), |b| format!("{:.1}", cpu - b));
        println!(
            "| {v} | {rps:.0} | {:.0} | {:.0} | {cpu:.1} | {added} | {:.1} | {:.1} | {:.1} -> {:.1} | {} | {} |",
            g(|m| m.p50_us),
            g(|m| m.p99_us),
            g(|m| m.allocs_per_req),
            g(|m| m.peak_rss_mib),
            g(|m| m.rss_start_mib),
            g(|m| m.rss_end_mib),
            ratio(med(bare, |m| m.rps)),
            ratio(med(peer, |m| m.rps)),
        );
    }
    for (ours, bare, peer) in [
        ("tracelink", "bare", "peer"),
        ("tracelink-real", "bare-real", "peer-real"),
        ("tracelink-otel-real", "bare-real", "peer-real"),
    ] {
        let cpu = |v: &str| med(v, |m| m.cpu_us_per_req);
        let rps = |v: &str| med(v, |m| m.rps);
        if let (Some(bc), Some(pc), Some(tc), Some(pr), Some(tr)) =
            (cpu(bare), cpu(peer), cpu(ours), rps(peer), rps(ours))
        {
            println!(
                "\nCPU added per request over {bare}: {ours} {:.1} µs, {peer} {:.1} µs ({:.2}x of the peer's); req/s {:.2}x the peer's.",
                tc - bc,
                pc - bc,
                (tc - bc) / (pc - bc),
                tr / pr,
            );
        }
    }
    let cores = Command::new("nproc")
        .arg("--all")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    println!(
        "\n{} rounds, {:?} measured after {:?} warm-up, {} connections; {} cores: servers on core 0, generator on core 1.",
        o.rounds,
        o.duration,
        o.warmup,
        o.concurrency,
        cores.trim()
    );
}
