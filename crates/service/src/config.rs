//! The configuration (connections, roles, mappings, the HR settings) as code: checked whole
//! before it is saved, saved as a new version with who saved it, exported as it stands, and
//! the version in force read by every use case that acts on it.

use crate::error::{Error, Result};
use rules::{Config, Rules};
use scim::ResourceSchema;
use scim_client::Discovery;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use store::{MasterKey, Store};

pub async fn open(data_dir: &Path, database_url: Option<&str>) -> Result<Store> {
    must_exist(data_dir, database_url).await?;
    open_with(data_dir, database_url, None).await
}

/// The store for many readers at once (the API): a few connections, where SQLite's default is one.
pub async fn open_for_readers(data_dir: &Path, database_url: Option<&str>) -> Result<Store> {
    must_exist(data_dir, database_url).await?;
    let n = if database_url.is_some() { None } else { Some(4) };
    open_with(data_dir, database_url, n).await
}

/// Whether there is a store to open: a data folder (or database) given by mistake is said,
/// never filled with an empty store and a new key.
pub async fn exists(data_dir: &Path, database_url: Option<&str>) -> Result<bool> {
    match database_url {
        Some(u) => Store::initialised(u)
            .await
            .map_err(|e| Error::refused(format!("the store at {}: {e}", without_password(u)))),
        None => Ok(Store::exists_in(data_dir)),
    }
}

async fn must_exist(data_dir: &Path, database_url: Option<&str>) -> Result<()> {
    if exists(data_dir, database_url).await? {
        return Ok(());
    }
    Err(Error::refused(match database_url {
        Some(u) => format!(
            "no tenure store in the database at {}: `tenure init --database-url ...` makes one, or give the right \
             --database-url",
            without_password(u)
        ),
        None => format!(
            "no tenure store in {}: `tenure init` makes one there, or give the right --data-dir (or TENURE_DATA_DIR)",
            data_dir.display()
        ),
    }))
}

/// What `create` found or made.
pub struct Created {
    pub store: Store,
    pub key: store::MasterKey,
    /// The store was made now (false: it was there already).
    pub made: bool,
}

/// A new store with its master key (`tenure init`, the quickstart, `tenure serve --init`), or
/// the one already there. A store already there whose key is missing is refused: a new key
/// beside it would open none of its secrets.
pub async fn create(data_dir: &Path, database_url: Option<&str>) -> Result<Created> {
    let made = !exists(data_dir, database_url).await?;
    let key = if made { store::MasterKey::load_or_create(data_dir) } else { store::MasterKey::load(data_dir) }
        .map_err(Error::refused)?;
    let store = open_with(data_dir, database_url, None).await?;
    Ok(Created { store, key, made })
}

async fn open_with(data_dir: &Path, database_url: Option<&str>, connections: Option<u32>) -> Result<Store> {
    // A store error names the store it concerns (a URL without its password).
    match database_url {
        Some(u) => Store::open_with(u, connections)
            .await
            .map_err(|e| Error::refused(format!("the store at {}: {e}", without_password(u)))),
        None => {
            let file = data_dir.join("tenure.db");
            Store::open_in_with(data_dir, connections)
                .await
                .map_err(|e| Error::refused(format!("the store {}: {e}", file.display())))
        }
    }
}

/// `postgres://user:secret@host/db` as `postgres://user:****@host/db`.
pub fn without_password(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("****"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

pub fn read_file(file: &Path) -> Result<(String, Config)> {
    let text =
        std::fs::read_to_string(file).map_err(|e| Error::refused(format!("cannot read {}: {e}", file.display())))?;
    let name = file.display().to_string();
    let cfg = Config::from_toml(&name, &text).map_err(|e| Error::input(e.join("\n")))?;
    Ok((name, cfg))
}

pub fn compile(name: &str, cfg: &Config, published: &HashMap<String, ResourceSchema>) -> Result<Rules> {
    Rules::compile_with(cfg, published).map_err(|errors| {
        let n = errors.len();
        let mut lines: Vec<String> = errors.into_iter().map(|e| format!("{name}: {e}")).collect();
        lines.push(format!("{n} problem{} in {name}; nothing was saved", if n == 1 { "" } else { "s" }));
        Error::invalid(name, lines.join("\n"))
    })
}

/// Reads and compiles a file against the schemas saved at the last import; the error lists
/// every problem, one per line.
pub async fn load_file(store: &Store, file: &Path) -> Result<Rules> {
    let (name, cfg) = read_file(file)?;
    let (published, _) = saved_schemas(store, &cfg).await?;
    compile(&name, &cfg, &published)
}

/// The settings key of a connection's saved discovery documents.
fn schema_key(connection: &str) -> String {
    format!("published_schema:{connection}")
}

/// The User schemas saved at the last import, by connection, with where each came from.
async fn saved_schemas(
    store: &Store,
    cfg: &Config,
) -> Result<(HashMap<String, ResourceSchema>, HashMap<String, String>)> {
    let texts = schema_texts(store).await?;
    let mut schemas = HashMap::new();
    let mut whence = HashMap::new();
    for c in &cfg.connections {
        let Some(text) = texts.get(&schema_key(&c.name)) else { continue };
        let doc: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Error::refused(format!("saved schema of {:?}: {e}", c.name)))?;
        let d = Discovery::from_json(&doc);
        let s = d.user_schema().map_err(|e| Error::refused(format!("saved schema of {:?}: {e}", c.name)))?;
        schemas.insert(c.name.clone(), s);
        let at = doc.get("fetched_at").and_then(|v| v.as_str()).unwrap_or("an earlier import");
        whence.insert(c.name.clone(), format!("the schema it published at /Schemas (saved {at})"));
    }
    Ok((schemas, whence))
}

/// Every connection's saved schema, as text, by setting name: one read, not one per connection.
async fn schema_texts(store: &Store) -> Result<HashMap<String, String>> {
    Ok(store.settings_with_prefix(&schema_key("")).await?.into_iter().collect())
}

/// A configuration compiled against the schemas its targets published at the last import,
/// asking no target (the console's editor, at every step): `Ok(Err(problems))` when it does not.
pub async fn compile_saved(store: &Store, cfg: &Config) -> Result<Result<Rules, Vec<String>>> {
    let (published, _) = saved_schemas(store, cfg).await?;
    Ok(Rules::compile_with(cfg, &published))
}

/// The attributes a mapping on `connection` may write: from the User schema its target
/// published at the last import, else what tenure knows of its dialect; with where the list
/// came from. A multi-valued attribute is offered by its typed values (`emails[type eq "work"].value`).
pub async fn mappable(store: &Store, cfg: &Config, connection: &str) -> Result<(Vec<String>, String)> {
    let (published, whence) = saved_schemas(store, cfg).await?;
    let dialect = cfg.connections.iter().find(|c| c.name == connection).map(|c| c.dialect.as_str()).unwrap_or("monday");
    let (schema, from) = match published.get(connection) {
        Some(s) => (s.clone(), whence.get(connection).cloned().unwrap_or_default()),
        None => {
            let d: scim::Dialect = dialect.parse().unwrap_or(scim::Dialect::Generic);
            (d.user_schema(), format!("what tenure knows of the {dialect} dialect (the target's own schema is read when the rules are saved)"))
        }
    };
    let mut out = vec![];
    for path in schema.writable_paths() {
        let multi = schema
            .core
            .attribute(&path)
            .filter(|a| a.multi_valued && a.sub_attributes.iter().any(|s| s.name == "value"));
        match multi {
            Some(a) => {
                let types = a
                    .sub_attributes
                    .iter()
                    .find(|s| s.name == "type")
                    .map(|t| t.canonical_values.clone())
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| vec!["work".to_string()]);
                out.extend(types.iter().map(|t| format!("{}[type eq \"{t}\"].value", a.name)));
            }
            None => out.push(path),
        }
    }
    out.dedup();
    Ok((out, from))
}

/// How long discovery may take before the saved (or built-in) schema is used instead.
const DISCOVERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// The User schema each connection's target publishes, asked now through the stored
/// connection; where it cannot be asked, the copy saved at the last import. Returns the schemas,
/// the documents fetched now (to save on import) and one line per connection saying which
/// schema its mappings are checked against.
pub async fn published_schemas(
    store: Option<&Store>,
    data_dir: &Path,
    cfg: &Config,
) -> Result<(HashMap<String, ResourceSchema>, Vec<(String, serde_json::Value)>, Vec<String>)> {
    let (mut schemas, mut whence) = match store {
        Some(s) => saved_schemas(s, cfg).await?,
        None => Default::default(),
    };
    let mut fetched = vec![];
    let mut lines = vec![];
    for c in &cfg.connections {
        let stored = match store {
            Some(s) => s.connection(&c.name).await?,
            None => None,
        };
        let mut why_not = String::from("no stored connection to ask");
        // The stored token goes only to the stored URL: a file naming another is not asked.
        let elsewhere = stored.as_ref().and_then(|s| {
            let named = normalised_url(c.url.as_deref()?, s).unwrap_or_else(|e| e.to_string());
            (named != s.base_url).then_some(named)
        });
        if let Some(named) = &elsewhere {
            why_not = format!(
                "the file names {named}, not the stored {}: the connection's token is sent only to its stored URL",
                stored.as_ref().map(|s| s.base_url.as_str()).unwrap_or_default()
            );
        }
        if let (Some(_), None, Some(store)) = (&stored, &elsewhere, store) {
            let asked = async {
                let key = MasterKey::load(data_dir)?;
                // A check should answer quickly: a few tries, not a sync's patience.
                let retry = scim_client::RetryPolicy {
                    max_attempts: 3,
                    max_elapsed: std::time::Duration::from_secs(5),
                    ..Default::default()
                };
                let client = crate::connections::client_at(store, &key, &c.name, retry, false).await?;
                client.discover_user_schema().await.map_err(|e| e.to_string())
            };
            match tokio::time::timeout(DISCOVERY_TIMEOUT, asked).await {
                Err(_) => why_not = format!("no answer in {} s", DISCOVERY_TIMEOUT.as_secs()),
                Ok(Err(e)) => why_not = format!("cannot ask it: {e}"),
                Ok(Ok(None)) => why_not = "it publishes no /Schemas".into(),
                Ok(Ok(Some(d))) => match d.user_schema() {
                    Err(e) => why_not = format!("its /Schemas cannot be read: {e}"),
                    Ok(s) => {
                        schemas.insert(c.name.clone(), s);
                        let mut doc = d.to_json();
                        doc["fetched_at"] = jiff::Timestamp::now().to_string().into();
                        fetched.push((c.name.clone(), doc));
                        whence.insert(c.name.clone(), "the schema it publishes at /Schemas (asked now)".into());
                    }
                },
            }
        }
        let line = match whence.get(&c.name) {
            Some(w) if fetched.iter().any(|(n, _)| n == &c.name) => {
                format!("connection {:?}: mappings checked against {w}", c.name)
            }
            Some(w) => format!("connection {:?}: mappings checked against {w}; not asked now: {why_not}", c.name),
            None => format!(
                "connection {:?}: mappings checked against what tenure knows of the {} dialect ({why_not})",
                c.name, c.dialect
            ),
        };
        lines.push(line);
    }
    Ok((schemas, fetched, lines))
}

/// The store, when there is one already: `config check` must not create it.
pub async fn existing_store(data_dir: &Path, database_url: Option<&str>) -> Result<Option<Store>> {
    if !exists(data_dir, database_url).await? {
        return Ok(None);
    }
    open(data_dir, database_url).await.map(Some)
}

/// The configuration in force.
pub async fn current(store: &Store) -> Result<Rules> {
    current_if_any(store).await?.ok_or_else(|| {
        Error::not_found("no configuration yet: save one with `tenure config import FILE` (see examples/tenure.toml)")
    })
}

/// The `[hr]` settings a command works with: from a configuration file when one is given,
/// else the saved configuration, else tenure's defaults (nothing saved yet, and no store is
/// created just to look).
pub async fn hr_settings(
    data_dir: &Path,
    database_url: Option<&str>,
    file: Option<&Path>,
) -> Result<rules::HrSettings> {
    Ok(config_for_hr(data_dir, database_url, file).await?.hr)
}

/// The configuration an HR command reads: the file given (checked whole), else the one in
/// force, else the defaults (no store yet).
pub async fn config_for_hr(data_dir: &Path, database_url: Option<&str>, file: Option<&Path>) -> Result<Config> {
    if let Some(file) = file {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file).map_err(|e| Error::input(format!("cannot read {name}: {e}")))?;
        let cfg = Config::from_toml(&name, &text).map_err(|e| Error::input(e.join("\n")))?;
        Rules::compile(&cfg)
            .map_err(|e| Error::input(e.iter().map(|e| format!("{name}: {e}")).collect::<Vec<_>>().join("\n")))?;
        return Ok(cfg);
    }
    if database_url.is_none() && !data_dir.join("tenure.db").exists() {
        return Ok(Config::default());
    }
    let store = open(data_dir, database_url).await?;
    let saved = store.current_config().await;
    store.close().await;
    match saved? {
        None => Ok(Config::default()),
        Some(v) => Config::from_toml("stored configuration", &v.body).map_err(|e| Error::input(e.join("\n"))),
    }
}

/// Saves these rules as the configuration in force unless they are the ones in force already
/// (as their canonical TOML): whether they were saved.
pub async fn save_if_changed(store: &Store, rules: &Rules) -> Result<bool> {
    let canonical = rules.config.to_toml();
    let current = store.current_config().await?;
    if current.as_ref().map(|c| c.body.as_str()) == Some(canonical.as_str()) {
        return Ok(false);
    }
    store.save_config_after(&canonical, current.as_ref().map(|c| c.id.as_str()), "tenure").await?;
    Ok(true)
}

/// The names of the connections configuration version `version` configures (none before the
/// first one is saved). Asked at every status with the version the status read anyway: the
/// names are kept by version, so the configuration is parsed once per version, not per request.
pub async fn connection_names(store: &Store, version: Option<&str>) -> Result<Vec<String>> {
    static KEPT: std::sync::Mutex<Option<(String, Vec<String>)>> = std::sync::Mutex::new(None);
    let Some(version) = version else { return Ok(vec![]) };
    if let Some((id, names)) = KEPT.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        if id == version {
            return Ok(names.clone());
        }
    }
    let Some(v) = store.current_config().await? else { return Ok(vec![]) };
    let names: Vec<String> = current(store).await?.connections.iter().map(|c| c.name.clone()).collect();
    *KEPT.lock().unwrap_or_else(|p| p.into_inner()) = Some((v.id, names.clone()));
    Ok(names)
}

/// The configuration in force, or None before the first one is saved.
/// How people sign in (`[auth]` of the configuration in force; the defaults before one).
/// Read without compiling the rest: a sign-in should not pay for the rules.
pub async fn auth_settings(store: &Store) -> Result<rules::AuthSettings> {
    let Some(v) = store.current_config().await? else { return Ok(rules::AuthSettings::default()) };
    let cfg = Config::from_toml("stored configuration", &v.body).map_err(|e| Error::input(e.join("\n")))?;
    Ok(cfg.auth)
}

pub async fn current_if_any(store: &Store) -> Result<Option<Rules>> {
    let Some(v) = store.current_config().await? else { return Ok(None) };
    // Every run, turn and request reads the configuration in force: compiled once per version
    // and set of saved schemas (with hundreds of connections, parsing and compiling it for each
    // connection's run made a turn's work grow with the square of their number).
    let texts = schema_texts(store).await?;
    let key = {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(v.id.as_bytes());
        h.update(v.checksum.as_bytes());
        let mut names: Vec<&String> = texts.keys().collect();
        names.sort();
        for n in names {
            h.update(n.as_bytes());
            h.update([0]);
            h.update(texts[n].as_bytes());
            h.update([0]);
        }
        h.finalize().to_vec()
    };
    static COMPILED: std::sync::Mutex<Option<(Vec<u8>, Rules)>> = std::sync::Mutex::new(None);
    if let Some((k, r)) = &*COMPILED.lock().unwrap_or_else(|p| p.into_inner()) {
        if *k == key {
            return Ok(Some(r.clone()));
        }
    }
    let cfg = Config::from_toml("stored configuration", &v.body).map_err(|e| Error::input(e.join("\n")))?;
    let (published, _) = saved_schemas(store, &cfg).await?;
    let rules = Rules::compile_with(&cfg, &published)
        .map_err(|e| Error::refused(format!("the stored configuration no longer compiles: {}", e.join("; "))))?;
    *COMPILED.lock().unwrap_or_else(|p| p.into_inner()) = Some((key, rules.clone()));
    Ok(Some(rules))
}

/// A configuration saved as the one in force.
pub struct Imported {
    pub rules: Rules,
    pub version: store::ConfigVersion,
    /// Which schema each connection was checked against, settings changed, tokens missing.
    pub notes: Vec<String>,
}

/// Parses a configuration's text; its problems, one per line.
pub fn parse(name: &str, text: &str) -> Result<Config> {
    Config::from_toml(name, text).map_err(|e| Error::input(e.join("\n")))
}

/// What an import (or its dry run) must be told before it goes ahead: each a change that an
/// honest mistake could make and that would hurt.
#[derive(Debug, Clone, Default)]
pub struct Confirm {
    /// A `url` in the file may move a stored connection (an Admin's decision).
    pub url_change: bool,
    /// Connections the file may remove, or leave without any role.
    pub removal: Vec<String>,
    /// Only to plan with (nothing is saved): what it removes does not matter.
    pub plan_only: bool,
    /// The file may change `[auth]`: how people sign in, and which of the identity provider's
    /// groups get which role (an Admin's decision: an Editor could otherwise make themselves one).
    pub auth_change: bool,
    /// The version this one was written from (the console's draft; `Some(None)`: it began when
    /// none was saved): refused as a conflict when another has been saved since.
    pub replaces: Option<Option<String>>,
}

/// What `check` found: the rules, the documents fetched now, one note per connection.
struct Checked {
    rules: Rules,
    fetched: Vec<(String, serde_json::Value)>,
    notes: Vec<String>,
}

/// Everything an import checks, in the order that sends nothing anywhere before the URLs are
/// known to be the stored ones: URLs, removals, then the schemas the targets publish, then the
/// whole file compiled. `Ok(Err(problems))`: refused whole.
async fn check(
    store: &Store,
    data_dir: &Path,
    name: &str,
    cfg: &Config,
    confirm: &Confirm,
) -> Result<Result<Checked, Error>> {
    if let Err(e) = check_urls(store, cfg, confirm.url_change).await {
        return Ok(Err(e));
    }
    if !confirm.plan_only {
        if let Err(e) = check_removals(store, cfg, &confirm.removal).await {
            return Ok(Err(e));
        }
        if !confirm.auth_change && cfg.auth != auth_settings(store).await? {
            return Err(Error::Forbidden(
                "the file changes [auth] (how people sign in to tenure, and which identity provider groups get which \
                 role): only an Admin may save that; nothing was saved"
                    .into(),
            ));
        }
    }
    let (published, fetched, notes) = published_schemas(Some(store), data_dir, cfg).await?;
    Ok(compile(name, cfg, &published).map(|rules| Checked { rules, fetched, notes }))
}

/// The import use case (`tenure config import`, `PUT /api/v1/config`): checked whole (URLs,
/// removals, the schemas the targets publish), then saved as the one in force, with its diff
/// against the last one in the audit. `Ok(Err(problems))`: the file was refused whole.
pub async fn import(
    store: &Store,
    data_dir: &Path,
    name: &str,
    cfg: &Config,
    confirm: &Confirm,
    by: &str,
) -> Result<Result<Imported, Error>> {
    let Checked { rules, fetched, mut notes } = match check(store, data_dir, name, cfg, confirm).await? {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    // Before anything is written: a draft begun from another version is not saved over it.
    let before = store.current_config().await?;
    let in_force = before.as_ref().map(|b| b.id.as_str());
    if let Some(expected) = &confirm.replaces {
        if expected.as_deref() != in_force {
            let b = before.as_ref();
            return Err(Error::conflict(format!(
                "another configuration (version {}) was saved meanwhile by {}: nothing was saved",
                b.map_or("?", |b| b.id.as_str()),
                b.and_then(|b| b.saved_by.as_deref()).unwrap_or("someone")
            )));
        }
    }
    let before_auth = match &before {
        Some(b) => Config::from_toml("stored configuration", &b.body).ok().map(|c| c.auth),
        None => Some(rules::AuthSettings::default()),
    };
    // Checked again against the very version this one replaces: an Admin's [auth] saved while
    // this import was being checked is not undone by it.
    if !confirm.auth_change && before_auth.as_ref() != Some(&cfg.auth) {
        return Err(Error::Forbidden(
            "the file changes [auth] (how people sign in to tenure, and which identity provider groups get which \
             role): only an Admin may save that; nothing was saved"
                .into(),
        ));
    }
    notes.extend(update_connections(store, cfg, confirm.url_change).await?);
    notes.extend(rules.notes.iter().cloned());
    for (conn, doc) in &fetched {
        store.set_setting(&schema_key(conn), &doc.to_string()).await?;
    }
    let body = rules.config.to_toml();
    // Saved as the successor of the version read before: one saved by another door in the
    // same moment makes this one fail rather than vanish.
    let v = store.save_config_after(&body, in_force, by).await?;
    let diff = line_diff(before.as_ref().map(|b| b.body.as_str()).unwrap_or(""), &body);
    let detail = serde_json::json!({"version": v.id, "sha256": v.checksum, "summary": summary(&rules),
        "previous": before.map(|b| b.id), "diff": diff, "confirmed_url_change": confirm.url_change,
        "confirmed_removal": confirm.removal, "auth_changed": before_auth.as_ref() != Some(&rules.config.auth)});
    crate::decisions::record_one(store, "config_import", "", by, detail).await?;
    Ok(Ok(Imported { rules, version: v, notes }))
}

/// Compiles a configuration as import would, with every check import makes (the dry run and
/// the unsaved plan), saving nothing. `Ok(Err(problems))`: it would be refused.
pub async fn compile_checked(
    store: &Store,
    data_dir: &Path,
    name: &str,
    cfg: &Config,
    confirm: &Confirm,
) -> Result<Result<Rules, Error>> {
    Ok(check(store, data_dir, name, cfg, confirm).await?.map(|c| c.rules))
}

/// Whether any role (or the connection's default grant) gives an account on `connection`.
fn has_roles(cfg: &Config, connection: &str) -> bool {
    cfg.roles.iter().any(|r| r.grants.contains_key(connection))
        || cfg.connections.iter().any(|c| c.name == connection && c.default_grant.is_some())
}

/// A file that drops a connection stops its deprovisioning; one that leaves it without any
/// role deactivates every account it manages. Either needs the connection named as confirmed.
async fn check_removals(store: &Store, cfg: &Config, confirmed: &[String]) -> Result<()> {
    let Some(v) = store.current_config().await? else { return Ok(()) };
    let before = Config::from_toml("stored configuration", &v.body).map_err(|e| Error::input(e.join("\n")))?;
    let mut problems = vec![];
    for c in &before.connections {
        if confirmed.iter().any(|n| n == &c.name) {
            continue;
        }
        if !cfg.connections.iter().any(|n| n.name == c.name) {
            problems.push(format!(
                "connection {:?} would be removed: tenure would stop keeping its accounts, and its leavers would stay \
                 active",
                c.name
            ));
        } else if has_roles(&before, &c.name) && !has_roles(cfg, &c.name) {
            problems.push(format!(
                "connection {:?} would be left without any role: every account it manages would be deactivated",
                c.name
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = before
        .connections
        .iter()
        .filter(|c| problems.iter().any(|p| p.starts_with(&format!("connection {:?}", c.name))))
        .map(|c| c.name.clone())
        .collect();
    problems.push(format!(
        "nothing was saved. If this is meant, confirm it by naming each: --confirm-removal {:?} (API: \
         ?confirm_removal={})",
        names.join(","),
        names.join(",")
    ));
    Err(Error::refused(problems.join("\n")))
}

/// A URL a file names for a stored connection, as the connection would store it (under the
/// stored connection's address policy); Err holds the reason it cannot be.
fn normalised_url(url: &str, s: &store::ConnectionRecord) -> Result<String> {
    let policy = scim_client::UrlPolicy { allow_insecure_http: s.insecure_http, allow_private: s.allow_private };
    scim_client::InstanceUrl::parse(url, policy).map(|u| u.to_string()).map_err(Error::input)
}

/// A stored connection's URL is the connection's: a file that names another is refused with
/// both URLs, unless the change is confirmed.
async fn check_urls(store: &Store, cfg: &Config, confirmed: bool) -> Result<()> {
    let stored = store.connections().await?;
    for c in &cfg.connections {
        let (Some(url), Some(s)) = (&c.url, stored.iter().find(|s| s.name == c.name)) else { continue };
        let normalised = normalised_url(url, s)?;
        if normalised != s.base_url && !confirmed {
            return Err(Error::refused(format!(
                "connection {:?}: the file names {normalised}, the stored connection has {}; nothing was imported. \
                 Drop `url` from the file to keep the stored one, or import with --confirm-url-change to move it",
                c.name, s.base_url
            )));
        }
    }
    Ok(())
}

async fn update_connections(store: &Store, cfg: &Config, url_change: bool) -> Result<Vec<String>> {
    let stored = store.connections().await?;
    let mut notes = vec![];
    for c in &cfg.connections {
        match stored.iter().find(|s| s.name == c.name) {
            None => notes.push(format!(
                "note: connection {:?} has no token yet: add it with `tenure connection add --name {:?} --url ...`",
                c.name, c.name
            )),
            Some(s) => {
                let policy =
                    scim_client::UrlPolicy { allow_insecure_http: s.insecure_http, allow_private: s.allow_private };
                let url = match &c.url {
                    Some(u) => scim_client::InstanceUrl::parse(u, policy).map_err(Error::input)?.to_string(),
                    None => s.base_url.clone(),
                };
                // Checked again here: the connection may have been stored since the check.
                if url != s.base_url && !url_change {
                    return Err(Error::refused(format!(
                        "connection {:?}: the file names {url}, the stored connection has {}; nothing more was imported",
                        c.name, s.base_url
                    )));
                }
                let rate = c.rate_limit.or(s.rate_limit_per_second);
                if url != s.base_url || c.dialect != s.dialect || rate != s.rate_limit_per_second {
                    store.update_connection_settings(&c.name, &url, &c.dialect, rate).await?;
                    notes.push(format!(
                        "connection {:?}: settings updated from the file (url {url}, dialect {})",
                        c.name, c.dialect
                    ));
                    if c.dialect != s.dialect {
                        notes.push(format!(
                            "warning: connection {:?} was stored with dialect {:?} (found when it was added); the \
                             file's {:?} is in force now: tenure talks to it as {:?}. If the target is not {}, \
                             write dialect = {:?} in the file",
                            c.name, s.dialect, c.dialect, c.dialect, c.dialect, s.dialect
                        ));
                    }
                }
            }
        }
    }
    Ok(notes)
}

pub fn summary(r: &Rules) -> String {
    let mappings: usize = r.config.connections.iter().map(|c| c.mappings.len()).sum();
    format!("{} connection(s), {} role(s), {mappings} mapping(s)", r.config.connections.len(), r.config.roles.len())
}

/// The lines a change removed (`- `) and added (`+ `), in the new file's order.
pub fn line_diff(before: &str, after: &str) -> Vec<String> {
    let old: HashSet<&str> = before.lines().collect();
    let new: HashSet<&str> = after.lines().collect();
    let removed = before.lines().filter(|l| !new.contains(l) && !l.trim().is_empty()).map(|l| format!("- {l}"));
    let added = after.lines().filter(|l| !old.contains(l) && !l.trim().is_empty()).map(|l| format!("+ {l}"));
    removed.chain(added).collect()
}
