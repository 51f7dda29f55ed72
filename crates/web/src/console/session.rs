//! Signing in and out, and the password change a one-time password forces: the API's own
//! sign-in (throttle, audit) and session, answered as pages.

use super::{render, AnyPage, Chrome, Failure, Message, PostedAny};
use crate::api::auth;
use crate::api::Shared;
use askama::Template;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use store::Secret;

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    chrome: Chrome,
    message: Option<Message>,
    user: String,
    next: String,
    /// Password sign-in is kept for break-glass accounts.
    break_glass_only: bool,
    /// The identity provider people sign in with, by name, when one is set up.
    provider: Option<String>,
}

#[derive(Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
    /// `out`: the person has just signed out; `ended`: the session ended.
    said: Option<String>,
}

/// Where to go after signing in: a path of this console only (never another site).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        // Browsers drop tabs and line breaks from a URL: "/\t/evil.example" would be "//evil.example".
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(|c| c.is_control() || c.is_whitespace())
                && !n.starts_with("/sign-") =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

pub async fn sign_in_page(State(api): State<Shared>, headers: HeaderMap, Query(q): Query<SignInQuery>) -> Response {
    // Signed in already: straight on.
    if let Some(id) = auth::session_id(&headers) {
        if auth::session_caller(&api, &id).await.is_ok() {
            return Redirect::to(&safe_next(q.next.as_deref())).into_response();
        }
    }
    let auth = crate::config::auth_settings(&api.store).await.ok();
    let message = match q.said.as_deref() {
        Some("out") => Message::ok("You have signed out."),
        Some("password") => Message::ok("Your new password is set: sign in with it."),
        _ => None,
    };
    render(&SignInPage {
        chrome: Chrome::anonymous(),
        message,
        user: String::new(),
        next: safe_next(q.next.as_deref()),
        break_glass_only: auth.as_ref().is_some_and(|a| !a.password_sign_in),
        provider: auth.and_then(|a| a.oidc).map(|o| o.name),
    })
}

#[derive(Template)]
#[template(path = "sign_in_code.html")]
struct CodePage {
    chrome: Chrome,
    message: Option<Message>,
    next: String,
}

/// The second step of a sign-in: the page that asks for the code.
pub async fn code_page(Query(q): Query<SignInQuery>) -> Response {
    render(&CodePage { chrome: Chrome::anonymous(), message: None, next: safe_next(q.next.as_deref()) })
}

#[derive(Deserialize)]
pub struct CodeForm {
    code: String,
    next: Option<String>,
}

/// The code of a sign-in whose password was right: a session replaces the waiting one.
pub async fn code(
    State(api): State<Shared>,
    ConnectInfo(crate::serve::Peer(peer)): ConnectInfo<crate::serve::Peer>,
    headers: HeaderMap,
    axum::extract::Form(f): axum::extract::Form<CodeForm>,
) -> Response {
    let (address, scheme) = auth::client_of(&api, peer, &headers);
    let next = safe_next(f.next.as_deref());
    let again = |status: StatusCode, text: String| {
        let page = CodePage { chrome: Chrome::anonymous(), message: Message::bad(text), next: next.clone() };
        (status, render(&page)).into_response()
    };
    if !auth::same_origin(&headers, scheme) {
        return again(StatusCode::FORBIDDEN, "Give the code on this console's own page.".into());
    }
    let start_over = || Redirect::to("/sign-in?said=ended").into_response();
    let Some(id) = auth::session_id(&headers) else { return start_over() };
    let waiting = auth::session_hash(&id);
    let user = match api.store.pending_session(&waiting).await {
        Ok(Some((user_id, created)))
            if jiff::Timestamp::now().as_millisecond() - created <= auth::SECOND_FACTOR_WAIT_MS =>
        {
            // As any session: void once the password changed or the user was disabled.
            let changed = |u: &store::UserRecord| {
                u.credentials_at.parse::<jiff::Timestamp>().map_or(true, |c| created < c.as_millisecond())
            };
            match api.store.user_by_id(&user_id).await {
                Ok(Some(u)) if !u.disabled && !changed(&u) => u,
                _ => return start_over(),
            }
        }
        Ok(_) => return start_over(),
        Err(e) => return Failure::from(crate::problem::Problem::from(e)).into_response(),
    };
    // The factor may have been removed meanwhile: then the password alone is not enough here.
    if !crate::second_factor::enrolled(&api.store, &user).await.unwrap_or(false) {
        return start_over();
    }
    match auth::check_second_factor(&api, &user, Some(&f.code), address).await {
        Ok(()) => {}
        Err(p) if p.status == 429 => {
            return again(StatusCode::TOO_MANY_REQUESTS, format!("Too many wrong codes: {}.", p.detail))
        }
        Err(p) if p.status == 401 => {
            return again(
                StatusCode::UNAUTHORIZED,
                "That code is not right, or was used already: try the next one.".into(),
            )
        }
        Err(p) => return Failure::from(p).into_response(),
    }
    auth::signed_in(&api, &user, address).await;
    let _ = api.store.delete_session(&waiting).await;
    let origin = auth::Origin::of(&api, peer, &headers);
    let (_, cookie) = match auth::new_session(&api, &user, &origin).await {
        Ok(s) => s,
        Err(p) => return Failure::from(p).into_response(),
    };
    let to = if user.must_change { "/password".to_string() } else { next };
    let mut r = Redirect::to(&to).into_response();
    r.headers_mut().insert(header::SET_COOKIE, cookie);
    r
}

#[derive(Deserialize)]
pub struct SignInForm {
    user: String,
    password: String,
    next: Option<String>,
}

pub async fn sign_in(
    State(api): State<Shared>,
    ConnectInfo(crate::serve::Peer(peer)): ConnectInfo<crate::serve::Peer>,
    headers: HeaderMap,
    axum::extract::Form(f): axum::extract::Form<SignInForm>,
) -> Response {
    let (address, scheme) = auth::client_of(&api, peer, &headers);
    let auth_settings = crate::config::auth_settings(&api.store).await.ok();
    let again = |status: StatusCode, text: String| {
        let page = SignInPage {
            chrome: Chrome::anonymous(),
            message: Message::bad(text),
            user: f.user.clone(),
            next: safe_next(f.next.as_deref()),
            break_glass_only: auth_settings.as_ref().is_some_and(|a| !a.password_sign_in),
            provider: auth_settings.as_ref().and_then(|a| a.oidc.as_ref()).map(|o| o.name.clone()),
        };
        (status, render(&page)).into_response()
    };
    // A sign-in form posted from another site would sign the browser in as someone else.
    if !auth::same_origin(&headers, scheme) {
        return again(StatusCode::FORBIDDEN, "Sign in from this console's own page.".into());
    }
    let user = match auth::sign_in(&api, &f.user, Secret::new(f.password.clone()), address).await {
        Ok(u) => u,
        Err(p) if p.status == 429 => {
            return again(StatusCode::TOO_MANY_REQUESTS, format!("Too many failed sign-ins: {}.", p.detail));
        }
        Err(p) if p.status == 401 => {
            return again(StatusCode::UNAUTHORIZED, "Wrong user name or password, or the user is disabled.".into());
        }
        Err(p) => return again(StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST), p.detail),
    };
    let origin = auth::Origin::of(&api, peer, &headers);
    // An account with a second factor: the password opens only the page that asks for the code.
    match crate::second_factor::enrolled(&api.store, &user).await {
        Ok(true) => {
            return match auth::pending_session(&api, &user, &origin).await {
                Ok((_, cookie)) => {
                    let to = format!("/sign-in/code?next={}", super::encode(&safe_next(f.next.as_deref())));
                    let mut r = Redirect::to(&to).into_response();
                    r.headers_mut().insert(header::SET_COOKIE, cookie);
                    r
                }
                Err(p) => Failure::from(p).into_response(),
            }
        }
        Ok(false) => {}
        Err(e) => return Failure::from(crate::problem::Problem::from(e)).into_response(),
    }
    auth::signed_in(&api, &user, origin.address).await;
    let (_, cookie) = match auth::new_session(&api, &user, &origin).await {
        Ok(s) => s,
        Err(p) => return Failure::from(p).into_response(),
    };
    let to = if user.must_change { "/password".to_string() } else { safe_next(f.next.as_deref()) };
    let mut r = Redirect::to(&to).into_response();
    r.headers_mut().insert(header::SET_COOKIE, cookie);
    r
}

#[derive(Deserialize)]
pub struct Nothing {}

pub async fn sign_out(State(api): State<Shared>, posted: PostedAny<Nothing>) -> Response {
    if let Some(h) = &posted.page.caller.session {
        if let Err(p) = auth::end_session(&api, h).await {
            return Failure::from(p).into_response();
        }
    }
    let mut r = Redirect::to("/sign-in?said=out").into_response();
    r.headers_mut().insert(header::SET_COOKIE, auth::clear_cookie(&api));
    r
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    chrome: Chrome,
    forced: bool,
    message: Option<Message>,
    min_password: usize,
}

pub async fn password_page(AnyPage(page): AnyPage) -> Response {
    render(&PasswordPage {
        forced: page.caller.must_change,
        chrome: page.chrome(""),
        message: None,
        min_password: crate::users::MIN_PASSWORD,
    })
}

#[derive(Deserialize)]
pub struct PasswordForm {
    current: String,
    new: String,
    again: String,
}

pub async fn change_password(
    State(api): State<Shared>,
    ConnectInfo(crate::serve::Peer(peer)): ConnectInfo<crate::serve::Peer>,
    headers: HeaderMap,
    posted: PostedAny<PasswordForm>,
) -> Response {
    let PostedAny { page, form } = posted;
    let again = |text: String| {
        let p = PasswordPage {
            forced: page.caller.must_change,
            chrome: page.chrome(""),
            message: Message::bad(text),
            min_password: crate::users::MIN_PASSWORD,
        };
        (StatusCode::UNPROCESSABLE_ENTITY, render(&p)).into_response()
    };
    if form.new != form.again {
        return again("The two new passwords differ: type the same one twice.".into());
    }
    let user =
        match auth::change_password_of(&api, &page.caller, &Secret::new(form.current), Secret::new(form.new)).await {
            Ok(u) => u,
            Err(p) => return again(capitalised(&p.detail)),
        };
    // The change ended every session, this one too: a new one, and on to the dashboard.
    match auth::new_session(&api, &user, &auth::Origin::of(&api, peer, &headers)).await {
        Ok((_, cookie)) => {
            let mut r = Redirect::to("/?said=password").into_response();
            r.headers_mut().insert(header::SET_COOKIE, cookie);
            r
        }
        Err(p) => Failure::from(p).into_response(),
    }
}

/// A sentence from a message that starts in lower case.
pub fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => format!("{}{}.", f.to_uppercase(), c.as_str().trim_end_matches('.')),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_console() {
        assert_eq!(safe_next(Some("/connections")), "/connections");
        assert_eq!(safe_next(Some("//evil.example/x")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(Some("/\t/evil.example")), "/");
        assert_eq!(safe_next(Some("/\n/evil.example")), "/");
        assert_eq!(safe_next(Some("/ /evil.example")), "/");
        assert_eq!(safe_next(Some("/sign-out")), "/");
        assert_eq!(safe_next(None), "/");
        assert_eq!(capitalised("the current password is not right"), "The current password is not right.");
    }
}
