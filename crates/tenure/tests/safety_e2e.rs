//! What an HR file or a target may not do to provisioning (issue 13), end to end with the real
//! binary and the sandbox: two runs at once, a conversion under a new employee id, look-alike
//! addresses, kills during deactivations and recovery, store failures at each write.

mod common;

use common::env::*;
use std::time::Duration;

const AT: &str = "2026-06-01T12:00:00Z";

#[tokio::test]
async fn two_applies_at_once_do_not_both_act() {
    two_applies_at_once(None).await
}

#[tokio::test]
async fn two_applies_at_once_on_postgres() {
    if let Some(pg) = postgres("two_applies_at_once_on_postgres").await {
        two_applies_at_once(Some(pg.url.clone())).await
    }
}

async fn two_applies_at_once(database_url: Option<String>) {
    let sb = common::spawn(&["--latency-ms", "30"]);
    let env = Env::connect_to(&sb, "two-runs", "", "", database_url);
    let n = 150;
    env.load("all.csv", &population(n), AT, &[]);
    let mut first = env.command().args(["apply", "--as-of", AT]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    // The first run is under way once accounts appear.
    for _ in 0..400 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        if sb.get("/Users?count=1").await.body["totalResults"].as_u64().unwrap_or(0) >= 5 {
            break;
        }
    }
    let (code, out) = env.tenure(&["apply", "--as-of", AT]);
    assert_eq!(code, 5, "the second run is refused with its own code:\n{out}");
    assert!(out.contains("is being worked by another run: tenure apply (pid "), "{out}");
    assert!(out.contains(&format!("pid {}", first.id())), "it names the holder's process: {out}");
    assert!(out.contains("since 20"), "and since when: {out}");
    assert!(!out.contains("plan for"), "the refused run planned nothing and applied nothing: {out}");
    // A plan meanwhile does not resolve the running apply's in-flight intents.
    let (code, out) = env.tenure(&["plan", "--as-of", AT]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("a run is in progress") && !out.contains("resolved"), "{out}");
    // The daemon waits its turn, then finds nothing left to do.
    let mut daemon = env
        .command()
        .args(["run", "--interval", "3600", "--rehearse-from", AT])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = first.wait().unwrap();
    let mut first_out = String::new();
    std::io::Read::read_to_string(&mut first.stdout.take().unwrap(), &mut first_out).unwrap();
    assert!(status.success(), "{first_out}");
    assert!(first_out.contains("failed 0"), "{first_out}");
    assert_exactly_once(&sb, n).await;
    // Read the daemon's lines until its first run ends.
    let lines = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    {
        let lines = lines.clone();
        let out = daemon.stdout.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                lines.lock().unwrap().push_str(&(l + "\n"));
            }
        });
    }
    for _ in 0..600 {
        if lines.lock().unwrap().contains("run ") && lines.lock().unwrap().contains("total") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    terminate(daemon.id());
    let _ = daemon.wait();
    let text = lines.lock().unwrap().clone();
    assert!(text.contains("waiting for the run of tenure apply"), "{text}");
    assert!(text.contains("processed 0, failed 0"), "the daemon's turn found everything done: {text}");
    assert_exactly_once(&sb, n).await;
}

/// SIGTERM, the way an operator or a service manager stops the daemon.
fn terminate(pid: u32) {
    let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
}
