//! Reviews: the queue of supervised workers' actions waiting for a reviewer, filtered by
//! stage, connection, age and proposer, each saying why it exists (the HR event behind it, a
//! termination told apart from a leave of absence) and who set it in motion; approved or
//! rejected one or many at a time with a note, the four-eyes rule explained when it refuses;
//! and the decided ones with who, when and the note. All of it is `service::reviews`.

use super::{answer, moment, render, segment, timed, Chrome, Failure, Message, Page, Posted};
use crate::api::Shared;
use crate::users::Role;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use service::reviews::{self, QueueFilter};

/// Reviews on one page.
const PAGE: usize = 100;

pub struct Row {
    pub id: i64,
    pub worker: String,
    pub worker_path: String,
    pub name: String,
    pub connection: String,
    pub stage: String,
    pub why: String,
    pub when: Option<(String, String)>,
    pub hr_status: String,
    pub actions: Vec<String>,
    pub by: String,
    pub requested: (String, String),
    pub waiting: String,
    pub overdue: bool,
    pub decision: String,
    pub decided_by: String,
    pub decided_at: Option<(String, String)>,
    pub note: String,
}

#[derive(Template)]
#[template(path = "reviews.html")]
struct ReviewsPage {
    chrome: Chrome,
    message: Option<Message>,
    decided: bool,
    rows: Vec<Row>,
    total: usize,
    overdue: usize,
    shown_line: String,
    stage: String,
    connection: String,
    connections: Vec<String>,
    proposer: String,
    older: String,
    previous: Option<String>,
    next: Option<String>,
    can_decide: bool,
    waiting_link: String,
    decided_link: String,
}

#[derive(Deserialize, Default)]
pub struct ReviewsQuery {
    decided: Option<String>,
    stage: Option<String>,
    connection: Option<String>,
    proposer: Option<String>,
    older: Option<String>,
    page: Option<usize>,
    said: Option<String>,
    n: Option<usize>,
    mine: Option<String>,
}

fn span(hours: i64) -> String {
    match hours {
        h if h < 1 => "under an hour".into(),
        h if h < 48 => format!("{h} h"),
        h => format!("{} d", h / 24),
    }
}

/// Why a review exists, in a sentence: the HR event behind it and its moment.
fn why(q: &reviews::Queued) -> (String, Option<(String, String)>) {
    let Some(b) = &q.behind else {
        let text = match q.review.stage.as_str() {
            "leave" | "termination" => "Out of scope: no role gives this worker an account any more",
            "leave_of_absence" => "A leave of absence",
            "team_change" => "A change of teams",
            "hire" => "A new account",
            "rehire" => "A returning worker",
            _ => "A change to the account",
        };
        return (text.to_string(), None);
    };
    let text = match (b.kind.as_str(), &b.leave) {
        ("termination", _) => "Termination".to_string(),
        ("leave_start", Some(k)) => format!("Leave of absence ({k})"),
        ("leave_start", None) => "Leave of absence".to_string(),
        ("missing_from_full_load", _) => "Missing from the last full HR file".to_string(),
        ("hire", _) => "Hire".to_string(),
        ("rehire", _) => "Rehire".to_string(),
        ("leave_return", _) => "Back from leave".to_string(),
        _ => "HR change".to_string(),
    };
    (text, Some((b.effective.to_string(), moment(b.effective))))
}

fn actions_of(json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    v.as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let kind = a["kind"].as_str().unwrap_or_default().replace('_', " ");
            let on = a["team"].as_str().or(a["user_name"].as_str()).unwrap_or_default();
            let changes: Vec<String> = a["changes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    let s = |x: &serde_json::Value| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string());
                    format!("{}: {} → {}", s(&c["attribute"]), s(&c["before"]), s(&c["after"]))
                })
                .collect();
            let mut line = if on.is_empty() { kind } else { format!("{kind} {on}") };
            if !changes.is_empty() {
                line += &format!(" ({})", changes.join("; "));
            }
            line
        })
        .collect()
}

fn link(q: &ReviewsQuery, decided: bool, page: usize) -> String {
    let mut pairs: Vec<(&str, String)> = vec![];
    if decided {
        pairs.push(("decided", "1".into()));
    }
    for (k, v) in [("stage", &q.stage), ("connection", &q.connection), ("proposer", &q.proposer), ("older", &q.older)] {
        if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
            pairs.push((k, v.clone()));
        }
    }
    if page > 1 {
        pairs.push(("page", page.to_string()));
    }
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    if query.is_empty() {
        "/reviews".into()
    } else {
        format!("/reviews?{query}")
    }
}

pub async fn page(State(api): State<Shared>, page: Page, Query(q): Query<ReviewsQuery>) -> Response {
    answer(
        async {
            page.need(Role::Viewer)?;
            let decided = q.decided.as_deref().is_some_and(|d| !d.is_empty() && d != "0");
            let older = match q.older.as_deref().map(str::trim).filter(|o| !o.is_empty()) {
                None => None,
                Some(o) => Some(o.parse::<i64>().ok().filter(|h| *h >= 0).ok_or_else(|| {
                    Failure::new(StatusCode::BAD_REQUEST, format!("\"{o}\" is not a number of hours"))
                })?),
            };
            let f = QueueFilter {
                decided,
                connection: q.connection.clone().filter(|c| !c.is_empty()),
                stage: q.stage.clone().filter(|s| !s.is_empty()),
                proposer: q.proposer.clone().filter(|p| !p.is_empty()),
                older_than_hours: older,
            };
            let rules = service::config::current_if_any(&api.store).await?;
            let all = reviews::queue(&api.store, rules.as_ref(), &f, jiff::Timestamp::now()).await?;
            let total = all.len();
            let overdue = all.iter().filter(|r| r.overdue).count();
            let n = q.page.unwrap_or(1).max(1);
            let first = (n - 1) * PAGE;
            let rows: Vec<Row> = all
                .iter()
                .skip(first)
                .take(PAGE)
                .map(|r| {
                    let (why, when) = why(r);
                    let v = &r.review;
                    // The person behind the run, or what started it (the scheduler, the command line).
                    let started = v.proposed_by.as_ref().or(v.started_by.as_ref());
                    let by: Vec<String> = [("started the run", &started.cloned()), ("uploaded the HR data", &v.uploaded_by)]
                        .iter()
                        .filter_map(|(what, who)| who.as_ref().map(|w| format!("{w} ({what})")))
                        .collect();
                    Row {
                        id: v.id,
                        worker_path: segment(&v.worker_id),
                        worker: v.worker_id.clone(),
                        name: r.name.clone(),
                        connection: v.connection.clone(),
                        stage: v.stage.clone(),
                        why,
                        when,
                        hr_status: r.hr_status.clone(),
                        actions: actions_of(&v.actions),
                        by: if by.is_empty() { "the schedule".into() } else { by.join("; ") },
                        requested: timed(&v.requested_at),
                        waiting: span(r.waiting_hours),
                        overdue: r.overdue,
                        decision: match v.state {
                            store::ReviewState::Applied => "approved, carried out".into(),
                            store::ReviewState::Superseded => "decided, then superseded by other actions".into(),
                            s => s.as_str().to_string(),
                        },
                        decided_by: v.decided_by.clone().unwrap_or_default(),
                        decided_at: v.decided_at.as_deref().map(timed),
                        note: v.note.clone().unwrap_or_default(),
                    }
                })
                .collect();
            let shown_line = if total > PAGE {
                format!("{}–{} of {total}", first + 1, first + rows.len())
            } else {
                String::new()
            };
            let message = match q.said.as_deref() {
                Some(s @ ("approved" | "rejected")) => {
                    let n = q.n.unwrap_or_default();
                    let mine = q.mine.clone().unwrap_or_default();
                    let mine: Vec<String> = mine.split(',').filter(|m| !m.is_empty()).map(|m| format!("#{m}")).collect();
                    let mut text = format!("{n} review(s) {s}.");
                    if !mine.is_empty() {
                        text += &format!(
                            " Not decided: {} — you set {} in motion (you started the run that opened {}, or uploaded the HR \
                             data {} acts on), and four eyes are needed: another reviewer must decide {}.",
                            mine.join(", "),
                            if mine.len() == 1 { "it" } else { "them" },
                            if mine.len() == 1 { "it" } else { "them" },
                            if mine.len() == 1 { "it" } else { "each" },
                            if mine.len() == 1 { "it" } else { "them" },
                        );
                    }
                    if n == 0 {
                        Message::bad(text)
                    } else if mine.is_empty() {
                        Message::ok(text)
                    } else {
                        Some(Message { tone: "warn", text })
                    }
                }
                Some("none") => Message::bad("Nothing was decided: select at least one review first."),
                _ => None,
            };
            let connections = api.store.connections().await?.into_iter().map(|c| c.name).collect();
            Ok(render(&ReviewsPage {
                chrome: page.chrome("reviews"),
                message,
                decided,
                rows,
                total,
                overdue,
                shown_line,
                stage: f.stage.clone().unwrap_or_default(),
                connection: f.connection.clone().unwrap_or_default(),
                connections,
                proposer: f.proposer.clone().unwrap_or_default(),
                older: older.map(|o| o.to_string()).unwrap_or_default(),
                previous: (n > 1).then(|| link(&q, decided, n - 1)),
                next: (first + PAGE < total).then(|| link(&q, decided, n + 1)),
                can_decide: page.may(Role::Reviewer),
                waiting_link: link(&q, false, 1),
                decided_link: link(&q, true, 1),
            }))
        }
        .await,
    )
}

/// The decision form as sent: `id` once per review ticked, `decision` (approve or reject), a
/// `note`, and `back`, the queue's address with its filters.
pub async fn decide(State(api): State<Shared>, posted: Posted<Vec<(String, String)>>) -> Response {
    let Posted { page, form } = posted;
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    answer(
        async {
            page.need(Role::Reviewer)?;
            let mut ids = vec![];
            for (_, v) in form.iter().filter(|(k, _)| k == "id") {
                ids.push(v.parse::<i64>().map_err(|_| {
                    Failure::new(StatusCode::BAD_REQUEST, format!("\"{v}\" is not the number of a review"))
                })?);
            }
            let approve = match field("decision").as_deref() {
                Some("approve") => true,
                Some("reject") => false,
                _ => return Err(Failure::new(StatusCode::BAD_REQUEST, "Say whether to approve or reject.")),
            };
            let back = field("back").filter(|b| b.starts_with("/reviews")).unwrap_or_else(|| "/reviews".into());
            let sep = if back.contains('?') { '&' } else { '?' };
            if ids.is_empty() {
                return Ok(Redirect::to(&format!("{back}{sep}said=none")).into_response());
            }
            let note = field("note");
            let note = note.as_deref().map(str::trim).filter(|n| !n.is_empty());
            let d =
                reviews::decide_with(&api.store, &ids, None, approve, page.actor(), Some(&page.caller.person), note)
                    .await?;
            if approve && !d.decided.is_empty() {
                api.wake.notify_one();
            }
            let mine: Vec<String> = d.refused.iter().map(|(id, _)| id.to_string()).collect();
            let verb = if approve { "approved" } else { "rejected" };
            Ok(Redirect::to(&format!("{back}{sep}said={verb}&n={}&mine={}", d.decided.len(), mine.join(",")))
                .into_response())
        }
        .await,
    )
}
