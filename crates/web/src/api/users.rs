//! Platform users and API tokens (Admin only): the same use cases as `tenure user` and
//! `tenure token`.

use super::auth::Caller;
use super::Shared;
use crate::problem::{Body, Problem};
use crate::users::{self, Role};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use store::Secret;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

fn role(s: &str) -> Result<Role, Problem> {
    Role::parse(s).map_err(|e| Problem::bad_request("invalid-body", e))
}

/// Every platform user (never a password hash).
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, body = Vec<Object>), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json")))]
async fn list(State(api): State<Shared>, c: Caller) -> Result<Json<Vec<Value>>, Problem> {
    c.need(Role::Admin)?;
    Ok(Json(api.store.users().await?.iter().map(users::user_view).collect()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
    /// admin, editor, reviewer or viewer.
    pub role: String,
    /// At least 12 characters; without it, a one-time password is made and answered once.
    pub password: Option<String>,
}

/// Add a user; without a password, a one-time one is answered once (to change at first login).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = Object), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn add(State(api): State<Shared>, c: Caller, Body(n): Body<NewUser>) -> Result<Response, Problem> {
    c.need(Role::Admin)?;
    let r = role(&n.role)?;
    let (p, once) = match n.password {
        Some(p) => (Secret::new(p), false),
        None => (users::one_time_password(), true),
    };
    let u = users::add_audited(&api.store, &n.name, r, &p, once, &c.actor).await?;
    let mut v = users::user_view(&u);
    if once {
        v["one_time_password"] = Value::from(p.expose());
    }
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    /// A new role.
    pub role: Option<String>,
    /// Disable (ends their sessions) or enable.
    pub disabled: Option<bool>,
}

/// Change a user's role, or disable or enable them.
#[utoipa::path(patch, path = "/api/v1/users/{name}", tag = "users", request_body = UserChange,
    params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn change(
    State(api): State<Shared>,
    c: Caller,
    Path(name): Path<String>,
    Body(ch): Body<UserChange>,
) -> Result<Json<Value>, Problem> {
    c.need(Role::Admin)?;
    let r = ch.role.as_deref().map(role).transpose()?;
    let u = users::change_user(&api.store, &name, r, ch.disabled, c.user.as_deref(), &c.actor).await?;
    Ok(Json(users::user_view(&u)))
}

/// A new one-time password for a user (answered once): their sessions end.
#[utoipa::path(post, path = "/api/v1/users/{name}/password-reset", tag = "users", params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn reset(State(api): State<Shared>, c: Caller, Path(name): Path<String>) -> Result<Json<Value>, Problem> {
    c.need(Role::Admin)?;
    let (u, p) = users::reset_one_time(&api.store, &name, &c.actor).await?;
    Ok(Json(serde_json::json!({"name": u.name, "one_time_password": p.expose()})))
}

/// Every API token, with its last use (never its secret).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, body = Vec<Object>), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json")))]
async fn tokens(State(api): State<Shared>, c: Caller) -> Result<Json<Vec<Value>>, Problem> {
    c.need(Role::Admin)?;
    Ok(Json(api.store.tokens().await?.iter().map(users::token_view).collect()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What it is for.
    pub name: String,
    pub role: String,
    /// The one connection it may act on.
    pub connection: Option<String>,
    /// `90d`, `12h`, `30m`, or an RFC 3339 moment.
    pub expires: Option<String>,
    /// Only reading routes (GET), whatever its role.
    #[serde(default)]
    pub read_only: bool,
}

/// Create an API token: its secret is answered once, and stored only as a hash. An Admin
/// makes tokens of any role; anyone else signed in makes their own (their role, or viewer), to
/// act as themselves from a script or the command line (`--server`).
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, body = Object), (status = 400, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn create_token(State(api): State<Shared>, c: Caller, Body(t): Body<NewToken>) -> Result<Response, Problem> {
    if c.need(Role::Admin).is_err() {
        let asked = role(&t.role)?;
        if c.user.is_none() || c.token.is_some() {
            return Err(Problem::forbidden("forbidden", "a token of one's own is made signed in, not with a token"));
        }
        if asked != c.role && asked != Role::Viewer {
            return Err(Problem::forbidden(
                "forbidden",
                format!("a {} makes tokens of their own role or viewer, not {}", c.role.as_str(), asked.as_str()),
            ));
        }
    }
    if c.token.is_some() && c.user.is_none() {
        // It would make a second identity for the same operator and let one approve what
        // the other proposed: make tokens at the command line, or as a platform user.
        return Err(Problem::forbidden(
            "forbidden",
            "a token made at the command line for no user cannot make tokens: make them with `tenure token create`, \
             or as a platform user",
        ));
    }
    let r = role(&t.role)?;
    let now = jiff::Timestamp::now();
    let expires = t.expires.as_deref().map(|e| users::parse_expiry(e, now)).transpose()?;
    // The token acts for the person who made it (a token's token, for that token's maker).
    let made = users::create_token_audited(
        &api.store,
        users::TokenSpec {
            connection: t.connection,
            expires,
            read_only: t.read_only,
            maker: c.user.clone(),
            ..users::TokenSpec::new(&t.name, r)
        },
        &c.actor,
    )
    .await?;
    let mut v = users::token_view(&made.record);
    v["token"] = Value::from(made.secret.expose());
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// End every session of a user (a lost laptop, a person who left): they sign in again.
/// Audited.
#[utoipa::path(delete, path = "/api/v1/users/{name}/sessions", tag = "users", params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn end_sessions(State(api): State<Shared>, c: Caller, Path(name): Path<String>) -> Result<Json<Value>, Problem> {
    c.need(Role::Admin)?;
    let n = users::end_sessions(&api.store, &name, &c.actor).await?;
    Ok(Json(serde_json::json!({"user": name, "ended": n})))
}

/// Revoke an API token: it is refused from now on.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
async fn revoke(State(api): State<Shared>, c: Caller, Path(id): Path<String>) -> Result<StatusCode, Problem> {
    c.need(Role::Admin)?;
    users::revoke_token(&api.store, &id, &c.actor).await.map_err(Problem::not_found)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientSecret {
    /// The client secret tenure has at the identity provider of `[auth.oidc]`.
    pub secret: String,
}

/// Set the client secret of `[auth.oidc]`: sealed in the store, bound to the issuer and
/// client id in force, sent to that issuer only (Admin).
#[utoipa::path(put, path = "/api/v1/auth/oidc-secret", tag = "users", request_body = ClientSecret,
    responses((status = 200, body = Object), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
async fn oidc_secret(
    State(api): State<Shared>,
    c: Caller,
    Body(b): Body<ClientSecret>,
) -> Result<Json<Value>, Problem> {
    c.need(Role::Admin)?;
    c.global()?;
    let secret = Secret::new(b.secret.trim().to_string());
    let Some(oidc) = crate::config::auth_settings(&api.store).await?.oidc else {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "no-identity-provider",
            "no [auth.oidc] in the configuration in force: save it first (the secret is bound to its issuer)",
        ));
    };
    service::oidc::save_client_secret(&api.store, &api.key, &oidc, &secret, &c.actor).await?;
    Ok(Json(serde_json::json!({"issuer": oidc.issuer, "client_id": oidc.client_id, "ends_in": secret.hint()})))
}

pub fn routes() -> OpenApiRouter<Shared> {
    OpenApiRouter::new()
        .routes(routes!(list, add))
        .routes(routes!(change))
        .routes(routes!(reset))
        .routes(routes!(tokens, create_token))
        .routes(routes!(revoke))
        .routes(routes!(end_sessions))
        .routes(routes!(oidc_secret))
}
