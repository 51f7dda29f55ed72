//! The audit, as an auditor reads it: records filtered by worker, connection, actor, kind,
//! action and time, newest first and paged with their total; the chain verified on request
//! (its result and its head); and exactly the filter's records exported as CSV or NDJSON.
//! Dead letters too: each worker set aside with its last error and the target's answer,
//! retried one at a time or all at once. Everything is `service::audit` and
//! `service::reviews`, as the API's routes are.

use super::{answer, render, segment, timed, Chrome, Failure, Message, Page, Posted};
use crate::api::Shared;
use crate::users::Role;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use service::audit;

/// Records on one page.
const PAGE: usize = 100;

#[derive(Deserialize, Default, Clone)]
pub struct AuditQuery {
    worker: Option<String>,
    connection: Option<String>,
    actor: Option<String>,
    kind: Option<String>,
    action: Option<String>,
    /// A day (YYYY-MM-DD, UTC) or an RFC 3339 moment.
    since: Option<String>,
    until: Option<String>,
    page: Option<usize>,
    verify: Option<String>,
}

fn some(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string)
}

/// A moment from the form: a day (its start, or its end for `until`) in UTC, or RFC 3339.
fn moment_of(v: &Option<String>, end: bool, what: &str) -> Result<Option<jiff::Timestamp>, Failure> {
    let Some(v) = some(v) else { return Ok(None) };
    if let Ok(t) = v.parse::<jiff::Timestamp>() {
        return Ok(Some(t));
    }
    let day: jiff::civil::Date = v.parse().map_err(|_| {
        Failure::new(StatusCode::BAD_REQUEST, format!("{what} \"{v}\" is not a day (2026-12-01) or a moment"))
    })?;
    let start =
        day.to_zoned(jiff::tz::TimeZone::UTC).map_err(|e| Failure::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let t = start.timestamp();
    Ok(Some(if end { t + jiff::SignedDuration::from_secs(86_400) - jiff::SignedDuration::from_nanos(1) } else { t }))
}

fn filter_of(q: &AuditQuery) -> Result<audit::Filter, Failure> {
    let kind = some(&q.kind);
    if let Some(k) = kind.as_deref().filter(|k| !matches!(*k, "decision" | "action")) {
        return Err(Failure::new(StatusCode::BAD_REQUEST, format!("kind \"{k}\": decision or action")));
    }
    Ok(audit::Filter {
        since: moment_of(&q.since, false, "From")?,
        until: moment_of(&q.until, true, "To")?,
        run: None,
        worker: some(&q.worker),
        connection: some(&q.connection),
        actor: some(&q.actor),
        action: some(&q.action),
        kind,
    })
}

/// The query of a filter, for links that keep it (paging, export, verify).
fn query_of(q: &AuditQuery) -> String {
    let pairs: Vec<(&str, String)> = [
        ("worker", &q.worker),
        ("connection", &q.connection),
        ("actor", &q.actor),
        ("kind", &q.kind),
        ("action", &q.action),
        ("since", &q.since),
        ("until", &q.until),
    ]
    .into_iter()
    .filter_map(|(k, v)| some(v).map(|v| (k, v)))
    .collect();
    serde_urlencoded::to_string(&pairs).unwrap_or_default()
}

fn with(query: &str, more: &str) -> String {
    match (query.is_empty(), more.is_empty()) {
        (true, true) => String::new(),
        (true, false) => format!("?{more}"),
        (false, true) => format!("?{query}"),
        (false, false) => format!("?{query}&{more}"),
    }
}

pub struct Row {
    pub seq: i64,
    pub at: (String, String),
    pub kind: &'static str,
    pub action: String,
    pub worker: String,
    pub worker_path: String,
    pub connection: String,
    pub outcome: String,
    pub actor: String,
    pub said: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Chrome,
    message: Option<Message>,
    rows: Vec<Row>,
    total: usize,
    shown_line: String,
    q: AuditQueryView,
    connections: Vec<String>,
    query: String,
    previous: Option<String>,
    next: Option<String>,
}

/// The filter as the form shows it.
pub struct AuditQueryView {
    pub worker: String,
    pub connection: String,
    pub actor: String,
    pub kind: String,
    pub action: String,
    pub since: String,
    pub until: String,
}

pub async fn page(State(api): State<Shared>, page: Page, Query(q): Query<AuditQuery>) -> Response {
    answer(
        async {
            page.need(Role::Viewer)?;
            let f = filter_of(&q)?;
            let n = q.page.unwrap_or(1).max(1);
            let first = (n - 1) * PAGE;
            let (total, records) = audit::page(&api.store, &f, PAGE, first).await?;
            let rows: Vec<Row> = records
                .iter()
                .map(|r| {
                    let d = audit::detail(r);
                    let said = ["reason", "note", "error", "why"]
                        .iter()
                        .filter_map(|k| d[*k].as_str().map(|v| format!("{k}: {v}")))
                        .collect::<Vec<_>>()
                        .join("; ");
                    Row {
                        seq: r.seq,
                        at: timed(&r.at),
                        kind: if audit::DECISIONS.contains(&r.entry.action.as_str()) { "decision" } else { "action" },
                        action: r.entry.action.replace('_', " "),
                        worker_path: segment(&r.entry.worker_id),
                        worker: r.entry.worker_id.clone(),
                        connection: r.entry.connection.clone(),
                        outcome: r.entry.outcome.clone(),
                        actor: d["actor"].as_str().unwrap_or_default().to_string(),
                        said,
                    }
                })
                .collect();
            let query = query_of(&q);
            let message = if q.verify.is_some() {
                let v = audit::verify(&api.store).await?;
                Some(match (&v.broken, &v.head) {
                    (None, Some((seq, hash))) => Message {
                        tone: "ok",
                        text: format!(
                            "The chain is intact: all {} records follow one another and match their hashes. Its head is \
                             record #{seq}, hash {hash}.",
                            v.records
                        ),
                    },
                    (None, None) => Message { tone: "ok", text: "The audit holds no record yet.".into() },
                    (Some((seq, why)), _) => Message {
                        tone: "bad",
                        text: format!(
                            "The chain is broken at record #{seq}: {why}. The records from there on cannot be trusted; \
                             restore the store from a backup and keep this one for inquiry."
                        ),
                    },
                })
            } else {
                None
            };
            let shown_line = if total > PAGE {
                format!("{}–{} shown, newest first", first + 1, first + rows.len())
            } else {
                "newest first".to_string()
            };
            let connections = api.store.connections().await?.into_iter().map(|c| c.name).collect();
            let page_link = |p: usize| format!("/audit{}", with(&query, &format!("page={p}")));
            Ok(render(&AuditPage {
                chrome: page.chrome("audit"),
                message,
                rows,
                total,
                shown_line,
                q: AuditQueryView {
                    worker: some(&q.worker).unwrap_or_default(),
                    connection: some(&q.connection).unwrap_or_default(),
                    actor: some(&q.actor).unwrap_or_default(),
                    kind: some(&q.kind).unwrap_or_default(),
                    action: some(&q.action).unwrap_or_default(),
                    since: some(&q.since).unwrap_or_default(),
                    until: some(&q.until).unwrap_or_default(),
                },
                connections,
                previous: (n > 1).then(|| page_link(n - 1)),
                next: (first + PAGE < total).then(|| page_link(n + 1)),
                query,
            }))
        }
        .await,
    )
}

async fn export(api: &Shared, page: &Page, q: &AuditQuery, ndjson: bool) -> Result<Response, Failure> {
    page.need(Role::Viewer)?;
    let records = audit::select(&api.store, &filter_of(q)?).await?;
    let (body, kind, name) = if ndjson {
        (audit::to_ndjson(&records).into_bytes(), "application/x-ndjson", "audit.ndjson")
    } else {
        (audit::to_csv(&records)?, "text/csv; charset=utf-8", "audit.csv")
    };
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    let disposition = format!("attachment; filename=\"{name}\"");
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).expect("ascii"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

pub async fn csv(State(api): State<Shared>, page: Page, Query(q): Query<AuditQuery>) -> Response {
    answer(export(&api, &page, &q, false).await)
}

pub async fn ndjson(State(api): State<Shared>, page: Page, Query(q): Query<AuditQuery>) -> Response {
    answer(export(&api, &page, &q, true).await)
}

pub struct Letter {
    pub connection: String,
    pub worker: String,
    pub worker_path: String,
    pub attempts: i64,
    pub first: (String, String),
    pub last: (String, String),
    pub error: String,
    pub actions: String,
}

#[derive(Template)]
#[template(path = "dead_letters.html")]
struct LettersPage {
    chrome: Chrome,
    message: Option<Message>,
    letters: Vec<Letter>,
    can_retry: bool,
}

#[derive(Deserialize, Default)]
pub struct LettersQuery {
    retried: Option<usize>,
}

pub async fn dead_letters(State(api): State<Shared>, page: Page, Query(q): Query<LettersQuery>) -> Response {
    answer(
        async {
            page.need(Role::Viewer)?;
            let letters = api
                .store
                .dead_letters(None)
                .await?
                .into_iter()
                .filter(|d| d.state == store::LetterState::Dead)
                .map(|d| {
                    let actions: serde_json::Value = serde_json::from_str(&d.actions).unwrap_or_default();
                    let kinds: Vec<String> = actions
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|a| a["kind"].as_str().unwrap_or_default().replace('_', " "))
                        .collect();
                    Letter {
                        worker_path: segment(&d.worker_id),
                        worker: d.worker_id,
                        connection: d.connection,
                        attempts: d.attempts,
                        first: timed(&d.first_at),
                        last: timed(&d.last_at),
                        error: d.last_error,
                        actions: kinds.join(", "),
                    }
                })
                .collect();
            let message = q.retried.map(|n| match n {
                0 => {
                    Message { tone: "warn", text: "Nothing was set to be tried again: it was retried already.".into() }
                }
                n => Message {
                    tone: "ok",
                    text: format!("{n} worker(s) will be tried again by the next run of their connection."),
                },
            });
            Ok(render(&LettersPage {
                chrome: page.chrome("runs"),
                message,
                letters,
                can_retry: page.may(Role::Reviewer),
            }))
        }
        .await,
    )
}

#[derive(Deserialize)]
pub struct RetryForm {
    /// One worker (with its connection); none: every dead letter.
    worker: Option<String>,
    connection: Option<String>,
}

pub async fn retry(State(api): State<Shared>, posted: Posted<RetryForm>) -> Response {
    let Posted { page, form } = posted;
    answer(
        async {
            page.need(Role::Reviewer)?;
            let workers: Vec<String> = form.worker.into_iter().filter(|w| !w.is_empty()).collect();
            let connection = form.connection.filter(|c| !c.is_empty());
            let n = service::reviews::retry_with(&api.store, connection.as_deref(), &workers, page.actor()).await?;
            api.wake.notify_one();
            Ok(Redirect::to(&format!("/dead-letters?retried={n}")).into_response())
        }
        .await,
    )
}
