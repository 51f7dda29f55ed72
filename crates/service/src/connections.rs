//! Connections: the monday.com connection page's use cases (add, list, test, replace the
//! token, remove), each token sealed under the master key and only ever sent to the URL the
//! admin stored with it; and the SCIM client a run uses to reach it.

use crate::error::{Error, Result};
use scim_client::{ClientConfig, InstanceUrl, RetryPolicy, ScimClient, Token, UrlPolicy};
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
    test_target(&target, stored_dialect(&c, &target), &token, pol, c.rate_limit_per_second).await
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

/// A connection as listed: the token only as its last four characters.
pub fn view(c: &store::ConnectionRecord) -> serde_json::Value {
    serde_json::json!({"name": c.name, "url": c.base_url, "dialect": c.dialect,
        "token": format!("****{}", c.token_hint), "rate_limit_per_second": c.rate_limit_per_second,
        "insecure_http": c.insecure_http, "allow_private": c.allow_private,
        "permissions": permissions(&c.dialect), "created_at": c.created_at, "updated_at": c.updated_at})
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
    cfg.page_size = 1000;
    cfg.retry = retry;
    cfg.allow_delete = allow_delete;
    cfg.address_policy = policy;
    ScimClient::new(cfg, Token::new(token.expose())).map_err(|e| Error::input(e.to_string()))
}

/// Whether a target is tenure's own sandbox (its ServiceProviderConfig says so).
pub async fn is_sandbox(client: &ScimClient) -> Result<bool> {
    match client.service_provider_config().await {
        Ok(spc) => Ok(spc.is_some_and(|s| s.documentation_uri.as_deref() == Some(scim::SANDBOX_MARKER))),
        Err(e) => Err(Error::refused(format!("cannot tell whether {} is tenure's sandbox: {e}", client.base_url()))),
    }
}
