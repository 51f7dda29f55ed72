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

/// The test identity provider (tests/browser/oidc_provider.mjs) over HTTPS with the tests' own
/// certificate authority, for tenure's callback at `redirect`. Its issuer, its process, and
/// the CA file tenure is told to trust.
struct Provider {
    issuer: String,
    ca_file: PathBuf,
    child: std::process::Child,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn provider(dir: &Path, work: &Path, redirect: &str, secret: &str) -> Provider {
    use std::io::BufRead;
    let (ca, cert, key) = common::env::test_certificates();
    std::fs::create_dir_all(work).unwrap();
    let ca_file = work.join("idp-ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    std::fs::write(work.join("idp-cert.pem"), cert).unwrap();
    std::fs::write(work.join("idp-key.pem"), key).unwrap();
    let accounts = serde_json::json!({
        "rita": {"email": "rita@example.com", "groups": ["tenure-reviewers", "everyone"]},
        "nora": {"email": "nora@example.com", "groups": ["sales", "everyone"]},
    });
    let mut child = Command::new("node")
        .arg("oidc_provider.mjs")
        .current_dir(dir)
        .env("OIDC_CERT", work.join("idp-cert.pem"))
        .env("OIDC_KEY", work.join("idp-key.pem"))
        .env("OIDC_REDIRECT", redirect)
        .env("OIDC_CLIENT_SECRET", secret)
        .env("OIDC_ACCOUNTS", accounts.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the identity provider");
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let issuer = loop {
        match lines.next() {
            Some(Ok(l)) if l.starts_with("listening ") => break l["listening ".len()..].trim().to_string(),
            Some(Ok(_)) => continue,
            other => panic!("the identity provider did not start: {other:?}"),
        }
    };
    // Its later output is not read: drain it so the pipe never fills.
    std::thread::spawn(move || for _ in lines {});
    Provider { issuer, ca_file, child }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_through_the_identity_provider_in_a_real_browser() {
    let (dir, chromium) = match browser_tools() {
        Ok(t) if t.0.join("node_modules/oidc-provider").exists() => t,
        Ok(_) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("CI must install oidc-provider (npm ci)"),
        Ok(_) => {
            eprintln!("SKIPPED: sign-in through the identity provider: no oidc-provider (npm ci in tests/browser)");
            return;
        }
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("CI must run the browser tests: {why}"),
        Err(why) => {
            eprintln!("SKIPPED: sign-in through the identity provider: {why}");
            return;
        }
    };
    let s = serve("oidc-browser", None, &["--interval", "0"]).await;
    let redirect = format!("{}/sign-in/oidc/callback", s.base);
    let secret = "the client secret the provider and tenure share";
    let idp = provider(&dir, &s.env.dir.join("idp"), &redirect, secret);
    let config = s.env.dir.join("auth.toml");
    std::fs::write(
        &config,
        format!(
            "[auth.oidc]\nname = \"Example SSO\"\nissuer = \"{}\"\nclient_id = \"tenure\"\nscopes = [\"email\", \
             \"profile\", \"groups\"]\nca_file = {:?}\nallowed_domains = [\"example.com\"]\n\n[auth.oidc.roles]\nadmin \
             = [\"tenure-admins\"]\nreviewer = [\"tenure-reviewers\"]\n",
            idp.issuer, idp.ca_file
        ),
    )
    .unwrap();
    s.env.ok(&["config", "import", config.to_str().unwrap()]);
    let secret_file = s.env.dir.join("idp-secret");
    std::fs::write(&secret_file, secret).unwrap();
    let said = s.env.ok(&["user", "oidc-secret", "--secret-file", secret_file.to_str().unwrap()]);
    assert!(said.contains("client secret set") && !said.contains(secret), "{said}");

    let shots = repo().join("target/console-screenshots");
    let out = Command::new("node")
        .args(["--test", "--test-reporter=spec", "oidc.test.mjs"])
        .current_dir(&dir)
        .env("TENURE_URL", &s.base)
        .env("OIDC_ISSUER", &idp.issuer)
        .env("OIDC_NAME", "Example SSO")
        .env("SCREENSHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("run node");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the sign-in story failed:\n{said}");
    assert!(!said.contains(secret), "the client secret in the browser test's output");

    // The person was made once, by the provider's sign-in, and their role moved with their groups.
    let users = s.env.ok(&["user", "list", "--json"]);
    let users: serde_json::Value = serde_json::from_str(&users).unwrap();
    let rita = users.as_array().unwrap().iter().find(|u| u["name"] == "rita@example.com").expect("rita was made");
    assert_eq!(rita["role"], "reviewer");
    assert_eq!(rita["signs_in_through_identity_provider"], true);
    assert!(!users.as_array().unwrap().iter().any(|u| u["name"] == "nora@example.com"), "nora has no role: not made");
    let audit = s.env.ok(&["audit", "export", "--format", "ndjson"]);
    let records: Vec<serde_json::Value> = audit.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let by_provider = |action: &str| {
        records.iter().filter(|r| r["action"] == action && r["detail"]["actor"] == "identity provider").count()
    };
    assert_eq!(by_provider("user_add"), 1, "{audit}");
    assert_eq!(by_provider("user_set_role"), 2, "to admin and back: {audit}");
    assert_eq!(by_provider("user_disable"), 1, "shut out when no group gave a role: {audit}");
    assert_eq!(by_provider("user_enable"), 1, "back when one did: {audit}");
    let refused: Vec<&str> = records
        .iter()
        .filter(|r| r["action"] == "login_failed")
        .filter_map(|r| r["detail"]["refused"].as_str())
        .collect();
    for kind in ["no-role", "stale", "id-token"] {
        assert!(refused.contains(&kind), "{kind} refusal audited: {refused:?}");
    }
    assert_eq!(refused.iter().filter(|k| **k == "id-token").count(), 3, "{refused:?}");
    // Made-up answers from one address are slowed like wrong passwords.
    let mut statuses = vec![];
    for i in 0..6 {
        let r = reqwest::get(format!("{}/sign-in/oidc/callback?state=made-up-{i}&code=nothing", s.base)).await.unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [400, 400, 400, 400, 400, 429], "the sixth refusal in a row waits");

    // A token of a person of the provider lasts while they sign in: 30 days without, it stops.
    let made = s.env.ok(&[
        "token",
        "create",
        "rita cron",
        "--role",
        "viewer",
        "--for",
        "rita@example.com",
        "--break-glass",
        "the test makes a token for rita",
    ]);
    let token =
        made.split_whitespace().find(|w| w.starts_with("tenure_")).expect("the token is shown once").to_string();
    let whoami = |token: String| {
        let base = s.base.clone();
        async move { reqwest::Client::new().get(format!("{base}/api/v1/whoami")).bearer_auth(token).send().await.unwrap() }
    };
    assert_eq!(whoami(token.clone()).await.status(), 200);
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&s.env.store_url()).await.unwrap();
    let aged = (jiff::Timestamp::now().as_millisecond() - 31 * 24 * 3600 * 1000).to_string();
    let r = sqlx::query("UPDATE settings SET value = $1 WHERE name LIKE 'oidc-seen:%'")
        .bind(&aged)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(r.rows_affected(), 1, "rita's last sign-in is kept");
    pool.close().await;
    let r = whoami(token).await;
    assert_eq!(r.status(), 401);
    let said = r.text().await.unwrap();
    assert!(said.contains("has not signed in through the identity provider for 30 days"), "{said}");

    // The secret is sealed in the store, never there in plain text.
    let db = std::fs::read(s.env.dir.join("tenure.db")).unwrap();
    assert!(!db.windows(secret.len()).any(|w| w == secret.as_bytes()), "the client secret in plain text");
}
