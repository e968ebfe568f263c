//! Ingestion throughput: concurrent posters send gzipped batches of 500 envelopes (what
//! tracelink's exporter sends) to a collector on 127.0.0.1 with a fresh database, and the
//! rate of items answered as accepted (committed to SQLite) is printed.
//!
//! `cargo bench -p tracelink-collector --bench ingest`
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use tracelink_collector::{Collector, Config};
use tracelink_core::model::{Request, tags};
use tracelink_core::{Correlation, Propagation, SamplingDecision};

const POSTERS: usize = 4;
const POSTS_PER_POSTER: usize = 100;
const BATCH: usize = 500;

fn batch() -> Vec<u8> {
    let items: Vec<_> = (0..BATCH)
        .map(|i| {
            let c = Correlation::new_root_named(
                &Propagation::default(),
                SamplingDecision::KEEP_ALL,
                Some("GET /orders/{id}"),
            );
            let mut r = Request::new(
                "GET /orders/{id}",
                "200",
                Duration::from_micros(1500 + i as u64),
            );
            r.url = format!("http://orders.internal:8080/orders/{i}");
            let mut t = c.to_item(r);
            t.tags.insert(tags::CLOUD_ROLE, "orders-api");
            t
        })
        .collect();
    tracelink_export::encode_batch(&items, "00000000-0000-0000-0000-000000000000", 1)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = std::env::temp_dir().join(format!("tracelink-ingest-bench-{}.db", std::process::id()));
        let c = Collector::start(Config::new(&db).listen("127.0.0.1:0".parse().unwrap())).await.unwrap();
        let url = format!("{}/v2.1/track", c.url());
        let body = bytes::Bytes::from(batch());
        let client = reqwest::Client::new();
        // Warm up.
        client.post(&url).header("content-encoding", "gzip").body(body.clone()).send().await.unwrap();
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..POSTERS {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            tasks.push(tokio::spawn(async move {
                let mut accepted = 0u64;
                for _ in 0..POSTS_PER_POSTER {
                    let r = client.post(&url).header("content-encoding", "gzip").body(body.clone()).send().await.unwrap();
                    assert_eq!(r.status(), 200);
                    let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
                    accepted += v["itemsAccepted"].as_u64().unwrap();
                }
                accepted
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "ingest: {total} items in {secs:.2} s = {:.0} items/s ({POSTERS} posters, batches of {BATCH}, gzip, {} bytes per batch)",
            total as f64 / secs,
            body.len()
        );
        c.shutdown().await;
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
        }
    });
}
