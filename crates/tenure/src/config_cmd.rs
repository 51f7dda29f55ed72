//! `tenure config check | import | export` and `tenure preview`: the rules as code, checked
//! whole before they are saved, and shown worker by worker before they act.

use clap::Subcommand;
use rules::formula::Value;
use rules::{Config, Rules};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use store::Store;

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration file and list every problem; changes nothing.
    Check { file: PathBuf },
    /// Check and save a configuration file as the one in force (refused whole if broken).
    Import { file: PathBuf },
    /// Print the configuration in force, in its canonical form.
    Export {
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub async fn open(data_dir: &Path, database_url: Option<&str>) -> Result<Store, String> {
    match database_url {
        Some(u) => Store::open(u).await,
        None => Store::open_in(data_dir).await,
    }
    .map_err(|e| e.to_string())
}

/// Reads and compiles a file; the error lists every problem, one per line.
pub fn load_file(file: &Path) -> Result<Rules, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let name = file.display().to_string();
    let cfg = Config::from_toml(&name, &text).map_err(|e| e.join("\n"))?;
    Rules::compile(&cfg).map_err(|errors| {
        let n = errors.len();
        let mut lines: Vec<String> = errors.into_iter().map(|e| format!("{name}: {e}")).collect();
        lines.push(format!("{n} problem{} in {name}; nothing was saved", if n == 1 { "" } else { "s" }));
        lines.join("\n")
    })
}

/// The configuration in force.
pub async fn current(store: &Store) -> Result<Rules, String> {
    let v = store
        .current_config()
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no configuration yet: save one with `tenure config import FILE` (see examples/tenure.toml)")?;
    let cfg = Config::from_toml("stored configuration", &v.body).map_err(|e| e.join("\n"))?;
    Rules::compile(&cfg).map_err(|e| format!("the stored configuration no longer compiles: {}", e.join("; ")))
}

fn summary(r: &Rules) -> String {
    let mappings: usize = r.config.connections.iter().map(|c| c.mappings.len()).sum();
    format!("{} connection(s), {} role(s), {mappings} mapping(s)", r.config.connections.len(), r.config.roles.len())
}

pub async fn run(cmd: ConfigCommand, data_dir: &Path, database_url: Option<&str>) -> Result<u8, String> {
    match cmd {
        ConfigCommand::Check { file } => match load_file(&file) {
            Ok(r) => {
                println!("{}: ok: {}", file.display(), summary(&r));
                Ok(0)
            }
            Err(e) => {
                println!("{e}");
                Ok(1)
            }
        },
        ConfigCommand::Import { file } => {
            let rules = match load_file(&file) {
                Ok(r) => r,
                Err(e) => {
                    println!("{e}");
                    return Ok(1);
                }
            };
            let store = open(data_dir, database_url).await?;
            let result = import(&store, &rules).await;
            store.close().await;
            let v = result?;
            println!("saved: {} (version {}, sha256 {})", summary(&rules), v.id, v.checksum);
            Ok(0)
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
                None => print!("{text}"),
            }
            Ok(0)
        }
    }
}

async fn import(store: &Store, rules: &Rules) -> Result<store::ConfigVersion, String> {
    let stored = store.connections().await.map_err(|e| e.to_string())?;
    for c in &rules.config.connections {
        match stored.iter().find(|s| s.name == c.name) {
            None => println!(
                "note: connection {:?} has no token yet: add it with `tenure connection add --name {:?} --url ...`",
                c.name, c.name
            ),
            Some(s) => {
                let url = c.url.clone().unwrap_or_else(|| s.base_url.clone());
                let rate = c.rate_limit.or(s.rate_limit_per_second);
                if url != s.base_url || c.dialect != s.dialect || rate != s.rate_limit_per_second {
                    store
                        .update_connection_settings(&c.name, &url, &c.dialect, rate)
                        .await
                        .map_err(|e| e.to_string())?;
                    println!(
                        "connection {:?}: settings updated from the file (url {url}, dialect {})",
                        c.name, c.dialect
                    );
                }
            }
        }
    }
    store.save_config(&rules.config.to_toml()).await.map_err(|e| e.to_string())
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
        Some(f) => load_file(f),
        None => current(&store).await,
    };
    let snapshot = store.snapshot().await.map_err(|e| e.to_string());
    store.close().await;
    let rules = rules?;
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
        for id in &workers {
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
        for &i in &chosen {
            out.push((all[i].clone(), decisions[i].clone()));
        }
    }
    if json {
        let v: Vec<_> = out.iter().map(|(w, d)| serde_json::json!({"worker": w.id, "decision": d})).collect();
        println!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
        return Ok(0);
    }
    for (w, d) in &out {
        println!("worker {} ({} {}) on {:?}", w.id, w.first_name.as_str(), w.last_name.as_str(), d.connection);
        match &d.role {
            Some(r) => println!("  role: {r}"),
            None => println!("  role: none matched"),
        }
        for why in &d.why {
            println!("    {why}");
        }
        match &d.grant {
            None => println!("  grant: no account on this connection"),
            Some(g) => {
                let from = if d.by_default { " (the connection's default grant)" } else { "" };
                println!(
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
                    println!("    {:<28} = {v:<36} {}{apply}", a.target, a.formula);
                }
            }
        }
    }
    Ok(0)
}
