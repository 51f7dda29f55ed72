//! `tenure serve` (issue 16, point 2), with the real binary: one address for the push
//! endpoint and the probes, the scheduler running behind it, plain http refused off loopback,
//! TLS through rustls, readiness that can fail, and SIGTERM stopping cleanly.

mod common;

use common::env::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_serves_the_probes_and_the_push_endpoint_while_the_scheduler_runs() {
    let sb = common::spawn(&[]);
    let env = Env::connect(&sb, "serve", "");
    let ann = row("1", "Ann", "Lee", "Engineer", "Sales", "employee", "active", ",2020-01-01", ",,,");
    env.load("hr.csv", &[ann], "2026-06-01T12:00:00Z", &[]);
    let mut running = env.start(&["serve", "--listen", "127.0.0.1:0", "--interval", "3600"]);
    let base = running.address().await;
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    let http = reqwest::Client::new();
    let get = |path: &str| {
        let (http, url) = (http.clone(), format!("{base}{path}"));
        async move {
            let r = http.get(url).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(get("/healthz").await, (200, serde_json::json!({"status": "up"})));
    let (code, ready) = get("/readyz").await;
    assert_eq!((code, ready["status"].as_str()), (200, Some("ready")), "{ready}");
    assert_eq!((ready["store"].as_str(), ready["scheduler"].as_str()), (Some("ok"), Some("ok")));
    // The scheduler behind it reconciles: Ann's account is made.
    assert_eq!(wait_for_users(&sb, None, 1, 100, 600).await, 1, "{:?}", running.lines.lock().unwrap());
    // Its runs went on threads of their own at a lower CPU priority than the API's.
    let nice = threads_nice(running.child.id());
    let runs: Vec<i64> = nice.iter().filter(|(n, _)| n == "tenure-runs").map(|(_, v)| *v).collect();
    assert!(!runs.is_empty() && runs.iter().all(|v| *v == 10), "{nice:?}");
    assert!(nice.iter().filter(|(n, _)| n.starts_with("tokio-rt")).all(|(_, v)| *v == 0), "{nice:?}");
    assert!(nice.iter().any(|(n, _)| n.starts_with("tokio-rt")), "the API's runtime threads: {nice:?}");
    // SQLite works on a thread per connection: the runs' at the runs' priority, the API's not.
    let sqlite: Vec<i64> = nice.iter().filter(|(n, _)| n.starts_with("sqlx-sqlite")).map(|(_, v)| *v).collect();
    assert!(sqlite.contains(&10) && sqlite.contains(&0), "{nice:?}");
    // No push secret yet: the endpoint says what to do.
    let r = http.post(format!("{base}/hr/v1/push")).body("{}").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.text().await.unwrap().contains("tenure hr push-secret"));
    // Readiness fails when the store's schema is newer than this build (an upgrade half done).
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&env.store_url()).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101000000, 'from a newer build', TRUE, x'00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let (code, ready) = get("/readyz").await;
    assert_eq!(code, 503, "{ready}");
    assert!(ready["store"].as_str().unwrap().contains("newer than this build"), "{ready}");
    assert_eq!(get("/healthz").await.0, 200, "up, though not ready");
    // SIGTERM: in-flight work finishes, the process stops with 0.
    let _ = Command::new("kill").args(["-TERM", &running.child.id().to_string()]).status();
    let status = running.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        running.lines.lock().unwrap().iter().any(|l| l.contains("tenure run: stopped")),
        "{:?}",
        running.lines.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_refused_off_loopback_and_tls_is_served_through_rustls() {
    let sb = common::spawn(&[]);
    let env = Env::connect(&sb, "serve-tls", "");
    let (code, out) = env.tenure(&["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("refusing plain http on 0.0.0.0:0") && out.contains("--tls-cert"), "{out}");
    let (ca, cert, key) = test_certificates();
    let (cert_file, key_file) = (env.dir.join("cert.pem"), env.dir.join("key.pem"));
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    // A key that is not one: said plainly, the file's content never quoted.
    let junk = env.dir.join("junk.pem");
    std::fs::write(&junk, "not a key at all, secret-ish").unwrap();
    let (code, out) = env.tenure(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert_file.to_str().unwrap(),
        "--tls-key",
        junk.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no readable private key") && !out.contains("secret-ish"), "{out}");
    let running = env.start(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert_file.to_str().unwrap(),
        "--tls-key",
        key_file.to_str().unwrap(),
    ]);
    let base = running.address().await;
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");
    let port = base.rsplit(':').next().unwrap();
    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .build()
        .unwrap();
    let r = trusting.get(format!("https://localhost:{port}/healthz")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // A client that does not trust the certificate is refused, and plain http gets nothing.
    assert!(reqwest::Client::new().get(format!("https://localhost:{port}/healthz")).send().await.is_err());
    let plain = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().unwrap();
    assert!(plain
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .map(|r| r.status().as_u16() != 200)
        .unwrap_or(true));
}

/// Each thread of a process: its name and nice value (/proc/PID/task/TID/stat, field 19).
fn threads_nice(pid: u32) -> Vec<(String, i64)> {
    let mut out = vec![];
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let name = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default().trim().to_string();
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // After the command name in parentheses: state is field 3, nice field 19.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        if let Some(n) = rest.split_whitespace().nth(16).and_then(|v| v.parse().ok()) {
            out.push((name, n));
        }
    }
    out
}
