//! `tenure reviews | approve | reject` (supervised mode) and `tenure dead-letters`.

use crate::config;
use crate::reviews::*;
use clap::{Args, Subcommand};
use serde_json::Value;
use std::path::Path;

#[derive(Args)]
pub struct Decide {
    /// Review numbers (from `tenure reviews`); none with --all.
    pub ids: Vec<i64>,
    /// Every pending review (of --connection when given).
    #[arg(long, conflicts_with = "ids")]
    pub all: bool,
    /// Only this connection's reviews.
    #[arg(long)]
    pub connection: Option<String>,
    /// On a store with platform users, deciding from the command line on the store itself
    /// needs a reason: audited as break-glass and sent as a notice. (With --server you act as
    /// the token's user instead.)
    #[arg(long, value_name = "REASON")]
    pub break_glass: Option<String>,
    /// Why, kept with the decision.
    #[arg(long)]
    pub note: Option<String>,
}

#[derive(Subcommand)]
pub enum DeadLetterCommand {
    /// The workers set aside, with their last error.
    List {
        /// Only this connection.
        #[arg(long)]
        connection: Option<String>,
        /// One JSON array on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Try these workers again on the next run (every dead letter with --all).
    Retry {
        /// Employee ids to try again.
        workers: Vec<String>,
        /// Every dead letter.
        #[arg(long, conflicts_with = "workers")]
        all: bool,
        /// Only this connection.
        #[arg(long)]
        connection: Option<String>,
        /// On a store with platform users: why this cannot wait for one of them (audited as
        /// break-glass, sent as a notice).
        #[arg(long, value_name = "REASON")]
        break_glass: Option<String>,
    },
}

pub async fn list(
    data_dir: &Path,
    database_url: Option<&str>,
    connection: Option<String>,
    all: bool,
    json: bool,
) -> Result<u8, String> {
    let store = config::open(data_dir, database_url).await?;
    let rules = config::current(&store).await.ok();
    let mut reviews = vec![];
    let mut failed = None;
    for decided in if all { &[false, true][..] } else { &[false][..] } {
        let f = QueueFilter { decided: *decided, connection: connection.clone(), ..Default::default() };
        match queue(&store, rules.as_ref(), &f, jiff::Timestamp::now()).await {
            Ok(q) => reviews.extend(q),
            Err(e) => failed = Some(e.to_string()),
        }
    }
    let h = store.holds(connection.as_deref()).await.map_err(|e| e.to_string());
    store.close().await;
    if let Some(e) = failed {
        return Err(e);
    }
    let holds = h?;
    if json {
        let v: Vec<Value> = reviews.iter().map(queued_view).collect();
        outln!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
        return Ok(0);
    }
    if reviews.is_empty() {
        outln!("no {}reviews", if all { "" } else { "pending " });
    }
    for q in &reviews {
        let r = &q.review;
        let decided = match (&r.decided_by, &r.decided_at) {
            (Some(b), Some(at)) => format!(" by {b} at {at}"),
            _ => String::new(),
        };
        let name = if q.name.is_empty() { String::new() } else { format!(" ({})", q.name) };
        outln!("#{:<5} {:<8} worker {}{name} {} on {:?}{decided}", r.id, r.state, r.worker_id, r.stage, r.connection);
        if let Some(b) = &q.behind {
            let leave = b.leave.as_deref().map(|l| format!(" ({l})")).unwrap_or_default();
            outln!(
                "         HR event: {}{leave}, effective {} ({} in {}), from HR load {}",
                b.kind,
                b.effective,
                b.local(),
                b.zone,
                b.load_id
            );
        }
        let by: Vec<String> = [("run started by", &r.started_by), ("HR data uploaded by", &r.uploaded_by)]
            .iter()
            .filter_map(|(what, who)| who.as_deref().map(|w| format!("{what} {w}")))
            .collect();
        if !by.is_empty() {
            outln!("         set in motion: {}", by.join("; "));
        }
        for line in describe(&r.actions) {
            outln!("         {line}");
        }
    }
    if !holds.is_empty() {
        outln!("held by tenure (no approval releases them; the HR data must change):");
        for (c, w, reason, since) in &holds {
            outln!("  worker {w:<10} on {c:?} since {since}: {reason}");
        }
    }
    Ok(0)
}

pub async fn decide(data_dir: &Path, database_url: Option<&str>, d: Decide, approve: bool) -> Result<u8, String> {
    if d.ids.is_empty() && !d.all {
        return Err("name the reviews to decide (see `tenure reviews`), or --all".into());
    }
    let store = config::open(data_dir, database_url).await?;
    let key = store::MasterKey::load(data_dir).ok();
    let what = if approve { "approve reviews" } else { "reject reviews" };
    let r = match crate::local::decide(&store, key.as_ref(), what, d.break_glass.as_deref()).await {
        Ok(local) => {
            if let Some(n) = &local.note {
                eprintln!("note: {n}");
            }
            for w in &local.warnings {
                eprintln!("warning: {w}");
            }
            let by = local.actor.clone();
            decide_with(
                &store,
                &d.ids,
                d.connection.as_deref(),
                approve,
                &by,
                local.person.as_deref(),
                d.note.as_deref(),
            )
            .await
            .map(|r| (r, by))
        }
        Err(e) => Err(e),
    };
    store.close().await;
    let (r, by) = r?;
    let Decided { decided, refused } = r;
    let verb = if approve { "approved" } else { "rejected" };
    for r in &decided {
        outln!("#{} {verb}: worker {} ({}) on {:?}", r.id, r.worker_id, r.stage, r.connection);
    }
    for (_, why) in &refused {
        outln!("refused: {why}");
    }
    outln!(
        "{} review(s) {verb} by {by}{}",
        decided.len(),
        if approve && !decided.is_empty() {
            "; the next run (tenure apply, or the daemon) carries them out"
        } else {
            ""
        }
    );
    Ok(if refused.is_empty() { 0 } else { 1 })
}

pub async fn dead_letters(data_dir: &Path, database_url: Option<&str>, cmd: DeadLetterCommand) -> Result<u8, String> {
    let store = config::open(data_dir, database_url).await?;
    let key = store::MasterKey::load(data_dir).ok();
    let r = run_dead_letters(&store, key.as_ref(), cmd).await;
    store.close().await;
    r
}

async fn run_dead_letters(
    store: &store::Store,
    key: Option<&store::MasterKey>,
    cmd: DeadLetterCommand,
) -> Result<u8, String> {
    match cmd {
        DeadLetterCommand::List { connection, json } => {
            let all = store.dead_letters(connection.as_deref()).await.map_err(|e| e.to_string())?;
            let dead: Vec<_> = all.iter().filter(|d| d.state == store::LetterState::Dead).collect();
            if json {
                let v: Vec<Value> = dead.iter().map(|d| dead_letter_view(d)).collect();
                outln!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
                return Ok(0);
            }
            for d in &dead {
                outln!(
                    "worker {:<10} on {:?}: failed {} run(s) from {} to {}; last error: {}",
                    d.worker_id,
                    d.connection,
                    d.attempts,
                    d.first_at,
                    d.last_at,
                    d.last_error
                );
                for line in describe(&d.actions) {
                    outln!("    {line}");
                }
            }
            let retrying = all.len() - dead.len();
            outln!("dead letters: {}; failing but still retried: {retrying}", dead.len());
            Ok(0)
        }
        DeadLetterCommand::Retry { workers, all, connection, break_glass } => {
            if workers.is_empty() && !all {
                return Err("name the workers to retry, or --all".into());
            }
            let local = crate::local::decide(store, key, "retry dead letters", break_glass.as_deref()).await?;
            for w in &local.warnings {
                eprintln!("warning: {w}");
            }
            let n = retry_with(store, connection.as_deref(), &workers, &local.actor).await?;
            outln!("{n} dead letter(s) will be tried again on the next run");
            Ok(0)
        }
    }
}

/// `reviews`, `approve`, `reject` and `dead-letters` through a server, as the token's user.
pub async fn through_server(remote: &super::remote::Remote, what: Through) -> Result<u8, String> {
    match what {
        Through::List { connection, all, json } => {
            let mut path = format!("/api/v1/reviews?state={}", if all { "all" } else { "pending" });
            if let Some(c) = &connection {
                path.push_str(&format!("&connection={}", service::names::percent_encode(c)));
            }
            let v = remote.get(&path).await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
                return Ok(0);
            }
            let list = v.as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                outln!("no {}reviews", if all { "" } else { "pending " });
            }
            for r in &list {
                outln!(
                    "#{:<5} {:<8} worker {} {} on {:?}",
                    r["id"],
                    r["state"].as_str().unwrap_or("?"),
                    r["worker"].as_str().unwrap_or("?"),
                    r["stage"].as_str().unwrap_or("?"),
                    r["connection"].as_str().unwrap_or("?")
                );
            }
            Ok(0)
        }
        Through::Decide(d, approve) => {
            if d.break_glass.is_some() {
                return Err(
                    "--break-glass is for the store itself: through --server you act as the token's user".into()
                );
            }
            if d.ids.is_empty() && !d.all {
                return Err("name the reviews to decide (see `tenure reviews`), or --all".into());
            }
            let (lines, refused) = remote.decide(&d.ids, d.connection.as_deref(), approve, d.note.as_deref()).await?;
            for l in lines {
                outln!("{l}");
            }
            Ok(if refused { 1 } else { 0 })
        }
        Through::DeadLetters(DeadLetterCommand::Retry { workers, all, connection, break_glass }) => {
            if break_glass.is_some() {
                return Err(
                    "--break-glass is for the store itself: through --server you act as the token's user".into()
                );
            }
            if workers.is_empty() && !all {
                return Err("name the workers to retry, or --all".into());
            }
            let n = remote.retry(&workers, connection.as_deref()).await?;
            outln!("{n} dead letter(s) will be tried again on the next run");
            Ok(0)
        }
        Through::DeadLetters(DeadLetterCommand::List { connection, json }) => {
            let mut path = "/api/v1/dead-letters".to_string();
            if let Some(c) = &connection {
                path.push_str(&format!("?connection={}", service::names::percent_encode(c)));
            }
            let v = remote.get(&path).await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
            } else {
                for d in v.as_array().into_iter().flatten() {
                    outln!(
                        "worker {:<10} on {:?}: last error: {}",
                        d["worker"].as_str().unwrap_or("?"),
                        d["connection"].as_str().unwrap_or("?"),
                        d["last_error"].as_str().unwrap_or("?")
                    );
                }
                outln!("dead letters: {}", v.as_array().map_or(0, Vec::len));
            }
            Ok(0)
        }
    }
}

/// What goes through a server from this module.
pub enum Through {
    List { connection: Option<String>, all: bool, json: bool },
    Decide(Decide, bool),
    DeadLetters(DeadLetterCommand),
}

/// One line per action of a review: what would be done.
fn describe(actions: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(actions).unwrap_or_default();
    v.as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let mut line = a["kind"].as_str().unwrap_or("?").to_string();
            if let Some(t) = a["team"].as_str() {
                line += &format!(" {t:?}");
            }
            for c in a["changes"].as_array().into_iter().flatten() {
                line += &format!(" {}: {} -> {}", c["attribute"].as_str().unwrap_or("?"), c["before"], c["after"]);
            }
            if let Some(u) = a["body"]["userName"].as_str() {
                line += &format!(" {u}");
            } else if let Some(u) = a["user_name"].as_str().filter(|_| a["kind"] == "adopt") {
                line += &format!(" {u}");
            }
            if let Some(why) = a["review"].as_str() {
                line += &format!(" (needs a reviewer: {why})");
            }
            line
        })
        .collect()
}
