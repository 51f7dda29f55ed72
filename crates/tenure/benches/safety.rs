//! Issue 13's bars, with the real binary against the real sandbox:
//! (r) recovery of the intents a kill -9 leaves open (about 1,500 and more) at 20 ms target
//!     latency: the time recovery takes, from the engine's own debug line, and the whole
//!     `tenure plan` that runs it.
//!
//! cargo bench -p tenure --bench safety
//! Environment: BENCH_RECOVERY_WORKERS (default 2000), BENCH_TRIALS (default 3).

mod common;

use common::{sandbox_with, Sandbox, TOKEN};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/tenure.toml");

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn tenure(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tenure"));
    c.arg("--data-dir").arg(dir).env("TENURE_LOG", "warn").env_remove("TENURE_DATABASE_URL");
    c
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = tenure(dir).args(args).output().expect("run tenure");
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "tenure {args:?}: {out}");
    out
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
    let token = dir.join("token");
    std::fs::write(&token, TOKEN).unwrap();
    ok(
        &dir,
        &[
            "connection",
            "add",
            "--name",
            "Connection-Bearer Token-1",
            "--url",
            &s.base,
            "--token-file",
            token.to_str().unwrap(),
        ],
    );
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

fn main() {
    let workers = env_or("BENCH_RECOVERY_WORKERS", 2000);
    for trial in 1..=env_or("BENCH_TRIALS", 3) {
        recovery(trial, workers);
    }
}
