//! The console's bars (issue 26), with the real binary against the real sandbox: 100,000
//! workers loaded and synced, `tenure serve` without a schedule, and an Admin signed in through
//! the sign-in form. Each page of the console is asked again and again by one client on one
//! kept-alive connection for BENCH_SECONDS (default 10, at least 5 times): its p50 and p99 (bar:
//! p99 under 100 ms), and its weight with the scripts, styles and icon it loads (bar: under
//! 200 KB).
//!
//! cargo bench -p tenure --bench serve_console
//!
//! Environment: BENCH_LARGE (default 100000), BENCH_SECONDS (default 10), BENCH_SANDBOX_NICE
//! (default 10: the sandbox stands in for monday.com, which never shares tenure's cores).

mod common;

use common::{command, sandbox_niced, setup, tenure};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Serve {
    child: Child,
    base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// The p-th percentile of sorted latencies, ms.
fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let large: usize = std::env::var("BENCH_LARGE").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let seconds: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let nice: u8 = std::env::var("BENCH_SANDBOX_NICE").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let root = std::env::temp_dir().join(format!("tenure-console-bench-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let s = sandbox_niced(&root, "console", nice);
    let dir = root.join("console");
    setup(&dir, &s, large, 5);
    let applied = tenure(&dir, &["apply", "--yes", "--json"]);
    // The JSON document is what stdout holds from its first brace (stderr may come first).
    let run_id = applied
        .find('{')
        .and_then(|at| serde_json::Deserializer::from_str(&applied[at..]).into_iter::<serde_json::Value>().next())
        .and_then(Result::ok)
        .and_then(|v| v["run_id"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no run id in {applied}"));
    let password = "the bench admin's long password";
    let file = root.join("password");
    std::fs::write(&file, password).unwrap();
    tenure(&dir, &["user", "add", "bench-admin", "--role", "admin", "--password-file", file.to_str().unwrap()]);

    let mut child = command(&dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--interval", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start tenure serve");
    let out = BufReader::new(child.stdout.take().expect("piped"));
    let mut base = String::new();
    for l in out.lines().map_while(Result::ok) {
        if let Some(rest) = l.split("listening on ").nth(1) {
            base = rest.split_whitespace().next().unwrap().to_string();
            break;
        }
    }
    let serve = Serve { child, base };
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let signed = http
        .post(format!("{}/sign-in", serve.base))
        .header("origin", &serve.base)
        .form(&[("user", "bench-admin"), ("password", password)])
        .send()
        .await
        .unwrap();
    let cookie = signed
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("tenure_session="))
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string();
    // A path starting with "htmx:" is asked as htmx asks for a page's part.
    let get = |path: String| {
        let (htmx, path) = match path.strip_prefix("htmx:") {
            Some(p) => (true, p.to_string()),
            None => (false, path),
        };
        let (http, cookie, url) = (http.clone(), cookie.clone(), format!("{}{path}", serve.base));
        async move {
            let mut r = http.get(&url).header("cookie", cookie);
            if htmx {
                r = r.header("hx-request", "true");
            }
            let r = r.send().await.unwrap();
            let status = r.status();
            (status, r.text().await.unwrap())
        }
    };
    let hr = get("/hr".into()).await.1;
    let load = hr.split("/hr/loads/").nth(1).and_then(|r| r.split('"').next()).expect("a load on /hr").to_string();
    let name = "Connection-Bearer%20Token-1";
    let csv = std::fs::read_to_string(dir.join("day1.csv")).unwrap();
    let rows: Vec<Vec<String>> =
        csv.lines().skip(1).take(2_000).map(|l| l.split(',').map(str::to_string).collect()).collect();
    let worker = rows[0][0].clone();
    let pages = [
        "/".to_string(),
        "/connections".into(),
        format!("/connections/{name}"),
        "/connections/new".into(),
        "/hr".into(),
        format!("/hr/loads/{load}"),
        "/rules".into(),
        "htmx:/rules/roles-section".into(),
        "/rules/roles/1".into(),
        format!("/rules/connections/{name}"),
        "/rules/formula?formula=%3Dfirst_name%20%26%20%22%20%22%20%26%20last_name".into(),
        "/rules/changes".into(),
        "htmx:/rules/changes?page=1&kind=".into(),
        "/rules/changes?page=2&kind=".into(),
        format!("/connections/{name}/plan"),
        format!("htmx:/connections/{name}/plan"),
        format!("/connections/{name}/plan?kind=create&page=2"),
        "/runs".into(),
        format!("/runs/{run_id}"),
        "/workers".into(),
        "htmx:/workers?q=olu".into(),
        "/workers?q=olu&page=3".into(),
        format!("/workers/{worker}"),
        "/reviews".into(),
        "/reviews?decided=1".into(),
        "/dead-letters".into(),
        "/audit".into(),
        "/audit?kind=action&action=create&page=2".into(),
        "/notifications".into(),
        "/settings".into(),
        "/account".into(),
    ];
    // The files every page loads, fetched once (a browser keeps them a year by their hash).
    let first = get("/".into()).await.1;
    let mut statics = 0usize;
    for part in first.split("\"/static/").skip(1) {
        let file = part.split('"').next().unwrap();
        statics += get(format!("/static/{file}")).await.1.len();
    }
    println!("{large} workers synced; the scripts, styles and icon every page loads: {statics} B");
    for path in pages {
        // The first asking: what a person meets when nothing is kept yet (or the page keeps nothing).
        let cold = Instant::now();
        let (status, body) = get(path.clone()).await;
        let cold = cold.elapsed().as_secs_f64() * 1000.0;
        let mut times = vec![];
        let t = Instant::now();
        while times.len() < 5 || t.elapsed() < Duration::from_secs(seconds) {
            let s = Instant::now();
            let (st, _) = get(path.clone()).await;
            assert_eq!(st, status, "{path}");
            times.push(s.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(|a, b| a.total_cmp(b));
        let weight = body.len() + statics;
        println!(
            "GET {path}: {status}, first {cold:.1} ms, then p50 {:.1} ms, p99 {:.1} ms over {} requests [bar: p99 under 100 ms]; {weight} B with scripts and styles [bar: under 200 KB]",
            pct(&times, 0.5),
            pct(&times, 0.99),
            times.len()
        );
    }
    // A person typing into the worker search: one request per keystroke (htmx waits for a
    // pause and drops an answer overtaken; here every keystroke is asked, the worst case),
    // names and ids of workers spread over the population.
    let mut typed = vec![];
    for r in rows.iter().step_by(97).take(20) {
        let (id, name) = (&r[0], format!("{} {}", r[1], r[2]).to_lowercase());
        for word in [&name, id] {
            for n in 1..=word.chars().count().min(12) {
                let prefix: String = word.chars().take(n).collect();
                let q: String = prefix
                    .bytes()
                    .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
                    .collect();
                let s = Instant::now();
                let (st, _) = get(format!("htmx:/workers?q={q}")).await;
                assert!(st.is_success());
                typed.push(s.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }
    typed.sort_by(|a, b| a.total_cmp(b));
    println!(
        "worker search as typed, {} keystrokes: p50 {:.1} ms, p99 {:.1} ms, slowest {:.1} ms [bar: p99 under 50 ms]",
        typed.len(),
        pct(&typed, 0.5),
        pct(&typed, 0.99),
        typed.last().copied().unwrap_or_default()
    );
    // Worker pages one after another, spread over the population: each one's own "why".
    let mut pages = vec![];
    for r in rows.iter().step_by((rows.len() / 100).max(1)).take(100) {
        let s = Instant::now();
        let (st, _) = get(format!("/workers/{}", r[0])).await;
        assert!(st.is_success(), "{st}");
        pages.push(s.elapsed().as_secs_f64() * 1000.0);
    }
    pages.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{} workers' pages, each asked once: p50 {:.1} ms, p99 {:.1} ms [bar: p99 under 100 ms]",
        pages.len(),
        pct(&pages, 0.5),
        pct(&pages, 0.99)
    );
    drop(serve);
    drop(s);
    let _ = std::fs::remove_dir_all(&root);
}
