//! What the record keeps, for an auditor and an operator, whichever door asks: the timeline of a worker (HR events, decisions, actions with their before and after
//! values), the chain's check, exports for other tools, and the runs with their counts.

use crate::error::{Error, Result};
use serde_json::{json, Value};
use store::{AuditRecord, Store};

pub const DECISIONS: [&str; 26] = [
    "approve",
    "reject",
    "dead_letter_retry",
    "guard_confirm",
    "config_import",
    "connection_add",
    "token_rotate",
    "connection_remove",
    "user_add",
    "user_set_role",
    "user_disable",
    "user_enable",
    "user_reset_password",
    "first_admin",
    "api_token_create",
    "api_token_revoke",
    "login_failed",
    "password_change",
    "connection_set",
    "break_glass",
    "user_sessions_end",
    "second_factor_enrol",
    "second_factor_remove",
    "second_factor_required",
    "recovery_code_used",
    "oidc_secret_set",
];

pub fn detail(r: &AuditRecord) -> Value {
    serde_json::from_str(&r.entry.detail).unwrap_or_default()
}

pub fn record_json(r: &AuditRecord) -> Value {
    let kind = if DECISIONS.contains(&r.entry.action.as_str()) { "decision" } else { "action" };
    json!({"type": kind, "seq": r.seq, "at": r.at, "run": r.entry.run_id, "connection": r.entry.connection,
        "worker": r.entry.worker_id, "action": r.entry.action, "outcome": r.entry.outcome, "detail": detail(r)})
}

/// Which audit records: by moment, run, worker, connection, actor, action, and kind
/// (decision or action).
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub since: Option<jiff::Timestamp>,
    pub until: Option<jiff::Timestamp>,
    pub run: Option<String>,
    pub worker: Option<String>,
    pub connection: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    /// `decision` or `action`.
    pub kind: Option<String>,
}

/// The audit records a filter selects, in chain order.
pub async fn select(store: &Store, f: &Filter) -> Result<Vec<AuditRecord>> {
    // Stored moments differ in their fraction digits: read a second wider, then keep
    // exactly the instants asked for.
    let wide = |t: Option<jiff::Timestamp>, by: i64| {
        t.map(|t| (t + jiff::SignedDuration::from_secs(by)).strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
    };
    let (lo, hi) = (wide(f.since, -1), wide(f.until, 1));
    let records = store.audit_where(lo.as_deref(), hi.as_deref(), f.run.as_deref()).await?;
    Ok(records
        .into_iter()
        .filter(|r| {
            let at: Option<jiff::Timestamp> = r.at.parse().ok();
            let decision = DECISIONS.contains(&r.entry.action.as_str());
            f.since.is_none_or(|s| at.is_some_and(|a| a >= s))
                && f.until.is_none_or(|u| at.is_some_and(|a| a <= u))
                && f.worker.as_ref().is_none_or(|w| &r.entry.worker_id == w)
                && f.connection.as_ref().is_none_or(|c| &r.entry.connection == c)
                && f.action.as_ref().is_none_or(|a| &r.entry.action == a)
                && f.kind.as_deref().is_none_or(|k| (k == "decision") == decision)
                && f.actor.as_ref().is_none_or(|a| detail(r)["actor"].as_str() == Some(a.as_str()))
        })
        .collect())
}

/// One page of the records a filter selects, newest first, with how many it selects in all
/// (the console's audit: read in SQL, so a page of a 100,000-record audit reads 100 records).
/// Moments count to the second: `since` from the start of its second, `until` to its end.
pub async fn page(store: &Store, f: &Filter, limit: usize, offset: usize) -> Result<(usize, Vec<AuditRecord>)> {
    let second = |t: jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    let q = store::AuditFilter {
        since: f.since.map(second),
        before: f.until.map(|t| second(t + jiff::SignedDuration::from_secs(1))),
        worker: f.worker.clone(),
        connection: f.connection.clone(),
        action: f.action.clone(),
        run: f.run.clone(),
        // As the record writes it: `"actor":"user:rita"`, compact JSON.
        detail_holds: f.actor.as_ref().map(|a| format!("\"actor\":{}", Value::String(a.clone()))),
        actions: f.kind.as_deref().map(|k| (DECISIONS.iter().map(|d| d.to_string()).collect(), k == "decision")),
    };
    let (total, records) = store.audit_page(&q, limit as i64, offset as i64).await?;
    Ok((total.max(0) as usize, records))
}

/// One JSON object a line, with each record's hashes.
pub fn to_ndjson(records: &[AuditRecord]) -> String {
    let mut out = String::new();
    for r in records {
        let mut v = record_json(r);
        v["hash"] = json!(r.hash);
        v["prev_hash"] = json!(r.prev_hash);
        out.push_str(&v.to_string());
        out.push('\n');
    }
    out
}

/// CSV for a spreadsheet: no cell can start a formula.
pub fn to_csv(records: &[AuditRecord]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(vec![]);
    let header = ["seq", "at", "run", "connection", "worker", "action", "outcome", "reason", "detail", "hash"];
    w.write_record(header).map_err(|e| Error::unavailable(e.to_string()))?;
    for r in records {
        let d = detail(r);
        let seq = r.seq.to_string();
        let cells = [
            seq.as_str(),
            &r.at,
            &r.entry.run_id,
            &r.entry.connection,
            &r.entry.worker_id,
            &r.entry.action,
            &r.entry.outcome,
            d["reason"].as_str().unwrap_or_default(),
            &r.entry.detail,
            &r.hash,
        ];
        // HR values are data: no cell may start a formula in a spreadsheet.
        w.write_record(cells.iter().map(|c| hr::csv_safe(c).into_owned()))
            .map_err(|e| Error::unavailable(e.to_string()))?;
    }
    w.into_inner().map_err(|e| Error::unavailable(e.to_string()))
}

/// A run as listed: its counts (Total, Skipped, No change, Processed, Failed) and failures.
pub fn run_view(r: &store::RunRecord) -> Value {
    let progress = r.progress.as_ref().map(|(done, total, at)| json!({"done": done, "total": total, "at": at}));
    json!({"id": r.id, "connection": r.connection, "started_at": r.started_at, "finished_at": r.finished_at,
        "started_by": r.started_by, "progress": progress, "rehearsal_as_of": r.as_of, "refused": r.refused(),
        "summary": r.summary.as_deref().and_then(|s| serde_json::from_str::<Value>(s).ok())})
}

/// What a check of the chain found: how many records, the first broken one and why, and the
/// head (the last record's number and hash, which an auditor keeps to compare later).
pub struct Verified {
    pub records: usize,
    /// The first broken record and why; or, for a chain intact but shorter than a head known
    /// to have been written, that head's number and what is missing.
    pub broken: Option<(i64, String)>,
    pub head: Option<(i64, String)>,
    /// The chain is intact but ends before a head that was written (records cut off the end,
    /// or a copy of the store from before put back).
    pub behind: bool,
}

/// The chain checked end to end (`tenure audit verify`, the API, the console), and against
/// the last head known to have been written (kept apart from the chain).
pub async fn verify(store: &Store) -> Result<Verified> {
    verify_against(store, None).await
}

/// As `verify`, and against a head the caller kept (`--expect-head SEQ:HASH`): the chain
/// must hold that record with that hash, so nothing was cut off the end since.
pub async fn verify_against(store: &Store, expect: Option<(i64, String)>) -> Result<Verified> {
    let (records, mut broken) = store.verify_audit().await?;
    let head = store.audit_head().await?;
    let mut behind = false;
    if broken.is_none() {
        let known = store.known_audit_head().await?;
        for (whose, h) in [("the last head written", known), ("the head expected", expect)] {
            let Some((seq, hash)) = h else { continue };
            let last = head.as_ref().map_or(0, |(s, _)| *s);
            if seq > last {
                behind = true;
                broken = Some((
                    seq,
                    format!(
                        "the chain ends at record {last}, behind {whose} (record {seq}, hash {hash}): {} record(s) \
                         are missing at the end (records cut off, or a copy of the store from before)",
                        seq - last
                    ),
                ));
                break;
            }
            if store.audit_record_hash(seq).await?.as_deref() != Some(hash.as_str()) {
                broken = Some((seq, format!("record {seq} is not the one {whose} names (hash {hash})")));
                break;
            }
        }
    }
    Ok(Verified { records, broken, head, behind })
}
