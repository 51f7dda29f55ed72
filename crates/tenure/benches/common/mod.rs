//! Shared by the benches: a sandbox started from the built binary, and wrk measuring its
//! create capacity.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub const TOKEN: &str = "bench-token-0123456789";

pub struct Sandbox {
    pub child: Child,
    pub base: String,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `program`, run on the given CPU (through taskset) when one is given.
pub fn on_cpu(cpu: Option<&str>, program: &str) -> Command {
    match cpu {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", c, program]);
            cmd
        }
        None => Command::new(program),
    }
}

pub fn sandbox(dir: &std::path::Path, tag: &str) -> Sandbox {
    sandbox_on(dir, tag, None)
}

pub fn sandbox_on(dir: &std::path::Path, tag: &str, cpu: Option<&str>) -> Sandbox {
    sandbox_with(dir, tag, cpu, &[])
}

/// A sandbox with extra arguments (fault knobs such as `--latency-ms`).
pub fn sandbox_with(dir: &std::path::Path, tag: &str, cpu: Option<&str>, args: &[&str]) -> Sandbox {
    sandbox_from(on_cpu(cpu, env!("CARGO_BIN_EXE_tenure")), dir, tag, args)
}

/// A sandbox at a lower CPU priority (nice `n`): it stands in for a target on another machine,
/// so it does not take the cores from the process measured.
pub fn sandbox_niced(dir: &std::path::Path, tag: &str, n: u8) -> Sandbox {
    let mut c = Command::new("nice");
    c.args(["-n", &n.to_string(), env!("CARGO_BIN_EXE_tenure")]);
    sandbox_from(c, dir, tag, &[])
}

fn sandbox_from(mut command: Command, dir: &std::path::Path, tag: &str, args: &[&str]) -> Sandbox {
    let child = command
        .args(["sandbox", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.join(format!("{tag}.db")))
        .args(args)
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

impl Sandbox {
    /// CPU seconds (user + system) the sandbox process has used so far.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which may hold spaces) closing with ')'.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / clock_ticks()
    }
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// What wrk measured: creates per second, and how many it made.
pub struct WrkRun {
    pub rate: f64,
    pub requests: f64,
}

pub fn wrk_creates(s: &Sandbox, dir: &std::path::Path, seconds: u64) -> f64 {
    wrk_creates_on(s, dir, seconds, None).rate
}

pub fn wrk_creates_on(s: &Sandbox, dir: &std::path::Path, seconds: u64, cpu: Option<&str>) -> WrkRun {
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
    let out = on_cpu(cpu, "wrk")
        .args(["-t2", "-c32", &format!("-d{seconds}s"), "-s"])
        .arg(&script)
        .arg(origin)
        .output()
        .expect("wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("Non-2xx"), "wrk saw failures: {text}");
    let rate = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("wrk output: {text}"));
    // "  123456 requests in 10.00s, ..."
    let requests = text
        .lines()
        .find_map(|l| l.split_once(" requests in ").and_then(|(n, _)| n.trim().parse().ok()))
        .unwrap_or_else(|| panic!("wrk output: {text}"));
    WrkRun { rate, requests }
}

pub const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/tenure.toml");

/// The built tenure on a data folder, quiet, on SQLite even where the environment names a
/// PostgreSQL store.
pub fn command(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tenure"));
    c.arg("--data-dir").arg(dir).env("TENURE_LOG", "warn").env_remove("TENURE_DATABASE_URL");
    c
}

/// Runs tenure to its end; its output, or a panic saying what failed.
pub fn tenure(dir: &Path, args: &[&str]) -> String {
    let o = command(dir).args(args).output().expect("run tenure");
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "tenure {args:?}: {out}");
    out
}

/// A tenure data folder connected to the sandbox, with the example rules at 32 in flight.
pub fn setup(dir: &Path, s: &Sandbox, workers: usize, seed: u64) {
    connect(dir, s);
    let rules = std::fs::read_to_string(RULES)
        .unwrap()
        .replace("keep_on_role_change = false", "keep_on_role_change = false\nconcurrency = 32");
    let r = dir.join("rules.toml");
    std::fs::write(&r, rules).unwrap();
    tenure(dir, &["config", "import", r.to_str().unwrap()]);
    let day1 = dir.join("day1.csv");
    let day2 = dir.join("day2.csv");
    tenure(
        dir,
        &[
            "hr",
            "generate",
            "--count",
            &workers.to_string(),
            "--seed",
            &seed.to_string(),
            "--out",
            day1.to_str().unwrap(),
            "--next-day",
            day2.to_str().unwrap(),
        ],
    );
    tenure(dir, &["hr", "load", day1.to_str().unwrap()]);
}

/// A tenure data folder with the sandbox as its connection (the default name, the bench token).
pub fn connect(dir: &Path, s: &Sandbox) {
    std::fs::create_dir_all(dir).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, TOKEN).unwrap();
    tenure(
        dir,
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
}
