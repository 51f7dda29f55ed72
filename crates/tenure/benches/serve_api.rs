//! `tenure serve`'s bars (issue 25), with the real binary against the real sandbox: 100,000
//! workers loaded and synced, the service running its scheduler every 30 s, and wrk's 16
//! clients for 20 s on each of `GET /api/v1/workers?q=<name prefix>`, `?q=<id prefix>` and
//! `GET /api/v1/status` (p99 under 20, 20 and 10 ms); the service's resident memory idle (under
//! 60 MiB) and in the minute after a scheduled 100,000-worker run (back under 300 MiB).
//!
//! cargo bench -p tenure --bench serve_api      (needs wrk: apt-get install wrk)
//!
//! Each wrk window is timed so that a scheduled 100,000-worker run falls inside it.
//! Environment: BENCH_LARGE (default 100000), BENCH_SECONDS (wrk's, default 20),
//! BENCH_SANDBOX_NICE (default 10): the sandbox stands in for monday.com, which never shares
//! tenure's cores, so it runs at a lower CPU priority; 0 puts it on an equal footing.

mod common;

use common::{command, sandbox_niced, setup, tenure};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Serve {
    child: Child,
    base: String,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn start(dir: &Path, interval: &str) -> Serve {
        let mut child = command(dir)
            .args(["serve", "--listen", "127.0.0.1:0", "--interval", interval])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start tenure serve");
        let out = BufReader::new(child.stdout.take().expect("piped"));
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        let mut s = Serve { child, base: String::new(), lines };
        s.base = s
            .wait_line("listening on ")
            .split("listening on ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .into();
        s
    }

    fn wait_line(&self, what: &str) -> String {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(600) {
            if let Some(l) = self.lines.lock().unwrap().iter().find(|l| l.contains(what)) {
                return l.clone();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no line with {what:?}: {:?}", self.lines.lock().unwrap());
    }

    fn count(&self, what: &str) -> usize {
        self.lines.lock().unwrap().iter().filter(|l| l.contains(what)).count()
    }

    /// Resident memory now, MiB.
    fn rss(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    }
}

/// wrk's p50 and p99 (ms) and requests/s for one URL, and whether any answer was not 2xx.
fn wrk(url: &str, token: &str, seconds: u64) -> (f64, f64, f64, bool) {
    let out = Command::new("wrk")
        .args(["-t2", "-c16", &format!("-d{seconds}s"), "--latency", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(url)
        .output()
        .expect("wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let ms = |p: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(p))
            .map(|v| {
                let v = v.trim();
                let (n, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
                let n: f64 = n.parse().unwrap_or(f64::NAN);
                match unit {
                    "us" => n / 1000.0,
                    "s" => n * 1000.0,
                    _ => n,
                }
            })
            .unwrap_or_else(|| panic!("wrk output: {text}"))
    };
    let rate = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    (ms("50%"), ms("99%"), rate, text.contains("Non-2xx"))
}

fn main() {
    let large: usize = std::env::var("BENCH_LARGE").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let seconds: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let root = std::env::temp_dir().join(format!("tenure-serve-bench-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let nice: u8 = std::env::var("BENCH_SANDBOX_NICE").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    println!("the sandbox at nice {nice}");
    let s = sandbox_niced(&root, "serve", nice);
    let dir = root.join("serve");
    setup(&dir, &s, large, 5);
    tenure(&dir, &["apply", "--yes", "--quiet"]);
    let token =
        tenure(&dir, &["token", "create", "bench", "--role", "viewer"]).lines().last().unwrap().trim().to_string();
    // A name and an id from the population, cut to prefixes.
    let csv = std::fs::read_to_string(dir.join("day1.csv")).unwrap();
    let row: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    let id_prefix: String = row[0].chars().take(3).collect();
    let name_prefix: String = row[1].chars().take(3).collect::<String>().to_lowercase();

    // Idle: no schedule, nothing asked.
    let serve = Serve::start(&dir, "0");
    std::thread::sleep(Duration::from_secs(3));
    let idle = serve.rss();
    println!("serve idle (no run yet, nothing asked): {idle:.0} MiB resident [bar: under 60 MiB]");
    drop(serve);

    // The scheduler every 30 s; wrk meanwhile.
    let serve = Serve::start(&dir, "30s");
    serve.wait_line("reconciling");
    let mut peak = 0f64;
    let t = Instant::now();
    // Its first turn: a no-change reconcile of the whole population.
    while serve.count(", no change ") == 0 && t.elapsed() < Duration::from_secs(300) {
        peak = peak.max(serve.rss());
        std::thread::sleep(Duration::from_millis(200));
    }
    let after = serve.rss();
    let mut back = None;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(60) {
        let now = serve.rss();
        if now < 300.0 {
            back = Some(t.elapsed().as_secs_f64());
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let in_a_minute = serve.rss();
    println!(
        "serve around a scheduled run of {large}: peak {peak:.0} MiB, {after:.0} MiB as it ended, {in_a_minute:.0} MiB {} [bar: under 300 MiB within a minute]",
        back.map_or("a minute later".to_string(), |s| format!("{s:.1} s later"))
    );
    for (what, path, bar) in [
        ("workers?q=<name prefix>", format!("/api/v1/workers?q={name_prefix}"), 20.0),
        ("workers?q=<id prefix>", format!("/api/v1/workers?q={id_prefix}"), 20.0),
        ("status", "/api/v1/status".to_string(), 10.0),
    ] {
        // Timed so that a scheduled run falls inside the window: the next one starts 30 s
        // after the last ended, so wrk starts 20 s after an end and the run comes 10 s in.
        let ended = serve.count(", no change ");
        let t = Instant::now();
        while serve.count(", no change ") == ended && t.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_secs(20));
        let runs_before = serve.count(", no change ");
        let (p50, p99, rate, bad) = wrk(&format!("{}{path}", serve.base), &token, seconds);
        let ran = serve.count(", no change ") - runs_before;
        println!(
            "GET {what} ({path}), 16 clients, {seconds} s: p50 {p50:.2} ms, p99 {p99:.2} ms, {rate:.0} req/s{}; scheduled runs meanwhile: {ran} [bar: p99 under {bar} ms]",
            if bad { ", SOME NOT 2xx" } else { "" }
        );
    }
    println!("serve after the load: {:.0} MiB resident", serve.rss());
    drop(serve);
    drop(s);
    let _ = std::fs::remove_dir_all(&root);
}
