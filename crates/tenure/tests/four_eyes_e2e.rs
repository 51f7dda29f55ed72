//! Four eyes at every door (issue 29 point 3), with the real binary, `tenure serve` and the
//! sandbox: the command line is the OS user running it or, with `--server`, the platform user of
//! an API token; on a store with platform users a local decision needs `--break-glass` (audited,
//! sent as a notice); every load records who brought it, and nobody approves what their own
//! load opened, whichever door each step used.

mod common;

use common::api::*;
use common::env::*;
use serde_json::{json, Value};

/// A webhook receiver that keeps the body of every POST.
async fn webhook_sink() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let got: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let kept = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

/// `tenure ARGS` as the platform user of `token`, through the server.
fn through(s: &Service, token: &str, args: &[&str]) -> (i32, String) {
    let o = s.env.command().arg("--server").arg(&s.base).args(args).env("TENURE_TOKEN", token).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
    )
}

async fn user_with_token(admin: &Client, base: &str, name: &str, role: &str) -> String {
    let pw = format!("{name}'s long passphrase");
    let r = admin.post("/api/v1/users", json!({"name": name, "role": role, "password": pw})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let (me, _) = Client::login(base, name, &pw).await;
    // A token of one's own: made signed in, acting as oneself.
    let r = me.post("/api/v1/tokens", json!({"name": format!("{name} cli"), "role": role})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    if role != "admin" {
        let r2 = me.post("/api/v1/tokens", json!({"name": "more", "role": "admin"})).await;
        assert_eq!(r2.status, 403, "not above one's own role: {}", r2.text);
    }
    r.json()["token"].as_str().unwrap().to_string()
}

fn review_of(reviews: &Value, worker: &str) -> String {
    let r = reviews.as_array().unwrap().iter().find(|r| r["worker"] == worker);
    r.unwrap_or_else(|| panic!("no review for {worker}: {reviews}"))["id"].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_eyes_hold_whichever_door_each_step_uses() {
    let sb = common::spawn(&[]);
    let s = serve("four-eyes", None, &["--interval", "0"]).await;
    let base = s.base.as_str();
    let (admin, _) = Client::login(base, "admin", &s.one_time).await;
    let pw = "the admin's own passphrase";
    assert_eq!(admin.put("/api/v1/session/password", json!({"current": s.one_time, "new": pw})).await.status, 200);
    let (admin, _) = Client::login(base, "admin", pw).await;
    let r = admin
        .post("/api/v1/connections", json!({"name": "Connection-Bearer Token-1", "url": sb.base, "token": sb.token}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let (hook, hooked) = webhook_sink().await;
    let toml = format!(
        "{}\n[[notify]]\nname = \"security\"\nwebhook = \"{hook}\"\non = [\"break_glass\"]\n",
        rules("\"hire\"")
    );
    let r = admin.send("PUT", "/api/v1/config", Some(("application/toml", toml.into_bytes()))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    s.env.ok(&["notify", "secret", "security"]);
    let ed = user_with_token(&admin, base, "ed", "editor").await;
    let ada = user_with_token(&admin, base, "ada", "admin").await;
    let rita = user_with_token(&admin, base, "rita", "reviewer").await;

    // HR data loaded on the store itself records its OS user; a run started there is theirs.
    let ann = row("1", "Ann", "Lee", "Engineer", "Engineering", "employee", "active", ",2020-01-01", ",,,");
    let bob = row("2", "Bob", "Ray", "Analyst", "Sales", "employee", "active", ",2020-01-01", ",,,");
    let day0 = s.env.dir.join("day0.csv");
    std::fs::write(&day0, csv(&[ann.clone(), bob.clone()])).unwrap();
    s.env.ok(&["hr", "load", day0.to_str().unwrap()]);
    let loads: Value = serde_json::from_str(&s.env.ok(&["hr", "loads", "--json"])).unwrap();
    let me = loads[0]["uploaded_by"].as_str().unwrap().to_string();
    assert!(me.starts_with("os:"), "{loads}");
    assert!(s.env.ok(&["hr", "loads"]).contains(&format!("(full, by {me})")));
    let out = s.env.ok(&["apply", "--quiet"]);
    assert!(out.contains("wait for a reviewer"), "{out}");
    let reviews = admin.get("/api/v1/reviews").await.json();
    assert_eq!(reviews[0]["proposed_by"], me.as_str(), "{reviews}");
    let (ann_review, bob_review) = (review_of(&reviews, "1"), review_of(&reviews, "2"));

    // The store has platform users: deciding on it directly is refused without break-glass,
    // and break-glass needs a reason. `--by` is no more.
    let (code, out) = s.env.tenure(&["approve", &ann_review]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("--break-glass") && out.contains("--server URL"), "{out}");
    let (code, out) = s.env.tenure(&["approve", &ann_review, "--break-glass", " "]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("--break-glass needs a reason"), "{out}");
    let (code, out) = s.env.tenure(&["approve", &ann_review, "--by", "rita"]);
    assert_ne!(code, 0, "{out}");
    let (code, out) = s.env.tenure(&["dead-letters", "retry", "--all"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("--break-glass"), "{out}");
    assert_eq!(admin.get("/api/v1/reviews").await.json().as_array().unwrap().len(), 2, "nothing was decided");

    // Through the server the command line is the token's user, with that user's role.
    let (code, out) = through(&s, &ed, &["approve", &ann_review]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("403") && out.contains("reviewer"), "an editor does not approve: {out}");
    let (code, out) = through(&s, &rita, &["approve", &ann_review, "--note", "HR confirmed"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("#{ann_review} approved")) && out.contains("review(s) approved by token:"), "{out}");
    let (code, out) = through(&s, &rita, &["reviews", "--json"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap().as_array().unwrap().len(), 1, "{out}");
    let (code, out) = through(&s, "tenure_not-a-real-token", &["approve", &bob_review]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("401") && !out.contains("not-a-real-token"), "the token is never said: {out}");
    let (code, out) = through(&s, &rita, &["user", "list"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("--server is for"), "{out}");

    // The OS user who loaded Bob's record is the platform user of the same name: refused at
    // every door, break-glass or not.
    let os_name = me.trim_start_matches("os:").to_string();
    let twin = user_with_token(&admin, base, &os_name, "reviewer").await;
    let (code, out) = through(&s, &twin, &["approve", &bob_review]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("started the run that opened it") && out.contains("another reviewer must decide it"), "{out}");
    let (code, out) = s.env.tenure(&["approve", &bob_review, "--break-glass", "in a hurry"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("another reviewer must decide it"), "{out}");
    // A token the OS user makes on the store for no user is still that OS user.
    let out = s.env.ok(&["token", "create", "script", "--role", "reviewer", "--break-glass", "a script"]);
    let script = out.lines().last().unwrap().trim().to_string();
    let (code, out) = through(&s, &script, &["approve", &bob_review]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("another reviewer must decide it"), "{out}");

    // Ada (an admin: she may upload and approve) brings a hire through the server and starts
    // the run there: hers, not the OS user's.
    let cat = row("3", "Cat", "Kim", "Clerk", "Sales", "employee", "active", ",2020-01-01", ",,,");
    let day1 = s.env.dir.join("day1.csv");
    std::fs::write(&day1, csv(&[ann, bob, cat])).unwrap();
    let (code, out) = through(&s, &ada, &["hr", "load", day1.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("taken by the server") && out.contains("accepted: 3"), "{out}");
    let loads: Value = serde_json::from_str(&s.env.ok(&["hr", "loads", "--json"])).unwrap();
    assert_eq!(loads.as_array().unwrap().last().unwrap()["uploaded_by"], "user:ada", "{loads}");
    let (code, out) = through(&s, &ada, &["apply"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("by token:"), "{out}");
    let reviews = admin.get("/api/v1/reviews").await.json();
    let cat_review = review_of(&reviews, "3");
    // Refused to Ada through the command line (the API) and in the console.
    let (code, out) = through(&s, &ada, &["approve", &cat_review]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("user:ada") && out.contains("another reviewer must decide it"), "{out}");
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let signed = http
        .post(format!("{base}/sign-in"))
        .header("origin", base)
        .form(&[("user", "ada"), ("password", "ada's long passphrase"), ("next", "/reviews")])
        .send()
        .await
        .unwrap();
    let cookie = signed.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let csrf = web::api::auth::csrf_of(cookie.split_once('=').unwrap().1);
    let decided = http
        .post(format!("{base}/reviews/decide"))
        .header("origin", base)
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str()), ("id", cat_review.as_str()), ("decision", "approve"), ("back", "/reviews")])
        .send()
        .await
        .unwrap();
    let to = decided.headers()["location"].to_str().unwrap().to_string();
    assert!(to.contains("n=0") && to.ends_with(&format!("mine={cat_review}")), "refused in the console: {to}");

    // Break-glass on the store itself, with a reason: done, audited as such, and told.
    let (code, out) = s.env.tenure(&["approve", &cat_review, "--break-glass", "HR director on the phone"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("by {me} (break-glass)")), "{out}");
    // Each use is recorded and told, the refused self-approval above too.
    let glass = admin.get("/api/v1/audit?action=break_glass").await.json();
    let reasons: Vec<&str> =
        glass.as_array().unwrap().iter().map(|g| g["detail"]["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["in a hurry", "a script", "HR director on the phone"], "{glass}");
    assert_eq!(glass[2]["detail"]["what"], "approve reviews", "{glass}");
    assert_eq!(glass[2]["type"], "decision", "{glass}");
    let approved = admin.get("/api/v1/audit?action=approve").await.json();
    assert!(
        approved.as_array().unwrap().iter().any(|a| a["detail"]["actor"] == format!("{me} (break-glass)")),
        "the approval names the break-glass: {approved}"
    );
    let told = hooked.lock().unwrap().clone();
    assert_eq!(told.len(), 3, "{told:?}");
    let notice: Value = serde_json::from_str(&told[2]).unwrap();
    assert_eq!(notice["event"], "break_glass", "{notice}");
    assert!(notice.to_string().contains("HR director on the phone"), "{notice}");
}

#[test]
fn a_store_without_platform_users_is_decided_by_its_os_user_and_says_so() {
    let env = Env::new_store("four-eyes-solo", None);
    let (code, out) = env.tenure(&["approve", "--all"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("this store has no platform users") && out.contains("0 review(s) approved by os:"), "{out}");
    let (code, out) = env.tenure(&["approve", "--all", "--by", "someone"]);
    assert_eq!(code, 64, "--by is gone: {out}");
}
