//! `tenure config check | import | export` and `tenure preview`: the rules as code, checked
//! whole before they are saved, and shown worker by worker before they act.

use crate::config::*;
use clap::Subcommand;
use service::preview::{preview_of, Previewed};
use std::path::{Path, PathBuf};

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
            let mut mismatch = vec![];
            if let Some(s) = store {
                // A stored connection whose dialect the file does not give it, said with the fix.
                if let Ok(stored) = s.connections().await {
                    mismatch = service::connections::dialect_mismatch(&cfg, &stored);
                }
                s.close().await;
            }
            let (published, _, lines) = found?;
            lines.iter().chain(&mismatch).for_each(|l| outln!("{l}"));
            match compile(&name, &cfg, &published) {
                Ok(r) => {
                    r.notes.iter().for_each(|n| outln!("note: {n}"));
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
            let by = crate::local::actor();
            let confirm = Confirm {
                url_change: confirm_url_change,
                removal: confirm_removal,
                // The machine's operator, on the store itself.
                auth_change: true,
                ..Default::default()
            };
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
                        crate::cli::output::closed(e);
                    }
                }
            }
            Ok(0)
        }
    }
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
            .map(|p| {
                serde_json::json!({"worker": p.worker.id, "decision": p.decision, "plan": p.plan, "note": p.note,
                    "target": p.read})
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
        return Ok(0);
    }
    for Previewed { worker: w, decision: d, plan: acts, note, read, .. } in &out {
        outln!("worker {} ({} {}) on {:?}", w.id, w.first_name.as_str(), w.last_name.as_str(), d.connection);
        if let Some(n) = note {
            outln!("  note: {n}");
        }
        if let Some(r) = read {
            outln!("  planned against {}, read at {}", r.basis, r.read_at);
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
                for p in &d.placements {
                    outln!("    team {:?}: put there by {}", p.team, p.by);
                }
                for e in &d.team_errors {
                    outln!("    team error (the worker is held): {e}");
                }
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
