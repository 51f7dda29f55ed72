//! `tenure config check | import | export` and `tenure preview`: the rules as code, checked
//! whole before they are saved, and shown worker by worker before they act.

use clap::Subcommand;
use rules::formula::Value;
use rules::{Config, Rules};
use scim::ResourceSchema;
use scim_client::Discovery;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use store::{MasterKey, Store};

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration file and list every problem; changes nothing.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
    /// Check and save a configuration file as the one in force (refused whole if broken).
    Import {
        /// The TOML file.
        file: PathBuf,
        /// Let a `url` in the file replace a stored connection's URL (the connection keeps it
        /// otherwise: one source of truth, set by `tenure connection add`).
        #[arg(long)]
        confirm_url_change: bool,
        /// Let the file remove these connections, or leave them without any role (comma
        /// separated names): either stops or undoes their provisioning.
        #[arg(long, value_delimiter = ',')]
        confirm_removal: Vec<String>,
    },
    /// Print the configuration in force, in its canonical form.
    Export {
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub async fn open(data_dir: &Path, database_url: Option<&str>) -> Result<Store, String> {
    // A store error names the store it concerns (a URL without its password).
    match database_url {
        Some(u) => Store::open(u).await.map_err(|e| format!("the store at {}: {e}", without_password(u))),
        None => {
            let file = data_dir.join("tenure.db");
            Store::open_in(data_dir).await.map_err(|e| format!("the store {}: {e}", file.display()))
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

fn read_file(file: &Path) -> Result<(String, Config), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let name = file.display().to_string();
    let cfg = Config::from_toml(&name, &text).map_err(|e| e.join("\n"))?;
    Ok((name, cfg))
}

fn compile(name: &str, cfg: &Config, published: &HashMap<String, ResourceSchema>) -> Result<Rules, String> {
    Rules::compile_with(cfg, published).map_err(|errors| {
        let n = errors.len();
        let mut lines: Vec<String> = errors.into_iter().map(|e| format!("{name}: {e}")).collect();
        lines.push(format!("{n} problem{} in {name}; nothing was saved", if n == 1 { "" } else { "s" }));
        lines.join("\n")
    })
}

/// Reads and compiles a file against the schemas saved at the last import; the error lists
/// every problem, one per line.
pub async fn load_file(store: &Store, file: &Path) -> Result<Rules, String> {
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
) -> Result<(HashMap<String, ResourceSchema>, HashMap<String, String>), String> {
    let mut schemas = HashMap::new();
    let mut whence = HashMap::new();
    for c in &cfg.connections {
        let Some(text) = store.setting(&schema_key(&c.name)).await.map_err(|e| e.to_string())? else { continue };
        let doc: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("saved schema of {:?}: {e}", c.name))?;
        let d = Discovery::from_json(&doc);
        let s = d.user_schema().map_err(|e| format!("saved schema of {:?}: {e}", c.name))?;
        schemas.insert(c.name.clone(), s);
        let at = doc.get("fetched_at").and_then(|v| v.as_str()).unwrap_or("an earlier import");
        whence.insert(c.name.clone(), format!("the schema it published at /Schemas (saved {at})"));
    }
    Ok((schemas, whence))
}

/// How long discovery may take before the saved (or built-in) schema is used instead.
const DISCOVERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// The User schema each connection's target publishes, asked now through the stored
/// connection; where it cannot be asked, the copy saved at the last import. Returns the schemas,
/// the documents fetched now (to save on import) and one line per connection saying which
/// schema its mappings are checked against.
async fn published_schemas(
    store: Option<&Store>,
    data_dir: &Path,
    cfg: &Config,
) -> Result<(HashMap<String, ResourceSchema>, Vec<(String, serde_json::Value)>, Vec<String>), String> {
    let (mut schemas, mut whence) = match store {
        Some(s) => saved_schemas(s, cfg).await?,
        None => Default::default(),
    };
    let mut fetched = vec![];
    let mut lines = vec![];
    for c in &cfg.connections {
        let stored = match store {
            Some(s) => s.connection(&c.name).await.map_err(|e| e.to_string())?,
            None => None,
        };
        let mut why_not = String::from("no stored connection to ask");
        // The stored token goes only to the stored URL: a file naming another is not asked.
        let elsewhere = stored.as_ref().and_then(|s| {
            let named = normalised_url(c.url.as_deref()?, s).unwrap_or_else(|e| e);
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
                let client = crate::sync::client_at(store, &key, &c.name, retry, false).await?;
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
async fn existing_store(data_dir: &Path, database_url: Option<&str>) -> Result<Option<Store>, String> {
    if database_url.is_none() && !data_dir.join("tenure.db").exists() {
        return Ok(None);
    }
    open(data_dir, database_url).await.map(Some)
}

/// The configuration in force.
pub async fn current(store: &Store) -> Result<Rules, String> {
    current_if_any(store).await?.ok_or_else(|| {
        "no configuration yet: save one with `tenure config import FILE` (see examples/tenure.toml)".into()
    })
}

/// The configuration in force, or None before the first one is saved.
pub async fn current_if_any(store: &Store) -> Result<Option<Rules>, String> {
    let Some(v) = store.current_config().await.map_err(|e| e.to_string())? else { return Ok(None) };
    let cfg = Config::from_toml("stored configuration", &v.body).map_err(|e| e.join("\n"))?;
    let (published, _) = saved_schemas(store, &cfg).await?;
    Rules::compile_with(&cfg, &published)
        .map(Some)
        .map_err(|e| format!("the stored configuration no longer compiles: {}", e.join("; ")))
}

fn summary(r: &Rules) -> String {
    let mappings: usize = r.config.connections.iter().map(|c| c.mappings.len()).sum();
    format!("{} connection(s), {} role(s), {mappings} mapping(s)", r.config.connections.len(), r.config.roles.len())
}

pub async fn run(cmd: ConfigCommand, data_dir: &Path, database_url: Option<&str>) -> Result<u8, String> {
    match cmd {
        ConfigCommand::Check { file } => {
            let (name, cfg) = match read_file(&file) {
                Ok(c) => c,
                Err(e) => {
                    outln!("{e}");
                    return Ok(1);
                }
            };
            let store = existing_store(data_dir, database_url).await?;
            let found = published_schemas(store.as_ref(), data_dir, &cfg).await;
            if let Some(s) = store {
                s.close().await;
            }
            let (published, _, lines) = found?;
            lines.iter().for_each(|l| outln!("{l}"));
            match compile(&name, &cfg, &published) {
                Ok(r) => {
                    outln!("{}: ok: {}", file.display(), summary(&r));
                    Ok(0)
                }
                Err(e) => {
                    outln!("{e}");
                    Ok(1)
                }
            }
        }
        ConfigCommand::Import { file, confirm_url_change, confirm_removal } => {
            let (name, cfg) = match read_file(&file) {
                Ok(c) => c,
                Err(e) => {
                    outln!("{e}");
                    return Ok(1);
                }
            };
            let store = open(data_dir, database_url).await?;
            let by = crate::decisions::actor(None);
            let confirm = Confirm { url_change: confirm_url_change, removal: confirm_removal, plan_only: false };
            let result = import(&store, data_dir, &name, &cfg, &confirm, &by).await;
            store.close().await;
            match result? {
                Ok(i) => {
                    i.notes.iter().for_each(|l| outln!("{l}"));
                    outln!("saved: {} (version {}, sha256 {})", summary(&i.rules), i.version.id, i.version.checksum);
                    Ok(0)
                }
                Err(e) => {
                    outln!("{e}");
                    Ok(1)
                }
            }
        }
        ConfigCommand::Export { out } => {
            let store = open(data_dir, database_url).await?;
            let result = current(&store).await;
            let stored = store.connections().await.map_err(|e| e.to_string());
            store.close().await;
            let mut cfg = result?.config.canonical();
            // The stored connection settings are the live ones.
            for c in &mut cfg.connections {
                if let Some(s) = stored.as_ref().ok().and_then(|all| all.iter().find(|s| s.name == c.name)) {
                    c.url = Some(s.base_url.clone());
                    c.dialect = s.dialect.clone();
                    c.rate_limit = s.rate_limit_per_second;
                }
            }
            let text = cfg.to_toml();
            match out {
                Some(p) => std::fs::write(&p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))?,
                None => {
                    use std::io::Write;
                    if let Err(e) = std::io::stdout().lock().write_all(text.as_bytes()) {
                        crate::output::closed(e);
                    }
                }
            }
            Ok(0)
        }
    }
}

/// A configuration saved as the one in force.
pub struct Imported {
    pub rules: Rules,
    pub version: store::ConfigVersion,
    /// Which schema each connection was checked against, settings changed, tokens missing.
    pub notes: Vec<String>,
}

/// Parses a configuration's text; its problems, one per line.
pub fn parse(name: &str, text: &str) -> Result<Config, String> {
    Config::from_toml(name, text).map_err(|e| e.join("\n"))
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
) -> Result<Result<Checked, String>, String> {
    if let Err(e) = check_urls(store, cfg, confirm.url_change).await {
        return Ok(Err(e));
    }
    if !confirm.plan_only {
        if let Err(e) = check_removals(store, cfg, &confirm.removal).await {
            return Ok(Err(e));
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
) -> Result<Result<Imported, String>, String> {
    let Checked { rules, fetched, mut notes } = match check(store, data_dir, name, cfg, confirm).await? {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    notes.extend(update_connections(store, cfg, confirm.url_change).await?);
    for (conn, doc) in &fetched {
        store.set_setting(&schema_key(conn), &doc.to_string()).await.map_err(|e| e.to_string())?;
    }
    let before = store.current_config().await.map_err(|e| e.to_string())?;
    let body = rules.config.to_toml();
    let v = store.save_config(&body).await.map_err(|e| e.to_string())?;
    let diff = line_diff(before.as_ref().map(|b| b.body.as_str()).unwrap_or(""), &body);
    let detail = serde_json::json!({"version": v.id, "sha256": v.checksum, "summary": summary(&rules),
        "previous": before.map(|b| b.id), "diff": diff, "confirmed_url_change": confirm.url_change,
        "confirmed_removal": confirm.removal});
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
) -> Result<Result<Rules, String>, String> {
    Ok(check(store, data_dir, name, cfg, confirm).await?.map(|c| c.rules))
}

/// Whether any role (or the connection's default grant) gives an account on `connection`.
fn has_roles(cfg: &Config, connection: &str) -> bool {
    cfg.roles.iter().any(|r| r.grants.contains_key(connection))
        || cfg.connections.iter().any(|c| c.name == connection && c.default_grant.is_some())
}

/// A file that drops a connection stops its deprovisioning; one that leaves it without any
/// role deactivates every account it manages. Either needs the connection named as confirmed.
async fn check_removals(store: &Store, cfg: &Config, confirmed: &[String]) -> Result<(), String> {
    let Some(v) = store.current_config().await.map_err(|e| e.to_string())? else { return Ok(()) };
    let before = Config::from_toml("stored configuration", &v.body).map_err(|e| e.join("\n"))?;
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
    Err(problems.join("\n"))
}

/// The lines a change removed (`- `) and added (`+ `), in the new file's order.
fn line_diff(before: &str, after: &str) -> Vec<String> {
    let old: HashSet<&str> = before.lines().collect();
    let new: HashSet<&str> = after.lines().collect();
    let removed = before.lines().filter(|l| !new.contains(l) && !l.trim().is_empty()).map(|l| format!("- {l}"));
    let added = after.lines().filter(|l| !old.contains(l) && !l.trim().is_empty()).map(|l| format!("+ {l}"));
    removed.chain(added).collect()
}

/// What a configuration would change, worker by worker, against the one in force: role,
/// account (given or taken away), user type, teams and every attribute. At most `limit`
/// workers are listed; the counts are of all.
pub async fn differences(
    store: &Store,
    before: &Rules,
    after: &Rules,
    today: jiff::civil::Date,
    limit: usize,
) -> Result<serde_json::Value, String> {
    let workers = crate::sync::workers(store).await?;
    let (cb, ca) = (before.custom_fields().to_vec(), after.custom_fields().to_vec());
    let mut names: Vec<&str> = before.connections.iter().chain(&after.connections).map(|c| c.name.as_str()).collect();
    names.sort();
    names.dedup();
    // Each connection's index under each configuration (None: not in it).
    let at = |r: &Rules, conn: &str| r.connections.iter().position(|c| c.name == conn);
    let slots: Vec<(&str, Option<usize>, Option<usize>)> =
        names.iter().map(|n| (*n, at(before, n), at(after, n))).collect();
    let mut listed = vec![];
    let mut changed = 0usize;
    for w in &workers {
        // A worker's row once per configuration, whatever the number of connections.
        let (rb, ra) = (rules::worker_row(w, &cb), rules::worker_row(w, &ca));
        for &(conn, ib, ia) in &slots {
            let b = Outcome::of(ib.map(|i| before.decide(i, &rb, today)));
            let a = Outcome::of(ia.map(|i| after.decide(i, &ra, today)));
            let mut changes = vec![];
            for k in b.attributes.keys().chain(a.attributes.keys().filter(|k| !b.attributes.contains_key(*k))) {
                let (x, y) = (b.attributes.get(k), a.attributes.get(k));
                if x != y {
                    changes.push(serde_json::json!({"attribute": k, "before": x, "after": y}));
                }
            }
            if b.role == a.role && b.grant == a.grant && changes.is_empty() {
                continue;
            }
            changed += 1;
            if listed.len() < limit {
                let account = match (b.grant.is_some(), a.grant.is_some()) {
                    (false, true) => Some("given"),
                    (true, false) => Some("taken away"),
                    _ => None,
                };
                listed.push(serde_json::json!({"worker": w.id.as_str(), "connection": conn,
                    "role": {"before": b.role, "after": a.role}, "account": account,
                    "grant": {"before": b.grant, "after": a.grant}, "attributes": changes}));
            }
        }
    }
    Ok(serde_json::json!({"workers": workers.len(), "changed": changed, "listed": listed.len(), "differences": listed}))
}

/// What one decision gives a worker on one connection, as `differences` compares it.
struct Outcome {
    role: Option<String>,
    /// User type, teams and groups; None: no account.
    grant: Option<serde_json::Value>,
    /// Every attribute's value (or its error), when there is an account.
    attributes: std::collections::BTreeMap<String, String>,
}

impl Outcome {
    fn of(d: Option<rules::Decision>) -> Outcome {
        let Some(d) = d else { return Outcome { role: None, grant: None, attributes: Default::default() } };
        let grant = d
            .grant
            .as_ref()
            .map(|g| serde_json::json!({"user_type": g.user_type, "teams": g.teams, "groups": g.groups}));
        let attributes = match grant {
            None => Default::default(),
            Some(_) => d
                .attributes
                .iter()
                .map(|a| {
                    let v = match &a.value {
                        Ok(v) => v.to_text(),
                        Err(e) => format!("error: {e}"),
                    };
                    (a.target.clone(), v)
                })
                .collect(),
        };
        Outcome { role: d.role, grant, attributes }
    }
}

/// A URL a file names for a stored connection, as the connection would store it (under the
/// stored connection's address policy); Err holds the reason it cannot be.
fn normalised_url(url: &str, s: &store::ConnectionRecord) -> Result<String, String> {
    let policy = scim_client::UrlPolicy { allow_insecure_http: s.insecure_http, allow_private: s.allow_private };
    scim_client::InstanceUrl::parse(url, policy).map(|u| u.to_string())
}

/// A stored connection's URL is the connection's: a file that names another is refused with
/// both URLs, unless the change is confirmed.
async fn check_urls(store: &Store, cfg: &Config, confirmed: bool) -> Result<(), String> {
    let stored = store.connections().await.map_err(|e| e.to_string())?;
    for c in &cfg.connections {
        let (Some(url), Some(s)) = (&c.url, stored.iter().find(|s| s.name == c.name)) else { continue };
        let normalised = normalised_url(url, s)?;
        if normalised != s.base_url && !confirmed {
            return Err(format!(
                "connection {:?}: the file names {normalised}, the stored connection has {}; nothing was imported. \
                 Drop `url` from the file to keep the stored one, or import with --confirm-url-change to move it",
                c.name, s.base_url
            ));
        }
    }
    Ok(())
}

async fn update_connections(store: &Store, cfg: &Config, url_change: bool) -> Result<Vec<String>, String> {
    let stored = store.connections().await.map_err(|e| e.to_string())?;
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
                    Some(u) => scim_client::InstanceUrl::parse(u, policy)?.to_string(),
                    None => s.base_url.clone(),
                };
                // Checked again here: the connection may have been stored since the check.
                if url != s.base_url && !url_change {
                    return Err(format!(
                        "connection {:?}: the file names {url}, the stored connection has {}; nothing more was imported",
                        c.name, s.base_url
                    ));
                }
                let rate = c.rate_limit.or(s.rate_limit_per_second);
                if url != s.base_url || c.dialect != s.dialect || rate != s.rate_limit_per_second {
                    store
                        .update_connection_settings(&c.name, &url, &c.dialect, rate)
                        .await
                        .map_err(|e| e.to_string())?;
                    notes.push(format!(
                        "connection {:?}: settings updated from the file (url {url}, dialect {})",
                        c.name, c.dialect
                    ));
                }
            }
        }
    }
    Ok(notes)
}

/// `tenure preview`: for each chosen worker and each connection, the role and why, the grant,
/// and every attribute with its formula.
/// One worker on one connection, as the rules and the plan see them: the worker's record,
/// the role decision (each condition with its value), every attribute with its formula, and
/// the planned actions.
pub struct Previewed {
    pub worker: hr::Worker,
    pub decision: rules::Decision,
    pub plan: Vec<engine::Action>,
    pub note: Option<String>,
}

/// The preview use case (`tenure preview`, the API's worker "why"): for the chosen workers
/// (else `sample` of them spread over the population), on every connection.
pub async fn preview_of(
    store: &Store,
    key: Option<&store::MasterKey>,
    rules: &Rules,
    workers: &[String],
    sample: Option<usize>,
    today: Option<jiff::civil::Date>,
) -> Result<Vec<Previewed>, String> {
    let snapshot = store.snapshot().await.map_err(|e| e.to_string());
    // What the plan will do for the chosen workers, connection by connection: the same
    // planner, against the target as it is (unique names claimed as apply claims them).
    let mut planned: Vec<Result<engine::Plan, String>> = vec![];
    if let Some(key) = key {
        let now = match today {
            Some(d) => {
                d.to_zoned(jiff::tz::TimeZone::UTC).map(|z| z.timestamp()).unwrap_or_else(|_| jiff::Timestamp::now())
            }
            None => jiff::Timestamp::now(),
        };
        for c in &rules.connections {
            let p = crate::sync::prepare_with(store, key, rules.clone(), Some(&c.name), now, false, workers).await;
            planned.push(p.map(|p| p.plan));
        }
    }
    let mut all: Vec<hr::Worker> = snapshot?
        .iter()
        .map(|r| serde_json::from_str(&r.body).map_err(|e| format!("worker {}: {e}", r.worker_id)))
        .collect::<Result<_, _>>()?;
    if all.is_empty() {
        return Err("no workers yet: load an HR file with `tenure hr load FILE`".into());
    }
    // Unique values go to the earliest hire first, then by id: the same order every time.
    all.sort_by(|a, b| a.hire_date.cmp(&b.hire_date).then_with(|| a.id.cmp(&b.id)));
    let today = today.unwrap_or_else(|| jiff::Zoned::now().date());
    let custom = rules.custom_fields().to_vec();
    let chosen: Vec<usize> = if !workers.is_empty() {
        let mut v = vec![];
        for id in workers {
            v.push(
                all.iter()
                    .position(|w| w.id.as_str() == id)
                    .ok_or_else(|| format!("no worker {id:?} in the last load"))?,
            );
        }
        v
    } else {
        let n = sample.unwrap_or(5).min(all.len());
        // Spread over the population rather than the first few.
        (0..n).map(|i| i * all.len() / n).collect()
    };
    let mut out = vec![];
    for (ci, conn) in rules.connections.iter().enumerate() {
        let mut decisions: Vec<rules::Decision> =
            all.iter().map(|w| rules.decide(ci, &rules::worker_row(w, &custom), today)).collect();
        for m in conn.mappings.iter().filter(|m| m.unique) {
            let idx: Vec<(usize, usize)> = decisions
                .iter()
                .enumerate()
                .filter_map(|(i, d)| {
                    d.attributes.iter().position(|a| a.target == m.target && a.value.is_ok()).map(|p| (i, p))
                })
                .collect();
            let values: Vec<String> =
                idx.iter().map(|(i, p)| decisions[*i].attributes[*p].value.as_ref().expect("ok").to_text()).collect();
            for ((i, p), v) in idx.iter().zip(rules::make_unique(&values, &HashSet::new())) {
                decisions[*i].attributes[*p].value = Ok(Value::Text(v));
            }
        }
        let plan = planned.get(ci);
        for &i in &chosen {
            let mut d = decisions[i].clone();
            let mine: Vec<engine::Action> = match plan {
                Some(Ok(p)) => p.actions.iter().filter(|a| a.worker == all[i].id.as_str()).cloned().collect(),
                _ => vec![],
            };
            // The unique values the plan claims (a create's body; an account keeps its own).
            if let Some(body) = mine.iter().find(|a| a.kind == engine::Kind::Create).and_then(|a| a.body.as_ref()) {
                for a in d.attributes.iter_mut().filter(|a| a.unique) {
                    if let Some(v) = engine::paths::get(body, &a.target).as_str() {
                        a.value = Ok(Value::Text(v.to_string()));
                    }
                }
            }
            let note = match plan {
                Some(Err(e)) => Some(format!(
                    "the target could not be read ({e}): unique values claimed within the HR snapshot only"
                )),
                None => Some(
                    "no stored connection to plan against: unique values claimed within the HR snapshot only".into(),
                ),
                _ => None,
            };
            out.push(Previewed { worker: all[i].clone(), decision: d, plan: mine, note });
        }
    }
    Ok(out)
}

/// `tenure preview`: for each chosen worker and each connection, the role and why, the grant,
/// and every attribute with its formula.
pub async fn preview(
    data_dir: &Path,
    database_url: Option<&str>,
    config: Option<PathBuf>,
    workers: Vec<String>,
    sample: Option<usize>,
    json: bool,
    today: Option<jiff::civil::Date>,
) -> Result<u8, String> {
    let store = open(data_dir, database_url).await?;
    let rules = match &config {
        Some(f) => load_file(&store, f).await,
        None => current(&store).await,
    };
    let key = store::MasterKey::load(data_dir).ok();
    let out = match rules {
        Ok(rules) => preview_of(&store, key.as_ref(), &rules, &workers, sample, today).await,
        Err(e) => Err(e),
    };
    store.close().await;
    let out = out?;
    if json {
        let v: Vec<_> = out
            .iter()
            .map(|p| serde_json::json!({"worker": p.worker.id, "decision": p.decision, "plan": p.plan, "note": p.note}))
            .collect();
        outln!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
        return Ok(0);
    }
    for Previewed { worker: w, decision: d, plan: acts, note } in &out {
        outln!("worker {} ({} {}) on {:?}", w.id, w.first_name.as_str(), w.last_name.as_str(), d.connection);
        if let Some(n) = note {
            outln!("  note: {n}");
        }
        for a in acts {
            let who = a.user_name.as_deref().map(|u| format!(" {u}")).unwrap_or_default();
            let team = a.team.as_deref().map(|t| format!(" [team {t}]")).unwrap_or_default();
            outln!("  plan: {}{who}{team}: {}", a.kind.as_str(), a.reason);
        }
        match &d.role {
            Some(r) => outln!("  role: {r}"),
            None => outln!("  role: none matched"),
        }
        for why in &d.why {
            outln!("    {why}");
        }
        match &d.grant {
            None => outln!("  grant: no account on this connection"),
            Some(g) => {
                let from = if d.by_default { " (the connection's default grant)" } else { "" };
                outln!(
                    "  grant{from}: user type {}, teams [{}]{}",
                    g.user_type.as_deref().unwrap_or("-"),
                    g.teams.join(", "),
                    if g.groups.is_empty() { String::new() } else { format!(", groups [{}]", g.groups.join(", ")) }
                );
                for a in &d.attributes {
                    let v = match &a.value {
                        Ok(v) => format!("{:?}", v.to_text()),
                        Err(e) => format!("error: {e}"),
                    };
                    let apply = if a.apply == rules::Apply::OnCreate { " (on create)" } else { "" };
                    outln!("    {:<28} = {v:<36} {}{apply}", a.target, a.formula);
                }
            }
        }
    }
    Ok(0)
}
