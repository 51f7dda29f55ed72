//! How close tenure's SCIM client comes to the sandbox's own capacity for creates, side by
//! side in one run: wrk (32 connections) measures what the sandbox can take, then the client
//! creates 10,000 users at several concurrencies into a fresh sandbox of the same kind.
//!
//! cargo bench -p tenure --bench client_vs_capacity
//! Environment: BENCH_CREATES (default 10000), BENCH_SECONDS for wrk (default 10).

use scim::Dialect;
use scim_client::{ClientConfig, ScimClient, Token};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

const TOKEN: &str = "bench-token-0123456789";

struct Sandbox {
    child: Child,
    base: String,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sandbox(dir: &std::path::Path, tag: &str) -> Sandbox {
    let child = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args(["sandbox", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.join(format!("{tag}.db")))
        .env("TENURE_SANDBOX_TOKEN", TOKEN)
        .env("TENURE_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start tenure sandbox");
    let mut s = Sandbox { child, base: String::new() };
    let mut out = BufReader::new(s.child.stdout.take().expect("piped"));
    let mut line = String::new();
    while out.read_line(&mut line).unwrap_or(0) > 0 {
        if let Some(rest) = line.strip_prefix("tenure sandbox listening on ") {
            s.base = rest.split_whitespace().next().unwrap_or_default().to_string();
            break;
        }
        line.clear();
    }
    assert!(!s.base.is_empty(), "sandbox did not start");
    std::thread::spawn(move || for _ in out.lines() {});
    s
}

fn wrk_creates(s: &Sandbox, dir: &std::path::Path, seconds: u64) -> f64 {
    let script = dir.join("post.lua");
    std::fs::write(
        &script,
        r#"
local k = 0
function setup(thread) k = k + 1; thread:set("tid", k) end
local i = 0
function request()
  i = i + 1
  local name = 'cap-' .. tid .. '-' .. i .. '@example.com'
  local body = '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"' .. name .. '","displayName":"Cap User","name":{"givenName":"Cap","familyName":"User"},"emails":[{"value":"' .. name .. '","type":"work","primary":true}],"active":true}'
  return wrk.format('POST', '/scim/v2/Users', {['Authorization'] = 'Bearer BENCH', ['Content-Type'] = 'application/scim+json'}, body)
end
"#
        .replace("BENCH", TOKEN),
    )
    .unwrap();
    let origin = s.base.trim_end_matches("/scim/v2");
    let out = Command::new("wrk")
        .args(["-t2", "-c32", &format!("-d{seconds}s"), "-s"])
        .arg(&script)
        .arg(origin)
        .output()
        .expect("wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("Non-2xx"), "wrk saw failures: {text}");
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("wrk output: {text}"))
}

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
