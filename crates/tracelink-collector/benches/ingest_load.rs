//! Sustained ingestion load against the collector binary, as a new user would run it.
//!
//! Starts `tracelink-collector serve` on 127.0.0.1 with a fresh database (or uses `--url`),
//! and posts gzipped newline-delimited batches of real SDK envelopes over 8 keep-alive
//! connections for `--seconds`. Each batch holds 500 envelopes of 100 operations: per
//! operation, the browser SDK's fetch dependency, the Node SDK's request and dependency, and
//! the Python exporter's request and dependency, chained parent to child (envelopes from
//! `tests/data/captures`, 0.6 to 1.2 KB each, with fresh ids and times). A pool of distinct
//! bodies is built before the clock starts and rotated: 2,400 bodies, 1,200,000 items, more than
//! the default retention keeps, so that an operation id comes back only after its earlier
//! items were deleted (as in real traffic, where each operation is new).
//!
//! Every second it prints the items answered as accepted (committed), the collector's RSS and
//! the size of the database and its WAL; at the end the rate, and the WAL after shutdown.
//!
//! ```text
//! cargo bench -p tracelink-collector --bench ingest-load -- [--seconds 20] [--connections 8]
//!     [--batch 500] [--operations 100] [--bodies 2400] [--url http://127.0.0.1:7421] [--db PATH]
//!     [--retention-bytes N] [--max-items N] [--collector PATH]
//! ```
//!
//! `--collector` runs another build of the collector binary (to compare two builds in turns).
#![allow(missing_docs)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

const BROWSER: &str =
    include_str!("../../../tests/data/captures/browser-applicationinsights-web-3.4.4.ndjson");
const NODE: &str =
    include_str!("../../../tests/data/captures/node-applicationinsights-2.9.8-w3c.ndjson");
const PYTHON: &str =
    include_str!("../../../tests/data/captures/python-azure-monitor-exporter-1.0.0b58.ndjson");

struct Options {
    seconds: u64,
    connections: usize,
    batch: usize,
    operations: usize,
    bodies: usize,
    url: Option<String>,
    db: Option<PathBuf>,
    collector: Option<PathBuf>,
    extra: Vec<String>,
}

fn options() -> Options {
    let mut o = Options {
        seconds: 20,
        connections: 8,
        batch: 500,
        operations: 100,
        bodies: 2400,
        url: None,
        db: None,
        collector: None,
        extra: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--seconds" => o.seconds = value().parse().expect("--seconds"),
            "--connections" => o.connections = value().parse().expect("--connections"),
            "--batch" => o.batch = value().parse().expect("--batch"),
            "--operations" => o.operations = value().parse().expect("--operations"),
            "--bodies" => o.bodies = value().parse().expect("--bodies"),
            "--url" => o.url = Some(value()),
            "--db" => o.db = Some(value().into()),
            "--collector" => o.collector = Some(value().into()),
            "--retention-bytes" | "--max-items" => {
                let flag = if a == "--retention-bytes" {
                    "--max-bytes"
                } else {
                    "--max-items"
                };
                o.extra.extend([flag.to_owned(), value()]);
            }
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    o
}

/// The first envelope of `capture` whose `baseType` is `base_type`.
fn template(capture: &str, base_type: &str) -> Value {
    capture
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["data"]["baseType"] == base_type)
        .unwrap_or_else(|| panic!("no {base_type} in capture"))
}

struct Templates([Value; 5]);

impl Templates {
    fn new() -> Self {
        Self([
            template(BROWSER, "RemoteDependencyData"),
            template(NODE, "RequestData"),
            template(NODE, "RemoteDependencyData"),
            template(PYTHON, "RequestData"),
            template(PYTHON, "RemoteDependencyData"),
        ])
    }

    /// The five envelopes of one operation, each the parent of the next. Ids are spread as
    /// random W3C ids are (a hash of `seq`), so that index inserts land all over the indexes.
    fn operation(&self, seq: u64, out: &mut Vec<u8>) {
        let trace = format!("{:016x}{:016x}", mix(seq), mix(seq ^ 0x5bd1_e995));
        let now = SystemTime::now();
        let mut parent: Option<String> = None;
        for (i, t) in self.0.iter().enumerate() {
            let mut v = t.clone();
            let span = format!("{:016x}", mix(seq.wrapping_mul(8) + i as u64 + 1));
            // Node writes `|T.S.` ids, the others the bare span id (tests/data/captures/README.md).
            let id = if i == 1 || i == 2 || i == 0 {
                format!("|{trace}.{span}.")
            } else {
                span
            };
            let tags = v["tags"].as_object_mut().expect("tags");
            tags.insert("ai.operation.id".into(), trace.clone().into());
            match &parent {
                Some(p) => tags.insert("ai.operation.parentId".into(), p.clone().into()),
                None => tags.remove("ai.operation.parentId"),
            };
            v["data"]["baseData"]["id"] = id.clone().into();
            let time = now + Duration::from_millis(i as u64);
            v["time"] = tracelink_core::wire_time::format_time(time).into();
            serde_json::to_writer(&mut *out, &v).expect("json");
            out.push(b'\n');
            parent = Some(id);
        }
    }
}

/// splitmix64: distinct inputs, well-spread outputs.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).expect("gzip");
    e.finish().expect("gzip")
}

/// CPU time of a process (user + system), in clock ticks (`/proc/PID/stat`).
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Busy and total CPU time of the machine, in clock ticks (`/proc/stat`).
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = f.iter().take(8).sum();
    let idle = f.get(3)? + f.get(4)?;
    Some((total - idle, total))
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// Starts the collector binary and reads its URL from what it prints.
fn spawn_collector(bin: Option<&Path>, db: &Path, extra: &[String]) -> (Child, String) {
    let bin = bin.unwrap_or(Path::new(env!("CARGO_BIN_EXE_tracelink-collector")));
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start tracelink-collector");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("collector exited")
            .expect("collector output");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().expect("url").to_owned();
        }
    };
    // Keep draining its output so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, url)
}

fn main() {
    let o = options();
    let templates = Templates::new();
    let built = Instant::now();
    // Built on two threads: each body takes a few milliseconds.
    let build = |first: usize, count: usize| {
        let mut out = Vec::with_capacity(count);
        let mut plain_bytes = 0usize;
        for b in first..first + count {
            let mut plain = Vec::new();
            for op in 0..o.operations {
                templates.operation((b * o.operations + op) as u64 + 1, &mut plain);
            }
            // Batches of `batch` items: 5 items per operation.
            let lines: Vec<&[u8]> = plain
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .collect();
            let mut body = Vec::new();
            for l in lines.iter().cycle().take(o.batch) {
                body.extend_from_slice(l);
                body.push(b'\n');
            }
            plain_bytes += body.len();
            out.push(bytes::Bytes::from(gzip(&body)));
        }
        (out, plain_bytes)
    };
    let half = o.bodies / 2;
    let ((mut bodies, a), (rest, b)) = std::thread::scope(|s| {
        let first = s.spawn(|| build(0, half));
        let second = build(half, o.bodies - half);
        (first.join().expect("build"), second)
    });
    bodies.extend(rest);
    let plain_bytes = a + b;
    println!(
        "built {} bodies in {:.1} s",
        bodies.len(),
        built.elapsed().as_secs_f64()
    );
    let gz_bytes: usize = bodies.iter().map(|b| b.len()).sum();
    println!(
        "{} bodies of {} items: {:.0} bytes per item, {:.1} KiB gzipped per body",
        bodies.len(),
        o.batch,
        plain_bytes as f64 / (o.bodies * o.batch) as f64,
        gz_bytes as f64 / o.bodies as f64 / 1024.0
    );

    let db = o.db.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("tracelink-ingest-load-{}.db", std::process::id()))
    });
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    let (mut child, url) = match &o.url {
        Some(u) => (None, u.clone()),
        None => {
            for ext in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
            }
            let (c, u) = spawn_collector(o.collector.as_deref(), &db, &o.extra);
            (Some(c), u)
        }
    };
    let pid = child.as_ref().map(Child::id);
    println!("collector at {url}, database {}", db.display());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let accepted = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let bodies = Arc::new(bodies);
    let endpoint = format!("{url}/v2.1/track");
    let started = Instant::now();
    let cpu_before = (
        pid.and_then(|p| cpu_ticks(&p.to_string())),
        cpu_ticks("self"),
        machine_ticks(),
    );
    let mut samples: Vec<(f64, u64, Option<u64>, u64, u64)> = Vec::new();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(o.connections)
            .build()
            .expect("client");
        let mut tasks = Vec::new();
        for c in 0..o.connections {
            let (client, endpoint, bodies) = (client.clone(), endpoint.clone(), bodies.clone());
            let (accepted, failed, stop) = (accepted.clone(), failed.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let body = bodies[i % bodies.len()].clone();
                    i += o.connections;
                    let r = client
                        .post(&endpoint)
                        .header("content-type", "application/x-json-stream")
                        .header("content-encoding", "gzip")
                        .body(body)
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status() == 200 => {
                            let text = r.text().await.unwrap_or_default();
                            let v: Value = serde_json::from_str(&text).unwrap_or_default();
                            accepted.fetch_add(
                                v["itemsAccepted"].as_u64().unwrap_or(0),
                                Ordering::Relaxed,
                            );
                        }
                        Ok(r) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            eprintln!("status {}: {}", r.status(), r.text().await.unwrap_or_default());
                        }
                        Err(e) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            eprintln!("request failed: {e}");
                        }
                    }
                }
            }));
        }
        let mut last = 0u64;
        for s in 1..=o.seconds {
            tokio::time::sleep_until((started + Duration::from_secs(s)).into()).await;
            let now = accepted.load(Ordering::Relaxed);
            let rss = pid.and_then(rss_kib);
            let sample = (
                started.elapsed().as_secs_f64(),
                now,
                rss,
                size(&wal),
                size(&db),
            );
            println!(
                "{:>4.0} s {:>9} items {:>8} items/s  rss {:>7.1} MiB  wal {:>7.1} MiB  db {:>8.1} MiB",
                sample.0,
                now,
                now - last,
                rss.map_or(0.0, |k| k as f64 / 1024.0),
                mib(sample.3),
                mib(sample.4)
            );
            last = now;
            samples.push(sample);
        }
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = t.await;
        }
    });
    let secs = started.elapsed().as_secs_f64();
    let total = accepted.load(Ordering::Relaxed);
    // Where the machine's CPU went during the run (100 ticks per second on Linux).
    if let (Some(c0), Some(l0), Some((b0, t0))) = cpu_before
        && let (Some(c1), Some(l1), Some((b1, t1))) = (
            pid.and_then(|p| cpu_ticks(&p.to_string())),
            cpu_ticks("self"),
            machine_ticks(),
        )
    {
        let cores = |ticks: u64| ticks as f64 / 100.0 / secs;
        let (collector, tool) = (c1 - c0, l1 - l0);
        println!(
            "cpu: collector {:.2} cores, load tool {:.2} cores, other processes {:.2} cores, idle {:.2} cores",
            cores(collector),
            cores(tool),
            cores((b1 - b0).saturating_sub(collector + tool)),
            cores((t1 - t0) - (b1 - b0)),
        );
    }
    let max_wal = samples.iter().map(|s| s.3).max().unwrap_or(0);
    let rss: Vec<u64> = samples.iter().filter_map(|s| s.2).collect();
    println!(
        "ingest-load: {total} items accepted in {secs:.1} s = {:.0} items/s ({} connections, batches of {}, {} failed requests)",
        total as f64 / secs,
        o.connections,
        o.batch,
        failed.load(Ordering::Relaxed)
    );
    if let (Some(first), Some(max)) = (
        rss.get(rss.len().min(10).saturating_sub(1)),
        rss.iter().max(),
    ) {
        println!(
            "rss: {:.1} MiB at 10 s, {:.1} MiB at the end, {:.1} MiB at most; wal at most {:.1} MiB",
            *first as f64 / 1024.0,
            *rss.last().unwrap_or(first) as f64 / 1024.0,
            *max as f64 / 1024.0,
            mib(max_wal)
        );
    }
    if let Some(c) = child.as_mut() {
        // SIGINT: the collector stops serving and closes its database.
        let _ = Command::new("kill")
            .args(["-INT", &c.id().to_string()])
            .status();
        let _ = c.wait();
        println!(
            "after shutdown: wal {:.1} MiB (exists: {}), db {:.1} MiB",
            mib(size(&wal)),
            wal.exists(),
            mib(size(&db))
        );
        if o.db.is_none() {
            for ext in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
            }
        }
    }
}
