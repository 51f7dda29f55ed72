//! Spawns the real `tenure sandbox` on a random port and talks to it over HTTP.
#![allow(dead_code)]

pub mod api;
pub mod env;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const TOKEN: &str = "test-token-0123456789";
pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

pub struct Sandbox {
    child: Child,
    pub base: String,
    pub token: String,
    pub stdout_lines: Vec<String>,
    pub http: reqwest::Client,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tenure-test-{tag}-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A data folder with a new store in it (`tenure init`), as an admin's first step makes it.
pub fn store_dir(tag: &str) -> PathBuf {
    let d = tempdir(tag);
    init_store(&d, None);
    d
}

/// `tenure init` in this data folder (and database, when given).
pub fn init_store(dir: &std::path::Path, database_url: Option<&str>) {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_tenure"));
    c.arg("--data-dir").arg(dir).env_remove("TENURE_DATABASE_URL").arg("init");
    if let Some(u) = database_url {
        c.arg("--database-url").arg(u);
    }
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "tenure init: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

/// Starts the sandbox with the given extra arguments; the token comes from the environment
/// unless `token` is None.
pub fn spawn_with(args: &[&str], token: Option<&str>) -> Sandbox {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tenure"));
    cmd.arg("sandbox");
    if !args.contains(&"--listen") {
        cmd.arg("--listen").arg("127.0.0.1:0");
    }
    cmd.args(args);
    cmd.env_remove("TENURE_SANDBOX_TOKEN");
    if let Some(t) = token {
        cmd.env("TENURE_SANDBOX_TOKEN", t);
    }
    if !args.contains(&"--db") && !args.contains(&"--memory") {
        cmd.arg("--memory");
    }
    cmd.env("TENURE_LOG", "warn").stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = cmd.spawn().expect("spawn tenure sandbox");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    let mut base = None;
    for _ in 0..5 {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(rest) = line.strip_prefix("tenure sandbox listening on ") {
            base = Some(rest.split_whitespace().next().unwrap().to_string());
        }
        let done = line.starts_with("tenure sandbox listening");
        lines.push(line.trim_end().to_string());
        if done {
            break;
        }
    }
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in out.lines() {});
    let base = base.unwrap_or_else(|| panic!("sandbox did not start: {lines:?}"));
    let token = token.map(str::to_string).unwrap_or_else(|| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix("bearer token (shown once; only its hash is kept): "))
            .map(str::to_string)
            .unwrap_or_default()
    });
    Sandbox { child, base, token, stdout_lines: lines, http: reqwest::Client::new() }
}

pub fn spawn(args: &[&str]) -> Sandbox {
    spawn_with(args, Some(TOKEN))
}

pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|h| h.to_str().ok()).map(str::to_string)
    }
}

impl Sandbox {
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<&Value>, headers: &[(&str, &str)]) -> Answer {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method.parse().unwrap(), &url).bearer_auth(&self.token);
        req = req.header("Accept", "application/scim+json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.header("Content-Type", "application/scim+json; charset=utf-8").body(b.to_string());
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Answer { status, headers, body }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, None, &[]).await
    }
    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send("POST", path, Some(body), &[]).await
    }
    pub async fn put(&self, path: &str, body: &Value) -> Answer {
        self.send("PUT", path, Some(body), &[]).await
    }
    pub async fn patch(&self, path: &str, ops: Value) -> Answer {
        self.send("PATCH", path, Some(&serde_json::json!({"schemas": [PATCH], "Operations": ops})), &[]).await
    }
    pub async fn delete(&self, path: &str) -> Answer {
        self.send("DELETE", path, None, &[]).await
    }

    /// Creates a user and returns its id.
    pub async fn create_user(&self, user_name: &str, display: &str) -> String {
        let a = self
            .post(
                "/Users",
                &serde_json::json!({"schemas": [USER], "userName": user_name, "displayName": display,
                    "emails": [{"value": user_name, "type": "work", "primary": true}]}),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        a.body["id"].as_str().unwrap().to_string()
    }
}

pub fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub fn filter(f: &str) -> String {
    format!("filter={}", url_encode(f))
}

pub fn db_in(dir: &Path) -> String {
    dir.join("sandbox.db").display().to_string()
}

/// Posts `body` to the HR push endpoint of the service at `base`, signed with `secret` now
/// (the timestamp, a dot and the body under HMAC-SHA256, as tenure checks it).
pub async fn push_signed(base: &str, secret: &str, body: impl Into<Vec<u8>>) -> reqwest::Response {
    use hmac::{Hmac, Mac};
    let body = body.into();
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(&body);
    let sig: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    reqwest::Client::new()
        .post(format!("{base}/hr/v1/push"))
        .header("content-type", "application/json")
        .header("x-tenure-timestamp", ts.to_string())
        .header("x-tenure-signature", format!("sha256={sig}"))
        .body(body)
        .send()
        .await
        .unwrap()
}
