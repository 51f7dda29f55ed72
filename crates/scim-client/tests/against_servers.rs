//! The client against real servers on random ports: the sandbox (in-process, real HTTP) with
//! and without its fault knobs, small purpose-built servers for Retry-After and odd paging,
//! and the independent Python server scim2-server when the test script provides it.

use scim::Dialect;
use scim_client::{replace, ClientConfig, ClientError, Created, ScimClient, Token};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "client-test-token-4242";

async fn sandbox(
    dialect: Dialect,
    faults: sandbox::Faults,
    seed: Option<std::path::PathBuf>,
) -> (String, Arc<sandbox::App>) {
    let cfg = sandbox::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        db: None,
        dialect,
        seed,
        token: Some(TOKEN.into()),
        faults,
        limits: sandbox::Limits::default(),
        user_extensions: vec![],
    };
    let prepared = sandbox::prepare(&cfg).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(sandbox::serve(listener, prepared.app.clone(), std::future::pending()));
    (format!("http://{addr}/scim/v2/"), prepared.app)
}

fn client(base: &str, dialect: Dialect) -> ScimClient {
    let mut cfg = ClientConfig::new(base, dialect);
    cfg.page_size = 3;
    cfg.timeout = Duration::from_secs(5);
    ScimClient::new(cfg, Token::new(TOKEN)).unwrap()
}

fn user(name: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name, "displayName": name,
           "externalId": format!("ext-{name}"), "emails": [{"value": name, "type": "work", "primary": true}], "active": true})
}

#[tokio::test]
async fn user_and_team_lifecycle_against_the_monday_sandbox() {
    let (base, _app) = sandbox(Dialect::Monday, Default::default(), None).await;
    let c = client(&base, Dialect::Monday);
    let caps = c.test_connection().await.unwrap();
    assert_eq!(caps.source, "ServiceProviderConfig");
    assert!(caps.patch && caps.etag && caps.filter && caps.bulk);
    assert_eq!((caps.max_results, caps.users), (Some(1000), Some(0)));
    let Created::New(u) = c.create_user(&user("ann@acme.example")).await.unwrap() else { panic!("new") };
    let id = u["id"].as_str().unwrap().to_string();
    assert_eq!(c.find_user_by_user_name("ANN@acme.example").await.unwrap().unwrap()["id"], json!(id));
    assert_eq!(c.find_user_by_external_id("ext-ann@acme.example").await.unwrap().unwrap()["id"], json!(id));
    assert_eq!(c.find_user_by_email("ann@acme.example").await.unwrap().unwrap()["id"], json!(id));
    assert!(c.find_user_by_user_name("nobody@acme.example").await.unwrap().is_none());
    let patched =
        c.patch_user(&id, &[replace("title", json!("Engineer")), replace("userType", json!("viewer"))]).await.unwrap();
    assert_eq!((patched["title"].as_str(), patched["userType"].as_str()), (Some("Engineer"), Some("viewer")));
    assert_eq!(c.deactivate_user(&id).await.unwrap()["active"], json!(false));
    assert_eq!(c.get_user(&id).await.unwrap().unwrap()["active"], json!(false));
    assert_eq!(c.reactivate_user(&id).await.unwrap()["active"], json!(true));
    // The same create again adopts the account instead of failing or duplicating.
    let again = c.create_user(&user("ann@acme.example")).await.unwrap();
    assert!(matches!(again, Created::Adopted(_)));
    assert_eq!(again.id(), id);
    let err = c.create_user(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x@a", "displayName": "X", "userType": "owner"})).await.unwrap_err();
    assert!(matches!(err, ClientError::Invalid(_)), "{err}");
    assert!(c.delete_user(&id).await.is_err(), "no DELETE unless allowed");

    let mut ids = vec![id.clone()];
    for i in 0..9 {
        ids.push(c.create_user(&user(&format!("u{i}@acme.example"))).await.unwrap().id().to_string());
    }
    let all = c.list_users(None).await.unwrap();
    assert_eq!(all.len(), 10, "paged by 3 over 10 users");
    let team = c.create_group("Engineering", &[&ids[0], &ids[1]]).await.unwrap();
    let gid = team.id().to_string();
    let g = c.add_members(&gid, &[&ids[2], &ids[3]]).await.unwrap();
    // The answer leaves the members out (excludedAttributes), the group keeps them.
    assert!(g.get("members").is_none() && g["id"] == json!(gid), "{g}");
    let members_now = |g: &serde_json::Value| g["members"].as_array().map_or(0, Vec::len);
    assert_eq!(members_now(&c.find_group_by_name("Engineering").await.unwrap().unwrap()), 4);
    c.remove_members(&gid, &[&ids[0], &ids[2]]).await.unwrap();
    let g = c.find_group_by_name("Engineering").await.unwrap().unwrap();
    let members: Vec<&str> = g["members"].as_array().unwrap().iter().map(|m| m["value"].as_str().unwrap()).collect();
    assert_eq!(members, vec![ids[1].as_str(), ids[3].as_str()]);
    assert_eq!(c.rename_group(&gid, "Platform").await.unwrap()["displayName"], json!("Platform"));
    assert_eq!(c.find_group_by_name("platform").await.unwrap().unwrap()["id"], json!(gid));
    assert_eq!(c.list_groups(None).await.unwrap().len(), 1);
    c.delete_group(&gid).await.unwrap();
    assert!(c.find_group_by_name("Platform").await.unwrap().is_none());
}

#[tokio::test]
async fn hand_invited_monday_user_is_found_and_adopted() {
    let dir = std::env::temp_dir().join(format!("client-seed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seed = dir.join("seed.json");
    std::fs::write(&seed, json!({"Users": [{"userName": "hand@acme.example", "displayName": "Hand"}]}).to_string())
        .unwrap();
    let (base, _app) = sandbox(Dialect::Monday, Default::default(), Some(seed)).await;
    let c = client(&base, Dialect::Monday);
    assert!(c.find_user_by_user_name("hand@acme.example").await.unwrap().is_some(), "scim_provisioned_only=false");
    let created = c.create_user(&user("hand@acme.example")).await.unwrap();
    assert!(matches!(created, Created::Adopted(_)), "{created:?}");
    assert_eq!(c.stats().adopted, 1);
    assert_eq!(c.list_users(None).await.unwrap().len(), 1);
}

/// A server that folds more than ASCII case (the sandbox, as monday.com, lowercases Unicode)
/// refuses a look-alike as a duplicate: the account it names is another address, so it is not
/// taken over.
#[tokio::test]
async fn a_duplicate_that_only_looks_the_same_is_not_taken_over() {
    let (base, _app) = sandbox(Dialect::Monday, Default::default(), None).await;
    let c = client(&base, Dialect::Monday);
    c.create_user(&user("kim.park@acme.example")).await.unwrap();
    // A Kelvin sign for the k: Unicode lowercase makes it kim.park@.
    let err = c.create_user(&user("\u{212A}im.park@acme.example")).await.unwrap_err();
    let ClientError::Invalid(why) = &err else { panic!("not taken over: {err:?}") };
    assert!(why.contains("duplicate of the existing account \"kim.park@acme.example\""), "{why}");
    assert_eq!(c.stats().adopted, 0);
    // ASCII case alone is the same address: taken over.
    assert!(matches!(c.create_user(&user("Kim.Park@acme.example")).await.unwrap(), Created::Adopted(_)));
}

/// With errors, dropped connections (some after the change was made) and latency, every
/// operation still completes, and no user is created twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_completes_without_duplicates_under_faults() {
    let faults =
        sandbox::Faults { error_rate: 0.15, drop_rate: 0.15, latency_jitter_ms: 3, seed: 11, ..Default::default() };
    let (base, app) = sandbox(Dialect::Monday, faults, None).await;
    let mut cfg = ClientConfig::new(&base, Dialect::Monday);
    cfg.timeout = Duration::from_secs(5);
    cfg.retry.base = Duration::from_millis(5);
    cfg.retry.cap = Duration::from_millis(100);
    cfg.retry.max_attempts = 30;
    let c = ScimClient::new(cfg, Token::new(TOKEN)).unwrap();
    let n = 120;
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = vec![];
    for _ in 0..8 {
        let (c, next) = (c.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = vec![];
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return ids;
                }
                let created = c
                    .create_user(&user(&format!("f{i}@acme.example")))
                    .await
                    .unwrap_or_else(|e| panic!("user {i}: {e}"));
                ids.push(created.id().to_string());
            }
        }));
    }
    let mut ids = vec![];
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    assert_eq!(ids.len(), n);
    assert_eq!(app.store.len(sandbox::store::Kind::User), n, "exactly one account per user, no duplicates");
    for id in &ids {
        c.deactivate_user(id).await.unwrap_or_else(|e| panic!("deactivate {id}: {e}"));
    }
    let all = c.list_users(Some("active eq false")).await.unwrap();
    assert_eq!(all.len(), n, "every deactivation landed");
    let s = c.stats();
    assert!(s.retries > 10, "{s:?}");
    assert!(s.lookups_before_retry > 0, "{s:?}");
    assert!(s.recovered_creates > 0, "some creates were made but their answer lost: {s:?}");
}

/// A tiny server that answers 429 with Retry-After once, then a list.
#[tokio::test]
async fn honours_retry_after_on_429() {
    use axum::{http::StatusCode, response::IntoResponse, routing::get, Router};
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new().route(
        "/scim/v2/Users",
        get(move || {
            let h = h.clone();
            async move {
                if h.fetch_add(1, Ordering::SeqCst) == 0 {
                    (StatusCode::TOO_MANY_REQUESTS, [("Retry-After", "1")], "{}").into_response()
                } else {
                    axum::Json(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 0, "Resources": []})).into_response()
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let c = client(&format!("http://{addr}/scim/v2"), Dialect::Generic);
    let t = std::time::Instant::now();
    assert!(c.list_users(None).await.unwrap().is_empty());
    assert!(t.elapsed() >= Duration::from_secs(1), "waited as Retry-After asked");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert_eq!((c.stats().rate_limited, c.stats().retries), (1, 1));
}

/// A server that ignores `count`, repeats a resource across pages and lowers its total.
#[tokio::test]
async fn paging_survives_servers_that_ignore_count_and_change_totals() {
    use axum::{extract::Query, routing::get, Router};
    let calls = Arc::new(AtomicUsize::new(0));
    let k = calls.clone();
    let app = Router::new().route(
        "/v2/Users",
        get(move |Query(q): Query<std::collections::HashMap<String, String>>| {
            let k = k.clone();
            async move {
                let n = k.fetch_add(1, Ordering::SeqCst);
                let start: usize = q.get("startIndex").and_then(|s| s.parse().ok()).unwrap_or(1);
                // 12 users; pages of 5 whatever count says; the page repeats the previous
                // page's last user; the total drops to 11 after the first page.
                let from = start.saturating_sub(if start > 1 { 2 } else { 1 });
                let items: Vec<Value> = (from..(from + 5).min(12)).map(|i| json!({"id": format!("u{i}"), "userName": format!("u{i}")})).collect();
                axum::Json(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                    "totalResults": if n == 0 { 12 } else { 11 }, "startIndex": start, "itemsPerPage": items.len(), "Resources": items}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let c = client(&format!("http://{addr}/v2/"), Dialect::Generic);
    let users = c.list_users(None).await.unwrap();
    let mut ids: Vec<&str> = users.iter().map(|u| u["id"].as_str().unwrap()).collect();
    let len = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), len, "no user twice");
    assert!(len >= 11, "{ids:?}");
    assert!(calls.load(Ordering::SeqCst) <= 6, "terminates");
}

#[tokio::test]
async fn the_token_never_shows() {
    let (base, _app) = sandbox(Dialect::Monday, Default::default(), None).await;
    let secret = "very-secret-token-value-9876";
    let c = ScimClient::new(ClientConfig::new(&base, Dialect::Monday), Token::new(secret)).unwrap();
    let err = c.list_users(None).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    let text = format!("{err} {err:?} {c:?} {:?} {}", Token::new(secret), Token::new(secret));
    assert!(!text.contains(secret), "{text}");
    assert!(text.contains("****9876"));
    assert!(err.to_string().contains("Admin > Security > SCIM"), "{err}");
}

/// The independent Python server, when scripts/test installed it.
#[tokio::test]
async fn interoperates_with_scim2_server() {
    let Ok(tool) = std::env::var("TENURE_TEST_SCIM2_SERVER") else {
        eprintln!("SKIPPED: interop with scim2-server: TENURE_TEST_SCIM2_SERVER is not set (scripts/test sets it)");
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Kill(
        std::process::Command::new(&tool)
            .args(["--hostname", "127.0.0.1", "--port", &port.to_string(), "--bearer-token", TOKEN])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let c = client(&format!("http://127.0.0.1:{port}/v2/"), Dialect::Generic);
    for _ in 0..100 {
        if c.list_users(None).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let a = c.create_user(&user("interop@acme.example")).await.unwrap();
    assert!(matches!(a, Created::New(_)), "{a:?}");
    let id = a.id().to_string();
    assert_eq!(c.find_user_by_user_name("interop@acme.example").await.unwrap().unwrap()["id"], json!(id));
    let p = c
        .patch_user(&id, &[replace("displayName", json!("Inter Op")), replace("title", json!("Tester"))])
        .await
        .unwrap();
    assert_eq!(p["displayName"], json!("Inter Op"));
    assert_eq!(c.deactivate_user(&id).await.unwrap()["active"], json!(false));
    assert_eq!(c.get_user(&id).await.unwrap().unwrap()["active"], json!(false));
    for i in 0..7 {
        c.create_user(&user(&format!("page{i}@acme.example"))).await.unwrap();
    }
    assert_eq!(c.list_users(None).await.unwrap().len(), 8);
    let again = c.create_user(&user("interop@acme.example")).await.unwrap();
    assert!(matches!(again, Created::Adopted(_)), "409 adopts: {again:?}");
    let g = c.create_group("Interop team", &[&id]).await.unwrap();
    let gid = g.id().to_string();
    let other = c.find_user_by_user_name("page0@acme.example").await.unwrap().unwrap();
    let added = c.add_members(&gid, &[other["id"].as_str().unwrap()]).await.unwrap();
    let _ = added;
    let got = c.list_groups(None).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["members"].as_array().map(Vec::len), Some(2), "{got:?}");
    c.remove_members(&gid, &[&id]).await.unwrap();
    let got = c.list_groups(None).await.unwrap();
    assert_eq!(got[0]["members"].as_array().map(Vec::len), Some(1), "{got:?}");
}

#[tokio::test]
async fn connection_test_errors_say_what_to_do() {
    use axum::{routing::get, Router};
    // A server with no discovery that knows its users: the fallback list call.
    let app = Router::new().route(
        "/scim/v2/Users",
        get(|| async { axum::Json(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 3, "Resources": []})) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let caps = client(&format!("http://{addr}/scim/v2"), Dialect::Monday).test_connection().await.unwrap();
    assert_eq!((caps.source, caps.users), ("GET /Users?count=1", Some(3)));
    let err = client(&format!("http://{addr}/not-scim"), Dialect::Generic).test_connection().await.unwrap_err();
    assert!(err.to_string().contains("is not a SCIM URL"), "{err}");
    assert!(err.to_string().contains("/not-scim/Users"), "{err}");
    // Nothing listens on this port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut cfg = ClientConfig::new(&format!("http://{closed}/scim/v2"), Dialect::Generic);
    cfg.retry.max_attempts = 1;
    let err = ScimClient::new(cfg, Token::new(TOKEN)).unwrap().test_connection().await.unwrap_err();
    assert!(err.to_string().contains("connection was refused"), "{err}");
}

/// The sandbox's rate limit (10 requests per 2 s window): the client waits as told and every
/// create lands once; with its own limiter under the target's limit it is never refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_target_and_the_client_side_limiter() {
    let faults = sandbox::Faults {
        rate_limit_per_minute: Some(10),
        rate_limit_window: Some(Duration::from_secs(2)),
        ..Default::default()
    };
    let (base, app) = sandbox(Dialect::Monday, faults, None).await;
    let c = client(&base, Dialect::Monday);
    let mut tasks = vec![];
    for i in 0..25 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move { c.create_user(&user(&format!("r{i}@acme.example"))).await }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap().unwrap(), Created::New(_)));
    }
    assert_eq!(app.store.len(sandbox::store::Kind::User), 25);
    let s = c.stats();
    assert!(s.rate_limited > 0, "{s:?}");
    assert_eq!(s.lookups_before_retry, 0, "a 429 means not done: no lookup needed");

    let (base, _app) = sandbox(
        Dialect::Monday,
        sandbox::Faults {
            rate_limit_per_minute: Some(10),
            rate_limit_window: Some(Duration::from_secs(2)),
            ..Default::default()
        },
        None,
    )
    .await;
    let mut cfg = ClientConfig::new(&base, Dialect::Monday);
    cfg.requests_per_second = Some(4.0);
    let limited = ScimClient::new(cfg, Token::new(TOKEN)).unwrap();
    let mut tasks = vec![];
    for i in 0..12 {
        let c = limited.clone();
        tasks.push(tokio::spawn(async move { c.create_user(&user(&format!("l{i}@acme.example"))).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(limited.stats().rate_limited, 0, "shared limiter kept all clones under the target's limit");
}

/// DNS, TLS, timeouts and 403 each get their own plain message.
#[tokio::test]
async fn transport_failures_are_told_apart() {
    use axum::{http::StatusCode, routing::get, Router};
    let one_try = |url: &str, timeout_ms: u64| {
        let mut cfg = ClientConfig::new(url, Dialect::Generic);
        cfg.retry.max_attempts = 1;
        cfg.timeout = Duration::from_millis(timeout_ms);
        ScimClient::new(cfg, Token::new(TOKEN)).unwrap()
    };
    // DNS: a name that cannot exist.
    let err = one_try("https://tenure-test.invalid/scim/v2", 5000).list_users(None).await.unwrap_err();
    assert!(matches!(err, ClientError::Transport { kind: scim_client::TransportKind::Dns, .. }), "not retried: {err}");
    assert!(err.to_string().contains("DNS"), "{err}");

    // A server that accepts and never answers: a timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = vec![];
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let err = one_try(&format!("http://{silent_addr}/scim/v2"), 300).list_users(None).await.unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");

    // https to a plain-http server: the TLS handshake fails.
    let app = Router::new()
        .route("/scim/v2/Users", get(|| async { (StatusCode::FORBIDDEN, "{\"detail\": \"not an admin\"}") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let err = one_try(&format!("https://{addr}/scim/v2"), 5000).list_users(None).await.unwrap_err();
    assert!(err.to_string().contains("TLS"), "{err}");
    assert!(!err.is_retryable());

    // 403: the token's account is not an admin.
    let err = one_try(&format!("http://{addr}/scim/v2"), 5000).list_users(None).await.unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert!(err.to_string().contains("lacks the rights"), "{err}");
}

/// A list server of `total` users that pages as asked, except that the page starting at
/// `short_at` holds only half of what was asked; counts requests in flight at once, and
/// answers 400 to any `excludedAttributes` when `strict`.
async fn list_server(
    total: usize,
    short_at: Option<usize>,
    strict: bool,
) -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    use axum::{extract::Query, http::StatusCode, response::IntoResponse, routing::get, Router};
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (f, m) = (in_flight.clone(), most.clone());
    let app = Router::new().route(
        "/v2/Users",
        get(move |Query(q): Query<std::collections::HashMap<String, String>>| {
            let (f, m) = (f.clone(), m.clone());
            async move {
                if strict && q.contains_key("excludedAttributes") {
                    return (StatusCode::BAD_REQUEST, axum::Json(json!({"detail": "excludedAttributes unsupported"})))
                        .into_response();
                }
                let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                // Long enough for pages asked at once to overlap on the server.
                tokio::time::sleep(Duration::from_millis(20)).await;
                f.fetch_sub(1, Ordering::SeqCst);
                let start: usize = q["startIndex"].parse().unwrap();
                let mut count: usize = q["count"].parse().unwrap();
                if short_at == Some(start) {
                    count /= 2;
                }
                let meta = !q.get("excludedAttributes").is_some_and(|x| x.contains("meta"));
                let items: Vec<Value> = (start..(start + count).min(total + 1))
                    .map(|i| {
                        let mut u = json!({"id": format!("u{i:05}"), "userName": format!("user{i}")});
                        if meta {
                            u["meta"] = json!({"resourceType": "User"});
                        }
                        u
                    })
                    .collect();
                axum::Json(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                    "totalResults": total, "startIndex": start, "itemsPerPage": items.len(), "Resources": items}))
                .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v2/"), in_flight, most)
}

fn ids_of(users: &[Value]) -> Vec<String> {
    users.iter().map(|u| u["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_after_the_first_are_read_several_at_a_time_and_kept_in_order() {
    let (base, _, most) = list_server(2_345, None, false).await;
    let mut cfg = ClientConfig::new(&base, Dialect::Generic);
    cfg.page_size = 100;
    let c = ScimClient::new(cfg, Token::new(TOKEN)).unwrap();
    let users = c.list_users(None).await.unwrap();
    let want: Vec<String> = (1..=2_345).map(|i| format!("u{i:05}")).collect();
    assert_eq!(ids_of(&users), want, "every user once, in the server's order");
    assert!(most.load(Ordering::SeqCst) > 1, "pages were asked for at once");
    assert_eq!(c.stats().requests, 24);

    // One by one when asked so.
    let (base, _, most) = list_server(450, None, false).await;
    let mut cfg = ClientConfig::new(&base, Dialect::Generic);
    cfg.page_size = 100;
    cfg.page_concurrency = 1;
    let c = ScimClient::new(cfg, Token::new(TOKEN)).unwrap();
    assert_eq!(c.list_users(None).await.unwrap().len(), 450);
    assert_eq!(most.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_page_in_the_middle_leaves_no_gap() {
    // The page at 501 holds 50 users, not 100: users 551..600 are not in any page asked
    // for at once; the client notices and reads on from 551.
    let (base, _, _) = list_server(1_234, Some(501), false).await;
    let mut cfg = ClientConfig::new(&base, Dialect::Generic);
    cfg.page_size = 100;
    let c = ScimClient::new(cfg, Token::new(TOKEN)).unwrap();
    let users = c.list_users(None).await.unwrap();
    let want: Vec<String> = (1..=1_234).map(|i| format!("u{i:05}")).collect();
    assert_eq!(ids_of(&users), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lean_user_lists_leave_out_meta_and_fall_back_when_refused() {
    let (base, _, _) = list_server(250, None, false).await;
    let mut cfg = ClientConfig::new(&base, Dialect::Generic);
    cfg.page_size = 100;
    let c = ScimClient::new(cfg.clone(), Token::new(TOKEN)).unwrap();
    let users = c.list_users_lean().await.unwrap();
    assert_eq!(users.len(), 250);
    assert!(users.iter().all(|u| u.get("meta").is_none()), "excludedAttributes was sent");

    let (base, _, _) = list_server(250, None, true).await;
    cfg.base_url = base;
    let c = ScimClient::new(cfg, Token::new(TOKEN)).unwrap();
    let users = c.list_users_lean().await.unwrap();
    assert_eq!(users.len(), 250, "a server refusing excludedAttributes is asked again without it");
    assert!(users.iter().all(|u| u.get("meta").is_some()));
}
