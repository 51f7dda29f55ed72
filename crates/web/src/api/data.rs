//! Connections, the configuration, HR uploads and loads, and workers with their "why".

use super::auth::{Caller, Scoped};
use super::Shared;
use crate::intake::{self, LoadKind, Taken};
use crate::problem::{parse_json, read_bytes, Body, Problem, Q};
use crate::users::Role;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use store::Secret;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

// ---- connections ----

/// Every connection with its settings (the token only as its last four characters).
#[utoipa::path(get, path = "/api/v1/connections", tag = "connections",
    responses((status = 200, body = Vec<Object>), (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn connections(State(api): State<Shared>, Scoped(c): Scoped) -> Result<Json<Vec<Value>>, Problem> {
    let all = api.store.connections().await?;
    Ok(Json(all.iter().filter(|x| c.on(&x.name).is_ok()).map(crate::connections::view).collect()))
}

/// One connection.
#[utoipa::path(get, path = "/api/v1/connections/{name}", tag = "connections", params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn connection(
    State(api): State<Shared>,
    Scoped(c): Scoped,
    Path(name): Path<String>,
) -> Result<Json<Value>, Problem> {
    c.on(&name)?;
    let x = api.store.connection(&name).await?.ok_or_else(|| Problem::not_found(format!("no connection {name:?}")))?;
    Ok(Json(crate::connections::view(&x)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConnection {
    /// Default: "Connection-Bearer Token-1" (the next free number).
    pub name: Option<String>,
    /// The instance URL, e.g. https://<account>.monday.com/scim/v2/
    pub url: String,
    /// The SCIM bearer token: stored sealed, never answered.
    pub token: String,
    #[serde(default)]
    pub insecure_http: bool,
    #[serde(default)]
    pub allow_private: bool,
    pub rate_limit: Option<f64>,
    /// monday or generic; default from the URL.
    pub dialect: Option<String>,
}

/// Add a connection (Admin: it holds a token); it is tested first and saved only if it works.
#[utoipa::path(post, path = "/api/v1/connections", tag = "connections", request_body = NewConnection,
    responses((status = 201, body = Object), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn add_connection(
    State(api): State<Shared>,
    c: Caller,
    Body(n): Body<NewConnection>,
) -> Result<Response, Problem> {
    c.need(Role::Admin)?;
    let dialect = n
        .dialect
        .as_deref()
        .map(|d| d.parse::<scim::Dialect>().map_err(|e| Problem::bad_request("invalid-body", e.to_string())))
        .transpose()?;
    if n.rate_limit.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return Err(Problem::bad_request(
            "invalid-body",
            "rate_limit must be a positive number of requests per second",
        ));
    }
    if n.token.trim().is_empty() {
        return Err(Problem::bad_request("invalid-body", "the access token is empty"));
    }
    let req = crate::connections::AddRequest {
        name: n.name,
        url: n.url,
        token: Secret::new(n.token.trim()),
        insecure_http: n.insecure_http,
        allow_private: n.allow_private,
        skip_test: false,
        rate_limit: n.rate_limit,
        dialect,
    };
    let (rec, report) = crate::connections::add(&api.store, &api.key, req, &c.actor).await?;
    let mut v = crate::connections::view(&rec);
    v["test"] = json!(report);
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// Test a connection step by step: address allowed, TLS, authentication,
/// ServiceProviderConfig, what the token may do, users visible; each with its result and, on
/// failure, the fix in words.
#[utoipa::path(post, path = "/api/v1/connections/{name}/test", tag = "connections", params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn test_connection(
    State(api): State<Shared>,
    Scoped(c): Scoped,
    Path(name): Path<String>,
) -> Result<Json<Value>, Problem> {
    c.need(Role::Editor)?;
    c.on(&name)?;
    let checked = crate::connections::check_stored(&api.store, &api.key, &name).await?;
    Ok(Json(json!({"ok": checked.passed(), "url": checked.url, "steps": checked.steps})))
}

/// Pause a connection (Admin): scheduled runs pass it by until it is resumed.
#[utoipa::path(post, path = "/api/v1/connections/{name}/pause", tag = "connections", params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn pause_connection(
    State(api): State<Shared>,
    Scoped(c): Scoped,
    Path(name): Path<String>,
) -> Result<Json<Value>, Problem> {
    c.need(Role::Admin)?;
    c.on(&name)?;
    crate::connections::pause(&api.store, &name, &c.actor).await?;
    connection_view(&api, &name).await
}

/// Resume a paused connection (Admin).
#[utoipa::path(post, path = "/api/v1/connections/{name}/resume", tag = "connections", params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn resume_connection(
    State(api): State<Shared>,
    Scoped(c): Scoped,
    Path(name): Path<String>,
) -> Result<Json<Value>, Problem> {
    c.need(Role::Admin)?;
    c.on(&name)?;
    crate::connections::resume(&api.store, &name, &c.actor).await?;
    api.wake.notify_one();
    connection_view(&api, &name).await
}

async fn connection_view(api: &Shared, name: &str) -> Result<Json<Value>, Problem> {
    let x = api.store.connection(name).await?.ok_or_else(|| Problem::not_found(format!("no connection {name:?}")))?;
    Ok(Json(crate::connections::view(&x)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RemoveQuery {
    /// The connection's name again: needed when it manages linked accounts.
    pub confirm: Option<String>,
}

/// Remove a connection (Admin): its token is erased; the accounts in the target are left as
/// they are and the links kept, so adding it again under the same name takes them up. One
/// that manages linked accounts needs `?confirm=` its name.
#[utoipa::path(delete, path = "/api/v1/connections/{name}", tag = "connections", params(("name" = String, Path), RemoveQuery),
    responses((status = 200, body = Object), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn remove_connection(
    State(api): State<Shared>,
    Scoped(c): Scoped,
    Path(name): Path<String>,
    Q(q): Q<RemoveQuery>,
) -> Result<Json<Value>, Problem> {
    c.need(Role::Admin)?;
    c.on(&name)?;
    let r = crate::connections::remove(&api.store, &name, &c.actor, q.confirm.as_deref()).await?;
    Ok(Json(json!({"removed": name, "links_kept": r.links_kept,
        "consequences": crate::connections::removal_consequences(r.links_kept)})))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRotation {
    /// The new SCIM bearer token: tested, then stored sealed; never answered.
    pub token: String,
}

/// Replace a connection's token (Admin), once the new one is shown to work.
#[utoipa::path(put, path = "/api/v1/connections/{name}/token", tag = "connections", params(("name" = String, Path)),
    request_body = TokenRotation,
    responses((status = 200, body = Object), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn rotate_token(
    State(api): State<Shared>,
    Scoped(c): Scoped,
    Path(name): Path<String>,
    Body(t): Body<TokenRotation>,
) -> Result<Json<Value>, Problem> {
    c.need(Role::Admin)?;
    c.on(&name)?;
    api.store.connection(&name).await?.ok_or_else(|| Problem::not_found(format!("no connection {name:?}")))?;
    let token = Secret::new(t.token.trim());
    let (rec, report) = crate::connections::rotate(&api.store, &api.key, &name, &token, &c.actor).await?;
    let mut v = crate::connections::view(&rec);
    v["test"] = json!(report);
    Ok(Json(v))
}

// ---- configuration ----

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConfigQuery {
    /// toml (default) or json.
    pub format: Option<String>,
}

/// The configuration in force: TOML (default), or JSON.
#[utoipa::path(get, path = "/api/v1/config", tag = "config", params(ConfigQuery),
    responses((status = 200, content((String = "application/toml"), (Object = "application/json")),
        description = "TOML by default; with format=json, {\"version\", \"sha256\", \"config\"}"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn get_config(State(api): State<Shared>, _c: Caller, Q(q): Q<ConfigQuery>) -> Result<Response, Problem> {
    let v = api
        .store
        .current_config()
        .await?
        .ok_or_else(|| Problem::not_found("no configuration yet: PUT one to /api/v1/config"))?;
    match q.format.as_deref() {
        None | Some("toml") => Ok(([("content-type", "application/toml")], v.body).into_response()),
        Some("json") => {
            // The stored configuration not reading back is the server's trouble, not the caller's.
            let cfg = crate::config::parse("stored configuration", &v.body).map_err(Problem::unavailable)?;
            Ok(Json(json!({"version": v.id, "sha256": v.checksum, "config": cfg})).into_response())
        }
        Some(other) => Err(Problem::bad_request("invalid-query", format!("format {other:?}: toml or json"))),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PutConfigQuery {
    /// Check it and answer the per-worker differences it would make; save nothing.
    pub dry_run: Option<bool>,
    /// Let a `url` in it move a stored connection (Admin only: the connection's token goes
    /// where its URL says).
    pub confirm_url_change: Option<bool>,
    /// Connections it may remove or leave without any role, comma separated: either stops
    /// or undoes their provisioning, so each must be named.
    pub confirm_removal: Option<String>,
}

/// Save a configuration (TOML, or JSON of the same shape) as the one in force, checked whole
/// first; with `dry_run`, answer what it would change worker by worker instead (after the
/// same checks). Removing a connection, or every role of one, needs `confirm_removal`.
#[utoipa::path(put, path = "/api/v1/config", tag = "config", params(PutConfigQuery),
    request_body(content((String = "application/toml"), (Object = "application/json"))),
    responses((status = 200, body = Object), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn put_config(
    State(api): State<Shared>,
    c: Caller,
    Q(q): Q<PutConfigQuery>,
    req: Request,
) -> Result<Json<Value>, Problem> {
    c.need(Role::Editor)?;
    if q.confirm_url_change == Some(true) {
        // Moving a connection moves where its token is sent: an Admin's decision.
        c.need(Role::Admin)?;
    }
    let json = req.headers().get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"));
    let bytes = read_bytes(req, &()).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::bad_request(
            "empty-body",
            "the request has no configuration in it: send the whole configuration (TOML or JSON)",
        ));
    }
    let cfg = if json { parse_json::<rules::Config>(&bytes)? } else { toml_config(&bytes)? };
    let confirm = crate::config::Confirm {
        url_change: q.confirm_url_change == Some(true),
        auth_change: c.need(Role::Admin).is_ok(),
        removal: q
            .confirm_removal
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect(),
        ..Default::default()
    };
    if q.dry_run == Some(true) {
        let after = compiled(&api, &cfg, &confirm).await?;
        // Against nothing before the first configuration: every worker's account is new.
        let before = match crate::config::current(&api.store).await {
            Ok(r) => r,
            Err(_) => {
                rules::Rules::compile(&rules::Config::default()).map_err(|e| Problem::unavailable(e.join("; ")))?
            }
        };
        let today = jiff::Zoned::now().date();
        let d = crate::preview::differences(
            &api.store,
            &before,
            &after,
            today,
            &crate::preview::Listing { limit: 1000, ..Default::default() },
        )
        .await?;
        return Ok(Json(json!({"dry_run": true, "saved": false, "differences": d})));
    }
    let r = crate::config::import(&api.store, &api.data_dir, "request body", &cfg, &confirm, &c.actor).await?;
    match r {
        Ok(i) => {
            api.wake.notify_one();
            Ok(Json(json!({"saved": true, "version": i.version.id, "sha256": i.version.checksum, "notes": i.notes})))
        }
        Err(problems) => {
            Err(config_problems(StatusCode::UNPROCESSABLE_ENTITY, "nothing was saved", &problems.to_string()))
        }
    }
}

/// A configuration's problems, one per line, as a problem document.
fn config_problems(status: StatusCode, detail: &str, problems: &str) -> Problem {
    Problem::new(status, "invalid-config", detail).with_errors(json!(problems.lines().collect::<Vec<_>>()))
}

/// A TOML configuration from a request body: 400 with every problem when it does not read.
pub(super) fn toml_config(bytes: &[u8]) -> Result<rules::Config, Problem> {
    let text = std::str::from_utf8(bytes).map_err(|e| Problem::bad_request("malformed-toml", e.to_string()))?;
    crate::config::parse("request body", text)
        .map_err(|e| config_problems(StatusCode::BAD_REQUEST, "the configuration has problems", &e.to_string()))
}

/// A configuration compiled as an import would compile it, after the same checks: 422 with
/// every problem.
pub(super) async fn compiled(
    api: &Shared,
    cfg: &rules::Config,
    confirm: &crate::config::Confirm,
) -> Result<rules::Rules, Problem> {
    crate::config::compile_checked(&api.store, &api.data_dir, "request body", cfg, confirm).await?.map_err(|e| {
        config_problems(StatusCode::UNPROCESSABLE_ENTITY, "the configuration has problems", &e.to_string())
    })
}

// ---- HR data ----

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// full (default: the whole population) or delta (changed workers only).
    pub kind: Option<String>,
    /// A full load whose population fell too far: its exact population, to take it anyway.
    pub confirm_population: Option<usize>,
}

/// Upload an HR export (CSV, or JSON with Content-Type application/json): the same header
/// check, quarantine and lifecycle events as `tenure hr load`. 422 when refused whole.
#[utoipa::path(post, path = "/api/v1/hr/uploads", tag = "hr", params(UploadQuery),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = Object), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn upload(
    State(api): State<Shared>,
    c: Caller,
    Q(q): Q<UploadQuery>,
    req: Request,
) -> Result<Json<Value>, Problem> {
    c.need(Role::Editor)?;
    let kind = match q.kind.as_deref() {
        None | Some("full") => LoadKind::Full,
        Some("delta") => LoadKind::Delta,
        Some(k) => return Err(Problem::bad_request("invalid-query", format!("kind {k:?}: full or delta"))),
    };
    let json = req.headers().get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"));
    let bytes = read_bytes(req, &()).await?;
    // The load records its uploader: a proposer of the changes it brings (maker-checker).
    let u = intake::Upload {
        bytes: bytes.to_vec(),
        json,
        kind,
        confirm_population: q.confirm_population,
        actor: c.actor.clone(),
        person: c.person.clone(),
        file_name: None,
    };
    let taken = intake::upload(&api.store, &api.data_dir, u).await?;
    match taken {
        Taken::Loaded { outcome, report } => {
            api.wake.notify_one();
            let mut v = serde_json::to_value(&outcome).map_err(|e| Problem::unavailable(e.to_string()))?;
            v["quarantined_rows"] = serde_json::to_value(&report.quarantined).unwrap_or_default();
            v["date_formats"] = serde_json::to_value(&report.date_formats).unwrap_or_default();
            v["ignored_columns"] = serde_json::to_value(&report.ignored_columns).unwrap_or_default();
            Ok(Json(v))
        }
        Taken::Rejected { load_id, reason, rejected } => {
            Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "hr-file-rejected", reason)
                .with_errors(json!({"load_id": load_id, "rejected": rejected})))
        }
    }
}

/// Every load, newest first, refused ones with their reason.
#[utoipa::path(get, path = "/api/v1/hr/loads", tag = "hr",
    responses((status = 200, body = Vec<Object>), (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn loads(State(api): State<Shared>, _c: Caller) -> Result<Json<Vec<Value>>, Problem> {
    let loads = api.store.loads().await?;
    Ok(Json(loads.iter().rev().map(intake::load_view).collect()))
}

/// The quarantined rows of a load: row number, worker when readable, and why.
#[utoipa::path(get, path = "/api/v1/hr/loads/{id}/quarantined", tag = "hr", params(("id" = String, Path)),
    responses((status = 200, body = Vec<Object>), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn quarantined(
    State(api): State<Shared>,
    _c: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<Value>>, Problem> {
    if api.store.load(&id).await?.is_none() {
        return Err(Problem::not_found(format!("no load {id:?}")));
    }
    let rows = api.store.quarantined(&id).await?;
    Ok(Json(
        rows.iter()
            .map(|(row, worker, detail)| {
                json!({"row": row, "worker": worker, "detail": serde_json::from_str::<Value>(detail).unwrap_or(json!(detail))})
            })
            .collect(),
    ))
}

// ---- workers ----

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WorkerQuery {
    /// Part of an employee id, name or e-mail (any case); none: everyone.
    pub q: Option<String>,
    /// At most this many (default 50, at most 500).
    pub limit: Option<usize>,
    /// Skip this many matches first.
    pub offset: Option<usize>,
}

/// Workers by id, name or e-mail, paged.
#[utoipa::path(get, path = "/api/v1/workers", tag = "workers", params(WorkerQuery),
    responses((status = 200, body = Object), (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn workers(State(api): State<Shared>, _c: Caller, Q(q): Q<WorkerQuery>) -> Result<Json<Value>, Problem> {
    let all = api.index.current(&api.store).await?;
    let (limit, offset) = (q.limit.unwrap_or(50).clamp(1, 500), q.offset.unwrap_or(0));
    let found = all.search(q.q.as_deref().unwrap_or_default(), limit, offset);
    let total = found.total;
    let page: Vec<Value> = found
        .workers
        .iter()
        .map(|w| json!({"id": w.id, "name": w.name, "email": w.email, "status": w.status}))
        .collect();
    Ok(Json(json!({"total": total, "offset": offset, "limit": limit, "workers": page})))
}

/// One worker's "why": the record, each connection's role decision with every condition's
/// value, the mapped attributes with their formulas, the planned actions, events and timeline.
#[utoipa::path(get, path = "/api/v1/workers/{id}", tag = "workers", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn worker(State(api): State<Shared>, c: Caller, Path(id): Path<String>) -> Result<Json<Value>, Problem> {
    let why = service::workers::why(&api.store, &api.key, &id, |name| c.on(name).is_ok(), &api.namesakes).await?;
    let connections: Vec<Value> = why
        .connections
        .iter()
        .map(|p| {
            json!({"connection": p.decision.connection, "decision": p.decision, "roles": p.roles, "plan": p.plan,
                "note": p.note, "target": p.read})
        })
        .collect();
    let events: Vec<&intake::Listed> = why.events.iter().map(|e| &e.listed).collect();
    let timeline: Vec<Value> = why
        .timeline
        .iter()
        .map(|a| {
            json!({"seq": a.seq, "at": a.at, "connection": a.entry.connection, "action": a.entry.action,
                "outcome": a.entry.outcome, "run_id": a.entry.run_id,
                "detail": serde_json::from_str::<Value>(&a.entry.detail).unwrap_or_default()})
        })
        .collect();
    Ok(Json(json!({"worker": why.worker, "connections": connections, "events": events, "timeline": timeline})))
}

pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(connections, add_connection))
        .routes(routes!(connection, remove_connection))
        .routes(routes!(test_connection))
        .routes(routes!(pause_connection))
        .routes(routes!(resume_connection))
        .routes(routes!(rotate_token))
        .routes(routes!(get_config, put_config))
        .routes(routes!(upload))
        .routes(routes!(loads))
        .routes(routes!(quarantined))
        .routes(routes!(workers))
        .routes(routes!(worker))
}
