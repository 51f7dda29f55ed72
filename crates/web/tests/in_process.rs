//! The admin API's handlers called in-process (no socket, no spawned binary): the service's
//! error kinds map once onto problem documents, and each role meets the checks its routes make.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use service::error::Error;
use service::users::Role;
use std::sync::Arc;
use tower::ServiceExt;
use web::problem::Problem;

struct App {
    router: axum::Router,
    admin: String,
    viewer: String,
    _dir: Dir,
}

/// A data folder removed when the test ends.
struct Dir(std::path::PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn app() -> App {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("tenure-web-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = store::Store::open_in(&dir).await.unwrap();
    let key = Arc::new(store::MasterKey::load_or_create(&dir).unwrap());
    let admin = service::users::create_token(&store, service::users::TokenSpec::new("admin token", Role::Admin), None)
        .await
        .unwrap()
        .secret
        .expose()
        .to_string();
    let viewer =
        service::users::create_token(&store, service::users::TokenSpec::new("viewer token", Role::Viewer), None)
            .await
            .unwrap()
            .secret
            .expose()
            .to_string();
    let api = web::api::Api::new(store, key, dir.clone(), Arc::new(tokio::sync::Notify::new()), false);
    let router = web::api::router(Arc::new(api)).layer(axum::middleware::map_response(web::problem::as_problem));
    App { router, admin, viewer, _dir: Dir(dir) }
}

async fn call(app: &App, token: &str, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri).header("authorization", format!("Bearer {token}"));
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req.body(body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty)).unwrap();
    let r = app.router.clone().oneshot(req).await.unwrap();
    let status = r.status();
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn kind(v: &Value) -> &str {
    v["type"].as_str().unwrap_or_default().trim_start_matches("https://tenure.dev/problems/")
}

#[test]
fn each_error_kind_has_its_status_and_type() {
    let cases = [
        (Error::not_found("no connection named \"x\""), 404, "not-found"),
        (Error::invalid("tenure.toml", "tenure.toml: line 3: no such field"), 422, "invalid"),
        (Error::input("a name must be 1 to 64 letters"), 422, "invalid"),
        (Error::conflict("a user named \"ed\" exists already"), 409, "duplicate"),
        (Error::Busy("a run is in progress".into()), 409, "run-in-progress"),
        (Error::Forbidden("maker-checker".into()), 403, "forbidden"),
        (Error::refused("the guard stopped it"), 422, "refused"),
        (Error::unavailable("database error: connection refused"), 503, "unavailable"),
    ];
    for (e, status, slug) in cases {
        let said = e.to_string();
        let p = Problem::from(e);
        assert_eq!((p.status, p.kind.trim_start_matches("https://tenure.dev/problems/")), (status, slug), "{said}");
        assert_eq!(p.detail, said, "the message reaches the person unchanged");
    }
    // Where bad input is, for a client that shows it beside the field.
    let p = Problem::from(Error::invalid("tenure.toml", "tenure.toml: line 3: no such field"));
    assert_eq!(serde_json::to_value(&p).unwrap()["errors"]["at"], "tenure.toml");
}

#[test]
fn a_store_error_keeps_its_kind_through_the_service() {
    let e: Error = store::StoreError::NotFound("x".into()).into();
    assert_eq!(Problem::from(e).status, 404);
    let e: Error = store::StoreError::Duplicate("event e-1 was taken before".into()).into();
    assert_eq!(Problem::from(e).status, 409);
    let e: Error = store::StoreError::Full("database or disk is full".into()).into();
    assert_eq!(Problem::from(e).status, 503);
}

#[tokio::test]
async fn handlers_answer_problems_by_kind_and_role() {
    let app = app().await;
    // No such thing: 404 from the service's NotFound, not a 422 read from its wording.
    let (s, v) = call(&app, &app.admin, "GET", "/api/v1/connections/nowhere", None).await;
    assert_eq!((s, kind(&v)), (StatusCode::NOT_FOUND, "not-found"), "{v}");
    // A user made twice: 409 from the service's Conflict.
    let ed = serde_json::json!({"name": "ed.smith", "role": "editor", "password": "a long enough password"});
    let (s, v) = call(&app, &app.admin, "POST", "/api/v1/users", Some(ed.clone())).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = call(&app, &app.admin, "POST", "/api/v1/users", Some(ed)).await;
    assert_eq!((s, kind(&v)), (StatusCode::CONFLICT, "duplicate"), "{v}");
    assert!(v["detail"].as_str().unwrap_or_default().contains("exists already"), "{v}");
    // A Viewer may read, not administer users.
    let (s, _) = call(&app, &app.viewer, "GET", "/api/v1/status", None).await;
    assert_eq!(s, StatusCode::OK);
    let al = serde_json::json!({"name": "al", "role": "admin", "password": "a long enough password"});
    let (s, v) = call(&app, &app.viewer, "POST", "/api/v1/users", Some(al)).await;
    assert_eq!((s, kind(&v)), (StatusCode::FORBIDDEN, "forbidden"), "{v}");
    // A plan with no configuration yet: the service's NotFound, not a 422.
    let (s, v) = call(&app, &app.admin, "GET", "/api/v1/connections/nowhere/plan", None).await;
    assert_eq!((s, kind(&v)), (StatusCode::NOT_FOUND, "not-found"), "{v}");
    assert!(v["detail"].as_str().unwrap_or_default().contains("no configuration yet"), "{v}");
    // Unknown query parameters are refused, by name.
    let (s, v) = call(&app, &app.viewer, "GET", "/api/v1/workers?wrker=1001", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["detail"].as_str().unwrap_or_default().contains("wrker"), "{v}");
    // No token at all: 401, a problem too.
    let req = Request::builder().uri("/api/v1/status").body(Body::empty()).unwrap();
    let r = app.router.clone().oneshot(req).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
