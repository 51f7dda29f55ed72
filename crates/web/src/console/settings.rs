//! Settings (Admin): platform users (added with a role, role changed, disabled and enabled, a
//! one-time password made and shown once) and API tokens (made with a role, a connection and
//! an expiry and shown once; listed with their last use; revoked, refused from the next
//! request on). And each person's own account: their password and their sessions. The use
//! cases are `service::users`, as the API's routes are.

use super::{answer, render, timed, Chrome, Failure, Message, Page, Posted, PostedAny};
use crate::api::{auth, Shared};
use crate::second_factor;
use crate::users::{self, Role};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use store::Secret;

pub struct UserRow {
    pub name: String,
    pub path: String,
    pub role: String,
    pub disabled: bool,
    pub must_change: bool,
    pub created: (String, String),
    pub me: bool,
    /// They have a second factor.
    pub second_factor: bool,
    /// They sign in through the identity provider (no password here; the role follows their groups).
    pub through_provider: bool,
}

pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub role: String,
    pub connection: String,
    pub created: (String, String),
    pub by: String,
    pub expires: Option<(String, String)>,
    pub last_used: Option<(String, String)>,
    pub state: &'static str,
    pub read_only: bool,
}

/// A secret shown once: what it is, and the value (with a copy button).
pub struct Once {
    pub what: String,
    pub value: String,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    chrome: Chrome,
    message: Option<Message>,
    once: Option<Once>,
    users: Vec<UserRow>,
    tokens: Vec<TokenRow>,
    connections: Vec<String>,
    roles: Vec<(&'static str, &'static str)>,
    /// A second factor is required of every local account.
    second_factor_required: bool,
}

const ROLES: [(&str, &str); 4] =
    [("viewer", "Viewer"), ("reviewer", "Reviewer"), ("editor", "Editor"), ("admin", "Admin")];

/// Tokens as listed: the live ones first, newest first.
fn token_rows(all: Vec<store::TokenRecord>) -> Vec<TokenRow> {
    let now = jiff::Timestamp::now();
    let mut tokens: Vec<TokenRow> = all
        .into_iter()
        .map(|t| {
            let expired =
                t.expires_at.as_deref().and_then(|e| e.parse::<jiff::Timestamp>().ok()).is_some_and(|e| e <= now);
            TokenRow {
                state: if t.revoked_at.is_some() {
                    "revoked"
                } else if expired {
                    "expired"
                } else {
                    "active"
                },
                id: t.id,
                name: t.name,
                role: t.role,
                connection: t.connection.unwrap_or_else(|| "every connection".into()),
                created: timed(&t.created_at),
                by: t.created_by.unwrap_or_default(),
                expires: t.expires_at.as_deref().map(timed),
                last_used: t.last_used_at.as_deref().map(timed),
                read_only: t.read_only,
            }
        })
        .collect();
    // The live ones first, newest first.
    tokens.reverse();
    tokens.sort_by_key(|t| t.state != "active");
    tokens
}

async fn draw(api: &Shared, page: &Page, message: Option<Message>, once: Option<Once>) -> Result<Response, Failure> {
    page.need(Role::Admin)?;
    let me = page.caller.user.clone().unwrap_or_default();
    let mut users = vec![];
    for u in api.store.users().await? {
        users.push(UserRow {
            path: super::segment(&u.name),
            me: u.name.eq_ignore_ascii_case(&me),
            role: u.role.clone(),
            disabled: u.disabled,
            must_change: u.must_change,
            created: timed(&u.created_at),
            second_factor: second_factor::enrolled(&api.store, &u).await?,
            through_provider: u.idp_subject.is_some(),
            name: u.name,
        });
    }
    let tokens = token_rows(api.store.tokens().await?);
    let connections = api.store.connections().await?.into_iter().map(|c| c.name).collect();
    Ok(render(&SettingsPage {
        chrome: page.chrome("settings"),
        message,
        once,
        users,
        tokens,
        connections,
        roles: ROLES.to_vec(),
        second_factor_required: second_factor::required(&api.store).await?,
    }))
}

#[derive(Deserialize, Default)]
pub struct SaidQuery {
    said: Option<String>,
    who: Option<String>,
}

pub async fn page(State(api): State<Shared>, page: Page, Query(q): Query<SaidQuery>) -> Response {
    let who = q.who.unwrap_or_default();
    let message = match q.said.as_deref() {
        Some("role") => Message::ok(format!("{who}'s role is changed; it holds from their next request.")),
        Some("disabled") => Message::ok(format!("{who} is disabled: their sessions and tokens stop now.")),
        Some("enabled") => Message::ok(format!("{who} is enabled again.")),
        Some("revoked") => Message::ok(format!("The token “{who}” is revoked: it is refused from now on.")),
        Some("ended") => Message::ok(format!("Every session of {who} has ended: they sign in again.")),
        Some("2fa-reset") => Message::ok(format!(
            "{who}'s second factor is removed and their sessions ended: they set up a new one (or sign in with their \
             password alone where none is required)."
        )),
        Some("2fa-required") => Message::ok(
            "A second factor is now required of every local account: whoever has none sets one up at their next sign-in.",
        ),
        Some("2fa-optional") => Message::ok("A second factor is no longer required (those who have one keep it)."),
        _ => None,
    };
    answer(draw(&api, &page, message, None).await)
}

fn role_of(s: &str) -> Result<Role, Failure> {
    Role::parse(s).map_err(|e| Failure::new(StatusCode::BAD_REQUEST, e.to_string()))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct NewUserForm {
    name: String,
    role: String,
    password: Option<String>,
}

pub async fn add_user(State(api): State<Shared>, posted: Posted<NewUserForm>) -> Response {
    let Posted { page, form } = posted;
    answer(
        async {
            page.need(Role::Admin)?;
            let role = role_of(&form.role)?;
            let given = form.password.filter(|p| !p.is_empty());
            let (p, once) = match given {
                Some(p) => (Secret::new(p), false),
                None => (users::one_time_password(), true),
            };
            match users::add_audited(&api.store, &form.name, role, &p, once, page.actor()).await {
                Ok(u) => {
                    let text = format!("{} is added as {}.", u.name, super::role_name(role));
                    let shown = once.then(|| Once {
                        what: format!(
                            "{}'s one-time password: give it to them; they choose their own at first sign-in. It is not \
                             shown again.",
                            u.name
                        ),
                        value: p.expose().to_string(),
                    });
                    draw(&api, &page, Message::ok(text), shown).await
                }
                // Said on the page, the form's values kept out (a password is never echoed).
                Err(e) => draw(&api, &page, Message::bad(format!("The user was not added: {e}")), None).await,
            }
        }
        .await,
    )
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RoleForm {
    role: String,
}

pub async fn set_role(State(api): State<Shared>, Path(name): Path<String>, posted: Posted<RoleForm>) -> Response {
    let Posted { page, form } = posted;
    answer(
        async {
            page.need(Role::Admin)?;
            let role = role_of(&form.role)?;
            let me = page.caller.user.clone();
            match users::change_user(&api.store, &name, Some(role), None, me.as_deref(), page.actor()).await {
                Ok(u) => {
                    Ok(Redirect::to(&format!("/settings?said=role&who={}", super::encode(&u.name))).into_response())
                }
                Err(e) => draw(&api, &page, Message::bad(format!("Not changed: {e}")), None).await,
            }
        }
        .await,
    )
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DisableForm {
    disabled: String,
}

pub async fn set_disabled(
    State(api): State<Shared>,
    Path(name): Path<String>,
    posted: Posted<DisableForm>,
) -> Response {
    let Posted { page, form } = posted;
    answer(
        async {
            page.need(Role::Admin)?;
            let disabled = form.disabled == "true";
            let me = page.caller.user.clone();
            match users::change_user(&api.store, &name, None, Some(disabled), me.as_deref(), page.actor()).await {
                Ok(u) => {
                    let said = if disabled { "disabled" } else { "enabled" };
                    Ok(Redirect::to(&format!("/settings?said={said}&who={}", super::encode(&u.name))).into_response())
                }
                Err(e) => draw(&api, &page, Message::bad(format!("Not changed: {e}")), None).await,
            }
        }
        .await,
    )
}

/// Removes a user's second factor (a lost phone) and ends their sessions.
pub async fn reset_second_factor(
    State(api): State<Shared>,
    Path(name): Path<String>,
    posted: Posted<super::session::Nothing>,
) -> Response {
    let Posted { page, .. } = posted;
    answer(
        async {
            page.need(Role::Admin)?;
            match second_factor::remove(&api.store, &name, page.actor()).await {
                Ok(()) => {
                    users::end_sessions(&api.store, &name, page.actor()).await?;
                    Ok(Redirect::to(&format!("/settings?said=2fa-reset&who={}", super::encode(&name))).into_response())
                }
                Err(e) => draw(&api, &page, Message::bad(format!("Not done: {e}")), None).await,
            }
        }
        .await,
    )
}

/// Ends every session of a user (a lost laptop, a person who left).
pub async fn end_sessions(
    State(api): State<Shared>,
    Path(name): Path<String>,
    posted: Posted<super::session::Nothing>,
) -> Response {
    let Posted { page, .. } = posted;
    answer(
        async {
            page.need(Role::Admin)?;
            match users::end_sessions(&api.store, &name, page.actor()).await {
                Ok(_) => {
                    Ok(Redirect::to(&format!("/settings?said=ended&who={}", super::encode(&name))).into_response())
                }
                Err(e) => draw(&api, &page, Message::bad(format!("Not done: {e}")), None).await,
            }
        }
        .await,
    )
}

pub async fn reset(
    State(api): State<Shared>,
    Path(name): Path<String>,
    posted: Posted<super::session::Nothing>,
) -> Response {
    let Posted { page, .. } = posted;
    answer(
        async {
            page.need(Role::Admin)?;
            let (u, p) = users::reset_one_time(&api.store, &name, page.actor()).await?;
            let once = Once {
                what: format!(
                    "{}'s new one-time password: their sessions have ended, and they choose their own password at their \
                     next sign-in. It is not shown again.",
                    u.name
                ),
                value: p.expose().to_string(),
            };
            draw(&api, &page, Message::ok(format!("{}'s password is reset.", u.name)), Some(once)).await
        }
        .await,
    )
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct NewTokenForm {
    name: String,
    role: String,
    connection: Option<String>,
    expires: Option<String>,
    /// A checkbox: present when ticked.
    read_only: Option<String>,
}

pub async fn create_token(State(api): State<Shared>, posted: Posted<NewTokenForm>) -> Response {
    let Posted { page, form } = posted;
    answer(
        async {
            page.need(Role::Admin)?;
            let role = role_of(&form.role)?;
            let now = jiff::Timestamp::now();
            let made = async {
                let expires = form
                    .expires
                    .as_deref()
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .map(|e| users::parse_expiry(e, now))
                    .transpose()?;
                let connection = form.connection.filter(|c| !c.is_empty());
                // The token acts for the admin who made it: it stops when they are disabled.
                let spec = users::TokenSpec {
                    connection,
                    expires,
                    read_only: form.read_only.is_some(),
                    maker: page.caller.user.clone(),
                    ..users::TokenSpec::new(&form.name, role)
                };
                users::create_token_audited(&api.store, spec, page.actor()).await
            }
            .await;
            match made {
                Ok(t) => {
                    let once = Once {
                        what: format!(
                            "The token “{}”: copy it now into the tool that uses it (as Authorization: Bearer …). It \
                             is stored only as a hash and not shown again.",
                            t.record.name
                        ),
                        value: t.secret.expose().to_string(),
                    };
                    draw(&api, &page, Message::ok(format!("The token “{}” is made.", t.record.name)), Some(once)).await
                }
                Err(e) => draw(&api, &page, Message::bad(format!("The token was not made: {e}")), None).await,
            }
        }
        .await,
    )
}

pub async fn revoke(
    State(api): State<Shared>,
    Path(id): Path<String>,
    posted: Posted<super::session::Nothing>,
) -> Response {
    let Posted { page, .. } = posted;
    answer(
        async {
            page.need(Role::Admin)?;
            let name = api.store.tokens().await?.into_iter().find(|t| t.id == id).map(|t| t.name).unwrap_or_default();
            users::revoke_token(&api.store, &id, page.actor()).await?;
            Ok(Redirect::to(&format!("/settings?said=revoked&who={}", super::encode(&name))).into_response())
        }
        .await,
    )
}

pub struct SessionRow {
    pub created: (String, String),
    pub seen: (String, String),
    pub address: String,
    pub browser: String,
    pub this: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    chrome: Chrome,
    message: Option<Message>,
    name: String,
    role: &'static str,
    sessions: Vec<SessionRow>,
    second_factor: bool,
    /// They sign in through the identity provider: no password or second factor of tenure's.
    through_provider: bool,
    /// The person's own live API tokens.
    tokens: Vec<TokenRow>,
    /// The roles a token of their own may have: theirs, and viewer.
    token_roles: Vec<(&'static str, &'static str)>,
    once: Option<Once>,
}

fn moment_ms(ms: i64) -> (String, String) {
    let t = jiff::Timestamp::from_millisecond(ms).unwrap_or_default();
    (t.to_string(), super::moment(t))
}

async fn draw_account(
    api: &Shared,
    page: &Page,
    message: Option<Message>,
    once: Option<Once>,
) -> Result<Response, Failure> {
    let mine = auth::hash(&page.session_id);
    let user = api.store.session(&mine).await?.map(|(user, _, _)| user);
    let sessions = match &user {
        Some(id) => api
            .store
            .sessions_of(id)
            .await?
            .into_iter()
            .map(|s| SessionRow {
                this: s.id_hash == mine,
                created: moment_ms(s.created_ms),
                seen: moment_ms(s.last_seen_ms),
                address: s.address.unwrap_or_default(),
                browser: s.agent.as_deref().map(users::agent_words).unwrap_or_default(),
            })
            .collect(),
        None => vec![],
    };
    let me_user = me(api, page).await.ok();
    Ok(render(&AccountPage {
        chrome: page.chrome("account"),
        message,
        name: page.caller.user.clone().unwrap_or_default(),
        role: super::role_name(page.caller.role),
        sessions,
        second_factor: match &me_user {
            Some(u) => second_factor::enrolled(&api.store, u).await?,
            None => false,
        },
        through_provider: me_user.as_ref().is_some_and(|u| u.idp_subject.is_some()),
        tokens: token_rows(
            api.store
                .tokens()
                .await?
                .into_iter()
                .filter(|t| t.revoked_at.is_none() && t.maker.is_some() && t.maker == page.caller.user)
                .collect(),
        ),
        token_roles: ROLES.iter().copied().filter(|(r, _)| *r == "viewer" || *r == page.caller.role.as_str()).collect(),
        once,
    }))
}

/// Makes an API token of one's own (one's role or viewer), acting as oneself: for a script or
/// the command line's `--server`. Shown once.
pub async fn create_own_token(State(api): State<Shared>, posted: Posted<NewTokenForm>) -> Response {
    let Posted { page, form } = posted;
    answer(
        async {
            let role = role_of(&form.role)?;
            if role != page.caller.role && role != Role::Viewer {
                let m = Message::bad("A token of your own has your role, or Viewer.");
                return draw_account(&api, &page, m, None).await;
            }
            let now = jiff::Timestamp::now();
            let expires = match form.expires.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
                Some(e) => match users::parse_expiry(e, now) {
                    Ok(t) => Some(t),
                    Err(e) => return draw_account(&api, &page, Message::bad(format!("Not made: {e}")), None).await,
                },
                None => None,
            };
            let spec = users::TokenSpec {
                expires,
                read_only: form.read_only.is_some(),
                maker: page.caller.user.clone(),
                ..users::TokenSpec::new(&form.name, role)
            };
            match users::create_token_audited(&api.store, spec, page.actor()).await {
                Ok(t) => {
                    let once = Once {
                        what: format!(
                            "Your token “{}” is made. Copy it now: it is not shown again. Give it as TENURE_TOKEN to \
                             tenure --server URL, or as Authorization: Bearer to the API.",
                            t.record.name
                        ),
                        value: t.secret.expose().to_string(),
                    };
                    draw_account(&api, &page, None, Some(once)).await
                }
                Err(e) => draw_account(&api, &page, Message::bad(format!("Not made: {e}")), None).await,
            }
        }
        .await,
    )
}

/// Revokes a token of one's own.
pub async fn revoke_own_token(
    State(api): State<Shared>,
    Path(id): Path<String>,
    posted: Posted<super::session::Nothing>,
) -> Response {
    let Posted { page, .. } = posted;
    answer(
        async {
            let mine = api.store.tokens().await?.into_iter().find(|t| t.id == id && t.maker == page.caller.user);
            let Some(t) = mine.filter(|_| page.caller.user.is_some()) else {
                return Err(Failure::new(StatusCode::NOT_FOUND, "You have no such token."));
            };
            users::revoke_token(&api.store, &t.id, page.actor()).await?;
            Ok(Redirect::to("/account?said=token-revoked").into_response())
        }
        .await,
    )
}

#[derive(Deserialize, Default)]
pub struct AccountQuery {
    ended: Option<u64>,
    said: Option<String>,
}

pub async fn account(State(api): State<Shared>, page: Page, Query(q): Query<AccountQuery>) -> Response {
    let message = match (q.ended, q.said.as_deref()) {
        (Some(n), _) => Some(Message { tone: "ok", text: format!("{n} other session(s) ended.") }),
        (_, Some("second-factor-removed")) => {
            Message::ok("The second factor is removed: your password alone signs you in.")
        }
        (_, Some("token-revoked")) => Message::ok("The token is revoked: it is refused from now on."),
        _ => None,
    };
    answer(draw_account(&api, &page, message, None).await)
}

/// Ends the person's other sessions (a browser left signed in elsewhere), keeping this one.
pub async fn end_others(State(api): State<Shared>, posted: PostedAny<super::session::Nothing>) -> Response {
    let PostedAny { page, .. } = posted;
    answer(
        async {
            let hash = auth::hash(&page.session_id);
            let Some((user, _, _)) = api.store.session(&hash).await? else {
                return Err(Failure::new(StatusCode::UNAUTHORIZED, "The session has ended: sign in again."));
            };
            let n = api.store.delete_sessions_except(&user, &hash).await?;
            Ok(Redirect::to(&format!("/account?ended={n}")).into_response())
        }
        .await,
    )
}

#[derive(Template)]
#[template(path = "second_factor.html")]
struct SecondFactorPage {
    chrome: Chrome,
    message: Option<Message>,
    enrolled: bool,
    required: bool,
    recovery_left: usize,
    secret: String,
    url: String,
    qr_svg: String,
    /// Recovery codes, right after enrolment only.
    codes: Vec<String>,
}

/// The otpauth URL as a QR code in SVG: dark modules as one path, with the quiet zone.
fn qr_svg(text: &str) -> String {
    let Ok(code) = qrcode::QrCode::new(text.as_bytes()) else { return String::new() };
    let w = code.width();
    let colors = code.to_colors();
    let mut d = String::new();
    for (i, c) in colors.iter().enumerate() {
        if *c == qrcode::Color::Dark {
            d.push_str(&format!("M{} {}h1v1h-1z", i % w + 4, i / w + 4));
        }
    }
    let size = w + 8;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" role=\"img\" \
         aria-label=\"QR code to scan with an authenticator app\" shape-rendering=\"crispEdges\"><rect \
         width=\"{size}\" height=\"{size}\" fill=\"#fff\"/><path d=\"{d}\" fill=\"#000\"/></svg>"
    )
}

/// The caller's own user record (a session's person).
async fn me(api: &Shared, page: &Page) -> Result<store::UserRecord, Failure> {
    let name = page
        .caller
        .user
        .clone()
        .ok_or_else(|| Failure::new(StatusCode::BAD_REQUEST, "A token has no account page."))?;
    api.store
        .user(&name)
        .await?
        .ok_or_else(|| Failure::new(StatusCode::UNAUTHORIZED, "The user is gone: sign in again."))
}

async fn draw_second_factor(
    api: &Shared,
    page: &Page,
    message: Option<Message>,
    codes: Vec<String>,
) -> Result<Response, Failure> {
    let user = me(api, page).await?;
    let enrolled = second_factor::enrolled(&api.store, &user).await?;
    let required = second_factor::required(&api.store).await?;
    let (secret, url) = if enrolled || !codes.is_empty() {
        (String::new(), String::new())
    } else {
        let e = second_factor::begin(&api.store, &api.key, &user).await?;
        // Grouped by four, as people type it.
        let grouped = e
            .secret
            .expose()
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).to_string())
            .collect::<Vec<_>>()
            .join(" ");
        (grouped, e.url.expose().to_string())
    };
    let p = SecondFactorPage {
        chrome: page.chrome("account"),
        message,
        enrolled,
        required,
        recovery_left: second_factor::recovery_left(&api.store, &user).await?,
        qr_svg: if url.is_empty() { String::new() } else { qr_svg(&url) },
        secret,
        url,
        codes,
    };
    let mut r = render(&p);
    // The key and the recovery codes are secrets: never kept by a cache.
    r.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    Ok(r)
}

pub async fn second_factor_page(State(api): State<Shared>, page: super::AnyPage) -> Response {
    answer(draw_second_factor(&api, &page.0, None, vec![]).await)
}

#[derive(Deserialize)]
pub struct CodeForm {
    code: String,
    password: String,
}

/// Turns the second factor on with a code from the app: the recovery codes are shown once.
pub async fn enrol(State(api): State<Shared>, posted: PostedAny<CodeForm>) -> Response {
    let PostedAny { page, form } = posted;
    answer(
        async {
            let user = me(&api, &page).await?;
            // A borrowed session alone cannot tie the account to someone else's phone.
            if !users::verify_password(&Secret::new(form.password), &user.password_hash) {
                return draw_second_factor(
                    &api,
                    &page,
                    Message::bad("Not turned on: that is not your password."),
                    vec![],
                )
                .await;
            }
            match second_factor::confirm(&api.store, &api.key, &user, &form.code, page.actor()).await {
                Ok(codes) => {
                    let m = Message::ok("The second factor is on: every sign-in asks for your app's code.");
                    draw_second_factor(&api, &page, m, codes).await
                }
                Err(e) => draw_second_factor(&api, &page, Message::bad(format!("Not turned on: {e}")), vec![]).await,
            }
        }
        .await,
    )
}

#[derive(Deserialize)]
pub struct PasswordOnly {
    password: String,
}

/// Removes one's own second factor, with one's password (not while one is required).
pub async fn remove_second_factor(State(api): State<Shared>, posted: Posted<PasswordOnly>) -> Response {
    let Posted { page, form } = posted;
    answer(
        async {
            let user = me(&api, &page).await?;
            if second_factor::required(&api.store).await? {
                let m = Message::bad("A second factor is required here: an admin resets a lost one.");
                return draw_second_factor(&api, &page, m, vec![]).await;
            }
            if !users::verify_password(&Secret::new(form.password), &user.password_hash) {
                return draw_second_factor(&api, &page, Message::bad("That is not your password."), vec![]).await;
            }
            second_factor::remove(&api.store, &user.name, page.actor()).await?;
            Ok(Redirect::to("/account?said=second-factor-removed").into_response())
        }
        .await,
    )
}

#[derive(Deserialize)]
pub struct RequiredForm {
    required: Option<String>,
}

/// Requires a second factor of every local account, or no longer (Admin).
pub async fn set_second_factor_required(State(api): State<Shared>, posted: Posted<RequiredForm>) -> Response {
    let Posted { page, form } = posted;
    answer(
        async {
            page.need(Role::Admin)?;
            let on = form.required.is_some();
            second_factor::set_required(&api.store, on, page.actor()).await?;
            Ok(Redirect::to(&format!("/settings?said={}", if on { "2fa-required" } else { "2fa-optional" }))
                .into_response())
        }
        .await,
    )
}
