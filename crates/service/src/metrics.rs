//! What this process counted, in Prometheus' text format, for `/metrics`. Counters live in
//! one process-wide table (every door of the process adds to it: the scheduler's runs, the
//! API's runs, logins, pushes); gauges that other processes change too (reviews pending, dead
//! letters, last runs, quarantined rows, the guard, the last HR data) are read from the store
//! at each scrape.

use crate::error::Result;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, OnceLock};

/// A series: metric name and its labels, in order.
type Series = (&'static str, Vec<(&'static str, String)>);

#[derive(Default)]
struct Table {
    counters: BTreeMap<Series, f64>,
}

fn table() -> &'static Mutex<Table> {
    static T: OnceLock<Mutex<Table>> = OnceLock::new();
    T.get_or_init(Mutex::default)
}

/// Adds `by` to a counter.
pub fn add(name: &'static str, labels: &[(&'static str, &str)], by: f64) {
    let key = (name, labels.iter().map(|(k, v)| (*k, v.to_string())).collect());
    let mut t = table().lock().unwrap_or_else(|p| p.into_inner());
    *t.counters.entry(key).or_default() += by;
}

pub fn inc(name: &'static str, labels: &[(&'static str, &str)]) {
    add(name, labels, 1.0);
}

/// Sets a gauge this process keeps (the scheduler's last turn).
pub fn set(name: &'static str, labels: &[(&'static str, &str)], v: f64) {
    let key = (name, labels.iter().map(|(k, v)| (*k, v.to_string())).collect());
    table().lock().unwrap_or_else(|p| p.into_inner()).counters.insert(key, v);
}

/// What each metric is, for its `# HELP` line.
const HELP: &[(&str, &str, &str)] = &[
    ("tenure_runs_total", "counter", "Apply runs by connection and outcome (ok, failures, guard_refused, busy)."),
    ("tenure_run_duration_seconds_sum", "counter", "Seconds spent in apply runs, by connection."),
    ("tenure_run_duration_seconds_count", "counter", "Apply runs timed, by connection."),
    ("tenure_actions_total", "counter", "Actions carried out by connection, kind and outcome (ok, failed)."),
    ("tenure_scim_requests_total", "counter", "SCIM requests by connection and answer class (2xx..5xx, transport)."),
    ("tenure_scim_retries_total", "counter", "SCIM requests sent again, by connection."),
    ("tenure_scim_rate_limited_total", "counter", "SCIM answers 429 Too Many Requests, by connection."),
    (
        "tenure_scim_pace_requests_per_second",
        "gauge",
        "The pace held towards a connection's target: learned from its 429s and rate headers, under max_rate.",
    ),
    ("tenure_guard_refusals_total", "counter", "Runs the mass-deprovision guard refused, by connection."),
    ("tenure_hr_pushes_total", "counter", "HR pushes by outcome (accepted, refused)."),
    ("tenure_login_failures_total", "counter", "Failed logins to the API and console."),
    ("tenure_last_run_timestamp_seconds", "gauge", "When the last run of a connection finished."),
    ("tenure_last_success_timestamp_seconds", "gauge", "When the last run without failures of a connection finished."),
    ("tenure_reviews_pending", "gauge", "Reviews waiting for a reviewer, by connection."),
    ("tenure_dead_letters", "gauge", "Workers set aside after failing run after run, by connection."),
    ("tenure_quarantined_rows", "gauge", "HR rows quarantined by the last load."),
    ("tenure_guard_tripped", "gauge", "1 while the mass-deprovision guard stops a connection's runs, else 0."),
    ("tenure_hr_last_received_timestamp_seconds", "gauge", "When the last HR data (file, pull or push) arrived."),
    ("tenure_hr_quiet", "gauge", "1 while no HR data arrived for longer than [hr] alert_after, else 0."),
    ("tenure_notices_failed_total", "counter", "Notices a notifier could not deliver, by notifier."),
    (
        "tenure_scheduler_last_turn_timestamp_seconds",
        "gauge",
        "When the scheduler last began a turn (stale: stopped or stuck).",
    ),
    ("tenure_scheduler_behind_total", "counter", "Scheduler turns that took longer than the interval."),
    ("tenure_audit_head_seq", "gauge", "The audit chain's last record number."),
    (
        "tenure_audit_behind",
        "gauge",
        "1 when the chain ends before the head last written (records cut off, or an old copy), else 0.",
    ),
    (
        "tenure_store_restored_unconfirmed",
        "gauge",
        "1 while a restored store's scheduled runs wait for a person, else 0.",
    ),
];

/// A label value as the text format wants it: backslash, quote and newline escaped, and no
/// other control character raw (a name stored before names had a rule may hold one).
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn labels(l: &[(&'static str, String)]) -> String {
    if l.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = l.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    format!("{{{}}}", parts.join(","))
}

/// The exposition: this process's counters and the store's gauges.
pub async fn render(store: &store::Store) -> Result<String> {
    let mut series: BTreeMap<Series, f64> = table().lock().unwrap_or_else(|p| p.into_inner()).counters.clone();
    let mut gauge = |name: &'static str, l: Vec<(&'static str, String)>, v: f64| {
        series.insert((name, l), v);
    };
    let seconds = |r: &crate::status::RunSeen| {
        r.finished_at.as_deref().and_then(|f| f.parse::<jiff::Timestamp>().ok()).map(|t| t.as_second() as f64)
    };
    let st = crate::status::read(store, None, None, |_| true).await?;
    for c in &st.connections {
        let l = || vec![("connection", c.connection.clone())];
        gauge("tenure_guard_tripped", l(), if c.guard.is_some() { 1.0 } else { 0.0 });
        if let Some(t) = c.last_run.as_ref().and_then(seconds) {
            gauge("tenure_last_run_timestamp_seconds", l(), t);
        }
        if let Some(t) = c.last_successful_run.as_ref().and_then(seconds) {
            gauge("tenure_last_success_timestamp_seconds", l(), t);
        }
        gauge("tenure_reviews_pending", l(), c.pending_reviews as f64);
        gauge("tenure_dead_letters", l(), c.dead_letters as f64);
    }
    for (connection, rate) in crate::connections::paces() {
        gauge("tenure_scim_pace_requests_per_second", vec![("connection", connection)], rate);
    }
    let quarantined = store.last_accepted_load().await?.map(|l| l.quarantined).unwrap_or(0);
    gauge("tenure_quarantined_rows", vec![], quarantined as f64);
    if let Some(t) = st.last_received.and_then(|l| l.loaded_at.parse::<jiff::Timestamp>().ok()) {
        gauge("tenure_hr_last_received_timestamp_seconds", vec![], t.as_second() as f64);
        let after = crate::config::current_if_any(store).await.ok().flatten().and_then(|r| r.config.hr.alert_after());
        let quiet = after.is_some_and(|a| jiff::Timestamp::now().duration_since(t).unsigned_abs() > a);
        gauge("tenure_hr_quiet", vec![], if quiet { 1.0 } else { 0.0 });
    }
    gauge("tenure_audit_head_seq", vec![], st.audit.head.as_ref().map_or(0.0, |(s, _)| *s as f64));
    gauge("tenure_audit_behind", vec![], if st.audit.behind { 1.0 } else { 0.0 });
    gauge("tenure_store_restored_unconfirmed", vec![], if st.restored.is_some() { 1.0 } else { 0.0 });
    let mut out = String::new();
    for (name, kind, help) in HELP {
        let mine: Vec<_> = series.iter().filter(|((n, _), _)| n == name).collect();
        let base = name.trim_end_matches("_sum").trim_end_matches("_count");
        if !name.ends_with("_count") {
            let _ = writeln!(out, "# HELP {base} {help}");
            let kind = if name.ends_with("_sum") { "summary" } else { kind };
            let _ = writeln!(out, "# TYPE {base} {kind}");
        }
        for ((n, l), v) in mine {
            let _ = writeln!(out, "{n}{} {v}", labels(l));
        }
    }
    Ok(out)
}

/// Counts what one apply came to.
pub fn record_run(connection: &str, applied: &crate::run_report::Applied, seconds: f64) {
    use crate::run_report::RunOutcome;
    let scim = &applied.scim;
    let c = [("connection", connection)];
    let outcome = match applied.outcome {
        RunOutcome::Done => "ok",
        RunOutcome::GuardRefused | RunOutcome::GuardHeld => "guard_refused",
        RunOutcome::Failures => "failures",
        RunOutcome::Busy => "busy",
        RunOutcome::NotConfirmed | RunOutcome::Stopped => "other",
    };
    inc("tenure_runs_total", &[("connection", connection), ("outcome", outcome)]);
    if matches!(applied.outcome, RunOutcome::GuardRefused | RunOutcome::GuardHeld) {
        inc("tenure_guard_refusals_total", &c);
    }
    if let Some(s) = &applied.summary {
        add("tenure_run_duration_seconds_sum", &c, seconds);
        inc("tenure_run_duration_seconds_count", &c);
        let failed: BTreeMap<&str, usize> = s.failed_actions.iter().fold(BTreeMap::new(), |mut m, f| {
            *m.entry(f.action.as_str()).or_default() += 1;
            m
        });
        for (kind, n) in &s.by_kind {
            let bad = failed.get(kind.as_str()).copied().unwrap_or(0);
            let ok = n.saturating_sub(bad);
            add("tenure_actions_total", &[("connection", connection), ("kind", kind), ("outcome", "ok")], ok as f64);
            if bad > 0 {
                add(
                    "tenure_actions_total",
                    &[("connection", connection), ("kind", kind), ("outcome", "failed")],
                    bad as f64,
                );
            }
        }
    }
    for (class, n) in scim_client::STATUS_CLASSES.iter().zip(scim.by_status) {
        if n > 0 {
            add("tenure_scim_requests_total", &[("connection", connection), ("status", class)], n as f64);
        }
    }
    add("tenure_scim_retries_total", &c, scim.retries as f64);
    add("tenure_scim_rate_limited_total", &c, scim.rate_limited as f64);
}
