//! The plan page (what a run would do, by kind, filtered and paged, with the guard's verdict
//! before anything is sent), Apply, and the runs: listed, and one with its counts, failures and
//! live progress. A run started here is the service's (`runs::start`), as the API's is.

use super::{answer, render, segment, when, Chrome, Failure, Page, Posted};
use crate::api::Shared;
use crate::users::Role;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::Value;
use service::runs;

/// Actions on one page of the plan.
const PAGE: usize = 100;

#[derive(Clone)]
pub struct ActionRow {
    pub worker: String,
    pub kind: String,
    pub role: String,
    pub account: String,
    pub reason: String,
    /// (attribute, before, after)
    pub changes: Vec<(String, String, String)>,
}

#[derive(Template)]
#[template(path = "plan.html")]
struct PlanPage {
    chrome: Chrome,
    name: String,
    path: String,
    guard: Option<String>,
    guard_kind: GuardKind,
    confirm_with: u64,
    deactivations: u64,
    kinds: Vec<(String, usize)>,
    kind: String,
    reason: String,
    actions: Vec<ActionRow>,
    shown_line: String,
    previous: Option<String>,
    next: Option<String>,
    /// When the plan shown was made.
    planned: String,
    can_apply: bool,
    can_confirm: bool,
}

#[derive(Deserialize, Default)]
pub struct PlanQuery {
    kind: Option<String>,
    reason: Option<String>,
    page: Option<usize>,
    /// Plan again now rather than show the plan kept.
    fresh: Option<String>,
}

/// The plan now, as `tenure plan --json` gives it.
async fn document(api: &Shared, page: &Page, name: &str) -> Result<Value, Failure> {
    let rules = service::config::current(&api.store).await?;
    runs::pick(&rules, Some(name)).map_err(|e| Failure::new(StatusCode::NOT_FOUND, e))?;
    let by = format!("plan by {}", page.actor());
    let (p, _) = runs::plan(&api.store, &api.key, rules, name, jiff::Timestamp::now(), &[], &by).await?;
    let v = runs::plan_document(&p)?;
    runs::release(p);
    Ok(v)
}

pub(super) fn shown(v: &Value) -> String {
    match v {
        Value::Null => "–".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A JSON list of changes as (attribute, before, after) texts: a plan action's, an audit record's.
pub(super) fn changes_of(v: &Value) -> Vec<(String, String, String)> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|c| (shown(&c["attribute"]), shown(&c["before"]), shown(&c["after"])))
        .collect()
}

/// A plan as its page shows it: the guard's verdict, the counts by kind, and every action as a
/// row (a few short strings each, not the plan's whole document).
pub struct PlanView {
    guard: Option<String>,
    guard_kind: GuardKind,
    confirm_with: u64,
    deactivations: u64,
    kinds: Vec<(String, usize)>,
    rows: Vec<ActionRow>,
}

/// Plans kept for their pages: a 100,000-worker plan takes seconds to make, its page a few
/// milliseconds to draw from it. Made again when the configuration, the HR data or the
/// connection's last run moves, after two minutes, or when asked ("Plan again").
static PLANS: std::sync::LazyLock<service::kept::Kept<PlanView>> =
    std::sync::LazyLock::new(|| service::kept::Kept::new(std::time::Duration::from_secs(120), 4));

/// A plan document's actions counted by kind, in the order the kinds first come.
pub fn kind_counts(plan: &Value) -> Vec<(String, usize)> {
    let mut kinds: Vec<(String, usize)> = vec![];
    for a in plan["actions"].as_array().into_iter().flatten() {
        let k = a["kind"].as_str().unwrap_or_default();
        match kinds.iter_mut().find(|(x, _)| x == k) {
            Some(e) => e.1 += 1,
            None => kinds.push((k.to_string(), 1)),
        }
    }
    kinds
}

fn view_of(v: &Value) -> PlanView {
    let all = v["actions"].as_array().map(Vec::as_slice).unwrap_or_default();
    let kinds = kind_counts(v);
    let g = &v["guard"];
    PlanView {
        guard: g["why"].as_str().map(|w| w.trim_end_matches('.').to_string()),
        guard_kind: match g["guard"].as_str() {
            Some("teams") => GuardKind::Teams,
            Some("reactivation") => GuardKind::Reactivation,
            _ => GuardKind::Deprovision,
        },
        confirm_with: g["confirm_with"].as_u64().unwrap_or_default(),
        deactivations: g["deactivations"].as_u64().unwrap_or_default(),
        kinds,
        rows: all
            .iter()
            .map(|a| ActionRow {
                worker: shown(&a["worker"]),
                kind: shown(&a["kind"]),
                role: a["role"].as_str().unwrap_or_default().to_string(),
                account: a["user_name"].as_str().or(a["team"].as_str()).unwrap_or_default().to_string(),
                reason: shown(&a["reason"]),
                changes: changes_of(&a["changes"]),
            })
            .collect(),
    }
}

#[derive(Template)]
#[template(path = "plan_pending.html")]
struct PlanPending {
    chrome: Chrome,
    name: String,
    path: String,
    again: String,
}

pub async fn page(
    State(api): State<Shared>,
    page: Page,
    Path(name): Path<String>,
    Query(q): Query<PlanQuery>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> Response {
    answer(
        async {
            page.need_either(Role::Editor, Role::Reviewer)?;
            let mark = service::kept::marks(&api.store, &name).await?;
            // Nothing kept: the page at once, and the plan asked for by htmx once it is drawn
            // (planning 100,000 workers takes seconds).
            if q.fresh.is_none() && !super::from_htmx(&headers) && PLANS.peek(&name, &mark).is_none() {
                return Ok(render(&PlanPending {
                    chrome: page.chrome("connections"),
                    path: segment(&name),
                    again: uri.to_string(),
                    name,
                }));
            }
            let got = PLANS
                .get(&name, &mark, q.fresh.is_some(), || async {
                    let v = document(&api, &page, &name).await.map_err(|f| match f.status {
                        StatusCode::NOT_FOUND => service::error::Error::not_found(f.detail),
                        _ => service::error::Error::refused(f.detail),
                    })?;
                    Ok(view_of(&v))
                })
                .await?;
            let view = &got.value;
            let kind = q.kind.clone().filter(|k| !k.is_empty()).unwrap_or_default();
            let reason = q.reason.clone().unwrap_or_default();
            let matching: Vec<&ActionRow> = view
                .rows
                .iter()
                .filter(|a| kind.is_empty() || a.kind == kind)
                .filter(|a| reason.is_empty() || a.reason.contains(reason.as_str()))
                .collect();
            let at = q.page.unwrap_or(1).max(1);
            let from = (at - 1) * PAGE;
            let actions = matching.iter().skip(from).take(PAGE).map(|a| (*a).clone()).collect();
            let link = |n: usize| {
                let mut s = format!("/connections/{}/plan?page={n}", segment(&name));
                if !kind.is_empty() {
                    s.push_str(&format!("&kind={}", segment(&kind)));
                }
                if !reason.is_empty() {
                    s.push_str(&format!("&reason={}", segment(&reason)));
                }
                s
            };
            let shown_line = if matching.is_empty() {
                "No action matches.".to_string()
            } else {
                format!(
                    "Actions {} to {} of {} (of {} in the plan).",
                    from + 1,
                    (from + PAGE).min(matching.len()),
                    matching.len(),
                    view.rows.len()
                )
            };
            Ok(render(&PlanPage {
                chrome: page.chrome("connections"),
                path: segment(&name),
                guard: view.guard.clone(),
                confirm_with: view.confirm_with,
                guard_kind: view.guard_kind,
                deactivations: view.deactivations,
                kinds: view.kinds.clone(),
                previous: (at > 1).then(|| link(at - 1)),
                next: (from + PAGE < matching.len()).then(|| link(at + 1)),
                kind,
                reason,
                actions,
                shown_line,
                planned: when(&got.made.to_string()),
                can_apply: page.may(Role::Editor),
                can_confirm: page.may(Role::Reviewer),
                name,
            }))
        }
        .await,
    )
}

/// The plan as `tenure plan --json` prints it, to download.
pub async fn json(State(api): State<Shared>, page: Page, Path(name): Path<String>) -> Response {
    answer(
        async {
            page.need_either(Role::Editor, Role::Reviewer)?;
            let v = document(&api, &page, &name).await?;
            let text = serde_json::to_string_pretty(&v)
                .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            let mut r = format!("{text}\n").into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"plan.json\""));
            Ok(r)
        }
        .await,
    )
}

#[derive(Deserialize)]
pub struct ApplyForm {
    confirm: Option<String>,
    /// Which guard the number confirms ("teams": the team guard; else the mass-deprovision guard).
    guard: Option<String>,
}

/// The guard a page offers to confirm, in the page's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GuardKind {
    Deprovision,
    Teams,
    Reactivation,
}

impl GuardKind {
    pub(super) fn name(self) -> &'static str {
        match self {
            GuardKind::Deprovision => "mass-deprovision guard",
            GuardKind::Teams => "team guard",
            GuardKind::Reactivation => "reactivation guard",
        }
    }
    pub(super) fn counted(self) -> &'static str {
        match self {
            GuardKind::Deprovision => "deactivations",
            GuardKind::Teams => "team removals",
            GuardKind::Reactivation => "reactivations",
        }
    }
    pub(super) fn as_str(self) -> &'static str {
        match self {
            GuardKind::Deprovision => "deprovision",
            GuardKind::Teams => "teams",
            GuardKind::Reactivation => "reactivation",
        }
    }
}

impl From<store::GuardKind> for GuardKind {
    fn from(g: store::GuardKind) -> Self {
        match g {
            store::GuardKind::Deprovision => GuardKind::Deprovision,
            store::GuardKind::Teams => GuardKind::Teams,
            store::GuardKind::Reactivation => GuardKind::Reactivation,
        }
    }
}

/// Apply: a run on the connection, started in the background; on to its page. Confirming the
/// guard's number is a Reviewer's duty (Admin holds both).
pub async fn apply(State(api): State<Shared>, Path(name): Path<String>, posted: Posted<ApplyForm>) -> Response {
    let Posted { page, form } = posted;
    answer(
        async {
            let confirm = match form.confirm.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
                Some(c) => Some(c.parse::<usize>().map_err(|_| {
                    Failure::new(StatusCode::BAD_REQUEST, format!("\"{c}\" is not a number to confirm the guard with"))
                })?),
                None => None,
            };
            let confirm_only = match confirm {
                None => {
                    page.need(Role::Editor)?;
                    false
                }
                Some(_) => {
                    page.need(Role::Reviewer)?;
                    !page.may(Role::Editor)
                }
            };
            let guard = form.guard.as_deref();
            let start = runs::Start {
                workers: vec![],
                confirm: confirm.filter(|_| !matches!(guard, Some("teams" | "reactivation"))),
                confirm_team_removals: confirm.filter(|_| guard == Some("teams")),
                confirm_reactivation: confirm.filter(|_| guard == Some("reactivation")),
                actor: page.actor().to_string(),
                person: page.caller.person.clone(),
                confirm_only,
                door: "the console",
            };
            started(&api, &name, runs::start(&api.store, &api.key, &api.runs, &name, start).await)
        }
        .await,
    )
}

/// Where a run started from the console leads: its page; when another run of this process
/// holds the connection, that run's page, saying so (nothing was started).
pub(super) fn started(
    api: &Shared,
    connection: &str,
    r: service::error::Result<runs::Started>,
) -> Result<Response, Failure> {
    match r {
        Ok(s) => Ok(Redirect::to(&format!("/runs/{}", s.id)).into_response()),
        Err(service::error::Error::Busy(why)) => match api.runs.running_id(connection) {
            Some(id) => Ok(Redirect::to(&format!("/runs/{id}?said=busy")).into_response()),
            None => Err(Failure::new(StatusCode::CONFLICT, why)),
        },
        Err(e) => Err(e.into()),
    }
}

pub struct RunRow {
    pub id: String,
    pub connection: String,
    pub started: String,
    pub by: String,
    pub state: String,
    pub total: String,
    pub skipped: String,
    pub no_change: String,
    pub processed: String,
    pub failed: String,
}

fn count(v: &Value) -> String {
    v.as_i64().map(|n| n.to_string()).unwrap_or_else(|| "–".into())
}

impl RunRow {
    fn of(r: &store::RunRecord, live: bool) -> RunRow {
        let s: Value = r.summary.as_deref().and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default();
        let state = if r.refused().is_some() {
            "Nothing applied".to_string()
        } else if r.finished_at.is_some() && s["guards"].as_array().is_some_and(|g| !g.is_empty()) {
            "Finished, part held by a guard".to_string()
        } else if live || (r.finished_at.is_none() && service::status::alive(r)) {
            "Running".to_string()
        } else if r.finished_at.is_none() {
            "Did not finish".to_string()
        } else if s["failed"].as_i64().unwrap_or(0) > 0 {
            "Finished with failures".to_string()
        } else {
            "Finished".to_string()
        };
        RunRow {
            id: r.id.clone(),
            connection: r.connection.clone(),
            started: when(&r.started_at),
            by: r.started_by.clone().unwrap_or_else(|| "the scheduler".into()),
            state,
            total: count(&s["total"]),
            skipped: count(&s["skipped"]),
            no_change: count(&s["no_change"]),
            processed: count(&s["processed"]),
            failed: count(&s["failed"]),
        }
    }
}

#[derive(Template)]
#[template(path = "runs.html")]
struct RunsPage {
    chrome: Chrome,
    rows: Vec<RunRow>,
}

pub async fn list(State(api): State<Shared>, page: Page) -> Response {
    answer(
        async {
            page.need(Role::Viewer)?;
            let rows = api.store.runs(None, 100).await?.iter().map(|r| RunRow::of(r, false)).collect();
            Ok(render(&RunsPage { chrome: page.chrome("runs"), rows }))
        }
        .await,
    )
}

/// A failed action as the run page lists it.
pub struct FailureRow {
    pub worker: String,
    pub action: String,
    /// The target's HTTP status and SCIM error type, when it answered ("–" when it did not).
    pub status: String,
    pub said: String,
    /// The first failure of its worker: the row that offers the retry.
    pub first: bool,
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    chrome: Chrome,
    r: RunRow,
    running: bool,
    failures: Vec<FailureRow>,
    /// Why nothing was applied (the guard, an error), when so.
    stopped: Option<String>,
    /// What the guards held of a run whose rest was applied.
    held: Vec<String>,
    /// Why the person was brought here instead of to a new run.
    busy: bool,
    can_retry: bool,
    path: String,
}

/// Why a run of this process applied nothing, from its outcome.
/// What a guard's refusal says, from the guard's verdict (the registry's outcome, or the
/// refused run's record: `guard`, `why`/`refused`, `confirm_with`).
fn refused_words(guard: &Value, why: Option<&str>) -> String {
    let (name, what) = guard_words(guard);
    format!(
        "The {name} stopped this run: {}. Nothing was applied. A Reviewer or Admin applies it by confirming the \
         number {} on the plan page or the dashboard.",
        why.unwrap_or(&format!("too many {what}")).trim_end_matches('.'),
        guard["confirm_with"].as_u64().unwrap_or_default()
    )
}

/// A guard's name and what it counts, from its verdict.
fn guard_words(guard: &Value) -> (&'static str, &'static str) {
    match guard["guard"].as_str() {
        Some("teams") => ("team guard", "team removals"),
        Some("reactivation") => ("reactivation guard", "reactivations"),
        _ => ("mass-deprovision guard", "deactivations"),
    }
}

/// What the guards held of a run whose rest was applied, one sentence each, from the run's
/// record (or its outcome while this process still holds it).
fn held_words(guards: &Value) -> Vec<String> {
    guards
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| {
            let (name, what) = guard_words(g);
            let n = g["confirm_with"].as_u64().unwrap_or_default();
            format!(
                "The {name} held {n} {what}: {}. The rest of the run was applied. A Reviewer or Admin applies them \
                 by confirming the number {n} on the plan page or the dashboard.",
                g["why"].as_str().unwrap_or_default().trim_end_matches('.')
            )
        })
        .collect()
}

fn stopped(outcome: &Value) -> Option<String> {
    match outcome["state"].as_str()? {
        "refused" => Some(refused_words(&outcome["guard"], outcome["guard"]["why"].as_str())),
        "error" => Some(format!("The run could not be carried out: {}", shown(&outcome["error"]))),
        "busy" => Some("Another run held the connection: nothing was applied.".into()),
        "stopped" => Some("The run was stopped before it began: nothing was applied.".into()),
        "not_confirmed" | "not confirmed" => Some("The creates were not confirmed: nothing was applied.".into()),
        _ => None,
    }
}

#[derive(Deserialize, Default)]
pub struct RunQuery {
    said: Option<String>,
}

pub async fn run(State(api): State<Shared>, page: Page, Path(id): Path<String>, Query(q): Query<RunQuery>) -> Response {
    answer(
        async {
            page.need(Role::Viewer)?;
            let live = api.runs.get(&id).is_some_and(|l| l.running());
            let record = api.store.run(&id).await?;
            let record_missing = record.is_none();
            // Handed to the node that owns the connection, not begun there yet.
            let handed = match record_missing && api.runs.get(&id).is_none() {
                true => runs::handed(&api.store, &id).await?,
                false => None,
            };
            let record = record.or_else(|| {
                handed.as_ref().map(|h| store::RunRecord {
                    id: id.clone(),
                    connection: h["connection"].as_str().unwrap_or_default().to_string(),
                    started_at: h["requested_at"].as_str().unwrap_or_default().to_string(),
                    finished_at: None,
                    summary: None,
                    started_by: h["started_by"].as_str().map(str::to_string),
                    progress: None,
                    as_of: None,
                })
            });
            let Some(record) = record.or_else(|| {
                // Registered, not yet written: a run that has just started.
                api.runs.get(&id).map(|l| store::RunRecord {
                    id: id.clone(),
                    connection: l.connection.clone(),
                    started_at: jiff::Timestamp::now().to_string(),
                    finished_at: None,
                    summary: None,
                    started_by: Some(l.started_by.clone()),
                    progress: None,
                    as_of: None,
                })
            }) else {
                return Err(Failure::new(StatusCode::NOT_FOUND, "There is no such run."));
            };
            let s: Value = record.summary.as_deref().and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default();
            let mut seen = std::collections::HashSet::new();
            let failures = s["failed_actions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| {
                    let status = match (f["status"].as_u64(), f["scim_type"].as_str()) {
                        (Some(n), Some(t)) => format!("{n} ({t})"),
                        (Some(n), None) => n.to_string(),
                        _ => "–".into(),
                    };
                    let worker = shown(&f["worker"]);
                    FailureRow {
                        first: seen.insert(worker.clone()),
                        worker,
                        action: shown(&f["action"]),
                        status,
                        said: shown(&f["error"]),
                    }
                })
                .collect();
            let mut r = RunRow::of(&record, live);
            let stopped = api.runs.get(&id).and_then(|l| l.outcome()).as_ref().and_then(stopped).or_else(|| {
                // A refused run kept in the store says so after the registry has let it go.
                record.refused().map(|why| refused_words(&s, Some(&why)))
            });
            if stopped.is_some() && record_missing {
                r.state = "Nothing applied".into();
            }
            let held = if record.refused().is_none() { held_words(&s["guards"]) } else { vec![] };
            if let Some(h) = &handed {
                r.state = match h["error"].as_str() {
                    Some(e) => format!("Could not start: {e}"),
                    None => "Waiting for the node that owns the connection".into(),
                };
            }
            let running = r.state == "Running" || (handed.is_some() && r.state.starts_with("Waiting"));
            Ok(render(&RunPage {
                chrome: page.chrome("runs"),
                path: segment(&r.connection),
                r,
                running,
                failures,
                stopped,
                held,
                busy: q.said.as_deref() == Some("busy"),
                can_retry: page.may(Role::Editor),
            }))
        }
        .await,
    )
}

#[derive(Deserialize)]
pub struct RetryForm {
    #[serde(default)]
    worker: String,
}

/// Retry one worker of a run: a run of that worker alone on the same connection, through the
/// same guard, journal and audit as any run.
pub async fn retry(State(api): State<Shared>, Path(id): Path<String>, posted: Posted<RetryForm>) -> Response {
    let Posted { page, form } = posted;
    answer(
        async {
            page.need(Role::Editor)?;
            let record =
                api.store.run(&id).await?.ok_or_else(|| {
                    Failure::new(StatusCode::NOT_FOUND, "There is no such run (or it has not ended).")
                })?;
            let worker = form.worker.trim().to_string();
            let s: Value = record.summary.as_deref().and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default();
            let failed = s["failed_actions"].as_array().into_iter().flatten().any(|f| f["worker"] == worker.as_str());
            if worker.is_empty() || !failed {
                return Err(Failure::new(
                    StatusCode::BAD_REQUEST,
                    format!("Worker {worker:?} did not fail in this run: only a failed worker is retried from here."),
                ));
            }
            let connection = record.connection;
            let start = runs::Start {
                workers: vec![worker],
                confirm: None,
                confirm_team_removals: None,
                confirm_reactivation: None,
                actor: page.actor().to_string(),
                person: page.caller.person.clone(),
                confirm_only: false,
                door: "the console",
            };
            started(&api, &connection, runs::start(&api.store, &api.key, &api.runs, &connection, start).await)
        }
        .await,
    )
}
