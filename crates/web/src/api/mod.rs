//! The admin HTTP API under `/api/v1`: JSON in and out, errors as RFC 9457 problem documents
//! with a stable `type` each, callers authenticated by session cookie (the console) or API
//! token (scripts), each route allowed to the roles Hire2Retire gives it. Handlers only
//! translate: the use cases are the ones the CLI calls.

pub mod auth;
mod data;
mod ops;
mod users;

use crate::problem::Problem;
pub use crate::serve::{Allow, SessionPolicy};
use crate::users::Role;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use store::{MasterKey, Store};
use tokio::sync::Notify;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// Largest request body taken (an HR upload is the largest thing sent): 413 past it.
pub const MAX_BODY: usize = 64 << 20;

/// Everything the handlers share.
pub struct Api {
    pub store: Store,
    pub key: Arc<MasterKey>,
    pub data_dir: PathBuf,
    /// Wakes the scheduler (an HR upload, an approval: the next run need not wait).
    pub wake: Arc<Notify>,
    pub tls: bool,
    pub sessions: SessionPolicy,
    pub metrics_allow: Allow,
    /// Proxies whose X-Forwarded-For and X-Forwarded-Proto are believed.
    pub trusted_proxies: Allow,
    pub throttle: auth::Throttle,
    /// The runs of this process, live (shared with its scheduler).
    pub runs: Arc<service::registry::Registry>,
    pub index: service::workers::Index,
    /// Which workers' unique values could meet, for a worker's "why".
    pub namesakes: service::workers::KeptNamesakes,
    /// The status, read once for the callers asking together.
    pub status: service::status::Shared,
    /// The scheduler's interval, for the status's next run.
    pub interval: Duration,
}

pub type Shared = Arc<Api>;

/// Builds what the first requests would otherwise wait for (the workers' search index), so
/// that a service just started answers its first search as fast as the next ones.
pub async fn warm(api: &Shared) {
    if let Err(e) = api.index.current(&api.store).await {
        tracing::debug!("the workers' index was not built ahead: {e}");
    }
}

impl Api {
    pub fn new(store: Store, key: Arc<MasterKey>, data_dir: PathBuf, wake: Arc<Notify>, tls: bool) -> Api {
        Api {
            store,
            key,
            data_dir,
            wake,
            tls,
            sessions: SessionPolicy::default(),
            metrics_allow: Allow::loopback(),
            trusted_proxies: Allow::none(),
            throttle: auth::Throttle,
            runs: Arc::default(),
            index: service::workers::Index::default(),
            namesakes: service::workers::kept_namesakes(),
            status: service::status::Shared::default(),
            interval: Duration::from_secs(300),
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "tenure admin API", description = "Hire-to-retire account provisioning over SCIM 2.0: \
        connections, configuration, HR data, workers, plans, runs, reviews, dead letters, audit, users \
        and API tokens. Authenticate with a session cookie (POST /api/v1/session) or an API token \
        (Authorization: Bearer tenure_...). Errors are RFC 9457 problem documents."),
    modifiers(&Security),
    components(schemas(Problem))
)]
struct Doc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme("token", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
        c.add_security_scheme("session", SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(auth::COOKIE))));
    }
}

/// The document's links: where an answer's values lead (a run started, to the run; a
/// connection added, to it), so a client, and a stateful fuzzer, can follow them. Written on
/// the JSON: utoipa 5 spells a link's `operationId` as `operation_id`.
fn with_links(mut doc: serde_json::Value) -> serde_json::Value {
    // (link name, operation, its parameter, the answer's field)
    type To = (&'static str, &'static str, &'static str, &'static str);
    let links: [(&str, &str, &[To]); 2] = [
        (
            "/api/v1/connections/{name}/runs",
            "202",
            &[
                ("TheRun", "run", "id", "run_id"),
                ("TheRunItems", "run_items", "id", "run_id"),
                ("TheRunEvents", "run_events", "id", "run_id"),
            ],
        ),
        (
            "/api/v1/connections",
            "201",
            &[
                ("TheConnection", "connection", "name", "name"),
                ("TestIt", "test_connection", "name", "name"),
                ("PlanIt", "plan", "name", "name"),
            ],
        ),
    ];
    for (path, status, each) in links {
        let r = &mut doc["paths"][path]["post"]["responses"][status];
        if !r.is_object() {
            continue;
        }
        for (name, op, param, from) in each {
            r["links"][*name] = serde_json::json!({"operationId": op,
                "parameters": {*param: format!("$response.body#/{from}")}});
        }
    }
    doc
}

/// Says on every operation what it needs and what it may answer that its handler does not
/// list: an API token or a session (unless it declares itself public), 400 for a bad query or
/// body, 401 without valid credentials.
fn declare_security_and_errors(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::SecurityRequirement;
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let problem = |what: &str| {
        ResponseBuilder::new()
            .description(what)
            .content(
                "application/problem+json",
                ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
            )
            .build()
    };
    for item in doc.paths.paths.values_mut() {
        let ops = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for op in ops.into_iter().flatten() {
            let public = op.security.as_ref().is_some_and(|s| s.iter().all(|r| r == &SecurityRequirement::default()));
            if op.security.is_none() {
                op.security = Some(vec![
                    SecurityRequirement::new::<_, [&str; 0], &str>("token", []),
                    SecurityRequirement::new::<_, [&str; 0], &str>("session", []),
                ]);
            }
            let r = &mut op.responses.responses;
            r.entry("400".into())
                .or_insert_with(|| problem("The query or the body is not what this route takes").into());
            if !public {
                r.entry("401".into()).or_insert_with(|| problem("No valid session or API token").into());
            }
        }
    }
}

/// Every documented route, with its handler: the router and the document come from one list.
fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::with_openapi(Doc::openapi())
        .merge(auth::routes())
        .merge(users::routes())
        .merge(data::routes())
        .merge(ops::routes())
}

/// The OpenAPI document as served.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = routes().split_for_parts().1;
    declare_security_and_errors(&mut doc);
    doc
}

/// The OpenAPI document as JSON, links included, as `/api/v1/openapi.json` serves it.
pub fn openapi_json() -> serde_json::Value {
    with_links(serde_json::to_value(openapi()).unwrap_or_default())
}

/// The query parameters each documented operation takes: (METHOD, path template) -> names.
type QueryNames = HashMap<(String, String), Vec<String>>;

fn query_names(doc: &serde_json::Value) -> QueryNames {
    let mut names = QueryNames::new();
    let in_query = |params: Option<&serde_json::Value>| -> Vec<String> {
        let all = params.and_then(serde_json::Value::as_array).into_iter().flatten();
        all.filter(|p| p["in"] == "query").filter_map(|p| p["name"].as_str().map(str::to_string)).collect()
    };
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        let shared = in_query(item.get("parameters"));
        for (method, op) in item.as_object().into_iter().flatten().filter(|(_, op)| op.get("responses").is_some()) {
            let mut taken = shared.clone();
            taken.extend(in_query(op.get("parameters")));
            names.insert((method.to_uppercase(), path.clone()), taken);
        }
    }
    names
}

/// Refuses a query parameter the operation does not document (a misspelt filter would
/// otherwise be ignored and answer everything), naming it and what the operation takes.
async fn known_query(
    State(names): State<Arc<QueryNames>>,
    path: Option<axum::extract::MatchedPath>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let taken = path.and_then(|p| names.get(&(req.method().as_str().to_string(), p.as_str().to_string())));
    if let (Some(taken), Some(_)) = (taken, req.uri().query()) {
        let given = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(req.uri()).map(|q| q.0);
        let mut unknown: Vec<String> = vec![];
        for (k, _) in given.unwrap_or_default() {
            if !taken.contains(&k) && !unknown.contains(&k) {
                unknown.push(k);
            }
        }
        if !unknown.is_empty() {
            let takes =
                if taken.is_empty() { "it takes none".to_string() } else { format!("it takes {}", taken.join(", ")) };
            return Problem::bad_request(
                "unknown-query",
                format!("unknown query parameter(s) {}: {takes}", unknown.join(", ")),
            )
            .with_errors(serde_json::json!({"unknown": unknown, "taken": taken}))
            .into_response();
        }
    }
    next.run(req).await
}

/// The API, its document at `/api/v1/openapi.json`, and `/metrics`.
pub fn router(api: Shared) -> Router {
    let (router, _) = routes().split_for_parts();
    let doc = Arc::new(openapi_json());
    let names = Arc::new(query_names(&doc));
    router
        .route_layer(axum::middleware::from_fn_with_state(names, known_query))
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .route("/metrics", axum::routing::get(metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(api)
}

/// An unknown address: the console's page for a browser outside the API, else a problem.
async fn not_found(uri: axum::http::Uri, headers: axum::http::HeaderMap) -> Response {
    if !uri.path().starts_with("/api/") && crate::console::wants_html(&headers) {
        return crate::console::not_found_page(uri.path());
    }
    Problem::new(StatusCode::NOT_FOUND, "not-found", format!("no route {}", uri.path())).into_response()
}

/// Prometheus text; without a token only from the allowed addresses.
async fn metrics(
    State(api): State<Shared>,
    axum::extract::ConnectInfo(crate::serve::Peer(peer)): axum::extract::ConnectInfo<crate::serve::Peer>,
    headers: axum::http::HeaderMap,
) -> Response {
    let (client, scheme) = auth::client_of(&api, peer, &headers);
    let allowed = if headers.contains_key("authorization") {
        // The metrics concern every connection: a token limited to one may not read them.
        match auth::authenticate(&api, &headers, &axum::http::Method::GET, scheme).await.and_then(|c| c.global()) {
            Ok(()) => true,
            Err(p) => return p.into_response(),
        }
    } else {
        api.metrics_allow.contains(client)
    };
    if !allowed {
        return Problem::new(
            StatusCode::FORBIDDEN,
            "metrics-not-allowed",
            format!("{client} may not scrape without a token: send an API token, or allow it with --metrics-allow"),
        )
        .into_response();
    }
    match crate::metrics::render(&api.store).await {
        Ok(text) => ([("content-type", "text/plain; version=0.0.4; charset=utf-8")], text).into_response(),
        Err(e) => Problem::unavailable(e).into_response(),
    }
}

/// What a role may do, as Hire2Retire defines the roles: Editor and Reviewer are separate
/// duties, Admin holds both, Viewer reads.
pub fn allows(have: Role, need: Role) -> bool {
    have == need || have == Role::Admin || need == Role::Viewer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_separate_duties() {
        assert!(allows(Role::Admin, Role::Reviewer));
        assert!(allows(Role::Editor, Role::Viewer));
        assert!(!allows(Role::Editor, Role::Reviewer));
        assert!(!allows(Role::Reviewer, Role::Editor));
        assert!(!allows(Role::Viewer, Role::Editor));
        assert!(!allows(Role::Reviewer, Role::Admin));
    }

    #[test]
    fn metrics_allow_lists() {
        let a = Allow::parse("--metrics-allow", "10.0.0.0/8, 192.168.1.7").unwrap();
        assert!(a.contains("10.2.3.4".parse().unwrap()));
        assert!(a.contains("::ffff:10.2.3.4".parse().unwrap()));
        assert!(a.contains("192.168.1.7".parse().unwrap()));
        assert!(!a.contains("192.168.1.8".parse().unwrap()));
        assert!(Allow::loopback().contains("127.0.0.1".parse().unwrap()));
        assert!(!Allow::loopback().contains("10.0.0.1".parse().unwrap()));
        assert!(Allow::parse("x", "nope").is_err());
        assert!(Allow::parse("x", "10.0.0.0/33").is_err());
    }
}

#[cfg(test)]
mod doc_tests {
    /// Every operation of the document is under /api/v1, says what it answers with, and
    /// answers errors as problem documents.
    #[test]
    fn the_document_covers_the_api() {
        let doc = super::openapi();
        let v = serde_json::to_value(&doc).unwrap();
        assert!(v["openapi"].as_str().unwrap().starts_with("3.1"), "{}", v["openapi"]);
        let paths = v["paths"].as_object().unwrap();
        assert!(paths.len() >= 30, "{} paths", paths.len());
        for (path, ops) in paths {
            assert!(path.starts_with("/api/v1/"), "{path}");
            for (method, op) in ops.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{method} {path}"));
                assert!(!responses.is_empty(), "{method} {path}");
                for (code, r) in responses {
                    if code.starts_with('4') {
                        assert!(
                            r["content"]["application/problem+json"]["schema"]["$ref"]
                                .as_str()
                                .is_some_and(|s| s.ends_with("/Problem")),
                            "{method} {path} {code}: {r}"
                        );
                    }
                }
            }
        }
    }
}
