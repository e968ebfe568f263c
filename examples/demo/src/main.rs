//! `cargo run --release -p tracelink-demo [-- --once]`: runs the demo, prints one correlated
//! transaction, a per-role summary and the collector's URL, then keeps serving until Ctrl-C
//! (or exits at once with `--once`).

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let once = std::env::args().any(|a| a == "--once");
    let (demo, report) = tracelink_demo::run().await?;
    println!("{report}");
    if !once {
        println!("Serving until Ctrl-C.");
        let _ = tokio::signal::ctrl_c().await;
    }
    demo.collector.shutdown().await;
    Ok(())
}
