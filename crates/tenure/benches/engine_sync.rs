//! The provisioning engine's bars, with the real binary against the real sandbox (SQLite
//! files for both), side by side in one run:
//! (a) an initial sync of 10,000 hires against the sandbox's own create capacity (wrk);
//! (b) a plan for 100,000 workers against 100,000 existing accounts, reads included;
//! (c) a no-change reconcile of 100,000.
//!
//! cargo bench -p tenure --bench engine_sync      (needs wrk: apt-get install wrk)
//! Environment: BENCH_HIRES (default 10000), BENCH_LARGE (default 100000), BENCH_SECONDS.

mod common;

use common::{on_cpu, sandbox, sandbox_on, setup, tenure, wrk_creates_on};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Wall time and peak RSS (MiB) of one tenure command, through /usr/bin/time.
fn timed(dir: &Path, args: &[&str]) -> (f64, f64, String) {
    let (secs, rss, _, out) = timed_on(dir, args, None);
    (secs, rss, out)
}

/// Wall time, peak RSS (MiB) and CPU seconds (user + system) of one tenure command.
fn timed_on(dir: &Path, args: &[&str], cpu: Option<&str>) -> (f64, f64, f64, String) {
    let t = Instant::now();
    let o = on_cpu(cpu, "/usr/bin/time")
        .args(["-f", "peak-rss-kib %M\ncpu-seconds %U %S"])
        .arg(env!("CARGO_BIN_EXE_tenure"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env("TENURE_LOG", "warn")
        .output()
        .expect("/usr/bin/time");
    let secs = t.elapsed().as_secs_f64();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "tenure {args:?}: {out}{err}");
    let kib: f64 = err
        .lines()
        .find_map(|l| l.strip_prefix("peak-rss-kib "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN);
    let cpu_s: f64 = err
        .lines()
        .find_map(|l| l.strip_prefix("cpu-seconds "))
        .map(|v| v.split_whitespace().filter_map(|x| x.parse::<f64>().ok()).sum())
        .unwrap_or(f64::NAN);
    (secs, kib / 1024.0, cpu_s, out)
}

/// The initial sync of `hires` workers into a fresh sandbox against wrk's measure of a fresh
/// sandbox of the same kind, with the CPU each side spent per create: the sandbox and its
/// client share this machine's cores, so the figures say which side the time went to.
/// `cpus`: (sandbox, client) cores, or unpinned.
fn initial_sync(root: &Path, hires: usize, seconds: u64, cpus: Option<(&str, &str)>) {
    let (server_cpu, client_cpu) = (cpus.map(|c| c.0), cpus.map(|c| c.1));
    let tag = if cpus.is_some() { "-pinned" } else { "" };
    let (wrk, wrk_server_us) = {
        let s = sandbox_on(root, &format!("capacity{tag}"), server_cpu);
        let before = s.cpu_seconds();
        let w = wrk_creates_on(&s, root, seconds, client_cpu);
        let us = 1e6 * (s.cpu_seconds() - before) / w.requests;
        (w, us)
    };
    let s = sandbox_on(root, &format!("initial{tag}"), server_cpu);
    let dir = root.join(format!("initial{tag}"));
    setup(&dir, &s, hires, 3);
    let before = s.cpu_seconds();
    let (secs, rss, cpu_s, out) = timed_on(&dir, &["apply"], client_cpu);
    let server_us = 1e6 * (s.cpu_seconds() - before);
    let creates = counted(&out, "create");
    let rate = creates as f64 / secs;
    let per = |us: f64| us / creates as f64;
    let how = if cpus.is_some() {
        "one core each: the sandbox on CPU 0, wrk and then tenure on CPU 1"
    } else {
        "sharing the machine's cores"
    };
    println!(
        "(a) initial sync, {how}: {creates} creates (+ team joins, journal, audit) in {secs:.2} s = {rate:.0} creates/s; \
         sandbox capacity (wrk -c32 -d{seconds}s) {:.0}/s: {:.0}% [bar: at least 90%]; peak RSS {rss:.0} MiB\n    \
         CPU per create: tenure {:.0} us (whole run), the sandbox {:.0} us serving it (creates and team joins), \
         the sandbox {:.0} us serving wrk's creates",
        wrk.rate,
        100.0 * rate / wrk.rate,
        per(1e6 * cpu_s),
        per(server_us),
        wrk_server_us
    );
}

fn counted(out: &str, what: &str) -> usize {
    out.lines()
        .find(|l| l.starts_with("run "))
        .and_then(|l| l.split(&format!("{what} ")).nth(1))
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let hires: usize = std::env::var("BENCH_HIRES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let large: usize = std::env::var("BENCH_LARGE").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let seconds: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let root = std::env::temp_dir().join(format!("tenure-engine-bench-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();

    // (a) unpinned, then with the server and its client each on a core of their own, so that
    // neither measures how much CPU the client takes from the server.
    initial_sync(&root, hires, seconds, None);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus >= 2 && Command::new("taskset").arg("-V").output().is_ok_and(|o| o.status.success()) {
        initial_sync(&root, hires, seconds, Some(("0", "1")));
    }

    // (b) and (c) at 100,000.
    let s = sandbox(&root, "large");
    let dir = root.join("large");
    setup(&dir, &s, large, 5);
    let (secs, rss, out) = timed(&dir, &["apply"]);
    println!(
        "    initial sync of the large population: {} creates in {secs:.1} s, peak RSS {rss:.0} MiB",
        counted(&out, "create")
    );
    let (secs, rss, out) = timed(&dir, &["apply"]);
    let line = out.lines().find(|l| l.starts_with("run ")).unwrap_or_default().to_string();
    println!("(c) no-change reconcile of {large}: {secs:.2} s, peak RSS {rss:.0} MiB [bar: under 5 s]  ({line})");
    tenure(&dir, &["hr", "load", dir.join("day2.csv").to_str().unwrap()]);
    let (secs, rss, out) = timed(&dir, &["plan", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let actions = v["actions"].as_array().map_or(0, |a| a.len());
    let acting = v["actions"]
        .as_array()
        .map_or(0, |a| a.iter().filter(|x| !matches!(x["kind"].as_str(), Some("no_change" | "skip"))).count());
    println!("(b) plan for {large} workers against the existing accounts after a day of changes: {secs:.2} s, peak RSS {rss:.0} MiB [bars: under 10 s, under 1024 MiB] ({actions} actions, {acting} acting)");
    drop(s);
    let _ = std::fs::remove_dir_all(&root);
}
