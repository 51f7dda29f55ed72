//! The connection pages, as the monday.com connection form is: Connection Name with its
//! default, Instance URL shown normalised as it is typed, the access token never shown again;
//! the test step by step with the fix for a failure; pause and resume, rotate, remove.

use super::{answer, render, segment, when, Chrome, Failure, Message, Page, Posted};
use crate::api::Shared;
use crate::users::Role;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use service::connections::{self as conn, Checked, StepResult};
use store::Secret;

pub struct Row {
    pub name: String,
    pub path: String,
    pub paused: bool,
    pub url: String,
    pub hint: String,
    pub added: String,
}

#[derive(Template)]
#[template(path = "connections.html")]
struct List {
    chrome: Chrome,
    rows: Vec<Row>,
    can_admin: bool,
}

pub async fn list(State(api): State<Shared>, page: Page) -> Response {
    answer(
        async {
            page.need(Role::Viewer)?;
            let rows = api
                .store
                .connections()
                .await?
                .into_iter()
                .map(|c| Row {
                    path: segment(&c.name),
                    paused: c.paused.is_some(),
                    url: c.base_url,
                    hint: c.token_hint,
                    added: when(&c.created_at),
                    name: c.name,
                })
                .collect();
            Ok(render(&List { chrome: page.chrome("connections"), rows, can_admin: page.may(Role::Admin) }))
        }
        .await,
    )
}

/// The test's result as a fragment (what htmx swaps in), or nothing yet.
#[derive(Template)]
#[template(path = "steps.html")]
struct Steps {
    checked: Option<Checked>,
}

#[derive(Template)]
#[template(path = "connection_new.html")]
struct NewPage {
    chrome: Chrome,
    message: Option<Message>,
    name: String,
    url: String,
    normalised: String,
    checked: Option<Checked>,
    failed_test: bool,
}

pub async fn new_page(State(api): State<Shared>, page: Page) -> Response {
    answer(
        async {
            page.need(Role::Admin)?;
            let name = api.store.next_connection_name().await?;
            Ok(render(&NewPage {
                chrome: page.chrome("connections"),
                message: None,
                name,
                url: String::new(),
                normalised: String::new(),
                checked: None,
                failed_test: false,
            }))
        }
        .await,
    )
}

#[derive(Deserialize)]
pub struct UrlForm {
    #[serde(default)]
    url: String,
}

/// What an Instance URL will be saved as, said as it is typed.
fn normalised_line(url: &str) -> String {
    if url.trim().is_empty() {
        return String::new();
    }
    match conn::normalise(url, false, false) {
        Ok((u, d)) => format!("Will be saved as {u} ({d} dialect)."),
        Err(e) => format!("Not an Instance URL yet: {e}."),
    }
}

pub async fn normalise(posted: Posted<UrlForm>) -> Response {
    let Posted { page, form } = posted;
    answer(
        async {
            page.need(Role::Admin)?;
            // Text only: htmx puts it in the hint below the field.
            let line = normalised_line(&form.url);
            let mut r = axum::response::Html(escape(&line)).into_response();
            r.headers_mut().insert("cache-control", axum::http::HeaderValue::from_static("no-store"));
            Ok(r)
        }
        .await,
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

#[derive(Deserialize)]
pub struct NewForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    token: String,
    save_untested: Option<String>,
}

/// Test connection on the new-connection form: nothing is saved.
pub async fn test_unsaved(posted: Posted<NewForm>) -> Response {
    let Posted { page, form } = posted;
    answer(
        async {
            page.need(Role::Admin)?;
            let checked = if form.token.trim().is_empty() {
                None
            } else {
                Some(conn::check(&form.url, &Secret::new(form.token.trim()), false, false, None).await)
            };
            if checked.is_none() {
                return Ok(render(&Steps {
                    checked: Some(Checked {
                        url: None,
                        dialect: None,
                        steps: vec![conn::Step {
                            name: conn::STEPS[2],
                            result: StepResult::Failed,
                            detail: "no access token was given".into(),
                            fix: Some("paste the token generated in monday.com (Admin > Security > SCIM)".into()),
                        }],
                    }),
                }));
            }
            Ok(render(&Steps { checked }))
        }
        .await,
    )
}

/// Saves a new connection after its test; a failed test needs the explicit choice to save.
pub async fn create(State(api): State<Shared>, posted: Posted<NewForm>) -> Response {
    let Posted { page, form } = posted;
    answer(
        async {
            page.need(Role::Admin)?;
            let again = |message: Option<Message>, checked: Option<Checked>, failed_test: bool| {
                let status = if failed_test { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::BAD_REQUEST };
                let p = NewPage {
                    chrome: page.chrome("connections"),
                    message,
                    name: form.name.clone(),
                    normalised: normalised_line(&form.url),
                    url: form.url.clone(),
                    checked,
                    failed_test,
                };
                (status, render(&p)).into_response()
            };
            if form.token.trim().is_empty() {
                return Ok(again(Message::bad("Paste the access token: it is needed to save."), None, false));
            }
            if let Err(e) = conn::normalise(&form.url, false, false) {
                return Ok(again(Message::bad(format!("The Instance URL: {e}.")), None, false));
            }
            let token = Secret::new(form.token.trim());
            let checked = conn::check(&form.url, &token, false, false, None).await;
            let untested = form.save_untested.as_deref() == Some("yes");
            if !checked.passed() && !untested {
                let m = "The test failed, so nothing was saved. Fix what the failed step says, or tick \"Save \
                         although the test failed\" and enter the token again.";
                return Ok(again(Message::bad(m), Some(checked), true));
            }
            let req = conn::AddRequest {
                name: Some(form.name.clone()),
                url: form.url.clone(),
                token,
                insecure_http: false,
                allow_private: false,
                // Tested just above (or saved on purpose though it failed).
                skip_test: true,
                rate_limit: None,
                // The sandbox is recognised by the test and speaks as monday.com does.
                dialect: checked.dialect,
            };
            match conn::add(&api.store, &api.key, req, page.actor()).await {
                Ok((rec, _)) => {
                    let said = if checked.passed() { "saved" } else { "saved-untested" };
                    Ok(Redirect::to(&format!("/connections/{}?said={said}", segment(&rec.name))).into_response())
                }
                Err(e) => Ok(again(Message::bad(super::session::capitalised(&e.to_string())), Some(checked), false)),
            }
        }
        .await,
    )
}

/// A connection as its page shows it.
pub struct View {
    pub name: String,
    pub path: String,
    pub paused: bool,
    pub paused_line: Option<String>,
    pub url: String,
    pub dialect: String,
    pub hint: String,
    pub permissions: &'static str,
    pub added: String,
    pub changed: String,
}

#[derive(Template)]
#[template(path = "connection.html")]
struct ConnectionPage {
    chrome: Chrome,
    message: Option<Message>,
    c: View,
    checked: Option<Checked>,
    can_admin: bool,
    can_test: bool,
    can_plan: bool,
    consequences: String,
}

#[derive(Deserialize)]
pub struct Said {
    said: Option<String>,
}

async fn view(api: &Shared, name: &str) -> Result<View, Failure> {
    let c = api
        .store
        .connection(name)
        .await?
        .ok_or_else(|| Failure::new(StatusCode::NOT_FOUND, format!("There is no connection named \"{name}\".")))?;
    Ok(View {
        path: segment(&c.name),
        paused: c.paused.is_some(),
        paused_line: c
            .paused
            .as_ref()
            .map(|(at, by)| format!("Paused {} by {by}: scheduled runs pass it by until it is resumed.", when(at))),
        url: c.base_url.clone(),
        dialect: c.dialect.clone(),
        hint: c.token_hint.clone(),
        permissions: conn::permissions(&c.dialect),
        added: when(&c.created_at),
        changed: when(&c.updated_at),
        name: c.name,
    })
}

async fn connection_page(
    api: &Shared,
    page: &Page,
    name: &str,
    message: Option<Message>,
    checked: Option<Checked>,
) -> Result<ConnectionPage, Failure> {
    let c = view(api, name).await?;
    let links = conn::links(&api.store, name).await?;
    Ok(ConnectionPage {
        chrome: page.chrome("connections"),
        message,
        c,
        checked,
        can_admin: page.may(Role::Admin),
        can_test: page.may(Role::Editor),
        can_plan: page.may(Role::Editor) || page.may(Role::Reviewer),
        consequences: conn::removal_consequences(links),
    })
}

pub async fn page(State(api): State<Shared>, page: Page, Path(name): Path<String>, Query(q): Query<Said>) -> Response {
    answer(
        async {
            page.need(Role::Viewer)?;
            let message = match q.said.as_deref() {
                Some("saved") => Message::ok(
                    "Saved. The test passed; the token is sealed and only its last four characters are shown.",
                ),
                Some("saved-untested") => Some(Message {
                    tone: "warn",
                    text:
                        "Saved although its test failed: runs will fail until the connection works. Test it again here."
                            .into(),
                }),
                Some("paused") => Message::ok("Paused: scheduled runs pass it by."),
                Some("resumed") => Message::ok("Resumed: the next scheduled run includes it."),
                Some("rotated") => Message::ok("The new token worked and replaced the old one."),
                _ => None,
            };
            Ok(render(&connection_page(&api, &page, &name, message, None).await?))
        }
        .await,
    )
}

#[derive(Deserialize)]
pub struct Empty {}

/// Test connection on a saved connection, with its sealed token.
pub async fn test(State(api): State<Shared>, Path(name): Path<String>, posted: Posted<Empty>) -> Response {
    let page = posted.page;
    answer(
        async {
            page.need(Role::Editor)?;
            let checked = conn::check_stored(&api.store, &api.key, &name).await?;
            Ok(render(&Steps { checked: Some(checked) }))
        }
        .await,
    )
}

pub async fn pause(State(api): State<Shared>, Path(name): Path<String>, posted: Posted<Empty>) -> Response {
    let page = posted.page;
    answer(
        async {
            page.need(Role::Admin)?;
            conn::pause(&api.store, &name, page.actor()).await?;
            Ok(Redirect::to(&format!("/connections/{}?said=paused", segment(&name))).into_response())
        }
        .await,
    )
}

pub async fn resume(State(api): State<Shared>, Path(name): Path<String>, posted: Posted<Empty>) -> Response {
    let page = posted.page;
    answer(
        async {
            page.need(Role::Admin)?;
            conn::resume(&api.store, &name, page.actor()).await?;
            api.wake.notify_one();
            Ok(Redirect::to(&format!("/connections/{}?said=resumed", segment(&name))).into_response())
        }
        .await,
    )
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    token: String,
}

pub async fn rotate(State(api): State<Shared>, Path(name): Path<String>, posted: Posted<TokenForm>) -> Response {
    let Posted { page, form } = posted;
    answer(
        async {
            page.need(Role::Admin)?;
            if form.token.trim().is_empty() {
                let p = connection_page(&api, &page, &name, Message::bad("Paste the new token first."), None).await?;
                return Ok((StatusCode::BAD_REQUEST, render(&p)).into_response());
            }
            let token = Secret::new(form.token.trim());
            match conn::rotate(&api.store, &api.key, &name, &token, page.actor()).await {
                Ok(_) => Ok(Redirect::to(&format!("/connections/{}?said=rotated", segment(&name))).into_response()),
                Err(e) => {
                    // The new token's own test, step by step, says why.
                    let c = api.store.connection(&name).await?;
                    let checked = match c {
                        Some(c) => Some(conn::check(&c.base_url, &token, c.insecure_http, c.allow_private, None).await),
                        None => None,
                    };
                    let m = Message::bad(super::session::capitalised(&e.to_string()));
                    let p = connection_page(&api, &page, &name, m, checked).await?;
                    Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&p)).into_response())
                }
            }
        }
        .await,
    )
}

#[derive(Template)]
#[template(path = "connection_remove.html")]
struct RemovePage {
    chrome: Chrome,
    message: Option<Message>,
    name: String,
    path: String,
    consequences: String,
}

async fn remove_page_of(
    api: &Shared,
    page: &Page,
    name: &str,
    message: Option<Message>,
) -> Result<RemovePage, Failure> {
    let c = view(api, name).await?;
    let links = conn::links(&api.store, name).await?;
    Ok(RemovePage {
        chrome: page.chrome("connections"),
        message,
        name: c.name,
        path: c.path,
        consequences: conn::removal_consequences(links),
    })
}

pub async fn remove_page(State(api): State<Shared>, page: Page, Path(name): Path<String>) -> Response {
    answer(
        async {
            page.need(Role::Admin)?;
            Ok(render(&remove_page_of(&api, &page, &name, None).await?))
        }
        .await,
    )
}

#[derive(Deserialize)]
pub struct RemoveForm {
    #[serde(default)]
    confirm: String,
}

pub async fn remove(State(api): State<Shared>, Path(name): Path<String>, posted: Posted<RemoveForm>) -> Response {
    let Posted { page, form } = posted;
    answer(
        async {
            page.need(Role::Admin)?;
            if form.confirm.trim() != name {
                let m = Message::bad(format!("Type the name exactly, \"{name}\", to remove the connection."));
                let p = remove_page_of(&api, &page, &name, m).await?;
                return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&p)).into_response());
            }
            conn::remove(&api.store, &name, page.actor(), Some(&form.confirm)).await?;
            Ok(Redirect::to("/connections").into_response())
        }
        .await,
    )
}
