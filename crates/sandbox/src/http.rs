//! The HTTP face of the sandbox: routes under `/scim/v2`, bearer authentication, the fault
//! knobs, and handlers that turn requests into store calls and SCIM answers.

use crate::faults::{FaultState, Faults, InFlight, Quota, Verdict};
use crate::store::{etag_matches, Entry, Kind, ListQuery, Store};
use crate::Limits;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use scim::filter::AttrPath;
use scim::schema;
use scim::{patch, Dialect, Error, Filter};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use subtle::ConstantTimeEq;
use tokio::sync::Notify;

pub struct App {
    pub store: Store,
    token_hash: [u8; 32],
    pub faults: FaultState,
    pub limits: Limits,
    /// With `limits.record_history`: every request as it was answered, in order of answer.
    history: std::sync::Mutex<Vec<Value>>,
    /// Where this account is served: "" for the sandbox's own, `/a/{name}` for the others.
    prefix: String,
    /// The other accounts this process serves, by name (only the sandbox's own holds any).
    accounts: RwLock<HashMap<String, Router>>,
}

impl App {
    pub fn new(store: Store, token_hash: [u8; 32], faults: Faults, limits: Limits) -> Self {
        App {
            store,
            token_hash,
            faults: FaultState::new(faults),
            limits,
            history: Default::default(),
            prefix: String::new(),
            accounts: Default::default(),
        }
    }

    /// Adds an account served at `/a/{name}/scim/v2`: an empty store (in memory) of this
    /// one's dialect and schemas, the same token, its own fault knobs (a rate limit each) and
    /// limits. Its base URL path, or why not.
    pub fn add_account(&self, name: &str) -> Result<String, String> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(format!("{name:?} is not an account name: 1 to 64 letters, digits, '-' or '_'"));
        }
        let mut accounts = self.accounts.write().unwrap_or_else(|p| p.into_inner());
        if accounts.contains_key(name) {
            return Err(format!("an account named {name:?} exists already"));
        }
        let mut store = Store::open(None, self.store.dialect)?;
        store.users.extensions.clone_from(&self.store.users.extensions);
        let app = Arc::new(App {
            prefix: format!("/a/{name}"),
            ..App::new(store, self.token_hash, self.faults.cfg.clone(), self.limits.clone())
        });
        let path = format!("/a/{name}/scim/v2");
        accounts.insert(name.to_string(), account_router(app));
        Ok(path)
    }

    /// The names of the other accounts served, sorted.
    pub fn account_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.accounts.read().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
        names.sort();
        names
    }
}

/// Milliseconds since the Unix epoch, on this machine's clock (the test's checker compares
/// them with each other, never with another machine's).
fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Keeps each request with the node and epoch tenure tagged it with, when asked to.
async fn record(State(app): State<Shared>, req: Request, next: Next) -> Response {
    if !app.limits.record_history || req.uri().path().starts_with("/_sandbox/") {
        return next.run(req).await;
    }
    let (node, epoch) = {
        let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
        (header("x-tenure-node"), header("x-tenure-epoch").and_then(|e| e.parse::<i64>().ok()))
    };
    let (method, path) = (req.method().to_string(), req.uri().path().to_string());
    let received = now_ms();
    let resp = next.run(req).await;
    let entry = json!({"method": method, "path": path, "node": node, "epoch": epoch, "received_ms": received,
        "answered_ms": now_ms(), "status": resp.status().as_u16()});
    app.history.lock().unwrap_or_else(|p| p.into_inner()).push(entry);
    resp
}

/// `GET /_sandbox/history`: the recorded requests, in order of answer.
async fn history(State(app): State<Shared>) -> Response {
    let all = app.history.lock().unwrap_or_else(|p| p.into_inner()).clone();
    scim_json(StatusCode::OK, &json!({"recording": app.limits.record_history, "requests": all}))
}

type Shared = Arc<App>;
const SCIM_JSON: &str = "application/scim+json";

/// A per-connection signal the drop knob uses to close the connection without an answer.
#[derive(Clone)]
struct DropSignal(Arc<Notify>);

pub(crate) async fn serve_connection(stream: tokio::net::TcpStream, router: Router) {
    use tower::ServiceExt;
    let notify = Arc::new(Notify::new());
    let signal = DropSignal(notify.clone());
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(signal.clone());
        router.clone().oneshot(req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
    tokio::select! {
        _ = conn => {}
        _ = notify.notified() => {}
    }
}

/// The sandbox's router: its own account at `/scim/v2`, the others at `/a/{name}/...`, and
/// `/_sandbox/accounts` to list and add them.
pub fn router(app: Shared) -> Router {
    // Everything here asks for the token first (an account's name is not told to a stranger);
    // a request for another account then meets that account's own router (its fault knobs).
    let accounts = Router::new()
        .route("/_sandbox/accounts", get(list_accounts).post(add_account))
        .route("/a/{account}/{*rest}", any(to_account))
        .route_layer(middleware::from_fn_with_state(app.clone(), authenticate))
        .with_state(app.clone());
    account_router(app).merge(accounts)
}

/// A request for another account, handed to that account's router with the prefix taken off.
async fn to_account(State(app): State<Shared>, Path((account, _)): Path<(String, String)>, req: Request) -> Response {
    let router = app.accounts.read().unwrap_or_else(|p| p.into_inner()).get(&account).cloned();
    let Some(router) = router else {
        return error_response(&Error::not_found(format!("no account named {account:?} in this sandbox")));
    };
    // The rest of the path as sent (still percent-encoded): the account's router decodes it
    // once, as the sandbox's own does.
    let raw = req.uri().path();
    let rest = raw.get(3..).and_then(|r| r.find('/').map(|i| &r[i..])).unwrap_or("/");
    let query = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
    let Ok(uri) = format!("{rest}{query}").parse::<axum::http::Uri>() else {
        return error_response(&Error::new(400, None, "the request's path cannot be read"));
    };
    // A new request rather than this one changed: this router's path parameters (the account's
    // name) would otherwise be read by the account's handlers as theirs. Only the drop knob's
    // signal carries over.
    let (parts, body) = req.into_parts();
    let mut fresh = Request::new(body);
    *fresh.method_mut() = parts.method;
    *fresh.uri_mut() = uri;
    *fresh.version_mut() = parts.version;
    *fresh.headers_mut() = parts.headers;
    if let Some(d) = parts.extensions.get::<DropSignal>().cloned() {
        fresh.extensions_mut().insert(d);
    }
    match tower::ServiceExt::oneshot(router, fresh).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

/// `GET /_sandbox/accounts`: the other accounts served, with their base URL paths.
async fn list_accounts(State(app): State<Shared>) -> Response {
    let all: Vec<Value> =
        app.account_names().into_iter().map(|n| json!({"name": n, "path": format!("/a/{n}/scim/v2")})).collect();
    scim_json(StatusCode::OK, &json!({"accounts": all}))
}

/// `POST /_sandbox/accounts` with `{"name": "..."}`: adds an account (see `App::add_account`).
async fn add_account(State(app): State<Shared>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Answer {
    let v = parse_body(body, app.limits.max_body_bytes)?;
    let name = v.get("name").and_then(Value::as_str).unwrap_or_default();
    let path = app.add_account(name).map_err(|e| Error::new(400, Some(scim::ScimType::InvalidValue), e))?;
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    Ok(scim_json(StatusCode::CREATED, &json!({"name": name, "path": path, "url": format!("http://{host}{path}")})))
}

/// One account's routes: SCIM at `/scim/v2` and its stats and history under `/_sandbox/`.
fn account_router(app: Shared) -> Router {
    let body_limit = app.limits.max_body_bytes;
    let scim = Router::new()
        .nest("/Users", resource_routes(Kind::User))
        .nest("/Groups", resource_routes(Kind::Group))
        .route("/.search", post(search_all))
        .route("/Bulk", post(bulk))
        .route("/ServiceProviderConfig", get(service_provider_config))
        .route("/ResourceTypes", get(resource_types))
        .route("/ResourceTypes/{id}", get(resource_type))
        .route("/Schemas", get(schemas))
        .route("/Schemas/{id}", get(schema_by_id))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    Router::new()
        .nest("/scim/v2", scim)
        .route("/_sandbox/stats", get(stats))
        .route("/_sandbox/history", get(history))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(app.clone(), authenticate))
        .layer(middleware::from_fn_with_state(app.clone(), misbehave))
        .layer(middleware::from_fn_with_state(app.clone(), record))
        .with_state(app)
}

/// The endpoints of one resource type; the handlers are shared, the type is captured.
fn resource_routes(kind: Kind) -> Router<Shared> {
    Router::new()
        .route(
            "/",
            get(move |State(a): State<Shared>, h: HeaderMap, Query(p): Params| list(a, kind, h, p))
                .post(move |State(a): State<Shared>, h: HeaderMap, b: BodyBytes| create(a, kind, h, b)),
        )
        .route(
            "/.search",
            post(move |State(a): State<Shared>, h: HeaderMap, Query(p): Params, b: BodyBytes| search(a, kind, h, p, b)),
        )
        .route(
            "/{id}",
            get(move |State(a): State<Shared>, Path(id): Path<String>, h: HeaderMap, Query(p): Params| {
                get_one(a, kind, id, h, p)
            })
            .put(
                move |State(a): State<Shared>, Path(id): Path<String>, h: HeaderMap, Query(p): Params, b: BodyBytes| {
                    write(a, kind, id, Method::PUT, h, p, b)
                },
            )
            .patch(
                move |State(a): State<Shared>, Path(id): Path<String>, h: HeaderMap, Query(p): Params, b: BodyBytes| {
                    write(a, kind, id, Method::PATCH, h, p, b)
                },
            )
            .delete(move |State(a): State<Shared>, Path(id): Path<String>, h: HeaderMap| remove(a, kind, id, h)),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

fn error_response(e: &Error) -> Response {
    let mut resp =
        (StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), e.to_json().to_string())
            .into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    resp
}

struct ScimError(Error);

impl From<Error> for ScimError {
    fn from(e: Error) -> Self {
        ScimError(e)
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        error_response(&self.0)
    }
}

type Answer = Result<Response, ScimError>;

fn scim_json(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    resp
}

async fn not_found(req: Request) -> Response {
    error_response(&Error::not_found(format!("no SCIM endpoint at {}; the base URL is /scim/v2", req.uri().path())))
}

async fn method_not_allowed(req: Request) -> Response {
    error_response(&Error::new(405, None, format!("{} is not allowed on {}", req.method(), req.uri().path())))
}

/// The fault knobs, applied before anything else, as a SaaS gateway would. The sandbox's own
/// endpoints (`/_sandbox/...`) are neither slowed, limited nor counted in flight.
async fn misbehave(State(app): State<Shared>, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/_sandbox/") {
        return next.run(req).await;
    }
    let _in_flight = InFlight::enter(&app.faults.counters);
    if !app.faults.cfg.any() {
        return next.run(req).await;
    }
    let (delay, verdict, quota) = app.faults.judge_with_quota();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut resp = answer(req, next, verdict).await;
    if let (true, Some(q)) = (app.faults.cfg.rate_headers, quota) {
        rate_headers(resp.headers_mut(), &q);
    }
    resp
}

/// The limit as draft-ietf-httpapi-ratelimit-headers and the older `X-RateLimit-*` say it.
fn rate_headers(h: &mut HeaderMap, q: &Quota) {
    let window =
        if q.window_secs.fract() == 0.0 { format!("{}", q.window_secs) } else { format!("{:.3}", q.window_secs) };
    let pairs = [
        ("ratelimit-policy", format!("{};w={window}", q.limit)),
        ("ratelimit-limit", q.limit.to_string()),
        ("ratelimit-remaining", q.remaining.to_string()),
        ("ratelimit-reset", q.reset_secs.to_string()),
        ("x-ratelimit-limit", q.limit.to_string()),
        ("x-ratelimit-remaining", q.remaining.to_string()),
        ("x-ratelimit-reset", q.reset_secs.to_string()),
    ];
    for (name, value) in pairs {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
}

/// The answer a fault verdict makes of a request.
async fn answer(req: Request, next: Next, verdict: Verdict) -> Response {
    let drop_signal = req.extensions().get::<DropSignal>().cloned();
    match verdict {
        Verdict::Serve => next.run(req).await,
        Verdict::RateLimited(Some(secs)) => {
            let mut r = error_response(&Error::new(429, None, format!("rate limit reached; retry after {secs} s")));
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            r
        }
        Verdict::RateLimited(None) => error_response(&Error::new(429, None, "rate limit reached")),
        Verdict::Fail(status) => {
            let mut r = error_response(&Error::new(status, None, "injected failure (sandbox error knob)"));
            if status == 503 {
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
            }
            r
        }
        Verdict::DropBefore | Verdict::DropAfter => {
            if verdict == Verdict::DropAfter {
                let _ = next.run(req).await;
            }
            match drop_signal {
                Some(DropSignal(n)) => {
                    n.notify_one();
                    std::future::pending().await
                }
                None => error_response(&Error::new(500, None, "connection drop requested")),
            }
        }
    }
}

async fn authenticate(State(app): State<Shared>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    let ok = given.is_some_and(|t| bool::from(crate::token_hash(t).ct_eq(&app.token_hash)));
    if ok {
        return next.run(req).await;
    }
    let (detail, challenge) = match given {
        None => ("authentication required: send Authorization: Bearer <token>", "Bearer realm=\"tenure-sandbox\""),
        Some(_) => ("the bearer token was rejected", "Bearer realm=\"tenure-sandbox\", error=\"invalid_token\""),
    };
    let mut r = error_response(&Error::new(401, None, detail));
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    r
}

async fn stats(State(app): State<Shared>) -> Response {
    let c = &app.faults.counters;
    scim_json(
        StatusCode::OK,
        &json!({
            "users": app.store.len(Kind::User),
            "groups": app.store.len(Kind::Group),
            "requests": c.requests.load(Ordering::Relaxed),
            "rateLimited": c.rate_limited.load(Ordering::Relaxed),
            "failed": c.failed.load(Ordering::Relaxed),
            "dropped": c.dropped.load(Ordering::Relaxed),
            "inFlight": c.in_flight.load(Ordering::Relaxed),
            "maxInFlight": c.max_in_flight.load(Ordering::Relaxed),
        }),
    )
}

fn base_url(app: &App, headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    format!("http://{host}{}/scim/v2", app.prefix)
}

/// Parses a JSON body, saying where it is malformed.
fn parse_body(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Value, Error> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::new(413, Some(scim::ScimType::TooMany), format!("the body is larger than {limit} bytes"))
        } else {
            Error::invalid_syntax(format!("cannot read the body: {r}"))
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::invalid_syntax("the body is empty; a JSON object is expected"));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::invalid_syntax(format!("malformed JSON at line {}, column {}: {e}", e.line(), e.column())))
}

/// monday.com makes new users members and active unless told otherwise.
pub(crate) fn apply_user_defaults(dialect: Dialect, doc: &mut Map<String, Value>) {
    if let Some(t) = dialect.default_user_type() {
        doc.entry("userType").or_insert_with(|| json!(t));
    }
    doc.entry("active").or_insert(json!(true));
}

/// One resource as answered: rendered, with what is never returned (passwords) left out and
/// the `attributes`/`excludedAttributes` selection applied.
fn entry_response(
    app: &App,
    kind: Kind,
    e: &Entry,
    status: StatusCode,
    headers: &HeaderMap,
    attrs: &[AttrPath],
    excluded: &[AttrPath],
) -> Response {
    let base = base_url(app, headers);
    let full = !refs_left_out(kind, attrs, excluded);
    let doc = app.store.schema(kind).project(app.store.render(kind, e, &base, full), attrs, excluded);
    let mut r = scim_json(status, &Value::Object(doc));
    r.headers_mut().insert(header::ETAG, HeaderValue::from_str(&e.etag()).expect("etag is ASCII"));
    if status == StatusCode::CREATED {
        let loc = format!("{base}/{}/{}", kind.endpoint(), e.doc["id"].as_str().unwrap_or_default());
        if let Ok(v) = HeaderValue::from_str(&loc) {
            r.headers_mut().insert(header::LOCATION, v);
        }
    }
    r
}

fn if_match(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::IF_MATCH).and_then(|h| h.to_str().ok())
}

/// If-None-Match on a write: refuse when the resource still has a listed version.
fn check_if_none_match(app: &App, kind: Kind, id: &str, headers: &HeaderMap) -> Result<(), Error> {
    let Some(h) = headers.get(header::IF_NONE_MATCH).and_then(|h| h.to_str().ok()) else { return Ok(()) };
    match app.store.get(kind, id) {
        Some(e) if etag_matches(h, &e.etag()) => {
            Err(Error::new(412, None, format!("If-None-Match {h}: the resource is at version {}", e.etag())))
        }
        _ => Ok(()),
    }
}

// --- core operations, shared by the handlers and /Bulk ---

async fn do_create(app: &App, kind: Kind, body: &Value) -> Result<Entry, Error> {
    let schema = app.store.schema(kind);
    let mut doc = schema.normalize(body)?;
    if kind == Kind::User {
        apply_user_defaults(app.store.dialect, &mut doc);
    }
    schema.check_required(&doc)?;
    app.store.create(kind, doc, true).await
}

async fn do_replace(app: &App, kind: Kind, id: &str, body: &Value, if_match: Option<&str>) -> Result<Entry, Error> {
    let schema = app.store.schema(kind);
    let given = schema.normalize(body)?;
    let dialect = app.store.dialect;
    app.store
        .update(kind, id, if_match, |current| {
            let mut doc = given.clone();
            if kind == Kind::User {
                // monday.com changes these only through PATCH: a PUT leaves them as they are.
                for key in dialect.patch_only_attributes() {
                    match current.get(*key) {
                        Some(v) => doc.insert(key.to_string(), v.clone()),
                        None => doc.remove(*key),
                    };
                }
                if dialect == Dialect::Generic {
                    doc.entry("active").or_insert(json!(true));
                }
            }
            schema.check_required(&doc)?;
            Ok(doc)
        })
        .await
}

/// `full` false: the answer leaves out a team's member list.
async fn do_patch(
    app: &App,
    kind: Kind,
    id: &str,
    body: &Value,
    if_match: Option<&str>,
    full: bool,
) -> Result<Entry, Error> {
    let ops = patch::parse(body)?;
    if ops.len() > app.limits.max_patch_operations {
        return Err(Error::bad(
            scim::ScimType::TooMany,
            format!("{} operations in one PATCH; at most {} are accepted", ops.len(), app.limits.max_patch_operations),
        ));
    }
    if kind == Kind::Group {
        if let Some(ids) = member_ids_added(&ops) {
            return app.store.add_members(id, if_match, &ids, full).await;
        }
    }
    let schema = app.store.schema(kind);
    app.store.update(kind, id, if_match, |current| patch::apply(schema, current, &ops)).await
}

/// The member ids of a PATCH that only adds members by id (`add`, path `members`, values
/// `{"value": id}`), which the store does without rewriting the team; None for any other.
fn member_ids_added(ops: &[patch::Operation]) -> Option<Vec<&str>> {
    let mut ids = vec![];
    for op in ops {
        let p = op.path.as_ref()?;
        let plain = p.filter.is_none() && p.sub_after_filter.is_none() && p.attr.sub.is_none();
        let core = p.attr.uri.as_deref().is_none_or(|u| u.eq_ignore_ascii_case(schema::GROUP));
        if op.op != patch::OpKind::Add || !plain || !core || !p.attr.name.eq_ignore_ascii_case("members") {
            return None;
        }
        for v in op.value.as_ref()?.as_array()? {
            let o = v.as_object()?;
            match (o.len(), o.get("value")) {
                (1, Some(Value::String(id))) => ids.push(id.as_str()),
                _ => return None,
            }
        }
    }
    // An empty add is left to the general path, which says what it thinks of it.
    (!ids.is_empty()).then_some(ids)
}

// --- handlers ---

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn paths(list: Option<&str>) -> Result<Vec<AttrPath>, Error> {
    list.map(|s| s.split(',').filter(|p| !p.trim().is_empty()).map(AttrPath::parse).collect()).unwrap_or(Ok(vec![]))
}

/// The query of a list or .search call, from URL parameters or a SearchRequest body.
struct Search {
    filter: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    start_index: Option<String>,
    count: Option<String>,
    attributes: Option<String>,
    excluded: Option<String>,
    provisioned_only: Option<String>,
}

impl Search {
    fn from_params(p: &[(String, String)]) -> Search {
        let s = |n| param(p, n).map(str::to_string);
        Search {
            filter: s("filter"),
            sort_by: s("sortBy"),
            sort_order: s("sortOrder"),
            start_index: s("startIndex"),
            count: s("count"),
            attributes: s("attributes"),
            excluded: s("excludedAttributes"),
            provisioned_only: s("scim_provisioned_only"),
        }
    }

    fn from_body(v: &Value, p: &[(String, String)]) -> Result<Search, Error> {
        let o = v.as_object().ok_or_else(|| Error::invalid_syntax("a SearchRequest must be a JSON object"))?;
        let text = |k: &str| -> Result<Option<String>, Error> {
            match scim::resource::get_ci(o, k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Number(n)) => Ok(Some(n.to_string())),
                Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
                    Ok(Some(a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")))
                }
                Some(other) => Err(Error::invalid_value(format!("SearchRequest {k} has the wrong type: {other}"))),
            }
        };
        Ok(Search {
            filter: text("filter")?,
            sort_by: text("sortBy")?,
            sort_order: text("sortOrder")?,
            start_index: text("startIndex")?,
            count: text("count")?,
            attributes: text("attributes")?,
            excluded: text("excludedAttributes")?,
            provisioned_only: param(p, "scim_provisioned_only").map(str::to_string),
        })
    }

    fn query(&self, app: &App, kind: Option<Kind>) -> Result<(ListQuery, Vec<AttrPath>, Vec<AttrPath>), Error> {
        let filter = match &self.filter {
            Some(f) if !f.trim().is_empty() => {
                let limits = scim::filter::FilterLimits {
                    max_depth: app.limits.max_filter_depth,
                    max_terms: app.limits.max_filter_terms,
                    max_bytes: app.limits.max_filter_bytes,
                };
                let parsed = Filter::parse_with_limits(f, limits)?;
                if let Some(k) = kind {
                    app.store.schema(k).check_filter(&parsed)?;
                }
                Some(parsed)
            }
            _ => None,
        };
        let int = |name: &str, v: &Option<String>| -> Result<Option<i64>, Error> {
            v.as_deref()
                .map(|s| {
                    s.trim()
                        .parse::<i64>()
                        .map_err(|_| Error::invalid_value(format!("{name} must be an integer, found {s:?}")))
                })
                .transpose()
        };
        let start = int("startIndex", &self.start_index)?.unwrap_or(1).max(1) as usize;
        let count = int("count", &self.count)?
            .map(|c| c.max(0) as usize)
            .unwrap_or(app.limits.max_results)
            .min(app.limits.max_results);
        let sort_by = self.sort_by.as_deref().filter(|s| !s.trim().is_empty()).map(AttrPath::parse).transpose()?;
        let descending = match self.sort_order.as_deref() {
            None => false,
            Some(s) if s.eq_ignore_ascii_case("ascending") => false,
            Some(s) if s.eq_ignore_ascii_case("descending") => true,
            Some(s) => {
                return Err(Error::invalid_value(format!("sortOrder must be ascending or descending, found {s:?}")))
            }
        };
        let provisioned_only = match self.provisioned_only.as_deref() {
            None => app.store.dialect == Dialect::Monday,
            Some(s) => !s.eq_ignore_ascii_case("false"),
        };
        let q =
            ListQuery { filter, sort_by, descending, start_index: start, count, provisioned_only, without_refs: false };
        Ok((q, paths(self.attributes.as_deref())?, paths(self.excluded.as_deref())?))
    }
}

fn list_response(total: usize, start: usize, resources: Vec<Value>) -> Response {
    // Written straight from the resources: `json!` would first copy every page into a new
    // Value tree, which for a page of 1,000 users cost more than rendering it.
    #[derive(serde::Serialize)]
    struct ListResponse<'a> {
        schemas: [&'static str; 1],
        #[serde(rename = "totalResults")]
        total: usize,
        #[serde(rename = "startIndex")]
        start: usize,
        #[serde(rename = "itemsPerPage")]
        per_page: usize,
        #[serde(rename = "Resources")]
        resources: &'a [Value],
    }
    let body = ListResponse {
        schemas: [schema::LIST_RESPONSE],
        total,
        start,
        per_page: resources.len(),
        resources: &resources,
    };
    let text = serde_json::to_string(&body).expect("JSON values serialise");
    let mut resp = (StatusCode::OK, text).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    resp
}

/// Whether a projection by `attributes`/`excludedAttributes` drops the attribute a resource of `kind` builds from other resources
/// (a user's `groups`, a team's `members`), so that it is not built only to be dropped.
fn refs_left_out(kind: Kind, attrs: &[AttrPath], excluded: &[AttrPath]) -> bool {
    let (name, urn) = match kind {
        Kind::User => ("groups", schema::USER),
        Kind::Group => ("members", schema::GROUP),
    };
    let core = |p: &AttrPath| p.uri.as_deref().is_none_or(|u| u.eq_ignore_ascii_case(urn));
    let names = |p: &AttrPath| p.name.eq_ignore_ascii_case(name);
    if attrs.is_empty() {
        excluded.iter().any(|p| core(p) && names(p) && p.sub.is_none())
    } else {
        !attrs.iter().any(names)
    }
}

fn run_list(app: &App, kind: Kind, s: &Search, headers: &HeaderMap) -> Answer {
    let (mut q, attrs, excluded) = s.query(app, Some(kind))?;
    q.without_refs = refs_left_out(kind, &attrs, &excluded);
    let schema = app.store.schema(kind);
    let page = app.store.list(kind, &q, &base_url(app, headers), |m| schema.project(m, &attrs, &excluded));
    Ok(list_response(page.total, q.start_index, page.resources.into_iter().map(Value::Object).collect()))
}

async fn list(app: Shared, kind: Kind, headers: HeaderMap, params: Vec<(String, String)>) -> Answer {
    run_list(&app, kind, &Search::from_params(&params), &headers)
}

async fn search(
    app: Shared,
    kind: Kind,
    headers: HeaderMap,
    params: Vec<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let v = parse_body(body, app.limits.max_body_bytes)?;
    run_list(&app, kind, &Search::from_body(&v, &params)?, &headers)
}

type Params = Query<Vec<(String, String)>>;

/// POST /.search: Users and Groups together; a filter that names attributes one type lacks
/// simply matches none of that type.
async fn search_all(
    State(app): State<Shared>,
    h: HeaderMap,
    Query(p): Params,
    b: Result<Bytes, BytesRejection>,
) -> Answer {
    let v = parse_body(b, app.limits.max_body_bytes)?;
    let s = Search::from_body(&v, &p)?;
    let (q, attrs, excluded) = s.query(&app, None)?;
    let base = base_url(&app, &h);
    let mut all = Vec::new();
    for kind in [Kind::User, Kind::Group] {
        let schema = app.store.schema(kind);
        if let Some(f) = &q.filter {
            if schema.check_filter(f).is_err() {
                continue;
            }
        }
        let whole = ListQuery {
            start_index: 1,
            count: usize::MAX,
            without_refs: refs_left_out(kind, &attrs, &excluded),
            ..q.clone()
        };
        let page = app.store.list(kind, &whole, &base, |m| schema.project(m, &attrs, &excluded));
        all.extend(page.resources.into_iter().map(Value::Object));
    }
    let total = all.len();
    let page: Vec<Value> = all.into_iter().skip(q.start_index - 1).take(q.count).collect();
    Ok(list_response(total, q.start_index, page))
}

async fn get_one(app: Shared, kind: Kind, id: String, headers: HeaderMap, params: Vec<(String, String)>) -> Answer {
    let e = app.store.get(kind, &id).ok_or_else(|| Error::not_found(format!("{} {id:?} not found", kind.as_str())))?;
    if let Some(h) = headers.get(header::IF_NONE_MATCH).and_then(|h| h.to_str().ok()) {
        if etag_matches(h, &e.etag()) {
            let mut r = StatusCode::NOT_MODIFIED.into_response();
            r.headers_mut().insert(header::ETAG, HeaderValue::from_str(&e.etag()).expect("ASCII"));
            return Ok(r);
        }
    }
    let attrs = paths(param(&params, "attributes"))?;
    let excluded = paths(param(&params, "excludedAttributes"))?;
    Ok(entry_response(&app, kind, &e, StatusCode::OK, &headers, &attrs, &excluded))
}

async fn create(app: Shared, kind: Kind, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Answer {
    let v = parse_body(body, app.limits.max_body_bytes)?;
    let e = do_create(&app, kind, &v).await?;
    Ok(entry_response(&app, kind, &e, StatusCode::CREATED, &headers, &[], &[]))
}

async fn write(
    app: Shared,
    kind: Kind,
    id: String,
    method: Method,
    headers: HeaderMap,
    params: Vec<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    check_if_none_match(&app, kind, &id, &headers)?;
    // RFC 7644 §3.9: the answer to any operation that returns the resource may be narrowed
    // (a client adding members to a large group does not want them all back).
    let attrs = paths(param(&params, "attributes"))?;
    let excluded = paths(param(&params, "excludedAttributes"))?;
    let v = parse_body(body, app.limits.max_body_bytes)?;
    let e = if method == Method::PUT {
        do_replace(&app, kind, &id, &v, if_match(&headers)).await?
    } else {
        do_patch(&app, kind, &id, &v, if_match(&headers), !refs_left_out(kind, &attrs, &excluded)).await?
    };
    Ok(entry_response(&app, kind, &e, StatusCode::OK, &headers, &attrs, &excluded))
}

async fn remove(app: Shared, kind: Kind, id: String, headers: HeaderMap) -> Answer {
    check_if_none_match(&app, kind, &id, &headers)?;
    app.store.delete(kind, &id, if_match(&headers)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

type BodyBytes = Result<Bytes, BytesRejection>;

/// Replaces `bulkId:X` references inside string values with the ids created earlier.
fn resolve_bulk_ids(v: &mut Value, ids: &HashMap<String, String>) -> Result<(), Error> {
    match v {
        Value::String(s) => {
            if let Some(key) = s.strip_prefix("bulkId:") {
                let id = ids.get(key).ok_or_else(|| {
                    Error::new(409, None, format!("bulkId {key:?} does not name an earlier successful POST"))
                })?;
                *s = id.clone();
            }
            Ok(())
        }
        Value::Array(a) => a.iter_mut().try_for_each(|x| resolve_bulk_ids(x, ids)),
        Value::Object(o) => o.values_mut().try_for_each(|x| resolve_bulk_ids(x, ids)),
        _ => Ok(()),
    }
}

/// POST /Bulk (RFC 7644 §3.7): operations in order, each atomic on its own, stopping after
/// `failOnErrors` failures.
async fn bulk(State(app): State<Shared>, headers: HeaderMap, body: BodyBytes) -> Answer {
    let v = parse_body(body, app.limits.max_body_bytes)?;
    let o = v.as_object().ok_or_else(|| Error::invalid_syntax("a BulkRequest must be a JSON object"))?;
    let listed = scim::resource::get_ci(o, "schemas").and_then(Value::as_array);
    if !listed.is_some_and(|s| s.iter().any(|u| u.as_str() == Some(schema::BULK_REQUEST))) {
        return Err(Error::invalid_syntax(format!("'schemas' must list {}", schema::BULK_REQUEST)).into());
    }
    let ops = scim::resource::get_ci(o, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::invalid_syntax("'Operations' must be an array"))?;
    if ops.len() > app.limits.max_bulk_operations {
        return Err(Error::new(
            413,
            Some(scim::ScimType::TooMany),
            format!("{} operations; at most {} per request", ops.len(), app.limits.max_bulk_operations),
        )
        .into());
    }
    let fail_on_errors = scim::resource::get_ci(o, "failOnErrors").and_then(Value::as_u64);
    let base = base_url(&app, &headers);
    let mut ids = HashMap::new();
    let mut results = Vec::new();
    let mut errors = 0u64;
    for (i, op) in ops.iter().enumerate() {
        if fail_on_errors.is_some_and(|n| errors >= n) {
            break;
        }
        let get = |k: &str| op.as_object().and_then(|m| scim::resource::get_ci(m, k));
        let method = get("method").and_then(Value::as_str).unwrap_or_default().to_ascii_uppercase();
        let bulk_id = get("bulkId").and_then(Value::as_str).map(str::to_string);
        let path = get("path").and_then(Value::as_str).unwrap_or_default().to_string();
        let version = get("version").and_then(Value::as_str).map(str::to_string);
        let outcome: Result<(u16, Option<(Kind, Entry)>), Error> = async {
            let mut data = get("data").cloned().unwrap_or(Value::Null);
            resolve_bulk_ids(&mut data, &ids)?;
            let mut parts = path.trim_start_matches('/').splitn(2, '/');
            let kind = match parts.next() {
                Some("Users") => Kind::User,
                Some("Groups") => Kind::Group,
                _ => {
                    return Err(Error::invalid_path(format!(
                        "Operations[{i}].path {path:?} must start with /Users or /Groups"
                    )))
                }
            };
            let mut id = parts.next().map(str::to_string);
            if let Some(x) = &mut id {
                if let Some(key) = x.strip_prefix("bulkId:") {
                    *x = ids
                        .get(key)
                        .cloned()
                        .ok_or_else(|| Error::new(409, None, format!("unknown bulkId {key:?}")))?;
                }
            }
            match (method.as_str(), id) {
                ("POST", None) => {
                    if bulk_id.is_none() {
                        return Err(Error::invalid_syntax(format!("Operations[{i}]: a POST needs a bulkId")));
                    }
                    Ok((201, Some((kind, do_create(&app, kind, &data).await?))))
                }
                ("PUT", Some(id)) => {
                    Ok((200, Some((kind, do_replace(&app, kind, &id, &data, version.as_deref()).await?))))
                }
                ("PATCH", Some(id)) => {
                    Ok((200, Some((kind, do_patch(&app, kind, &id, &data, version.as_deref(), true).await?))))
                }
                ("DELETE", Some(id)) => {
                    app.store.delete(kind, &id, version.as_deref()).await?;
                    Ok((204, None))
                }
                _ => Err(Error::invalid_syntax(format!("Operations[{i}]: {method} {path} is not a bulk operation"))),
            }
        }
        .await;
        let mut r = json!({"method": method});
        if let Some(b) = &bulk_id {
            r["bulkId"] = json!(b);
        }
        match outcome {
            Ok((status, entry)) => {
                r["status"] = json!(status.to_string());
                if let Some((kind, e)) = entry {
                    let id = e.doc["id"].as_str().unwrap_or_default().to_string();
                    r["location"] = json!(format!("{base}/{}/{id}", kind.endpoint()));
                    r["version"] = json!(e.etag());
                    if let Some(b) = &bulk_id {
                        ids.insert(b.clone(), id);
                    }
                } else if let Some(id) =
                    path.trim_start_matches('/').split_once('/').map(|(k, id)| format!("{base}/{k}/{id}"))
                {
                    r["location"] = json!(id);
                }
            }
            Err(e) => {
                errors += 1;
                r["status"] = json!(e.status.to_string());
                r["response"] = e.to_json();
            }
        }
        results.push(r);
    }
    Ok(scim_json(StatusCode::OK, &json!({"schemas": [schema::BULK_RESPONSE], "Operations": results})))
}

async fn service_provider_config(State(app): State<Shared>, headers: HeaderMap) -> Response {
    scim_json(
        StatusCode::OK,
        &json!({
            "schemas": [schema::SERVICE_PROVIDER_CONFIG],
            "documentationUri": if app.limits.sandbox_marker { crate::SANDBOX_MARKER } else { "https://example.com/scim" },
            "patch": {"supported": true},
            "bulk": {"supported": true, "maxOperations": app.limits.max_bulk_operations, "maxPayloadSize": app.limits.max_body_bytes},
            "filter": {"supported": true, "maxResults": app.limits.max_results},
            "changePassword": {"supported": false},
            "sort": {"supported": true},
            "etag": {"supported": true},
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "Authentication with the sandbox's bearer token (as monday.com's Admin > Security > SCIM token)",
                "primary": true
            }],
            "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{}/ServiceProviderConfig", base_url(&app, &headers))},
        }),
    )
}

fn resource_type_docs(app: &App, base: &str) -> Vec<Value> {
    [Kind::User, Kind::Group]
        .iter()
        .map(|k| {
            let s = app.store.schema(*k);
            json!({
                "schemas": [schema::RESOURCE_TYPE],
                "id": s.name,
                "name": s.name,
                "endpoint": s.endpoint,
                "description": s.description,
                "schema": s.core.id,
                "schemaExtensions": s.extensions.iter().map(|e| json!({"schema": e.id, "required": false})).collect::<Vec<_>>(),
                "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{}", s.name)},
            })
        })
        .collect()
}

async fn resource_types(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let docs = resource_type_docs(&app, &base_url(&app, &headers));
    list_response(docs.len(), 1, docs)
}

async fn resource_type(State(app): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Answer {
    resource_type_docs(&app, &base_url(&app, &headers))
        .into_iter()
        .find(|d| d["id"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(&id)))
        .map(|d| scim_json(StatusCode::OK, &d))
        .ok_or_else(|| Error::not_found(format!("no resource type {id:?}")).into())
}

/// Exactly the schemas the store keeps, with the attributes it keeps (per dialect).
fn schema_docs(app: &App, base: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    for k in [Kind::User, Kind::Group] {
        let s = app.store.schema(k);
        seen.push(&s.core);
        seen.extend(s.extensions.iter());
    }
    seen.into_iter().map(|s| s.to_json(&format!("{base}/Schemas/{}", s.id))).collect()
}

async fn schemas(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let docs = schema_docs(&app, &base_url(&app, &headers));
    list_response(docs.len(), 1, docs)
}

async fn schema_by_id(State(app): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Answer {
    schema_docs(&app, &base_url(&app, &headers))
        .into_iter()
        .find(|d| d["id"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(&id)))
        .map(|d| scim_json(StatusCode::OK, &d))
        .ok_or_else(|| Error::not_found(format!("no schema {id:?}")).into())
}
