//! Who is calling: a session cookie (the console; state-changing requests need the session's
//! CSRF token and a same-origin request) or an API token (scripts). Logins are slowed per
//! account and per address after failures, and every failure is audited.

use super::{allows, Shared};
use crate::problem::{Body, Problem};
use crate::users::Role;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
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
    /// The person behind the call, for maker-checker: `user:NAME` for a session and for a
    /// token a platform user made (it acts as its maker); `token:ID (NAME)` for a token made
    /// at the command line.
    pub person: String,
    /// What the caller may do: a token's role, never more than its maker's role now.
    pub role: Role,
    /// The platform user: the session's, or the maker of a token.
    pub user: Option<String>,
    /// A token limited to one connection.
    pub connection: Option<String>,
    /// The session id's hash, for a session.
    pub session: Option<String>,
    /// An API token's id and name.
    pub token: Option<(String, String)>,
    /// The user must set a new password before anything else.
    pub must_change: bool,
    /// A second factor is required of every local account and this user has none: they enrol
    /// one before anything else.
    pub must_enrol: bool,
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

/// The form a session id is stored in (never the id itself).
pub fn session_hash(id: &str) -> String {
    hash(id)
}

pub(crate) fn hash(s: &str) -> String {
    crate::intake::checksum(s.as_bytes())
}

/// The CSRF token of a session: bound to its id, so nothing more is stored.
pub fn csrf_of(session_id: &str) -> String {
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(session_id.as_bytes()).expect("any key length");
    m.update(b"tenure csrf");
    m.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all("cookie").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
}

/// Whether a request comes from a page of our own origin (scheme and host): its Origin
/// header, or without one, the browser's Sec-Fetch-Site.
pub fn same_origin(headers: &HeaderMap, scheme: &str) -> bool {
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or_default();
    let origin = headers.get("origin").and_then(|h| h.to_str().ok());
    let same_site = headers.get("sec-fetch-site").and_then(|h| h.to_str().ok());
    match origin {
        Some(o) => !host.is_empty() && o.eq_ignore_ascii_case(&format!("{scheme}://{host}")),
        None => same_site == Some("same-origin"),
    }
}

/// A state-changing request on a cookie session: same origin (scheme and host), and the
/// session's CSRF token (`given`: from the header, or a console form's field).
pub fn check_csrf(headers: &HeaderMap, scheme: &str, session_id: &str, given: Option<&str>) -> Result<(), Problem> {
    if !same_origin(headers, scheme) {
        return Err(Problem::forbidden(
            "csrf",
            "a request on a session must come from the console's own origin (Origin header)",
        ));
    }
    use subtle::ConstantTimeEq;
    let given = given.unwrap_or_default();
    if !bool::from(given.as_bytes().ct_eq(csrf_of(session_id).as_bytes())) {
        return Err(Problem::forbidden("csrf", "a request on a session needs its CSRF token in X-CSRF-Token"));
    }
    Ok(())
}

/// The role a token acts with: its own, within its maker's current one (Editor and Reviewer
/// are separate duties: a token of one made by the other may only read).
fn within(token: Role, maker: Role) -> Role {
    match (token, maker) {
        (t, m) if t == m => t,
        (t, Role::Admin) => t,
        (Role::Admin, m) => m,
        _ => Role::Viewer,
    }
}

/// Authenticates a request: a bearer token, else the session cookie. `scheme` is how the
/// client reached us (https under TLS or behind a trusted proxy that says so), for CSRF.
pub async fn authenticate(api: &Shared, headers: &HeaderMap, method: &Method, scheme: &str) -> Result<Caller, Problem> {
    let now = jiff::Timestamp::now();
    if let Some(auth) = headers.get("authorization") {
        let bearer = auth
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or_else(|| unauthorized("send an API token as Authorization: Bearer tenure_..."))?;
        let checked = crate::users::authenticate_token(&api.store, bearer.trim(), now)
            .await?
            // Unknown, revoked and expired tokens are told apart to no one.
            .ok_or_else(|| unauthorized("the token is not valid"))?;
        let t = checked.token;
        if t.read_only && !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return Err(Problem::forbidden(
                "read-only-token",
                format!("token {} ({}) only reads: {method} is refused whatever its role", t.id, t.name),
            ));
        }
        let mut role = Role::parse(&t.role).unwrap_or(Role::Viewer);
        // A token made by a platform user is that user at most: it stops when they are
        // disabled (or gone) and loses what they lose.
        if t.maker.is_some() {
            let Some(m) = checked.maker.filter(|m| !m.disabled) else {
                return Err(unauthorized("the token is not valid"));
            };
            // The provider is the judge of its people: their tokens last while they sign in.
            if !service::oidc::vouched(&api.store, &m).await? {
                return Err(unauthorized(&format!(
                    "the token's maker has not signed in through the identity provider for {} days: they sign in \
                     again and it works again",
                    service::oidc::TOKEN_REACH_DAYS
                )));
            }
            role = within(role, Role::parse(&m.role).unwrap_or(Role::Viewer));
        }
        let actor = format!("token:{} ({})", t.id, t.name);
        return Ok(Caller {
            // A token for no user is the person who made it at the command line (`os:NAME`):
            // maker-checker knows them by that name.
            person: t
                .maker
                .as_ref()
                .map(|m| format!("user:{m}"))
                .or_else(|| t.created_by.clone().filter(|c| !c.trim().is_empty()))
                .unwrap_or_else(|| actor.clone()),
            actor,
            role,
            user: t.maker.clone(),
            connection: t.connection,
            session: None,
            token: Some((t.id, t.name)),
            must_change: false,
            must_enrol: false,
        });
    }
    let Some(id) = cookie_value(headers, COOKIE) else {
        return Err(unauthorized("log in (POST /api/v1/session) or send an API token"));
    };
    let caller = session_caller(api, &id).await?;
    if !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        let given = headers.get(CSRF_HEADER).and_then(|h| h.to_str().ok());
        check_csrf(headers, scheme, &id, given)?;
    }
    Ok(caller)
}

/// The caller of a session, by the session id its cookie holds (the CSRF check is the
/// door's: the API takes the token in a header, the console's forms in a field too). An
/// ended session (idle, too old, voided by a password change or a disable) is removed.
pub async fn session_caller(api: &Shared, id: &str) -> Result<Caller, Problem> {
    let id_hash = hash(id);
    let expired = || unauthorized("the session has ended: log in again");
    let (user_id, created, seen, must_enrol) = api.store.session_state(&id_hash).await?.ok_or_else(expired)?;
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
    // Every request counts as activity; it is written when a tenth of the idle time has passed
    // since the last write, so a busy console is not a store write per request and idle expiry
    // is measured from the last request within a tenth of the idle time.
    if t - seen >= (policy.idle.as_millis() as i64 / 10).max(1) {
        api.store.touch_session(&id_hash, t).await?;
    }
    Ok(Caller { must_enrol, ..user_caller(&user, id_hash) })
}

/// The session id a request's cookie holds.
pub fn session_id(headers: &HeaderMap) -> Option<String> {
    cookie_value(headers, COOKIE)
}

/// A platform user calling on a session (its id's hash).
fn user_caller(user: &store::UserRecord, session: String) -> Caller {
    Caller {
        actor: format!("user:{}", user.name),
        person: format!("user:{}", user.name),
        role: Role::parse(&user.role).unwrap_or(Role::Viewer),
        user: Some(user.name.clone()),
        connection: None,
        session: Some(session),
        token: None,
        must_change: user.must_change,
        must_enrol: false,
    }
}

/// How a request reached us, as far as we can trust it: the client's address and scheme. A
/// trusted proxy (`--trusted-proxies`) speaks for its client through X-Forwarded-For and
/// X-Forwarded-Proto; anyone else's headers are ignored.
pub fn client_of(api: &Shared, peer: std::net::SocketAddr, headers: &HeaderMap) -> (std::net::IpAddr, &'static str) {
    let own = if api.tls { "https" } else { "http" };
    if !api.trusted_proxies.contains(peer.ip()) {
        return (peer.ip(), own);
    }
    // From the right: each trusted proxy names who it heard from; the first address no
    // trusted proxy stands for is the client. An entry that does not read as an address stops
    // the walk at the last one that did (never letting a client's own entry through).
    let entries: Vec<String> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|a| a.trim().to_string())
        .collect();
    let mut ip = peer.ip();
    for e in entries.iter().rev() {
        if !api.trusted_proxies.contains(ip) {
            break;
        }
        match forwarded_address(e) {
            Some(a) => ip = a,
            None => break,
        }
    }
    let scheme = match headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).map(str::trim) {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        Some(p) if p.eq_ignore_ascii_case("http") => "http",
        _ => own,
    };
    (ip, scheme)
}

/// An X-Forwarded-For entry's address, with its port (`1.2.3.4:5678`, `[2001:db8::1]:443`)
/// set aside.
fn forwarded_address(entry: &str) -> Option<std::net::IpAddr> {
    if let Ok(a) = entry.parse() {
        return Some(a);
    }
    if let Some(rest) = entry.strip_prefix('[') {
        return rest.split_once(']').and_then(|(a, _)| a.parse().ok());
    }
    entry
        .rsplit_once(':')
        .and_then(|(a, port)| port.parse::<u16>().ok().and(a.parse::<std::net::Ipv4Addr>().ok()).map(Into::into))
}

/// The client's address and scheme for a request, as `client_of` trusts them (without a
/// socket, in-process: loopback over this listener's scheme).
pub fn client_of_parts(api: &Shared, parts: &Parts) -> (std::net::IpAddr, &'static str) {
    match parts.extensions.get::<ConnectInfo<crate::serve::Peer>>() {
        Some(ConnectInfo(crate::serve::Peer(peer))) => client_of(api, *peer, &parts.headers),
        None => (std::net::Ipv4Addr::LOCALHOST.into(), if api.tls { "https" } else { "http" }),
    }
}

async fn authenticate_parts(parts: &mut Parts, api: &Shared) -> Result<Caller, Problem> {
    let scheme = client_of_parts(api, parts).1;
    authenticate(api, &parts.headers, &parts.method, scheme).await
}

/// A caller who may act on everything (a token limited to one connection is refused with
/// 403 connection-scope): the default, so a new route is closed to scoped tokens unless it
/// asks for [`Scoped`] and checks the connection itself. A user with a one-time password must
/// change it first.
impl FromRequestParts<Shared> for Caller {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, api: &Shared) -> Result<Caller, Problem> {
        let c = Scoped::from_request_parts(parts, api).await?.0;
        c.global()?;
        Ok(c)
    }
}

/// A caller on a route that concerns one connection (or filters by it): tokens limited to a
/// connection are let in, and the handler checks the connection with `on` or `scope`.
pub struct Scoped(pub Caller);

impl FromRequestParts<Shared> for Scoped {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, api: &Shared) -> Result<Scoped, Problem> {
        let c = AnyCaller::from_request_parts(parts, api).await?.0;
        if c.must_change {
            return Err(Problem::forbidden(
                "password-change-required",
                "set a new password first (PUT /api/v1/session/password)",
            ));
        }
        if c.must_enrol {
            return Err(Problem::forbidden(
                "second-factor-enrolment-required",
                "a second factor is required of every local account: set one up in the console (Your account) first",
            ));
        }
        Ok(Scoped(c))
    }
}

/// Any authenticated caller, a user who must change their password and a scoped token
/// included (who am I, log out, change the password).
pub struct AnyCaller(pub Caller);

impl FromRequestParts<Shared> for AnyCaller {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, api: &Shared) -> Result<AnyCaller, Problem> {
        authenticate_parts(parts, api).await.map(AnyCaller)
    }
}

/// Failed logins, kept per account and address pair in the store (every node counts them
/// together): after `FREE` failures from one address on one account, each further attempt
/// from there waits twice as long as the one before (up to a quarter of an hour), answered
/// 429. Nobody can lock an account for others: attempts from elsewhere are only slowed a
/// little while the account keeps failing. A store that cannot count an attempt still holds
/// back a pair already over its failures; one that cannot be read at all throttles nothing
/// (it is said in the log), rather than locking everyone out.
#[derive(Default)]
pub struct Throttle;

const FREE: u32 = 5;
const LONGEST_MS: i64 = 15 * 60 * 1000;
/// Failures older than this are forgotten.
const FORGET_MS: i64 = 60 * 60 * 1000;
/// The longest an attempt on an account under attack from elsewhere is slowed.
const SLOWEST_MS: u64 = 2_000;

/// An account as counted: lower case, at most a name's length (a 16 KiB "name" is not kept).
fn account(name: &str) -> String {
    name.chars().take(crate::names::MAX).collect::<String>().to_lowercase()
}

/// An address as counted: IPv6 by its /64 (one host holds a whole /64 to pick from).
fn network(address: std::net::IpAddr) -> String {
    match address {
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        v4 => v4.to_string(),
    }
}

fn pair_key(name: &str, address: std::net::IpAddr) -> String {
    format!("pair:{}\u{0}{}", account(name), network(address))
}

fn account_key(name: &str) -> String {
    format!("user:{}", account(name))
}

/// A key as the store keeps it: hashed, so that neither names nor addresses are written down
/// for a failure, and any character a name may hold is kept (PostgreSQL text holds no NUL).
fn stored(key: &str) -> String {
    service::intake::checksum(key.as_bytes())
}

impl Throttle {
    fn wait_ms(failures: i64) -> i64 {
        if failures < i64::from(FREE) {
            return 0;
        }
        (1000i64 << (failures - i64::from(FREE)).min(20)).min(LONGEST_MS)
    }
    /// Checks and counts an attempt in one step (counted as failed until it succeeds), so
    /// parallel attempts cannot all pass the check before any is counted. Err: the wait.
    pub(crate) async fn attempt(
        &self,
        store: &store::Store,
        account: &str,
        address: std::net::IpAddr,
        now: i64,
    ) -> Result<(), i64> {
        let (pair, user) = (stored(&pair_key(account, address)), stored(&account_key(account)));
        match store.throttle_attempt(&pair, &user, now, FORGET_MS, Self::wait_ms).await {
            Ok(r) => r,
            Err(e) => {
                // The count could not be written (a busy or full store): the failures already
                // counted still hold, so an attacker gains nothing from keeping the store busy.
                tracing::warn!("the sign-in throttle could not count an attempt: {e}");
                match store.throttle_failures(&pair, now, FORGET_MS).await {
                    Ok(n) if n >= i64::from(FREE) => Err(Self::wait_ms(n).max(1000)),
                    Ok(_) => Ok(()),
                    Err(e) => {
                        tracing::warn!("the sign-in throttle could not be read: {e}");
                        Ok(())
                    }
                }
            }
        }
    }
    /// How long to slow an attempt on an account that keeps failing from anywhere.
    async fn slowdown(&self, store: &store::Store, account: &str, now: i64) -> std::time::Duration {
        let n = store.throttle_failures(&stored(&account_key(account)), now, FORGET_MS).await.unwrap_or(0);
        std::time::Duration::from_millis((n.saturating_sub(i64::from(FREE) + 1).max(0) as u64 * 250).min(SLOWEST_MS))
    }
    pub(crate) async fn succeeded(&self, store: &store::Store, account: &str, address: std::net::IpAddr) {
        let keys = [stored(&pair_key(account, address)), stored(&account_key(account))];
        if let Err(e) = store.throttle_clear(&[&keys[0], &keys[1]]).await {
            tracing::warn!("the sign-in throttle could not be cleared: {e}");
        }
    }
}

/// The largest login body: a name and a password, with room to spare. Bodies are bounded
/// before anyone is known.
pub const LOGIN_BODY: usize = 16 * 1024;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub user: String,
    pub password: String,
    /// The authenticator app's six digits, or a recovery code, for an account with a second
    /// factor.
    pub code: Option<String>,
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

/// A new session for a user: its id (the cookie's value) and its Set-Cookie header.
/// Where a sign-in comes from: the client's address (as `client_of` trusts it) and its user
/// agent, kept with the session so its person sees where they are signed in.
#[derive(Debug, Clone)]
pub struct Origin {
    pub address: std::net::IpAddr,
    pub agent: Option<String>,
}

impl Origin {
    pub fn of(api: &Shared, peer: std::net::SocketAddr, headers: &HeaderMap) -> Origin {
        let (address, _) = client_of(api, peer, headers);
        let agent = headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|a| a.chars().filter(|c| !c.is_control()).take(256).collect::<String>())
            .filter(|a| !a.trim().is_empty());
        Origin { address, agent }
    }
}

/// How long a right password waits for its second factor.
pub const SECOND_FACTOR_WAIT_MS: i64 = 5 * 60 * 1000;

/// A new session for a user whose every factor was checked (one that may only enrol a second
/// factor when one is required and they have none).
pub async fn new_session(
    api: &Shared,
    user: &store::UserRecord,
    origin: &Origin,
) -> Result<(String, HeaderValue), Problem> {
    // The identity provider's own factors cover its people: the requirement is for local accounts.
    let must_enrol = user.idp_subject.is_none()
        && crate::second_factor::required(&api.store).await?
        && !crate::second_factor::enrolled(&api.store, user).await?;
    make_session(api, user, origin, if must_enrol { 2 } else { 0 }).await
}

/// A session that waits for its second factor: good for nothing but giving the code, for a
/// few minutes.
pub async fn pending_session(
    api: &Shared,
    user: &store::UserRecord,
    origin: &Origin,
) -> Result<(String, HeaderValue), Problem> {
    make_session(api, user, origin, 1).await
}

async fn make_session(
    api: &Shared,
    user: &store::UserRecord,
    origin: &Origin,
    pending: i64,
) -> Result<(String, HeaderValue), Problem> {
    let id = crate::users::random_hex(32);
    let t = now_ms();
    // Expired sessions go as new ones come.
    api.store.prune_sessions(t - api.sessions.idle.as_millis() as i64, t - api.sessions.max.as_millis() as i64).await?;
    let address = origin.address.to_string();
    api.store.add_session(&hash(&id), &user.id, t, Some(&address), origin.agent.as_deref(), pending).await?;
    let age = if pending == 1 { SECOND_FACTOR_WAIT_MS / 1000 } else { api.sessions.max.as_secs() as i64 };
    let cookie = set_cookie(api, &id, age);
    Ok((id, cookie))
}

/// Checks a sign-in's second factor when its account has one: the app's code or a recovery
/// code, throttled per account and address like passwords; a failure is audited. Nothing to
/// check for an account without one.
pub async fn check_second_factor(
    api: &Shared,
    user: &store::UserRecord,
    code: Option<&str>,
    address: std::net::IpAddr,
) -> Result<(), Problem> {
    if !crate::second_factor::enrolled(&api.store, user).await? {
        return Ok(());
    }
    let Some(code) = code.filter(|c| !c.trim().is_empty()) else {
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "second-factor-required",
            "this account has a second factor: send the authenticator app's code (or a recovery code) as \"code\"",
        ));
    };
    // Codes count apart from passwords: a right password does not spend a code's try.
    let codes = code_account(&user.name);
    let now = now_ms();
    if let Err(wait) = api.throttle.attempt(&api.store, &codes, address, now).await {
        return Err(throttled("wrong codes", address, wait));
    }
    tokio::time::sleep(api.throttle.slowdown(&api.store, &codes, now).await).await;
    match crate::second_factor::verify(&api.store, &api.key, user, code).await {
        Ok(Some(_)) => return Ok(()),
        Ok(None) => {}
        // Closed after too many wrong codes from anywhere: said, with until when.
        Err(service::error::Error::Refused(why)) => {
            return Err(Problem::new(StatusCode::TOO_MANY_REQUESTS, "second-factor-closed", why))
        }
        Err(e) => return Err(e.into()),
    }
    crate::metrics::inc("tenure_login_failures_total", &[]);
    let detail = serde_json::json!({"user_tried": user.name, "second_factor": true, "address": address.to_string()});
    crate::decisions::record_one(&api.store, "login_failed", "", "anonymous", detail).await?;
    Err(unauthorized("the code is not right (or was used already)"))
}

/// The Set-Cookie header that ends a session in the browser.
pub fn clear_cookie(api: &Shared) -> HeaderValue {
    set_cookie(api, "", 0)
}

/// Ends a session (its id's hash) everywhere its cookie is.
pub async fn end_session(api: &Shared, session: &str) -> Result<(), Problem> {
    api.store.delete_session(session).await?;
    Ok(())
}

/// A new session for a user, answered with who they are, its cookie and its CSRF token.
async fn with_new_session(api: &Shared, user: &store::UserRecord, origin: &Origin) -> Result<Response, Problem> {
    let (id, cookie) = new_session(api, user, origin).await?;
    let mut r = Json(info(&user_caller(user, hash(&id)), Some(csrf_of(&id)))).into_response();
    r.headers_mut().insert("set-cookie", cookie);
    r.headers_mut().insert("cache-control", HeaderValue::from_static("no-store"));
    Ok(r)
}

/// Checks a user name and password for a sign-in from `address`: slowed and throttled per
/// account and address, every failure audited (the API's login and the console's sign-in).
/// 401 for a wrong name or password or a disabled user, told apart to no one; 429 with its
/// wait when throttled.
pub async fn sign_in(
    api: &Shared,
    name: &str,
    password: Secret,
    address: std::net::IpAddr,
) -> Result<store::UserRecord, Problem> {
    let now = now_ms();
    // Nothing is hashed for a password no one could have set.
    if password.expose().len() > crate::users::MAX_PASSWORD {
        return Err(Problem::bad_request(
            "invalid-body",
            format!("a password is at most {} bytes", crate::users::MAX_PASSWORD),
        ));
    }
    // Password sign-in may be kept for break-glass accounts only (said by name alone, so it
    // tells nobody whether the user exists).
    if !crate::config::auth_settings(&api.store).await?.password_allowed(name) {
        // Only a user's name is kept, never what was typed (it may be a password).
        let known = api.store.user(name).await?.map(|u| u.name);
        let detail = serde_json::json!({"user_tried": known, "password_sign_in_off": true,
            "address": address.to_string()});
        crate::decisions::record_one(&api.store, "login_failed", "", "anonymous", detail).await?;
        return Err(Problem::forbidden(
            "password-sign-in-off",
            "password sign-in is kept for break-glass accounts here: sign in through the company's identity provider",
        ));
    }
    if let Err(wait) = api.throttle.attempt(&api.store, name, address, now).await {
        return Err(throttled("failed logins", address, wait));
    }
    tokio::time::sleep(api.throttle.slowdown(&api.store, name, now).await).await;
    let user = api.store.user(name).await?;
    // A missing user costs a hash too, so timing does not tell who exists.
    let ok = match &user {
        Some(u) => crate::users::verify_password(&password, &u.password_hash) && !u.disabled,
        None => {
            let _ = crate::users::hash_password(&password);
            false
        }
    };
    let Some(user) = user.filter(|_| ok) else {
        // Counted already, when the attempt began.
        crate::metrics::inc("tenure_login_failures_total", &[]);
        // An anonymous attempt, not a decision of the user named: and the name is kept only
        // when it is a user's, never what someone typed (it may be their password).
        let known = api.store.user(name).await?.map(|u| u.name);
        let detail = serde_json::json!({"user_tried": known, "unknown_user": known.is_none(),
            "address": address.to_string()});
        crate::decisions::record_one(&api.store, "login_failed", "", "anonymous", detail).await?;
        return Err(unauthorized("wrong user name or password, or the user is disabled"));
    };
    // The throttle forgets this account's failures only once every factor is right (the door
    // calls `signed_in`): a known password does not reset the count of wrong codes.
    Ok(user)
}

/// The answer to a throttled attempt (`what`: failed logins, wrong codes), with its wait.
fn throttled(what: &str, address: std::net::IpAddr, wait_ms: i64) -> Problem {
    let s = (wait_ms as u64).div_ceil(1000);
    Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "login-throttled",
        format!("too many {what} for this user from {address}: try again in {s} s"),
    )
    .retry_after(s)
}

/// Every factor of a sign-in was right: the throttle forgets the account's failures.
pub async fn signed_in(api: &Shared, user: &store::UserRecord, address: std::net::IpAddr) {
    api.throttle.succeeded(&api.store, &user.name, address).await;
    api.throttle.succeeded(&api.store, &code_account(&user.name), address).await;
}

/// The throttle's account for a user's second-factor codes (no user name holds a space).
fn code_account(name: &str) -> String {
    format!("code for {name}")
}

/// Log in: a session cookie (HttpOnly, SameSite=Strict, Secure under TLS) and its CSRF token.
#[utoipa::path(post, path = "/api/v1/session", tag = "session", request_body = Login, security(()),
    responses((status = 200, body = SessionInfo), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json")))]
async fn login(
    State(api): State<Shared>,
    ConnectInfo(crate::serve::Peer(peer)): ConnectInfo<crate::serve::Peer>,
    headers: HeaderMap,
    Body(l): Body<Login>,
) -> Result<Response, Problem> {
    let origin = Origin::of(&api, peer, &headers);
    let user = sign_in(&api, &l.user, Secret::new(l.password), origin.address).await?;
    check_second_factor(&api, &user, l.code.as_deref(), origin.address).await?;
    signed_in(&api, &user, origin.address).await;
    with_new_session(&api, &user, &origin).await
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
    ConnectInfo(crate::serve::Peer(peer)): ConnectInfo<crate::serve::Peer>,
    headers: HeaderMap,
    AnyCaller(c): AnyCaller,
    Body(p): Body<PasswordChange>,
) -> Result<Response, Problem> {
    let user = change_password_of(&api, &c, &Secret::new(p.current), Secret::new(p.new)).await?;
    // The change voided every session made before it, this one too: a fresh one follows.
    with_new_session(&api, &user, &Origin::of(&api, peer, &headers)).await
}

/// Sets a session user's new password after checking their current one (the API's and the
/// console's password change). Every session made before it ends; the user is answered as
/// they are now, for a fresh session.
pub async fn change_password_of(
    api: &Shared,
    c: &Caller,
    current: &Secret,
    new: Secret,
) -> Result<store::UserRecord, Problem> {
    let (Some(name), Some(_)) = (&c.user, &c.session) else {
        return Err(Problem::bad_request("not-a-session", "an API token has no password: log in as a user"));
    };
    if current.expose().len() > crate::users::MAX_PASSWORD || new.expose().len() > crate::users::MAX_PASSWORD {
        return Err(Problem::bad_request(
            "invalid-body",
            format!("a password is at most {} bytes", crate::users::MAX_PASSWORD),
        ));
    }
    let user = api.store.user(name).await?.ok_or_else(|| unauthorized("no such user"))?;
    if !crate::users::verify_password(current, &user.password_hash) {
        return Err(Problem::refused("the current password is not right"));
    }
    if new.expose() == current.expose() {
        return Err(Problem::refused("the new password must differ from the current one"));
    }
    crate::users::check_password(name, &new)?;
    let h = crate::users::hash_password(&new)?;
    api.store.set_user_password(name, &h, false).await?;
    crate::decisions::record_one(&api.store, "password_change", "", &c.actor, serde_json::json!({"user": name}))
        .await?;
    Ok(store::UserRecord { must_change: false, ..user })
}

/// The caller's own sessions, newest first: when, from which address, in which browser (an
/// API token has none).
#[utoipa::path(get, path = "/api/v1/session/all", tag = "session",
    responses((status = 200, body = Vec<Object>), (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn my_sessions(State(api): State<Shared>, AnyCaller(c): AnyCaller) -> Result<Json<Vec<Value>>, Problem> {
    // A token is no session: it lists none, not even its maker's.
    let (Some(name), Some(_)) = (&c.user, &c.session) else { return Ok(Json(vec![])) };
    let (_, all) = crate::users::sessions(&api.store, name).await?;
    Ok(Json(all.iter().map(|s| crate::users::session_view(s, c.session.as_deref())).collect()))
}

/// Ends the caller's other sessions (a browser left signed in elsewhere), keeping this one.
#[utoipa::path(post, path = "/api/v1/session/end-others", tag = "session",
    responses((status = 200, body = Object), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 401, body = Problem, content_type = "application/problem+json")))]
async fn end_others(State(api): State<Shared>, AnyCaller(c): AnyCaller) -> Result<Json<Value>, Problem> {
    let (Some(name), Some(this)) = (&c.user, &c.session) else {
        return Err(Problem::bad_request("not-a-session", "an API token has no sessions: log in as a user"));
    };
    let u = api.store.user(name).await?.ok_or_else(|| unauthorized("no such user"))?;
    let n = api.store.delete_sessions_except(&u.id, this).await?;
    Ok(Json(serde_json::json!({"ended": n})))
}

pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(my_sessions))
        .routes(routes!(end_others))
        .routes(routes!(login, session, logout))
        .routes(routes!(change_password))
        .routes(routes!(whoami))
        // Before anyone is known, a body is a name and a password: nothing bigger is read.
        .layer(axum::extract::DefaultBodyLimit::max(LOGIN_BODY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn throttle_doubles_after_free_failures_per_account_and_address() {
        let dir = std::env::temp_dir().join(format!("tenure-throttle-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = store::Store::open_in(&dir).await.unwrap();
        let st = &store;
        let t = Throttle;
        let (a, b): (std::net::IpAddr, std::net::IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..FREE {
            assert_eq!(t.attempt(st, "Ann", a, 0).await, Ok(()));
        }
        assert_eq!(t.attempt(st, "ann", a, 0).await, Err(1000), "counted as it began, whatever its end");
        assert_eq!(t.attempt(st, "ann", a, 1000).await, Ok(()));
        assert_eq!(t.attempt(st, "ann", a, 1000).await, Err(2000));
        // Another address is not blocked, only slowed; another account is untouched.
        assert_eq!(t.attempt(st, "ann", b, 0).await, Ok(()));
        assert!(t.slowdown(st, "ann", 1000).await > std::time::Duration::ZERO);
        assert_eq!(t.attempt(st, "bob", a, 0).await, Ok(()));
        assert_eq!(t.slowdown(st, "bob", 1000).await, std::time::Duration::ZERO);
        t.succeeded(st, "ann", b).await;
        assert_eq!(t.slowdown(st, "ann", 1000).await, std::time::Duration::ZERO);
        assert_eq!(Throttle::wait_ms(60), LONGEST_MS);
        // One IPv6 host holds a /64: its addresses count as one.
        let (x, y): (std::net::IpAddr, std::net::IpAddr) =
            ("2001:db8:1:2::1".parse().unwrap(), "2001:db8:1:2:ffff::9".parse().unwrap());
        for _ in 0..FREE {
            assert_eq!(t.attempt(st, "cy", x, 0).await, Ok(()));
        }
        assert!(t.attempt(st, "cy", y, 0).await.is_err(), "the same /64");
        // Forgotten an hour after the last failure.
        assert_eq!(t.attempt(st, "cy", y, FORGET_MS + 1).await, Ok(()));
        // A 16 KiB name is counted by its first 64 characters.
        let long = "z".repeat(16 * 1024);
        assert!(pair_key(&long, a).len() < 100);
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn forwarded_entries_are_read_with_or_without_a_port() {
        assert_eq!(forwarded_address("203.0.113.7"), "203.0.113.7".parse().ok());
        assert_eq!(forwarded_address("203.0.113.7:5678"), "203.0.113.7".parse().ok());
        assert_eq!(forwarded_address("[2001:db8::1]:443"), "2001:db8::1".parse().ok());
        assert_eq!(forwarded_address("2001:db8::1"), "2001:db8::1".parse().ok());
        assert_eq!(forwarded_address("unknown"), None);
        assert_eq!(forwarded_address("_hidden"), None);
    }

    #[test]
    fn tokens_act_within_their_makers_role() {
        assert_eq!(within(Role::Admin, Role::Admin), Role::Admin);
        assert_eq!(within(Role::Admin, Role::Editor), Role::Editor, "a demoted admin's token");
        assert_eq!(within(Role::Reviewer, Role::Admin), Role::Reviewer);
        assert_eq!(within(Role::Reviewer, Role::Editor), Role::Viewer, "separate duties");
        assert_eq!(within(Role::Editor, Role::Viewer), Role::Viewer);
    }

    #[test]
    fn csrf_needs_origin_and_token() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("127.0.0.1:8790"));
        let token = csrf_of("s");
        let given = Some(token.as_str());
        assert!(check_csrf(&h, "http", "s", given).is_err());
        h.insert("origin", HeaderValue::from_static("http://127.0.0.1:8790"));
        assert!(check_csrf(&h, "http", "s", None).is_err(), "origin alone is not enough");
        assert!(check_csrf(&h, "http", "s", given).is_ok());
        assert!(check_csrf(&h, "https", "s", given).is_err(), "the scheme counts: http is another origin than https");
        assert!(check_csrf(&h, "http", "other", given).is_err(), "bound to its session");
        h.insert("origin", HeaderValue::from_static("http://evil.example"));
        assert!(check_csrf(&h, "http", "s", given).is_err());
    }
}
