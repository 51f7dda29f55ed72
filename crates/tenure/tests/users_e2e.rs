//! Platform users and API tokens (issue 16, point 3, first part), with the real binary:
//! argon2id hashes, one-time passwords shown once, roles, disabling, tokens shown once and
//! stored hashed, last use, revocation and expiry, checked through `tenure serve`.

mod common;

use common::env::*;
use serde_json::Value;
use std::time::Duration;

fn start(env: &Env) -> Running {
    env.start(&["serve", "--listen", "127.0.0.1:0", "--interval", "3600"])
}

async fn column(env: &Env, sql: &str) -> Vec<String> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&env.store_url()).await.unwrap();
    let rows = sqlx::query(sql).fetch_all(&pool).await.unwrap();
    pool.close().await;
    rows.iter().map(|r| sqlx::Row::get::<String, _>(r, 0)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_have_roles_and_hashed_passwords_and_one_time_passwords_are_shown_once() {
    let sb = common::spawn(&[]);
    let env = Env::connect(&sb, "users", "");
    let pw = env.dir.join("pw");
    std::fs::write(&pw, "a long enough passphrase\n").unwrap();
    let out = env.ok(&["user", "add", "ann", "--role", "editor", "--password-file", pw.to_str().unwrap()]);
    assert!(out.contains("user \"ann\" added as editor"), "{out}");
    let (code, out) = env.tenure(&["user", "add", "Ann", "--role", "viewer", "--password-file", pw.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("a user named \"Ann\" exists already"), "{out}");
    std::fs::write(env.dir.join("short"), "short").unwrap();
    let (code, out) = env.tenure(&[
        "user",
        "add",
        "bob",
        "--role",
        "viewer",
        "--password-file",
        env.dir.join("short").to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(out.contains("at least 12 characters"), "{out}");
    // No terminal and no file: a one-time password, shown once.
    let out = env.ok(&["user", "add", "rev", "--role", "reviewer"]);
    let once = out.rsplit(": ").next().unwrap().trim().to_string();
    assert_eq!(once.len(), 20, "{out}");
    env.ok(&["user", "set-role", "ann", "reviewer"]);
    env.ok(&["user", "disable", "rev"]);
    let list: Value = serde_json::from_str(&env.ok(&["user", "list", "--json"])).unwrap();
    assert_eq!(list[0]["name"], "ann");
    assert_eq!(list[0]["role"], "reviewer");
    assert_eq!((list[1]["disabled"].as_bool(), list[1]["must_change_password"].as_bool()), (Some(true), Some(true)));
    let text = env.ok(&["user", "list"]);
    assert!(!text.contains("argon2") && !text.contains(&once), "{text}");
    // Stored as argon2id hashes: neither password is on disk as written.
    let hashes = column(&env, "SELECT password_hash FROM platform_users ORDER BY name_key").await;
    assert!(hashes.iter().all(|h| h.starts_with("$argon2id$")), "{hashes:?}");
    assert!(hashes.iter().all(|h| !h.contains("passphrase") && !h.contains(&once)));
    let db = std::fs::read(env.dir.join("tenure.db")).unwrap();
    assert!(!db.windows(once.len()).any(|w| w == once.as_bytes()), "the one-time password is nowhere in the store");
    // A reset gives another one-time password and ends the user's sessions.
    let before = column(&env, "SELECT credentials_at FROM platform_users WHERE name_key = 'ann'").await;
    std::thread::sleep(Duration::from_millis(1100));
    let out = env.ok(&["user", "reset-password", "ann"]);
    assert!(out.contains("one-time password for \"ann\""), "{out}");
    assert_ne!(column(&env, "SELECT credentials_at FROM platform_users WHERE name_key = 'ann'").await, before);
    let (code, out) = env.tenure(&["user", "disable", "nobody"]);
    assert_eq!(code, 1);
    assert!(out.contains("no user named \"nobody\""), "{out}");
    // Each change is a decision in the audit chain, with who made it, and no password in it.
    let actions = column(&env, "SELECT action FROM audit WHERE action LIKE 'user_%' ORDER BY seq").await;
    assert_eq!(actions, ["user_add", "user_add", "user_set_role", "user_disable", "user_reset_password"]);
    let details = column(&env, "SELECT detail FROM audit WHERE action LIKE 'user_%'").await.join("\n");
    assert!(details.contains("\"actor\"") && !details.contains("passphrase") && !details.contains(&once), "{details}");
    let verified = env.ok(&["audit", "verify"]);
    assert!(verified.contains("chain intact"), "{verified}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_are_shown_once_stored_hashed_and_stop_when_revoked_or_expired() {
    let sb = common::spawn(&[]);
    let env = Env::connect(&sb, "tokens", "");
    let running = start(&env);
    let url = running.address().await;
    // The first start made an Admin with a one-time password, said once.
    let first = running.lines.lock().unwrap().iter().find(|l| l.contains("first start: user \"admin\"")).cloned();
    assert!(first.is_some(), "{:?}", running.lines.lock().unwrap());
    let out = env.ok(&["token", "create", "monitoring", "--role", "viewer", "--expires", "90d"]);
    let secret = out.lines().last().unwrap().trim().to_string();
    assert!(secret.starts_with("tenure_") && secret.len() > 70, "{out}");
    let (code, out) = env.tenure(&[
        "token",
        "create",
        "x",
        "--role",
        "editor",
        "--connection",
        "nope",
        "--for",
        "admin",
        "--break-glass",
        "t",
    ]);
    assert_eq!(code, 1);
    assert!(out.contains("no connection named \"nope\""), "{out}");
    // An expiry in the past is refused; a token that has run out is made by ageing one.
    let (code, out) = env.tenure(&[
        "token",
        "create",
        "old",
        "--role",
        "admin",
        "--expires",
        "2020-01-01T00:00:00Z",
        "--for",
        "admin",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("has passed"), "{out}");
    let past = env.ok(&[
        "token",
        "create",
        "old",
        "--role",
        "admin",
        "--expires",
        "1d",
        "--for",
        "admin",
        "--break-glass",
        "t",
    ]);
    let expired = past.lines().last().unwrap().trim().to_string();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&env.store_url()).await.unwrap();
    sqlx::query("UPDATE api_tokens SET expires_at = '2020-01-01T00:00:00Z' WHERE name = 'old'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let list = env.ok(&["token", "list"]);
    assert!(list.contains("monitoring") && list.contains("last used never"), "{list}");
    assert!(!list.contains(&secret[20..]), "the secret is never listed: {list}");
    let stored = column(&env, "SELECT secret_hash FROM api_tokens").await;
    assert!(stored.iter().all(|h| h.len() == 64 && !secret.contains(h.as_str())), "{stored:?}");
    let http = reqwest::Client::new();
    let whoami = |bearer: String| {
        let (http, url) = (http.clone(), format!("{url}/api/v1/whoami"));
        async move {
            let r = http.get(url).bearer_auth(bearer).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (code, me) = whoami(secret.clone()).await;
    assert_eq!((code, me["name"].as_str(), me["role"].as_str()), (200, Some("monitoring"), Some("viewer")), "{me}");
    let list: Value = serde_json::from_str(&env.ok(&["token", "list", "--json"])).unwrap();
    assert!(list[0]["last_used_at"].is_string(), "its last use is kept: {list}");
    assert_eq!(whoami(expired).await.0, 401, "expired");
    assert_eq!(whoami(format!("{secret}x")).await.0, 401, "altered");
    assert_eq!(whoami("garbage".into()).await.0, 401);
    let id = me["token"].as_str().unwrap().to_string();
    env.ok(&["token", "revoke", &id]);
    assert_eq!(whoami(secret.clone()).await.0, 401, "revoked: stops at once");
    let (code, out) = env.tenure(&["token", "revoke", &id]);
    assert_eq!(code, 1, "{out}");
    let actions =
        column(&env, "SELECT action FROM audit WHERE action LIKE 'api_token_%' OR action = 'first_admin' ORDER BY seq")
            .await;
    assert_eq!(actions, ["first_admin", "api_token_create", "api_token_create", "api_token_revoke"]);
    let details = column(&env, "SELECT detail FROM audit WHERE action LIKE 'api_token_%'").await.join("\n");
    assert!(!details.contains(&secret[20..]), "no secret in the audit: {details}");
    drop(running);
    // A second start says nothing of a first admin.
    let again = start(&env);
    let _ = again.address().await;
    assert!(!again.said("first start"), "{:?}", again.lines.lock().unwrap());
}
