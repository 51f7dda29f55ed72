//! A client of the admin API (a session with its cookie and CSRF token, or an API token) and a
//! running `tenure serve`, for the tests that drive the API.

use super::env::*;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use std::time::Duration;

/// A client of the API: a session (cookie and CSRF token) or a bearer token.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
    pub bearer: Option<String>,
}

pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

impl Client {
    pub fn anonymous(base: &str) -> Client {
        Client { http: reqwest::Client::new(), base: base.into(), cookie: None, csrf: None, bearer: None }
    }
    pub fn token(base: &str, t: &str) -> Client {
        Client { bearer: Some(t.into()), ..Client::anonymous(base) }
    }
    pub async fn send(&self, method: &str, path: &str, body: Option<(&str, Vec<u8>)>) -> Reply {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self.http.request(m, format!("{}{path}", self.base)).header("origin", &self.base);
        if let Some(c) = &self.cookie {
            r = r.header("cookie", c);
        }
        if let Some(c) = &self.csrf {
            r = r.header("x-csrf-token", c);
        }
        if let Some(b) = &self.bearer {
            r = r.bearer_auth(b);
        }
        if let Some((ct, bytes)) = body {
            r = r.header("content-type", ct).body(bytes);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        Reply { status, headers, text }
    }
    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send("POST", path, Some(("application/json", body.to_string().into_bytes()))).await
    }
    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send("PUT", path, Some(("application/json", body.to_string().into_bytes()))).await
    }
    /// Logs in; the session's cookie and CSRF token are kept.
    pub async fn login(base: &str, user: &str, password: &str) -> (Client, Reply) {
        let anon = Client::anonymous(base);
        let r = anon.post("/api/v1/session", json!({"user": user, "password": password})).await;
        let cookie = r.headers.get("set-cookie").map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
        let csrf = r.json()["csrf_token"].as_str().map(str::to_string);
        (Client { cookie, csrf, ..anon }, r)
    }
}

/// A running service and what it printed.
pub struct Service {
    pub env: Env,
    pub run: Running,
    pub base: String,
    pub one_time: String,
}

pub async fn serve(tag: &str, database_url: Option<String>, extra: &[&str]) -> Service {
    let env = Env { dir: super::tempdir(tag), database_url };
    let mut args = vec!["serve", "--init", "--listen", "127.0.0.1:0"];
    if !extra.contains(&"--interval") {
        args.extend_from_slice(&["--interval", "3600"]);
    }
    args.extend_from_slice(extra);
    let run = env.start(&args);
    let base = run.address().await;
    let line = run.wait_line("one-time password ").await;
    let one_time = line.split("one-time password ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    Service { env, run, base, one_time }
}

/// Waits for a run started through the API to end.
pub async fn finished(c: &Client, id: &str) -> Value {
    for _ in 0..600 {
        let r = c.get(&format!("/api/v1/runs/{id}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        if r.json()["state"] != "running" {
            return r.json();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("run {id} did not end");
}

pub fn rules(supervised: &str) -> String {
    std::fs::read_to_string(RULES).unwrap().replacen(
        "dialect = \"monday\"\n",
        &format!("dialect = \"monday\"\nsupervised = [{supervised}]\n"),
        1,
    )
}

pub fn csv(rows: &[String]) -> Vec<u8> {
    format!("{HEADER}\n{}\n", rows.join("\n")).into_bytes()
}
