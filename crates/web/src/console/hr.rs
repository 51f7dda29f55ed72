//! The HR data pages: upload a file (the API's own intake, header check and quarantine), the
//! history of loads with refused files and why, a load's quarantined rows with their download,
//! and the events waiting for their moment.

use super::{render, when, Chrome, Failure, Message, Page};
use crate::api::Shared;
use crate::users::Role;
use askama::Template;
use axum::extract::{Multipart, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use service::intake::{self, LoadKind, QuarantineLine, Taken};

/// Loads listed at most on the page (newest first): a page stays light after years of pushes.
const LOADS_SHOWN: usize = 100;

/// Events listed at most on the page.
const EVENTS_SHOWN: i64 = 200;

pub struct LoadRow {
    pub id: String,
    pub at: String,
    pub source: String,
    pub kind: String,
    pub accepted_load: bool,
    pub reason: String,
    pub rows: i64,
    pub accepted: i64,
    pub quarantined: i64,
    pub events: i64,
}

impl LoadRow {
    fn of(l: &store::LoadRecord) -> LoadRow {
        LoadRow {
            id: l.id.clone(),
            at: when(&l.loaded_at),
            source: l.source.clone(),
            kind: l.kind.clone(),
            accepted_load: l.outcome == "accepted",
            reason: l.reason.clone().unwrap_or_default(),
            rows: l.rows,
            accepted: l.accepted,
            quarantined: l.quarantined,
            events: l.events,
        }
    }
}

pub struct EventRow {
    pub worker: String,
    pub kind: String,
    pub at: String,
    /// Its moment in the worker's own time zone (HR's `time_zone`), when HR gives one.
    pub local: String,
    /// Its moment has come: the next run acts on it.
    pub due: bool,
}

#[derive(Template)]
#[template(path = "hr.html")]
struct HrPage {
    chrome: Chrome,
    message: Option<Message>,
    can_upload: bool,
    configured: bool,
    loads: Vec<LoadRow>,
    loads_more: bool,
    events: Vec<EventRow>,
    events_more: bool,
}

async fn hr_page(api: &Shared, page: &Page, message: Option<Message>) -> Result<HrPage, Failure> {
    page.need(Role::Viewer)?;
    let loads = api.store.loads().await?;
    let q = store::EventQuery {
        state: Some(store::EventState::Pending),
        worker_id: None,
        due_by: None,
        limit: Some(EVENTS_SHOWN + 1),
    };
    let now = jiff::Timestamp::now().as_second();
    let pending = api.store.events(&q).await?;
    // Each worker's zone, from their HR record (one read for the workers listed).
    let ids: Vec<String> = pending.iter().map(|e| e.worker_id.clone()).collect();
    let zones: std::collections::HashMap<String, String> = api
        .store
        .snapshot_of(&ids)
        .await?
        .into_iter()
        .filter_map(|r| {
            let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
            Some((r.worker_id, v["time_zone"].as_str()?.to_string()))
        })
        .collect();
    let local = |worker: &str, at: i64| -> String {
        let (Some(zone), Ok(t)) = (zones.get(worker), jiff::Timestamp::from_second(at)) else { return String::new() };
        t.in_tz(zone).map(|z| z.strftime("%Y-%m-%d %H:%M %Z (%Q)").to_string()).unwrap_or_default()
    };
    let mut events: Vec<EventRow> = pending
        .iter()
        .map(|e| EventRow {
            local: local(&e.worker_id, e.effective_at),
            worker: e.worker_id.clone(),
            kind: e.kind.replace('_', " "),
            at: jiff::Timestamp::from_second(e.effective_at).map(super::moment).unwrap_or_default(),
            due: e.effective_at <= now,
        })
        .collect();
    let events_more = events.len() as i64 > EVENTS_SHOWN;
    events.truncate(EVENTS_SHOWN as usize);
    Ok(HrPage {
        chrome: page.chrome("hr"),
        message,
        can_upload: page.may(Role::Editor),
        configured: api.store.current_config().await?.is_some(),
        loads_more: loads.len() > LOADS_SHOWN,
        loads: loads.iter().rev().take(LOADS_SHOWN).map(LoadRow::of).collect(),
        events,
        events_more,
    })
}

pub async fn page(State(api): State<Shared>, page: Page) -> Response {
    match hr_page(&api, &page, None).await {
        Ok(p) => render(&p),
        Err(f) => f.into_response(),
    }
}

/// The largest upload, as the API takes it.
pub const UPLOAD_LIMIT: usize = crate::api::MAX_BODY;

/// An upload: the file with its kind, taken as the API takes one; on to the load's page.
pub async fn upload(State(api): State<Shared>, page: Page, req: axum::extract::Request) -> Response {
    let r: Result<Response, Failure> = async {
        // Who may upload is known before 64 MiB are read.
        page.need(Role::Editor)?;
        let headers = req.headers().clone();
        let mut form = <Multipart as axum::extract::FromRequest<()>>::from_request(req, &())
            .await
            .map_err(|e| bad(format!("The upload could not be read: {}", e.body_text())))?;
        let (mut csrf, mut kind, mut confirm, mut file) = (None, LoadKind::Full, None, None);
        while let Some(field) =
            form.next_field().await.map_err(|e| bad(format!("The upload could not be read: {e}")))?
        {
            match field.name().unwrap_or_default() {
                "csrf" => csrf = field.text().await.ok(),
                "kind" => {
                    kind = match field.text().await.unwrap_or_default().as_str() {
                        "delta" => LoadKind::Delta,
                        _ => LoadKind::Full,
                    }
                }
                "confirm_population" => {
                    let t = field.text().await.unwrap_or_default();
                    if !t.trim().is_empty() {
                        confirm = Some(t.trim().parse::<usize>().map_err(|_| {
                            bad(format!("\"{t}\" is not a number of workers: give the file's exact population"))
                        })?);
                    }
                }
                "file" => {
                    let name = field.file_name().map(str::to_string);
                    let json = field.content_type().is_some_and(|c| c.contains("json"))
                        || name.as_deref().is_some_and(|n| n.to_ascii_lowercase().ends_with(".json"));
                    let bytes = field.bytes().await.map_err(|e| bad(format!("The file could not be read: {e}")))?;
                    file = Some((name, json, bytes.to_vec()));
                }
                _ => {}
            }
        }
        // The CSRF token comes in the form (read above), checked before anything is taken.
        page.check_token(&headers, csrf.as_deref())?;
        let Some((name, json, bytes)) = file.filter(|f| !f.2.is_empty()) else {
            let p = hr_page(&api, &page, Message::bad("Choose a file to upload: the one sent was empty.")).await?;
            return Ok((StatusCode::BAD_REQUEST, render(&p)).into_response());
        };
        let u = intake::Upload {
            bytes,
            json,
            kind,
            confirm_population: confirm,
            actor: page.actor().to_string(),
            person: page.caller.person.clone(),
            file_name: name.map(|n| n.replace(['\r', '\n'], " ")),
        };
        let id = match intake::upload(&api.store, &api.data_dir, u).await? {
            Taken::Loaded { outcome, .. } => {
                api.wake.notify_one();
                outcome.load_id
            }
            Taken::Rejected { load_id, .. } => load_id,
        };
        Ok(Redirect::to(&format!("/hr/loads/{}", super::segment(&id))).into_response())
    }
    .await;
    r.unwrap_or_else(IntoResponse::into_response)
}

fn bad(detail: String) -> Failure {
    Failure::new(StatusCode::BAD_REQUEST, detail)
}

#[derive(Template)]
#[template(path = "hr_load.html")]
struct LoadPage {
    chrome: Chrome,
    message: Option<Message>,
    load: LoadRow,
    lines: Vec<Line>,
    /// The accepted workers' values, field by field (none for a refused load or one taken
    /// before summaries were kept).
    fields: Vec<FieldRow>,
    /// Values no role or team rule condition names.
    warnings: Vec<String>,
}

/// One field of a load as shown: how many values, the most frequent with their counts.
pub struct FieldRow {
    pub field: String,
    pub distinct: usize,
    pub top: String,
    pub other: usize,
    pub empty: usize,
}

/// A quarantine line as shown (an unknown line number as empty).
pub struct Line {
    pub row: i64,
    pub line: String,
    pub worker: String,
    pub column: String,
    pub value: String,
    pub reason: String,
}

impl From<QuarantineLine> for Line {
    fn from(q: QuarantineLine) -> Line {
        Line {
            row: q.row,
            line: q.line.map(|l| l.to_string()).unwrap_or_default(),
            worker: q.worker.unwrap_or_default(),
            column: q.column,
            value: q.value,
            reason: q.reason,
        }
    }
}

pub async fn load(State(api): State<Shared>, page: Page, Path(id): Path<String>) -> Response {
    let r: Result<Response, Failure> = async {
        page.need(Role::Viewer)?;
        let l = api
            .store
            .load(&id)
            .await?
            .ok_or_else(|| Failure::new(StatusCode::NOT_FOUND, "There is no such HR load."))?;
        let message = match l.outcome.as_str() {
            "accepted" if l.quarantined > 0 => Some(Message {
                tone: "warn",
                text: format!(
                    "Taken, with {} row(s) set aside: they are listed below, and can be downloaded to fix and send again.",
                    l.quarantined
                ),
            }),
            "accepted" => Message::ok("Taken: every row was good."),
            _ => Message::bad(format!(
                "Refused whole, nothing was taken: {}",
                l.reason.as_deref().unwrap_or("no reason was kept")
            )),
        };
        let lines = intake::quarantine(&api.store, &id).await?.into_iter().map(Line::from).collect();
        let summary = intake::load_fields(&l).unwrap_or_default();
        let fields = summary
            .fields
            .iter()
            .map(|f| FieldRow {
                field: f.field.clone(),
                distinct: f.distinct,
                top: f.top.iter().map(|c| format!("{} ({})", c.value, c.workers)).collect::<Vec<_>>().join(", "),
                other: f.other,
                empty: f.empty,
            })
            .collect();
        let page = LoadPage {
            chrome: page.chrome("hr"),
            message,
            load: LoadRow::of(&l),
            lines,
            fields,
            warnings: summary.warnings(),
        };
        Ok(render(&page))
    }
    .await;
    r.unwrap_or_else(IntoResponse::into_response)
}

pub async fn quarantined_csv(State(api): State<Shared>, page: Page, Path(id): Path<String>) -> Response {
    let r: Result<Response, Failure> = async {
        page.need(Role::Viewer)?;
        let csv = intake::quarantined_csv(&api.store, &api.data_dir, &id).await?;
        let mut r = csv.into_response();
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
        let name = format!(
            "attachment; filename=\"quarantined-{}.csv\"",
            id.chars().filter(char::is_ascii_alphanumeric).collect::<String>()
        );
        h.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_str(&name).unwrap_or(HeaderValue::from_static("attachment")),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(r)
    }
    .await;
    r.unwrap_or_else(IntoResponse::into_response)
}
