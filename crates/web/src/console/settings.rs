//! Settings (Admin): platform users (added with a role, role changed, disabled and enabled, a
//! one-time password made and shown once) and API tokens (made with a role, a connection and
//! an expiry and shown once; listed with their last use; revoked, refused from the next
//! request on). And each person's own account: their password and their sessions. The use
//! cases are `service::users`, as the API's routes are.

use super::{answer, render, timed, Chrome, Failure, Message, Page, Posted, PostedAny};
use crate::api::{auth, Shared};
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
}

const ROLES: [(&str, &str); 4] =
    [("viewer", "Viewer"), ("reviewer", "Reviewer"), ("editor", "Editor"), ("admin", "Admin")];

async fn draw(api: &Shared, page: &Page, message: Option<Message>, once: Option<Once>) -> Result<Response, Failure> {
    page.need(Role::Admin)?;
    let me = page.caller.user.clone().unwrap_or_default();
    let users = api
        .store
        .users()
        .await?
        .into_iter()
        .map(|u| UserRow {
            path: super::segment(&u.name),
            me: u.name.eq_ignore_ascii_case(&me),
            role: u.role.clone(),
            disabled: u.disabled,
            must_change: u.must_change,
            created: timed(&u.created_at),
            name: u.name,
        })
        .collect();
    let now = jiff::Timestamp::now();
    let mut tokens: Vec<TokenRow> = api
        .store
        .tokens()
        .await?
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
    let connections = api.store.connections().await?.into_iter().map(|c| c.name).collect();
    Ok(render(&SettingsPage {
        chrome: page.chrome("settings"),
        message,
        once,
        users,
        tokens,
        connections,
        roles: ROLES.to_vec(),
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
}

fn moment_ms(ms: i64) -> (String, String) {
    let t = jiff::Timestamp::from_millisecond(ms).unwrap_or_default();
    (t.to_string(), super::moment(t))
}

async fn draw_account(api: &Shared, page: &Page, message: Option<Message>) -> Result<Response, Failure> {
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
    Ok(render(&AccountPage {
        chrome: page.chrome("account"),
        message,
        name: page.caller.user.clone().unwrap_or_default(),
        role: super::role_name(page.caller.role),
        sessions,
    }))
}

#[derive(Deserialize, Default)]
pub struct AccountQuery {
    ended: Option<u64>,
}

pub async fn account(State(api): State<Shared>, page: Page, Query(q): Query<AccountQuery>) -> Response {
    let message = q.ended.map(|n| Message { tone: "ok", text: format!("{n} other session(s) ended.") });
    answer(draw_account(&api, &page, message).await)
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
