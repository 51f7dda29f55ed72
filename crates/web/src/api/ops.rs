//! Status, plans, runs (with live progress), reviews, dead letters, the audit, and
//! notification tests.

use super::auth::{Caller, Scoped};
use super::Shared;
use crate::problem::{read_bytes, Body, Problem, Q};
use crate::runs;
use crate::status;
use crate::users::Role;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Per connection: last and last successful run with their counts, the next scheduled run,
/// pending reviews, dead letters, held workers, and the guard when tripped; and the last HR
/// data received. All of it read from the store, so every node answers the same.
#[utoipa::path(get, path = "/api/v1/status", tag = "status",
    responses((status = 200, body = Object), (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn status(State(api): State<Shared>, Scoped(c): Scoped) -> Result<Json<Value>, Problem> {
    let st = api.status.read(&api.store, Some(&api.runs), Some(api.interval)).await?;
    Ok(Json(status::document(&st, |name| c.on(name).is_ok())))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PlanQuery {
    /// Only these workers (comma-separated employee ids): what a run for them would do.
    pub workers: Option<String>,
    /// Only actions of this kind (create, update, deactivate, reactivate, skip, ...).
    pub kind: Option<String>,
    /// Only actions whose reason contains this.
    pub reason: Option<String>,
}

fn listed(s: &Option<String>) -> Vec<String> {
    s.as_deref().unwrap_or_default().split(',').map(str::trim).filter(|w| !w.is_empty()).map(str::to_string).collect()
}

async fn plan_for(
    api: &Shared,
    c: &Caller,
    name: &str,
    q: &PlanQuery,
    rules: Option<rules::Rules>,
) -> Result<Json<Value>, Problem> {
    c.need(Role::Editor)?;
    c.on(name)?;
    let only = listed(&q.workers);
    let rules = match rules {
        Some(r) => r,
        None => crate::config::current(&api.store).await?,
    };
    runs::pick(&rules, Some(name)).map_err(Problem::not_found)?;
    let now = jiff::Timestamp::now();
    // A plan never waits on a running apply: while one holds the connection, the plan is
    // made without touching its actions in flight.
    let (p, _) = runs::plan(&api.store, &api.key, rules, name, now, &only, &format!("plan by {}", c.actor)).await?;
    let mut v = runs::plan_document(&p)?;
    if let Some(actions) = v.get_mut("actions").and_then(Value::as_array_mut) {
        actions.retain(|a| {
            q.kind.as_deref().is_none_or(|k| a["kind"] == k)
                && q.reason.as_deref().is_none_or(|r| a["reason"].as_str().is_some_and(|x| x.contains(r)))
        });
    }
    runs::release(p);
    Ok(Json(v))
}

/// The plan for a connection under the configuration in force: what a run would do, and why.
#[utoipa::path(get, path = "/api/v1/connections/{name}/plan", tag = "plans", params(("name" = String, Path), PlanQuery),
    responses((status = 200, body = Object), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn plan(
    State(api): State<Shared>,
    Scoped(c): Scoped,
    Path(name): Path<String>,
    Q(q): Q<PlanQuery>,
) -> Result<Json<Value>, Problem> {
    plan_for(&api, &c, &name, &q, None).await
}

/// The plan for a connection under an unsaved configuration (TOML or JSON in the body). An
/// unsaved configuration concerns every connection: not for a token scoped to one.
#[utoipa::path(post, path = "/api/v1/connections/{name}/plan", tag = "plans", params(("name" = String, Path), PlanQuery),
    request_body(content((String = "application/toml"), (Object = "application/json")),
        description = "A whole configuration, as `tenure config import` takes it: TOML, or JSON of the same shape"),
    responses((status = 200, body = Object), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn plan_unsaved(
    State(api): State<Shared>,
    c: Caller,
    Path(name): Path<String>,
    Q(q): Q<PlanQuery>,
    req: Request,
) -> Result<Json<Value>, Problem> {
    c.need(Role::Editor)?;
    c.on(&name)?;
    let json = req.headers().get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"));
    let bytes = read_bytes(req, &()).await?;
    let cfg =
        if json { crate::problem::parse_json::<rules::Config>(&bytes)? } else { super::data::toml_config(&bytes)? };
    // The same checks as an import (a URL other than the stored one is refused), but a plan
    // saves nothing, so what the file leaves out does not matter.
    let confirm = crate::config::Confirm { plan_only: true, ..Default::default() };
    let rules = super::data::compiled(&api, &cfg, &confirm).await?;
    plan_for(&api, &c, &name, &q, Some(rules)).await
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    /// Only these workers (provision on demand); everyone when absent.
    #[serde(default)]
    pub workers: Vec<String>,
    /// Confirms a run the mass-deprovision guard refuses: the exact number of deactivations
    /// (Reviewer or Admin).
    pub confirm_deprovision: Option<usize>,
    /// Confirms a run the team guard refuses: the exact number of team removals (Reviewer or
    /// Admin).
    pub confirm_team_removals: Option<usize>,
    /// Confirms a run the reactivation guard refuses: the exact number of reactivations
    /// (Reviewer or Admin).
    pub confirm_reactivation: Option<usize>,
}

/// Start a run (plan and apply) on a connection; answered at once with the run's id, to
/// follow at /api/v1/runs/{id} or its events. On a node that does not own the connection the
/// run is handed to the node that does (state `queued`, `handed_to` that node) and begins
/// there. 409 while another run of this node holds the connection.
#[utoipa::path(post, path = "/api/v1/connections/{name}/runs", tag = "runs", params(("name" = String, Path)),
    request_body = StartRun,
    responses((status = 202, body = Object), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json")))]
async fn start_run(
    State(api): State<Shared>,
    Scoped(c): Scoped,
    Path(name): Path<String>,
    Body(s): Body<StartRun>,
) -> Result<Response, Problem> {
    // Starting a run is an editor's duty; confirming the guard a reviewer's. A Reviewer who is
    // not an Editor may start a run only to confirm a guard that stops it.
    let confirm_only = match s.confirm_deprovision.or(s.confirm_team_removals).or(s.confirm_reactivation) {
        None => {
            c.need(Role::Editor)?;
            false
        }
        Some(_) => {
            c.need(Role::Reviewer)?;
            c.need(Role::Editor).is_err()
        }
    };
    c.on(&name)?;
    let start = runs::Start {
        workers: s.workers,
        confirm: s.confirm_deprovision,
        confirm_team_removals: s.confirm_team_removals,
        confirm_reactivation: s.confirm_reactivation,
        actor: c.actor.clone(),
        person: c.person.clone(),
        confirm_only,
        door: "the API",
    };
    let started = runs::start(&api.store, &api.key, &api.runs, &name, start).await?;
    let run_id = started.id;
    // Handed to the node that owns the connection: queued there until it begins.
    let state = if started.handed_to.is_some() { "queued" } else { "running" };
    let mut r = (
        StatusCode::ACCEPTED,
        Json(json!({"run_id": run_id, "connection": name, "state": state, "handed_to": started.handed_to,
        "status": format!("/api/v1/runs/{run_id}"), "events": format!("/api/v1/runs/{run_id}/events")})),
    )
        .into_response();
    r.headers_mut().insert("location", format!("/api/v1/runs/{run_id}").parse().expect("ascii"));
    Ok(r)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    pub connection: Option<String>,
    /// The newest this many (default 20).
    pub limit: Option<i64>,
}

/// Runs, newest first, with their counts.
#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", params(RunsQuery),
    responses((status = 200, body = Vec<Object>), (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn runs(State(api): State<Shared>, Scoped(c): Scoped, Q(q): Q<RunsQuery>) -> Result<Json<Vec<Value>>, Problem> {
    let conn = c.scope(q.connection.as_deref())?;
    let all = api.store.runs(conn.as_deref(), q.limit.unwrap_or(20).clamp(1, 1000)).await?;
    Ok(Json(all.iter().map(crate::audit::run_view).collect()))
}

/// A run as stored, with what this process knows live of it (state, progress, who started
/// it, a guard refusal or an error); None when neither knows it.
async fn describe_run(api: &Shared, id: &str) -> Result<Option<Value>, Problem> {
    let live = api.runs.get(id);
    let stored = api.store.run(id).await?;
    let mut v = match (&stored, &live) {
        // Perhaps handed to the connection's owner and not begun there yet.
        (None, None) => return Ok(runs::handed(&api.store, id).await?),
        (Some(r), _) => crate::audit::run_view(r),
        (None, Some(_)) => json!({}),
    };
    match (&live, &stored) {
        // The live view wins; its empty fields leave the stored ones.
        (Some(l), _) => {
            if let Value::Object(live) = l.view() {
                for (k, x) in live.into_iter().filter(|(_, x)| !x.is_null()) {
                    v[k] = x;
                }
            }
        }
        (None, Some(r)) if status::alive(r) => v["state"] = json!("running"),
        (None, _) if v["finished_at"].is_null() => v["state"] = json!("did not finish"),
        (None, _) => v["state"] = json!(if v["summary"]["failed"] == 0 { "succeeded" } else { "failed" }),
    }
    Ok(Some(v))
}

async fn find_run(api: &Shared, c: &Caller, id: &str) -> Result<Value, Problem> {
    let v = describe_run(api, id).await?.ok_or_else(|| Problem::not_found(format!("no run {id:?}")))?;
    c.on(v["connection"].as_str().unwrap_or_default())?;
    Ok(v)
}

/// One run: state, live progress while it goes, its counts and failures (with the SCIM
/// status and detail) once it ended.
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn run(State(api): State<Shared>, Scoped(c): Scoped, Path(id): Path<String>) -> Result<Json<Value>, Problem> {
    find_run(&api, &c, &id).await.map(Json)
}

/// A run's items: every action it recorded, with its outcome.
#[utoipa::path(get, path = "/api/v1/runs/{id}/items", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, body = Vec<Object>), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn run_items(
    State(api): State<Shared>,
    Scoped(c): Scoped,
    Path(id): Path<String>,
) -> Result<Json<Vec<Value>>, Problem> {
    find_run(&api, &c, &id).await?;
    let records = api.store.audit_where(None, None, Some(&id)).await?;
    Ok(Json(records.iter().map(crate::audit::record_json).collect()))
}

/// One Server-Sent Event of a run's stream.
#[derive(serde::Serialize, ToSchema)]
pub struct RunEvent {
    /// `progress` while the run goes; `end` once, last.
    #[schema(pattern = "^(progress|end)$")]
    pub event: String,
    /// The run as JSON text: its state and progress, at the end its summary.
    pub data: String,
}

/// A run's progress as Server-Sent Events: `progress` while it goes, then one `end`.
#[utoipa::path(get, path = "/api/v1/runs/{id}/events", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, content_type = "text/event-stream", body = RunEvent,
        description = "Server-Sent Events. `event: progress` every quarter second while the run goes, its `data` a JSON \
            object: {\"id\", \"connection\", \"started_by\", \"state\": \"running\", \"progress\": {\"done\", \"total\"}}; then one \
            `event: end`, its `data` the run as GET /api/v1/runs/{id} answers it (state succeeded, failed, \
            stopped, error or did not finish, with its summary), and the stream closes. A run handed to another \
            node is `queued` (in `progress` events) until it begins there."),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn run_events(State(api): State<Shared>, Scoped(c): Scoped, Path(id): Path<String>) -> Result<Response, Problem> {
    find_run(&api, &c, &id).await?;
    let stream = futures_util::stream::unfold((api, id, false), |(api, id, done)| async move {
        if done {
            return None;
        }
        // A run of this process from memory, four times a second; one of another process
        // (the command line, another node) from the store, where it writes its progress each
        // second; the end as stored.
        let live = api.runs.get(&id).map(|l| l.view()).filter(|v| v["state"] == "running");
        let from_memory = live.is_some();
        let v = match live {
            Some(live) => live,
            None => describe_run(&api, &id).await.ok().flatten().unwrap_or_else(|| json!({"id": id, "state": "ended"})),
        };
        let ended = v["state"] != "running" && v["state"] != "queued";
        if !ended {
            let pause = if from_memory { 250 } else { 1000 };
            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        }
        let ev = Event::default().event(if ended { "end" } else { "progress" }).data(v.to_string());
        Some((Ok::<_, std::convert::Infallible>(ev), (api, id, ended)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReviewQuery {
    pub connection: Option<String>,
    /// pending (default), or all.
    pub state: Option<String>,
}

/// Reviews (supervised mode), with what each would do, who set it in motion, and the HR event
/// behind it (kind, effective moment in UTC and in the worker's zone, the load it came from).
#[utoipa::path(get, path = "/api/v1/reviews", tag = "reviews", params(ReviewQuery),
    responses((status = 200, body = Vec<Object>), (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn reviews(
    State(api): State<Shared>,
    Scoped(c): Scoped,
    Q(q): Q<ReviewQuery>,
) -> Result<Json<Vec<Value>>, Problem> {
    let conn = c.scope(q.connection.as_deref())?;
    let decided: &[bool] = match q.state.as_deref() {
        None | Some("pending") => &[false],
        Some("all") => &[false, true],
        Some(s) => return Err(Problem::bad_request("invalid-query", format!("state {s:?}: pending or all"))),
    };
    let rules = crate::config::current(&api.store).await.ok();
    let mut out = vec![];
    for d in decided {
        let f = crate::reviews::QueueFilter { decided: *d, connection: conn.clone(), ..Default::default() };
        let q = crate::reviews::queue(&api.store, rules.as_ref(), &f, jiff::Timestamp::now()).await?;
        out.extend(q.iter().map(crate::reviews::queued_view));
    }
    Ok(Json(out))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// The reviews to decide; every pending one (of `connection`) when empty.
    #[serde(default)]
    pub ids: Vec<i64>,
    pub approve: bool,
    pub connection: Option<String>,
    /// Why, kept with the decision.
    pub note: Option<String>,
}

async fn decide(
    api: &Shared,
    c: &Caller,
    ids: Vec<i64>,
    approve: bool,
    connection: Option<String>,
    note: Option<String>,
) -> Result<Json<Value>, Problem> {
    c.need(Role::Reviewer)?;
    let conn = c.scope(connection.as_deref())?;
    let d = crate::reviews::decide_with(
        &api.store,
        &ids,
        conn.as_deref(),
        approve,
        &c.actor,
        Some(&c.person),
        note.as_deref(),
    )
    .await?;
    if d.decided.is_empty() && !d.refused.is_empty() {
        let why: Vec<&str> = d.refused.iter().map(|(_, w)| w.as_str()).collect();
        return Err(Problem::forbidden("maker-checker", why.join("; ")).with_errors(json!(d
            .refused
            .iter()
            .map(|(id, w)| json!({"id": id, "why": w}))
            .collect::<Vec<_>>())));
    }
    if approve && !d.decided.is_empty() {
        api.wake.notify_one();
    }
    Ok(Json(json!({
        "decided": d.decided.iter().map(crate::reviews::review_view).collect::<Vec<_>>(),
        "refused": d.refused.iter().map(|(id, w)| json!({"id": id, "why": w})).collect::<Vec<_>>(),
    })))
}

/// Approve or reject reviews in bulk (Reviewer). A review is refused to whoever set it in
/// motion; the others are decided.
#[utoipa::path(post, path = "/api/v1/reviews/decisions", tag = "reviews", request_body = Decision,
    responses((status = 200, body = Object), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn decide_bulk(
    State(api): State<Shared>,
    Scoped(c): Scoped,
    Body(d): Body<Decision>,
) -> Result<Json<Value>, Problem> {
    decide(&api, &c, d.ids, d.approve, d.connection, d.note).await
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Note {
    pub note: Option<String>,
}

/// Approve one review: the next run carries its actions out.
#[utoipa::path(post, path = "/api/v1/reviews/{id}/approve", tag = "reviews", params(("id" = i64, Path)),
    request_body = Note,
    responses((status = 200, body = Object), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn approve(
    State(api): State<Shared>,
    Scoped(c): Scoped,
    Path(id): Path<i64>,
    Body(n): Body<Note>,
) -> Result<Json<Value>, Problem> {
    decide(&api, &c, vec![id], true, None, n.note).await
}

/// Reject one review, with a note.
#[utoipa::path(post, path = "/api/v1/reviews/{id}/reject", tag = "reviews", params(("id" = i64, Path)),
    request_body = Note,
    responses((status = 200, body = Object), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn reject(
    State(api): State<Shared>,
    Scoped(c): Scoped,
    Path(id): Path<i64>,
    Body(n): Body<Note>,
) -> Result<Json<Value>, Problem> {
    decide(&api, &c, vec![id], false, None, n.note).await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConnectionQuery {
    pub connection: Option<String>,
}

/// Workers set aside after failing run after run, with their last error.
#[utoipa::path(get, path = "/api/v1/dead-letters", tag = "dead letters", params(ConnectionQuery),
    responses((status = 200, body = Vec<Object>), (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn dead_letters(
    State(api): State<Shared>,
    Scoped(c): Scoped,
    Q(q): Q<ConnectionQuery>,
) -> Result<Json<Vec<Value>>, Problem> {
    let conn = c.scope(q.connection.as_deref())?;
    let all = api.store.dead_letters(conn.as_deref()).await?;
    Ok(Json(all.iter().filter(|d| d.state == store::LetterState::Dead).map(crate::reviews::dead_letter_view).collect()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Employee ids; every dead letter (of `connection`) when empty.
    #[serde(default)]
    pub workers: Vec<String>,
    pub connection: Option<String>,
}

/// Try dead letters again on the next run (Reviewer).
#[utoipa::path(post, path = "/api/v1/dead-letters/retry", tag = "dead letters", request_body = Retry,
    responses((status = 200, body = Object), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn retry(State(api): State<Shared>, Scoped(c): Scoped, Body(r): Body<Retry>) -> Result<Json<Value>, Problem> {
    c.need(Role::Reviewer)?;
    let conn = c.scope(r.connection.as_deref())?;
    let n = crate::reviews::retry_with(&api.store, conn.as_deref(), &r.workers, &c.actor).await?;
    api.wake.notify_one();
    Ok(Json(json!({"retried": n})))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    pub worker: Option<String>,
    pub connection: Option<String>,
    /// As recorded: `user:NAME`, `token:ID (NAME)`, or an operator's name.
    pub actor: Option<String>,
    /// decision or action.
    pub kind: Option<String>,
    /// The action (create, deactivate, approve, config_import, ...).
    pub action: Option<String>,
    pub run: Option<String>,
    /// RFC 3339.
    pub since: Option<String>,
    pub until: Option<String>,
    /// At most this many, newest last (default 500).
    pub limit: Option<usize>,
    /// csv or ndjson (export only).
    pub format: Option<String>,
}

fn filter(c: &Caller, q: &AuditQuery) -> Result<crate::audit::Filter, Problem> {
    let at = |s: &Option<String>, what: &str| {
        s.as_deref()
            .map(|v| {
                v.parse::<jiff::Timestamp>()
                    .map_err(|e| Problem::bad_request("invalid-query", format!("{what} {v:?}: {e}")))
            })
            .transpose()
    };
    if let Some(k) = q.kind.as_deref().filter(|k| !matches!(*k, "decision" | "action")) {
        return Err(Problem::bad_request("invalid-query", format!("kind {k:?}: decision or action")));
    }
    Ok(crate::audit::Filter {
        since: at(&q.since, "since")?,
        until: at(&q.until, "until")?,
        run: q.run.clone(),
        worker: q.worker.clone(),
        connection: c.scope(q.connection.as_deref())?,
        actor: q.actor.clone(),
        action: q.action.clone(),
        kind: q.kind.clone(),
    })
}

/// Audit records by worker, connection, actor, kind, action, run and time.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Vec<Object>), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn audit(State(api): State<Shared>, Scoped(c): Scoped, Q(q): Q<AuditQuery>) -> Result<Json<Vec<Value>>, Problem> {
    let f = filter(&c, &q)?;
    let records = crate::audit::select(&api.store, &f).await?;
    let n = q.limit.unwrap_or(500).clamp(1, 100_000);
    let skip = records.len().saturating_sub(n);
    Ok(Json(records[skip..].iter().map(crate::audit::record_json).collect()))
}

/// The same selection as a file: CSV (default) or NDJSON, each record with its hashes.
#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit", params(AuditQuery),
    responses((status = 200, body = String, content_type = "text/csv"),
        (status = 400, body = Problem, content_type = "application/problem+json")))]
async fn export(State(api): State<Shared>, Scoped(c): Scoped, Q(q): Q<AuditQuery>) -> Result<Response, Problem> {
    let f = filter(&c, &q)?;
    let records = crate::audit::select(&api.store, &f).await?;
    match q.format.as_deref() {
        None | Some("csv") => {
            let bytes = crate::audit::to_csv(&records)?;
            Ok((
                [
                    ("content-type", "text/csv; charset=utf-8"),
                    ("content-disposition", "attachment; filename=\"audit.csv\""),
                ],
                bytes,
            )
                .into_response())
        }
        Some("ndjson") => {
            Ok(([("content-type", "application/x-ndjson")], crate::audit::to_ndjson(&records)).into_response())
        }
        Some(other) => Err(Problem::bad_request("invalid-query", format!("format {other:?}: csv or ndjson"))),
    }
}

/// Checks the audit's hash chain end to end.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    responses((status = 200, body = Object), (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn verify(State(api): State<Shared>, _c: Caller) -> Result<Json<Value>, Problem> {
    let v = crate::audit::verify(&api.store).await?;
    let head = v.head.map(|(seq, hash)| json!({"seq": seq, "hash": hash}));
    Ok(Json(match v.broken {
        None => json!({"records": v.records, "intact": true, "head": head}),
        Some((seq, why)) => {
            json!({"records": v.records, "intact": false, "tampered_at": seq, "why": why, "head": head})
        }
    }))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct TestNotice {
    /// The kind of notice (hire, leave, failure, review, ...); default: the first it listens to.
    pub event: Option<String>,
}

/// Send a test notice through a notifier (Editor).
#[utoipa::path(post, path = "/api/v1/notifications/{name}/test", tag = "notifications", params(("name" = String, Path)),
    request_body = TestNotice,
    responses((status = 200, body = Object), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn test_notice(
    State(api): State<Shared>,
    c: Caller,
    Path(name): Path<String>,
    Body(t): Body<TestNotice>,
) -> Result<Json<Value>, Problem> {
    c.need(Role::Editor)?;
    match crate::notify::send_test(&api.store, &api.key, &name, t.event.as_deref()).await? {
        Ok(said) => Ok(Json(json!({"delivered": true, "detail": said}))),
        Err(why) => Ok(Json(json!({"delivered": false, "detail": why}))),
    }
}

/// Confirm a restored store (Admin): its scheduled runs, waiting since the restore, may start.
#[utoipa::path(post, path = "/api/v1/store/restore/confirm", tag = "status",
    responses((status = 200, body = Object), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn confirm_restore(State(api): State<Shared>, c: Caller) -> Result<Json<Value>, Problem> {
    c.need(Role::Admin)?;
    c.global()?;
    let v = service::backup::confirm_restore(&api.store, &c.actor).await?;
    api.wake.notify_one();
    Ok(Json(v))
}

pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(confirm_restore))
        .routes(routes!(plan, plan_unsaved))
        .routes(routes!(start_run))
        .routes(routes!(runs))
        .routes(routes!(run))
        .routes(routes!(run_items))
        .routes(routes!(run_events))
        .routes(routes!(reviews))
        .routes(routes!(decide_bulk))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(dead_letters))
        .routes(routes!(retry))
        .routes(routes!(audit))
        .routes(routes!(export))
        .routes(routes!(verify))
        .routes(routes!(test_notice))
}
