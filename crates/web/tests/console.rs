//! The console's handlers in-process, through the same router and layers the listener serves:
//! a page whole or as the fragment htmx asked for, the Content-Security-Policy on every answer,
//! a form without its CSRF token refused, and every console route called with every role.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use service::users::Role;
use std::sync::Arc;
use tower::ServiceExt;
use web::console::Need;

struct App {
    router: axum::Router,
    api: web::api::Shared,
    _dir: Dir,
}

struct Dir(std::path::PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A session for a new user of this role: (cookie, CSRF token).
struct Session {
    cookie: String,
    csrf: String,
}

const CONNECTION: &str = "Connection-Bearer Token-1";

async fn app() -> App {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("tenure-console-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = store::Store::open_in(&dir).await.unwrap();
    let key = Arc::new(store::MasterKey::load_or_create(&dir).unwrap());
    // A connection to a port where nothing listens: its test fails at once, without a network.
    let c = store::NewConnection {
        name: CONNECTION.into(),
        base_url: "http://127.0.0.1:9/scim/v2/".into(),
        dialect: "monday".into(),
        insecure_http: false,
        allow_private: false,
        rate_limit_per_second: None,
    };
    store.add_connection(&c, &store::Secret::new("token-0001"), &key).await.unwrap();
    let api = Arc::new(web::api::Api::new(store, key, dir.clone(), Arc::new(tokio::sync::Notify::new()), false));
    let router = web::finish(web::doors(api.clone()));
    App { router, api, _dir: Dir(dir) }
}

async fn session(app: &App, role: Role) -> Session {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!("{}-{}", role.as_str(), N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let pw = store::Secret::new(format!("{name} has a long password"));
    let user = service::users::add_user(&app.api.store, &name, role, &pw, false).await.unwrap();
    let (id, _) = web::api::auth::new_session(
        &app.api,
        &user,
        &web::api::auth::Origin { address: std::net::Ipv4Addr::LOCALHOST.into(), agent: Some("test".into()) },
    )
    .await
    .unwrap();
    Session { cookie: format!("{}={id}", web::api::auth::COOKIE), csrf: web::api::auth::csrf_of(&id) }
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    text: String,
}

/// A request as a browser on this console sends it: Host and Origin its own.
async fn call(app: &App, method: Method, uri: &str, who: Option<&Session>, form: Option<String>, htmx: bool) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "localhost")
        .header("origin", "http://localhost")
        // What the listener gives every request: the peer's address.
        .extension(axum::extract::ConnectInfo(web::serve::Peer("127.0.0.1:1".parse().unwrap())));
    if let Some(s) = who {
        req = req.header("cookie", &s.cookie);
    }
    if htmx {
        req = req.header("hx-request", "true");
    }
    if form.is_some() {
        req = req.header("content-type", "application/x-www-form-urlencoded");
    }
    let req = req.body(form.map(Body::from).unwrap_or_else(Body::empty)).unwrap();
    let r = app.router.clone().oneshot(req).await.unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    let bytes = axum::body::to_bytes(r.into_body(), 4 << 20).await.unwrap();
    Reply { status, headers, text: String::from_utf8_lossy(&bytes).into_owned() }
}

/// A call to the admin API on a console session (as the console's own scripts make it).
async fn api(app: &App, who: &Session, method: &str, uri: &str, content_type: &str, body: String) -> StatusCode {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "localhost")
        .header("origin", "http://localhost")
        .header("cookie", &who.cookie)
        .header("x-csrf-token", &who.csrf)
        .header("content-type", content_type)
        .extension(axum::extract::ConnectInfo(web::serve::Peer("127.0.0.1:1".parse().unwrap())))
        .body(Body::from(body))
        .unwrap();
    app.router.clone().oneshot(req).await.unwrap().status()
}

#[tokio::test]
async fn a_page_is_whole_for_the_browser_and_a_fragment_for_htmx() {
    let app = app().await;
    let viewer = session(&app, Role::Viewer).await;
    let whole = call(&app, Method::GET, "/", Some(&viewer), None, false).await;
    assert_eq!(whole.status, StatusCode::OK, "{}", whole.text);
    assert!(whole.text.starts_with("<!doctype html>") && whole.text.contains("<title>Dashboard · tenure</title>"));
    assert!(whole.text.contains(CONNECTION) && whole.text.contains("id=\"cards\""));
    let part = call(&app, Method::GET, "/", Some(&viewer), None, true).await;
    assert_eq!(part.status, StatusCode::OK);
    assert!(part.text.trim_start().starts_with("<div id=\"cards\""), "{}", part.text);
    assert!(!part.text.contains("<html") && !part.text.contains("<header"), "only the cards: {}", part.text);
    assert!(part.text.contains(CONNECTION));
    for r in [&whole, &part] {
        assert!(r.headers.get_all("vary").iter().any(|v| v == "HX-Request"), "{:?}", r.headers);
        assert_eq!(r.headers["cache-control"], "no-store");
    }
    // The connection test answers a fragment: the steps, not a page.
    let editor = session(&app, Role::Editor).await;
    let path = format!("/connections/{}/test", web::console::segment(CONNECTION));
    let steps = call(&app, Method::POST, &path, Some(&editor), Some(format!("csrf={}", editor.csrf)), true).await;
    assert_eq!(steps.status, StatusCode::OK, "{}", steps.text);
    assert!(steps.text.trim_start().starts_with("<div id=\"test-result\""), "{}", steps.text);
    assert!(steps.text.contains("could not be reached") && steps.text.contains("Fix:"), "{}", steps.text);
}

#[tokio::test]
async fn every_answer_carries_the_content_security_policy() {
    let app = app().await;
    let admin = session(&app, Role::Admin).await;
    let css = web::console::ASSETS.css.clone();
    let cases: Vec<(Method, &str, Option<&Session>)> = vec![
        (Method::GET, "/sign-in", None),
        (Method::GET, "/", None),
        (Method::GET, "/", Some(&admin)),
        (Method::GET, "/connections/new", Some(&admin)),
        (Method::GET, css.as_str(), None),
        (Method::GET, "/static/nothing.css", None),
        (Method::GET, "/no-such-page", None),
        (Method::GET, "/api/v1/status", None),
        (Method::GET, "/api/v1/openapi.json", None),
        (Method::DELETE, "/sign-in", None),
    ];
    for (method, uri, who) in cases {
        let r = call(&app, method.clone(), uri, who, None, false).await;
        let csp = r.headers.get("content-security-policy").map(|v| v.to_str().unwrap().to_string());
        assert_eq!(csp.as_deref(), Some(web::console::CSP), "{method} {uri}: {:?}", r.headers);
        assert!(!web::console::CSP.contains("unsafe-inline") && !web::console::CSP.contains("unsafe-eval"));
        assert_eq!(r.headers["x-content-type-options"], "nosniff", "{method} {uri}");
    }
    // A static file is served by its hash, for a year; an HTML page never holds inline script
    // or style.
    let r = call(&app, Method::GET, &css, None, None, false).await;
    assert_eq!(r.headers["cache-control"], "public, max-age=31536000, immutable");
    assert!(r.headers["content-type"].to_str().unwrap().starts_with("text/css"));
    let page = call(&app, Method::GET, "/connections/new", Some(&admin), None, false).await;
    assert!(!page.text.contains("<script>") && !page.text.contains("style=") && !page.text.contains("<style"));
    assert!(page.text.contains(&format!("integrity=\"{}\"", web::console::ASSETS.htmx_sri)));
    // A browser asking for a page the listener does not have gets a page; the API a problem.
    let mut req = Request::builder().uri("/no-such-page").header("accept", "text/html").body(Body::empty()).unwrap();
    req.headers_mut().insert("host", "localhost".parse().unwrap());
    let r = app.router.clone().oneshot(req).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let r = call(&app, Method::GET, "/api/v1/nothing", None, None, false).await;
    assert_eq!(
        (r.status, r.headers["content-type"].to_str().unwrap()),
        (StatusCode::NOT_FOUND, "application/problem+json")
    );
}

#[tokio::test]
async fn a_form_without_its_csrf_token_or_from_elsewhere_is_refused() {
    let app = app().await;
    let admin = session(&app, Role::Admin).await;
    let path = format!("/connections/{}/pause", web::console::segment(CONNECTION));
    let paused = || async { app.api.store.connection(CONNECTION).await.unwrap().unwrap().paused.is_some() };
    // No token; a token of another session; from another origin.
    let other = session(&app, Role::Editor).await;
    for form in [String::new(), format!("csrf={}", other.csrf)] {
        let r = call(&app, Method::POST, &path, Some(&admin), Some(form), false).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert!(r.headers["content-type"].to_str().unwrap().starts_with("text/html"));
        assert!(r.text.contains("did not come from this console"), "{}", r.text);
    }
    let req = Request::builder()
        .method("POST")
        .uri(&path)
        .header("host", "localhost")
        .header("origin", "https://evil.example")
        .header("cookie", &admin.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!("csrf={}", admin.csrf)))
        .unwrap();
    assert_eq!(app.router.clone().oneshot(req).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert!(!paused().await, "nothing refused was done");
    // The token in the form field (a plain form) or the header (htmx) both pass.
    let r = call(&app, Method::POST, &path, Some(&admin), Some(format!("csrf={}", admin.csrf)), false).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert!(paused().await);
    let req = Request::builder()
        .method("POST")
        .uri(format!("/connections/{}/resume", web::console::segment(CONNECTION)))
        .header("host", "localhost")
        .header("origin", "http://localhost")
        .header("cookie", &admin.cookie)
        .header("x-csrf-token", &admin.csrf)
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.router.clone().oneshot(req).await.unwrap().status(), StatusCode::SEE_OTHER);
    assert!(!paused().await);
    // The sign-in form from another site is refused too (it would sign the browser in as
    // someone else).
    let req = Request::builder()
        .method("POST")
        .uri("/sign-in")
        .header("host", "localhost")
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .extension(axum::extract::ConnectInfo(web::serve::Peer("127.0.0.1:1".parse().unwrap())))
        .body(Body::from("user=admin-user&password=x"))
        .unwrap();
    assert_eq!(app.router.clone().oneshot(req).await.unwrap().status(), StatusCode::FORBIDDEN);
}

/// The route with its parameters filled in, and a form it reads.
fn concrete(path: &str) -> String {
    path.replace("{name}", &web::console::segment(CONNECTION))
        .replace("{file}", "nothing.css")
        .replace("{id}", "nothing")
}

#[tokio::test]
async fn every_console_route_answers_each_role_as_its_entry_says() {
    let app = app().await;
    let mut roles = vec![];
    for role in [Role::Viewer, Role::Editor, Role::Reviewer, Role::Admin] {
        roles.push((role, session(&app, role).await));
    }
    let mut routes = web::console::routes();
    assert!(routes.len() >= 28, "{} routes", routes.len());
    // Signing out ends the session the rest uses: last.
    routes.sort_by_key(|(m, p, _)| *m == Method::POST && *p == "/sign-out");
    for (method, path, need) in routes {
        let uri = concrete(path);
        let form = |s: &Session| (method == Method::POST).then(|| format!("csrf={}", s.csrf));
        // Nobody signed in: a page that needs someone leads to signing in, never to the page.
        let r = call(&app, method.clone(), &uri, None, (method == Method::POST).then(String::new), false).await;
        match need {
            Need::Public => assert_ne!(r.status, StatusCode::FORBIDDEN, "{method} {path} anonymous: {}", r.text),
            _ => {
                assert_eq!(r.status, StatusCode::SEE_OTHER, "{method} {path} anonymous: {}", r.text);
                assert!(r.headers["location"].to_str().unwrap().starts_with("/sign-in"), "{method} {path}");
            }
        }
        for (role, s) in &roles {
            let mut body = form(s);
            // A Reviewer applies a plan only to confirm the guard's number.
            if path == "/connections/{name}/runs" && *role == Role::Reviewer {
                body = body.map(|b| format!("{b}&confirm=0"));
            }
            let r = call(&app, method.clone(), &uri, Some(s), body, false).await;
            let allowed = match need {
                Need::Public | Need::SignedIn => true,
                Need::Role(need) => web::api::allows(*role, need),
                Need::Either(a, b) => web::api::allows(*role, a) || web::api::allows(*role, b),
            };
            if allowed {
                assert_ne!(r.status, StatusCode::FORBIDDEN, "{method} {path} as {}: {}", role.as_str(), r.text);
                assert!(r.status.as_u16() < 500, "{method} {path} as {}: {} {}", role.as_str(), r.status, r.text);
            } else {
                assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {path} as {}: {}", role.as_str(), r.text);
                assert!(r.text.contains("Not allowed") && r.text.contains("needs the"), "{method} {path}: {}", r.text);
                assert!(r.headers["content-type"].to_str().unwrap().starts_with("text/html"));
            }
        }
    }
    // The role's own actions only: a Viewer's connection page offers none of the Admin's.
    let viewer = session(&app, Role::Reviewer).await;
    let page = call(&app, Method::GET, &concrete("/connections/{name}"), Some(&viewer), None, false).await;
    assert!(!page.text.contains("Pause") && !page.text.contains("Remove") && !page.text.contains("Test connection"));
    let admin = session(&app, Role::Admin).await;
    let page = call(&app, Method::GET, &concrete("/connections/{name}"), Some(&admin), None, false).await;
    assert!(page.text.contains("Pause") && page.text.contains("Remove") && page.text.contains("Test connection"));
}

fn form(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap()
}

#[tokio::test]
async fn an_editor_builds_rules_in_a_draft_and_saves_the_toml_export_gives() {
    let app = app().await;
    let ed = session(&app, Role::Editor).await;
    // Nothing saved yet: the draft starts from the stored connection, with its required mappings.
    let r = call(&app, Method::GET, "/rules", Some(&ed), None, false).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains(CONNECTION) && r.text.contains("userName") && r.text.contains("No role yet"), "{}", r.text);
    // A role with two conditions joined by OR and a grant; a second one; moved above the first.
    let role = |name: &str, value: &str| {
        form(&[
            ("csrf", ed.csrf.as_str()),
            ("name", name),
            ("join", "any"),
            ("field", "department"),
            ("op", "equals"),
            ("value", value),
            ("field", "employment_type"),
            ("op", "in"),
            ("value", "intern, temporary"),
            (&format!("gives:{CONNECTION}"), "yes"),
            (&format!("user_type:{CONNECTION}"), "viewer"),
            (&format!("teams:{CONNECTION}"), "Sales, Everyone"),
            ("action", "save"),
        ])
    };
    let r = call(&app, Method::POST, "/rules/roles/new", Some(&ed), Some(role("Sales", "Sales")), false).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let r =
        call(&app, Method::POST, "/rules/roles/new", Some(&ed), Some(role("Engineering", "Engineering")), false).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    // A second role of the same name is refused, with the form kept as typed.
    let r = call(&app, Method::POST, "/rules/roles/new", Some(&ed), Some(role("sales", "x")), false).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("already") && r.text.contains("intern, temporary"), "{}", r.text);
    // An unknown field is refused with the configuration's own words.
    let bad = role("Bad", "x").replace("field=department", "field=shoe_size");
    let r = call(&app, Method::POST, "/rules/roles/new", Some(&ed), Some(bad), false).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("unknown field"), "{}", r.text);
    let r = call(
        &app,
        Method::POST,
        "/rules/roles/2/up",
        Some(&ed),
        Some(form(&[("csrf", &ed.csrf), ("role", "Engineering")])),
        false,
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let page = call(&app, Method::GET, "/rules", Some(&ed), None, false).await.text;
    assert!(page.contains("Unsaved draft"), "{page}");
    let (e, s) = (page.find(">Engineering<").unwrap(), page.find(">Sales<").unwrap());
    assert!(e < s, "Engineering moved above Sales");
    assert!(page.contains("department is “Engineering” or employment_type is one of “intern”, “temporary”"), "{page}");
    // Nobody else sees the draft: a viewer reads the configuration in force (none yet).
    let viewer = session(&app, Role::Viewer).await;
    let seen = call(&app, Method::GET, "/rules", Some(&viewer), None, false).await.text;
    assert!(!seen.contains(">Engineering<") && !seen.contains("Unsaved draft"), "{seen}");
    // The mapping: a formula with an error is refused at its position; fixed, it is kept.
    let path = format!("/rules/connections/{}", web::console::segment(CONNECTION));
    let mapping = |title: &str| {
        form(&[
            ("csrf", ed.csrf.as_str()),
            ("default_teams", "Everyone"),
            ("supervised", "termination"),
            ("supervised", "leave_of_absence"),
            ("target", "userName"),
            ("formula", "=work_email"),
            ("unique", "0"),
            ("target", "displayName"),
            ("formula", "=first_name & \" \" & last_name"),
            ("target", "title"),
            ("formula", title),
            ("action", "save"),
        ])
    };
    let r = call(&app, Method::POST, &path, Some(&ed), Some(mapping("=UPPER(title")), false).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("Line 1, column") && r.text.contains("caret"), "{}", r.text);
    let r = call(&app, Method::POST, &path, Some(&ed), Some(mapping("=UPPER(title)")), false).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    // As typed: the check of one formula, a fragment.
    let check = format!("/rules/formula?{}", form(&[("formula", "=first_name &")]));
    let r = call(&app, Method::GET, &check, Some(&ed), None, true).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("Line 1, column 14") && !r.text.contains("<html"), "{}", r.text);
    // What changes if I save, then saving: the configuration in force is the draft, as export writes it.
    // The page at once, the differences as the part htmx asks for after (then kept).
    let r = call(&app, Method::GET, "/rules/changes", Some(&ed), None, false).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("Working out what changes") && r.text.contains("Save as the configuration in force"));
    let part = call(&app, Method::GET, "/rules/changes?page=1&kind=", Some(&ed), None, true).await;
    assert!(part.text.contains("Worker by worker") && !part.text.contains("<html"), "{}", part.text);
    let again = call(&app, Method::GET, "/rules/changes", Some(&ed), None, false).await;
    assert!(again.text.contains("Worker by worker"), "kept: drawn whole the second time: {}", again.text);
    let draft = call(&app, Method::GET, "/rules/file.toml", Some(&ed), None, false).await.text;
    let r = call(&app, Method::POST, "/rules/save", Some(&ed), Some(form(&[("csrf", &ed.csrf)])), false).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(r.headers["location"], "/rules?said=saved");
    let saved = app.api.store.current_config().await.unwrap().unwrap();
    assert_eq!(saved.body, draft);
    assert!(saved.saved_by.as_deref().unwrap().contains("editor"), "{:?}", saved.saved_by);
    let cfg = rules::Config::from_toml("x", &saved.body).unwrap();
    assert_eq!(cfg.roles.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["Engineering", "Sales"]);
    let g = &cfg.roles[0].grants[CONNECTION];
    assert_eq!(
        (g.user_type.as_deref(), g.teams.clone()),
        (Some("viewer"), vec!["Sales".to_string(), "Everyone".into()])
    );
    assert_eq!(cfg.connections[0].supervised, [rules::Stage::Termination, rules::Stage::LeaveOfAbsence]);
    assert!(
        matches!(&cfg.connections[0].mappings["title"], rules::MappingSpec::Full { formula, .. } if formula == "=UPPER(title)")
    );
    let export = call(&app, Method::GET, "/api/v1/config?format=toml", Some(&viewer), None, false).await;
    assert_eq!(export.text, saved.body, "the same TOML as config export");
    // The draft is gone: the page shows the configuration in force.
    let page = call(&app, Method::GET, "/rules?said=saved", Some(&ed), None, false).await.text;
    assert!(
        page.contains("Saved: this is now the configuration in force") && !page.contains("Unsaved draft"),
        "{page}"
    );
}

#[tokio::test]
async fn a_change_saved_meanwhile_is_not_overwritten() {
    let app = app().await;
    let (a, b) = (session(&app, Role::Editor).await, session(&app, Role::Admin).await);
    let role = |s: &Session, name: &str| {
        form(&[
            ("csrf", s.csrf.as_str()),
            ("name", name),
            ("join", "all"),
            ("field", "department"),
            ("op", "equals"),
            ("value", name),
            (&format!("gives:{CONNECTION}"), "yes"),
            (&format!("user_type:{CONNECTION}"), "member"),
            ("action", "save"),
        ])
    };
    for (s, name) in [(&a, "Alpha"), (&b, "Beta")] {
        let r = call(&app, Method::POST, "/rules/roles/new", Some(s), Some(role(s, name)), false).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    }
    let r = call(&app, Method::POST, "/rules/save", Some(&a), Some(form(&[("csrf", &a.csrf)])), false).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let first = app.api.store.current_config().await.unwrap().unwrap();
    // B began before A saved: B's pages say so; B's save is refused, both changes shown, A's
    // version stays.
    let page = call(&app, Method::GET, "/rules", Some(&b), None, false).await.text;
    assert!(page.contains("after your draft began"), "{page}");
    let r = call(&app, Method::POST, "/rules/save", Some(&b), Some(form(&[("csrf", &b.csrf)])), false).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(r.text.contains("Someone saved another version meanwhile") && r.text.contains("editor"), "{}", r.text);
    assert!(r.text.contains("Their change") && r.text.contains("Alpha") && r.text.contains("Beta"), "{}", r.text);
    assert_eq!(app.api.store.current_config().await.unwrap().unwrap().id, first.id);
    // Having read both, B takes A's as the base and saves: B's whole draft is in force.
    // Rebasing on a version other than the one shown is refused.
    let r =
        call(&app, Method::POST, "/rules/rebase", Some(&b), Some(form(&[("csrf", &b.csrf), ("version", "x")])), false)
            .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    let r = call(
        &app,
        Method::POST,
        "/rules/rebase",
        Some(&b),
        Some(form(&[("csrf", &b.csrf), ("version", &first.id)])),
        false,
    )
    .await;
    assert_eq!(r.headers["location"], "/rules/changes");
    let r = call(&app, Method::POST, "/rules/save", Some(&b), Some(form(&[("csrf", &b.csrf)])), false).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let now = app.api.store.current_config().await.unwrap().unwrap();
    assert!(now.body.contains("Beta") && !now.body.contains("Alpha"), "{}", now.body);
    // Two saves over the same version at the same moment: the store keeps one.
    let v = now.id.clone();
    let (x, y) = tokio::join!(
        app.api.store.save_config_after("[hr]\n", Some(&v), "x"),
        app.api.store.save_config_after("[hr]\ncustom_fields = []\n", Some(&v), "y")
    );
    assert!(x.is_ok() != y.is_ok(), "exactly one of two concurrent saves lands: {x:?} {y:?}");
}

#[tokio::test]
async fn the_role_form_keeps_what_it_does_not_show() {
    let app = app().await;
    let admin = session(&app, Role::Admin).await;
    let toml = format!(
        r#"[[connection]]
name = "{CONNECTION}"
dialect = "monday"
[connection.mappings]
userName = "=work_email"
displayName = "=first_name"

[[role]]
name = "Leads"
when = {{ field = "title", op = "matches", value = "^VP", case_sensitive = true }}
[role.grants."{CONNECTION}"]
user_type = "Admin"
teams = ["Leads"]
attributes = {{ title = "=UPPER(title)" }}

[[role]]
name = "Everyone"
[role.grants."{CONNECTION}"]
user_type = "viewer"
"#
    );
    assert_eq!(api(&app, &admin, "PUT", "/api/v1/config", "application/toml", toml).await, StatusCode::OK);
    let ed = session(&app, Role::Editor).await;
    // The form shows the admin user type as chosen (whatever its case) and the test's case.
    let page = call(&app, Method::GET, "/rules/roles/1", Some(&ed), None, false).await.text;
    assert!(page.contains(r#"<option value="admin" selected>"#), "{page}");
    assert!(page.contains(r#"name="case" value="yes""#), "{page}");
    // A role without any condition shows none, and saved again it still takes every worker.
    let page = call(&app, Method::GET, "/rules/roles/2", Some(&ed), None, false).await.text;
    assert!(!page.contains(r#"name="field""#), "no condition row: {page}");
    let save = |pairs: Vec<(&str, &str)>| {
        let mut all = vec![("csrf", ed.csrf.as_str())];
        all.extend(pairs);
        form(&all)
    };
    let gives = format!("gives:{CONNECTION}");
    let ut = format!("user_type:{CONNECTION}");
    let teams = format!("teams:{CONNECTION}");
    let everyone = save(vec![
        ("name", "Everyone"),
        ("was", "Everyone"),
        ("join", "all"),
        (&gives, "yes"),
        (&ut, "viewer"),
        (&teams, ""),
        ("action", "save"),
    ]);
    let r = call(&app, Method::POST, "/rules/roles/2", Some(&ed), Some(everyone), false).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let leads = save(vec![
        ("name", "Leads"),
        ("was", "Leads"),
        ("join", "all"),
        ("field", "title"),
        ("op", "matches"),
        ("value", "^VP"),
        ("case", "yes"),
        (&gives, "yes"),
        (&ut, "admin"),
        (&teams, "Leads"),
        ("action", "save"),
    ]);
    let r = call(&app, Method::POST, "/rules/roles/1", Some(&ed), Some(leads), false).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let draft = call(&app, Method::GET, "/rules/file.toml", Some(&ed), None, false).await.text;
    let cfg = rules::Config::from_toml("draft", &draft).unwrap();
    let (leads, everyone) = (&cfg.roles[0], &cfg.roles[1]);
    assert_eq!(everyone.when, None, "still every worker: {draft}");
    let rules::condition::Condition::Test(t) = leads.when.as_ref().unwrap() else { panic!("{draft}") };
    assert!(t.case_sensitive, "{draft}");
    let g = &leads.grants[CONNECTION];
    assert_eq!(g.attributes.get("title").map(String::as_str), Some("=UPPER(title)"), "{draft}");
    assert_eq!(g.user_type.as_deref(), Some("admin"));
    // A condition left without a value is refused, not read as "equals nothing".
    let empty = save(vec![("name", "New"), ("join", "all"), ("field", "department"), ("op", "equals"), ("value", "")]);
    let r = call(&app, Method::POST, "/rules/roles/new", Some(&ed), Some(empty), false).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert!(r.text.contains("has no value"), "{}", r.text);
    // A page drawn before the roles moved acts on none.
    let stale = save(vec![("role", "Everyone")]);
    let r = call(&app, Method::POST, "/rules/roles/1/down", Some(&ed), Some(stale), false).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    // Saving a draft equal to the configuration in force saves nothing.
    let other = session(&app, Role::Editor).await;
    let before = app.api.store.current_config().await.unwrap().unwrap().id;
    let r = call(&app, Method::POST, "/rules/save", Some(&other), Some(form(&[("csrf", &other.csrf)])), false).await;
    assert_eq!(r.headers["location"], "/rules?said=unchanged", "{}", r.text);
    assert_eq!(app.api.store.current_config().await.unwrap().unwrap().id, before);
}

#[tokio::test]
async fn apply_while_another_run_holds_the_connection_leads_to_that_run() {
    let app = app().await;
    let admin = session(&app, Role::Admin).await;
    let toml = format!(
        "[[connection]]\nname = \"{CONNECTION}\"\ndialect = \"monday\"\n[connection.mappings]\nuserName = \"=work_email\"\n\
         displayName = \"=first_name\"\n\n[[role]]\nname = \"Everyone\"\n[role.grants.\"{CONNECTION}\"]\nuser_type = \"member\"\n"
    );
    assert_eq!(api(&app, &admin, "PUT", "/api/v1/config", "application/toml", toml).await, StatusCode::OK);
    // A run holds the connection (its lease, as a run on another host holds it: a lease of
    // this test process would be taken over, the test binary not being `tenure`), and the
    // service's registry knows it as running.
    let other = store::Claimant { holder: "another-run", info: "a run in the test", host: "elsewhere", pid: 1 };
    let got = app.api.store.acquire_lease(CONNECTION, &other, 60_000).await.unwrap();
    assert!(matches!(got, store::Acquired::Held(_)));
    app.api.runs.register("held-run", CONNECTION, "user:someone", Default::default());
    let path = format!("/connections/{}/runs", web::console::segment(CONNECTION));
    let r = call(&app, Method::POST, &path, Some(&admin), Some(form(&[("csrf", &admin.csrf)])), false).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(r.headers["location"], "/runs/held-run?said=busy");
    let page = call(&app, Method::GET, "/runs/held-run?said=busy", Some(&admin), None, false).await;
    assert!(page.text.contains("Nothing was started"), "{}", page.text);
}

#[tokio::test]
async fn a_worker_is_found_as_typed_and_their_page_says_why_test_by_test() {
    let app = app().await;
    let admin = session(&app, Role::Admin).await;
    let toml = format!(
        "[[connection]]\nname = \"{CONNECTION}\"\ndialect = \"monday\"\n[connection.mappings]\nuserName = \"=work_email\"\n\
         displayName = \"=first_name & \\\" \\\" & last_name\"\n\n[[role]]\nname = \"Engineers\"\n\
         when = {{ all = [ {{ field = \"department\", op = \"equals\", value = \"Engineering\" }}, \
         {{ field = \"employment_type\", op = \"equals\", value = \"employee\" }} ] }}\n\
         [role.grants.\"{CONNECTION}\"]\nuser_type = \"member\"\nteams = [\"Engineering\"]\n"
    );
    assert_eq!(api(&app, &admin, "PUT", "/api/v1/config", "application/toml", toml).await, StatusCode::OK);
    let csv = "employee_id,first_name,last_name,work_email,title,department,employment_type,status,leave_type,\
hire_date,termination_date,time_zone\n\
1001,Amélie,Durand,amelie@acme.example,Engineer,Engineering,employee,active,,2019-04-01,,Europe/Paris\n\
1002,José,Durango,jose@acme.example,Engineer,Engineering,contractor,active,,2020-05-20,,Europe/Madrid\n\
1003,Li,Wei,li@acme.example,Analyst,Finance,employee,active,,2015-01-01,,\n";
    let ed = session(&app, Role::Editor).await;
    assert_eq!(api(&app, &ed, "POST", "/api/v1/hr/uploads", "text/csv", csv.into()).await, StatusCode::OK);

    // Found by part of a name, any case; the htmx answer is the results alone.
    let viewer = session(&app, Role::Viewer).await;
    let r = call(&app, Method::GET, "/workers?q=DURAN", Some(&viewer), None, false).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("<title>Workers · tenure</title>") && r.text.contains("2 found for “DURAN”"), "{}", r.text);
    assert!(r.text.contains("/workers/1001") && r.text.contains("/workers/1002") && !r.text.contains("/workers/1003"));
    let part = call(&app, Method::GET, "/workers?q=li%40acme", Some(&viewer), None, true).await;
    assert!(part.text.trim_start().starts_with("<div id=\"results\""), "{}", part.text);
    assert!(
        part.text.contains("/workers/1003") && !part.text.contains("/workers/1001") && !part.text.contains("<html")
    );
    let none = call(&app, Method::GET, "/workers?q=zzz", Some(&viewer), None, true).await;
    assert!(none.text.contains("No worker") && none.text.contains("zzz"), "{}", none.text);

    // The contractor's page: the role tried test by test, each with the value it saw.
    let r = call(&app, Method::GET, "/workers/1002", Some(&viewer), None, false).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let page = r.text;
    assert!(page.contains("José Durango") && page.contains("did not match"), "{page}");
    assert!(page.contains("department equals &#34;Engineering&#34;"), "{page}");
    let row =
        page.split("employment_type equals").nth(1).expect("the second test is listed").split("</tr>").next().unwrap();
    assert!(row.contains("contractor") && row.contains(">false<"), "{row}");
    assert!(page.contains("No role takes this worker") && page.contains("Nothing: no account"), "{page}");
    assert!(page.contains("<dt>employment type</dt><dd>contractor</dd>"), "{page}");
    // The engineer: taken by the role, mapped attributes with formula and value.
    let page = call(&app, Method::GET, "/workers/1001", Some(&ed), None, false).await.text;
    assert!(page.contains("takes this worker") && page.contains("amelie@acme.example"), "{page}");
    assert!(page.contains("=first_name &#38; &#34; &#34; &#38; last_name"), "the formula as written: {page}");
    assert!(page.contains("Amélie Durand"), "{page}");
    assert!(page.contains("<td>hire</td>"), "the HR event is listed: {page}");
    // The target cannot be read here: said, and no plan is made up.
    assert!(page.contains("could not be read") && page.contains("cannot be made"), "{page}");
    let viewer_sees = call(&app, Method::GET, "/workers/1001", Some(&viewer), None, false).await.text;
    assert!(!viewer_sees.contains("Provision now"), "a Viewer is not offered it");

    // An unknown worker: the console's page, saying where to look.
    let r = call(&app, Method::GET, "/workers/9999", Some(&viewer), None, false).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text.contains("No worker") && r.text.contains("<html"), "{}", r.text);

    // Provision now: not a Viewer's; an Editor's starts a run of this worker and leads to it.
    let f = |s: &Session| form(&[("csrf", s.csrf.as_str()), ("connection", CONNECTION)]);
    let r = call(&app, Method::POST, "/workers/1001/provision", Some(&viewer), Some(f(&viewer)), false).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = call(&app, Method::POST, "/workers/1001/provision", Some(&ed), Some(f(&ed)), false).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let to = r.headers["location"].to_str().unwrap().to_string();
    assert!(to.starts_with("/runs/"), "{to}");
    let id = to.trim_start_matches("/runs/");
    // The run this process started, the editor's.
    let live = app.api.runs.get(id).expect("the run is known to the service").view();
    assert!(live["started_by"].as_str().is_some_and(|b| b.contains("editor")), "{live}");
}

#[tokio::test]
async fn a_reviewer_clears_the_queue_with_a_note_and_cannot_decide_what_they_set_in_motion() {
    let app = app().await;
    let boss = session(&app, Role::Admin).await;
    let toml = format!(
        "[[connection]]\nname = \"{CONNECTION}\"\ndialect = \"monday\"\nsupervised = [\"leave\", \"change\"]\n\
         review_reminder_hours = 12\n[connection.mappings]\nuserName = \"=work_email\"\ndisplayName = \"=first_name\"\n\n\
         [[role]]\nname = \"Everyone\"\n[role.grants.\"{CONNECTION}\"]\nuser_type = \"member\"\n"
    );
    assert_eq!(api(&app, &boss, "PUT", "/api/v1/config", "application/toml", toml).await, StatusCode::OK);
    let head = "employee_id,first_name,last_name,work_email,title,department,employment_type,status,leave_type,\
hire_date,termination_date,time_zone\n";
    let day1 = format!(
        "{head}1001,Amélie,Durand,amelie@acme.example,Engineer,Engineering,employee,active,,2019-04-01,,Europe/Paris\n\
1002,José,Durango,jose@acme.example,Engineer,Engineering,employee,active,,2020-05-20,,Europe/Madrid\n\
1003,Li,Wei,li@acme.example,Analyst,Finance,employee,active,,2015-01-01,,\n"
    );
    assert_eq!(api(&app, &boss, "POST", "/api/v1/hr/uploads", "text/csv", day1).await, StatusCode::OK);
    // The next day: a termination, a leave of absence, a new title. The admin uploads it.
    let day2 = format!(
        "{head}1001,Amélie,Durand,amelie@acme.example,Engineer,Engineering,employee,terminated,,2019-04-01,2026-11-02,Europe/Paris\n\
1002,José,Durango,jose@acme.example,Engineer,Engineering,employee,leave,fmla,2020-05-20,,Europe/Madrid\n\
1003,Li,Wei,li@acme.example,Lead Analyst,Finance,employee,active,,2015-01-01,,\n"
    );
    assert_eq!(api(&app, &boss, "POST", "/api/v1/hr/uploads", "text/csv", day2).await, StatusCode::OK);
    // A scheduled run opened these reviews (as the engine's hold does).
    let act = |kind: &str| format!(r#"[{{"kind": "{kind}", "target_id": "u-1", "user_name": "x@acme.example"}}]"#);
    let wanted: Vec<store::ReviewRequest> = vec![
        ("1001".into(), "leave".into(), "f1".into(), act("deactivate")),
        ("1002".into(), "leave".into(), "f2".into(), act("deactivate")),
        ("1003".into(), "change".into(), "f3".into(), act("update")),
    ];
    app.api.store.sync_reviews(CONNECTION, &wanted, None, "test").await.unwrap();

    let rita = session(&app, Role::Reviewer).await;
    let page = call(&app, Method::GET, "/reviews", Some(&rita), None, false).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let row = |text: &str, worker: &str| -> String {
        text.split("<tr").find(|r| r.contains(&format!("/workers/{worker}"))).unwrap_or_default().to_string()
    };
    // Why each exists: a termination is not a leave of absence.
    assert!(row(&page.text, "1001").contains("Termination") && row(&page.text, "1001").contains("terminated now"));
    assert!(row(&page.text, "1002").contains("Leave of absence (family or medical)"), "{}", row(&page.text, "1002"));
    assert!(row(&page.text, "1003").contains("HR change"), "{}", row(&page.text, "1003"));
    assert!(row(&page.text, "1001").contains("uploaded the HR data"), "who set it in motion");
    // Filtered by stage.
    let leave = call(&app, Method::GET, "/reviews?stage=leave", Some(&rita), None, false).await.text;
    assert!(leave.contains("/workers/1001") && leave.contains("/workers/1002") && !leave.contains("/workers/1003"));
    let ids: Vec<String> =
        leave.split("name=\"id\" value=\"").skip(1).map(|s| s.split('"').next().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 2);
    // Two leavers approved with a note, back to the filtered queue.
    let mut f = vec![("csrf", rita.csrf.clone()), ("decision", "approve".into()), ("note", "checked with HR".into())];
    f.extend(ids.iter().map(|i| ("id", i.clone())));
    f.push(("back", "/reviews?stage=leave".into()));
    let body = serde_urlencoded::to_string(&f).unwrap();
    let r = call(&app, Method::POST, "/reviews/decide", Some(&rita), Some(body), false).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let to = r.headers["location"].to_str().unwrap().to_string();
    assert!(to.starts_with("/reviews?stage=leave&said=approved&n=2"), "{to}");
    let after = call(&app, Method::GET, &to, Some(&rita), None, false).await.text;
    assert!(after.contains("2 review(s) approved.") && after.contains("No review waiting matches"), "{after}");
    let decided = call(&app, Method::GET, "/reviews?decided=1", Some(&rita), None, false).await.text;
    assert!(row(&decided, "1001").contains("approved") && row(&decided, "1001").contains("checked with HR"));
    assert!(row(&decided, "1001").contains(&rita_name(&app, &rita).await), "who decided");
    // The admin uploaded the change behind the last one: they may not decide it, and are told why.
    let last: String = call(&app, Method::GET, "/reviews", Some(&boss), None, false)
        .await
        .text
        .split("name=\"id\" value=\"")
        .nth(1)
        .map(|s| s.split('"').next().unwrap().to_string())
        .expect("one waiting");
    let body = form(&[("csrf", &boss.csrf), ("decision", "approve"), ("id", &last)]);
    let r = call(&app, Method::POST, "/reviews/decide", Some(&boss), Some(body), false).await;
    let to = r.headers["location"].to_str().unwrap().to_string();
    let refused = call(&app, Method::GET, &to, Some(&boss), None, false).await.text;
    assert!(refused.contains("0 review(s) approved") && refused.contains("you set it in motion"), "{refused}");
    assert!(refused.contains("another reviewer must decide it"), "{refused}");
    assert_eq!(app.api.store.reviews(None, &[store::ReviewState::Pending]).await.unwrap().len(), 1);
    // A viewer reads the queue and cannot decide.
    let vera = session(&app, Role::Viewer).await;
    let seen = call(&app, Method::GET, "/reviews", Some(&vera), None, false).await.text;
    assert!(seen.contains("/workers/1003") && !seen.contains("Approve selected"));
    // Waiting past the connection's reminder interval (12 h here) stands out.
    let rules = service::config::current(&app.api.store).await.unwrap();
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(13);
    let q = service::reviews::queue(&app.api.store, Some(&rules), &Default::default(), later).await.unwrap();
    assert!(q.len() == 1 && q[0].overdue && q[0].waiting_hours >= 12);
    let now = jiff::Timestamp::now();
    assert!(!service::reviews::queue(&app.api.store, Some(&rules), &Default::default(), now).await.unwrap()[0].overdue);
}

/// The name a session's user is recorded under in the audit and on decisions.
async fn rita_name(app: &App, s: &Session) -> String {
    let id = s.cookie.split('=').nth(1).unwrap();
    web::api::auth::session_caller(&app.api, id).await.unwrap().actor
}

#[tokio::test]
async fn an_auditor_filters_verifies_and_exports_exactly_what_the_filter_shows() {
    let app = app().await;
    let boss = session(&app, Role::Admin).await;
    // Decisions of two people: users made and a token revoked, each in the chain.
    let pw = store::Secret::new("a long enough password 1");
    service::users::add_audited(&app.api.store, "rita", Role::Reviewer, &pw, false, "user:boss").await.unwrap();
    service::users::add_audited(&app.api.store, "vera", Role::Viewer, &pw, false, "user:boss").await.unwrap();
    service::users::set_role(&app.api.store, "vera", Role::Editor, "user:ann").await.unwrap();
    let auditor = session(&app, Role::Viewer).await;
    let page = call(&app, Method::GET, "/audit", Some(&auditor), None, false).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("3 record(s)") && page.text.contains("user add"), "{}", page.text);
    // By actor: only boss's two.
    let mine =
        call(&app, Method::GET, "/audit?actor=user%3Aboss&kind=decision", Some(&auditor), None, false).await.text;
    assert!(mine.contains("2 record(s)") && !mine.contains("user set role"), "{mine}");
    // The export holds exactly the filter's records: two rows after the header, both boss's.
    let csv =
        call(&app, Method::GET, "/audit/export.csv?actor=user%3Aboss&kind=decision", Some(&auditor), None, false).await;
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    let lines: Vec<&str> = csv.text.trim_end().lines().collect();
    assert_eq!(lines.len(), 3, "{}", csv.text);
    assert!(lines[1..].iter().all(|l| l.contains("user_add")), "{}", csv.text);
    let nd =
        call(&app, Method::GET, "/audit/export.ndjson?action=user_set_role", Some(&auditor), None, false).await.text;
    let records: Vec<serde_json::Value> = nd.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["detail"]["actor"], "user:ann");
    // A day filter: today holds all three, a day long past none.
    let today = jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::UTC).date().to_string();
    let day =
        call(&app, Method::GET, &format!("/audit?since={today}&until={today}"), Some(&auditor), None, false).await;
    assert!(day.text.contains("3 record(s)"), "{}", day.text);
    let past = call(&app, Method::GET, "/audit?until=2001-01-01", Some(&auditor), None, false).await.text;
    assert!(past.contains("No record matches this filter"), "{past}");
    let bad = call(&app, Method::GET, "/audit?since=yesterday", Some(&auditor), None, false).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.text.contains("is not a day"), "{}", bad.text);
    // Verified: intact, with the head's number and hash.
    let head = app.api.store.audit(None).await.unwrap().last().cloned().unwrap();
    let v = call(&app, Method::GET, "/audit?verify=1", Some(&auditor), None, false).await.text;
    assert!(
        v.contains("The chain is intact") && v.contains(&format!("record #{}, hash {}", head.seq, head.hash)),
        "{v}"
    );

    // Dead letters: listed with the target's answer; retried one, by a reviewer only.
    let failed = |w: &str| {
        (
            w.to_string(),
            "fp".to_string(),
            "[{\"kind\":\"create\"}]".to_string(),
            "413: the body is too large".to_string(),
        )
    };
    app.api.store.record_attempts(CONNECTION, &[failed("1001"), failed("1002")], &[], 1).await.unwrap();
    let letters = call(&app, Method::GET, "/dead-letters", Some(&auditor), None, false).await.text;
    assert!(letters.contains("2 set aside") && letters.contains("413: the body is too large"), "{letters}");
    assert!(!letters.contains("Retry all"), "not a viewer's");
    let body = form(&[("csrf", &auditor.csrf), ("worker", "1001"), ("connection", CONNECTION)]);
    let r = call(&app, Method::POST, "/dead-letters/retry", Some(&auditor), Some(body), false).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let rita = session(&app, Role::Reviewer).await;
    let body = form(&[("csrf", &rita.csrf), ("worker", "1001"), ("connection", CONNECTION)]);
    let r = call(&app, Method::POST, "/dead-letters/retry", Some(&rita), Some(body), false).await;
    assert_eq!(r.headers["location"], "/dead-letters?retried=1");
    let letters = call(&app, Method::GET, "/dead-letters?retried=1", Some(&rita), None, false).await.text;
    assert!(
        letters.contains("1 set aside") && letters.contains("/workers/1002") && !letters.contains("/workers/1001\"")
    );
    assert!(letters.contains("1 worker(s) will be tried again"), "{letters}");
    let _ = boss;
}

#[tokio::test]
async fn a_notifier_is_listed_its_secret_set_once_and_a_test_notice_says_what_came_of_it() {
    // A webhook receiver of our own: it keeps what it is sent.
    let got = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let keep = got.clone();
    let receiver = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let keep = keep.clone();
            async move {
                keep.lock().unwrap().push(body);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let app = app().await;
    let admin = session(&app, Role::Admin).await;
    let toml = format!(
        "[[connection]]\nname = \"{CONNECTION}\"\ndialect = \"monday\"\n[connection.mappings]\nuserName = \"=work_email\"\n\
         displayName = \"=first_name\"\n\n[[role]]\nname = \"Everyone\"\n[role.grants.\"{CONNECTION}\"]\nuser_type = \"member\"\n\n\
         [[notify]]\nname = \"ops\"\nwebhook = \"http://127.0.0.1:{port}/hook\"\non = [\"leave\", \"failure\"]\n"
    );
    assert_eq!(api(&app, &admin, "PUT", "/api/v1/config", "application/toml", toml).await, StatusCode::OK);

    let viewer = session(&app, Role::Viewer).await;
    let page = call(&app, Method::GET, "/notifications", Some(&viewer), None, false).await.text;
    assert!(page.contains("ops") && page.contains("webhook") && page.contains("leave, failure"), "{page}");
    assert!(page.contains("not set") && !page.contains("Send a test") && !page.contains("Save the secret"), "{page}");
    // No secret yet: the test says so, in place.
    let ed = session(&app, Role::Editor).await;
    let body = form(&[("csrf", &ed.csrf), ("event", "leave")]);
    let r = call(&app, Method::POST, "/notifications/ops/test", Some(&ed), Some(body.clone()), false).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("Not delivered") && r.text.contains("no signing secret yet"), "{}", r.text);
    assert!(got.lock().unwrap().is_empty());
    // The admin has one made: shown once, then only its end.
    let r = call(
        &app,
        Method::POST,
        "/notifications/ops/secret",
        Some(&admin),
        Some(form(&[("csrf", &admin.csrf)])),
        false,
    )
    .await;
    let secret =
        r.text.split("it is not shown again: ").nth(1).expect("the secret is shown").split('<').next().unwrap();
    assert!(secret.len() >= 32, "{secret}");
    let again = call(&app, Method::GET, "/notifications", Some(&admin), None, false).await.text;
    assert!(again.contains("set, ending in") && !again.contains(secret), "shown once only");
    // The test notice reaches the receiver, and the page says so.
    let r = call(&app, Method::POST, "/notifications/ops/test", Some(&ed), Some(body), false).await;
    assert!(r.text.contains("Delivered: sent a test leave notice"), "{}", r.text);
    let sent = got.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].contains("\"event\":\"leave\""), "{}", sent[0]);
    // An Editor may not set secrets.
    let r = call(&app, Method::POST, "/notifications/ops/secret", Some(&ed), Some(form(&[("csrf", &ed.csrf)])), false)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_admin_adds_a_reviewer_and_a_token_shown_once_that_stops_at_once_when_revoked() {
    let app = app().await;
    let admin = session(&app, Role::Admin).await;
    let post = |s: &Session, pairs: &[(&str, &str)]| {
        let mut all = vec![("csrf", s.csrf.as_str())];
        all.extend_from_slice(pairs);
        form(&all)
    };
    // A reviewer, with a one-time password shown once.
    let r = call(
        &app,
        Method::POST,
        "/settings/users",
        Some(&admin),
        Some(post(&admin, &[("name", "rita"), ("role", "reviewer")])),
        false,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("rita is added as Reviewer") && r.text.contains("one-time password"), "{}", r.text);
    let once =
        r.text.split("id=\"once-value\" class=\"secret\">").nth(1).unwrap().split('<').next().unwrap().to_string();
    let page = call(&app, Method::GET, "/settings", Some(&admin), None, false).await.text;
    assert!(page.contains("rita") && !page.contains(&once), "shown once only");
    let u = app.api.store.user("rita").await.unwrap().unwrap();
    assert!(u.must_change && u.role == "reviewer");
    // A name taken: said on the page, nothing added.
    let r = call(
        &app,
        Method::POST,
        "/settings/users",
        Some(&admin),
        Some(post(&admin, &[("name", "RITA"), ("role", "viewer")])),
        false,
    )
    .await;
    assert!(r.text.contains("The user was not added"), "{}", r.text);
    // Role changed, disabled, enabled; the admin cannot change or disable themselves.
    let r = call(
        &app,
        Method::POST,
        "/settings/users/rita/role",
        Some(&admin),
        Some(post(&admin, &[("role", "editor")])),
        false,
    )
    .await;
    assert_eq!(r.headers["location"], "/settings?said=role&who=rita");
    assert_eq!(app.api.store.user("rita").await.unwrap().unwrap().role, "editor");
    let r = call(
        &app,
        Method::POST,
        "/settings/users/rita/disabled",
        Some(&admin),
        Some(post(&admin, &[("disabled", "true")])),
        false,
    )
    .await;
    assert_eq!(r.headers["location"], "/settings?said=disabled&who=rita");
    assert!(app.api.store.user("rita").await.unwrap().unwrap().disabled);
    let me = app.api.store.users().await.unwrap().into_iter().find(|u| u.role == "admin").unwrap().name;
    let r = call(
        &app,
        Method::POST,
        &format!("/settings/users/{me}/disabled"),
        Some(&admin),
        Some(post(&admin, &[("disabled", "true")])),
        false,
    )
    .await;
    assert!(r.text.contains("cannot disable themselves"), "{}", r.text);

    // A token for one connection, shown once; it works, then is revoked and refused at once.
    let r = call(
        &app,
        Method::POST,
        "/settings/tokens",
        Some(&admin),
        Some(post(&admin, &[("name", "hr sync"), ("role", "viewer"), ("connection", ""), ("expires", "30d")])),
        false,
    )
    .await;
    assert!(r.text.contains("The token “hr sync” is made"), "{}", r.text);
    let token =
        r.text.split("id=\"once-value\" class=\"secret\">").nth(1).unwrap().split('<').next().unwrap().to_string();
    assert!(token.starts_with("tenure_"));
    let bearer = |t: &str| {
        Request::builder()
            .uri("/api/v1/status")
            .header("authorization", format!("Bearer {t}"))
            .extension(axum::extract::ConnectInfo(web::serve::Peer("127.0.0.1:1".parse().unwrap())))
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(app.router.clone().oneshot(bearer(&token)).await.unwrap().status(), StatusCode::OK);
    let page = call(&app, Method::GET, "/settings", Some(&admin), None, false).await.text;
    assert!(page.contains("hr sync") && !page.contains(&token), "listed, never shown again");
    let id = token.split('_').nth(1).unwrap();
    let r = call(
        &app,
        Method::POST,
        &format!("/settings/tokens/{id}/revoke"),
        Some(&admin),
        Some(post(&admin, &[])),
        false,
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(app.router.clone().oneshot(bearer(&token)).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let page = call(&app, Method::GET, "/settings?said=revoked&who=hr%20sync", Some(&admin), None, false).await.text;
    assert!(page.contains("revoked") && page.contains("is revoked: it is refused from now on"), "{page}");

    // One's own sessions: two browsers, the other one ended from here.
    let other = web::api::auth::new_session(
        &app.api,
        &app.api.store.user(&me).await.unwrap().unwrap(),
        &web::api::auth::Origin { address: std::net::Ipv4Addr::LOCALHOST.into(), agent: Some("test".into()) },
    )
    .await
    .unwrap()
    .0;
    let mine = call(&app, Method::GET, "/account", Some(&admin), None, false).await.text;
    assert!(mine.contains("this browser") && mine.contains("Sign out everywhere else"), "{mine}");
    let r =
        call(&app, Method::POST, "/account/sessions/end-others", Some(&admin), Some(post(&admin, &[])), false).await;
    assert_eq!(r.headers["location"], "/account?ended=1");
    assert!(app.api.store.session(&web::api::auth::session_hash(&other)).await.unwrap().is_none());
    assert_eq!(call(&app, Method::GET, "/account", Some(&admin), None, false).await.status, StatusCode::OK);
}
