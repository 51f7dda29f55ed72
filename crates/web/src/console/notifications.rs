//! Notifications: the configured notifiers with where they send and which events, and "Send a
//! test" with its result in place: the service's `notify::send_test`, as the API's route is.

use super::{answer, render, Chrome, Failure, Message, Page, Posted};
use crate::api::Shared;
use crate::users::Role;
use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use rules::notify::NoticeKind;
use serde::Deserialize;

pub struct Notifier {
    pub name: String,
    pub path: String,
    pub how: &'static str,
    pub to: String,
    pub events: String,
    pub connections: String,
    pub max_per_run: usize,
    /// The end of its secret, when one is set.
    pub secret: Option<String>,
}

#[derive(Template)]
#[template(path = "notifications.html")]
struct NotificationsPage {
    chrome: Chrome,
    message: Option<Message>,
    tested: String,
    notifiers: Vec<Notifier>,
    kinds: Vec<&'static str>,
    can_test: bool,
    can_set: bool,
    configured: bool,
}

async fn draw(api: &Shared, page: &Page, message: Option<Message>, tested: &str) -> Result<Response, Failure> {
    page.need(Role::Viewer)?;
    let rules = service::config::current_if_any(&api.store).await?;
    let mut notifiers = vec![];
    for n in rules.as_ref().map(|r| r.config.notify.as_slice()).unwrap_or_default() {
        // A secret sealed for another address reads as none: it would not be sent there.
        let secret = service::notify::secret_hint(&api.store, &api.key, n).await.ok().flatten();
        notifiers.push(Notifier {
            secret,
            path: super::segment(&n.name),
            name: n.name.clone(),
            how: if n.webhook.is_some() { "webhook" } else { "e-mail" },
            // Where it sends, never a secret: the webhook's origin, or the relay and the
            // addresses mailed.
            to: match (&n.webhook, &n.email) {
                (Some(_), _) => service::notify::destination(n),
                (None, Some(e)) => format!("{} via {}", e.to.join(", "), service::notify::destination(n)),
                (None, None) => String::new(),
            },
            events: if n.on.is_empty() {
                "every event".into()
            } else {
                n.on.iter().map(|k| k.as_str().replace('_', " ")).collect::<Vec<_>>().join(", ")
            },
            connections: if n.connections.is_empty() { "every connection".into() } else { n.connections.join(", ") },
            max_per_run: n.max_per_run,
        });
    }
    Ok(render(&NotificationsPage {
        chrome: page.chrome("notifications"),
        message,
        tested: tested.to_string(),
        notifiers,
        kinds: NoticeKind::ALL.iter().map(|k| k.as_str()).collect(),
        can_test: page.may(Role::Editor),
        can_set: page.may(Role::Admin),
        configured: rules.is_some(),
    }))
}

pub async fn page(State(api): State<Shared>, page: Page) -> Response {
    answer(draw(&api, &page, None, "").await)
}

#[derive(Deserialize)]
pub struct TestForm {
    event: Option<String>,
}

/// Sends a test notice and draws the page again with what came of it.
pub async fn test(State(api): State<Shared>, Path(name): Path<String>, posted: Posted<TestForm>) -> Response {
    let Posted { page, form } = posted;
    answer(
        async {
            page.need(Role::Editor)?;
            let event = form.event.filter(|e| !e.is_empty());
            let said = service::notify::send_test(&api.store, &api.key, &name, event.as_deref()).await?;
            let message = match said {
                Ok(what) => Message { tone: "ok", text: format!("Delivered: {what}.") },
                Err(why) => Message { tone: "bad", text: format!("Not delivered through {name:?}: {why}") },
            };
            draw(&api, &page, Some(message), &name).await
        }
        .await,
    )
}

#[derive(Deserialize)]
pub struct SecretForm {
    /// An SMTP password, or a webhook's secret of one's own; empty: a new one is made.
    secret: Option<String>,
}

/// Sets a notifier's secret (Admin): a new signing secret is made and shown once, or the one
/// given is kept; either is sealed and bound to the notifier's address.
pub async fn set_secret(State(api): State<Shared>, Path(name): Path<String>, posted: Posted<SecretForm>) -> Response {
    let Posted { page, form } = posted;
    answer(
        async {
            page.need(Role::Admin)?;
            let given = form.secret.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
            let (secret, made) = match given {
                Some(s) => (store::Secret::new(s), false),
                None => (service::secrets::generate_secret(), true),
            };
            service::notify::set_secret(&api.store, &api.key, &name, &secret).await?;
            let text = if made {
                format!(
                    "A new signing secret is set. Give it to the webhook's receiver now; it is not shown again: {}",
                    secret.expose()
                )
            } else {
                format!("The secret is set (ending in {}).", secret.hint())
            };
            draw(&api, &page, Some(Message { tone: "ok", text }), &name).await
        }
        .await,
    )
}
