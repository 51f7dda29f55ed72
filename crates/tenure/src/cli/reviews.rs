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
    /// Who decides (default: TENURE_ACTOR, else the login name).
    #[arg(long)]
    pub by: Option<String>,
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
    let by = crate::decisions::actor(d.by.as_deref());
    let r = decide_with(&store, &d.ids, d.connection.as_deref(), approve, &by, &by, d.note.as_deref()).await;
    store.close().await;
    let Decided { decided, refused } = r?;
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
    let r = run_dead_letters(&store, cmd).await;
    store.close().await;
    r
}

async fn run_dead_letters(store: &store::Store, cmd: DeadLetterCommand) -> Result<u8, String> {
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
        DeadLetterCommand::Retry { workers, all, connection } => {
            if workers.is_empty() && !all {
                return Err("name the workers to retry, or --all".into());
            }
            let n = retry_with(store, connection.as_deref(), &workers, &crate::decisions::actor(None)).await?;
            outln!("{n} dead letter(s) will be tried again on the next run");
            Ok(0)
        }
    }
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
