//! How close tenure's SCIM client comes to the sandbox's own capacity for creates, side by
//! side in one run: wrk (32 connections) measures what the sandbox can take, then the client
//! creates 10,000 users at several concurrencies into a fresh sandbox of the same kind.
//!
//! cargo bench -p tenure --bench client_vs_capacity
//! Environment: BENCH_CREATES (default 10000), BENCH_SECONDS for wrk (default 10).

use scim::Dialect;
use scim_client::{ClientConfig, ScimClient, Token};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

mod common;

use common::{sandbox, wrk_creates, Sandbox, TOKEN};

async fn client_creates(s: &Sandbox, n: usize, concurrency: usize) -> (f64, u64) {
    let client = ScimClient::new(ClientConfig::new(&s.base, Dialect::Monday), Token::new(TOKEN)).unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let mut tasks = vec![];
    for _ in 0..concurrency {
        let (c, next) = (client.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let name = format!("client-{concurrency}-{i}@example.com");
                let user = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name,
                    "displayName": "Client User", "name": {"givenName": "Client", "familyName": "User"},
                    "emails": [{"value": name, "type": "work", "primary": true}], "active": true});
                c.create_user(&user).await.unwrap_or_else(|e| panic!("create {i}: {e}"));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    (n as f64 / t.elapsed().as_secs_f64(), client.stats().retries)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_CREATES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let seconds: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let dir = std::env::temp_dir().join(format!("tenure-client-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let capacity = {
        let s = sandbox(&dir, "capacity");
        wrk_creates(&s, &dir, seconds)
    };
    eprintln!("sandbox capacity (wrk -t2 -c32 -d{seconds}s POST /Users): {capacity:.0} creates/s");
    let mut rows = vec![];
    for concurrency in [8, 16, 32, 64] {
        let s = sandbox(&dir, &format!("client{concurrency}"));
        let (rate, retries) = client_creates(&s, n, concurrency).await;
        eprintln!("client, {concurrency} in flight: {rate:.0} creates/s ({retries} retries)");
        rows.push((concurrency, rate, retries));
    }
    let best = rows.iter().cloned().fold((0, 0.0, 0), |b, r| if r.1 > b.1 { r } else { b });
    println!("\n| what | creates/s | share of capacity |\n|---|---|---|");
    println!("| sandbox capacity, wrk -t2 -c32 -d{seconds}s | {capacity:.0} | 100% |");
    for (c, rate, retries) in &rows {
        println!(
            "| scim-client, {n} creates, {c} in flight ({retries} retries) | {rate:.0} | {:.0}% |",
            100.0 * rate / capacity
        );
    }
    println!("\nbest: {} in flight, {:.0}% of capacity [bar: at least 90%]", best.0, 100.0 * best.1 / capacity);
    let _ = std::fs::remove_dir_all(&dir);
}
