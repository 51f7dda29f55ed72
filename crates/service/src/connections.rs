//! Connections: the monday.com connection page's use cases (add, list, test, replace the
//! token, remove), each token sealed under the master key and only ever sent to the URL the
//! admin stored with it; and the SCIM client a run uses to reach it.

use crate::error::{Error, Result};
use scim_client::{ClientConfig, InstanceUrl, RateLimiter, RetryPolicy, ScimClient, Token, UrlPolicy};
use std::collections::HashMap;
use std::sync::Arc;
use store::{MasterKey, NewConnection, Secret, Store};

pub fn permissions(dialect: &str) -> &'static str {
    match dialect {
        "monday" => "User: provision, deprovision, update; Team: provision, deprovision, rename, membership",
        _ => "User: provision, deprovision, update; Group: provision, deprovision, rename, membership",
    }
}

fn policy(insecure_http: bool, allow_private: bool) -> UrlPolicy {
    UrlPolicy { allow_insecure_http: insecure_http, allow_private }
}

/// Tests the target with a token; returns the lines of the report.
async fn test_target(
    url: &InstanceUrl,
    dialect: scim::Dialect,
    token: &Secret,
    pol: UrlPolicy,
    rate_limit: Option<f64>,
) -> Result<Vec<String>> {
    url.check_resolved(pol).await.map_err(Error::refused)?;
    let mut cfg = ClientConfig::new(url.as_str(), dialect);
    cfg.retry.max_attempts = 3;
    cfg.requests_per_second = rate_limit;
    cfg.address_policy = pol;
    let client = ScimClient::new(cfg, Token::new(token.expose())).map_err(|e| Error::input(e.to_string()))?;
    let caps = client.test_connection().await?;
    let yes = |b: bool| if b { "yes" } else { "no" };
    let mut lines = vec![format!("connection works: {url} ({dialect} dialect)")];
    lines.push(format!(
        "supports (from {}): filter {}, PATCH {}, ETags {}, bulk {}, sort {}{}",
        caps.source,
        yes(caps.filter),
        yes(caps.patch),
        yes(caps.etag),
        yes(caps.bulk),
        yes(caps.sort),
        caps.max_results.map(|m| format!(", max results {m}")).unwrap_or_default()
    ));
    if let Some(n) = caps.users {
        lines.push(format!("users visible to the token: {n}"));
    }
    Ok(lines)
}

/// An Instance URL as it would be saved (`company` becomes
/// `https://company.monday.com/scim/v2/`), with its dialect; or why it cannot be one.
pub fn normalise(url: &str, insecure_http: bool, allow_private: bool) -> Result<(String, scim::Dialect)> {
    let u = InstanceUrl::parse(url, policy(insecure_http, allow_private)).map_err(Error::input)?;
    Ok((u.to_string(), u.dialect()))
}

/// How one step of a connection test ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepResult {
    Passed,
    Failed,
    /// Not tried: an earlier step failed.
    Skipped,
}

/// One step of a connection test as the console shows it: what was checked, what was found,
/// and on failure what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Step {
    pub name: &'static str,
    pub result: StepResult,
    pub detail: String,
    pub fix: Option<String>,
}

/// The steps of a connection test, in the order they are taken.
pub const STEPS: [&str; 6] =
    ["Address allowed", "TLS", "Authentication", "ServiceProviderConfig", "What the token may do", "Users visible"];

/// A connection test, step by step.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Checked {
    /// The Instance URL as it would be saved (normalised), when it reads as one.
    pub url: Option<String>,
    /// The dialect it speaks: monday for monday.com and for tenure's sandbox (which behaves
    /// as monday.com does), else as the URL says.
    #[serde(serialize_with = "dialect_name")]
    pub dialect: Option<scim::Dialect>,
    pub steps: Vec<Step>,
}

impl Checked {
    pub fn passed(&self) -> bool {
        self.steps.iter().all(|s| s.result == StepResult::Passed)
    }
}

fn dialect_name<S: serde::Serializer>(d: &Option<scim::Dialect>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&d.to_string()),
        None => s.serialize_none(),
    }
}

struct Steps(Vec<Step>);

impl Steps {
    fn pass(&mut self, detail: impl Into<String>) {
        let name = STEPS[self.0.len()];
        self.0.push(Step { name, result: StepResult::Passed, detail: detail.into(), fix: None });
    }
    /// This step failed; the ones after it are not tried.
    fn fail(mut self, detail: impl Into<String>, fix: impl Into<String>) -> Vec<Step> {
        let name = STEPS[self.0.len()];
        self.0.push(Step { name, result: StepResult::Failed, detail: detail.into(), fix: Some(fix.into()) });
        while self.0.len() < STEPS.len() {
            let name = STEPS[self.0.len()];
            self.0.push(Step { name, result: StepResult::Skipped, detail: "not tried".into(), fix: None });
        }
        self.0
    }
}

/// Where a failed call stopped: the step it belongs to (1 TLS, 2 authentication, 4 rights),
/// what happened and the fix in words.
fn failed_call(e: &scim_client::ClientError, url: &InstanceUrl) -> (usize, String, String) {
    use scim_client::{ClientError as C, TransportKind as T};
    let host = url.as_str().split('/').nth(2).unwrap_or_default().to_string();
    match e {
        C::RetriesExhausted { last, .. } => failed_call(last, url),
        C::Stopped(why) => (1, why.clone(), "try again: another run or node holds the connection".into()),
        C::Transport { kind: T::Tls, message, .. } => (
            1,
            format!("the TLS handshake with {host} failed: {message}"),
            "the server's certificate is not one this machine trusts, or a proxy intercepts the connection:              check the address, or ask your network team about TLS inspection"
                .into(),
        ),
        C::Transport { kind: T::Dns, message, .. } => (
            1,
            format!("{host} could not be found: {message}"),
            "check the account name in the Instance URL (Admin > Security > SCIM in monday.com shows it)".into(),
        ),
        C::Transport { kind, message, .. } => (
            1,
            format!("{host} could not be reached ({kind:?}): {message}"),
            "check the address and that this machine may reach it (firewall, proxy)".into(),
        ),
        C::Redirect { location, .. } => (
            1,
            format!("{host} answered with a redirect to {location}, which is never followed"),
            "give the SCIM base URL itself, not the sign-in address".into(),
        ),
        C::Http { status: 401, .. } => (
            2,
            "the target refused the token (401)".into(),
            "generate a new token in monday.com (Admin > Security > SCIM > Generate) and paste it whole".into(),
        ),
        C::Http { status: 403, detail, .. } => (
            4,
            format!("the token was accepted but may not list users (403): {detail}"),
            "the token must belong to an admin with \"User: Can Provision and Deprovision Users\"".into(),
        ),
        C::Http { status: 404, .. } => (
            3,
            format!("{} answered 404: this is not a SCIM base URL", url.as_str()),
            "monday.com's is https://<account>.monday.com/scim/v2/".into(),
        ),
        C::Http { status, detail, .. } => (
            2,
            format!("the target answered {status}: {detail}"),
            "try again in a moment; if it persists, the target's status page may say why".into(),
        ),
        C::Invalid(m) => (3, m.clone(), "check that the Instance URL is the SCIM base URL".into()),
        C::Config(m) => (0, m.clone(), "check the Instance URL".into()),
    }
}

/// Tests an Instance URL and a token step by step (nothing is saved): the address and what it
/// resolves to, TLS, the token, the discovery document, what the token may do, the users it
/// sees. Every failure says what to do.
pub async fn check(
    url: &str,
    token: &Secret,
    insecure_http: bool,
    allow_private: bool,
    rate_limit: Option<f64>,
) -> Checked {
    let pol = policy(insecure_http, allow_private);
    let mut steps = Steps(vec![]);
    let target = match InstanceUrl::parse(url, pol) {
        Ok(t) => t,
        Err(e) => {
            let fix = "give company, company.monday.com or https://company.monday.com/scim/v2/";
            return Checked { url: None, dialect: None, steps: steps.fail(e, fix) };
        }
    };
    let shown = Some(target.to_string());
    let mut dialect = Some(target.dialect());
    if let Err(e) = target.check_resolved(pol).await {
        let fix = "a connection may only reach public addresses unless an admin allows private ones";
        return Checked { url: shown, dialect, steps: steps.fail(e, fix) };
    }
    let host = target.as_str().split('/').nth(2).unwrap_or_default().to_string();
    let local = host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]");
    steps.pass(if local {
        format!("{host} is this machine (a sandbox), which a connection may reach")
    } else {
        format!("{host} resolves to public addresses only")
    });
    let tls = if target.as_str().starts_with("https://") {
        "the server's certificate is trusted".to_string()
    } else {
        format!("plain http, allowed only to this machine or with the insecure option: {host}")
    };
    let mut cfg = ClientConfig::new(target.as_str(), target.dialect());
    cfg.retry.max_attempts = 2;
    cfg.requests_per_second = rate_limit;
    cfg.address_policy = pol;
    let client = match ScimClient::new(cfg, Token::new(token.expose())) {
        Ok(c) => c,
        Err(e) => return Checked { url: shown, dialect, steps: steps.fail(e.to_string(), "check the Instance URL") },
    };
    let fail = |steps: Steps, e: &scim_client::ClientError| {
        let (at, detail, fix) = failed_call(e, &target);
        let mut steps = steps;
        while steps.0.len() < at {
            let said = if steps.0.len() == 1 { tls.clone() } else { "passed".into() };
            steps.pass(said);
        }
        steps.fail(detail, fix)
    };
    let spc = match client.service_provider_config().await {
        Ok(spc) => spc,
        Err(e) => return Checked { url: shown.clone(), dialect, steps: fail(steps, &e) },
    };
    steps.pass(tls.clone());
    if spc.as_ref().is_some_and(|s| s.documentation_uri.as_deref() == Some(scim::SANDBOX_MARKER)) {
        dialect = Some(scim::Dialect::Monday);
    }
    let users = match client.test_connection().await {
        Ok(caps) => caps,
        Err(e) => return Checked { url: shown.clone(), dialect, steps: fail(steps, &e) },
    };
    steps.pass("the token was accepted");
    steps.pass(match &spc {
        Some(c) => format!(
            "published: PATCH {}, filter {}, ETags {}, bulk {}",
            yes(c.patch.supported),
            yes(c.filter.supported),
            yes(c.etag.supported),
            yes(c.bulk.supported)
        ),
        None => "not published; monday.com's known behaviour is assumed (PATCH and filter, no bulk)".into(),
    });
    steps.pass(format!(
        "lists users; provisioning rights come with the token: {}",
        permissions(&target.dialect().to_string())
    ));
    steps.pass(match users.users {
        Some(n) => format!("{n} user(s) visible to the token"),
        None => "the target does not say how many".into(),
    });
    Checked { url: shown, dialect, steps: steps.0 }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// Tests a stored connection step by step, with its sealed token.
pub async fn check_stored(store: &Store, key: &MasterKey, name: &str) -> Result<Checked> {
    let c = store.connection(name).await?.ok_or_else(|| Error::not_found(format!("no connection named {name:?}")))?;
    let token = key.open(&c.token, &c.id).map_err(Error::refused)?;
    Ok(check(&c.base_url, &token, c.insecure_http, c.allow_private, c.rate_limit_per_second).await)
}

/// A stored connection with its target and policy, as saved.
async fn stored(store: &Store, name: &str) -> Result<(store::ConnectionRecord, InstanceUrl, UrlPolicy)> {
    let c = store.connection(name).await?.ok_or_else(|| Error::not_found(format!("no connection named {name:?}")))?;
    let pol = policy(c.insecure_http, c.allow_private);
    let target = InstanceUrl::parse(&c.base_url, pol).map_err(Error::input)?;
    Ok((c, target, pol))
}

/// A new connection as asked for (the CLI's flags, the API's body).
pub struct AddRequest {
    pub name: Option<String>,
    pub url: String,
    pub token: Secret,
    pub insecure_http: bool,
    pub allow_private: bool,
    pub skip_test: bool,
    pub rate_limit: Option<f64>,
    pub dialect: Option<scim::Dialect>,
}

/// Adds a connection after its test passes (the token is sealed; never stored in clear).
/// Returns it with the test's report.
pub async fn add(
    store: &Store,
    key: &MasterKey,
    r: AddRequest,
    by: &str,
) -> Result<(store::ConnectionRecord, Vec<String>)> {
    let pol = policy(r.insecure_http, r.allow_private);
    let target = InstanceUrl::parse(&r.url, pol).map_err(Error::input)?;
    let dialect = r.dialect.unwrap_or(target.dialect());
    let name = match r.name {
        Some(n) if !n.trim().is_empty() => n.trim().to_string(),
        _ => store.next_connection_name().await?,
    };
    if store.connection(&name).await?.is_some() {
        return Err(Error::conflict(format!("a connection named {name:?} exists already")));
    }
    let existing = store.connections().await?;
    crate::names::check_new(crate::names::Kind::Connection, &name, existing.iter().map(|c| c.name.as_str()))?;
    let report = if r.skip_test {
        vec!["not tested (--skip-test)".to_string()]
    } else {
        test_target(&target, dialect, &r.token, pol, r.rate_limit).await?
    };
    let new = NewConnection {
        name: name.clone(),
        base_url: target.to_string(),
        dialect: dialect.to_string(),
        insecure_http: r.insecure_http,
        allow_private: r.allow_private,
        rate_limit_per_second: r.rate_limit,
    };
    let rec = store.add_connection(&new, &r.token, key).await?;
    crate::decisions::record_one(
        store,
        "connection_add",
        &rec.name,
        by,
        serde_json::json!({"url": rec.base_url, "dialect": rec.dialect, "token": format!("****{}", rec.token_hint)}),
    )
    .await?;
    Ok((rec, report))
}

/// Tests a stored connection: its address, then a call with its token; the report's lines.
pub async fn test(store: &Store, key: &MasterKey, name: &str) -> Result<Vec<String>> {
    let (c, target, pol) = stored(store, name).await?;
    let token = key.open(&c.token, &c.id).map_err(Error::refused)?;
    let mut lines = test_target(&target, stored_dialect(&c, &target), &token, pol, c.rate_limit_per_second).await?;
    // The configuration in force may expect another dialect than the one stored.
    if let Ok(rules) = crate::config::current(store).await {
        lines.extend(dialect_mismatch(&rules.config, std::slice::from_ref(&c)));
    }
    Ok(lines)
}

/// Connections whose stored dialect is not the one the configuration gives them, each said with
/// the fix: requests are shaped by the stored dialect, the mappings checked against the
/// configuration's.
pub fn dialect_mismatch(cfg: &rules::Config, stored: &[store::ConnectionRecord]) -> Vec<String> {
    cfg.connections
        .iter()
        .filter_map(|c| {
            let s = stored.iter().find(|s| s.name == c.name)?;
            (s.dialect != c.dialect).then(|| {
                format!(
                    "warning: connection {:?} is stored with dialect {:?}, the configuration says {:?}: tenure talks \
                     to it as {:?} while its mappings are checked as {:?}. Fix: `tenure connection set {:?} --dialect \
                     {}` (or `tenure config import` of the file, which sets it), or write dialect = {:?} in the file",
                    c.name, s.dialect, c.dialect, s.dialect, c.dialect, c.name, c.dialect, s.dialect
                )
            })
        })
        .collect()
}

/// What `tenure connection set` changes; None: kept as stored.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub url: Option<String>,
    pub dialect: Option<scim::Dialect>,
    pub rate_limit: Option<f64>,
    /// Some(true) allows plain http (a sandbox, a test target); Some(false) forbids it again.
    pub insecure_http: Option<bool>,
    pub allow_private: Option<bool>,
}

/// Changes a connection's settings in place, without removing it (its links, token and history
/// stay). A new address is checked by the outbound address policy and tested with the stored
/// token before it is saved; the change is audited. Answers what changed, in words.
pub async fn set(store: &Store, key: &MasterKey, name: &str, to: &Settings, by: &str) -> Result<Vec<String>> {
    let c = store.connection(name).await?.ok_or_else(|| Error::not_found(format!("no connection named {name:?}")))?;
    let insecure = to.insecure_http.unwrap_or(c.insecure_http);
    let private = to.allow_private.unwrap_or(c.allow_private);
    if to.rate_limit.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return Err(Error::input("--rate-limit: a number of requests a second above 0"));
    }
    let url = match &to.url {
        Some(u) => normalise(u, insecure, private)?.0,
        None => {
            // The address stored must still pass a policy made stricter.
            normalise(&c.base_url, insecure, private)?;
            c.base_url.clone()
        }
    };
    let dialect = to.dialect.map_or_else(|| c.dialect.clone(), |d| d.as_str().to_string());
    let rate = to.rate_limit.or(c.rate_limit_per_second);
    let mut changed = vec![];
    if url != c.base_url {
        changed.push(format!("url {} -> {url}", c.base_url));
    }
    if dialect != c.dialect {
        changed.push(format!("dialect {} -> {dialect}", c.dialect));
    }
    if rate != c.rate_limit_per_second {
        let r = |x: Option<f64>| x.map_or_else(|| "none".to_string(), |v| format!("{v} req/s"));
        changed.push(format!("rate limit {} -> {}", r(c.rate_limit_per_second), r(rate)));
    }
    if insecure != c.insecure_http {
        changed.push(format!("plain http {}", if insecure { "allowed" } else { "refused" }));
    }
    if private != c.allow_private {
        changed.push(format!("private addresses {}", if private { "allowed" } else { "refused" }));
    }
    if changed.is_empty() {
        return Ok(vec![format!("connection {name:?}: nothing to change")]);
    }
    let mut lines = vec![];
    if url != c.base_url {
        // The stored token goes only where an admin points it, and only once it works there.
        let pol = policy(insecure, private);
        let target = InstanceUrl::parse(&url, pol).map_err(Error::input)?;
        let token = key.open(&c.token, &c.id).map_err(Error::refused)?;
        let d: scim::Dialect = dialect.parse().unwrap_or(target.dialect());
        lines = test_target(&target, d, &token, pol, rate).await.map_err(|e| {
            Error::refused(format!("connection {name:?}: {url} did not pass the test, nothing was changed: {e}"))
        })?;
    }
    store.update_connection_settings(name, &url, &dialect, rate).await?;
    if insecure != c.insecure_http || private != c.allow_private {
        store.update_connection_policy(name, insecure, private).await?;
    }
    crate::decisions::record_one(store, "connection_set", name, by, serde_json::json!({"changed": changed})).await?;
    lines.insert(0, format!("connection {name:?}: {}", changed.join(", ")));
    Ok(lines)
}

/// Replaces a connection's token, once the new one works.
pub async fn rotate(
    store: &Store,
    key: &MasterKey,
    name: &str,
    token: &Secret,
    by: &str,
) -> Result<(store::ConnectionRecord, Vec<String>)> {
    let (c, target, pol) = stored(store, name).await?;
    // The new token must work before the old one is replaced.
    test_target(&target, stored_dialect(&c, &target), token, pol, c.rate_limit_per_second)
        .await
        .map_err(|e| Error::refused(format!("the new token was not saved: {e}")))?;
    let rec = store.replace_token(name, token, key).await?;
    crate::decisions::record_one(
        store,
        "token_rotate",
        &rec.name,
        by,
        serde_json::json!({"token": format!("****{}", rec.token_hint)}),
    )
    .await?;
    let again = key.open(&rec.token, &rec.id).map_err(Error::refused)?;
    let report = test_target(&target, stored_dialect(&c, &target), &again, pol, c.rate_limit_per_second).await?;
    Ok((rec, report))
}

/// Pauses a connection: scheduled runs pass it by until it is resumed (a run a person
/// starts still goes). Audited with who did it.
pub async fn pause(store: &Store, name: &str, by: &str) -> Result<()> {
    set_paused(store, name, Some(by), by).await
}

/// Resumes a paused connection. Audited.
pub async fn resume(store: &Store, name: &str, by: &str) -> Result<()> {
    set_paused(store, name, None, by).await
}

async fn set_paused(store: &Store, name: &str, paused_by: Option<&str>, by: &str) -> Result<()> {
    if !store.set_connection_paused(name, paused_by).await? {
        return Err(Error::not_found(format!("no connection named {name:?}")));
    }
    let kind = if paused_by.is_some() { "connection_pause" } else { "connection_resume" };
    crate::decisions::record_one(store, kind, name, by, serde_json::json!({})).await?;
    Ok(())
}

/// What removing a connection did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// Links to accounts tenure keeps: a connection added again under the same name takes
    /// them up, so nothing is created twice.
    pub links_kept: usize,
}

/// What removing a connection leaves, said before it is done (and after).
pub fn removal_consequences(links: usize) -> String {
    format!(
        "The accounts in the target are left as they are: nothing is deactivated or deleted. The sealed token is \
         erased. tenure keeps its {links} link(s) between workers and accounts, so a connection added again under \
         the same name takes them up without creating anyone twice. Scheduled runs stop for it at once."
    )
}

/// How many links a connection has (what `remove` keeps).
pub async fn links(store: &Store, name: &str) -> Result<usize> {
    Ok(store.link_count(name).await?)
}

/// Removes a connection: its token is erased, its links kept. Audited. A connection with
/// linked accounts goes only when its name is given again (`confirm`): a slip of the finger
/// must not stop the deprovisioning of every leaver it manages.
pub async fn remove(store: &Store, name: &str, by: &str, confirm: Option<&str>) -> Result<Removed> {
    let links_kept = links(store, name).await?;
    if store.connection(name).await?.is_none() {
        return Err(Error::not_found(format!("no connection named {name:?}")));
    }
    if links_kept > 0 && confirm.map(str::trim) != Some(name) {
        return Err(Error::refused(format!(
            "connection {name:?} manages {links_kept} linked account(s); nothing was removed. {} Leavers of those \
             accounts are not deactivated while it is gone. To remove it, give its name again: --confirm {name:?} \
             (API: ?confirm=)",
            removal_consequences(links_kept)
        )));
    }
    if !store.remove_connection(name).await? {
        return Err(Error::not_found(format!("no connection named {name:?}")));
    }
    crate::decisions::record_one(store, "connection_remove", name, by, serde_json::json!({"links_kept": links_kept}))
        .await?;
    Ok(Removed { links_kept })
}

/// A connection as listed: the token only as its last four characters.
pub fn view(c: &store::ConnectionRecord) -> serde_json::Value {
    serde_json::json!({"name": c.name, "url": c.base_url, "dialect": c.dialect,
        "token": format!("****{}", c.token_hint), "rate_limit_per_second": c.rate_limit_per_second,
        "insecure_http": c.insecure_http, "allow_private": c.allow_private,
        "permissions": permissions(&c.dialect), "created_at": c.created_at, "updated_at": c.updated_at,
        "paused": c.paused.as_ref().map(|(at, by)| serde_json::json!({"at": at, "by": by}))})
}

/// The dialect a stored connection speaks: as saved (the configuration may set it), else as
/// its URL suggests.
fn stored_dialect(c: &store::ConnectionRecord, target: &InstanceUrl) -> scim::Dialect {
    c.dialect.parse().unwrap_or(target.dialect())
}

/// What `point_at_sandbox` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pointed {
    Added,
    /// The connection pointed elsewhere (a sandbox started on another port before).
    Moved,
    Same,
}

/// The quickstart's connection to its own sandbox at `url`: added with `token` the first
/// time, moved when the sandbox listens elsewhere now, else left as it is.
pub async fn point_at_sandbox(
    store: &Store,
    key: &MasterKey,
    name: &str,
    url: &str,
    token: &Secret,
) -> Result<Pointed> {
    match store.connection(name).await? {
        None => {
            let c = NewConnection {
                name: name.into(),
                base_url: url.into(),
                dialect: "monday".into(),
                insecure_http: false,
                allow_private: false,
                rate_limit_per_second: None,
            };
            store.add_connection(&c, token, key).await?;
            Ok(Pointed::Added)
        }
        Some(c) if c.base_url != url => {
            store.update_connection_settings(name, url, "monday", c.rate_limit_per_second).await?;
            Ok(Pointed::Moved)
        }
        Some(_) => Ok(Pointed::Same),
    }
}

/// A client for a stored connection, built as `tenure connection test` builds it.
pub async fn client_for(store: &Store, key: &MasterKey, name: &str) -> Result<ScimClient> {
    client_at(store, key, name, RetryPolicy::default(), false).await
}

/// A client for a stored connection. It speaks only to the URL stored with the connection:
/// no caller can point the stored token anywhere else (a configuration naming another URL
/// is checked against the saved schema instead, and saved only with an Admin's confirmation).
pub async fn client_at(
    store: &Store,
    key: &MasterKey,
    name: &str,
    retry: RetryPolicy,
    allow_delete: bool,
) -> Result<ScimClient> {
    let c = store.connection(name).await?.ok_or_else(|| {
        Error::not_found(format!("no connection named {name:?}: add it with `tenure connection add --name {name:?}`"))
    })?;
    let policy = UrlPolicy { allow_insecure_http: c.insecure_http, allow_private: c.allow_private };
    let url = InstanceUrl::parse(&c.base_url, policy).map_err(Error::input)?;
    url.check_resolved(policy).await.map_err(Error::refused)?;
    let token = key.open(&c.token, &c.id).map_err(Error::refused)?;
    let dialect = c.dialect.parse().unwrap_or(url.dialect());
    let mut cfg = ClientConfig::new(url.as_str(), dialect);
    cfg.requests_per_second = c.rate_limit_per_second;
    let (limiter, fresh) = pace_of(name, url.as_str(), c.rate_limit_per_second);
    if fresh {
        // A process's first client of a connection starts where its last run ended, rather
        // than learn the target's limit again from a burst of refusals.
        if let Some(pace) = last_pace(store, name, url.as_str()).await {
            limiter.start_at(pace);
        }
    }
    cfg.limiter = Some(limiter);
    cfg.page_size = 1000;
    cfg.retry = retry;
    cfg.allow_delete = allow_delete;
    cfg.address_policy = policy;
    // No request may outlast the time a run's lease guarantees it (--request-timeout).
    cfg.timeout = crate::run_lock::settings().request_timeout;
    ScimClient::new(cfg, Token::new(token.expose())).map_err(|e| Error::input(e.to_string()))
}

/// Each connection's pace in this process, by name: what one run learned of the target's
/// limit the next run starts from, and the metrics show.
static PACES: std::sync::LazyLock<std::sync::Mutex<Paces>> = std::sync::LazyLock::new(Default::default);

/// By connection name: the URL the pace was learned at, and the pace.
type Paces = HashMap<String, (String, Arc<RateLimiter>)>;

/// The pace shared by the runs of a connection, and whether it is new (none yet in this
/// process, or its URL or ceiling changed).
fn pace_of(name: &str, url: &str, ceiling: Option<f64>) -> (Arc<RateLimiter>, bool) {
    let mut paces = PACES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((u, l)) = paces.get(name) {
        if u == url && l.ceiling() == ceiling.filter(|r| r.is_finite() && *r > 0.0) {
            return (l.clone(), false);
        }
    }
    let l = Arc::new(RateLimiter::adaptive(ceiling));
    paces.insert(name.to_string(), (url.to_string(), l.clone()));
    (l, true)
}

/// The pace the connection's last finished run learned, as its record keeps it, when it was
/// learned at this URL.
async fn last_pace(store: &Store, name: &str, url: &str) -> Option<f64> {
    // The newest few: the run being prepared may be the newest, without a summary yet.
    let runs = store.runs(Some(name), 3).await.ok()?;
    let summary: serde_json::Value = runs.iter().find_map(|r| serde_json::from_str(r.summary.as_deref()?).ok())?;
    let scim = &summary["scim"];
    let at = scim["pace_at"].as_str()?;
    (at.trim_end_matches('/') == url.trim_end_matches('/')).then(|| scim["pace_per_second"].as_f64()).flatten()
}

/// The pace in force towards each connection's target, requests per second, for those with
/// one (a limit learned or a ceiling set), by name.
pub fn paces() -> Vec<(String, f64)> {
    let paces = PACES.lock().unwrap_or_else(|p| p.into_inner());
    let mut all: Vec<(String, f64)> = paces.iter().filter_map(|(n, (_, l))| Some((n.clone(), l.rate()?))).collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// Whether a target is tenure's own sandbox (its ServiceProviderConfig says so).
pub async fn is_sandbox(client: &ScimClient) -> Result<bool> {
    match client.service_provider_config().await {
        Ok(spc) => Ok(spc.is_some_and(|s| s.documentation_uri.as_deref() == Some(scim::SANDBOX_MARKER))),
        Err(e) => Err(Error::refused(format!("cannot tell whether {} is tenure's sandbox: {e}", client.base_url()))),
    }
}
