//! A second factor for local accounts (issue 29 point 2), with the real `tenure serve`:
//! enrolment through the console's own pages (the QR code and the key, a code to confirm, the
//! recovery codes shown once), sign-in through the API and the console's two steps, codes taken
//! once, recovery codes used up, wrong codes throttled and audited, the admin setting that
//! requires one, a reset, and a key rotation that keeps the secret opening.

mod common;

use common::api::*;
use serde_json::{json, Value};

/// A browser-like client with its own cookie, talking to the console's forms.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

impl Browser {
    fn new(base: &str) -> Browser {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Browser { http, base: base.to_string(), cookie: None }
    }

    fn keep(&mut self, r: &reqwest::Response) {
        if let Some(c) = r.headers().get("set-cookie") {
            self.cookie = Some(c.to_str().unwrap().split(';').next().unwrap().to_string());
        }
    }

    async fn get(&mut self, path: &str) -> (u16, String, String) {
        let mut req = self.http.get(format!("{}{path}", self.base)).header("accept", "text/html");
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        let r = req.send().await.unwrap();
        self.keep(&r);
        let to = r.headers().get("location").map(|l| l.to_str().unwrap().to_string()).unwrap_or_default();
        (r.status().as_u16(), to, r.text().await.unwrap())
    }

    /// Posts a console form (with the page's CSRF token when signed in).
    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> (u16, String, String) {
        let mut form: Vec<(String, String)> = fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        if let Some(c) = &self.cookie {
            let id = c.split_once('=').unwrap().1;
            form.push(("csrf".into(), web::api::auth::csrf_of(id)));
        }
        let mut req = self.http.post(format!("{}{path}", self.base)).header("origin", &self.base).form(&form);
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        let r = req.send().await.unwrap();
        self.keep(&r);
        let to = r.headers().get("location").map(|l| l.to_str().unwrap().to_string()).unwrap_or_default();
        (r.status().as_u16(), to, r.text().await.unwrap())
    }
}

/// The text between `from` and the next `to` in `html`.
fn between<'a>(html: &'a str, from: &str, to: &str) -> &'a str {
    let at = html.find(from).unwrap_or_else(|| panic!("no {from:?} in the page:\n{html}")) + from.len();
    &html[at..at + html[at..].find(to).unwrap()]
}

/// The code an authenticator app shows now for this base32 key.
fn code_now(key: &str, offset_steps: i64) -> String {
    let raw = {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let (mut out, mut buf, mut bits) = (vec![], 0u32, 0u32);
        for c in key.bytes().filter(|c| *c != b' ') {
            buf = (buf << 5) | alphabet.iter().position(|a| *a == c).unwrap() as u32;
            bits += 5;
            if bits >= 8 {
                out.push((buf >> (bits - 8)) as u8);
                bits -= 8;
            }
        }
        out
    };
    let step = jiff::Timestamp::now().as_second() / 30 + offset_steps;
    format!("{:06}", service::second_factor::code_at(&raw, step))
}

/// The audit records of one action, read on the store itself.
fn audited(env: &common::env::Env, action: &str) -> Vec<Value> {
    env.ok(&["audit", "export", "--format", "ndjson"])
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["action"] == action)
        .collect()
}

async fn api_login(base: &str, user: &str, password: &str, code: Option<&str>) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/session"))
        .json(&json!({"user": user, "password": password, "code": code}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_factor_from_enrolment_to_reset() {
    let s = serve("second-factor", None, &["--interval", "0"]).await;
    let base = s.base.as_str();
    let (admin, _) = Client::login(base, "admin", &s.one_time).await;
    let pw = "the admin's own passphrase";
    assert_eq!(admin.put("/api/v1/session/password", json!({"current": s.one_time, "new": pw})).await.status, 200);
    let (admin, _) = Client::login(base, "admin", pw).await;
    let sam_pw = "sam's long passphrase";
    let r = admin.post("/api/v1/users", json!({"name": "sam", "role": "reviewer", "password": sam_pw})).await;
    assert_eq!(r.status, 201, "{}", r.text);

    // Sam signs in to the console and sets up a second factor on its page.
    let mut sam = Browser::new(base);
    let (status, to, _) = sam.post("/sign-in", &[("user", "sam"), ("password", sam_pw), ("next", "/")]).await;
    assert_eq!((status, to.as_str()), (303, "/"), "no second factor yet: straight in");
    let (status, _, page) = sam.get("/account/second-factor").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<svg") && page.contains("QR code to scan with an authenticator app"), "{page}");
    assert!(page.contains("otpauth://totp/tenure:sam?secret="), "{page}");
    let key = between(&page, "id=\"totp-secret\">", "<").to_string();
    assert_eq!(key.replace(' ', "").len(), 32, "160 bits in base32: {key}");
    let (status, _, page) = sam.post("/account/second-factor", &[("code", "000000"), ("password", sam_pw)]).await;
    assert_eq!(status, 200);
    assert!(page.contains("Not turned on"), "a wrong code turns nothing on: {page}");
    let (_, _, page) =
        sam.post("/account/second-factor", &[("code", &code_now(&key, 0)), ("password", "not sam's")]).await;
    assert!(page.contains("that is not your password"), "a borrowed session alone enrols nothing: {page}");
    let (status, _, page) =
        sam.post("/account/second-factor", &[("code", &code_now(&key, 0)), ("password", sam_pw)]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("The second factor is on"), "{page}");
    let codes: Vec<String> = between(&page, "id=\"recovery-codes\">", "</ul>")
        .split("<li>")
        .filter_map(|c| c.split("</li>").next())
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect();
    assert_eq!(codes.len(), 10, "{page}");
    let (_, _, page) = sam.get("/account/second-factor").await;
    assert!(!page.contains(&codes[0]) && !page.contains(&key), "shown once: {page}");
    assert!(page.contains("Recovery codes left: 10"), "{page}");

    // The console's two steps: the password opens only the code page.
    let mut again = Browser::new(base);
    let (status, to, _) = again.post("/sign-in", &[("user", "sam"), ("password", sam_pw), ("next", "/reviews")]).await;
    assert_eq!(status, 303);
    assert!(to.starts_with("/sign-in/code"), "{to}");
    let mut peek = Browser { http: again.http.clone(), base: base.to_string(), cookie: again.cookie.clone() };
    let (status, to, _) = peek.get("/reviews").await;
    assert!(status == 303 && to.starts_with("/sign-in"), "a waiting sign-in is no session: {status} {to}");
    let (status, _, _) = peek.get("/api/v1/whoami").await;
    assert_eq!(status, 401, "nor for the API");
    let (status, _, page) = again.get("/sign-in/code?next=%2Freviews").await;
    assert_eq!(status, 200);
    assert!(page.contains("autocomplete=\"one-time-code\""), "{page}");
    let (status, _, page) = again.post("/sign-in/code", &[("code", "111111"), ("next", "/reviews")]).await;
    assert_eq!(status, 401, "{page}");
    assert!(page.contains("That code is not right"), "{page}");
    let (status, to, _) = again.post("/sign-in/code", &[("code", &codes[5]), ("next", "/reviews")]).await;
    assert_eq!((status, to.as_str()), (303, "/reviews"));
    let (status, _, _) = again.get("/reviews").await;
    assert_eq!(status, 200, "signed in");

    // The API: the password alone is not enough; the app's code is, once per step.
    let (status, v) = api_login(base, "sam", sam_pw, None).await;
    assert_eq!((status, v["type"].as_str()), (401, Some("https://tenure.dev/problems/second-factor-required")), "{v}");
    let (status, _) = api_login(base, "sam", sam_pw, Some("123456")).await;
    assert_eq!(status, 401);
    // The step enrolment used is spent: the next one signs in.
    let next = code_now(&key, 1);
    let (status, v) = api_login(base, "sam", sam_pw, Some(&next)).await;
    assert_eq!(status, 200, "{v}");
    let (status, _) = api_login(base, "sam", sam_pw, Some(&next)).await;
    assert_eq!(status, 401, "a code is taken once");
    // A recovery code works once, and is counted down.
    let (status, v) = api_login(base, "sam", sam_pw, Some(&codes[3].to_uppercase())).await;
    assert_eq!(status, 200, "{v}");
    let (status, _) = api_login(base, "sam", sam_pw, Some(&codes[3])).await;
    assert_eq!(status, 401, "used up");
    // The wrong password with the right code: still refused.
    let (status, _) = api_login(base, "sam", "not sam's passphrase", Some(&codes[4])).await;
    assert_eq!(status, 401);

    // An admin requires a second factor of everyone: Vic, who has none, may only set one up.
    let vic_pw = "vic's long passphrase";
    assert_eq!(
        admin.post("/api/v1/users", json!({"name": "vic", "role": "viewer", "password": vic_pw})).await.status,
        201
    );
    let mut adm = Browser::new(base);
    adm.post("/sign-in", &[("user", "admin"), ("password", pw), ("next", "/")]).await;
    let (status, to, _) = adm.post("/settings/second-factor", &[("required", "yes")]).await;
    assert_eq!((status, to.as_str()), (303, "/settings?said=2fa-required"));
    // Sessions already open follow at once: the admin's own API session too (no factor).
    let r = admin.get("/api/v1/status").await;
    assert_eq!(
        (r.status, r.json()["type"].as_str()),
        (403, Some("https://tenure.dev/problems/second-factor-enrolment-required"))
    );
    let (status, v) = api_login(base, "vic", vic_pw, None).await;
    assert_eq!(status, 200, "{v}");
    let mut vic = Browser::new(base);
    vic.post("/sign-in", &[("user", "vic"), ("password", vic_pw), ("next", "/")]).await;
    let (status, to, _) = vic.get("/workers").await;
    assert_eq!((status, to.as_str()), (303, "/account/second-factor"), "set one up first");
    let (_, _, page) = vic.get("/account/second-factor").await;
    assert!(page.contains("Required here"), "{page}");
    let vic_key = between(&page, "id=\"totp-secret\">", "<").to_string();
    vic.post("/account/second-factor", &[("code", &code_now(&vic_key, 0)), ("password", vic_pw)]).await;
    let (status, _, _) = vic.get("/workers").await;
    assert_eq!(status, 200, "free once set up");

    // The master key is rotated: the sealed secrets are re-sealed, and codes still check.
    let out = s.env.ok(&["key", "rotate"]);
    assert!(out.contains("re-sealed"), "{out}");
    let (status, v) = api_login(base, "sam", sam_pw, Some(&codes[6])).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = api_login(base, "vic", vic_pw, Some(&code_now(&vic_key, 1))).await;
    assert_eq!(status, 200, "the app's codes still check after the rotation: {v}");

    // Sam loses the phone: an admin resets the second factor; where one is required Sam sets
    // up a new one at the next sign-in.
    let (code, out) = s.env.tenure(&["user", "reset-second-factor", "sam"]);
    assert_eq!(code, 1, "break-glass on a store whose people sign in: {out}");
    let out = s.env.ok(&["user", "reset-second-factor", "sam", "--break-glass", "sam lost the phone"]);
    assert!(out.contains("is removed"), "{out}");
    let mut sam = Browser::new(base);
    let (_, to, _) = sam.post("/sign-in", &[("user", "sam"), ("password", sam_pw), ("next", "/")]).await;
    assert_eq!(to, "/");
    let (status, to, _) = sam.get("/").await;
    assert_eq!((status, to.as_str()), (303, "/account/second-factor"));
    // The audit, read on the store (the admin's session is held to enrolment now).
    assert_eq!(audited(&s.env, "second_factor_remove").len(), 1);
    assert_eq!(audited(&s.env, "break_glass").len(), 1, "the reset on the store was break-glass");
    // Wrong codes are throttled like wrong passwords, and audited.
    let mut throttled = false;
    for _ in 0..8 {
        let (status, _) = api_login(base, "vic", vic_pw, Some("999999")).await;
        throttled |= status == 429;
    }
    assert!(throttled, "wrong codes are slowed down");
    let failed = audited(&s.env, "login_failed");
    assert!(failed.iter().any(|f| f["detail"]["second_factor"] == true), "{failed:?}");
    for action in ["second_factor_enrol", "recovery_code_used", "second_factor_required"] {
        assert!(!audited(&s.env, action).is_empty(), "{action} is audited");
    }
    // Nothing of the key or the codes is in the store in plain text.
    for f in std::fs::read_dir(&s.env.dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()) {
        let bytes = std::fs::read(&f).unwrap();
        for secret in [key.replace(' ', ""), codes[0].clone()] {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} is in {}", f.display());
        }
    }
}
