//! `tenure audit` and `tenure runs`: what the record keeps, for an auditor and an operator.
//! The timeline of a worker (HR events, decisions, actions with their before and after
//! values), the chain's check, exports for other tools, and the runs with their counts.

use crate::audit::*;
use crate::config;
use clap::Subcommand;
use serde_json::{json, Value};
use std::path::Path;
use store::{EventQuery, Store};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain: any record changed, removed or reordered is found, and a chain
    /// that ends before the last head written (kept apart from it) is reported as behind.
    Verify {
        /// A head kept from an earlier `audit verify` (SEQ:HASH): the chain must still hold
        /// that record with that hash, so nothing was cut off the end since.
        #[arg(long, value_name = "SEQ:HASH")]
        expect_head: Option<String>,
    },
    /// One worker's timeline: HR events, decisions about the worker, and every action with
    /// its reason, before and after values and outcome.
    Worker {
        /// The employee id.
        id: String,
        /// One JSON array of timeline entries ("type": hr_event, decision or action).
        #[arg(long)]
        json: bool,
    },
    /// Records between two moments (or of one run), for a spreadsheet or a log tool.
    Export {
        /// From this moment (RFC 3339), inclusive.
        #[arg(long)]
        since: Option<jiff::Timestamp>,
        /// Until this moment (RFC 3339), inclusive.
        #[arg(long)]
        until: Option<jiff::Timestamp>,
        /// Only this run's records.
        #[arg(long)]
        run: Option<String>,
        /// csv (cells that would start a formula are neutralised) or ndjson (one record a line).
        #[arg(long, default_value = "csv")]
        format: ExportFormat,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Csv,
    Ndjson,
}

#[derive(Subcommand)]
pub enum RunsCommand {
    /// One run: its counts, every action it took and every failure.
    Show {
        /// The run id (from `tenure runs`).
        id: String,
        /// One JSON document.
        #[arg(long)]
        json: bool,
    },
}

pub async fn audit_cmd(data_dir: &Path, database_url: Option<&str>, cmd: AuditCommand) -> Result<u8, String> {
    let store = config::open(data_dir, database_url).await?;
    let r = audit(&store, cmd).await;
    store.close().await;
    r
}

async fn audit(store: &Store, cmd: AuditCommand) -> Result<u8, String> {
    match cmd {
        AuditCommand::Verify { expect_head } => {
            let expect = match expect_head.as_deref() {
                None => None,
                Some(h) => {
                    let (seq, hash) = h
                        .split_once(':')
                        .and_then(|(s, h)| Some((s.trim().parse::<i64>().ok()?, h.trim().to_string())))
                        .filter(|(s, h)| *s > 0 && !h.is_empty())
                        .ok_or_else(|| format!("--expect-head {h:?}: SEQ:HASH, as `audit verify` printed it"))?;
                    Some((seq, hash))
                }
            };
            let v = service::audit::verify_against(store, expect).await.map_err(|e| e.to_string())?;
            if v.behind {
                let (seq, why) = v.broken.clone().unwrap_or_default();
                outln!("audit: {} records, BEHIND its head (record {seq}): {why}", v.records);
                return Ok(1);
            }
            match (v.broken, v.head) {
                (None, Some((seq, hash))) => {
                    outln!("audit: {} records, chain intact; head: record {seq}, hash {hash}", v.records);
                    outln!("keep the head to prove later that nothing was cut off: --expect-head {seq}:{hash}");
                    Ok(0)
                }
                (None, None) => {
                    outln!("audit: 0 records, chain intact");
                    Ok(0)
                }
                (Some((seq, why)), _) => {
                    outln!("audit: {} records, TAMPERED at record {seq}: {why}", v.records);
                    Ok(1)
                }
            }
        }
        AuditCommand::Worker { id, json } => {
            let records = store.audit(Some(&id)).await.map_err(|e| e.to_string())?;
            let events = store
                .events(&EventQuery { worker_id: Some(id.clone()), ..Default::default() })
                .await
                .map_err(|e| e.to_string())?;
            // One timeline, by the moment each entry was written.
            let mut timeline: Vec<(String, Value)> = records.iter().map(|r| (r.at.clone(), record_json(r))).collect();
            for e in &events {
                let body: Value = serde_json::from_str(&e.body).unwrap_or_default();
                let effective = jiff::Timestamp::from_second(e.effective_at).map(|t| t.to_string()).unwrap_or_default();
                timeline.push((
                    e.created_at.clone(),
                    json!({"type": "hr_event", "at": e.created_at, "kind": e.kind, "state": e.state,
                        "effective": effective, "changes": body["changes"].clone(), "load": e.load_id}),
                ));
            }
            timeline.sort_by(|a, b| a.0.cmp(&b.0));
            if json {
                let v: Vec<Value> = timeline.into_iter().map(|(_, v)| v).collect();
                outln!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
                return Ok(0);
            }
            for (at, v) in &timeline {
                match v["type"].as_str() {
                    Some("hr_event") => {
                        outln!(
                            "{at}  hr {:<9} {} (takes effect {})",
                            v["kind"].as_str().unwrap_or_default(),
                            v["state"].as_str().unwrap_or_default(),
                            v["effective"].as_str().unwrap_or_default()
                        );
                        for c in v["changes"].as_array().into_iter().flatten() {
                            outln!("        {}: {} -> {}", c["field"].as_str().unwrap_or("?"), c["before"], c["after"]);
                        }
                    }
                    Some("decision") => {
                        let d = &v["detail"];
                        let review = d["review"].as_i64().map(|r| format!(" (review #{r})")).unwrap_or_default();
                        let note = d["note"].as_str().map(|n| format!(": {n}")).unwrap_or_default();
                        outln!(
                            "{at}  {:<12} {}{review}{note}  ({})",
                            v["action"].as_str().unwrap_or_default(),
                            v["outcome"].as_str().unwrap_or_default(),
                            v["connection"].as_str().unwrap_or_default()
                        );
                    }
                    _ => {
                        let d = &v["detail"];
                        outln!(
                            "{at}  {:<12} {:<30} {}  ({})",
                            v["action"].as_str().unwrap_or_default(),
                            v["outcome"].as_str().unwrap_or_default(),
                            d["reason"].as_str().unwrap_or_default(),
                            v["connection"].as_str().unwrap_or_default()
                        );
                        for c in d["changes"].as_array().into_iter().flatten() {
                            outln!(
                                "        {}: {} -> {}",
                                c["attribute"].as_str().unwrap_or("?"),
                                c["before"],
                                c["after"]
                            );
                        }
                    }
                }
            }
            outln!("records: {}, hr events: {}", records.len(), events.len());
            Ok(0)
        }
        AuditCommand::Export { since, until, run, format } => {
            let f = Filter { since, until, run, ..Filter::default() };
            let records = select(store, &f).await?;
            let bytes = match format {
                ExportFormat::Ndjson => to_ndjson(&records).into_bytes(),
                ExportFormat::Csv => to_csv(&records)?,
            };
            use std::io::Write;
            if let Err(e) = std::io::stdout().lock().write_all(&bytes) {
                crate::cli::output::closed(e);
            }
            eprintln!("exported {} record(s)", records.len());
            Ok(0)
        }
    }
}

/// Counts of a run's summary, in the words of the product.
fn counts(summary: &Value) -> String {
    let n = |k: &str| summary[k].as_u64().unwrap_or(0);
    format!(
        "Total {}, Skipped {}, No change {}, Processed {}, Failed {}",
        n("total"),
        n("skipped"),
        n("no_change"),
        n("processed"),
        n("failed")
    )
}

pub async fn runs_cmd(
    data_dir: &Path,
    database_url: Option<&str>,
    cmd: Option<RunsCommand>,
    connection: Option<String>,
    limit: i64,
    json: bool,
) -> Result<u8, String> {
    let store = config::open(data_dir, database_url).await?;
    let r = runs(&store, cmd, connection, limit, json).await;
    store.close().await;
    r
}

async fn runs(
    store: &Store,
    cmd: Option<RunsCommand>,
    connection: Option<String>,
    limit: i64,
    json: bool,
) -> Result<u8, String> {
    let Some(RunsCommand::Show { id, json }) = cmd else {
        let all = store.runs(connection.as_deref(), limit.max(1)).await.map_err(|e| e.to_string())?;
        if json {
            let v: Vec<Value> = all.iter().map(run_view).collect();
            outln!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
            return Ok(0);
        }
        for r in &all {
            let summary: Value = r.summary.as_deref().and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default();
            let flag = |g: &Value| match g["guard"].as_str() {
                Some("teams") => "--confirm-team-removals",
                Some("reactivation") => "--confirm-reactivation",
                _ => "--confirm-deprovision",
            };
            let mut state = match (r.refused(), &r.finished_at) {
                (Some(why), _) => {
                    format!(
                        "REFUSED by the guard, nothing applied: {why} ({} {})",
                        flag(&summary),
                        summary["confirm_with"]
                    )
                }
                (None, Some(_)) => counts(&summary),
                (None, None) => "did not finish".into(),
            };
            if r.refused().is_none() {
                for g in summary["guards"].as_array().into_iter().flatten() {
                    state.push_str(&format!(
                        "  HELD by the guard: {} {} ({} {})",
                        g["confirm_with"],
                        g["holds"].as_str().unwrap_or_default(),
                        flag(g),
                        g["confirm_with"]
                    ));
                }
            }
            let by = r.started_by.as_deref().map(|b| format!("  by {b}")).unwrap_or_default();
            let rehearsal = r.as_of.as_deref().map(|t| format!("  REHEARSAL as of {t}")).unwrap_or_default();
            outln!("{}  {}  {:?}{by}{rehearsal}  {state}", r.started_at, r.id, r.connection);
        }
        outln!("runs: {}", all.len());
        return Ok(0);
    };
    let run =
        store.run(&id).await.map_err(|e| e.to_string())?.ok_or_else(|| format!("no run {id:?}: see `tenure runs`"))?;
    let summary: Value = run.summary.as_deref().and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default();
    let records = store.audit_where(None, None, Some(&id)).await.map_err(|e| e.to_string())?;
    if json {
        let v = json!({"id": run.id, "connection": run.connection, "started_at": run.started_at,
            "finished_at": run.finished_at, "summary": summary,
            "records": records.iter().map(record_json).collect::<Vec<_>>()});
        outln!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
        return Ok(0);
    }
    outln!(
        "run {} on {:?}, started {}, {}",
        run.id,
        run.connection,
        run.started_at,
        match &run.finished_at {
            Some(f) => format!("finished {f}"),
            None => "did not finish (resolved by the next run)".into(),
        }
    );
    outln!("{}", counts(&summary));
    for g in summary["guards"].as_array().into_iter().flatten().filter(|_| run.refused().is_none()) {
        outln!(
            "held by the {} guard: {} {} ({}); confirm with {} {}",
            g["guard"].as_str().unwrap_or_default(),
            g["confirm_with"],
            g["holds"].as_str().unwrap_or_default(),
            g["why"].as_str().unwrap_or_default().trim_end_matches('.'),
            g["flag"].as_str().unwrap_or_default(),
            g["confirm_with"]
        );
    }
    for r in &records {
        let d = detail(r);
        let who = d["user_name"].as_str().map(|u| format!(" ({u})")).unwrap_or_default();
        let team = d["team"].as_str().map(|t| format!(" [team {t}]")).unwrap_or_default();
        outln!("  worker {}{who} {}{team}: {}", r.entry.worker_id, r.entry.action, r.entry.outcome);
    }
    for f in summary["failed_actions"].as_array().into_iter().flatten() {
        outln!(
            "failed: worker {} {}: {}",
            f["worker"].as_str().unwrap_or_default(),
            f["action"].as_str().unwrap_or_default(),
            f["error"].as_str().unwrap_or_default()
        );
    }
    Ok(0)
}
