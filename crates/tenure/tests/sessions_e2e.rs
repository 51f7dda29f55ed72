//! Sessions people can see (issue 29 point 4), with the real `tenure serve`: one's own
//! sessions with when, address and browser, signing out the others, an admin ending every
//! session of a user (API, command line), and read-only API tokens.

mod common;

use common::api::*;
use serde_json::{json, Value};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const SAFARI: &str =
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";

/// Signs in with this user agent: the session's cookie value.
async fn sign_in_as(base: &str, user: &str, password: &str, agent: &str) -> String {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/session"))
        .header("user-agent", agent)
        .json(&json!({"user": user, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_string()
}

async fn get_with(base: &str, cookie: &str, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new().get(format!("{base}{path}")).header("cookie", cookie).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_see_their_sessions_and_admins_end_them() {
    let s = serve("sessions", None, &["--interval", "0"]).await;
    let base = s.base.as_str();
    let (admin, _) = Client::login(base, "admin", &s.one_time).await;
    let pw = "the admin's own passphrase";
    assert_eq!(admin.put("/api/v1/session/password", json!({"current": s.one_time, "new": pw})).await.status, 200);
    let (admin, _) = Client::login(base, "admin", pw).await;
    let rita_pw = "rita reviews with care";
    let r = admin.post("/api/v1/users", json!({"name": "rita", "role": "reviewer", "password": rita_pw})).await;
    assert_eq!(r.status, 201, "{}", r.text);

    // Rita signs in from a laptop and a phone: each session says when, from where, in what.
    let laptop = sign_in_as(base, "rita", rita_pw, FIREFOX).await;
    let phone = sign_in_as(base, "rita", rita_pw, SAFARI).await;
    let (status, mine) = get_with(base, &phone, "/api/v1/session/all").await;
    assert_eq!(status, 200, "{mine}");
    let all = mine.as_array().unwrap();
    assert_eq!(all.len(), 2, "{mine}");
    assert!(all.iter().all(|s| s["address"] == "127.0.0.1" && s["signed_in"].as_str().is_some()), "{mine}");
    let this: Vec<&Value> = all.iter().filter(|s| s["this"] == true).collect();
    assert_eq!(this.len(), 1, "{mine}");
    assert_eq!(this[0]["browser"], "Safari on iOS", "{mine}");
    assert!(all.iter().any(|s| s["browser"] == "Firefox on Linux"), "{mine}");
    assert!(!mine.to_string().contains(&laptop[laptop.find('=').unwrap() + 1..]), "never a session id");
    // The same from the command line, for an admin on the store.
    let out = s.env.ok(&["user", "sessions", "rita"]);
    assert!(out.contains("from 127.0.0.1  Firefox on Linux") && out.ends_with("sessions of \"rita\": 2\n"), "{out}");

    // From the phone, Rita signs out the laptop.
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/session/end-others"))
        .header("cookie", &phone)
        .header("origin", base)
        .header("x-csrf-token", {
            let (_, info) = get_with(base, &phone, "/api/v1/session").await;
            info["csrf_token"].as_str().unwrap().to_string()
        })
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["ended"], 1);
    assert_eq!(get_with(base, &laptop, "/api/v1/whoami").await.0, 401, "the laptop is signed out");
    assert_eq!(get_with(base, &phone, "/api/v1/whoami").await.0, 200, "the phone is not");

    // Her phone is lost: an admin ends every session of hers; audited.
    let r = admin.send("DELETE", "/api/v1/users/rita/sessions", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["ended"], 1);
    assert_eq!(get_with(base, &phone, "/api/v1/whoami").await.0, 401);
    let r = admin.send("DELETE", "/api/v1/users/nobody/sessions", None).await;
    assert_eq!(r.status, 404, "{}", r.text);
    let _again = sign_in_as(base, "rita", rita_pw, FIREFOX).await;
    let out = s.env.ok(&["user", "end-sessions", "rita"]);
    assert!(out.contains("1 session(s) of \"rita\" ended"), "{out}");
    let ended = admin.get("/api/v1/audit?action=user_sessions_end").await.json();
    let actors: Vec<&str> = ended.as_array().unwrap().iter().map(|e| e["detail"]["actor"].as_str().unwrap()).collect();
    assert_eq!(actors.len(), 2, "{ended}");
    assert_eq!(actors[0], "user:admin", "{ended}");
    assert!(actors[1].starts_with("os:"), "{ended}");
    // An API token has no sessions to list or end.
    let r = admin.post("/api/v1/tokens", json!({"name": "dash", "role": "admin", "read_only": true})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["read_only"], true);
    let dash = Client::token(base, r.json()["token"].as_str().unwrap());
    assert_eq!(dash.get("/api/v1/session/all").await.json(), json!([]));

    // A read-only token reads what its role may read, and changes nothing.
    assert_eq!(dash.get("/api/v1/users").await.status, 200, "an admin token reads users");
    let r =
        dash.post("/api/v1/users", json!({"name": "eve", "role": "admin", "password": "eve's long passphrase"})).await;
    assert_eq!(
        (r.status, r.json()["type"].as_str()),
        (403, Some("https://tenure.dev/problems/read-only-token")),
        "{}",
        r.text
    );
    assert!(r.text.contains("only reads"), "{}", r.text);
    assert_eq!(dash.send("DELETE", "/api/v1/users/rita/sessions", None).await.status, 403);

    // At the command line: a read-only token needs no reason; a token for no user that may do
    // more than read is a second identity beside the platform users: break-glass.
    let out = s.env.ok(&["token", "create", "grafana", "--role", "admin", "--read-only"]);
    assert!(out.contains("tenure_"), "{out}");
    let (code, out) = s.env.tenure(&["token", "create", "backdoor", "--role", "reviewer"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("--break-glass"), "{out}");
    let (code, out) = s.env.tenure(&["token", "create", "rita-cli", "--role", "reviewer", "--for", "rita"]);
    assert_eq!(code, 1, "acting as Rita is break-glass too (she makes her own signed in): {out}");
    let (code, out) = s.env.tenure(&[
        "token",
        "create",
        "rita-cli",
        "--role",
        "reviewer",
        "--for",
        "rita",
        "--break-glass",
        "set-up",
    ]);
    assert_eq!(code, 0, "{out}");
    let listed = admin.get("/api/v1/tokens").await.json();
    let grafana = listed.as_array().unwrap().iter().find(|t| t["name"] == "grafana").unwrap();
    assert_eq!(grafana["read_only"], true, "{grafana}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_sign_in_can_be_kept_for_break_glass_accounts() {
    let s = serve("break-glass-accounts", None, &["--interval", "0"]).await;
    let base = s.base.as_str();
    let (admin, _) = Client::login(base, "admin", &s.one_time).await;
    let pw = "the admin's own passphrase";
    assert_eq!(admin.put("/api/v1/session/password", json!({"current": s.one_time, "new": pw})).await.status, 200);
    let (admin, _) = Client::login(base, "admin", pw).await;
    let r = admin
        .post("/api/v1/users", json!({"name": "rita", "role": "reviewer", "password": "rita's long passphrase"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // Turning password sign-in off without an account that keeps it is refused at check.
    let off = s.env.dir.join("off.toml");
    std::fs::write(&off, "[auth]\npassword_sign_in = false\n").unwrap();
    let (code, out) = s.env.tenure(&["config", "check", off.to_str().unwrap()]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("auth.break_glass_accounts: with password_sign_in = false"), "{out}");
    std::fs::write(&off, "[auth]\npassword_sign_in = false\nbreak_glass_accounts = [\"Admin\"]\n").unwrap();
    s.env.ok(&["config", "import", off.to_str().unwrap()]);
    let login = |user: &'static str, password: &'static str| async move {
        let r = reqwest::Client::new()
            .post(format!("{base}/api/v1/session"))
            .json(&json!({"user": user, "password": password}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap_or_default())
    };
    let (status, v) = login("rita", "rita's long passphrase").await;
    assert_eq!((status, v["type"].as_str()), (403, Some("https://tenure.dev/problems/password-sign-in-off")), "{v}");
    let (status, _) = login("nobody", "whatever it is").await;
    assert_eq!(status, 403, "the same answer for a name nobody has");
    let (status, v) = login("admin", pw).await;
    assert_eq!(status, 200, "a break-glass account keeps its password: {v}");
    let page = reqwest::get(format!("{base}/sign-in")).await.unwrap().text().await.unwrap();
    assert!(page.contains("Password sign-in is kept for break-glass accounts here."), "{page}");
    let exported = s.env.ok(&["config", "export"]);
    assert!(exported.contains("[auth]") && exported.contains("password_sign_in = false"), "{exported}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_admin_changes_how_people_sign_in_and_sets_the_providers_secret() {
    let s = serve("auth-admin-only", None, &["--interval", "0"]).await;
    let base = s.base.as_str();
    let (admin, _) = Client::login(base, "admin", &s.one_time).await;
    let pw = "the admin's own passphrase";
    assert_eq!(admin.put("/api/v1/session/password", json!({"current": s.one_time, "new": pw})).await.status, 200);
    let (admin, _) = Client::login(base, "admin", pw).await;
    let r =
        admin.post("/api/v1/users", json!({"name": "ed", "role": "editor", "password": "ed's long passphrase"})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let (ed, _) = Client::login(base, "ed", "ed's long passphrase").await;
    let toml = |admins: &str| {
        format!(
            "[auth.oidc]\nname = \"Okta\"\nissuer = \"https://acme.okta.example\"\nclient_id = \"tenure\"\n\n\
             [auth.oidc.roles]\nadmin = [\"{admins}\"]\nviewer = [\"*\"]\n"
        )
        .into_bytes()
    };
    // An editor who could map a group of theirs to Admin would make themselves one.
    let r = ed.send("PUT", "/api/v1/config", Some(("application/toml", toml("tenure-admins")))).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.json()["detail"].as_str().unwrap().contains("[auth]"), "{}", r.text);
    let r = admin.send("PUT", "/api/v1/config", Some(("application/toml", toml("tenure-admins")))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The same [auth] saved by an editor with other changes is theirs to save; a new group is not.
    let r = ed.send("PUT", "/api/v1/config", Some(("application/toml", toml("tenure-admins")))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = ed.send("PUT", "/api/v1/config", Some(("application/toml", toml("editors-we-trust")))).await;
    assert_eq!(r.status, 403, "{}", r.text);
    let page = reqwest::get(format!("{base}/sign-in")).await.unwrap().text().await.unwrap();
    assert!(page.contains("Sign in with Okta"), "{page}");

    // The client secret: Admin only, sealed, bound to the issuer, never answered back.
    let secret = "the-okta-client-secret-0123456789";
    let r = ed
        .send(
            "PUT",
            "/api/v1/auth/oidc-secret",
            Some(("application/json", json!({"secret": secret}).to_string().into_bytes())),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = admin
        .send(
            "PUT",
            "/api/v1/auth/oidc-secret",
            Some(("application/json", json!({"secret": secret}).to_string().into_bytes())),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["issuer"], "https://acme.okta.example");
    assert!(!r.text.contains(secret), "{}", r.text);
    let db = std::fs::read(s.env.dir.join("tenure.db")).unwrap();
    assert!(!db.windows(secret.len()).any(|w| w == secret.as_bytes()), "the client secret in plain text");
    let audit = s.env.ok(&["audit", "export", "--format", "ndjson"]);
    assert!(audit.contains("oidc_secret_set") && !audit.contains(secret), "{audit}");

    // Settings that cannot work are refused at check, each with its key.
    let bad = s.env.dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[auth.oidc]\nname = \"\"\nissuer = \"http://acme.okta.example\"\nclient_id = \"tenure\"\nallowed_domains = \
         [\"@acme\"]\n",
    )
    .unwrap();
    let (code, out) = s.env.tenure(&["config", "check", bad.to_str().unwrap()]);
    assert_ne!(code, 0, "{out}");
    for said in [
        "auth.oidc.name",
        "auth.oidc.issuer: an issuer is an https URL",
        "auth.oidc.roles: no group",
        "auth.oidc.allowed_domains",
    ] {
        assert!(out.contains(said), "{said}: {out}");
    }
    // "*" above Viewer without allowed domains: anyone with an account at the provider.
    std::fs::write(
        &bad,
        "[auth.oidc]\nname = \"Okta\"\nissuer = \"https://acme.okta.example\"\nclient_id = \"tenure\"\n\
         [auth.oidc.roles]\nadmin = [\"*\"]\n",
    )
    .unwrap();
    let (code, out) = s.env.tenure(&["config", "check", bad.to_str().unwrap()]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("auth.oidc.roles.admin: \"*\" gives admin to everyone"), "{out}");
}
