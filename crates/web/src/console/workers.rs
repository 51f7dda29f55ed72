//! Workers: found as their id, name or e-mail is typed (htmx asks again after a short pause,
//! dropping an answer overtaken by a later keystroke), and one worker's page: the HR record
//! and its events load by load, each connection's role decision test by test, the mapped
//! attributes, the account as read now, the plan for this worker with Provision now, and the
//! timeline. All of it is the service's `workers::why`, as the API's worker "why" is.

use super::plan::{changes_of, shown};
use super::{answer, from_htmx, moment, render, segment, timed, Chrome, Failure, Page, Posted};
use crate::api::Shared;
use crate::users::Role;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use service::runs;

/// Workers on one page of a search.
const PAGE: usize = 50;

pub struct Hit {
    pub id: String,
    pub path: String,
    pub name: String,
    pub email: String,
    pub status: String,
}

/// A search's answer: the part htmx replaces as the person types.
pub struct Results {
    pub q: String,
    pub hits: Vec<Hit>,
    pub total: usize,
    pub population: usize,
    pub shown_line: String,
    pub previous: Option<String>,
    pub next: Option<String>,
}

#[derive(Template)]
#[template(path = "workers.html")]
struct Search {
    chrome: Chrome,
    results: Results,
}

#[derive(Template)]
#[template(path = "workers_results.html")]
struct SearchPart {
    results: Results,
}

#[derive(Deserialize, Default)]
pub struct SearchQuery {
    q: Option<String>,
    page: Option<usize>,
}

fn link(q: &str, page: usize) -> String {
    let mut to = format!("/workers?q={}", super::encode(q));
    if page > 1 {
        to += &format!("&page={page}");
    }
    to
}

pub async fn search(
    State(api): State<Shared>,
    page: Page,
    headers: axum::http::HeaderMap,
    Query(q): Query<SearchQuery>,
) -> Response {
    answer(
        async {
            page.need(Role::Viewer)?;
            let index = api.index.current(&api.store).await?;
            let text = q.q.unwrap_or_default();
            let n = q.page.unwrap_or(1).max(1);
            let found = index.search(&text, PAGE, (n - 1).saturating_mul(PAGE));
            let total = found.total;
            let first = (n - 1) * PAGE + 1;
            let what = if text.trim().is_empty() {
                format!("All {total} workers")
            } else {
                format!("{total} found for “{}”", text.trim())
            };
            let shown_line = if total > PAGE || n > 1 {
                format!("{what}, {}–{} shown", first.min(total), (first + found.workers.len()).saturating_sub(1))
            } else {
                what
            };
            let results = Results {
                hits: found
                    .workers
                    .iter()
                    .map(|w| Hit {
                        id: w.id.to_string(),
                        path: segment(w.id),
                        name: w.name.to_string(),
                        email: w.email.unwrap_or_default().to_string(),
                        status: w.status.to_string(),
                    })
                    .collect(),
                total,
                population: index.len(),
                shown_line,
                previous: (n > 1).then(|| link(&text, n - 1)),
                next: (n * PAGE < total).then(|| link(&text, n + 1)),
                q: text,
            };
            if from_htmx(&headers) {
                return Ok(render(&SearchPart { results }));
            }
            Ok(render(&Search { chrome: page.chrome("workers"), results }))
        }
        .await,
    )
}

/// One test of a role's condition as a row.
pub struct CheckRow {
    pub indent: usize,
    pub text: String,
    pub seen: String,
    pub holds: bool,
    pub group: bool,
}

pub struct RoleRow {
    pub role: String,
    pub matched: bool,
    pub checks: Vec<CheckRow>,
}

pub struct AttributeRow {
    pub target: String,
    pub formula: String,
    pub value: String,
    pub ok: bool,
    pub when: &'static str,
}

pub struct ActionRow {
    pub kind: String,
    pub reason: String,
    pub changes: Vec<(String, String, String)>,
}

pub struct Account {
    pub id: String,
    pub user_name: String,
    pub active: bool,
    pub user_type: String,
    pub teams: String,
}

/// One connection's part of a worker's page.
pub struct OnConnection {
    pub name: String,
    pub path: String,
    pub roles: Vec<RoleRow>,
    pub outcome: String,
    pub user_type: String,
    pub teams: String,
    /// Teams that could not be named from the worker's data: why the worker is held.
    pub team_errors: Vec<String>,
    pub attributes: Vec<AttributeRow>,
    pub basis: String,
    pub read_at: Option<(String, String)>,
    pub account: Option<Account>,
    pub actions: Vec<ActionRow>,
    /// Why nothing is to be done now (no change, or a change whose day has not come).
    pub nothing: String,
    pub note: Option<String>,
}

pub struct EventRow {
    pub kind: String,
    pub effective: (String, String),
    pub state: String,
    pub load: String,
    pub changes: Vec<(String, String, String)>,
}

pub struct TimelineRow {
    pub at: (String, String),
    pub connection: String,
    pub action: String,
    pub outcome: String,
    pub run: String,
    pub changes: Vec<(String, String, String)>,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "worker.html")]
struct WorkerPage {
    chrome: Chrome,
    id: String,
    path: String,
    name: String,
    record: Vec<(String, String)>,
    no_rules: Option<String>,
    connections: Vec<OnConnection>,
    events: Vec<EventRow>,
    timeline: Vec<TimelineRow>,
    can_provision: bool,
}

/// The record's fields in the order an HR export has them, then its custom columns.
const FIELDS: [&str; 18] = [
    "id",
    "first_name",
    "preferred_name",
    "last_name",
    "work_email",
    "title",
    "department",
    "division",
    "location",
    "cost_center",
    "manager_id",
    "employment_type",
    "status",
    "hire_date",
    "termination_date",
    "leave_start",
    "leave_end",
    "time_zone",
];

fn record_rows(w: &hr::Worker) -> Vec<(String, String)> {
    let v = serde_json::to_value(w).unwrap_or_default();
    let mut rows = vec![];
    for k in FIELDS {
        let shown = match &v[k] {
            serde_json::Value::Null => continue,
            serde_json::Value::Object(m) => {
                // The status: its state, and a leave's kind.
                let parts: Vec<String> = m.values().filter(|x| !x.is_null()).map(shown).collect();
                parts.join(", ")
            }
            other => shown(other),
        };
        rows.push((k.replace('_', " "), shown));
    }
    rows.extend(w.custom.iter().map(|(k, x)| (k.clone(), x.clone())));
    rows
}

fn on_connection(p: &service::preview::Previewed) -> OnConnection {
    let d = &p.decision;
    let roles = p
        .roles
        .iter()
        .map(|r| RoleRow {
            role: r.role.clone(),
            matched: r.matched,
            checks: r
                .checks
                .iter()
                .map(|c| CheckRow {
                    indent: c.level,
                    text: c.text.clone(),
                    seen: c.seen.clone().unwrap_or_default(),
                    holds: c.holds,
                    group: c.seen.is_none() && ["all of these", "any of these", "not"].contains(&c.text.as_str()),
                })
                .collect(),
        })
        .collect();
    let outcome = match (&d.role, &d.grant, d.by_default) {
        (_, None, _) => match &d.role {
            Some(r) => format!("Role \"{r}\" takes this worker but grants nothing on this connection: no account."),
            None => "No role takes this worker, and this connection provisions by role only: no account.".into(),
        },
        (Some(r), Some(_), false) => format!("Role \"{r}\" takes this worker."),
        (_, Some(_), _) => "No role grants an account here; the connection's default for all employees does.".into(),
    };
    let grant = d.grant.as_ref();
    let planned: Vec<serde_json::Value> = p.plan.iter().filter_map(|a| serde_json::to_value(a).ok()).collect();
    let account = p.read.as_ref().and_then(|r| r.account.as_ref()).map(|a| Account {
        id: a.id.clone(),
        user_name: a.user_name.clone(),
        active: a.active,
        user_type: a.user_type.clone().unwrap_or_else(|| "–".into()),
        teams: if a.teams.is_empty() { "none".into() } else { a.teams.join(", ") },
    });
    OnConnection {
        name: d.connection.clone(),
        path: segment(&d.connection),
        roles,
        outcome,
        user_type: grant.and_then(|g| g.user_type.clone()).unwrap_or_else(|| "–".into()),
        teams: if d.placements.is_empty() {
            "none".into()
        } else {
            // Each team with what put the worker there: a role, the defaults, a team rule.
            d.placements.iter().map(|p| format!("{} ({})", p.team, p.by)).collect::<Vec<_>>().join(", ")
        },
        team_errors: d.team_errors.clone(),
        attributes: d
            .attributes
            .iter()
            .map(|a| AttributeRow {
                target: a.target.clone(),
                formula: a.formula.clone(),
                ok: a.value.is_ok(),
                value: match &a.value {
                    Ok(v) => v.to_text(),
                    Err(e) => e.to_string(),
                },
                when: match a.apply {
                    rules::Apply::OnCreate => "at creation only",
                    rules::Apply::Always => "kept in step",
                },
            })
            .collect(),
        basis: p.read.as_ref().map(|r| r.basis.clone()).unwrap_or_default(),
        read_at: p.read.as_ref().map(|r| timed(&r.read_at)),
        account,
        nothing: planned
            .iter()
            .filter(|v| v["kind"] == "no_change" || v["kind"] == "skip")
            .map(|v| shown(&v["reason"]))
            .collect::<Vec<_>>()
            .join("; "),
        actions: planned
            .iter()
            .filter(|v| v["kind"] != "no_change" && v["kind"] != "skip")
            .map(|v| ActionRow {
                kind: shown(&v["kind"]).replace('_', " "),
                reason: shown(&v["reason"]),
                changes: changes_of(&v["changes"]),
            })
            .collect(),
        note: p.note.clone(),
    }
}

pub async fn worker(State(api): State<Shared>, page: Page, Path(id): Path<String>) -> Response {
    answer(
        async {
            page.need(Role::Viewer)?;
            let why =
                service::workers::why(&api.store, &api.key, &id, |_| true, &api.namesakes).await.map_err(|e| {
                    let f = Failure::from(e);
                    if f.status == StatusCode::NOT_FOUND {
                        Failure {
                            detail: format!(
                                "No worker {id:?} in the last HR data. Search by name or e-mail on Workers."
                            ),
                            chrome: Some(Box::new(page.chrome("workers"))),
                            ..f
                        }
                    } else {
                        f
                    }
                })?;
            let w = &why.worker;
            let name = format!(
                "{} {}",
                w.preferred_name.as_ref().map(|n| n.as_str()).unwrap_or(w.first_name.as_str()),
                w.last_name.as_str()
            );
            let events = why
                .events
                .iter()
                .rev()
                .map(|e| {
                    let ev = &e.listed.event;
                    EventRow {
                        kind: ev.kind.as_str().replace('_', " "),
                        effective: (ev.effective.to_string(), moment(ev.effective)),
                        state: e.listed.state.as_str().to_string(),
                        load: e.load_id.clone(),
                        changes: ev
                            .changes
                            .iter()
                            .map(|c| (c.field.clone(), c.before.clone(), c.after.clone()))
                            .collect(),
                    }
                })
                .collect();
            let timeline = why
                .timeline
                .iter()
                .rev()
                .map(|a| {
                    let detail: serde_json::Value = serde_json::from_str(&a.entry.detail).unwrap_or_default();
                    let changes = changes_of(&detail["changes"]);
                    let said = ["error", "note", "reason", "by"]
                        .iter()
                        .filter_map(|k| detail[*k].as_str().map(|v| format!("{k}: {v}")))
                        .collect::<Vec<_>>()
                        .join("; ");
                    TimelineRow {
                        at: timed(&a.at),
                        connection: a.entry.connection.clone(),
                        action: a.entry.action.replace('_', " "),
                        outcome: a.entry.outcome.clone(),
                        run: a.entry.run_id.clone(),
                        changes,
                        detail: said,
                    }
                })
                .collect();
            Ok(render(&WorkerPage {
                chrome: page.chrome("workers"),
                path: segment(&id),
                id: id.clone(),
                name,
                record: record_rows(w),
                no_rules: why.no_rules.clone(),
                connections: why.connections.iter().map(on_connection).collect(),
                events,
                timeline,
                can_provision: page.may(Role::Editor),
            }))
        }
        .await,
    )
}

#[derive(Deserialize)]
pub struct ProvisionForm {
    connection: Option<String>,
}

/// Provision now: a run of this one worker on one connection, through the same guard, journal
/// and audit as any run; the browser goes to the run's page.
pub async fn provision(State(api): State<Shared>, Path(id): Path<String>, posted: Posted<ProvisionForm>) -> Response {
    let Posted { page, form } = posted;
    answer(
        async {
            page.need(Role::Editor)?;
            let Some(connection) = form.connection.filter(|c| !c.is_empty()) else {
                return Err(Failure::new(StatusCode::BAD_REQUEST, "Say on which connection to provision this worker."));
            };
            let start = runs::Start {
                workers: vec![id],
                confirm: None,
                confirm_team_removals: None,
                confirm_reactivation: None,
                actor: page.actor().to_string(),
                person: page.caller.person.clone(),
                confirm_only: false,
                door: "the console",
            };
            let r = runs::start(&api.store, &api.key, &api.runs, &connection, start).await;
            super::plan::started(&api, &connection, r)
        }
        .await,
    )
}
