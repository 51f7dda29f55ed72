//! Issue 15's delivery bar, with the real binary against the real sandbox: a full export with
//! one leaver dropped into the inbox of a running daemon (`tenure run`, schedule an hour
//! away), and the time until the sandbox shows that worker's account deactivated. The file
//! is written in place, as an SFTP upload is; the daemon takes it once it has looked at it
//! twice unchanged (250 ms apart), so about half a second of the figure is that wait.
//!
//! cargo bench -p tenure --bench hr_inbox
//! Environment: BENCH_WORKERS (default 1000), BENCH_TRIALS (default 5).

mod common;

use common::{command, connect, sandbox, tenure as ok, TOKEN};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/tenure.toml");
const HEADER: &str =
    "employee_id,first_name,last_name,work_email,department,employment_type,status,hire_date,termination_date";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The whole population, with the first `gone` workers terminated.
fn export(n: usize, gone: usize) -> String {
    let mut s = format!("{HEADER}\n");
    for i in 1..=n {
        let (status, end) = if i <= gone { ("terminated", "2026-01-31") } else { ("active", "") };
        s.push_str(&format!(
            "{i},Worker,Number{i},worker.number{i}@acme.example,Sales,employee,{status},2020-01-01,{end}\n"
        ));
    }
    s
}

fn active(base: &str, id: usize) -> Option<bool> {
    let url = format!("{base}/Users?filter=externalId%20eq%20%22{id}%22&scim_provisioned_only=false");
    let o = Command::new("curl").args(["-s", "-H", &format!("Authorization: Bearer {TOKEN}"), &url]).output().ok()?;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
    v["Resources"][0]["active"].as_bool()
}

fn main() {
    let n = env_or("BENCH_WORKERS", 1000);
    let trials = env_or("BENCH_TRIALS", 5);
    let dir = std::env::temp_dir().join(format!("tenure-bench-inbox-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("inbox")).unwrap();
    let s = sandbox(&dir, "sandbox");
    connect(&dir, &s);
    let rules = std::fs::read_to_string(RULES).unwrap();
    let inbox = dir.join("inbox");
    let rules =
        format!("[hr]\n[hr.inbox]\npath = {:?}\npattern = \"employee_*.csv\"\n\n{rules}", inbox.display().to_string());
    std::fs::write(dir.join("rules.toml"), rules).unwrap();
    ok(&dir, &["config", "import", dir.join("rules.toml").to_str().unwrap()]);
    std::fs::write(dir.join("day0.csv"), export(n, 0)).unwrap();
    ok(&dir, &["hr", "load", dir.join("day0.csv").to_str().unwrap()]);
    ok(&dir, &["apply", "--yes", "--quiet"]);
    let mut daemon = command(&dir).args(["run", "--interval", "3600"]).stdout(Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let mut times = vec![];
    for t in 1..=trials {
        assert_eq!(active(&s.base, t), Some(true));
        let start = Instant::now();
        std::fs::write(inbox.join(format!("employee_{t}.csv")), export(n, t)).unwrap();
        while active(&s.base, t) != Some(false) {
            assert!(start.elapsed() < Duration::from_secs(60), "worker {t} was never deactivated");
            std::thread::sleep(Duration::from_millis(10));
        }
        times.push(start.elapsed());
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status();
    let _ = daemon.wait();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "inbox drop -> leaver deactivated in the sandbox ({n} workers, {trials} trials): median {:.0} ms, worst {:.0} ms [bar: under 2000 ms]",
        ms(times[times.len() / 2]),
        ms(*times.last().unwrap())
    );
    let _ = std::fs::remove_dir_all(&dir);
}
