//! Reviews (supervised mode: a worker's actions wait until a reviewer approves or rejects
//! them, never the person who set them in motion) and dead letters (a worker's actions that
//! failed run after run, set aside until an admin retries them).

use crate::error::Result;
use serde_json::Value;

/// What a decision on reviews came to: those decided, and those refused with why.
pub struct Decided {
    pub decided: Vec<store::Review>,
    pub refused: Vec<(i64, String)>,
}

/// Why `person` may not decide a review: they started the run that opened it, or uploaded
/// the HR data it acts on.
fn set_in_motion_by(r: &store::Review, person: &str) -> Option<&'static str> {
    let is = |p: &Option<String>| p.as_deref().is_some_and(|p| p.eq_ignore_ascii_case(person));
    if is(&r.proposed_by) {
        Some("started the run that opened it")
    } else if is(&r.uploaded_by) {
        Some("uploaded the HR data it acts on")
    } else {
        None
    }
}

/// The decision use case (`tenure approve|reject`, the API): pending reviews approved or
/// rejected by `by` (as the audit names the caller), each decision in the audit chain.
/// Maker-checker: a review is not decided by the `person` who set it in motion (a token acts
/// as its maker); it is refused, the others go ahead.
pub async fn decide_with(
    store: &store::Store,
    ids: &[i64],
    connection: Option<&str>,
    approve: bool,
    by: &str,
    person: &str,
    note: Option<&str>,
) -> Result<Decided> {
    let pending = store.reviews(connection, &[store::ReviewState::Pending]).await?;
    let mine = |r: &store::Review| set_in_motion_by(r, person).is_some();
    let refused: Vec<(i64, String)> = pending
        .iter()
        .filter(|r| (ids.is_empty() || ids.contains(&r.id)) && mine(r))
        .filter_map(|r| {
            let why = set_in_motion_by(r, person)?;
            Some((r.id, format!("review #{}: {person} {why}; another reviewer must decide it", r.id)))
        })
        .collect();
    let chosen: Vec<i64> = if ids.is_empty() {
        pending.iter().filter(|r| !mine(r)).map(|r| r.id).collect()
    } else {
        ids.iter().copied().filter(|i| !refused.iter().any(|(r, _)| r == i)).collect()
    };
    if chosen.is_empty() {
        return Ok(Decided { decided: vec![], refused });
    }
    let decided = store.decide_reviews(&chosen, connection, approve, by, note).await?;
    // Each decision joins the audit chain: who, their note, the review and what it released.
    let records: Vec<crate::decisions::Decision> = decided
        .iter()
        .map(|r| crate::decisions::Decision {
            action: if approve { "approve" } else { "reject" },
            connection: &r.connection,
            worker: &r.worker_id,
            run_id: "",
            actor: by,
            note,
            detail: serde_json::json!({"review": r.id, "stage": r.stage, "proposed_by": r.proposed_by, "uploaded_by": r.uploaded_by,
                "actions": serde_json::from_str::<Value>(&r.actions).unwrap_or_default()}),
        })
        .collect();
    crate::decisions::record(store, &records).await?;
    Ok(Decided { decided, refused })
}

/// A review as listed.
pub fn review_view(r: &store::Review) -> Value {
    serde_json::json!({"id": r.id, "connection": r.connection, "worker": r.worker_id, "stage": r.stage,
        "state": r.state.as_str(), "requested_at": r.requested_at, "proposed_by": r.proposed_by, "uploaded_by": r.uploaded_by,
        "decided_at": r.decided_at, "decided_by": r.decided_by, "note": r.note,
        "actions": serde_json::from_str::<Value>(&r.actions).unwrap_or_default()})
}

/// A dead letter as listed.
pub fn dead_letter_view(d: &store::DeadLetter) -> Value {
    serde_json::json!({"connection": d.connection, "worker": d.worker_id, "attempts": d.attempts,
        "last_error": d.last_error, "first_at": d.first_at, "last_at": d.last_at, "state": d.state.as_str(),
        "actions": serde_json::from_str::<Value>(&d.actions).unwrap_or_default()})
}

/// The retry use case: these dead letters (all with an empty list) are tried again on the
/// next run; each release is audited.
pub async fn retry_with(store: &store::Store, connection: Option<&str>, workers: &[String], by: &str) -> Result<usize> {
    let before = store.dead_letters(connection).await?;
    let n = store.retry_dead_letters(connection, workers).await?;
    let released: Vec<crate::decisions::Decision> = before
        .iter()
        .filter(|d| d.state == store::LetterState::Dead && (workers.is_empty() || workers.contains(&d.worker_id)))
        .map(|d| crate::decisions::Decision {
            action: "dead_letter_retry",
            connection: &d.connection,
            worker: &d.worker_id,
            run_id: "",
            actor: by,
            note: None,
            detail: serde_json::json!({"attempts": d.attempts, "last_error": d.last_error,
                "actions": serde_json::from_str::<Value>(&d.actions).unwrap_or_default()}),
        })
        .collect();
    crate::decisions::record(store, &released).await?;
    Ok(n)
}
