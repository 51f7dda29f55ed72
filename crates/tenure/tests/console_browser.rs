//! The console in a real browser: this test starts the real `tenure serve` and the real
//! sandbox, then runs tests/browser (Debian's chromium through playwright-core, axe-core for
//! accessibility) against them, and checks in the store what the clicks did. Screenshots of
//! every page visited go to target/console-screenshots/.
//!
//! It needs node, the packages of tests/browser (`npm ci` there) and chromium: `.ci/run`
//! installs all three. Elsewhere, without them, it says loudly that it was skipped; under CI
//! (CI=true) their absence fails it.

mod common;

use common::api::serve;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// What the browser tests need, or why they cannot run here.
fn browser_tools() -> Result<(PathBuf, PathBuf), String> {
    let dir = repo().join("tests/browser");
    if !dir.join("node_modules/playwright-core").exists() {
        return Err(format!("{}: no node_modules (run `npm ci` there)", dir.display()));
    }
    let chromium = PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    if !chromium.exists() {
        return Err(format!("{} is not installed (apt-get install chromium)", chromium.display()));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Err("node is not installed".into());
    }
    Ok((dir, chromium))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admins_first_hour_in_a_real_browser() {
    let (dir, chromium) = match browser_tools() {
        Ok(t) => t,
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("CI must run the browser tests: {why}"),
        Err(why) => {
            eprintln!("SKIPPED: the console's browser tests: {why}");
            return;
        }
    };
    // A body limit that one worker's long title exceeds: the story's failure to retry.
    let sb = common::spawn(&["--max-body-bytes", "900"]);
    // No scheduled runs: the console's Apply is what provisions.
    let s = serve("console-browser", None, &["--interval", "0"]).await;
    let shots = repo().join("target/console-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let out = Command::new("node")
        .args(["--test", "--test-reporter=spec", "console.test.mjs"])
        .current_dir(&dir)
        .env("TENURE_URL", &s.base)
        .env("TENURE_ONE_TIME", &s.one_time)
        .env("SANDBOX_URL", &sb.base)
        .env("SANDBOX_TOKEN", &sb.token)
        .env("SCREENSHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .env("TENURE_HR_FILE", repo().join("examples/hr/workers.csv"))
        .output()
        .expect("run node");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser story failed:\n{said}");
    // What the clicks did, seen from outside the console: the connection is stored with its
    // token sealed, and every page visited left its screenshot.
    let list = s.env.ok(&["connection", "list", "--json"]);
    assert!(list.contains("Connection-Bearer Token-1") && list.contains("\"paused\": null"), "{list}");
    let audit = s.env.ok(&["audit", "export", "--format", "ndjson"]);
    for kind in ["password_change", "connection_add", "connection_pause", "connection_resume", "user_add"] {
        assert!(audit.contains(kind), "{kind} not audited: {audit}");
    }
    assert!(audit.contains("user:admin"), "done as the signed-in admin: {audit}");
    // The accounts the console's Apply made are in the sandbox: every worker the HR file
    // holds but the quarantined one and those not yet hired.
    let plan = s.env.ok(&["plan", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&plan).unwrap();
    let left =
        v["actions"].as_array().unwrap().iter().filter(|a| a["kind"] == "create" || a["kind"] == "deactivate").count();
    assert_eq!(left, 0, "the runs did everything they planned: {plan}");
    // The four leavers the reviewer confirmed and the two approved in the queue are inactive in
    // the sandbox; the others active.
    let users = common::env::accounts(&sb).await;
    let inactive = users.values().filter(|u| u["active"] == false).count();
    assert!(users.len() >= 7 && inactive == 6, "{} accounts, {inactive} inactive", users.len());
    let shots_taken = std::fs::read_dir(&shots).map(|d| d.count()).unwrap_or(0);
    assert!(shots_taken >= 12, "{shots_taken} screenshots in {}", shots.display());
    for secret in [&sb.token, &s.one_time] {
        assert!(!said.contains(secret.as_str()), "a secret in the browser test's output");
    }
}

/// The htmx embedded in the binary is the npm registry's file byte for byte, at the version
/// tests/browser/package.json pins (what `npm ci` installed there).
#[test]
fn the_embedded_htmx_is_the_registrys() {
    let dir = repo().join("tests/browser/node_modules/htmx.org");
    if !dir.exists() {
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "CI must run `npm ci` in tests/browser");
        eprintln!("SKIPPED: the embedded htmx's check: no {} (run `npm ci` in tests/browser)", dir.display());
        return;
    }
    let from_npm = std::fs::read(dir.join("dist/htmx.min.js")).unwrap();
    assert!(from_npm == web::console::HTMX, "crates/web/static/vendor differs from the npm package");
    let pkg: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("package.json")).unwrap()).unwrap();
    assert_eq!(pkg["version"], web::console::HTMX_VERSION);
    assert_eq!(web::console::ASSETS.htmx_sri, web::console::sri(&from_npm));
}
