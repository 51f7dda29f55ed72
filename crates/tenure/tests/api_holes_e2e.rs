//! The holes an independent probe found in the admin API (issue 23), each proven closed
//! against the real `tenure serve`: a listener standing in for an attacker's server receives
//! nothing, scoped tokens stay in their connection, one run per connection whoever starts it,
//! maker-checker through a self-made token and an upload, tokens within their maker's rights,
//! a push secret rotated under a running service, a configuration that would stop
//! deprovisioning refused, bounded logins, a lockout nobody can turn on others, and the
//! smaller ones.

mod common;

use common::api::*;
use common::env::*;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const CONN: &str = "Connection-Bearer Token-1";
const CONN_PATH: &str = "Connection-Bearer%20Token-1";
const ADMIN_PW: &str = "admin has a long password";

/// The first admin, its one-time password changed: a session.
async fn first_admin(s: &Service) -> Client {
    let (a, _) = Client::login(&s.base, "admin", &s.one_time).await;
    let r = a.put("/api/v1/session/password", json!({"current": s.one_time, "new": ADMIN_PW})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    Client::login(&s.base, "admin", ADMIN_PW).await.0
}

/// A user made by the admin, logged in.
async fn user(s: &Service, admin: &Client, name: &str, role: &str) -> Client {
    let pw = format!("{name} has a long password");
    let r = admin.post("/api/v1/users", json!({"name": name, "role": role, "password": pw})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    Client::login(&s.base, name, &pw).await.0
}

/// A token made through the API by `by`: its secret.
async fn token(by: &Client, v: Value) -> String {
    let r = by.post("/api/v1/tokens", v).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()["token"].as_str().unwrap().to_string()
}

/// The sandbox as the connection, and the example rules (supervised as given) in force.
async fn connected(admin: &Client, sb: &common::Sandbox, supervised: &str) {
    let r = admin.post("/api/v1/connections", json!({"name": CONN, "url": sb.base, "token": sb.token})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.send("PUT", "/api/v1/config", Some(("application/toml", rules(supervised).into_bytes()))).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// A server standing in for an attacker's: it counts every connection made to it and keeps
/// what it was sent.
async fn attacker() -> (String, Arc<AtomicUsize>, Arc<std::sync::Mutex<Vec<u8>>>) {
    use tokio::io::AsyncReadExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}/scim/v2", l.local_addr().unwrap().port());
    let hits = Arc::new(AtomicUsize::new(0));
    let got = Arc::new(std::sync::Mutex::new(vec![]));
    let (h, g) = (hits.clone(), got.clone());
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            h.fetch_add(1, Ordering::SeqCst);
            let g = g.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf)).await {
                    g.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
    });
    (url, hits, got)
}

fn moved_to(url: &str) -> Vec<u8> {
    rules("").replacen("dialect = \"monday\"\n", &format!("dialect = \"monday\"\nurl = \"{url}\"\n"), 1).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stored_token_goes_only_to_the_stored_url() {
    let sb = common::spawn(&[]);
    let s = serve("holes-url", None, &["--interval", "0"]).await;
    let admin = first_admin(&s).await;
    connected(&admin, &sb, "").await;
    let ed = user(&s, &admin, "ed", "editor").await;
    let scoped = Client::token(
        &s.base,
        &token(&admin, json!({"name": "ed script", "role": "editor", "connection": CONN})).await,
    );
    let (evil, hits, got) = attacker().await;
    let body = || Some(("application/toml", moved_to(&evil)));
    // A dry run, an unsaved plan, an import: each refused, naming both URLs, and none of them
    // asks the other URL anything (the schema check used to go there with the token).
    let r = ed.send("POST", &format!("/api/v1/connections/{CONN_PATH}/plan"), body()).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains(&evil) && r.text.contains(&sb.base), "both URLs said: {}", r.text);
    // An unsaved configuration concerns every connection: not a scoped token's to try.
    let r = scoped.send("POST", &format!("/api/v1/connections/{CONN_PATH}/plan"), body()).await;
    assert_eq!(r.json()["type"], "https://tenure.dev/problems/connection-scope", "{}", r.text);
    let r = ed.send("PUT", "/api/v1/config?dry_run=true", body()).await;
    assert_eq!(r.status, 422, "the dry run checks what the import checks: {}", r.text);
    let r = ed.send("PUT", "/api/v1/config", body()).await;
    assert_eq!(r.status, 422, "{}", r.text);
    let r = ed.send("PUT", "/api/v1/config?confirm_url_change=true", body()).await;
    assert_eq!(
        (r.status, r.json()["type"].as_str()),
        (403, Some("https://tenure.dev/problems/forbidden")),
        "{}",
        r.text
    );
    let r = scoped.send("PUT", "/api/v1/config?dry_run=true", body()).await;
    assert_eq!(r.json()["type"], "https://tenure.dev/problems/connection-scope", "{}", r.text);
    // A config check from the command line with a file naming the other URL: not asked either.
    let file = s.env.dir.join("moved.toml");
    std::fs::write(&file, moved_to(&evil)).unwrap();
    let (_, out) = s.env.tenure(&["config", "check", file.to_str().unwrap()]);
    assert!(out.contains("sent only to its stored URL"), "{out}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the attacker's server was reached: {:?}", got.lock().unwrap());
    // The connection still works where it was stored.
    let r = ed.get(&format!("/api/v1/connections/{CONN_PATH}/plan")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // An Admin may move it, with the confirmation.
    let r = admin.send("PUT", "/api/v1/config?confirm_url_change=true&dry_run=true", body()).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_per_connection_whoever_starts_it() {
    // Slow enough that runs last: every create waits on the target.
    let sb = common::spawn(&["--latency-ms", "100"]);
    let s = serve("holes-runs", None, &["--interval", "0"]).await;
    let admin = first_admin(&s).await;
    connected(&admin, &sb, "").await;
    let n = 150;
    let rows = population(n);
    let r = admin.send("POST", "/api/v1/hr/uploads", Some(("text/csv", csv(&rows)))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let runs = format!("/api/v1/connections/{CONN_PATH}/runs");
    // Two starts at once through the API: one runs, the other is told the connection is busy.
    let (a, b) = tokio::join!(admin.post(&runs, json!({})), admin.post(&runs, json!({})));
    let mut codes = [a.status, b.status];
    codes.sort();
    assert_eq!(codes, [202, 409], "{} / {}", a.text, b.text);
    let busy = if a.status == 409 { &a } else { &b };
    assert_eq!(busy.json()["type"], "https://tenure.dev/problems/run-in-progress", "{}", busy.text);
    let started = if a.status == 202 { &a } else { &b };
    let id = started.json()["run_id"].as_str().unwrap().to_string();
    // A command-line apply meanwhile: exit 5, nothing done.
    let (code, out) = s.env.tenure(&["apply", "--yes"]);
    assert_eq!(code, 5, "{out}");
    let run = finished(&admin, &id).await;
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_exactly_once(&sb, n).await;
    let creates = admin.get(&format!("/api/v1/audit?action=create&limit={}", n * 3)).await.json();
    assert_eq!(creates.as_array().unwrap().len(), n, "each create recorded once: {creates}");

    // With the scheduler turning every second, starts through the API either run or are told
    // busy, and no two runs of the connection ever overlap.
    drop(s.run);
    let run = s.env.start(&["serve", "--listen", "127.0.0.1:0", "--interval", "1"]);
    let base = run.address().await;
    let admin = Client::login(&base, "admin", ADMIN_PW).await.0;
    let more: Vec<String> = population(n + 40);
    let r = admin.send("POST", "/api/v1/hr/uploads", Some(("text/csv", csv(&more)))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut started = vec![];
    for _ in 0..20 {
        let r = admin.post(&runs, json!({})).await;
        assert!(r.status == 202 || r.status == 409, "{}", r.text);
        if r.status == 202 {
            started.push(r.json()["run_id"].as_str().unwrap().to_string());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in &started {
        finished(&admin, id).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let all = admin.get("/api/v1/runs?limit=1000").await.json();
    let mut spans: Vec<(String, String)> = all
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| Some((r["started_at"].as_str()?.to_string(), r["finished_at"].as_str()?.to_string())))
        .collect();
    spans.sort();
    assert!(spans.len() >= 3, "{all}");
    for w in spans.windows(2) {
        let (a, b): (jiff::Timestamp, jiff::Timestamp) = (w[0].1.parse().unwrap(), w[1].0.parse().unwrap());
        assert!(a <= b, "two runs overlapped: {:?} and {:?}", w[0], w[1]);
    }
    assert_exactly_once(&sb, n + 40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maker_checker_holds_through_tokens_and_uploads() {
    let sb = common::spawn(&[]);
    let s = serve("holes-maker", None, &["--interval", "0"]).await;
    let admin = first_admin(&s).await;
    connected(&admin, &sb, "\"leave\"").await;
    let ann = |status: &str, end: &str| {
        row("1", "Ann", "Lee", "Engineer", "Engineering", "employee", status, ",2020-01-01", &format!("{end},,,"))
    };
    let bob = row("2", "Bob", "Ray", "Analyst", "Sales", "employee", "active", ",2020-01-01", ",,,");
    let runs = format!("/api/v1/connections/{CONN_PATH}/runs");
    let up = |c: &Client, rows: Vec<String>| {
        let c = c.clone();
        async move {
            let r = c.send("POST", "/api/v1/hr/uploads", Some(("text/csv", csv(&rows)))).await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
    };
    up(&admin, vec![ann("active", ""), bob.clone()]).await;
    let r = admin.post(&runs, json!({})).await;
    assert_eq!(finished(&admin, r.json()["run_id"].as_str().unwrap()).await["state"], "succeeded");

    // A second admin uploads Ann's leave; the first starts the run that opens its review.
    let ada = user(&s, &admin, "ada", "admin").await;
    up(&ada, vec![ann("terminated", "2026-01-01"), bob.clone()]).await;
    let r = admin.post(&runs, json!({})).await;
    finished(&admin, r.json()["run_id"].as_str().unwrap()).await;
    let review = admin.get("/api/v1/reviews").await.json()[0].clone();
    assert_eq!(
        (review["proposed_by"].as_str(), review["uploaded_by"].as_str()),
        (Some("user:admin"), Some("user:ada"))
    );
    let approve = format!("/api/v1/reviews/{}/approve", review["id"]);
    // Neither may approve it: not the uploader, not the run's starter, not through a reviewer
    // token either made for themselves.
    for (who, c) in [
        ("the uploader", ada.clone()),
        ("the run's starter", admin.clone()),
        (
            "a reviewer token the starter made",
            Client::token(&s.base, &token(&admin, json!({"name": "my reviewer", "role": "reviewer"})).await),
        ),
        (
            "a reviewer token the uploader made",
            Client::token(&s.base, &token(&ada, json!({"name": "ada reviewer", "role": "reviewer"})).await),
        ),
    ] {
        let r = c.post(&approve, json!({})).await;
        assert_eq!(r.status, 403, "{who}: {}", r.text);
        assert_eq!(r.json()["type"], "https://tenure.dev/problems/maker-checker", "{who}");
    }
    let rita = user(&s, &admin, "rita", "reviewer").await;
    let r = rita.post(&approve, json!({"note": "HR confirmed"})).await;
    assert_eq!(r.status, 200, "a reviewer who set nothing in motion decides: {}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_never_has_more_than_its_maker_now() {
    let s = serve("holes-maker-rights", None, &["--interval", "0"]).await;
    let admin = first_admin(&s).await;
    let ada = user(&s, &admin, "ada", "admin").await;
    let t = Client::token(&s.base, &token(&ada, json!({"name": "ada automation", "role": "admin"})).await);
    assert_eq!(t.get("/api/v1/users").await.status, 200);
    // Demoted: her admin token acts as an editor now.
    let demote = |to: Value| {
        let admin = admin.clone();
        async move {
            let r =
                admin.send("PATCH", "/api/v1/users/ada", Some(("application/json", to.to_string().into_bytes()))).await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
    };
    demote(json!({"role": "editor"})).await;
    let r = t
        .post("/api/v1/users", json!({"name": "mallory", "role": "admin", "password": "mallory's long password"}))
        .await;
    assert_eq!(r.status, 403, "a demoted admin's token makes no admin: {}", r.text);
    assert_eq!(t.get("/api/v1/users").await.status, 403);
    assert_eq!(t.get("/api/v1/whoami").await.json()["role"], "editor");
    // Disabled: the token stops, and cannot enable its maker again.
    demote(json!({"role": "admin"})).await;
    demote(json!({"disabled": true})).await;
    let r = t.send("PATCH", "/api/v1/users/ada", Some(("application/json", br#"{"disabled": false}"#.to_vec()))).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(t.get("/api/v1/whoami").await.status, 401);
    demote(json!({"disabled": false})).await;
    assert_eq!(t.get("/api/v1/users").await.status, 200, "enabled again, as her role is now");
    // A token made at the command line for no user makes no tokens through the API: a second
    // identity of the same operator could approve what the first proposed.
    // On a store with platform users, such a token is break-glass (audited, noticed).
    let out = s.env.ok(&["token", "create", "machine", "--role", "admin", "--break-glass", "the nightly job"]);
    let machine = Client::token(&s.base, out.lines().last().unwrap().trim());
    let r = machine.post("/api/v1/tokens", json!({"name": "second self", "role": "reviewer"})).await;
    assert_eq!(r.status, 403, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_secret_set_or_rotated_under_a_running_service_takes_effect_at_once() {
    let s = serve("holes-push", None, &["--interval", "0"]).await;
    let push = |secret: &'static str| {
        let base = s.base.clone();
        async move {
            let body = json!({"event_id": format!("e-{}", rand_id()), "worker": {"employee_id": "9",
                "first_name": "Pat", "last_name": "Lee", "employment_type": "employee", "status": "active",
                "hire_date": "2020-01-01"}})
            .to_string();
            let r = common::push_signed(&base, secret, body).await;
            let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
            (r.status().as_u16(), ct)
        }
    };
    let (code, ct) = push("first-secret-0123456789").await;
    assert_eq!((code, ct.as_str()), (503, "application/problem+json"), "no secret yet");
    let set = |v: &str| {
        let f = s.env.dir.join("push-secret");
        std::fs::write(&f, v).unwrap();
        s.env.ok(&["hr", "push-secret", "--secret-file", f.to_str().unwrap()]);
    };
    set("first-secret-0123456789");
    assert_eq!(push("first-secret-0123456789").await.0, 200, "set while running: taken at once");
    set("second-secret-0123456789");
    let (code, ct) = push("first-secret-0123456789").await;
    assert_eq!((code, ct.as_str()), (401, "application/problem+json"), "the old secret stops at once");
    assert_eq!(push("second-secret-0123456789").await.0, 200);
}

/// A POST over a bare connection: the body is written on its own task while the answer is
/// read, so an answer given before the body is all sent is still seen.
async fn raw_post(base: &str, path: &str, body: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut r, mut w) = c.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    tokio::spawn(async move {
        let _ = w.write_all(head.as_bytes()).await;
        let _ = w.write_all(body.as_bytes()).await;
    });
    let mut out = vec![];
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(10), r.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if String::from_utf8_lossy(&out).contains("\"}") {
            break;
        }
    }
    String::from_utf8_lossy(&out).to_string()
}

fn rand_id() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_that_would_stop_deprovisioning_needs_the_connection_named() {
    let sb = common::spawn(&[]);
    let s = serve("holes-config", None, &["--interval", "0"]).await;
    let admin = first_admin(&s).await;
    connected(&admin, &sb, "").await;
    let version = admin.get("/api/v1/config?format=json").await.json()["version"].clone();
    let r = admin.send("PUT", "/api/v1/config", Some(("application/toml", vec![]))).await;
    assert_eq!(
        (r.status, r.json()["type"].as_str()),
        (400, Some("https://tenure.dev/problems/empty-body")),
        "{}",
        r.text
    );
    let r = admin.send("PUT", "/api/v1/config", Some(("application/json", b"{}".to_vec()))).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("would be removed") && r.text.contains("confirm_removal"), "{}", r.text);
    // Every role taken away from the connection: the same.
    let no_roles = rules("").split("[[role]]").next().unwrap().to_string();
    let r = admin
        .send("PUT", "/api/v1/config?dry_run=true", Some(("application/toml", no_roles.clone().into_bytes())))
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("without any role"), "{}", r.text);
    assert_eq!(admin.get("/api/v1/config?format=json").await.json()["version"], version, "nothing saved");
    // Named, it goes ahead; from the command line too.
    let r = admin
        .send(
            "PUT",
            &format!("/api/v1/config?confirm_removal={CONN_PATH}"),
            Some(("application/toml", no_roles.into_bytes())),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let file = s.env.dir.join("rules.toml");
    std::fs::write(&file, rules("")).unwrap();
    s.env.ok(&["config", "import", file.to_str().unwrap()]);
    let empty = s.env.dir.join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let (code, out) = s.env.tenure(&["config", "import", empty.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("--confirm-removal {CONN:?}")), "{out}");
    s.env.ok(&["config", "import", empty.to_str().unwrap(), "--confirm-removal", CONN]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_are_bounded_and_throttled_per_account_and_address() {
    let s = serve("holes-login", None, &["--interval", "0", "--trusted-proxies", "127.0.0.1"]).await;
    let _ = first_admin(&s).await;
    let anon = Client::anonymous(&s.base);
    // A megabyte before anyone is known: refused without being read whole (the answer comes
    // while the body is still being sent, so it is read beside the writing).
    let big = json!({"user": "admin", "password": "x".repeat(1 << 20)}).to_string();
    let answer = raw_post(&s.base, "/api/v1/session", big).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("https://tenure.dev/problems/body-too-large"), "{answer}");
    // A password longer than any that can be set is refused before hashing.
    let r = anon.post("/api/v1/session", json!({"user": "admin", "password": "y".repeat(5000)})).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("at most 1024 bytes"), "{}", r.text);

    let from = |ip: &str, pw: &str| {
        let (base, ip, pw) = (s.base.clone(), ip.to_string(), pw.to_string());
        async move {
            reqwest::Client::new()
                .post(format!("{base}/api/v1/session"))
                .header("x-forwarded-for", ip)
                .json(&json!({"user": "admin", "password": pw}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // Five wrong passwords from one client, then that client waits; the right password from
    // another client (behind the same trusted proxy) still logs in.
    for _ in 0..5 {
        assert_eq!(from("203.0.113.7", "wrong wrong wrong").await, 401);
    }
    assert_eq!(from("203.0.113.7", "wrong wrong wrong").await, 429);
    assert_eq!(from("203.0.113.7", ADMIN_PW).await, 429, "that client waits, even with the right one");
    assert_eq!(from("203.0.113.8", ADMIN_PW).await, 200, "nobody can lock the admin out for everyone");
    // The failures are anonymous attempts naming the user tried, never what was typed as a name.
    let admin = Client::login(&s.base, "admin", ADMIN_PW).await.0;
    let typed = "correct horse battery staple";
    let r = anon.post("/api/v1/session", json!({"user": typed, "password": "whatever it is"})).await;
    assert_eq!(r.status, 401);
    let fails = admin.get("/api/v1/audit?action=login_failed").await;
    let all = fails.json();
    assert!(all.as_array().unwrap().iter().all(|f| f["detail"]["actor"] == "anonymous"), "{all}");
    assert!(all.as_array().unwrap().iter().any(|f| f["detail"]["user_tried"] == "admin"), "{all}");
    assert!(!fails.text.contains(typed), "a name typed that is no user's is not kept: {}", fails.text);
    assert!(!admin.get("/api/v1/audit/export?format=ndjson").await.text.contains(typed));

    // Without trusting the proxy, its header is not believed: a client cannot dodge the wait
    // by making up addresses.
    let s2 = serve("holes-login-untrusted", None, &["--interval", "0"]).await;
    let mut last = 0;
    for i in 0..7 {
        last = reqwest::Client::new()
            .post(format!("{}/api/v1/session", s2.base))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .json(&json!({"user": "admin", "password": "not the password"}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
    }
    assert_eq!(last, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smaller_holes() {
    let sb = common::spawn(&[]);
    let s = serve("holes-small", None, &["--interval", "0", "--session-idle", "3s"]).await;
    let base = s.base.clone();
    // A forced change to the same password is refused.
    let (a, _) = Client::login(&base, "admin", &s.one_time).await;
    let r = a.put("/api/v1/session/password", json!({"current": s.one_time, "new": s.one_time})).await;
    assert_eq!(r.status, 422, "{}", r.text);
    let admin = first_admin(&s).await;
    connected(&admin, &sb, "").await;

    // One rule for every kind of name, said in the error; look-alikes of existing names refused.
    for bad in ["a\rb", "a\nb", "a\u{0}b", "../etc", &"n".repeat(5000)] {
        let r = admin.post("/api/v1/users", json!({"name": bad, "role": "viewer"})).await;
        assert!(r.status == 422, "user {bad:?}: {}", r.text);
        let r = admin.post("/api/v1/tokens", json!({"name": bad, "role": "viewer"})).await;
        assert!(r.status == 422, "token {bad:?}: {}", r.text);
        let r = admin.post("/api/v1/connections", json!({"name": bad, "url": sb.base, "token": sb.token})).await;
        assert!(r.status == 422, "connection {bad:?}: {}", r.text);
    }
    let r = admin.post("/api/v1/users", json!({"name": "\u{430}dmin", "role": "viewer"})).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("could be taken for the existing \\\"admin\\\""), "{}", r.text);
    let r = admin.post("/api/v1/tokens", json!({"name": "bad\rname", "role": "viewer"})).await;
    assert!(r.text.contains("1 to 64 letters"), "{}", r.text);
    let m = Client::anonymous(&base).get("/metrics").await.text;
    assert!(!m.contains('\r') && !m.contains('\0'), "no raw control character in the metrics");

    // Every error is a problem document: a method a route does not take, a target or headers
    // too large, a positional array for an object.
    let r = admin.send("DELETE", "/api/v1/status", None).await;
    assert_eq!(
        (r.status, r.headers["content-type"].to_str().unwrap()),
        (405, "application/problem+json"),
        "{}",
        r.text
    );
    let r = admin.get(&format!("/api/v1/workers?q={}", "q".repeat(9000))).await;
    assert_eq!(
        (r.status, r.headers["content-type"].to_str().unwrap()),
        (414, "application/problem+json"),
        "{}",
        r.text
    );
    let r = reqwest::Client::new()
        .get(format!("{base}/api/v1/status"))
        .header("x-padding", "p".repeat(40_000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 431);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = admin.post("/api/v1/users", json!(["x", "viewer"])).await;
    assert_eq!(
        (r.status, r.json()["type"].as_str()),
        (400, Some("https://tenure.dev/problems/invalid-body")),
        "{}",
        r.text
    );
    let r = reqwest::Client::new().post(format!("{base}/hr/v1/push")).body("{}").send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "application/problem+json", "the push endpoint's errors too");

    // The document says what each operation needs and may answer.
    let doc = Client::anonymous(&base).get("/api/v1/openapi.json").await.json();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let security = op["security"].as_array().unwrap_or_else(|| panic!("{method} {path}: no security"));
            let public = security.iter().all(|r| r.as_object().is_some_and(|o| o.is_empty()));
            assert_eq!(public, path == "/api/v1/session" && method == "post", "{method} {path}: {security:?}");
            assert!(op["responses"]["400"].is_object(), "{method} {path}: 400 undocumented");
            assert!(public || op["responses"]["401"].is_object(), "{method} {path}: 401 undocumented");
        }
    }
    assert!(doc["paths"]["/api/v1/config"]["put"]["requestBody"]["content"]["application/toml"].is_object());
    assert!(doc["paths"]["/api/v1/config"]["get"]["responses"]["200"]["content"]["application/toml"].is_object());
    let sse = &doc["paths"]["/api/v1/runs/{id}/events"]["get"]["responses"]["200"];
    assert!(sse["description"].as_str().unwrap().contains("event: end"), "{sse}");

    // A token's expiry cannot be in the past.
    let r = admin
        .post("/api/v1/tokens", json!({"name": "late", "role": "viewer", "expires": "2001-01-01T00:00:00Z"}))
        .await;
    assert_eq!(r.status, 422, "{}", r.text);

    // Same origin means the scheme too: https://host is not http://host.
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/tokens"))
        .header("cookie", admin.cookie.clone().unwrap())
        .header("x-csrf-token", admin.csrf.clone().unwrap())
        .header("origin", base.replace("http://", "https://"))
        .json(&json!({"name": "x", "role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    // A reviewer cannot start an ordinary run (only confirm a guarded one).
    let bob = row("2", "Bob", "Ray", "Analyst", "Sales", "employee", "active", ",2020-01-01", ",,,");
    let r = admin.send("POST", "/api/v1/hr/uploads", Some(("text/csv", csv(&[bob])))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rita = user(&s, &admin, "rita", "reviewer").await;
    let r = rita.post(&format!("/api/v1/connections/{CONN_PATH}/runs"), json!({"confirm_deprovision": 0})).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let run = finished(&rita, r.json()["run_id"].as_str().unwrap()).await;
    assert_eq!(run["state"], "error", "{run}");
    assert!(run["error"].as_str().unwrap().contains("nothing to confirm"), "{run}");

    // A token scoped to a connection reads no metrics (they concern every connection).
    let scoped = token(&admin, json!({"name": "scoped", "role": "viewer", "connection": CONN})).await;
    assert_eq!(Client::token(&base, &scoped).get("/metrics").await.status, 403);

    // Idle expiry is measured from the last request: a session in use stays, one left idle ends.
    let (v, _) = Client::login(&base, "rita", "rita has a long password").await;
    for _ in 0..8 {
        assert_eq!(v.get("/api/v1/whoami").await.status, 200, "a session in use does not go idle");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(v.get("/api/v1/whoami").await.status, 401);
}

#[test]
fn the_data_folder_and_the_store_are_owner_only_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = common::tempdir("holes-umask").join("data");
    let bin = env!("CARGO_BIN_EXE_tenure");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("umask 000 && {bin} --data-dir {0} init && exec {bin} --data-dir {0} user list", dir.display()))
        .env_remove("TENURE_DATABASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // An HR load too: its archive is HR data.
    let csv = dir.join("w.csv");
    std::fs::write(&csv, format!("{HEADER}\n{}\n", population(3).join("\n"))).unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("umask 000 && exec {bin} --data-dir {} hr load {}", dir.display(), csv.display()))
        .env_remove("TENURE_DATABASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_file(&csv).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "the data folder");
    let mut seen = 0;
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for f in std::fs::read_dir(&d).unwrap() {
            let p = f.unwrap().path();
            seen += 1;
            if p.is_dir() {
                assert_eq!(mode(&p), 0o700, "{}", p.display());
                stack.push(p);
            } else {
                assert_eq!(mode(&p), 0o600, "{}", p.display());
            }
        }
    }
    assert!(seen >= 3, "the store and the archive were looked at");
}

/// A query parameter the operation does not take is refused, named, with what it takes: a
/// misspelt filter (`?wrker=`) no longer answers everything (issue 25, point 8).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_query_parameter_is_refused_by_name() {
    let s = serve("holes-query", None, &["--interval", "0"]).await;
    let admin = first_admin(&s).await;
    let r = admin.get("/api/v1/workers?wrker=1001").await;
    assert_eq!(r.status, 400, "{}", r.text);
    let p = r.json();
    assert_eq!(p["type"].as_str().map(|t| t.ends_with("unknown-query")), Some(true), "{p}");
    assert!(p["detail"].as_str().unwrap().contains("wrker"), "{p}");
    assert_eq!(p["errors"]["unknown"], json!(["wrker"]), "{p}");
    assert!(p["errors"]["taken"].as_array().unwrap().contains(&json!("q")), "{p}");
    // The documented ones still work, alone or beside a stray one (which is named).
    assert_eq!(admin.get("/api/v1/workers?q=1001").await.status, 200);
    let r = admin.get("/api/v1/workers?q=1001&limt=5").await;
    assert_eq!((r.status, r.json()["errors"]["unknown"].clone()), (400, json!(["limt"])), "{}", r.text);
    // An operation that takes none says so.
    let r = admin.get("/api/v1/users?role=admin").await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.json()["detail"].as_str().unwrap().contains("it takes none"), "{}", r.text);
    assert_eq!(admin.get("/api/v1/users").await.status, 200);
}
