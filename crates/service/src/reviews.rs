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
    let is = |p: &Option<String>| p.as_deref().is_some_and(|p| crate::local::same_person(p, person));
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
/// as its maker); it is refused, the others go ahead. No person: a store without platform
/// users, where nobody's identity can be told apart (see `local::decide`).
pub async fn decide_with(
    store: &store::Store,
    ids: &[i64],
    connection: Option<&str>,
    approve: bool,
    by: &str,
    person: Option<&str>,
    note: Option<&str>,
) -> Result<Decided> {
    let pending = store.reviews(connection, &[store::ReviewState::Pending]).await?;
    let mine = |r: &store::Review| person.is_some_and(|p| set_in_motion_by(r, p).is_some());
    let refused: Vec<(i64, String)> = pending
        .iter()
        .filter(|r| (ids.is_empty() || ids.contains(&r.id)) && mine(r))
        .filter_map(|r| {
            let person = person?;
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
            detail: serde_json::json!({"review": r.id, "stage": r.stage, "proposed_by": r.proposed_by, "uploaded_by": r.uploaded_by, "started_by": r.started_by,
                "actions": serde_json::from_str::<Value>(&r.actions).unwrap_or_default()}),
        })
        .collect();
    crate::decisions::record(store, &records).await?;
    Ok(Decided { decided, refused })
}

/// A review as listed.
pub fn review_view(r: &store::Review) -> Value {
    serde_json::json!({"id": r.id, "connection": r.connection, "worker": r.worker_id, "stage": r.stage,
        "state": r.state.as_str(), "requested_at": r.requested_at, "proposed_by": r.proposed_by, "uploaded_by": r.uploaded_by, "started_by": r.started_by,
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

/// Which reviews a queue shows.
#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    /// Decided ones (approved or rejected), newest first, rather than those waiting.
    pub decided: bool,
    pub connection: Option<String>,
    pub stage: Option<String>,
    /// Part of the name of whoever set it in motion (started its run or uploaded its HR data).
    pub proposer: Option<String>,
    /// Only those waiting at least this many hours.
    pub older_than_hours: Option<i64>,
}

/// The HR event a review comes from, as a reviewer needs it: a termination is not a leave of
/// absence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behind {
    pub kind: String,
    pub effective: jiff::Timestamp,
    /// A leave's kind (fmla, parental, ...).
    pub leave: Option<String>,
    /// The HR load the event came from.
    pub load_id: String,
    /// The worker's time zone (or the configuration's default), where `effective` is read.
    pub zone: String,
}

impl Behind {
    /// The effective moment in the worker's own zone ("2026-06-01T00:00:00+02:00[Europe/Paris]").
    pub fn local(&self) -> String {
        jiff::tz::TimeZone::get(&self.zone)
            .map(|tz| self.effective.to_zoned(tz).to_string())
            .unwrap_or_else(|_| self.effective.to_string())
    }
}

/// A review with why it exists, as the API and `tenure reviews --json` give it.
pub fn queued_view(q: &Queued) -> Value {
    let mut v = review_view(&q.review);
    v["name"] = serde_json::json!(q.name);
    v["hr_status"] = serde_json::json!(q.hr_status);
    v["waiting_hours"] = serde_json::json!(q.waiting_hours);
    v["overdue"] = serde_json::json!(q.overdue);
    v["hr_event"] = match &q.behind {
        Some(b) => {
            serde_json::json!({"kind": b.kind, "effective": b.effective.to_string(), "effective_local": b.local(),
            "time_zone": b.zone, "leave": b.leave, "load_id": b.load_id})
        }
        None => Value::Null,
    };
    v
}

/// A review in a queue, with why it exists.
#[derive(Debug, Clone)]
pub struct Queued {
    pub review: store::Review,
    /// The worker's name in the last HR data (empty when they are gone from it).
    pub name: String,
    /// Their HR status now: active, leave, terminated.
    pub hr_status: String,
    pub behind: Option<Behind>,
    pub waiting_hours: i64,
    /// Waiting longer than the connection's reminder interval.
    pub overdue: bool,
}

/// A leave's kind as a reviewer reads it.
fn leave_name(k: &hr::LeaveKind) -> String {
    match k {
        hr::LeaveKind::LongTerm => "long-term".into(),
        hr::LeaveKind::Fmla => "family or medical".into(),
        hr::LeaveKind::Legal => "legal".into(),
        hr::LeaveKind::Security => "security".into(),
        hr::LeaveKind::Discipline => "disciplinary".into(),
        hr::LeaveKind::Other(s) => s.clone(),
    }
}

fn status_name(s: &hr::Status) -> String {
    match s {
        hr::Status::Active => "active".into(),
        hr::Status::Leave { kind } => format!("on leave ({})", leave_name(kind)),
        hr::Status::Terminated => "terminated".into(),
    }
}

/// Whether a review's stage is the one asked for; a review opened under a name of before
/// ("leave", "change") is found under each of the stages that name covers.
fn stage_matches(review: &str, asked: &str) -> bool {
    let parse = |s: &str| serde_json::from_value::<rules::Stage>(serde_json::Value::String(s.to_string())).ok();
    match (parse(review), parse(asked)) {
        (Some(r), Some(a)) => r == a || r.covers().contains(&a),
        _ => review == asked,
    }
}

/// The event kinds each stage comes from, most telling first.
fn kinds_of(stage: &str) -> &'static [&'static str] {
    match stage {
        // "leave" is the name reviews opened before the stages were told apart carry.
        "leave" => &["termination", "leave_start", "missing_from_full_load"],
        "termination" => &["termination", "missing_from_full_load"],
        "leave_of_absence" => &["leave_start"],
        "hire" => &["hire", "rehire"],
        "rehire" => &["rehire", "leave_return"],
        _ => &["change"],
    }
}

/// The review queue use case (console, API): reviews as filtered, each with the HR event behind
/// it, the worker's name and status now, how long it has waited and whether that is too long.
pub async fn queue(
    store: &store::Store,
    rules: Option<&rules::Rules>,
    f: &QueueFilter,
    now: jiff::Timestamp,
) -> Result<Vec<Queued>> {
    // Decided: by a person, whatever came after (carried out, or superseded by new actions).
    let states: &[store::ReviewState] = if f.decided {
        &[
            store::ReviewState::Approved,
            store::ReviewState::Rejected,
            store::ReviewState::Applied,
            store::ReviewState::Superseded,
        ]
    } else {
        &[store::ReviewState::Pending]
    };
    let proposer = f.proposer.as_deref().map(str::to_lowercase).filter(|p| !p.is_empty());
    let mut chosen: Vec<store::Review> = store
        .reviews(f.connection.as_deref(), states)
        .await?
        .into_iter()
        .filter(|r| !f.decided || r.decided_by.is_some())
        .filter(|r| f.stage.as_deref().is_none_or(|s| s.is_empty() || stage_matches(&r.stage, s)))
        .filter(|r| {
            proposer.as_deref().is_none_or(|p| {
                [&r.proposed_by, &r.uploaded_by]
                    .iter()
                    .any(|x| x.as_deref().is_some_and(|x| x.to_lowercase().contains(p)))
            })
        })
        .collect();
    let waited = |r: &store::Review| {
        r.requested_at.parse::<jiff::Timestamp>().map(|t| now.duration_since(t).as_hours()).unwrap_or_default()
    };
    if let Some(h) = f.older_than_hours {
        chosen.retain(|r| waited(r) >= h);
    }
    if f.decided {
        chosen.reverse();
    }
    let ids: Vec<String> = {
        let mut v: Vec<String> = chosen.iter().map(|r| r.worker_id.clone()).collect();
        v.sort();
        v.dedup();
        v
    };
    let workers: std::collections::HashMap<String, hr::Worker> = store
        .snapshot_of(&ids)
        .await?
        .iter()
        .filter_map(|row| crate::intake::decode(row).ok().map(|w| (row.worker_id.clone(), w)))
        .collect();
    let mut events: std::collections::HashMap<String, Vec<(String, crate::intake::Listed)>> = Default::default();
    for e in store.events_of(&ids).await? {
        if let Ok(l) = crate::intake::listed(&e) {
            events.entry(e.worker_id.clone()).or_default().push((e.load_id.clone(), l));
        }
    }
    let default_zone = rules.map_or_else(|| "UTC".to_string(), |r| r.config.hr.default_time_zone.clone());
    let reminder = |connection: &str| {
        rules
            .and_then(|r| r.config.connections.iter().find(|c| c.name == connection))
            .map_or(24, |c| c.review_reminder_hours) as i64
    };
    Ok(chosen
        .into_iter()
        .map(|r| {
            let w = workers.get(&r.worker_id);
            let requested = r.requested_at.parse::<jiff::Timestamp>().unwrap_or(now);
            let theirs = events.get(&r.worker_id).map(Vec::as_slice).unwrap_or_default();
            // The latest event of a kind this stage comes from, due by the time it was asked.
            let fitting = |e: &&(String, crate::intake::Listed)| kinds_of(&r.stage).contains(&e.1.event.kind.as_str());
            let behind = theirs
                .iter()
                .rev()
                .filter(fitting)
                .find(|e| e.1.event.effective <= requested)
                .or_else(|| theirs.iter().rev().find(fitting))
                .map(|(load_id, e)| Behind {
                    kind: e.event.kind.as_str().to_string(),
                    effective: e.event.effective,
                    leave: match (&e.event.kind, w.map(|w| &w.status)) {
                        (hr::EventKind::LeaveStart, Some(hr::Status::Leave { kind })) => Some(leave_name(kind)),
                        _ => None,
                    },
                    load_id: load_id.clone(),
                    zone: w
                        .and_then(|w| w.time_zone.as_ref())
                        .map_or_else(|| default_zone.clone(), |z| z.as_str().to_string()),
                });
            let waiting_hours = waited(&r);
            Queued {
                name: w
                    .map(|w| {
                        format!(
                            "{} {}",
                            w.preferred_name.as_ref().unwrap_or(&w.first_name).as_str(),
                            w.last_name.as_str()
                        )
                    })
                    .unwrap_or_default(),
                hr_status: w.map(|w| status_name(&w.status)).unwrap_or_default(),
                behind,
                overdue: !f.decided && waiting_hours >= reminder(&r.connection),
                waiting_hours,
                review: r,
            }
        })
        .collect())
}
