//! The dashboard: one card per connection with how it stands, from the status the API serves
//! (one shared read for everyone asking together); a run in progress followed live.

use super::{answer, render, segment, when, Chrome, Failure, Message, Page, Posted};
use crate::api::Shared;
use crate::users::Role;
use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

/// A finished run's five counts, as Hire2Retire's reconcile view shows them.
pub struct Counts {
    pub total: String,
    pub skipped: String,
    pub no_change: String,
    pub processed: String,
    pub failed: String,
}

pub struct Card {
    pub name: String,
    pub path: String,
    pub configured: bool,
    pub paused: bool,
    pub running: bool,
    /// The running run's id, for its live progress.
    pub live: Option<String>,
    pub last_run: String,
    pub last_ok: String,
    pub next_run: String,
    pub counts: Option<Counts>,
    pub pending_reviews: i64,
    pub dead_letters: i64,
    pub held: i64,
    pub guard: Option<String>,
    pub guard_kind: super::plan::GuardKind,
    /// The number to confirm the guard with, and the session's CSRF token, when this person
    /// may confirm it (Reviewer, Admin).
    pub confirm: Option<(i64, String)>,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    chrome: Chrome,
    message: Option<Message>,
    cards: Vec<Card>,
    hr_line: String,
    can_admin: bool,
    /// The audit chain's head as it stands, and whether it is behind the head last written.
    audit_line: String,
    audit_behind: bool,
    /// A restored store whose scheduled runs wait: what to say.
    restored: Option<String>,
    /// The nodes working on the store, and what each holds.
    nodes_line: String,
}

/// The cards alone: what the dashboard's refresh (htmx) swaps in.
#[derive(Template)]
#[template(path = "cards.html")]
struct Cards {
    cards: Vec<Card>,
}

#[derive(Deserialize)]
pub struct DashboardQuery {
    said: Option<String>,
}

fn count(n: Option<i64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_else(|| "–".into())
}

pub async fn page(
    State(api): State<Shared>,
    page: Page,
    headers: axum::http::HeaderMap,
    Query(q): Query<DashboardQuery>,
) -> Response {
    match build(&api, &page, q, super::from_htmx(&headers)).await {
        Ok(r) => r,
        Err(f) => f.into_response(),
    }
}

async fn build(api: &Shared, page: &Page, q: DashboardQuery, fragment: bool) -> Result<Response, Failure> {
    page.need(Role::Viewer)?;
    let st = api.status.read(&api.store, Some(&api.runs), Some(api.interval)).await?;
    let cards: Vec<Card> = st
        .connections
        .iter()
        .map(|s| {
            let run_line = |r: &Option<service::status::RunSeen>| match r {
                Some(r) => when(r.finished_at.as_deref().unwrap_or(&r.started_at)),
                None => "none yet".to_string(),
            };
            let next_run = match (&s.paused, s.next_run, s.running) {
                (Some(_), _, _) => "none: paused".to_string(),
                (None, _, true) => "after this one".to_string(),
                (None, Some(t), false) => super::moment(t),
                (None, None, false) if api.interval.is_zero() => "none: no schedule (--interval 0)".to_string(),
                (None, None, false) => "at the scheduler's next turn".to_string(),
            };
            Card {
                path: segment(&s.connection),
                name: s.connection.clone(),
                configured: s.enabled,
                paused: s.paused.is_some(),
                running: s.running,
                live: s.running_id.clone(),
                last_run: run_line(&s.last_run),
                last_ok: run_line(&s.last_successful_run),
                next_run,
                counts: s.last_run.as_ref().map(|r| Counts {
                    total: count(r.counts.total),
                    skipped: count(r.counts.skipped),
                    no_change: count(r.counts.no_change),
                    processed: count(r.counts.processed),
                    failed: count(r.counts.failed),
                }),
                pending_reviews: s.pending_reviews,
                dead_letters: s.dead_letters,
                held: s.held,
                guard_kind: s.guard.as_ref().map_or(super::plan::GuardKind::Deprovision, |g| g.guard.into()),
                confirm: s
                    .guard
                    .as_ref()
                    .filter(|_| page.may(Role::Reviewer))
                    .map(|g| (g.deactivations, page.chrome("").csrf)),
                guard: s.guard.as_ref().map(|g| {
                    format!(
                        "{}. A Reviewer or Admin confirms with the number {} (on {}, by {}).",
                        g.why.trim_end_matches('.'),
                        g.deactivations,
                        when(&g.tripped_at),
                        g.by
                    )
                }),
            }
        })
        .collect();
    if fragment {
        return Ok(render(&Cards { cards }));
    }
    let hr_line = match &st.last_received {
        Some(l) if l.outcome != "accepted" => format!(
            "HR data last received {} ({}): refused, nothing taken: {}",
            when(&l.loaded_at),
            l.source,
            l.reason.as_deref().unwrap_or("no reason kept")
        ),
        Some(l) => format!(
            "HR data last received {} ({}, {} rows, {} taken, {} quarantined).",
            when(&l.loaded_at),
            l.source,
            l.rows,
            l.accepted,
            l.quarantined
        ),
        None => "No HR data received yet.".to_string(),
    };
    let message = match q.said.as_deref() {
        Some("password") => Message::ok("Your new password is set."),
        Some("restore-confirmed") => Message::ok("The restored store is confirmed: scheduled runs start again."),
        _ => None,
    };
    let a = &st.audit;
    // The hash's first 16 characters: enough to compare by eye on a phone; the audit page has it whole.
    let short = |h: &str| format!("{}…", h.chars().take(16).collect::<String>());
    let audit_line = match (&a.head, &a.known, a.behind) {
        (_, Some((seq, hash)), true) => format!(
            "The audit chain is BEHIND its head: record #{seq} (hash {}) was written, and the chain now ends at \
             #{}. Records were cut off, or an old copy of the store was put back: run an audit check.",
            short(hash),
            a.head.as_ref().map_or(0, |(s, _)| *s)
        ),
        (Some((seq, hash)), _, _) => format!("Audit head: record #{seq}, hash {}", short(hash)),
        (None, _, _) => "The audit holds no record yet.".to_string(),
    };
    let restored = st.restored.as_ref().map(|r| {
        format!(
            "This store was restored {} from the backup of {}. Scheduled runs wait until a person has looked at \
             the plan and confirms.",
            when(r["restored_at"].as_str().unwrap_or("")),
            when(r["taken_at"].as_str().unwrap_or(""))
        )
    });
    let nodes_line = match st.nodes.as_slice() {
        [] => "No node runs the schedule: start `tenure serve`.".to_string(),
        nodes => {
            let each: Vec<String> = nodes
                .iter()
                .map(|n| {
                    let holds: Vec<&str> = n.holds.iter().map(|l| l.connection.as_str()).collect();
                    // A node with no schedule (--interval 0) owns nothing: say why.
                    let owns = match n.node.scheduling {
                        true => format!("owns {}", n.owns.len()),
                        false => "no scheduled runs".to_string(),
                    };
                    format!(
                        "{} (pid {}, {owns}{}{})",
                        n.node.host,
                        n.node.pid,
                        if holds.is_empty() { String::new() } else { format!(", working {}", holds.join(", ")) },
                        if n.node.stopping { ", stopping" } else { "" }
                    )
                })
                .collect();
            format!("{} node(s): {}", nodes.len(), each.join("; "))
        }
    };
    Ok(render(&Dashboard {
        nodes_line,
        chrome: page.chrome("dashboard"),
        message,
        cards,
        hr_line,
        can_admin: page.may(Role::Admin),
        audit_line,
        audit_behind: a.behind,
        restored,
    }))
}

#[derive(Deserialize)]
pub struct Nothing {}

/// An Admin confirms a restored store: its scheduled runs may start.
pub async fn confirm_restore(State(api): State<Shared>, posted: Posted<Nothing>) -> Response {
    let page = posted.page;
    answer(
        async {
            page.need(Role::Admin)?;
            service::backup::confirm_restore(&api.store, page.actor()).await?;
            api.wake.notify_one();
            Ok(Redirect::to("/?said=restore-confirmed").into_response())
        }
        .await,
    )
}
