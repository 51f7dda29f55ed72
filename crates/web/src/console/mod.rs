//! The web console: server-rendered pages (askama templates compiled into the binary) with
//! htmx for the parts that change in place. Each page is a full page at its own URL; a request
//! from htmx (`HX-Request`) gets only the fragment it asked for. Pages call the service layer
//! as the API does, on the API's session cookie and CSRF token, and every answer carries a
//! Content-Security-Policy without inline script or style.

mod assets;
mod audit;
mod connections;
mod dashboard;
mod hr;
mod notifications;
mod oidc;
mod plan;
mod reviews;
mod rules;
mod session;
mod settings;
mod workers;

pub use assets::{sri, ASSETS, HTMX, HTMX_VERSION};

use crate::api::auth::{self, Caller};
use crate::api::{allows, Shared};
use crate::problem::Problem;
use crate::users::Role;
use askama::Template;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;

/// What every response of the listener carries: no script or style but our own files, no
/// framing, no sniffing, no referrer beyond our origin.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
     font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the security headers to every answer (the API's too) that does not set its own.
pub async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(CSP));
    h.entry(header::X_CONTENT_TYPE_OPTIONS).or_insert(HeaderValue::from_static("nosniff"));
    h.entry(header::REFERRER_POLICY).or_insert(HeaderValue::from_static("same-origin"));
    h.entry(header::X_FRAME_OPTIONS).or_insert(HeaderValue::from_static("DENY"));
    r
}

/// Who may call a console route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Anyone, signed in or not (sign-in, static files).
    Public,
    /// Anyone signed in, a one-time password included (its change, signing out).
    SignedIn,
    /// A role, as the API's checks define it (Admin holds every duty).
    Role(Role),
    /// Either of two roles (a plan is an Editor's to apply and a Reviewer's to confirm).
    Either(Role, Role),
}

/// Every console route with the role it needs, from which the router is built: no route can
/// exist without its entry, and the handler tests call each with every role.
fn table() -> Vec<(Method, &'static str, Need, MethodRouter<Shared>)> {
    use crate::users::Role as R;
    use Need::*;
    let (viewer, editor, admin) = (Role(R::Viewer), Role(R::Editor), Role(R::Admin));
    let plans = Either(R::Editor, R::Reviewer);
    vec![
        (Method::GET, "/", viewer, get(dashboard::page)),
        (Method::POST, "/restore/confirm", admin, post(dashboard::confirm_restore)),
        (Method::GET, "/static/{file}", Public, get(assets::serve)),
        (Method::GET, "/sign-in", Public, get(session::sign_in_page)),
        (Method::POST, "/sign-in", Public, post(session::sign_in)),
        (Method::GET, "/sign-in/code", Public, get(session::code_page)),
        (Method::POST, "/sign-in/code", Public, post(session::code)),
        (Method::GET, "/sign-in/oidc", Public, get(oidc::begin)),
        (Method::GET, "/sign-in/oidc/callback", Public, get(oidc::callback)),
        (Method::POST, "/sign-out", SignedIn, post(session::sign_out)),
        (Method::GET, "/password", SignedIn, get(session::password_page)),
        (Method::POST, "/password", SignedIn, post(session::change_password)),
        (Method::GET, "/hr", viewer, get(hr::page)),
        (Method::POST, "/hr/upload", editor, post(hr::upload).layer(DefaultBodyLimit::max(hr::UPLOAD_LIMIT))),
        (Method::GET, "/hr/loads/{id}", viewer, get(hr::load)),
        (Method::GET, "/hr/loads/{id}/quarantined.csv", viewer, get(hr::quarantined_csv)),
        (Method::GET, "/connections", viewer, get(connections::list)),
        (Method::GET, "/connections/new", admin, get(connections::new_page)),
        (Method::POST, "/connections/new", admin, post(connections::create)),
        (Method::POST, "/connections/new/normalise", admin, post(connections::normalise)),
        (Method::POST, "/connections/new/test", admin, post(connections::test_unsaved)),
        (Method::GET, "/connections/{name}", viewer, get(connections::page)),
        (Method::POST, "/connections/{name}/test", editor, post(connections::test)),
        (Method::POST, "/connections/{name}/pause", admin, post(connections::pause)),
        (Method::POST, "/connections/{name}/resume", admin, post(connections::resume)),
        (Method::POST, "/connections/{name}/token", admin, post(connections::rotate)),
        (Method::GET, "/connections/{name}/plan", plans, get(plan::page)),
        (Method::GET, "/connections/{name}/plan.json", plans, get(plan::json)),
        (Method::POST, "/connections/{name}/runs", plans, post(plan::apply)),
        (Method::GET, "/workers", viewer, get(workers::search)),
        (Method::GET, "/workers/{id}", viewer, get(workers::worker)),
        (Method::POST, "/workers/{id}/provision", editor, post(workers::provision)),
        (Method::GET, "/reviews", viewer, get(reviews::page)),
        (Method::POST, "/reviews/decide", Role(R::Reviewer), post(reviews::decide)),
        (Method::GET, "/dead-letters", viewer, get(audit::dead_letters)),
        (Method::POST, "/dead-letters/retry", Role(R::Reviewer), post(audit::retry)),
        (Method::GET, "/audit", viewer, get(audit::page)),
        (Method::GET, "/audit/export.csv", viewer, get(audit::csv)),
        (Method::GET, "/audit/export.ndjson", viewer, get(audit::ndjson)),
        (Method::GET, "/notifications", viewer, get(notifications::page)),
        (Method::POST, "/notifications/{name}/test", editor, post(notifications::test)),
        (Method::POST, "/notifications/{name}/secret", admin, post(notifications::set_secret)),
        (Method::GET, "/settings", admin, get(settings::page)),
        (Method::POST, "/settings/users", admin, post(settings::add_user)),
        (Method::POST, "/settings/users/{name}/role", admin, post(settings::set_role)),
        (Method::POST, "/settings/users/{name}/disabled", admin, post(settings::set_disabled)),
        (Method::POST, "/settings/users/{name}/reset", admin, post(settings::reset)),
        (Method::POST, "/settings/users/{name}/sessions/end", admin, post(settings::end_sessions)),
        (Method::POST, "/settings/users/{name}/second-factor/reset", admin, post(settings::reset_second_factor)),
        (Method::POST, "/settings/tokens", admin, post(settings::create_token)),
        (Method::POST, "/settings/tokens/{id}/revoke", admin, post(settings::revoke)),
        (Method::GET, "/account", SignedIn, get(settings::account)),
        (Method::POST, "/account/sessions/end-others", SignedIn, post(settings::end_others)),
        (Method::GET, "/account/second-factor", SignedIn, get(settings::second_factor_page)),
        (Method::POST, "/account/tokens", SignedIn, post(settings::create_own_token)),
        (Method::POST, "/account/tokens/{id}/revoke", SignedIn, post(settings::revoke_own_token)),
        (Method::POST, "/account/second-factor", SignedIn, post(settings::enrol)),
        (Method::POST, "/account/second-factor/remove", SignedIn, post(settings::remove_second_factor)),
        (Method::POST, "/settings/second-factor", admin, post(settings::set_second_factor_required)),
        (Method::GET, "/runs", viewer, get(plan::list)),
        (Method::GET, "/runs/{id}", viewer, get(plan::run)),
        (Method::POST, "/runs/{id}/retry", editor, post(plan::retry)),
        (Method::GET, "/rules", viewer, get(rules::page)),
        (Method::GET, "/rules/file.toml", viewer, get(rules::file)),
        (Method::GET, "/rules/roles-section", viewer, get(rules::roles_section)),
        (Method::GET, "/rules/roles/new", editor, get(rules::new_role)),
        (Method::POST, "/rules/roles/new", editor, post(rules::save_new_role)),
        (Method::GET, "/rules/roles/{id}", editor, get(rules::role)),
        (Method::POST, "/rules/roles/{id}", editor, post(rules::save_role_at)),
        (Method::POST, "/rules/roles/{id}/up", editor, post(rules::up)),
        (Method::POST, "/rules/roles/{id}/down", editor, post(rules::down)),
        (Method::POST, "/rules/roles/{id}/remove", editor, post(rules::remove)),
        (Method::GET, "/rules/connections/{name}", editor, get(rules::mapping)),
        (Method::POST, "/rules/connections/{name}", editor, post(rules::save_mapping)),
        (Method::POST, "/rules/connections/{name}/add", editor, post(rules::add_connection)),
        (Method::GET, "/rules/formula", editor, get(rules::check_formula)),
        (Method::GET, "/rules/changes", editor, get(rules::changes)),
        (Method::POST, "/rules/save", editor, post(rules::save)),
        (Method::POST, "/rules/rebase", editor, post(rules::rebase)),
        (Method::POST, "/rules/discard", editor, post(rules::discard)),
        (Method::GET, "/connections/{name}/remove", admin, get(connections::remove_page)),
        (Method::POST, "/connections/{name}/remove", admin, post(connections::remove)),
    ]
}

/// The console's routes: (method, path, who may call it).
pub fn routes() -> Vec<(Method, &'static str, Need)> {
    table().into_iter().map(|(m, p, n, _)| (m, p, n)).collect()
}

/// The console's router. It has no fallback of its own: the listener's answers an unknown
/// page (`not_found_page` for a browser, a problem document for the API).
pub fn router(api: Shared) -> Router {
    let mut r = Router::new();
    for (_, path, _, handler) in table() {
        r = r.route(path, handler);
    }
    r.layer(axum::middleware::map_response(html_errors)).layer(axum::middleware::map_response(vary)).with_state(api)
}

/// A page's answer depends on whether htmx asked for it: caches must keep both apart.
async fn vary(mut r: Response) -> Response {
    r.headers_mut().append(header::VARY, HeaderValue::from_static("HX-Request"));
    r
}

/// An error the framework answered on a console route (a method it does not take, a form it
/// could not read) becomes the console's error page rather than plain text.
async fn html_errors(r: Response) -> Response {
    let status = r.status();
    let html =
        r.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
            v.starts_with("text/html") || v.starts_with("text/javascript") || v.starts_with("text/css")
        });
    if !(status.is_client_error() || status.is_server_error()) || html {
        return r;
    }
    let (_, body) = r.into_parts();
    let said = axum::body::to_bytes(body, 4096).await.ok().and_then(|b| String::from_utf8(b.to_vec()).ok());
    let detail = said.filter(|s| !s.trim().is_empty() && !s.trim_start().starts_with('{')).unwrap_or_default();
    Failure { status, detail, chrome: None }.into_response()
}

/// The page for an address the listener does not know, asked by a browser.
pub fn not_found_page(path: &str) -> Response {
    Failure {
        status: StatusCode::NOT_FOUND,
        detail: format!("There is no page at {path}. It may have moved, or the link is mistyped."),
        chrome: None,
    }
    .into_response()
}

/// Whether a request would rather have a page than JSON (a browser navigating).
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"))
}

/// Who is signed in, as the bar shows them.
pub struct Who {
    pub name: String,
    pub role: &'static str,
}

/// What every page's frame needs: who is signed in, the session's CSRF token, the section
/// the page belongs to, the static files.
pub struct Chrome {
    pub who: Option<Who>,
    pub csrf: String,
    pub section: &'static str,
    pub assets: &'static assets::Assets,
    pub version: &'static str,
}

impl Chrome {
    /// The frame of a page nobody is signed in to.
    pub fn anonymous() -> Chrome {
        Chrome { who: None, csrf: String::new(), section: "", assets: &ASSETS, version: env!("CARGO_PKG_VERSION") }
    }
}

/// A message on a page: what happened, in its tone (`ok`, `warn`, `bad`).
pub struct Message {
    pub tone: &'static str,
    pub text: String,
}

impl Message {
    pub fn ok(text: impl Into<String>) -> Option<Message> {
        Some(Message { tone: "ok", text: text.into() })
    }
    pub fn bad(text: impl Into<String>) -> Option<Message> {
        Some(Message { tone: "bad", text: text.into() })
    }
}

/// A signed-in person on a console page. Without a session a page sends the browser to sign
/// in (and back here after); a person with a one-time password is sent to change it first.
pub struct Page {
    pub caller: Caller,
    /// The session's id, as its cookie holds it (the CSRF token derives from it).
    session_id: String,
    scheme: &'static str,
}

/// A signed-in person who may still have to change a one-time password (the password page and
/// signing out).
pub struct AnyPage(pub Page);

/// Where a signed-out browser is sent: the sign-in page, coming back here after. An htmx
/// request is told to send the whole page there.
fn to_sign_in(parts: &Parts) -> Response {
    let here = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let back =
        if parts.method == Method::GET && here != "/" { format!("?next={}", encode(here)) } else { String::new() };
    let to = format!("/sign-in{back}");
    if parts.headers.contains_key("hx-request") {
        let mut r = StatusCode::NO_CONTENT.into_response();
        r.headers_mut().insert("hx-redirect", HeaderValue::from_str(&to).unwrap_or(HeaderValue::from_static("/")));
        return r;
    }
    Redirect::to(&to).into_response()
}

impl FromRequestParts<Shared> for AnyPage {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, api: &Shared) -> Result<AnyPage, Response> {
        let Some(id) = auth::session_id(&parts.headers) else { return Err(to_sign_in(parts)) };
        let caller = match auth::session_caller(api, &id).await {
            Ok(c) => c,
            Err(p) if p.status == 401 => {
                let mut r = to_sign_in(parts);
                r.headers_mut().insert(header::SET_COOKIE, auth::clear_cookie(api));
                return Err(r);
            }
            Err(p) => return Err(Failure::from(p).into_response()),
        };
        let scheme = auth::client_of_parts(api, parts).1;
        Ok(AnyPage(Page { caller, session_id: id, scheme }))
    }
}

impl FromRequestParts<Shared> for Page {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, api: &Shared) -> Result<Page, Response> {
        let page = AnyPage::from_request_parts(parts, api).await?.0;
        if page.caller.must_change {
            return Err(Redirect::to("/password").into_response());
        }
        if page.caller.must_enrol {
            return Err(Redirect::to("/account/second-factor").into_response());
        }
        Ok(page)
    }
}

impl Page {
    /// The frame of a page in `section`.
    pub fn chrome(&self, section: &'static str) -> Chrome {
        Chrome {
            who: Some(Who { name: self.caller.user.clone().unwrap_or_default(), role: role_name(self.caller.role) }),
            csrf: auth::csrf_of(&self.session_id),
            section,
            assets: &ASSETS,
            version: env!("CARGO_PKG_VERSION"),
        }
    }

    pub fn may(&self, need: Role) -> bool {
        allows(self.caller.role, need)
    }

    /// The 403 page unless the person's role allows one of `needs`.
    pub fn need_either(&self, a: Role, b: Role) -> Result<(), Failure> {
        if self.may(a) || self.may(b) {
            return Ok(());
        }
        self.need(a)
    }

    /// The 403 page unless the person's role allows `need`.
    pub fn need(&self, need: Role) -> Result<(), Failure> {
        if self.may(need) {
            return Ok(());
        }
        Err(Failure {
            status: StatusCode::FORBIDDEN,
            detail: format!(
                "This needs the {} role; you are signed in as {}, a {}. Ask an admin of tenure if you need it.",
                role_name(need),
                self.caller.user.as_deref().unwrap_or_default(),
                role_name(self.caller.role)
            ),
            chrome: Some(Box::new(self.chrome(""))),
        })
    }

    /// Whoever the audit names.
    pub fn actor(&self) -> &str {
        &self.caller.actor
    }
}

/// The role as the console names it.
pub fn role_name(r: Role) -> &'static str {
    match r {
        Role::Admin => "Admin",
        Role::Editor => "Editor",
        Role::Reviewer => "Reviewer",
        Role::Viewer => "Viewer",
    }
}

/// A console form, sent on a session: same origin, and the session's CSRF token in the
/// `csrf` field (a plain form) or the X-CSRF-Token header (htmx). Refused with the 403 page.
pub struct Posted<T> {
    pub page: Page,
    pub form: T,
}

/// The largest console form: a token, a name, a URL (uploads have their own route).
const FORM_LIMIT: usize = 64 * 1024;

impl<T: serde::de::DeserializeOwned + Send> FromRequest<Shared> for Posted<T> {
    type Rejection = Response;
    async fn from_request(req: Request, api: &Shared) -> Result<Posted<T>, Response> {
        let (mut parts, body) = req.into_parts();
        let page = Page::from_request_parts(&mut parts, api).await?;
        let form = form_of(&page, &parts.headers, body).await?;
        Ok(Posted { page, form })
    }
}

/// A form on a session that may still have to change its one-time password.
pub struct PostedAny<T> {
    pub page: Page,
    pub form: T,
}

impl<T: serde::de::DeserializeOwned + Send> FromRequest<Shared> for PostedAny<T> {
    type Rejection = Response;
    async fn from_request(req: Request, api: &Shared) -> Result<PostedAny<T>, Response> {
        let (mut parts, body) = req.into_parts();
        let page = AnyPage::from_request_parts(&mut parts, api).await?.0;
        let form = form_of(&page, &parts.headers, body).await?;
        Ok(PostedAny { page, form })
    }
}

/// A form's fields, once its CSRF token is checked.
async fn form_of<T: serde::de::DeserializeOwned>(
    page: &Page,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<T, Response> {
    let bytes = axum::body::to_bytes(body, FORM_LIMIT).await.map_err(|_| {
        Failure::new(StatusCode::PAYLOAD_TOO_LARGE, "The form sent is larger than any of the console's.")
            .into_response()
    })?;
    page.check_csrf(headers, &bytes).map_err(IntoResponse::into_response)?;
    serde_urlencoded::from_bytes(&bytes)
        .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, format!("The form could not be read: {e}")).into_response())
}

impl Page {
    fn check_csrf(&self, headers: &HeaderMap, form: &[u8]) -> Result<(), Failure> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(form).unwrap_or_default();
        let field = pairs.into_iter().find(|(k, _)| k == "csrf").map(|(_, v)| v);
        self.check_token(headers, field.as_deref())
    }

    /// Same origin, and the session's CSRF token: in the header (htmx) or the form's field.
    pub fn check_token(&self, headers: &HeaderMap, field: Option<&str>) -> Result<(), Failure> {
        let header = headers.get(auth::CSRF_HEADER).and_then(|h| h.to_str().ok());
        let given = header.or(field);
        auth::check_csrf(headers, self.scheme, &self.session_id, given).map_err(|_| Failure {
            status: StatusCode::FORBIDDEN,
            detail: "The form did not come from this console's own page, or its page is too old: reload it and \
                     try again."
                .into(),
            chrome: Some(Box::new(self.chrome(""))),
        })
    }
}

/// A handler's answer: the page, or the error page it came to.
pub fn answer(a: Result<Response, Failure>) -> Response {
    a.unwrap_or_else(IntoResponse::into_response)
}

/// An answer that is not the page asked for: the error page, with its status.
pub struct Failure {
    pub status: StatusCode,
    pub detail: String,
    /// The frame of the page it answers, when someone is signed in (boxed: errors travel far).
    pub chrome: Option<Box<Chrome>>,
}

impl Failure {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Failure {
        Failure { status, detail: detail.into(), chrome: None }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    status: u16,
    title: &'static str,
    detail: String,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let title = match self.status {
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::UNAUTHORIZED => "Signed out",
            s if s.is_server_error() => "Something went wrong",
            _ => "That did not work",
        };
        let detail = if self.detail.is_empty() {
            self.status.canonical_reason().unwrap_or("Error").to_string()
        } else {
            self.detail
        };
        let page = ErrorPage {
            chrome: self.chrome.map(|c| *c).unwrap_or_else(Chrome::anonymous),
            status: self.status.as_u16(),
            title,
            detail,
        };
        (self.status, render(&page)).into_response()
    }
}

impl From<Problem> for Failure {
    fn from(p: Problem) -> Failure {
        Failure::new(StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), p.detail)
    }
}

impl From<service::error::Error> for Failure {
    fn from(e: service::error::Error) -> Failure {
        Problem::from(e).into()
    }
}

impl From<store::StoreError> for Failure {
    fn from(e: store::StoreError) -> Failure {
        Problem::from(e).into()
    }
}

/// A template as an HTML answer (no-store: pages hold what only this person may see).
pub fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => {
            let mut r = axum::response::Html(html).into_response();
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => {
            tracing::error!("a console page did not render: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be drawn").into_response()
        }
    }
}

/// Whether htmx asked (for a fragment) rather than the browser (for the whole page).
pub fn from_htmx(headers: &HeaderMap) -> bool {
    headers.get("hx-request").is_some_and(|v| v == "true")
}

/// A path segment with everything but unreserved characters percent-encoded (a connection
/// named "Connection-Bearer Token-1" is `/connections/Connection-Bearer%20Token-1`).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A segment of a path: `encode`, with `/` encoded too (the one percent-encoding of a name).
pub fn segment(s: &str) -> String {
    crate::names::percent_encode(s)
}

/// A moment as the console shows it: UTC to the minute, and how long ago or ahead.
pub fn when(at: &str) -> String {
    let Ok(t) = at.parse::<jiff::Timestamp>() else { return at.to_string() };
    moment(t)
}

/// A stored moment for a `<time>` element: (RFC 3339 for the browser to show in the viewer's
/// zone, and the UTC text a page shows without script).
pub fn timed(at: &str) -> (String, String) {
    (at.to_string(), when(at))
}

pub fn moment(t: jiff::Timestamp) -> String {
    let shown = t.strftime("%Y-%m-%d %H:%M UTC").to_string();
    let secs = jiff::Timestamp::now().duration_since(t).as_secs();
    let span = |s: i64| match s {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    };
    if secs >= 0 {
        format!("{shown} ({} ago)", span(secs))
    } else {
        format!("{shown} (in {})", span(-secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_moments() {
        assert_eq!(segment("Connection-Bearer Token-1"), "Connection-Bearer%20Token-1");
        assert_eq!(segment("a/b"), "a%2Fb");
        assert_eq!(encode("/connections?x=1"), "/connections%3Fx%3D1");
        assert!(when("2020-01-01T00:00:00Z").starts_with("2020-01-01 00:00 UTC ("), "{}", when("2020-01-01T00:00:00Z"));
        assert_eq!(when("not a time"), "not a time");
    }
}
