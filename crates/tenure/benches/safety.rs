//! Issue 13's bars, with the real binary against the real sandbox:
//! (r) recovery of the intents a kill -9 leaves open (about 1,500 and more) at 20 ms target
//!     latency: the time recovery takes, from the engine's own debug line, and the whole
//!     `tenure plan` that runs it.
//!
//! (f) a 7,000-term `or` filter (251 KB) sent to the sandbox: the time to its SCIM error;
//! (p) reads of the sandbox while PATCHes of 10,000 operations (refused) and of 1,000 (the
//!     most allowed, applied) go on: read latency p50/p99, against reads alone.
//!
//! cargo bench -p tenure --bench safety
//! Environment: BENCH_RECOVERY_WORKERS (default 2000), BENCH_TRIALS (default 3).

mod common;

use common::{command as tenure, connect, sandbox_with, tenure as ok, Sandbox, TOKEN};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/tenure.toml");

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn users(s: &Sandbox) -> u64 {
    let o = Command::new("curl")
        .args(["-s", "-H", &format!("Authorization: Bearer {TOKEN}"), &format!("{}/Users?count=1", s.base)])
        .output()
        .expect("curl");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    v["totalResults"].as_u64().unwrap_or(0)
}

fn open_intents(dir: &Path) -> i64 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&format!("sqlite://{}", dir.join("tenure.db").display())).await.unwrap();
        let n: i64 = sqlx::Row::get(
            &sqlx::query("SELECT COUNT(*) FROM journal WHERE state = 'intent'").fetch_one(&pool).await.unwrap(),
            0,
        );
        pool.close().await;
        n
    })
}

/// The log line without its colours.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\x1b' {
            for d in it.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn recovery(trial: usize, workers: usize) {
    let dir = std::env::temp_dir().join(format!("tenure-bench-recovery-{}-{trial}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let s = sandbox_with(&dir, "sandbox", None, &["--latency-ms", "20"]);
    connect(&dir, &s);
    let rules = std::fs::read_to_string(RULES)
        .unwrap()
        .replace("keep_on_role_change = false", "keep_on_role_change = false\nconcurrency = 100");
    let r = dir.join("rules.toml");
    std::fs::write(&r, rules).unwrap();
    ok(&dir, &["config", "import", r.to_str().unwrap()]);
    let hr = dir.join("hr.csv");
    ok(&dir, &["hr", "generate", "--count", &workers.to_string(), "--seed", "7", "--out", hr.to_str().unwrap()]);
    ok(&dir, &["hr", "load", hr.to_str().unwrap()]);
    let mut child = tenure(&dir).arg("apply").stdout(Stdio::null()).spawn().unwrap();
    while users(&s) < 150 {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let open = open_intents(&dir);
    let made = users(&s);
    let t = Instant::now();
    let o = tenure(&dir).arg("plan").env("TENURE_LOG", "engine=debug").output().unwrap();
    let whole = t.elapsed().as_secs_f64();
    let err = strip_ansi(&String::from_utf8_lossy(&o.stderr));
    let ms: f64 = err
        .lines()
        .find(|l| l.contains("recovery done"))
        .and_then(|l| l.split("ms=").nth(1))
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(f64::NAN);
    assert!(o.status.success(), "{err}");
    println!(
        "(r) trial {trial}: {open} open intents ({made} accounts made before the kill) at 20 ms latency: recovery {:.2} s \
         (bar 2 s), whole `tenure plan` {whole:.2} s; left open after: {}",
        ms / 1000.0,
        open_intents(&dir)
    );
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Reads one user over and over until `stop`, each read's latency in ms.
async fn reader(http: reqwest::Client, url: String, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Vec<f64> {
    let mut out = vec![];
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let t = Instant::now();
        let r = http.get(&url).bearer_auth(TOKEN).send().await.expect("read");
        assert!(r.status().is_success());
        let _ = r.bytes().await;
        out.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    out
}

async fn hostile(dir: &Path) {
    let s = sandbox_with(dir, "hostile", None, &[]);
    let http = reqwest::Client::new();
    let user = |name: &str| {
        serde_json::json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name, "displayName": name})
    };
    let mk = |name: String| {
        let (http, base) = (http.clone(), s.base.clone());
        async move {
            let r = http.post(format!("{base}/Users")).bearer_auth(TOKEN).json(&user(&name)).send().await.unwrap();
            let v: serde_json::Value = r.json().await.unwrap();
            v["id"].as_str().unwrap().to_string()
        }
    };
    let target = mk("target@acme.example".into()).await;
    let read_me = mk("read.me@acme.example".into()).await;
    // (f)
    let wide: Vec<String> = (0..7000).map(|i| format!("userName eq \"user{i:04}@acme.example\"")).collect();
    let body = serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": wide.join(" or ")});
    let mut times = vec![];
    for _ in 0..20 {
        let t = Instant::now();
        let r = http.post(format!("{}/Users/.search", s.base)).bearer_auth(TOKEN).json(&body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 400);
        let _ = r.bytes().await;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let up = http.get(format!("{}/Users?count=1", s.base)).bearer_auth(TOKEN).send().await.unwrap().status();
    println!(
        "(f) 7,000-term filter ({} KB) to its invalidFilter answer: median {:.2} ms, max {:.2} ms (bar 50 ms); sandbox up: {}",
        body.to_string().len() / 1024,
        percentile(&times, 0.5),
        times.last().copied().unwrap_or(f64::NAN),
        up.is_success()
    );
    // (p): reads alone, then during PATCHes.
    let url = format!("{}/Users/{read_me}", s.base);
    let window = |patching: bool| {
        let (http, url, base, target) = (http.clone(), url.clone(), s.base.clone(), target.clone());
        async move {
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let readers: Vec<_> =
                (0..4).map(|_| tokio::spawn(reader(http.clone(), url.clone(), stop.clone()))).collect();
            let (mut refused, mut applied) = (0, 0);
            if patching {
                for round in 0..10 {
                    let huge: Vec<serde_json::Value> = (0..10_000)
                        .map(|i| serde_json::json!({"op": "replace", "path": "title", "value": format!("T{i}")}))
                        .collect();
                    let big: Vec<serde_json::Value> = (0..1000)
                        .map(|i| {
                            serde_json::json!({"op": "add", "path": "emails",
                            "value": [{"value": format!("a{round}x{i}@acme.example"), "type": "other"}]})
                        })
                        .collect();
                    for ops in [huge, big] {
                        let body = serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
                        let r = http
                            .patch(format!("{base}/Users/{target}"))
                            .bearer_auth(TOKEN)
                            .json(&body)
                            .send()
                            .await
                            .unwrap();
                        match r.status().as_u16() {
                            200 => applied += 1,
                            400 => refused += 1,
                            other => panic!("PATCH answered {other}"),
                        }
                        let _ = r.bytes().await;
                    }
                }
            } else {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let mut all = vec![];
            for r in readers {
                all.extend(r.await.unwrap());
            }
            all.sort_by(f64::total_cmp);
            (all, refused, applied)
        }
    };
    let (alone, _, _) = window(false).await;
    let (during, refused, applied) = window(true).await;
    println!(
        "(p) reads alone: {} reads, p50 {:.2} ms, p99 {:.2} ms; during PATCHes ({refused} of 10,000 ops refused, {applied} of 1,000 ops applied): {} reads, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (bar p99 100 ms)",
        alone.len(),
        percentile(&alone, 0.5),
        percentile(&alone, 0.99),
        during.len(),
        percentile(&during, 0.5),
        percentile(&during, 0.99),
        during.last().copied().unwrap_or(f64::NAN)
    );
}

fn main() {
    let dir = std::env::temp_dir().join(format!("tenure-bench-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(hostile(&dir));
    let _ = std::fs::remove_dir_all(&dir);
    let workers = env_or("BENCH_RECOVERY_WORKERS", 2000);
    for trial in 1..=env_or("BENCH_TRIALS", 3) {
        recovery(trial, workers);
    }
}
