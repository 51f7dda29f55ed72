//! The sandbox: a SCIM 2.0 service provider (RFC 7643/7644) that behaves as monday.com's SCIM
//! API does, or as a plain RFC server with `Dialect::Generic`. tenure's quickstart and
//! end-to-end tests provision into it, and users try their rules on it before production.
//! Resources are served from memory and written through to SQLite; see `store`.

pub mod faults;
mod http;
pub mod store;

pub use faults::Faults;
pub use http::{router, App};

use scim::Dialect;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use store::{Kind, Store};

/// Bounds on what one request may ask for.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    /// The most resources one page returns (`count` above it is lowered to it).
    pub max_results: usize,
    pub max_filter_depth: usize,
    /// Comparisons one filter may hold.
    pub max_filter_terms: usize,
    pub max_filter_bytes: usize,
    pub max_bulk_operations: usize,
    /// Operations one PATCH may carry: a PATCH holds the writer while it applies.
    pub max_patch_operations: usize,
    /// The ServiceProviderConfig says this is tenure's sandbox (`SANDBOX_MARKER`): tenure
    /// rehearses (`apply --as-of`, `run --rehearse-from`) only against a target that does.
    pub sandbox_marker: bool,
    /// Keep every request's method, path, answer and times, with the node and lease epoch
    /// tenure tagged it with, for `GET /_sandbox/history` (a test's checker reads it).
    pub record_history: bool,
}

/// The `documentationUri` by which tenure knows its own sandbox.
pub use scim::SANDBOX_MARKER;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            max_results: 1000,
            max_filter_depth: 16,
            max_filter_terms: scim::filter::DEFAULT_MAX_TERMS,
            max_filter_bytes: scim::filter::DEFAULT_MAX_BYTES,
            max_bulk_operations: 1000,
            max_patch_operations: 1000,
            sandbox_marker: true,
            record_history: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// None keeps everything in memory.
    pub db: Option<PathBuf>,
    pub dialect: Dialect,
    /// Users (and teams) to preload as if invited by hand, hidden from SCIM lists.
    pub seed: Option<PathBuf>,
    /// The bearer token to accept; when None, the one stored in the database, or a new one.
    pub token: Option<String>,
    pub faults: Faults,
    pub limits: Limits,
    /// Extra User schema extensions to store and publish, as a target with custom
    /// attributes would (RFC 7643 §3.3).
    pub user_extensions: Vec<scim::schema::Schema>,
}

/// A sandbox ready to serve.
pub struct Prepared {
    pub app: Arc<App>,
    /// Set when the sandbox made a token up: the caller shows it once.
    pub new_token: Option<String>,
    pub seeded: usize,
}

pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A random token of 256 bits, URL-safe.
pub fn generate_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("sbx_{}", hex(&b))
}

/// Opens the store, settles the token (only its hash is kept) and loads the seed file.
pub async fn prepare(cfg: &Config) -> Result<Prepared, String> {
    let mut store = Store::open(cfg.db.as_deref(), cfg.dialect)?;
    for ext in &cfg.user_extensions {
        let taken = store.users.core.id == ext.id || store.users.extensions.iter().any(|e| e.id == ext.id);
        if taken {
            return Err(format!("the user schema extension {} is already published", ext.id));
        }
        store.users.extensions.push(ext.clone());
    }
    let mut new_token = None;
    let hash = match (&cfg.token, store.setting("token_sha256").and_then(|h| unhex(&h))) {
        (Some(t), _) => {
            if t.trim().is_empty() {
                return Err("the sandbox token is empty".into());
            }
            let h = token_hash(t.trim());
            store.set_setting("token_sha256", &hex(&h))?;
            h
        }
        (None, Some(h)) => h,
        (None, None) => {
            let t = generate_token();
            let h = token_hash(&t);
            store.set_setting("token_sha256", &hex(&h))?;
            new_token = Some(t);
            h
        }
    };
    let seeded = match &cfg.seed {
        Some(p) => seed(&store, p).await?,
        None => 0,
    };
    let app = Arc::new(App::new(store, hash, cfg.faults.clone(), cfg.limits.clone()));
    Ok(Prepared { app, new_token, seeded })
}

/// Loads `{"Users": [...], "Groups": [...]}` (or a bare array of users) as resources not
/// created through SCIM. A user whose userName exists already is left alone, so a restart
/// with the same seed changes nothing. Group members may be given by id or by userName.
async fn seed(store: &Store, path: &std::path::Path) -> Result<usize, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read seed file {}: {e}", path.display()))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: not valid JSON: {e}", path.display()))?;
    let get = |k: &str| v.get(k).and_then(Value::as_array).cloned().unwrap_or_default();
    let users = if let Value::Array(a) = &v { a.clone() } else { get("Users") };
    let groups = get("Groups");
    let mut added = 0;
    let with_schema = |mut item: Value, urn: &str| {
        if let Some(o) = item.as_object_mut() {
            o.entry("schemas").or_insert_with(|| serde_json::json!([urn]));
        }
        item
    };
    let mut by_name = std::collections::HashMap::new();
    for (i, u) in users.into_iter().enumerate() {
        let u = with_schema(u, scim::schema::USER);
        let mut doc = store
            .users
            .normalize(&u)
            .and_then(|d| store.users.check_required(&d).map(|_| d))
            .map_err(|e| format!("{}: Users[{i}]: {}", path.display(), e.detail))?;
        http::apply_user_defaults(store.dialect, &mut doc);
        let name = doc.get("userName").and_then(Value::as_str).unwrap_or_default().to_lowercase();
        let q = store::ListQuery {
            filter: Some(
                scim::Filter::parse(&format!("userName eq {}", Value::String(name.clone()))).map_err(|e| e.detail)?,
            ),
            count: 1,
            start_index: 1,
            ..Default::default()
        };
        let existing = store.list(Kind::User, &q, "", |m| m).resources;
        let id = match existing.first() {
            Some(e) => e.get("id").and_then(Value::as_str).unwrap_or_default().to_string(),
            None => {
                added += 1;
                let e = store
                    .create(Kind::User, doc, false)
                    .await
                    .map_err(|e| format!("{}: Users[{i}]: {}", path.display(), e.detail))?;
                e.doc["id"].as_str().unwrap_or_default().to_string()
            }
        };
        by_name.insert(name, id);
    }
    for (i, g) in groups.into_iter().enumerate() {
        let mut g = with_schema(g, scim::schema::GROUP);
        if let Some(Value::Array(ms)) = g.get_mut("members") {
            for m in ms.iter_mut() {
                let key = m.get("value").and_then(Value::as_str).map(str::to_lowercase);
                if let Some(id) = key.and_then(|k| by_name.get(&k)) {
                    m["value"] = Value::String(id.clone());
                }
            }
        }
        let doc = store
            .groups
            .normalize(&g)
            .and_then(|d| store.groups.check_required(&d).map(|_| d))
            .map_err(|e| format!("{}: Groups[{i}]: {}", path.display(), e.detail))?;
        let name = doc.get("displayName").and_then(Value::as_str).unwrap_or_default().to_string();
        let q = store::ListQuery {
            filter: Some(
                scim::Filter::parse(&format!("displayName eq {}", Value::String(name))).map_err(|e| e.detail)?,
            ),
            count: 1,
            start_index: 1,
            ..Default::default()
        };
        if store.list(Kind::Group, &q, "", |m| m).resources.is_empty() {
            store
                .create(Kind::Group, doc, false)
                .await
                .map_err(|e| format!("{}: Groups[{i}]: {}", path.display(), e.detail))?;
            added += 1;
        }
    }
    Ok(added)
}

/// Serves until `shutdown` completes. Each connection is served by hyper directly so that the
/// drop knob can close it without an answer.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let router = router(app);
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                // Out of file descriptors and the like: wait a little rather than spin.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        tokio::spawn(http::serve_connection(stream, router));
    }
}
