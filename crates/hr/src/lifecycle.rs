//! Lifecycle detection: a load compared with the last accepted snapshot yields events (hire,
//! rehire, change, termination, leave start, return from leave), each with the moment it takes
//! effect in the worker's own time zone. Future events wait for their moment.

use crate::worker::{Status, Worker, WorkerId};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Hire,
    Rehire,
    Change,
    Termination,
    LeaveStart,
    LeaveReturn,
    /// A worker absent from a full load: reported, not acted on unless configured.
    MissingFromFullLoad,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    pub before: String,
    pub after: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub worker: WorkerId,
    pub kind: EventKind,
    /// When it takes effect; an event is due once this moment has come.
    pub effective: Timestamp,
    pub changes: Vec<FieldChange>,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Hire => "hire",
            EventKind::Rehire => "rehire",
            EventKind::Change => "change",
            EventKind::Termination => "termination",
            EventKind::LeaveStart => "leave_start",
            EventKind::LeaveReturn => "leave_return",
            EventKind::MissingFromFullLoad => "missing_from_full_load",
        }
    }
}

impl Event {
    pub fn is_due(&self, now: Timestamp) -> bool {
        self.effective <= now
    }
}

#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    /// Days before the hire date when the account is made.
    pub pre_hire_lead_days: i64,
    /// Hour of the termination date at which a termination takes effect, in the worker's time
    /// zone; None for the end of that day.
    pub termination_hour: Option<i8>,
    /// For workers without a time zone.
    pub default_time_zone: TimeZone,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig { pre_hire_lead_days: 0, termination_hour: None, default_time_zone: TimeZone::UTC }
    }
}

pub fn zone(w: &Worker, cfg: &LifecycleConfig) -> TimeZone {
    w.time_zone.as_ref().map(|z| z.zone()).unwrap_or_else(|| cfg.default_time_zone.clone())
}

/// The start of `date` in `tz` (the first instant of that day, DST gaps included).
pub fn start_of(date: Date, tz: &TimeZone) -> Timestamp {
    date.to_zoned(tz.clone()).map(|z| z.timestamp()).unwrap_or(Timestamp::UNIX_EPOCH)
}

pub fn termination_moment(w: &Worker, cfg: &LifecycleConfig, now: Timestamp) -> Timestamp {
    let tz = zone(w, cfg);
    match (w.termination_date, cfg.termination_hour) {
        (None, _) => now,
        (Some(d), None) => start_of(d.tomorrow().unwrap_or(d), &tz),
        (Some(d), Some(h)) => d.at(h.clamp(0, 23), 0, 0, 0).to_zoned(tz).map(|z| z.timestamp()).unwrap_or(now),
    }
}

pub fn hire_moment(w: &Worker, cfg: &LifecycleConfig) -> Timestamp {
    let tz = zone(w, cfg);
    let day = w.hire_date.checked_sub(cfg.pre_hire_lead_days.days()).unwrap_or(w.hire_date);
    start_of(day, &tz)
}

fn leave_moment(d: Option<Date>, w: &Worker, cfg: &LifecycleConfig, now: Timestamp) -> Timestamp {
    d.map(|d| start_of(d, &zone(w, cfg))).unwrap_or(now)
}

/// The fields compared for `Change`, as text.
fn fields(w: &Worker) -> Vec<(String, String)> {
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut out: Vec<(String, String)> = [
        ("first_name", w.first_name.as_str().to_string()),
        ("last_name", w.last_name.as_str().to_string()),
        ("preferred_name", w.preferred_name.as_ref().map(|n| n.as_str().to_string()).unwrap_or_default()),
        ("work_email", w.work_email.as_ref().map(|e| e.as_str().to_string()).unwrap_or_default()),
        ("title", o(&w.title)),
        ("department", o(&w.department)),
        ("division", o(&w.division)),
        ("location", o(&w.location)),
        ("cost_center", o(&w.cost_center)),
        ("manager_id", w.manager_id.as_ref().map(|m| m.to_string()).unwrap_or_default()),
        ("employment_type", format!("{:?}", w.employment_type)),
        ("hire_date", w.hire_date.to_string()),
        ("termination_date", w.termination_date.map(|d| d.to_string()).unwrap_or_default()),
        ("time_zone", w.time_zone.as_ref().map(|z| z.as_str().to_string()).unwrap_or_default()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    out.extend(w.custom.iter().map(|(k, v)| (format!("custom.{k}"), v.clone())));
    out
}

fn changes(before: &Worker, after: &Worker) -> Vec<FieldChange> {
    // Most workers did not change: say so without writing every field out as text.
    if before == after {
        return vec![];
    }
    let old: BTreeMap<String, String> = fields(before).into_iter().collect();
    let new: BTreeMap<String, String> = fields(after).into_iter().collect();
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (a, b) = (old.get(k).cloned().unwrap_or_default(), new.get(k).cloned().unwrap_or_default());
            (a != b).then(|| FieldChange { field: k.clone(), before: a, after: b })
        })
        .collect()
}
/// Compares a load with the previous snapshot. `full` says the load is the whole population
/// (absent workers are reported); a delta load only speaks for the workers it holds.
pub fn detect(
    previous: &BTreeMap<WorkerId, Worker>,
    load: &[Worker],
    full: bool,
    now: Timestamp,
    cfg: &LifecycleConfig,
) -> Vec<Event> {
    let mut events = vec![];
    let ev = |w: &Worker, kind, effective, changes| Event { worker: w.id.clone(), kind, effective, changes };
    for w in load {
        match previous.get(&w.id) {
            None if w.termination_date.is_some() && !matches!(w.status, Status::Terminated) => {
                // A newcomer whose end is already announced (a fixed-term contract): the
                // termination is an event of its own, so it fires at its moment.
                events.push(ev(w, EventKind::Hire, hire_moment(w, cfg), vec![]));
                if matches!(w.status, Status::Leave { .. }) {
                    events.push(ev(w, EventKind::LeaveStart, leave_moment(w.leave_start, w, cfg, now), vec![]));
                }
                events.push(ev(w, EventKind::Termination, termination_moment(w, cfg, now), vec![]));
            }
            None => match &w.status {
                Status::Terminated => {}
                Status::Active => events.push(ev(w, EventKind::Hire, hire_moment(w, cfg), vec![])),
                Status::Leave { .. } => {
                    events.push(ev(w, EventKind::Hire, hire_moment(w, cfg), vec![]));
                    events.push(ev(w, EventKind::LeaveStart, leave_moment(w.leave_start, w, cfg, now), vec![]));
                }
            },
            Some(old) => {
                let diff = changes(old, w);
                match (&old.status, &w.status) {
                    (Status::Terminated, Status::Active | Status::Leave { .. }) => {
                        events.push(ev(w, EventKind::Rehire, hire_moment(w, cfg).max(now), diff.clone()))
                    }
                    (Status::Active | Status::Leave { .. }, Status::Terminated) => {
                        events.push(ev(w, EventKind::Termination, termination_moment(w, cfg, now), vec![]))
                    }
                    (Status::Active, Status::Leave { .. }) => {
                        events.push(ev(w, EventKind::LeaveStart, leave_moment(w.leave_start, w, cfg, now), vec![]))
                    }
                    (Status::Leave { .. }, Status::Active) => events.push(ev(w, EventKind::LeaveReturn, now, vec![])),
                    _ => {}
                }
                // A termination announced ahead: still active, with a date now set or moved.
                if matches!(w.status, Status::Active | Status::Leave { .. })
                    && w.termination_date.is_some()
                    && w.termination_date != old.termination_date
                    && !matches!(old.status, Status::Terminated)
                {
                    events.push(ev(w, EventKind::Termination, termination_moment(w, cfg, now), vec![]));
                }
                let status_event = events.last().is_some_and(|e| e.worker == w.id && e.kind == EventKind::Rehire);
                if !diff.is_empty() && !status_event {
                    events.push(ev(w, EventKind::Change, now, diff));
                }
            }
        }
    }
    if full {
        let present: std::collections::HashSet<&WorkerId> = load.iter().map(|w| &w.id).collect();
        for (id, old) in previous {
            if !present.contains(id) && !matches!(old.status, Status::Terminated) {
                events.push(Event {
                    worker: id.clone(),
                    kind: EventKind::MissingFromFullLoad,
                    effective: now,
                    changes: vec![],
                });
            }
        }
    }
    events
}
