//! `tenure connection add | list | test | rotate-token | remove`: the monday.com connection
//! page on the command line. Tokens come from a file or standard input, never from argv.

use clap::Subcommand;
use scim_client::{ClientConfig, InstanceUrl, ScimClient, Token, UrlPolicy};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use store::{MasterKey, NewConnection, Secret, Store};

#[derive(Subcommand)]
pub enum ConnectionCommand {
    /// Add a connection: name, Instance URL, and the access token (from --token-file or stdin).
    Add {
        /// Default: the next free "Connection-Bearer Token-N".
        #[arg(long)]
        name: Option<String>,
        /// company, company.monday.com, or the full SCIM URL (https://company.monday.com/scim/v2/).
        #[arg(long)]
        url: String,
        /// File holding the token; without it the token is read from standard input.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Allow plain http to a host other than this machine.
        #[arg(long)]
        insecure_http: bool,
        /// Allow private, link-local and metadata addresses.
        #[arg(long)]
        allow_private: bool,
        /// Save without testing the connection first.
        #[arg(long)]
        skip_test: bool,
        /// Requests per second tenure may send to the target, shared by all its work.
        #[arg(long, value_parser = positive)]
        rate_limit: Option<f64>,
        /// monday (monday.com's SCIM API) or generic (plain RFC 7643/7644); default: monday for
        /// a monday.com URL, generic otherwise.
        #[arg(long)]
        dialect: Option<scim::Dialect>,
    },
    /// List connections (tokens masked).
    List {
        /// One JSON array (name, url, dialect, token hint, rate limit, created, updated).
        #[arg(long)]
        json: bool,
    },
    /// Prove a connection works and show what the target supports.
    Test {
        /// The connection's name.
        name: String,
    },
    /// Replace a connection's token in one step, after testing the new one.
    RotateToken {
        /// The connection's name.
        name: String,
        /// File holding the new token; without it the token is read from standard input.
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Remove a connection (its sealed token goes with it).
    Remove {
        /// The connection's name.
        name: String,
    },
}

fn read_token(file: Option<&Path>) -> Result<Secret, String> {
    let text = match file {
        Some(p) => std::fs::read_to_string(p).map_err(|e| format!("cannot read token file {}: {e}", p.display()))?,
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprint!("Access token (monday.com Admin > Security > SCIM), then Enter: ");
                let _ = std::io::stderr().flush();
            }
            let mut line = String::new();
            stdin.lock().read_line(&mut line).map_err(|e| format!("cannot read the token from stdin: {e}"))?;
            line
        }
    };
    let t = text.trim();
    if t.is_empty() {
        return Err("the access token is empty".into());
    }
    Ok(Secret::new(t))
}

fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of requests per second")),
    }
}

fn permissions(dialect: &str) -> &'static str {
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
) -> Result<Vec<String>, String> {
    url.check_resolved(pol).await?;
    let mut cfg = ClientConfig::new(url.as_str(), dialect);
    cfg.retry.max_attempts = 3;
    cfg.requests_per_second = rate_limit;
    cfg.address_policy = pol;
    let client = ScimClient::new(cfg, Token::new(token.expose())).map_err(|e| e.to_string())?;
    let caps = client.test_connection().await.map_err(|e| e.to_string())?;
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
async fn stored(store: &Store, name: &str) -> Result<(store::ConnectionRecord, InstanceUrl, UrlPolicy), String> {
    let c = store.connection(name).await.map_err(|e| e.to_string())?.ok_or(format!("no connection named {name:?}"))?;
    let pol = policy(c.insecure_http, c.allow_private);
    let target = InstanceUrl::parse(&c.base_url, pol)?;
    Ok((c, target, pol))
}

pub async fn run(cmd: ConnectionCommand, data_dir: &Path, database_url: Option<&str>) -> Result<(), String> {
    let store = crate::config_cmd::open(data_dir, database_url).await?;
    let key = MasterKey::load(data_dir)?;
    let result = run_with(cmd, &store, &key).await;
    store.close().await;
    result
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
) -> Result<(store::ConnectionRecord, Vec<String>), String> {
    let pol = policy(r.insecure_http, r.allow_private);
    let target = InstanceUrl::parse(&r.url, pol)?;
    let dialect = r.dialect.unwrap_or(target.dialect());
    let name = match r.name {
        Some(n) if !n.trim().is_empty() => n.trim().to_string(),
        _ => store.next_connection_name().await.map_err(|e| e.to_string())?,
    };
    if store.connection(&name).await.map_err(|e| e.to_string())?.is_some() {
        return Err(format!("a connection named {name:?} exists already"));
    }
    let existing = store.connections().await.map_err(|e| e.to_string())?;
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
    let rec = store.add_connection(&new, &r.token, key).await.map_err(|e| e.to_string())?;
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
pub async fn test(store: &Store, key: &MasterKey, name: &str) -> Result<Vec<String>, String> {
    let (c, target, pol) = stored(store, name).await?;
    let token = key.open(&c.token, &c.id)?;
    test_target(&target, stored_dialect(&c, &target), &token, pol, c.rate_limit_per_second).await
}

/// Replaces a connection's token, once the new one works.
pub async fn rotate(
    store: &Store,
    key: &MasterKey,
    name: &str,
    token: &Secret,
    by: &str,
) -> Result<(store::ConnectionRecord, Vec<String>), String> {
    let (c, target, pol) = stored(store, name).await?;
    // The new token must work before the old one is replaced.
    test_target(&target, stored_dialect(&c, &target), token, pol, c.rate_limit_per_second)
        .await
        .map_err(|e| format!("the new token was not saved: {e}"))?;
    let rec = store.replace_token(name, token, key).await.map_err(|e| e.to_string())?;
    crate::decisions::record_one(
        store,
        "token_rotate",
        &rec.name,
        by,
        serde_json::json!({"token": format!("****{}", rec.token_hint)}),
    )
    .await?;
    let again = key.open(&rec.token, &rec.id)?;
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

async fn run_with(cmd: ConnectionCommand, store: &Store, key: &MasterKey) -> Result<(), String> {
    let by = crate::decisions::actor(None);
    match cmd {
        ConnectionCommand::Add {
            name,
            url,
            token_file,
            insecure_http,
            allow_private,
            skip_test,
            rate_limit,
            dialect,
        } => {
            let token = read_token(token_file.as_deref())?;
            let req = AddRequest { name, url, token, insecure_http, allow_private, skip_test, rate_limit, dialect };
            let (rec, report) = add(store, key, req, &by).await?;
            outln!("added {:?}: {} ({}), token ****{}", rec.name, rec.base_url, rec.dialect, rec.token_hint);
            if let Some(r) = rec.rate_limit_per_second {
                outln!("rate limit: {r} requests per second");
            }
            outln!("permissions: {}", permissions(&rec.dialect));
            for l in report {
                outln!("{l}");
            }
            Ok(())
        }
        ConnectionCommand::List { json: true } => {
            let all = store.connections().await.map_err(|e| e.to_string())?;
            let v: Vec<serde_json::Value> = all.iter().map(view).collect();
            outln!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
            Ok(())
        }
        ConnectionCommand::List { json: false } => {
            let all = store.connections().await.map_err(|e| e.to_string())?;
            if all.is_empty() {
                outln!("no connections; add one with: tenure connection add --url <Instance URL> --token-file <file>");
            }
            for c in all {
                let limit =
                    c.rate_limit_per_second.map(|r| format!("{r} req/s")).unwrap_or_else(|| "no rate limit".into());
                outln!(
                    "{}\t{}\t{}\ttoken ****{}\t{limit}\t{}",
                    c.name,
                    c.base_url,
                    c.dialect,
                    c.token_hint,
                    permissions(&c.dialect)
                );
            }
            Ok(())
        }
        ConnectionCommand::Test { name } => {
            for l in test(store, key, &name).await? {
                outln!("{l}");
            }
            Ok(())
        }
        ConnectionCommand::RotateToken { name, token_file } => {
            let token = read_token(token_file.as_deref())?;
            let (rec, report) = rotate(store, key, &name, &token, &by).await?;
            outln!("token of {:?} replaced: now ****{}", rec.name, rec.token_hint);
            for l in report {
                outln!("{l}");
            }
            Ok(())
        }
        ConnectionCommand::Remove { name } => {
            if store.remove_connection(&name).await.map_err(|e| e.to_string())? {
                crate::decisions::record_one(store, "connection_remove", &name, &by, serde_json::json!({})).await?;
                outln!("removed {name:?}");
                Ok(())
            } else {
                Err(format!("no connection named {name:?}"))
            }
        }
    }
}

/// The dialect a stored connection speaks: as saved (the configuration may set it), else as
/// its URL suggests.
fn stored_dialect(c: &store::ConnectionRecord, target: &InstanceUrl) -> scim::Dialect {
    c.dialect.parse().unwrap_or(target.dialect())
}
