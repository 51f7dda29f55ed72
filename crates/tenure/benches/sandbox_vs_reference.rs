//! The sandbox against the Python reference server `scim2-server`, side by side in one run:
//! both seeded with the same users, both loaded by the same tool (wrk, 32 connections) for
//! (a) `GET /Users?filter=userName eq "..."`, (b) `POST /Users`, (c) PATCH active=false.
//!
//! cargo bench -p tenure --bench sandbox_vs_reference
//! Environment: BENCH_USERS (default 100000), BENCH_SECONDS (default 10),
//! TENURE_TEST_SCIM2_SERVER (default target/venv/bin/scim2-server, installed by scripts/test),
//! BENCH_ONLY=sandbox to skip the reference.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

const TOKEN: &str = "bench-token-0123456789";
const CONNECTIONS: usize = 32;

struct Server {
    name: &'static str,
    child: Child,
    /// e.g. http://127.0.0.1:1234
    origin: String,
    /// the SCIM base path, e.g. /scim/v2
    prefix: String,
    ids: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn start_sandbox(dir: &Path) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args(["sandbox", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.join("sandbox.db"))
        .env("TENURE_SANDBOX_TOKEN", TOKEN)
        .env("TENURE_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start tenure sandbox");
    // Owned by a Server at once, so it is killed and reaped however this ends.
    let mut server =
        Server { name: "tenure sandbox", child, origin: String::new(), prefix: "/scim/v2".into(), ids: vec![] };
    let mut out = BufReader::new(server.child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap_or(0) > 0, "sandbox did not start");
        if let Some(rest) = line.strip_prefix("tenure sandbox listening on ") {
            let url = rest.split_whitespace().next().unwrap_or_default();
            server.origin = url.trim_end_matches("/scim/v2").to_string();
            std::thread::spawn(move || for _ in out.lines() {});
            return server;
        }
    }
}

fn start_reference() -> Server {
    let tool = std::env::var("TENURE_TEST_SCIM2_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target/venv/bin/scim2-server"));
    assert!(tool.exists(), "{} is missing: run scripts/test once, or set TENURE_TEST_SCIM2_SERVER", tool.display());
    let port = free_port();
    let child = Command::new(&tool)
        .args(["--hostname", "127.0.0.1", "--port", &port.to_string(), "--bearer-token", TOKEN])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start scim2-server");
    Server {
        name: "scim2-server 0.8.3",
        child,
        origin: format!("http://127.0.0.1:{port}"),
        prefix: "/v2".into(),
        ids: vec![],
    }
}

async fn wait_ready(s: &Server, http: &reqwest::Client) {
    for _ in 0..200 {
        if let Ok(r) = http.get(format!("{}{}/Users?count=1", s.origin, s.prefix)).bearer_auth(TOKEN).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{} did not answer", s.name);
}

fn user_body(i: usize, tag: &str) -> Value {
    let name = format!("{tag}-{i}@example.com");
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name, "displayName": format!("Bench User {i}"),
           "name": {"givenName": "Bench", "familyName": format!("User{i}")},
           "emails": [{"value": name, "type": "work", "primary": true}], "active": true})
}

/// Creates `n` users with `workers` concurrent clients; returns their ids in order. Seeding is
/// not measured, so failed connections (the reference server's listen backlog is 5) are
/// retried, and a retried POST that had in fact succeeded is found by its userName.
async fn seed(s: &Server, http: &reqwest::Client, n: usize, workers: usize) -> (Vec<String>, f64) {
    let next = Arc::new(AtomicUsize::new(0));
    let base = format!("{}{}/Users", s.origin, s.prefix);
    let t = Instant::now();
    let mut tasks = vec![];
    for _ in 0..workers {
        let (next, base, http) = (next.clone(), base.clone(), http.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = vec![];
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return mine;
                }
                let mut tries = 0;
                let id = loop {
                    tries += 1;
                    assert!(tries < 50, "seeding user {i} keeps failing");
                    let sent = http
                        .post(&base)
                        .bearer_auth(TOKEN)
                        .header("Content-Type", "application/scim+json")
                        .body(user_body(i, "bench").to_string())
                        .send()
                        .await;
                    let r = match sent {
                        Ok(r) => r,
                        Err(_) => {
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    match r.status().as_u16() {
                        201 => break r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string(),
                        409 => {
                            let q = format!("{base}?filter=userName%20eq%20%22bench-{i}%40example.com%22");
                            let v: Value = http.get(q).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
                            break v["Resources"][0]["id"].as_str().unwrap().to_string();
                        }
                        other => panic!("seeding user {i}: status {other}"),
                    }
                };
                mine.push((i, id));
            }
        }));
    }
    let mut all = vec![];
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let secs = t.elapsed().as_secs_f64();
    (all.into_iter().map(|(_, id)| id).collect(), secs)
}

const LUA_COMMON: &str = r#"
local k = 0
function setup(thread) k = k + 1; thread:set("tid", k) end
local list, n, i, pass = {}, 0, 0, 0
local prefix, token
local function load(path) for line in io.lines(path) do n = n + 1; list[n] = line end end
"#;

fn scripts(dir: &Path) -> [(PathBuf, &'static str); 3] {
    let get = format!(
        "{LUA_COMMON}
function init(args) prefix, token = args[1], args[2]; load(args[3]); i = (tid * 7919) % n end
function request()
  i = i % n + 1
  return wrk.format('GET', prefix .. '/Users?filter=userName%20eq%20%22' .. list[i] .. '%22', {{['Authorization'] = 'Bearer ' .. token}})
end"
    );
    let post = format!(
        "{LUA_COMMON}
function init(args) prefix, token = args[1], args[2]; run = args[4] end
function request()
  i = i + 1
  local name = 'load-' .. run .. '-' .. tid .. '-' .. i .. '@example.com'
  local body = '{{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],\"userName\":\"' .. name .. '\",\"displayName\":\"Load User\",\"name\":{{\"givenName\":\"Load\",\"familyName\":\"User\"}},\"emails\":[{{\"value\":\"' .. name .. '\",\"type\":\"work\",\"primary\":true}}],\"active\":true}}'
  return wrk.format('POST', prefix .. '/Users', {{['Authorization'] = 'Bearer ' .. token, ['Content-Type'] = 'application/scim+json'}}, body)
end"
    );
    let patch = format!(
        "{LUA_COMMON}
function init(args) prefix, token = args[1], args[2]; load(args[3]); i = (tid * 7919) % n end
function request()
  i = i + 1
  if i > n then i = 1; pass = pass + 1 end
  local v = (pass % 2 == 0) and 'false' or 'true'
  local body = '{{\"schemas\":[\"urn:ietf:params:scim:api:messages:2.0:PatchOp\"],\"Operations\":[{{\"op\":\"replace\",\"path\":\"active\",\"value\":' .. v .. '}}]}}'
  return wrk.format('PATCH', prefix .. '/Users/' .. list[i], {{['Authorization'] = 'Bearer ' .. token, ['Content-Type'] = 'application/scim+json'}}, body)
end"
    );
    let out = [(dir.join("get.lua"), "a"), (dir.join("post.lua"), "b"), (dir.join("patch.lua"), "c")];
    for ((p, _), text) in out.iter().zip([get, post, patch]) {
        std::fs::write(p, text).unwrap();
    }
    out
}

struct Load {
    socket_errors: String,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
    requests: u64,
}

fn parse_ms(s: &str) -> f64 {
    let s = s.trim();
    if let Some(v) = s.strip_suffix("us") {
        v.parse::<f64>().unwrap() / 1000.0
    } else if let Some(v) = s.strip_suffix("ms") {
        v.parse().unwrap()
    } else if let Some(v) = s.strip_suffix('s') {
        v.parse::<f64>().unwrap() * 1000.0
    } else {
        f64::NAN
    }
}

fn wrk(s: &Server, script: &Path, list: &Path, seconds: u64, run: &str) -> Load {
    let out = Command::new("wrk")
        .args(["-t2", &format!("-c{CONNECTIONS}"), &format!("-d{seconds}s"), "--latency", "-s"])
        .arg(script)
        .arg(&s.origin)
        .arg("--")
        .args([&s.prefix, TOKEN])
        .arg(list)
        .arg(run)
        .output()
        .expect("wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |prefix: &str| -> Option<String> {
        text.lines().map(str::trim).find(|l| l.starts_with(prefix)).map(|l| l[prefix.len()..].trim().to_string())
    };
    let rps = field("Requests/sec:").and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("wrk output: {text}"));
    let p50 = field("50%").map(|v| parse_ms(&v)).unwrap_or(f64::NAN);
    let p99 = field("99%").map(|v| parse_ms(&v)).unwrap_or(f64::NAN);
    let non_2xx = field("Non-2xx or 3xx responses:").and_then(|v| v.parse().ok()).unwrap_or(0);
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let socket_errors = field("Socket errors:").unwrap_or_else(|| "none".into());
    eprintln!(
        "    {:.0} req/s, p50 {p50:.2} ms, p99 {p99:.2} ms, {requests} requests, non-2xx {non_2xx}, socket errors {socket_errors}",
        rps
    );
    Load { socket_errors, rps, p50_ms: p50, p99_ms: p99, non_2xx, requests }
}

fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_USERS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let seconds: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let dir = std::env::temp_dir().join(format!("tenure-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let http = reqwest::Client::builder().pool_max_idle_per_host(CONNECTIONS).build().unwrap();
    // BENCH_ONLY=sandbox skips the reference, for quick looks while tuning.
    let mut servers = vec![start_sandbox(&dir)];
    if std::env::var("BENCH_ONLY").as_deref() != Ok("sandbox") {
        servers.push(start_reference());
    }
    let script = scripts(&dir);
    let mut rows = vec![];
    for s in servers.iter_mut() {
        wait_ready(s, &http).await;
        eprintln!("seeding {} with {n} users...", s.name);
        let workers = if s.prefix == "/scim/v2" { CONNECTIONS } else { 4 };
        let (ids, secs) = seed(s, &http, n, workers).await;
        eprintln!("  {:.0} creates/s while seeding ({secs:.1} s)", n as f64 / secs);
        s.ids = ids;
        let names = dir.join(format!("names-{}.txt", s.prefix.replace('/', "")));
        let ids_file = dir.join(format!("ids-{}.txt", s.prefix.replace('/', "")));
        std::fs::write(&names, (0..n).map(|i| format!("bench-{i}%40example.com\n")).collect::<String>()).unwrap();
        std::fs::write(&ids_file, s.ids.iter().map(|i| format!("{i}\n")).collect::<String>()).unwrap();
        let (rss_seeded, _) = memory_mib(s.child.id());
        let mut loads = vec![];
        for (path, label) in &script {
            let list = if *label == "a" { &names } else { &ids_file };
            eprintln!("  wrk ({label}) against {}", s.name);
            loads.push(wrk(s, path, list, seconds, &format!("{}{}", std::process::id(), label)));
        }
        let (rss, hwm) = memory_mib(s.child.id());
        eprintln!("  memory: {rss_seeded:.0} MiB after seeding, {rss:.0} MiB at the end, {hwm:.0} MiB peak");
        rows.push((s.name, loads, rss_seeded, rss, hwm));
    }
    println!(
        "\n{n} users seeded in each; wrk -t2 -c{CONNECTIONS} -d{seconds}s on this machine ({} cores)\n",
        num_cpus()
    );
    println!("| server | (a) filter userName eq: req/s | (a) p50 ms | (a) p99 ms | (b) POST creates/s | (b) p99 ms | (c) PATCH active=false/s | (c) p99 ms | non-2xx (a/b/c) | RSS after seed / end / peak MiB |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (name, l, seeded, rss, hwm) in &rows {
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {:.0} | {:.2} | {:.0} | {:.2} | {}/{}/{} | {seeded:.0} / {rss:.0} / {hwm:.0} |",
            l[0].rps, l[0].p50_ms, l[0].p99_ms, l[1].rps, l[1].p99_ms, l[2].rps, l[2].p99_ms, l[0].non_2xx, l[1].non_2xx, l[2].non_2xx
        );
    }
    if rows.len() < 2 {
        return;
    }
    let (ours, theirs) = (&rows[0].1, &rows[1].1);
    println!(
        "\nratio sandbox/reference: (a) {:.1}x  (b) {:.1}x  (c) {:.1}x   [bar: (a) and (b) >= 20x, (a) p99 < 10 ms]",
        ours[0].rps / theirs[0].rps,
        ours[1].rps / theirs[1].rps,
        ours[2].rps / theirs[2].rps
    );
    for (name, l, ..) in &rows {
        for (label, x) in ["a", "b", "c"].iter().zip(l) {
            if x.non_2xx > 0 {
                println!("WARNING: {name} ({label}): {} of {} answers were not 2xx", x.non_2xx, x.requests);
            }
            if x.socket_errors != "none" {
                println!("note: {name} ({label}): wrk socket errors: {}", x.socket_errors);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
