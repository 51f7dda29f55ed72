//! `[hr.pull]`: the HR report fetched from its URL on a schedule (Workday RaaS, a BambooHR
//! custom report, an ADP export endpoint), under the outbound address policy, with its
//! credential sealed in the store, conditional requests so an unchanged report is not loaded
//! again, a timeout and a size cap. What it fetches goes through the one intake use case.

use crate::error::{Error, Result};
use crate::intake::{self, Delivery, Intake, LoadKind, Taken};
use jiff::Timestamp;
use rules::hr_source::{FeedFormat, FeedKind, PullAuth, PullSettings};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;
use store::{MasterKey, Secret, Store};

/// The setting (and sealing context) of the pull's password, token or client secret.
pub const SECRET: &str = "hr.pull.secret";
const ETAG: &str = "hr.pull.etag";
const LAST_MODIFIED: &str = "hr.pull.last_modified";
/// When the last pull was tried (unix seconds): the schedule survives restarts.
pub const LAST_AT: &str = "hr.pull.last_at";

/// What one pull did.
#[derive(Debug, Serialize)]
pub struct Pulled {
    pub summary: String,
    pub not_modified: bool,
    pub rejected: bool,
    pub load_id: Option<String>,
    pub events: usize,
    /// Values in the report that no role or team rule condition names, field by field.
    pub warnings: Vec<String>,
}

/// The URL as the history shows it: never its query (a report URL may carry a key in it).
fn shown(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

fn client(p: &PullSettings) -> Result<reqwest::Client> {
    let mut b = scim_client::outbound::client_builder(scim_client::UrlPolicy::default())
        .timeout(Duration::from_secs(p.timeout_seconds))
        .connect_timeout(Duration::from_secs(p.timeout_seconds.min(10)));
    if let Some(ca) = &p.ca_file {
        let pem = std::fs::read(ca).map_err(|e| Error::refused(format!("hr.pull.ca_file {ca}: {e}")))?;
        let cert =
            reqwest::Certificate::from_pem(&pem).map_err(|e| Error::refused(format!("hr.pull.ca_file {ca}: {e}")))?;
        b = b.add_root_certificate(cert);
    }
    b.build().map_err(|e| Error::refused(format!("cannot build the HTTP client: {e}")))
}

/// An OAuth 2.0 access token by the client credentials grant (RFC 6749 section 4.4), the
/// client authenticating with HTTP Basic as section 2.3.1 prefers.
async fn oauth_token(http: &reqwest::Client, p: &PullSettings, secret: &Secret) -> Result<String> {
    let url = p.token_url.as_deref().unwrap_or_default();
    let u = scim_client::outbound::parse_url(url).map_err(Error::input)?;
    scim_client::outbound::check_url(&u, scim_client::UrlPolicy::default()).map_err(Error::refused)?;
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(s) = &p.scope {
        form.push(("scope", s));
    }
    let r = http
        .post(u.clone())
        .basic_auth(p.client_id.as_deref().unwrap_or_default(), Some(secret.expose()))
        .form(&form)
        .send()
        .await
        .map_err(|e| Error::refused(format!("the token endpoint {}: {}", shown(&u), without_url(&e))))?;
    let status = r.status();
    if !status.is_success() {
        return Err(Error::refused(format!(
            "the token endpoint {} answered {status}: check client_id and the pull secret",
            shown(&u)
        )));
    }
    let v: serde_json::Value = r.json().await.map_err(|e| {
        Error::refused(format!("the token endpoint {} did not answer JSON: {}", shown(&u), without_url(&e)))
    })?;
    v["access_token"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| Error::refused(format!("the token endpoint {} gave no access_token", shown(&u))))
}

/// A client error without the URL reqwest puts in it (it may carry a query).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_redirect() {
        "redirected"
    } else {
        "failed"
    };
    let mut src = std::error::Error::source(e);
    let mut why = String::new();
    while let Some(s) = src {
        why = s.to_string();
        src = s.source();
    }
    if why.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {why}")
    }
}

/// Where the pull's secret goes: the report's server, and the token endpoint for OAuth 2.0.
pub fn destination(p: &rules::hr_source::PullSettings) -> String {
    match (&p.auth, &p.token_url) {
        (PullAuth::Oauth2, Some(t)) => crate::secrets::destination(&[&p.url, t]),
        _ => crate::secrets::destination(&[&p.url]),
    }
}

/// Fetches the report once and loads it; a 304 loads nothing.
pub async fn pull_once(
    store: &Store,
    key: &MasterKey,
    data_dir: &Path,
    hr: &rules::HrSettings,
    intake: &Intake,
) -> Result<Pulled> {
    let p = hr.pull.as_ref().ok_or_else(|| Error::not_found("no [hr.pull] in the configuration"))?;
    let _ = store.set_setting(LAST_AT, &Timestamp::now().as_second().to_string()).await;
    let url = scim_client::outbound::parse_url(&p.url).map_err(Error::input)?;
    scim_client::outbound::check_url(&url, scim_client::UrlPolicy::default()).map_err(Error::refused)?;
    let http = client(p)?;
    // The secret opens only for the addresses it was set for: a configuration that moved the
    // pull elsewhere gets an error here, and nothing is sent.
    let secret = crate::secrets::load_named_secret(store, key, SECRET, SECRET, &destination(p)).await;
    let need = |what: &str| match &secret {
        Ok(Some(s)) => Ok(s.clone()),
        Ok(None) => Err(Error::refused(format!("[hr.pull] auth = {what} needs its secret: `tenure hr pull-secret`"))),
        Err(e) => Err(Error::refused(format!("[hr.pull] auth = {what}: {e} (`tenure hr pull-secret`)"))),
    };
    let mut req = http.get(url.clone());
    req = match p.auth {
        PullAuth::None => req,
        PullAuth::Basic => req.basic_auth(p.username.as_deref().unwrap_or_default(), Some(need("basic")?.expose())),
        PullAuth::Bearer => req.bearer_auth(need("bearer")?.expose()),
        PullAuth::Oauth2 => req.bearer_auth(oauth_token(&http, p, &need("oauth2")?).await?),
    };
    if let Some(e) = store.setting(ETAG).await? {
        req = req.header(reqwest::header::IF_NONE_MATCH, e);
    }
    if let Some(m) = store.setting(LAST_MODIFIED).await? {
        req = req.header(reqwest::header::IF_MODIFIED_SINCE, m);
    }
    let at = shown(&url);
    let mut r = req.send().await.map_err(|e| Error::refused(format!("pulling {at}: {}", without_url(&e))))?;
    let status = r.status();
    if status == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(Pulled {
            summary: format!("{at}: not modified since the last pull; nothing loaded"),
            not_modified: true,
            rejected: false,
            load_id: None,
            events: 0,
            warnings: vec![],
        });
    }
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(Error::refused(format!("pulling {at}: the server refused the credentials ({status}): check [hr.pull] auth and `tenure hr pull-secret`")));
    }
    if !status.is_success() {
        return Err(Error::refused(format!("pulling {at}: the server answered {status}")));
    }
    if r.content_length().is_some_and(|n| n > p.max_bytes) {
        return Err(Error::refused(format!(
            "pulling {at}: the report is {} bytes, over max_bytes ({}); nothing loaded",
            r.content_length().unwrap_or_default(),
            p.max_bytes
        )));
    }
    let etag = r.headers().get(reqwest::header::ETAG).and_then(|v| v.to_str().ok()).map(String::from);
    let modified = r.headers().get(reqwest::header::LAST_MODIFIED).and_then(|v| v.to_str().ok()).map(String::from);
    // Read by chunks so an endless or oversized body stops at the cap, not at memory's end.
    let mut body = Vec::new();
    while let Some(chunk) = r.chunk().await.map_err(|e| Error::refused(format!("pulling {at}: {}", without_url(&e))))? {
        if body.len() as u64 + chunk.len() as u64 > p.max_bytes {
            return Err(Error::refused(format!(
                "pulling {at}: the report is over max_bytes ({}); nothing loaded",
                p.max_bytes
            )));
        }
        body.extend_from_slice(&chunk);
    }
    let d = Delivery {
        source: at.clone(),
        bytes: body,
        json: p.format == FeedFormat::Json,
        kind: if p.kind == FeedKind::Full { LoadKind::Full } else { LoadKind::Delta },
        confirm_population: None,
        supersede_loads: vec![],
        uploaded_by: Some("hr pull".into()),
    };
    let taken = intake::take(store, data_dir, intake, d, Timestamp::now()).await?;
    // Remembered either way: the same bytes would be refused again, and a fixed report has a
    // new ETag.
    if let Some(e) = etag {
        store.set_setting(ETAG, &e).await?;
    }
    if let Some(m) = modified {
        store.set_setting(LAST_MODIFIED, &m).await?;
    }
    Ok(match taken {
        Taken::Loaded { outcome, .. } => Pulled {
            summary: format!(
                "{at}: load {}: rows {}, accepted {}, quarantined {}, events {}",
                outcome.load_id,
                outcome.rows,
                outcome.accepted,
                outcome.quarantined,
                outcome.events.len()
            ),
            not_modified: false,
            rejected: false,
            events: outcome.events.len(),
            warnings: outcome.fields.as_ref().map(|f| f.warnings()).unwrap_or_default(),
            load_id: Some(outcome.load_id),
        },
        Taken::Rejected { load_id, reason, .. } => Pulled {
            summary: format!("{at}: rejected (load {load_id}): {reason}"),
            not_modified: false,
            rejected: true,
            load_id: Some(load_id),
            events: 0,
            warnings: vec![],
        },
    })
}

/// Whether the pull is due: never tried, or its interval has passed since the last try.
pub async fn due(store: &Store, p: &PullSettings, now: Timestamp) -> bool {
    let last = store.setting(LAST_AT).await.ok().flatten().and_then(|v| v.parse::<i64>().ok());
    last.is_none_or(|t| now.as_second() - t >= (p.interval_minutes * 60) as i64)
}
