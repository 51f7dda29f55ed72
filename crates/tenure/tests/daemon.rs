//! `tenure run`: a pushed HR change is acted on at once (the schedule is an hour away), a
//! future-dated termination fires at its moment, and SIGTERM stops the daemon cleanly.

mod common;

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/tenure.toml");
const SECRET: &str = "daemon-push-secret-0123456789";

fn tenure(dir: &Path, args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env("TENURE_LOG", "warn")
        .output()
        .unwrap();
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "tenure {args:?}: {out}");
    out
}

async fn user_names(sb: &common::Sandbox) -> Vec<String> {
    let r = sb.get("/Users?count=100").await.body;
    r["Resources"].as_array().into_iter().flatten().map(|u| u["userName"].as_str().unwrap().to_string()).collect()
}

/// Waits for a condition the daemon should bring about; the deadline only bounds a hang.
async fn eventually(sb: &common::Sandbox, name: &str) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if user_names(sb).await.iter().any(|n| n == name) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn pushed_changes_are_provisioned_at_once_and_sigterm_stops_cleanly() {
    let sb = common::spawn(&[]);
    let dir = common::store_dir("daemon");
    let token = dir.join("token");
    std::fs::write(&token, &sb.token).unwrap();
    tenure(
        &dir,
        &[
            "connection",
            "add",
            "--name",
            "Connection-Bearer Token-1",
            "--url",
            &sb.base,
            "--token-file",
            token.to_str().unwrap(),
        ],
    );
    tenure(&dir, &["config", "import", RULES]);
    let secret = dir.join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    tenure(&dir, &["hr", "push-secret", "--secret-file", secret.to_str().unwrap()]);
    let csv = dir.join("w.csv");
    std::fs::write(&csv, "employee_id,first_name,last_name,employment_type,status,hire_date,department\n1,Ann,Lee,employee,active,2020-01-01,Engineering\n").unwrap();
    tenure(&dir, &["hr", "load", csv.to_str().unwrap()]);

    let mut child = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("--data-dir")
        .arg(&dir)
        .args(["run", "--interval", "3600", "--listen-hr", "127.0.0.1:0"])
        .env("TENURE_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(url.ends_with("/hr/v1/push"), "{line}");
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for l in out.lines().map_while(Result::ok) {
            sink.lock().unwrap().push(l);
        }
    });

    // The first reconcile makes Ann's account.
    assert!(eventually(&sb, "ann.lee@acme.example").await, "{:?}", lines.lock().unwrap());

    // A pushed hire is provisioned without waiting for the hour.
    let body = serde_json::to_vec(&json!({"event_id": "hire-2", "worker": {
        "employee_id": "2", "first_name": "Bruno", "last_name": "Lefèvre", "employment_type": "contractor",
        "status": "active", "hire_date": "2021-01-01"}}))
    .unwrap();
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(&body);
    let sig: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let r = reqwest::Client::new()
        .post(&url)
        .header("X-Tenure-Timestamp", ts.to_string())
        .header("X-Tenure-Signature", format!("sha256={sig}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(eventually(&sb, "bruno.lefevre@acme.example").await, "{:?}", lines.lock().unwrap());
    let guest = sb.get("/Users?filter=userName%20eq%20%22bruno.lefevre%40acme.example%22").await.body;
    assert_eq!(guest["Resources"][0]["userType"], "guest");

    // SIGTERM: the daemon finishes what it is doing and stops, exit code 0.
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let code = child.wait().unwrap();
    assert!(code.success(), "{code:?}");
    std::thread::sleep(Duration::from_millis(100));
    assert!(lines.lock().unwrap().iter().any(|l| l.ends_with(" tenure run: stopped")), "{:?}", lines.lock().unwrap());
}

async fn active(sb: &common::Sandbox, name: &str) -> Option<bool> {
    let r = sb.get(&format!("/Users?filter=userName%20eq%20%22{}%22", name.replace('@', "%40"))).await.body;
    r["Resources"][0]["active"].as_bool()
}

/// A future-dated termination fires at its moment, not at the next scheduled reconcile: the
/// daemon's clock is started (rehearsal) seconds before the end of the termination date.
#[tokio::test]
async fn a_future_dated_termination_fires_at_its_moment() {
    let sb = common::spawn(&[]);
    let dir = common::store_dir("daemon-future");
    let token = dir.join("token");
    std::fs::write(&token, &sb.token).unwrap();
    let add = ["connection", "add", "--name", "Connection-Bearer Token-1", "--url", &sb.base];
    tenure(&dir, &[&add[..], &["--token-file", token.to_str().unwrap()]].concat());
    tenure(&dir, &["config", "import", RULES]);
    let csv = dir.join("w.csv");
    std::fs::write(
        &csv,
        "employee_id,first_name,last_name,employment_type,status,hire_date,termination_date,time_zone,department\n\
         1,Eve,Sato,employee,active,2018-02-01,2026-06-20,Asia/Tokyo,Legal\n\
         2,Ann,Lee,employee,active,2020-01-01,,,Engineering\n",
    )
    .unwrap();
    tenure(&dir, &["hr", "load", csv.to_str().unwrap(), "--as-of", "2026-06-01T00:00:00Z"]);
    let events = tenure(&dir, &["hr", "events", "--state", "pending"]);
    // The end of 20 June in Tokyo is 15:00 UTC.
    assert!(events.contains("2026-06-20T15:00:00Z") || events.contains("1781967600"), "{events}");
    tenure(&dir, &["apply", "--as-of", "2026-06-20T14:00:00Z"]);
    assert_eq!(active(&sb, "eve.sato@acme.example").await, Some(true));

    // The schedule is an hour away; the termination is 3 seconds away on the daemon's clock.
    let mut child = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("--data-dir")
        .arg(&dir)
        .args(["run", "--interval", "3600", "--rehearse-from", "2026-06-20T14:59:57Z"])
        .env("TENURE_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for l in out.lines().map_while(Result::ok) {
            sink.lock().unwrap().push(l);
        }
    });
    let start = Instant::now();
    let mut fired = false;
    while start.elapsed() < Duration::from_secs(60) {
        if active(&sb, "eve.sato@acme.example").await == Some(false) {
            fired = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    assert!(fired, "the termination did not fire: {:?}", lines.lock().unwrap());
    // At its moment, not before: the daemon's first run (at 14:59:57 on its clock) left Eve
    // active, and she went about 3 s later. (A lower bound only: a slow machine is later.)
    assert!(start.elapsed() >= Duration::from_secs(2), "fired early, after {:?}", start.elapsed());
    let audit = tenure(&dir, &["audit", "worker", "1"]);
    assert!(audit.contains("deactivate") && audit.contains("leaver: terminated"), "{audit}");
    assert_eq!(active(&sb, "ann.lee@acme.example").await, Some(true));
    // A rehearsal never marks a real event done: the real runs still see it due.
    let pending = tenure(&dir, &["hr", "events", "--state", "pending"]);
    assert!(pending.contains("termination"), "{pending}");
}
