//! The HR push endpoint: `POST /hr/v1/push` with one change (`{"event_id", "worker"}`) or a
//! batch (`{"events": [...]}`), signed with HMAC-SHA256 over `"<timestamp>.<body>"`.
//! Stale timestamps are refused (replays), and an event id is applied once (idempotent).

use crate::intake::{self, LoadKind};
use crate::problem::Problem;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hr::{LoadReport, QuarantinedRow, RowProblem};
use jiff::Timestamp;
use serde_json::{json, Value};
use service::secrets::{load_named_secret, verify, SECRET_CONTEXT, SECRET_SETTING};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use store::{MasterKey, Secret, Store, StoreError};

const MAX_BODY: usize = 10 * 1024 * 1024;

/// What the endpoint works with. The secret and the HR settings are read from the store at
/// each request: one rotated (or first set) while the service runs takes effect at once.
pub struct PushState {
    pub store: Store,
    pub key: Arc<MasterKey>,
    /// Settings fixed by the command line (`tenure hr listen` with its flags); None: the
    /// configuration's `[hr]` as it is at each request.
    pub fixed: Option<crate::intake::Intake>,
    pub data_dir: PathBuf,
    /// One intake at a time in this process: each compares against the snapshot the last wrote.
    pub gate: tokio::sync::Mutex<()>,
    /// Woken after an accepted push (the daemon reconciles at once).
    pub wake: Option<Arc<tokio::sync::Notify>>,
}

pub fn router(state: Arc<PushState>) -> Router {
    Router::new().route("/hr/v1/push", post(push)).layer(DefaultBodyLimit::max(MAX_BODY)).with_state(state)
}

/// Errors are RFC 9457 problem documents, as the admin API's on the same listener.
fn problem(status: StatusCode, slug: &str, detail: impl Into<String>) -> Response {
    Problem::new(status, slug, detail).into_response()
}

/// The push secret and HR settings in force now (a secret set or rotated, or a changed
/// header definition, take effect without a restart).
async fn current(st: &PushState) -> Result<(Secret, crate::intake::Intake), Response> {
    // The service's error says which problem it is (a store down, a bad definition).
    let unavailable = |e: service::error::Error| Problem::from(e).into_response();
    let secret = load_named_secret(&st.store, &st.key, SECRET_SETTING, SECRET_CONTEXT, "")
        .await
        .map_err(unavailable)?
        .ok_or_else(|| {
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "no-push-secret",
                "no push secret yet: an admin creates one with `tenure hr push-secret`",
            )
        })?;
    let intake = match &st.fixed {
        Some(i) => i.clone(),
        None => {
            let config = crate::config::current_if_any(&st.store)
                .await
                .map_err(unavailable)?
                .map(|r| r.config)
                .unwrap_or_default();
            crate::intake::Intake::for_config(&config).map_err(unavailable)?
        }
    };
    Ok((secret, intake))
}

/// Whether two records of one id are the same person: the same names and work e-mail.
fn same_person(a: &hr::Worker, b: &hr::Worker) -> bool {
    a.first_name == b.first_name && a.last_name == b.last_name && a.work_email == b.work_email
}

async fn push(State(st): State<Arc<PushState>>, req: axum::extract::Request) -> Response {
    let now = Timestamp::now();
    let headers = req.headers().clone();
    let body: Bytes = match crate::problem::read_bytes(req, &()).await {
        Ok(b) => b,
        Err(p) => return p.into_response(),
    };
    let (secret, intake) = match current(&st).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Err(why) = verify(
        &secret,
        headers.get(service::secrets::TIMESTAMP_HEADER).map(|v| v.as_bytes()),
        headers.get(service::secrets::SIGNATURE_HEADER).map(|v| v.as_bytes()),
        &body,
        now.as_second(),
    ) {
        tracing::warn!(reason = %why, "HR push refused");
        return problem(StatusCode::UNAUTHORIZED, "unauthorized", why);
    }
    let doc: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return Problem::bad_request(
                "malformed-json",
                format!("the body is not JSON: line {}, column {}: {e}", e.line(), e.column()),
            )
            .with_errors(json!({"line": e.line(), "column": e.column()}))
            .into_response()
        }
    };
    let items: Vec<Value> = match doc {
        Value::Object(mut o) if o.contains_key("events") => match o.remove("events") {
            Some(Value::Array(a)) => a,
            _ => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "invalid-body",
                    "\"events\" must be a list of {\"event_id\", \"worker\"}",
                )
            }
        },
        v @ Value::Object(_) => vec![v],
        _ => {
            return problem(
                StatusCode::BAD_REQUEST,
                "invalid-body",
                "the body must be {\"event_id\": ..., \"worker\": {...}} or {\"events\": [...]}",
            )
        }
    };
    // Each item's event id first: without one nothing can be idempotent, so the batch is refused.
    let mut ids: Vec<String> = Vec::with_capacity(items.len());
    let mut first_at: HashMap<String, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let id = item.get("event_id").and_then(Value::as_str).map(str::trim).unwrap_or("");
        if id.is_empty() || id.len() > 200 {
            return problem(
                StatusCode::BAD_REQUEST,
                "invalid-body",
                format!("item {}: \"event_id\" must be a non-empty string of at most 200 characters", i + 1),
            );
        }
        if let Some(j) = first_at.insert(id.to_string(), i) {
            return problem(
                StatusCode::BAD_REQUEST,
                "invalid-body",
                format!("items {} and {} have the same event_id {id:?}", j + 1, i + 1),
            );
        }
        ids.push(id.to_string());
    }

    let _turn = st.gate.lock().await;
    let seen = match st.store.seen_push_ids(&ids).await {
        Ok(s) => s,
        Err(e) => return problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string()),
    };
    let checksum = intake::checksum(&body);
    let mut report = LoadReport {
        file: "push".into(),
        checksum: checksum.clone(),
        rows: 0,
        accepted: vec![],
        quarantined: vec![],
        flagged: vec![],
        ignored_columns: vec![],
        date_formats: Default::default(),
    };
    // A change may carry only what changed for a worker tenure knows: the stored record fills
    // the rest (a new worker still needs every required field).
    let wanted: Vec<String> = items
        .iter()
        .filter_map(|i| i.get("worker").and_then(|w| hr::json_worker_id(w, &intake.def)))
        .map(|w| w.to_string())
        .collect();
    let mut known: HashMap<hr::WorkerId, hr::Worker> = match st.store.snapshot_of(&wanted).await {
        Ok(rows) => rows.iter().filter_map(|r| intake::decode(r).ok()).map(|w| (w.id.clone(), w)).collect(),
        Err(e) => return problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string()),
    };
    let mut accepted_ids = vec![];
    let mut quarantined = vec![];
    // A later change to the same worker in one batch is the newer record: it wins.
    let mut latest: BTreeMap<hr::WorkerId, (usize, hr::Worker)> = BTreeMap::new();
    let mut conflicted: std::collections::HashSet<hr::WorkerId> = Default::default();
    // The items taken for each id so far (a conflict sends them all back out).
    let mut accepted_of: HashMap<hr::WorkerId, Vec<usize>> = HashMap::new();
    for (i, (item, id)) in items.iter().zip(&ids).enumerate() {
        if seen.contains(id) {
            continue;
        }
        report.rows += 1;
        let (worker_id, parsed) = match item.get("worker") {
            Some(w) => hr::worker_from_json(w, &intake.def, Some(&known)),
            None => (
                None,
                Err(vec![RowProblem {
                    column: "worker".into(),
                    value: String::new(),
                    reason: "the item has no \"worker\" object".into(),
                }]),
            ),
        };
        // Two items under one id that disagree on who the person is (name or e-mail) are two
        // people under one id, not two changes of one: both are quarantined, each naming the
        // other, as the file doors quarantine a repeated id.
        let parsed = match parsed {
            Ok(w) if conflicted.contains(&w.id) => Err(vec![RowProblem {
                column: "employee_id".into(),
                value: w.id.to_string(),
                reason: "this employee id came with different people earlier in this push".into(),
            }]),
            Ok(w) if latest.get(&w.id).is_some_and(|(_, p)| !same_person(p, &w)) => {
                latest.remove(&w.id);
                conflicted.insert(w.id.clone());
                // Every item taken for this id so far goes back out, each naming this one.
                let taken = accepted_of.remove(&w.id).unwrap_or_default();
                let first = taken.first().copied().unwrap_or(i);
                let other = |k: usize| RowProblem {
                    column: "employee_id".into(),
                    value: w.id.to_string(),
                    reason: format!(
                        "item {} has the same employee id with another name or e-mail: two people under one id; \
                         neither is taken",
                        k + 1
                    ),
                };
                for &j in &taken {
                    accepted_ids.retain(|a| a != &ids[j]);
                    quarantined.push(json!({"event_id": ids[j], "problems": [other(i)]}));
                    report.quarantined.push(QuarantinedRow {
                        row: j + 1,
                        line: 0,
                        worker_id: Some(w.id.clone()),
                        problems: vec![other(i)],
                        raw: vec![items[j].to_string()],
                        parsed: None,
                    });
                }
                Err(vec![other(first)])
            }
            Ok(w) => Ok(w),
            Err(e) => Err(e),
        };
        match parsed {
            Ok(w) => {
                accepted_ids.push(id.clone());
                accepted_of.entry(w.id.clone()).or_default().push(i);
                // A later partial change in the same batch builds on this one.
                known.insert(w.id.clone(), w.clone());
                latest.insert(w.id.clone(), (i, w));
            }
            Err(problems) => {
                quarantined.push(json!({"event_id": id, "problems": problems}));
                report.quarantined.push(QuarantinedRow {
                    row: i + 1,
                    line: 0,
                    worker_id,
                    problems,
                    raw: vec![item.to_string()],
                    parsed: None,
                });
            }
        }
    }
    let mut ordered: Vec<(usize, hr::Worker)> = latest.into_values().collect();
    ordered.sort_by_key(|(i, _)| *i);
    report.accepted = ordered.into_iter().map(|(_, w)| w).collect();
    let duplicates: Vec<&String> = ids.iter().filter(|i| seen.contains(i)).collect();

    let mut outcome = Value::Null;
    if report.rows > 0 {
        if let Err(e) = intake::keep(&st.store, &st.data_dir, &checksum, &body).await {
            return problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e);
        }
        let extras = intake::LoadExtras {
            push_ids: accepted_ids.clone(),
            // Who sent it: the holder of the push secret.
            uploaded_by: Some("hr push secret".into()),
            fields: Some(intake::summarize(&report.accepted, &intake.summary, now)),
            ..Default::default()
        };
        match intake::apply_with(&st.store, &report, LoadKind::Delta, &intake.cfg, now, extras).await {
            Ok(o) => {
                if let Some(w) = &st.wake {
                    w.notify_one();
                }
                let warnings = o.fields.as_ref().map(|f| f.warnings()).unwrap_or_default();
                outcome = json!({"load_id": o.load_id, "events": o.events, "warnings": warnings})
            }
            Err(intake::IntakeError::Store(StoreError::Duplicate(_))) => {
                return problem(
                    StatusCode::CONFLICT,
                    "conflict",
                    "another node took one of these event ids meanwhile: send again",
                )
            }
            Err(e) => return problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string()),
        }
    }
    let status = if accepted_ids.is_empty() && duplicates.is_empty() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    tracing::info!(
        accepted = accepted_ids.len(),
        duplicates = duplicates.len(),
        quarantined = quarantined.len(),
        "HR push"
    );
    let mut answer = json!({
        "accepted": accepted_ids,
        "duplicates": duplicates,
        "quarantined": quarantined,
    });
    if let Value::Object(o) = outcome {
        answer.as_object_mut().expect("object").extend(o);
    }
    if status.is_success() {
        return (status, Json(answer)).into_response();
    }
    // Nothing taken: a problem document, with what became of each item as its extensions.
    let p = Problem::new(status, "nothing-accepted", "no item of the push was accepted: see quarantined");
    let mut doc = serde_json::to_value(&p).unwrap_or_default();
    if let (Some(d), Value::Object(a)) = (doc.as_object_mut(), answer) {
        d.extend(a);
    }
    (status, [("content-type", "application/problem+json")], doc.to_string()).into_response()
}
