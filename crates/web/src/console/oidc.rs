//! Sign-in through the company's identity provider, as pages: the button's leg out to the
//! provider and the callback's leg back, over `service::oidc`.

use super::{render, Chrome, Failure};
use crate::api::auth;
use crate::api::Shared;
use askama::Template;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use service::oidc::{self, Callback};

/// The cookie that carries a sign-in's sealed state to the callback, and only there.
const FLOW_COOKIE: &str = "tenure_oidc";
/// The throttle's account for refused answers from the provider (a name no user can have).
const THROTTLED: &str = "\u{0}identity provider";

#[derive(Template)]
#[template(path = "sign_in_refused.html")]
struct RefusedPage {
    chrome: Chrome,
    provider: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "signed_in.html")]
struct SignedInPage {
    chrome: Chrome,
    next: String,
}

#[derive(Deserialize)]
pub struct Begin {
    next: Option<String>,
}

/// The flow cookie: sent back to the callback alone, on the provider's top-level redirect
/// (Lax), never readable by the page.
fn flow_cookie(api: &Shared, value: &str, max_age: i64) -> HeaderValue {
    let secure = if api.tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{FLOW_COOKIE}={value}; Path=/sign-in/oidc; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .expect("a sealed value is hex")
}

/// tenure's callback URL: as configured, else this console's own address as the browser
/// reached it (the provider accepts only the URL registered with it, so a forged Host header
/// gets nowhere).
fn redirect_url(api: &Shared, s: &rules::OidcSettings, scheme: &str, headers: &HeaderMap) -> Option<String> {
    if let Some(r) = &s.redirect_url {
        return Some(r.trim().to_string());
    }
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let plain = |c: char| c.is_ascii_alphanumeric() || "-.:[]".contains(c);
    (!host.is_empty() && host.chars().all(plain)).then(|| {
        let scheme = if api.tls { "https" } else { scheme };
        format!("{scheme}://{host}/sign-in/oidc/callback")
    })
}

async fn settings(api: &Shared) -> Result<rules::OidcSettings, Response> {
    match service::config::auth_settings(&api.store).await {
        Ok(a) => a.oidc.ok_or_else(|| {
            Failure::new(StatusCode::NOT_FOUND, "Sign-in through an identity provider is not set up here.")
                .into_response()
        }),
        Err(e) => Err(Failure::from(crate::problem::Problem::from(e)).into_response()),
    }
}

/// "Sign in with <provider>": off to the provider, with the flow sealed in a cookie.
pub async fn begin(
    State(api): State<Shared>,
    ConnectInfo(crate::serve::Peer(peer)): ConnectInfo<crate::serve::Peer>,
    headers: HeaderMap,
    Query(q): Query<Begin>,
) -> Response {
    let s = match settings(&api).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (_, scheme) = auth::client_of(&api, peer, &headers);
    let Some(redirect) = redirect_url(&api, &s, scheme, &headers) else {
        return Failure::new(StatusCode::BAD_REQUEST, "The request names no host: set auth.oidc.redirect_url.")
            .into_response();
    };
    let next = super::session::safe_next(q.next.as_deref());
    match oidc::begin(&api.store, &api.key, &s, &redirect, &next).await {
        Ok(b) => {
            let mut r = Redirect::to(&b.authorize_url).into_response();
            r.headers_mut().insert(header::SET_COOKIE, flow_cookie(&api, &b.cookie, oidc::FLOW_MS / 1000));
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => unavailable(&s.name, &e),
    }
}

/// The provider could not be reached or used: said plainly to a person not signed in, the
/// details (addresses, files, the store's errors) in the log for the admin.
fn unavailable(provider: &str, e: &service::error::Error) -> Response {
    let reference = crate::users::random_hex(4);
    tracing::warn!(reference, provider, "sign-in through the identity provider failed: {e}");
    refused(
        provider,
        StatusCode::BAD_GATEWAY,
        format!(
            "tenure could not complete the sign-in with {provider}: the provider could not be reached, or its answer \
             could not be used. The details are in tenure's log under the reference {reference}."
        ),
    )
}

fn refused(provider: &str, status: StatusCode, reason: String) -> Response {
    let page = RefusedPage { chrome: Chrome::anonymous(), provider: provider.to_string(), reason };
    (status, render(&page)).into_response()
}

/// The provider's answer: the person signed in (a new session), or the refusal and its reason.
pub async fn callback(
    State(api): State<Shared>,
    ConnectInfo(crate::serve::Peer(peer)): ConnectInfo<crate::serve::Peer>,
    headers: HeaderMap,
    Query(back): Query<Callback>,
) -> Response {
    let s = match settings(&api).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let origin = auth::Origin::of(&api, peer, &headers);
    // Refusals count per address like failed passwords (under a name no user can have): a
    // flood of made-up answers is slowed, and fills neither the audit nor the provider's logs.
    let now = jiff::Timestamp::now().as_millisecond();
    if let Err(wait) = api.throttle.attempt(&api.store, THROTTLED, origin.address, now).await {
        let s_wait = (wait as u64).div_ceil(1000);
        let mut r = refused(
            &s.name,
            StatusCode::TOO_MANY_REQUESTS,
            format!("Too many refused sign-ins from your address: try again in {s_wait} s."),
        );
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s_wait));
        return r;
    }
    let cookie = auth::cookie_value(&headers, FLOW_COOKIE);
    let done = match oidc::finish(&api.store, &api.key, &s, cookie.as_deref(), &back, &origin.address.to_string()).await
    {
        Ok(d) => d,
        Err(e) => {
            let mut r = unavailable(&s.name, &e);
            r.headers_mut().insert(header::SET_COOKIE, flow_cookie(&api, "", 0));
            return r;
        }
    };
    let mut r = match done {
        Err(refusal) => {
            let status = match refusal {
                oidc::Refusal::Stale | oidc::Refusal::OtherBrowser => StatusCode::BAD_REQUEST,
                _ => StatusCode::FORBIDDEN,
            };
            refused(&s.name, status, super::session::capitalised(&refusal.to_string()))
        }
        Ok(signed) => {
            api.throttle.succeeded(&api.store, THROTTLED, origin.address).await;
            auth::signed_in(&api, &signed.user, origin.address).await;
            match auth::new_session(&api, &signed.user, &origin).await {
                // A page of ours moves on, not a redirect: the session cookie is SameSite=Strict
                // and a navigation that began at the provider would not carry it.
                Ok((_, cookie)) => {
                    let mut r = render(&SignedInPage { chrome: Chrome::anonymous(), next: signed.next });
                    r.headers_mut().append(header::SET_COOKIE, cookie);
                    r
                }
                Err(p) => Failure::from(p).into_response(),
            }
        }
    };
    r.headers_mut().append(header::SET_COOKIE, flow_cookie(&api, "", 0));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
