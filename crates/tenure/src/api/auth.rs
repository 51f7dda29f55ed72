//! Who is calling: a session cookie (the console; state-changing requests need the session's
//! CSRF token and a same-origin request) or an API token (scripts). Logins are slowed per
//! account and per address after failures, and every failure is audited.

use super::problem::{Body, Problem};
use super::{allows, Shared};
use crate::users::Role;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use store::Secret;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The session cookie's name.
pub const COOKIE: &str = "tenure_session";
/// The header a cookie session's state-changing request carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A caller the API knows.
#[derive(Debug, Clone)]
pub struct Caller {
    /// As the audit names it: `user:NAME` or `token:ID (NAME)`.
    pub actor: String,
    pub role: Role,
    /// The platform user, for a session.
    pub user: Option<String>,
    /// A token limited to one connection.
    pub connection: Option<String>,
    /// The session id's hash, for a session.
    pub session: Option<String>,
    /// An API token's id and name.
    pub token: Option<(String, String)>,
    /// The user must set a new password before anything else.
    pub must_change: bool,
}

impl Caller {
    /// Refuses a caller whose role does not allow `need`.
    pub fn need(&self, need: Role) -> Result<(), Problem> {
        if allows(self.role, need) {
            Ok(())
        } else {
            Err(Problem::forbidden(
                "forbidden",
                format!("this needs the {} role; {} is {}", need.as_str(), self.actor, self.role.as_str()),
            ))
        }
    }
    /// Refuses a token limited to another connection.
    pub fn on(&self, connection: &str) -> Result<(), Problem> {
        match &self.connection {
            Some(c) if c != connection => Err(Problem::forbidden(
                "connection-scope",
                format!("this token acts on connection {c:?} only, not {connection:?}"),
            )),
            _ => Ok(()),
        }
    }
    /// Refuses a token limited to one connection for what concerns them all.
    pub fn global(&self) -> Result<(), Problem> {
        match &self.connection {
            Some(c) => Err(Problem::forbidden(
                "connection-scope",
                format!("this token acts on connection {c:?} only; this request concerns every connection"),
            )),
            None => Ok(()),
        }
    }
    /// The connection a listing is limited to: the one asked for, within the token's.
    pub fn scope(&self, asked: Option<&str>) -> Result<Option<String>, Problem> {
        if let Some(a) = asked {
            self.on(a)?;
        }
        Ok(asked.map(str::to_string).or_else(|| self.connection.clone()))
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn hash(s: &str) -> String {
    crate::intake::checksum(s.as_bytes())
}

/// The CSRF token of a session: bound to its id, so nothing more is stored.
fn csrf_of(session_id: &str) -> String {
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(session_id.as_bytes()).expect("any key length");
    m.update(b"tenure csrf");
    m.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all("cookie").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
}

/// A state-changing request on a cookie session: same origin, and the session's CSRF token.
fn check_csrf(headers: &HeaderMap, session_id: &str) -> Result<(), Problem> {
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or_default();
    let origin = headers.get("origin").and_then(|h| h.to_str().ok());
    let same_site = headers.get("sec-fetch-site").and_then(|h| h.to_str().ok());
    let same_origin = match origin {
        Some(o) => o.split_once("://").map(|(_, h)| h) == Some(host),
        None => same_site == Some("same-origin"),
    };
    if !same_origin {
        return Err(Problem::forbidden(
            "csrf",
            "a request on a session must come from the console's own origin (Origin header)",
        ));
    }
    use subtle::ConstantTimeEq;
    let given = headers.get(CSRF_HEADER).and_then(|h| h.to_str().ok()).unwrap_or_default();
    if !bool::from(given.as_bytes().ct_eq(csrf_of(session_id).as_bytes())) {
        return Err(Problem::forbidden("csrf", "a request on a session needs its CSRF token in X-CSRF-Token"));
    }
    Ok(())
}

/// Authenticates a request: a bearer token, else the session cookie.
pub async fn authenticate(api: &Shared, headers: &HeaderMap, method: &Method) -> Result<Caller, Problem> {
    let now = jiff::Timestamp::now();
    if let Some(auth) = headers.get("authorization") {
        let bearer = auth
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or_else(|| unauthorized("send an API token as Authorization: Bearer tenure_..."))?;
        let t = crate::users::authenticate_token(&api.store, bearer.trim(), now)
            .await
            .map_err(Problem::unavailable)?
            // Unknown, revoked and expired tokens are told apart to no one.
            .ok_or_else(|| unauthorized("the token is not valid"))?;
        let role = Role::parse(&t.role).unwrap_or(Role::Viewer);
        return Ok(Caller {
            actor: format!("token:{} ({})", t.id, t.name),
            role,
            user: None,
            connection: t.connection,
            session: None,
            token: Some((t.id, t.name)),
            must_change: false,
        });
    }
    let Some(id) = cookie_value(headers, COOKIE) else {
        return Err(unauthorized("log in (POST /api/v1/session) or send an API token"));
    };
    let id_hash = hash(&id);
    let expired = || unauthorized("the session has ended: log in again");
    let (user_id, created, seen) = api.store.session(&id_hash).await?.ok_or_else(expired)?;
    let t = now_ms();
    let policy = api.sessions;
    let idle = t - seen > policy.idle.as_millis() as i64;
    let old = t - created > policy.max.as_millis() as i64;
    let user = api.store.user_by_id(&user_id).await?;
    let credentials_ms = user
        .as_ref()
        .and_then(|u| u.credentials_at.parse::<jiff::Timestamp>().ok())
        .map(|c| c.as_millisecond())
        .unwrap_or(i64::MAX);
    // A password change or a disable voids every session made before it.
    let void = user.as_ref().is_none_or(|u| u.disabled) || created < credentials_ms;
    if idle || old || void {
        api.store.delete_session(&id_hash).await?;
        return Err(expired());
    }
    let user = user.expect("checked");
    if !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        check_csrf(headers, &id)?;
    }
    // Last seen at most once a minute: a burst of reads is not a burst of writes.
    if t - seen > 60_000 {
        api.store.touch_session(&id_hash, t).await?;
    }
    Ok(user_caller(&user, id_hash))
}

/// A platform user calling on a session (its id's hash).
fn user_caller(user: &store::UserRecord, session: String) -> Caller {
    Caller {
        actor: format!("user:{}", user.name),
        role: Role::parse(&user.role).unwrap_or(Role::Viewer),
        user: Some(user.name.clone()),
        connection: None,
        session: Some(session),
        token: None,
        must_change: user.must_change,
    }
}

/// A caller who may act: a user with a one-time password must change it first.
impl FromRequestParts<Shared> for Caller {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, api: &Shared) -> Result<Caller, Problem> {
        let c = AnyCaller::from_request_parts(parts, api).await?.0;
        if c.must_change {
            return Err(Problem::forbidden(
                "password-change-required",
                "set a new password first (PUT /api/v1/session/password)",
            ));
        }
        Ok(c)
    }
}

/// Any authenticated caller, a user who must change their password included.
pub struct AnyCaller(pub Caller);

impl FromRequestParts<Shared> for AnyCaller {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, api: &Shared) -> Result<AnyCaller, Problem> {
        authenticate(api, &parts.headers, &parts.method).await.map(AnyCaller)
    }
}

/// Failed logins per account and per address: after `FREE` failures, each further attempt
/// waits twice as long as the one before (up to a quarter of an hour), answered 429.
#[derive(Default)]
pub struct Throttle(Mutex<HashMap<String, (u32, i64)>>);

const FREE: u32 = 5;
const LONGEST_MS: i64 = 15 * 60 * 1000;
/// Failures older than this are forgotten.
const FORGET_MS: i64 = 60 * 60 * 1000;

impl Throttle {
    fn wait_ms(failures: u32) -> i64 {
        if failures < FREE {
            return 0;
        }
        (1000i64 << (failures - FREE).min(20)).min(LONGEST_MS)
    }
    /// Milliseconds until one of the keys may try again.
    fn blocked(&self, keys: &[String], now: i64) -> i64 {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter().filter_map(|k| m.get(k)).map(|(n, last)| last + Self::wait_ms(*n) - now).max().unwrap_or(0).max(0)
    }
    fn failed(&self, keys: &[String], now: i64) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, (_, last)| now - *last < FORGET_MS);
        for k in keys {
            let e = m.entry(k.clone()).or_insert((0, now));
            e.0 += 1;
            e.1 = now;
        }
    }
    fn succeeded(&self, account: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(account);
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub user: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct SessionInfo {
    /// `user:NAME` or `token:ID (NAME)`.
    pub actor: String,
    pub user: Option<String>,
    /// admin, editor, reviewer or viewer.
    pub role: String,
    /// The connection an API token is limited to.
    pub connection: Option<String>,
    /// An API token's id.
    pub token: Option<String>,
    /// The user's name, or the API token's.
    pub name: String,
    /// For a session: send it as X-CSRF-Token with every state-changing request.
    pub csrf_token: Option<String>,
    /// A one-time password is in use: set a new one before anything else.
    pub must_change_password: bool,
}

fn info(c: &Caller, csrf: Option<String>) -> SessionInfo {
    SessionInfo {
        actor: c.actor.clone(),
        user: c.user.clone(),
        role: c.role.as_str().into(),
        connection: c.connection.clone(),
        token: c.token.as_ref().map(|t| t.0.clone()),
        name: c.token.as_ref().map(|t| t.1.clone()).or_else(|| c.user.clone()).unwrap_or_default(),
        csrf_token: csrf,
        must_change_password: c.must_change,
    }
}

fn set_cookie(api: &Shared, id: &str, max_age: i64) -> HeaderValue {
    let secure = if api.tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"))
        .expect("ascii")
}

/// A new session for a user, answered with who they are, its cookie and its CSRF token.
async fn with_new_session(api: &Shared, user: &store::UserRecord) -> Result<Response, Problem> {
    let id = crate::users::random_hex(32);
    let t = now_ms();
    // Expired sessions go as new ones come.
    api.store.prune_sessions(t - api.sessions.idle.as_millis() as i64, t - api.sessions.max.as_millis() as i64).await?;
    api.store.add_session(&hash(&id), &user.id, t).await?;
    let mut r = Json(info(&user_caller(user, hash(&id)), Some(csrf_of(&id)))).into_response();
    r.headers_mut().insert("set-cookie", set_cookie(api, &id, api.sessions.max.as_secs() as i64));
    r.headers_mut().insert("cache-control", HeaderValue::from_static("no-store"));
    Ok(r)
}

/// Log in: a session cookie (HttpOnly, SameSite=Strict, Secure under TLS) and its CSRF token.
#[utoipa::path(post, path = "/api/v1/session", tag = "session", request_body = Login,
    responses((status = 200, body = SessionInfo), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 429, body = Problem, content_type = "application/problem+json")))]
async fn login(
    State(api): State<Shared>,
    ConnectInfo(crate::serve::Peer(peer)): ConnectInfo<crate::serve::Peer>,
    Body(l): Body<Login>,
) -> Result<Response, Problem> {
    let now = now_ms();
    let keys = [format!("user:{}", l.user.to_lowercase()), format!("addr:{}", peer.ip())];
    let wait = api.throttle.blocked(&keys, now);
    if wait > 0 {
        let s = (wait as u64).div_ceil(1000);
        return Err(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "login-throttled",
            format!("too many failed logins: try again in {s} s"),
        )
        .retry_after(s));
    }
    let user = api.store.user(&l.user).await?;
    let password = Secret::new(l.password);
    // A missing user costs a hash too, so timing does not tell who exists.
    let ok = match &user {
        Some(u) => crate::users::verify_password(&password, &u.password_hash) && !u.disabled,
        None => {
            let _ = crate::users::hash_password(&password);
            false
        }
    };
    let Some(user) = user.filter(|_| ok) else {
        api.throttle.failed(&keys, now);
        crate::metrics::inc("tenure_login_failures_total", &[]);
        let name: String = l.user.chars().take(64).collect();
        let detail = serde_json::json!({"address": peer.ip().to_string()});
        crate::decisions::record_one(&api.store, "login_failed", "", &format!("user:{name}"), detail)
            .await
            .map_err(Problem::unavailable)?;
        return Err(unauthorized("wrong user name or password, or the user is disabled"));
    };
    api.throttle.succeeded(&keys[0]);
    with_new_session(&api, &user).await
}

/// Who is calling, with the session's CSRF token.
#[utoipa::path(get, path = "/api/v1/session", tag = "session",
    responses((status = 200, body = SessionInfo), (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn session(AnyCaller(c): AnyCaller, headers: HeaderMap) -> Json<SessionInfo> {
    let csrf = c.session.as_ref().and_then(|_| cookie_value(&headers, COOKIE)).map(|id| csrf_of(&id));
    Json(info(&c, csrf))
}

/// Who is calling (an API token or a session).
#[utoipa::path(get, path = "/api/v1/whoami", tag = "session",
    responses((status = 200, body = SessionInfo), (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn whoami(AnyCaller(c): AnyCaller) -> Json<SessionInfo> {
    Json(info(&c, None))
}

/// Log out: the session ends here and everywhere its cookie is.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session",
    responses((status = 204), (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn logout(State(api): State<Shared>, AnyCaller(c): AnyCaller) -> Result<Response, Problem> {
    if let Some(h) = &c.session {
        api.store.delete_session(h).await?;
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert("set-cookie", set_cookie(&api, "", 0));
    Ok(r)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current: String,
    pub new: String,
}

/// Set a new password (the first thing to do with a one-time password). Every session of
/// the user ends; this one is replaced by a new one.
#[utoipa::path(put, path = "/api/v1/session/password", tag = "session", request_body = PasswordChange,
    responses((status = 200, body = SessionInfo), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn change_password(
    State(api): State<Shared>,
    AnyCaller(c): AnyCaller,
    Body(p): Body<PasswordChange>,
) -> Result<Response, Problem> {
    let Some(name) = &c.user else {
        return Err(Problem::bad_request("not-a-session", "an API token has no password: log in as a user"));
    };
    let user = api.store.user(name).await?.ok_or_else(|| unauthorized("no such user"))?;
    if !crate::users::verify_password(&Secret::new(p.current), &user.password_hash) {
        return Err(Problem::refused("the current password is not right"));
    }
    let new = Secret::new(p.new);
    crate::users::check_password(name, &new).map_err(Problem::refused)?;
    let h = crate::users::hash_password(&new).map_err(Problem::unavailable)?;
    api.store.set_user_password(name, &h, false).await?;
    crate::decisions::record_one(&api.store, "password_change", "", &c.actor, serde_json::json!({"user": name}))
        .await
        .map_err(Problem::unavailable)?;
    // The change voided every session made before it, this one too: a fresh one follows.
    with_new_session(&api, &store::UserRecord { must_change: false, ..user }).await
}

pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(login, session, logout))
        .routes(routes!(change_password))
        .routes(routes!(whoami))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_doubles_after_free_failures() {
        let t = Throttle::default();
        let k = vec!["user:ann".to_string()];
        for _ in 0..FREE {
            assert_eq!(t.blocked(&k, 0), 0);
            t.failed(&k, 0);
        }
        assert_eq!(t.blocked(&k, 0), 1000);
        t.failed(&k, 0);
        assert_eq!(t.blocked(&k, 0), 2000);
        assert_eq!(t.blocked(&k, 1500), 500);
        t.succeeded("user:ann");
        assert_eq!(t.blocked(&k, 0), 0);
        assert_eq!(Throttle::wait_ms(60), LONGEST_MS);
    }

    #[test]
    fn csrf_needs_origin_and_token() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("127.0.0.1:8790"));
        assert!(check_csrf(&h, "s").is_err());
        h.insert("origin", HeaderValue::from_static("http://127.0.0.1:8790"));
        assert!(check_csrf(&h, "s").is_err(), "origin alone is not enough");
        h.insert(CSRF_HEADER, HeaderValue::from_str(&csrf_of("s")).unwrap());
        assert!(check_csrf(&h, "s").is_ok());
        assert!(check_csrf(&h, "other").is_err(), "bound to its session");
        h.insert("origin", HeaderValue::from_static("http://evil.example"));
        assert!(check_csrf(&h, "s").is_err());
    }
}
