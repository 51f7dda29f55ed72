//! The admin HTTP API (issue 16), against the real `tenure serve` on a random port with a
//! real SQLite file (and PostgreSQL under TENURE_TEST_DATABASE_URL): the admin's whole story,
//! the role matrix over every documented route, CSRF, session expiry and revocation,
//! problem documents, metrics, and a grep for every secret after it all.

mod common;

use common::api::*;
use common::env::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

async fn admin_story(database_url: Option<String>, tag: &str) {
    let sb = common::spawn(&[]);
    // No schedule: the runs of this story are the ones it starts.
    let s = serve(tag, database_url, &["--interval", "0"]).await;
    let base = s.base.as_str();
    let mut secrets = vec![sb.token.clone(), s.one_time.clone()];
    let mut answers = String::new();

    // First login with the one-time password: nothing else until it is changed.
    let (admin, r) = Client::login(base, "admin", &s.one_time).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["must_change_password"], true);
    let cookie = r.headers.get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain http on loopback: no Secure flag ({cookie})");
    secrets.push(admin.cookie.clone().unwrap().split('=').nth(1).unwrap().to_string());
    let r = admin.get("/api/v1/status").await;
    assert_eq!(
        (r.status, r.json()["type"].as_str()),
        (403, Some("https://tenure.dev/problems/password-change-required"))
    );
    let new_password = "admin's own long passphrase";
    secrets.push(new_password.into());
    let r = admin.put("/api/v1/session/password", json!({"current": s.one_time, "new": new_password})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The change ended the old session; the answer carries a new one.
    assert_eq!(admin.get("/api/v1/whoami").await.status, 401, "the old session is void");
    let (admin, r) = Client::login(base, "admin", new_password).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["must_change_password"], false);
    secrets.push(admin.cookie.clone().unwrap().split('=').nth(1).unwrap().to_string());

    // A connection to the sandbox, tested before it is saved; the token never comes back.
    let r = admin
        .post("/api/v1/connections", json!({"name": "Connection-Bearer Token-1", "url": sb.base, "token": sb.token}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.json()["test"][0].as_str().unwrap().contains("connection works"), "{}", r.text);
    answers += &r.text;
    let bad =
        admin.post("/api/v1/connections", json!({"name": "x", "url": sb.base, "token": "wrong-token-value"})).await;
    assert_eq!(bad.status, 422, "a token that does not work is not saved: {}", bad.text);

    // The configuration, supervised for leavers; a dry run first says what it would change.
    let toml = rules("\"leave\"");
    let r = admin.send("PUT", "/api/v1/config", Some(("application/toml", toml.clone().into_bytes()))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["saved"], true);
    let broken =
        admin.send("PUT", "/api/v1/config", Some(("application/toml", b"[[roles]]\nname = 1\n".to_vec()))).await;
    assert_eq!(broken.status, 400, "{}", broken.text);
    let got = admin.get("/api/v1/config?format=json").await;
    assert_eq!(got.status, 200);
    // "leave", the name of before, is kept as what it covers.
    assert!(
        got.json()["config"]["connection"][0]["supervised"] == json!(["termination", "leave_of_absence"]),
        "{}",
        got.text
    );
    let notes = r.json()["notes"].clone();
    assert!(
        notes.as_array().unwrap().iter().any(|n| n.as_str().unwrap().contains("\"leave\" is read as \"termination\"")),
        "{}",
        r.text
    );

    // HR data with one broken row: quarantined, the rest taken.
    let ann = |status: &str, end: &str| {
        row("1", "Ann", "Lee", "Engineer", "Engineering", "employee", status, ",2020-01-01", &format!("{end},,,"))
    };
    let bob = row("2", "Bob", "Ray", "Analyst", "Sales", "employee", "active", ",2020-01-01", ",,,");
    let broken_row = "3,Cy,,cy@acme.example,Clerk,Sales,employee,active,,not-a-date,,,,".to_string();
    let r = admin
        .send("POST", "/api/v1/hr/uploads", Some(("text/csv", csv(&[ann("active", ""), bob.clone(), broken_row]))))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let up = r.json();
    assert_eq!((up["accepted"].as_u64(), up["quarantined"].as_u64()), (Some(2), Some(1)), "{up}");
    assert_eq!(up["quarantined_rows"][0]["row"], 3, "{up}");
    let load_id = up["load_id"].as_str().unwrap().to_string();
    // The taken rows' values, field by field, come with the answer.
    assert_eq!(up["fields"]["workers"], 2, "{up}");
    let dept = up["fields"]["fields"].as_array().unwrap().iter().find(|f| f["field"] == "department").unwrap();
    assert_eq!((dept["distinct"].as_u64(), dept["empty"].as_u64()), (Some(2), Some(0)), "{dept}");
    let loads = admin.get("/api/v1/hr/loads").await.json();
    assert!(loads[0]["warnings"].is_array(), "{loads}");
    let q = admin.get(&format!("/api/v1/hr/loads/{load_id}/quarantined")).await;
    assert_eq!(q.json().as_array().map(Vec::len), Some(1), "{}", q.text);

    // Plan, then a run through the API: answered at once, followed to its end.
    let p = admin.get("/api/v1/connections/Connection-Bearer%20Token-1/plan?kind=create").await;
    assert_eq!(p.status, 200, "{}", p.text);
    assert_eq!(p.json()["actions"].as_array().unwrap().len(), 2, "{}", p.text);
    let r = admin.post("/api/v1/connections/Connection-Bearer%20Token-1/runs", json!({})).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let run_id = r.json()["run_id"].as_str().unwrap().to_string();
    let run = finished(&admin, &run_id).await;
    assert_eq!(run["state"], "succeeded", "{run}");
    // Its events: the stream ends with the run's end, as stored.
    let ev = admin.get(&format!("/api/v1/runs/{run_id}/events")).await;
    assert!(ev.headers["content-type"].to_str().unwrap().starts_with("text/event-stream"), "{:?}", ev.headers);
    let end = ev.text.split("event: end\ndata: ").nth(1).expect("an end event").lines().next().unwrap();
    let end: Value = serde_json::from_str(end).unwrap();
    assert_eq!((end["state"].as_str(), end["summary"]["failed"].as_u64()), (Some("succeeded"), Some(0)), "{end}");
    assert_eq!(run["summary"]["failed"], 0, "{run}");
    let acc = accounts(&sb).await;
    assert!(acc.contains_key("ann.lee@acme.example") && acc.contains_key("bob.ray@acme.example"), "{acc:?}");
    // A dry run of a change says who it would change and how, and saves nothing.
    let viewers = toml.replacen(
        "name = \"Employees\"\nwhen = { field = \"employment_type\", op = \"equals\", value = \"employee\" }\n[role.grants.\"Connection-Bearer Token-1\"]\nuser_type = \"member\"",
        "name = \"Employees\"\nwhen = { field = \"employment_type\", op = \"equals\", value = \"employee\" }\n[role.grants.\"Connection-Bearer Token-1\"]\nuser_type = \"viewer\"",
        1,
    );
    assert_ne!(viewers, toml);
    let version = admin.get("/api/v1/config?format=json").await.json()["version"].clone();
    let r = admin.send("PUT", "/api/v1/config?dry_run=true", Some(("application/toml", viewers.into_bytes()))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let d = &r.json()["differences"];
    assert_eq!((d["workers"].as_u64(), d["changed"].as_u64()), (Some(2), Some(1)), "{d}");
    assert_eq!(d["differences"][0]["worker"], "2", "Bob (Sales, an Employee), not Ann (Engineering): {d}");
    assert_eq!(d["differences"][0]["grant"]["after"]["user_type"], "viewer", "{d}");
    assert_eq!(r.json()["saved"], false);
    assert_eq!(admin.get("/api/v1/config?format=json").await.json()["version"], version, "a dry run saves nothing");
    let w = admin.get("/api/v1/workers?q=ann").await;
    assert_eq!(w.json()["total"], 1, "{}", w.text);
    let why = admin.get("/api/v1/workers/1").await;
    assert_eq!(why.status, 200, "{}", why.text);
    assert!(
        why.json()["connections"][0]["decision"]["attributes"].as_array().is_some_and(|a| !a.is_empty()),
        "{}",
        why.text
    );
    // The "why" reads Ann's one account by her link, not the whole target: changed by hand in
    // monday.com, the change shows, and a hundred asks at once are a hundred reads at most.
    let ann_id = accounts(&sb).await["ann.lee@acme.example"]["id"].as_str().unwrap().to_string();
    let target = &why.json()["connections"][0]["target"];
    assert!(target["basis"].as_str().unwrap().contains(&format!("its linked account {ann_id}")), "{target}");
    assert_eq!(target["reads"], 1, "{target}");
    assert!(target["read_at"].as_str().is_some_and(|t| t.parse::<jiff::Timestamp>().is_ok()), "{target}");
    assert_eq!(why.json()["connections"][0]["plan"][0]["kind"], "no_change", "{}", why.text);
    let r = sb
        .patch(&format!("/Users/{ann_id}"), json!([{"op": "replace", "path": "title", "value": "Changed by hand"}]))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let why = admin.get("/api/v1/workers/1").await;
    let plan = &why.json()["connections"][0]["plan"];
    assert!(
        plan.as_array().unwrap().iter().any(|a| a["kind"] == "update"
            && a["changes"][0]["attribute"] == "title"
            && a["changes"][0]["before"] == "Changed by hand"),
        "{plan}"
    );
    let root = sb.base.trim_end_matches("/scim/v2").to_string();
    let stats = || async {
        let r = sb.http.get(format!("{root}/_sandbox/stats")).bearer_auth(&sb.token).send().await.unwrap();
        r.json::<Value>().await.unwrap()["requests"].as_u64().unwrap()
    };
    let before = stats().await;
    let asks: Vec<_> = (0..100)
        .map(|_| {
            let admin = admin.clone();
            tokio::spawn(async move { admin.get("/api/v1/workers/1").await.status })
        })
        .collect();
    for a in asks {
        assert_eq!(a.await.unwrap(), 200);
    }
    let reads = stats().await - before;
    // The stats call counts itself.
    assert!(reads <= 101, "100 asks made {} requests to the target", reads - 1);

    // Ann leaves: the leave waits for a reviewer, and not the admin who uploaded it.
    let r = admin
        .send("POST", "/api/v1/hr/uploads", Some(("text/csv", csv(&[ann("terminated", "2026-01-01"), bob.clone()]))))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A run from the command line: proposed by the OS user running it.
    let out = s.env.ok(&["apply", "--quiet"]);
    assert!(out.contains("wait for a reviewer"), "{out}");
    let reviews = admin.get("/api/v1/reviews").await.json();
    let review = reviews[0].clone();
    assert_eq!(reviews.as_array().map(Vec::len), Some(1), "{reviews}");
    assert_eq!(review["worker"], "1", "{review}");
    assert_eq!(review["uploaded_by"], "user:admin", "the uploader is recorded: {review}");
    assert!(
        review["proposed_by"].as_str().is_some_and(|p| p.starts_with("os:")),
        "a command-line run is proposed by its OS user: {review}"
    );
    assert_eq!(accounts(&sb).await["ann.lee@acme.example"]["active"], true, "not yet");
    let id = review["id"].as_i64().unwrap();
    let r = admin.post(&format!("/api/v1/reviews/{id}/approve"), json!({})).await;
    assert_eq!(
        (r.status, r.json()["type"].as_str()),
        (403, Some("https://tenure.dev/problems/maker-checker")),
        "{}",
        r.text
    );
    // A reviewer approves it.
    let rita_pw = "rita reviews with care";
    secrets.push(rita_pw.into());
    let r = admin.post("/api/v1/users", json!({"name": "rita", "role": "reviewer", "password": rita_pw})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let (rita, _) = Client::login(base, "rita", rita_pw).await;
    secrets.push(rita.cookie.clone().unwrap().split('=').nth(1).unwrap().to_string());
    assert_eq!(
        rita.post("/api/v1/connections/Connection-Bearer%20Token-1/runs", json!({})).await.status,
        403,
        "a reviewer does not start runs"
    );
    let r = rita.post(&format!("/api/v1/reviews/{id}/approve"), json!({"note": "HR confirmed"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["decided"][0]["decided_by"], "user:rita", "{}", r.text);
    let r = admin.post("/api/v1/connections/Connection-Bearer%20Token-1/runs", json!({})).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let run = finished(&admin, r.json()["run_id"].as_str().unwrap()).await;
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(accounts(&sb).await["ann.lee@acme.example"]["active"], false, "the approved leave was carried out");

    // An API token for scripts: shown once, then it works as its role.
    let r = admin.post("/api/v1/tokens", json!({"name": "monitoring", "role": "viewer"})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let token = r.json()["token"].as_str().unwrap().to_string();
    secrets.push(token.clone());
    let bot = Client::token(base, &token);
    let st = bot.get("/api/v1/status").await;
    assert_eq!(st.status, 200, "{}", st.text);
    let conn = &st.json()["connections"][0];
    assert_eq!(conn["last_run"]["failed"], 0, "{conn}");
    assert!(conn["next_run"].is_null() && s.run.said("no scheduled runs (--interval 0)"), "{conn}");
    assert_eq!(conn["pending_reviews"], 0, "{conn} {}", admin.get("/api/v1/reviews?state=all").await.text);
    answers += &st.text;

    // The audit: intact, filtered by actor, exported as CSV and NDJSON.
    let v = admin.get("/api/v1/audit/verify").await.json();
    assert_eq!(v["intact"], true, "{v}");
    let mine = admin.get("/api/v1/audit?actor=user:rita&kind=decision").await.json();
    assert!(mine.as_array().unwrap().iter().any(|r| r["action"] == "approve"), "{mine}");
    let refused_login = Client::login(base, "admin", "not the password at all").await.1;
    assert_eq!(refused_login.status, 401);
    let fails = admin.get("/api/v1/audit?action=login_failed").await.json();
    assert_eq!(fails.as_array().unwrap().len(), 1, "{fails}");
    let csv_export = admin.get("/api/v1/audit/export?format=csv").await;
    assert!(csv_export.headers["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert!(csv_export.text.starts_with("seq,at,run"), "{}", &csv_export.text[..80.min(csv_export.text.len())]);
    let nd = admin.get("/api/v1/audit/export?format=ndjson").await.text;
    assert!(nd.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()) && nd.contains("config_import"));
    answers += &csv_export.text;
    answers += &nd;

    // Metrics count the runs and the failed login.
    let m = Client::anonymous(base).get("/metrics").await.text;
    assert!(m.contains("tenure_runs_total{connection=\"Connection-Bearer Token-1\",outcome=\"ok\"}"), "{m}");
    assert!(m.contains("tenure_login_failures_total 1"), "{m}");
    assert!(m.contains("tenure_scim_requests_total{connection=\"Connection-Bearer Token-1\",status=\"2xx\"}"), "{m}");

    // Logout ends the session everywhere its cookie is.
    assert_eq!(rita.send("DELETE", "/api/v1/session", None).await.status, 204);
    assert_eq!(rita.get("/api/v1/whoami").await.status, 401);

    // No secret in any answer, log line or file of the store (the one-time password is
    // printed once by design, on the first start).
    drop(s.run);
    let mut files = String::new();
    for e in walk(&s.env.dir) {
        files += &String::from_utf8_lossy(&std::fs::read(&e).unwrap_or_default());
    }
    if let Some(url) = &s.env.database_url {
        files += &dump_postgres(url).await;
    }
    for (i, secret) in secrets.iter().enumerate() {
        assert!(!answers.contains(secret.as_str()), "secret {i} in an answer");
        assert!(!files.contains(secret.as_str()), "secret {i} in the store's files");
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Every text of every table of a schema, for the secret grep.
async fn dump_postgres(url: &str) -> String {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let mut out = String::new();
    for t in ["platform_users", "api_tokens", "sessions", "connections", "audit", "settings", "hr_loads"] {
        if let Ok(rows) = sqlx::query(&format!("SELECT * FROM {t}")).fetch_all(&pool).await {
            for r in rows {
                use sqlx::Row;
                for i in 0..r.len() {
                    if let Ok(s) = r.try_get::<String, _>(i) {
                        out += &s;
                        out.push('\n');
                    }
                }
            }
        }
    }
    pool.close().await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admins_whole_story_through_the_api() {
    admin_story(None, "api-story").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admins_whole_story_through_the_api_on_postgres() {
    if let Some(pg) = postgres("api_story").await {
        admin_story(Some(pg.url.clone()), "api-story-pg").await;
    }
}

/// Who may call each documented route. A route added without an entry fails the test.
fn matrix() -> BTreeMap<&'static str, &'static str> {
    [
        ("POST /api/v1/session", "public"),
        ("GET /api/v1/session", "any"),
        ("DELETE /api/v1/session", "any"),
        ("PUT /api/v1/session/password", "any"),
        ("GET /api/v1/whoami", "any"),
        ("GET /api/v1/session/all", "any"),
        ("POST /api/v1/session/end-others", "any"),
        ("DELETE /api/v1/users/{name}/sessions", "admin"),
        ("GET /api/v1/users", "admin"),
        ("PUT /api/v1/auth/oidc-secret", "admin"),
        ("POST /api/v1/users", "admin"),
        ("PATCH /api/v1/users/{name}", "admin"),
        ("POST /api/v1/users/{name}/password-reset", "admin"),
        ("GET /api/v1/tokens", "admin"),
        // Anyone signed in makes a token of their own (the body asks for a viewer one).
        ("POST /api/v1/tokens", "any"),
        ("DELETE /api/v1/tokens/{id}", "admin"),
        ("GET /api/v1/connections", "viewer"),
        ("POST /api/v1/connections", "admin"),
        ("GET /api/v1/connections/{name}", "viewer"),
        ("DELETE /api/v1/connections/{name}", "admin"),
        ("POST /api/v1/connections/{name}/test", "editor"),
        ("POST /api/v1/connections/{name}/pause", "admin"),
        ("POST /api/v1/connections/{name}/resume", "admin"),
        ("PUT /api/v1/connections/{name}/token", "admin"),
        ("GET /api/v1/connections/{name}/plan", "editor"),
        ("POST /api/v1/connections/{name}/plan", "editor"),
        ("POST /api/v1/connections/{name}/runs", "editor"),
        ("GET /api/v1/config", "viewer"),
        ("PUT /api/v1/config", "editor"),
        ("POST /api/v1/hr/uploads", "editor"),
        ("GET /api/v1/hr/loads", "viewer"),
        ("GET /api/v1/hr/loads/{id}/quarantined", "viewer"),
        ("GET /api/v1/workers", "viewer"),
        ("GET /api/v1/workers/{id}", "viewer"),
        ("GET /api/v1/status", "viewer"),
        ("POST /api/v1/store/restore/confirm", "admin"),
        ("GET /api/v1/runs", "viewer"),
        ("GET /api/v1/runs/{id}", "viewer"),
        ("GET /api/v1/runs/{id}/items", "viewer"),
        ("GET /api/v1/runs/{id}/events", "viewer"),
        ("GET /api/v1/reviews", "viewer"),
        ("POST /api/v1/reviews/decisions", "reviewer"),
        ("POST /api/v1/reviews/{id}/approve", "reviewer"),
        ("POST /api/v1/reviews/{id}/reject", "reviewer"),
        ("GET /api/v1/dead-letters", "viewer"),
        ("POST /api/v1/dead-letters/retry", "reviewer"),
        ("GET /api/v1/audit", "viewer"),
        ("GET /api/v1/audit/export", "viewer"),
        ("GET /api/v1/audit/verify", "viewer"),
        ("POST /api/v1/notifications/{name}/test", "editor"),
    ]
    .into_iter()
    .collect()
}

/// What a token limited to one connection may reach: `global` routes concern every connection
/// (refused), `conn` routes one named in the path (refused for another), `filtered` routes
/// answer within its connection, `self` routes are the caller's own session.
fn scope_of(key: &str) -> &'static str {
    let path = key.split_once(' ').map(|(_, p)| p).unwrap_or(key);
    if path.starts_with("/api/v1/session") || path == "/api/v1/whoami" {
        "self"
    } else if key == "POST /api/v1/connections/{name}/plan" {
        // An unsaved configuration concerns every connection.
        "global"
    } else if path.starts_with("/api/v1/connections/{name}") {
        "conn"
    } else if [
        "GET /api/v1/connections",
        "GET /api/v1/status",
        "GET /api/v1/runs",
        "GET /api/v1/runs/{id}",
        "GET /api/v1/runs/{id}/items",
        "GET /api/v1/runs/{id}/events",
        "GET /api/v1/reviews",
        "POST /api/v1/reviews/decisions",
        "POST /api/v1/reviews/{id}/approve",
        "POST /api/v1/reviews/{id}/reject",
        "GET /api/v1/dead-letters",
        "POST /api/v1/dead-letters/retry",
        "GET /api/v1/audit",
        "GET /api/v1/audit/export",
    ]
    .contains(&key)
    {
        "filtered"
    } else {
        "global"
    }
}

fn allowed(need: &str, role: &str) -> bool {
    match need {
        "public" | "any" | "viewer" => true,
        "admin" => role == "admin",
        other => role == other || role == "admin",
    }
}

/// A body each route parses, so what is checked is who may call it.
fn body_for(key: &str) -> Option<(&'static str, Vec<u8>)> {
    let j = |v: Value| Some(("application/json", v.to_string().into_bytes()));
    match key {
        "POST /api/v1/users" => j(json!({"name": format!("m{}", rand_suffix()), "role": "viewer"})),
        "PATCH /api/v1/users/{name}" => j(json!({})),
        "POST /api/v1/tokens" => j(json!({"name": "matrix", "role": "viewer"})),
        "POST /api/v1/connections" => j(json!({"url": "https://nowhere.invalid/scim/v2/", "token": "t"})),
        "PUT /api/v1/connections/{name}/token" => j(json!({"token": "not-working"})),
        "PUT /api/v1/auth/oidc-secret" => j(json!({"secret": "no provider is set up"})),
        "PUT /api/v1/session/password" => j(json!({"current": "wrong", "new": "whatever it is long"})),
        "POST /api/v1/reviews/decisions" => j(json!({"ids": [999], "approve": false})),
        "POST /api/v1/dead-letters/retry" => j(json!({"workers": ["nobody"]})),
        "PUT /api/v1/config" | "POST /api/v1/connections/{name}/plan" => {
            Some(("application/toml", b"not = [toml".to_vec()))
        }
        "POST /api/v1/hr/uploads" => Some(("text/csv", b"nothing,useful\n".to_vec())),
        k if k.starts_with("POST") || k.starts_with("PUT") || k.starts_with("PATCH") => j(json!({})),
        _ => None,
    }
}

fn rand_suffix() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn concrete(path: &str) -> String {
    path.replace("{name}", "Connection-Bearer%20Token-1").replace("{id}", "1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_each_role_as_the_matrix_says() {
    let sb = common::spawn(&[]);
    let s = serve("api-matrix", None, &["--session-idle", "2s"]).await;
    let base = s.base.as_str();
    let pw = |n: &str| format!("{n} has a long password");
    // The roles, a disabled user, and tokens: revoked, expired, for another connection.
    let (admin0, _) = Client::login(base, "admin", &s.one_time).await;
    assert_eq!(
        admin0.put("/api/v1/session/password", json!({"current": s.one_time, "new": pw("admin")})).await.status,
        200
    );
    let (admin, _) = Client::login(base, "admin", &pw("admin")).await;
    let r = admin
        .post("/api/v1/connections", json!({"name": "Connection-Bearer Token-1", "url": sb.base, "token": sb.token}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.send("PUT", "/api/v1/config", Some(("application/toml", rules("").into_bytes()))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut as_role = BTreeMap::new();
    for role in ["viewer", "editor", "reviewer"] {
        assert_eq!(
            admin.post("/api/v1/users", json!({"name": role, "role": role, "password": pw(role)})).await.status,
            201
        );
        as_role.insert(role, Client::login(base, role, &pw(role)).await.0);
    }
    as_role.insert("admin", admin.clone());
    assert_eq!(
        admin.post("/api/v1/users", json!({"name": "gone", "role": "admin", "password": pw("gone")})).await.status,
        201
    );
    let (gone, _) = Client::login(base, "gone", &pw("gone")).await;
    let r =
        admin.send("PATCH", "/api/v1/users/gone", Some(("application/json", br#"{"disabled": true}"#.to_vec()))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let tok = |v: Value| {
        let admin = admin.clone();
        async move {
            let r = admin.post("/api/v1/tokens", v).await;
            assert_eq!(r.status, 201, "{}", r.text);
            (r.json()["id"].as_str().unwrap().to_string(), r.json()["token"].as_str().unwrap().to_string())
        }
    };
    let (revoked_id, revoked) = tok(json!({"name": "revoked", "role": "admin"})).await;
    assert_eq!(admin.send("DELETE", &format!("/api/v1/tokens/{revoked_id}"), None).await.status, 204);
    // A token's expiry cannot be set in the past: one that has run out is made by ageing it.
    let r =
        admin.post("/api/v1/tokens", json!({"name": "past", "role": "admin", "expires": "2020-01-01T00:00:00Z"})).await;
    assert_eq!(r.status, 422, "{}", r.text);
    let (expired_id, expired) = tok(json!({"name": "expired", "role": "admin", "expires": "90d"})).await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&s.env.store_url()).await.unwrap();
    sqlx::query("UPDATE api_tokens SET expires_at = '2020-01-01T00:00:00Z' WHERE id = $1")
        .bind(&expired_id)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    // A token for another connection (one that exists but is not this one).
    let other = admin.post("/api/v1/connections", json!({"name": "other", "url": sb.base, "token": sb.token})).await;
    assert_eq!(other.status, 201, "{}", other.text);
    let (_, scoped) = tok(json!({"name": "scoped", "role": "admin", "connection": "other"})).await;
    let (_, scoped_here) =
        tok(json!({"name": "scoped here", "role": "admin", "connection": "Connection-Bearer Token-1"})).await;

    let doc = Client::anonymous(base).get("/api/v1/openapi.json").await.json();
    let table = matrix();
    let mut documented = vec![];
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let key = format!("{} {path}", method.to_uppercase());
            assert!(table.contains_key(key.as_str()), "{key} has no entry in the role matrix");
            documented.push(key);
        }
    }
    for key in table.keys() {
        assert!(documented.iter().any(|d| d == key), "{key} is in the matrix but not documented");
    }
    // Sessions last: a logout ends the session the rest of the matrix uses; before it, the
    // removal of the connection the other routes act on.
    documented
        .sort_by_key(|k| (k.as_str() == "DELETE /api/v1/session", k.as_str() == "DELETE /api/v1/connections/{name}"));
    let anon = Client::anonymous(base);
    for key in &documented {
        let (method, path) = key.split_once(' ').unwrap();
        let need = table[key.as_str()];
        let url = concrete(path);
        let call = |c: &Client| {
            let c = c.clone();
            let (method, url, body) = (method.to_string(), url.clone(), body_for(key));
            async move { c.send(&method, &url, body).await }
        };
        // Every documented route exists: never the fallback's "no route".
        let r = call(&admin).await;
        assert_ne!(r.json()["detail"].as_str().map(|d| d.starts_with("no route")), Some(true), "{key}: {}", r.text);
        assert_ne!(r.status, 405, "{key}");
        if need == "public" {
            continue;
        }
        for (who, c) in [
            ("anonymous", anon.clone()),
            ("disabled user", gone.clone()),
            ("revoked token", Client::token(base, &revoked)),
            ("expired token", Client::token(base, &expired)),
        ] {
            let r = call(&c).await;
            assert_eq!(r.status, 401, "{key} as {who}: {}", r.text);
            assert_eq!(r.headers["content-type"], "application/problem+json", "{key} as {who}");
        }
        for (role, c) in &as_role {
            if key == "DELETE /api/v1/session" && *role == "admin" {
                continue;
            }
            let r = call(c).await;
            if allowed(need, role) {
                assert!(r.status != 401 && r.status != 403, "{key} as {role}: {} {}", r.status, r.text);
                assert!(r.status < 500, "{key} as {role}: {} {}", r.status, r.text);
            } else {
                assert_eq!(r.status, 403, "{key} as {role}: {}", r.text);
                assert_eq!(r.json()["type"], "https://tenure.dev/problems/forbidden", "{key} as {role}");
            }
        }
        // A token limited to one connection: refused everything outside it, let into what it
        // holds (as far as its role goes), and shown only its own connection in listings.
        let theirs = call(&Client::token(base, &scoped)).await;
        let ours = call(&Client::token(base, &scoped_here)).await;
        match scope_of(key) {
            "global" | "conn" => {
                assert_eq!(theirs.status, 403, "{key} with a token for another connection: {}", theirs.text);
                assert_eq!(theirs.json()["type"], "https://tenure.dev/problems/connection-scope", "{key}");
            }
            _ => assert!(![401, 403].contains(&theirs.status), "{key} filters for a scoped token: {}", theirs.text),
        }
        if scope_of(key) == "global" {
            assert_eq!(ours.status, 403, "{key} concerns every connection: {}", ours.text);
            assert_eq!(ours.json()["type"], "https://tenure.dev/problems/connection-scope", "{key}");
        } else if key != "DELETE /api/v1/session" {
            assert!(![401, 403].contains(&ours.status), "{key} with a token for its connection: {}", ours.text);
        }
    }
    // An idle session ends.
    let (idle, _) = Client::login(base, "viewer", &pw("viewer")).await;
    assert_eq!(idle.get("/api/v1/whoami").await.status, 200);
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(idle.get("/api/v1/whoami").await.status, 401, "idle past --session-idle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_need_csrf_and_bad_bodies_get_problem_documents() {
    let s = serve("api-csrf", None, &[]).await;
    let base = s.base.as_str();
    let (admin, _) = Client::login(base, "admin", &s.one_time).await;
    let change = json!({"current": s.one_time, "new": "a new long passphrase"});
    // Without the CSRF token, and from another origin: refused.
    let no_token = Client { csrf: None, ..admin.clone() };
    let r = no_token.put("/api/v1/session/password", change.clone()).await;
    assert_eq!((r.status, r.json()["type"].as_str()), (403, Some("https://tenure.dev/problems/csrf")), "{}", r.text);
    let r = reqwest::Client::new()
        .put(format!("{base}/api/v1/session/password"))
        .header("cookie", admin.cookie.clone().unwrap())
        .header("x-csrf-token", admin.csrf.clone().unwrap())
        .header("origin", "https://evil.example")
        .json(&change)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = admin.put("/api/v1/session/password", change).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (admin, _) = Client::login(base, "admin", "a new long passphrase").await;

    // Malformed JSON: where; an unknown field: which; past the cap: 413.
    let r = admin
        .send("POST", "/api/v1/users", Some(("application/json", b"{\n \"name\": \"x\",\n oops }".to_vec())))
        .await;
    assert_eq!(r.status, 400);
    let p = r.json();
    assert_eq!(p["type"], "https://tenure.dev/problems/malformed-json");
    assert_eq!((p["errors"]["line"].as_u64(), p["status"].as_u64()), (Some(3), Some(400)), "{p}");
    let r = admin.post("/api/v1/users", json!({"name": "x", "role": "viewer", "colour": "red"})).await;
    assert!(r.status == 400 && r.json()["detail"].as_str().unwrap().contains("unknown field `colour`"), "{}", r.text);
    let big = vec![b' '; (64 << 20) + 10];
    let r = admin.send("POST", "/api/v1/hr/uploads", Some(("text/csv", big))).await;
    assert_eq!(
        (r.status, r.json()["type"].as_str()),
        (413, Some("https://tenure.dev/problems/body-too-large")),
        "{}",
        r.text
    );
    let r = admin.get("/api/v1/nothing-here").await;
    assert_eq!((r.status, r.headers["content-type"].to_str().unwrap()), (404, "application/problem+json"));

    // Failed logins are slowed per account: past five, 429 with Retry-After.
    let mut last = 0;
    for _ in 0..7 {
        let r = Client::login(base, "admin", "definitely not it").await.1;
        last = r.status;
        if last == 429 {
            assert!(r.headers.contains_key("retry-after"));
            break;
        }
    }
    assert_eq!(last, 429);
    // Metrics: loopback may scrape without a token.
    assert_eq!(Client::anonymous(base).get("/metrics").await.status, 200);
}

/// Reads a run's event stream to its end: (progress events seen, the end's data).
async fn follow(api: &Client, id: &str) -> (Vec<Value>, Value) {
    let mut r = api
        .http
        .get(format!("{}/api/v1/runs/{id}/events", api.base))
        .bearer_auth(api.bearer.as_deref().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (mut text, mut progress) = (String::new(), vec![]);
    while let Some(chunk) = r.chunk().await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            let data = event.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or("null");
            let data: Value = serde_json::from_str(data).unwrap();
            if event.contains("event: end") {
                return (progress, data);
            }
            if event.contains("event: progress") {
                progress.push(data);
            }
        }
    }
    panic!("the stream closed without an end: {text}");
}

/// The newest run the service knows of, once there is one other than `not`.
async fn newest_run(api: &Client, not: Option<&str>) -> String {
    for _ in 0..600 {
        let runs = api.get("/api/v1/runs?limit=1").await.json();
        if let Some(id) = runs[0]["id"].as_str().filter(|id| Some(*id) != not) {
            return id.to_string();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no new run");
}

// Multi-threaded: the event stream is read while the runs go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_is_live_whoever_started_it() {
    // A slow target and two workers at a time: a run of 120 lasts seconds.
    let sb = common::spawn(&["--latency-ms", "100"]);
    let env = Env::connect_with(&sb, "registry", "", "concurrency = 2\nconfirm_creates_over = 1000");
    let now = jiff::Timestamp::now().to_string();
    let all = population(120);
    env.load("d0.csv", &all, &now, &[]);
    let token = env.ok(&["token", "create", "watch", "--role", "viewer"]).lines().last().unwrap().trim().to_string();

    // The scheduler's run, live in the service: who started it, its progress, then its end.
    let serve = env.start(&["serve", "--listen", "127.0.0.1:0", "--interval", "1h"]);
    let api = Client::token(&serve.address().await, &token);
    let id = newest_run(&api, None).await;
    let run = api.get(&format!("/api/v1/runs/{id}")).await.json();
    assert_eq!((run["state"].as_str(), run["started_by"].as_str()), (Some("running"), Some("the scheduler")), "{run}");
    assert_eq!(api.get("/api/v1/status").await.json()["connections"][0]["running"], true);
    let (progress, end) = follow(&api, &id).await;
    assert!(!progress.is_empty(), "progress while it went");
    assert!(progress.iter().all(|p| p["progress"]["total"].as_u64() <= Some(120)), "{progress:?}");
    assert!(progress.iter().any(|p| p["progress"]["done"].as_u64().is_some_and(|d| d > 0 && d < 120)), "{progress:?}");
    assert_eq!(
        (end["state"].as_str(), end["summary"]["by_kind"]["create"].as_u64()),
        (Some("succeeded"), Some(120)),
        "{end}"
    );
    drop(serve);

    // A run from the command line, another process: the service sees it live through the store.
    let changed: Vec<String> = all.iter().map(|r| r.replace(",Staff,", ",Senior Staff,")).collect();
    env.load("d1.csv", &changed, &now, &[]);
    let serve = env.start(&["serve", "--listen", "127.0.0.1:0", "--interval", "0"]);
    let api = Client::token(&serve.address().await, &token);
    let mut cli = env.command().args(["apply", "--quiet"]).stdout(std::process::Stdio::null()).spawn().unwrap();
    let id2 = newest_run(&api, Some(&id)).await;
    let (progress, end) = follow(&api, &id2).await;
    assert!(
        progress.iter().any(|p| p["state"] == "running" && p["progress"]["total"] == 120),
        "the command line's run seen going, from the store: {progress:?}"
    );
    assert_eq!(progress[0]["started_by"].as_str().map(|s| !s.is_empty()), Some(true), "{progress:?}");
    assert_eq!(
        (end["state"].as_str(), end["summary"]["by_kind"]["update"].as_u64()),
        (Some("succeeded"), Some(120)),
        "{end}"
    );
    assert!(cli.wait().unwrap().success());
    assert_eq!(api.get("/api/v1/status").await.json()["connections"][0]["running"], false);
}
