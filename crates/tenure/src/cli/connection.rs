//! `tenure connection add | list | test | rotate-token | pause | resume | remove`: the monday.com connection
//! page on the command line. Tokens come from a file or standard input, never from argv.

use crate::connections::*;
use clap::Subcommand;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use store::{MasterKey, Secret, Store};

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
        /// Requests per second tenure may send to the target at most, shared by all its work
        /// (a ceiling: tenure learns the target's own limit and holds under the lower).
        #[arg(long, visible_alias = "max-rate", value_parser = positive)]
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
    /// Pause a connection: scheduled runs pass it by until it is resumed (`tenure apply` still
    /// runs it when asked).
    Pause {
        /// The connection's name.
        name: String,
    },
    /// Resume a paused connection.
    Resume {
        /// The connection's name.
        name: String,
    },
    /// Change a connection's settings in place (its token, links and history stay): a new
    /// address is tested with the stored token before it is saved.
    Set {
        /// The connection's name.
        name: String,
        /// The new Instance URL.
        #[arg(long)]
        url: Option<String>,
        /// monday or generic: how tenure shapes its requests.
        #[arg(long)]
        dialect: Option<scim::Dialect>,
        /// Requests a second at most (a ceiling over the pace learned from the target).
        #[arg(long, visible_alias = "max-rate")]
        rate_limit: Option<f64>,
        /// Allow (true) or refuse (false) plain http.
        #[arg(long)]
        insecure_http: Option<bool>,
        /// Allow (true) or refuse (false) private and loopback addresses.
        #[arg(long)]
        allow_private: Option<bool>,
    },
    /// Remove a connection (its sealed token goes with it; the accounts and links stay). One
    /// with linked accounts needs its name again: --confirm NAME, or typed at the prompt.
    Remove {
        /// The connection's name.
        name: String,
        /// The connection's name again, to remove one that manages accounts.
        #[arg(long)]
        confirm: Option<String>,
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

pub async fn run(cmd: ConnectionCommand, data_dir: &Path, database_url: Option<&str>) -> Result<(), String> {
    let store = crate::config::open(data_dir, database_url).await?;
    let key = MasterKey::load(data_dir)?;
    let result = run_with(cmd, &store, &key).await;
    store.close().await;
    result
}

async fn run_with(cmd: ConnectionCommand, store: &Store, key: &MasterKey) -> Result<(), String> {
    let by = crate::local::actor();
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
                let state = if c.paused.is_some() { "paused" } else { "enabled" };
                outln!(
                    "{}\t{state}\t{}\t{}\ttoken ****{}\t{limit}\t{}",
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
        ConnectionCommand::Pause { name } => {
            service::connections::pause(store, &name, &by).await?;
            outln!("paused {name:?}: scheduled runs pass it by until `tenure connection resume {name:?}`");
            Ok(())
        }
        ConnectionCommand::Resume { name } => {
            service::connections::resume(store, &name, &by).await?;
            outln!("resumed {name:?}: the next scheduled run includes it");
            Ok(())
        }
        ConnectionCommand::Set { name, url, dialect, rate_limit, insecure_http, allow_private } => {
            let to = service::connections::Settings { url, dialect, rate_limit, insecure_http, allow_private };
            for l in service::connections::set(store, key, &name, &to, &by).await? {
                outln!("{l}");
            }
            Ok(())
        }
        ConnectionCommand::Remove { name, confirm } => {
            let links = service::connections::links(store, &name).await?;
            // On a terminal the name is asked for; anywhere else it must be given.
            let confirm = match confirm {
                None if links > 0 && std::io::stdin().is_terminal() => {
                    outln!("{}", service::connections::removal_consequences(links));
                    eprint!("{name:?} manages {links} linked account(s). Type its name to remove it: ");
                    let mut typed = String::new();
                    std::io::stdin().read_line(&mut typed).map_err(|e| e.to_string())?;
                    Some(typed.trim().to_string())
                }
                c => c,
            };
            let r = service::connections::remove(store, &name, &by, confirm.as_deref()).await?;
            outln!("removed {name:?}");
            outln!("{}", service::connections::removal_consequences(r.links_kept));
            Ok(())
        }
    }
}
