//! The command line acting through a running `tenure serve` as a platform user (`--server URL`
//! and an API token from TENURE_TOKEN or `--token-file`): the decision is the server's, made
//! as that user, so the four-eyes rule and the roles hold as in the console.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use store::Secret;

/// Where and as whom.
pub struct Remote {
    base: reqwest::Url,
    token: Secret,
    http: reqwest::Client,
}

/// What a failed call says: the server's problem detail, never the token.
fn problem(status: StatusCode, body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_default();
    let detail = v["detail"].as_str().map(str::to_string).unwrap_or_else(|| body.chars().take(300).collect());
    let mut out = format!("the server answered {status}: {detail}");
    for e in v["errors"].as_array().into_iter().flatten() {
        if let Some(w) = e["why"].as_str() {
            out.push_str(&format!("\n  {w}"));
        }
    }
    out
}

impl Remote {
    /// The server's address and the token: TENURE_TOKEN, else the first line of `token_file`.
    pub fn new(server: &str, token_file: Option<&Path>) -> Result<Remote, String> {
        let mut base = reqwest::Url::parse(server).map_err(|e| format!("--server {server:?}: {e}"))?;
        let loopback = match base.host_str() {
            Some(h) => {
                h.eq_ignore_ascii_case("localhost")
                    || h.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
            }
            None => false,
        };
        match base.scheme() {
            "https" => {}
            // The token would cross the network in clear.
            "http" if loopback => {}
            "http" => return Err(format!("--server {server:?}: https:// (plain http only to this machine)")),
            _ => return Err(format!("--server {server:?}: an https:// address")),
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(
                "--server: put no credentials in the address; the token comes from TENURE_TOKEN or --token-file".into(),
            );
        }
        base.set_path("/");
        base.set_query(None);
        let token = match (std::env::var("TENURE_TOKEN").ok().filter(|t| !t.trim().is_empty()), token_file) {
            (Some(t), _) => t,
            (None, Some(f)) => {
                let text =
                    std::fs::read_to_string(f).map_err(|e| format!("--token-file {}: {}", f.display(), e.kind()))?;
                text.lines().next().unwrap_or_default().to_string()
            }
            (None, None) => {
                return Err(
                    "--server needs an API token: TENURE_TOKEN, or --token-file PATH (tenure token create)".into()
                )
            }
        };
        let token = Secret::new(token.trim());
        if token.expose().is_empty() {
            return Err("the API token is empty".into());
        }
        // The address is the person's own choice (often this machine): no outbound policy, but
        // no redirects either, so the token goes to that server and nowhere else.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Remote { base, token, http })
    }

    async fn call(&self, method: Method, path: &str, body: Option<(&str, Vec<u8>)>) -> Result<Value, String> {
        let url = self.base.join(path.trim_start_matches('/')).map_err(|e| e.to_string())?;
        let mut req = self.http.request(method, url).bearer_auth(self.token.expose());
        if let Some((ctype, bytes)) = body {
            req = req.header("content-type", ctype).body(bytes);
        }
        // The error's own text would carry the URL, never the token: said without it anyway.
        let r = req.send().await.map_err(|e| format!("cannot reach {}: {}", self.base, e.without_url()))?;
        let status = r.status();
        let text = r.text().await.map_err(|e| e.without_url().to_string())?;
        if !status.is_success() {
            return Err(problem(status, &text));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> Result<Value, String> {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        self.call(Method::POST, path, Some(("application/json", body.to_string().into_bytes()))).await
    }

    pub async fn whoami(&self) -> Result<String, String> {
        let v = self.call(Method::GET, "/api/v1/whoami", None).await?;
        Ok(v["actor"].as_str().or(v["user"].as_str()).unwrap_or("?").to_string())
    }

    /// Approves or rejects through the server: its answer lines, and whether any was refused.
    pub async fn decide(
        &self,
        ids: &[i64],
        connection: Option<&str>,
        approve: bool,
        note: Option<&str>,
    ) -> Result<(Vec<String>, bool), String> {
        let v = self
            .post(
                "/api/v1/reviews/decisions",
                json!({"ids": ids, "approve": approve, "connection": connection, "note": note}),
            )
            .await?;
        let verb = if approve { "approved" } else { "rejected" };
        let mut lines = vec![];
        let decided = v["decided"].as_array().cloned().unwrap_or_default();
        for r in &decided {
            lines.push(format!(
                "#{} {verb}: worker {} ({}) on {:?}",
                r["id"],
                r["worker"].as_str().unwrap_or("?"),
                r["stage"].as_str().unwrap_or("?"),
                r["connection"].as_str().unwrap_or("?")
            ));
        }
        let refused = v["refused"].as_array().cloned().unwrap_or_default();
        for r in &refused {
            lines.push(format!("refused: {}", r["why"].as_str().unwrap_or("?")));
        }
        lines.push(format!("{} review(s) {verb} by {} through {}", decided.len(), self.whoami().await?, self.base));
        Ok((lines, !refused.is_empty()))
    }

    pub async fn retry(&self, workers: &[String], connection: Option<&str>) -> Result<u64, String> {
        let v = self.post("/api/v1/dead-letters/retry", json!({"workers": workers, "connection": connection})).await?;
        Ok(v["retried"].as_u64().unwrap_or(0))
    }

    /// Uploads an HR file: the server's outcome, or its refusal.
    pub async fn upload(
        &self,
        file: &PathBuf,
        json: bool,
        delta: bool,
        confirm_population: Option<usize>,
    ) -> Result<Value, String> {
        let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let mut path = format!("/api/v1/hr/uploads?kind={}", if delta { "delta" } else { "full" });
        if let Some(n) = confirm_population {
            path.push_str(&format!("&confirm_population={n}"));
        }
        let ctype = if json { "application/json" } else { "text/csv" };
        self.call(Method::POST, &path, Some((ctype, bytes))).await
    }

    /// Starts a run on a connection and follows it to its end: the run as the server last
    /// showed it.
    pub async fn apply(
        &self,
        connection: Option<&str>,
        workers: &[String],
        confirm: [Option<usize>; 3],
    ) -> Result<Value, String> {
        let [confirm_deprovision, confirm_team_removals, confirm_reactivation] = confirm;
        let name = match connection {
            Some(c) => c.to_string(),
            None => {
                let all = self.call(Method::GET, "/api/v1/connections", None).await?;
                let names: Vec<String> = all
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["name"].as_str().map(str::to_string))
                    .collect();
                match names.as_slice() {
                    [one] => one.clone(),
                    _ => {
                        return Err(format!(
                            "name the connection with --connection (the server has: {})",
                            names.join(", ")
                        ))
                    }
                }
            }
        };
        let path = format!("/api/v1/connections/{}/runs", service::names::percent_encode(&name));
        let started = self
            .post(
                &path,
                json!({"workers": workers, "confirm_deprovision": confirm_deprovision,
                    "confirm_team_removals": confirm_team_removals, "confirm_reactivation": confirm_reactivation}),
            )
            .await?;
        let id = started["run_id"].as_str().ok_or("the server gave no run id")?.to_string();
        loop {
            let r = self.call(Method::GET, &format!("/api/v1/runs/{id}"), None).await?;
            if !r["finished_at"].is_null() || r["refused"].is_string() {
                return Ok(r);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}
