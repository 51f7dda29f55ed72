//! Alerts that no run gives: HR data with quarantined rows or refused whole, no HR data for
//! longer than `[hr] alert_after`, the scheduler behind or stopped. The HR alerts are sent
//! once: the store keeps what was told (claimed with a compare-and-set), so several processes
//! on one store send each once between them, and a restart does not send it again. The
//! scheduler's are each process's own, once per spell.

use crate::error::Result;
use crate::notify::{self, Notice};
use rules::notify::NoticeKind;
use std::time::Duration;
use store::{MasterKey, Store};

/// The newest load whose news were told.
const HR_TOLD: &str = "alerts:hr-told";
/// The last load before the quiet spell that was told (one notice per spell).
const HR_QUIET: &str = "alerts:hr-quiet";

/// How many quarantined rows a notice names; the rest are counted.
const ROWS_NAMED: usize = 5;

/// Tells the loads recorded since the last told: quarantined rows, files refused whole.
/// Called whenever a load is recorded (the watcher sees every process's); quiet without
/// notifiers.
pub async fn hr_news(store: &Store, key: &MasterKey) -> Result<()> {
    let Some(rules) = crate::config::current_if_any(store).await? else { return Ok(()) };
    if rules.config.notify.is_empty() {
        return Ok(());
    }
    let loads = store.loads().await?;
    let Some(newest) = loads.last() else { return Ok(()) };
    let told = store.setting(HR_TOLD).await?;
    if told.as_deref() == Some(newest.id.as_str()) {
        return Ok(());
    }
    if !store.swap_setting(HR_TOLD, told.as_deref(), &newest.id).await? {
        // Another process claimed them first: it tells them.
        return Ok(());
    }
    // The loads after the last told; without one (a store older than these alerts), the last day's.
    let since = told.as_deref().and_then(|t| loads.iter().position(|l| l.id == t)).map(|i| i + 1);
    let day_ago = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24)).to_string();
    let fresh = match since {
        Some(i) => &loads[i..],
        None => {
            let from = loads.iter().position(|l| l.loaded_at >= day_ago).unwrap_or(loads.len());
            &loads[from..]
        }
    };
    let mut notices = vec![];
    for l in fresh {
        let base = Notice { stage: l.source.clone(), at: l.loaded_at.clone(), ..Default::default() };
        if l.outcome == "rejected" {
            notices.push(Notice {
                kind: Some(NoticeKind::HrRefused),
                reason: l.reason.clone().unwrap_or_default(),
                ..base
            });
        } else if l.quarantined > 0 {
            let rows = store.quarantined(&l.id).await?;
            notices.push(Notice {
                kind: Some(NoticeKind::HrQuarantined),
                count: l.quarantined.to_string(),
                reason: rows_said(&rows, l.quarantined),
                ..base
            });
        }
    }
    say(store, key, &rules.config.notify, &notices).await;
    Ok(())
}

/// The first quarantined rows in words: their line, worker and what is wrong (never the
/// values: they are HR data).
fn rows_said(rows: &[(i64, Option<String>, String)], all: i64) -> String {
    let mut said: Vec<String> = rows
        .iter()
        .take(ROWS_NAMED)
        .map(|(row, worker, body)| {
            let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
            let problems: Vec<String> = v["problems"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| format!("{}: {}", p["column"].as_str().unwrap_or("?"), p["reason"].as_str().unwrap_or("?")))
                .collect();
            let who = worker.as_deref().map(|w| format!(", worker {w}")).unwrap_or_default();
            format!("row {row} (line {}{who}) {}", v["line"], problems.join("; "))
        })
        .collect();
    if all as usize > said.len() {
        said.push(format!("and {} more", all as usize - said.len()));
    }
    said.join("; ")
}

/// Tells, once per quiet spell, that no HR data arrived for longer than `[hr] alert_after`.
/// Quiet until the first HR data (a store being set up is not late).
pub async fn hr_quiet(store: &Store, key: &MasterKey, now: jiff::Timestamp) -> Result<()> {
    let Some(rules) = crate::config::current_if_any(store).await? else { return Ok(()) };
    let Some(after) = rules.config.hr.alert_after() else { return Ok(()) };
    if rules.config.notify.is_empty() {
        return Ok(());
    }
    let Some(last) = store.last_load().await? else { return Ok(()) };
    let Ok(at) = last.loaded_at.parse::<jiff::Timestamp>() else { return Ok(()) };
    let quiet = now.duration_since(at);
    if quiet < jiff::SignedDuration::try_from(after).unwrap_or(jiff::SignedDuration::MAX) {
        return Ok(());
    }
    let told = store.setting(HR_QUIET).await?;
    if told.as_deref() == Some(last.id.as_str()) || !store.swap_setting(HR_QUIET, told.as_deref(), &last.id).await? {
        return Ok(());
    }
    let hours = quiet.as_secs() / 3600;
    let n = Notice {
        kind: Some(NoticeKind::HrQuiet),
        count: hours.to_string(),
        reason: format!(
            "the last was {} at {} ({} ago; [hr] alert_after is {})",
            last.source,
            last.loaded_at,
            said_duration(quiet.unsigned_abs()),
            rules.config.hr.alert_after.as_deref().unwrap_or_default()
        ),
        at: now.to_string(),
        ..Default::default()
    };
    say(store, key, &rules.config.notify, &[n]).await;
    Ok(())
}

/// A length of time in the largest whole unit that fits.
fn said_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        _ => format!("{} h", s / 3600),
    }
}

/// What the scheduler tells of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulerAlert {
    /// A turn took longer than the interval.
    Behind,
    /// No turn for three intervals (at least a minute), and no run of its own going.
    Stopped,
}

/// Whether the scheduler counts as stopped: its last turn began more than three intervals
/// ago (at least a minute), and none of its runs is going (a long run is not a stop).
pub fn stopped(last_turn: i64, now: i64, interval: Duration, running: bool) -> bool {
    let limit = (interval.as_secs() as i64 * 3).max(60);
    !interval.is_zero() && !running && now - last_turn > limit
}

/// Tells one of the scheduler's alerts (the caller sends each once per spell).
pub async fn scheduler(store: &Store, key: &MasterKey, alert: SchedulerAlert, reason: String) {
    let rules = match crate::config::current_if_any(store).await {
        Ok(Some(r)) if !r.config.notify.is_empty() => r,
        _ => return,
    };
    let kind = match alert {
        SchedulerAlert::Behind => NoticeKind::SchedulerBehind,
        SchedulerAlert::Stopped => NoticeKind::SchedulerStopped,
    };
    let n = Notice { kind: Some(kind), reason, at: jiff::Timestamp::now().to_string(), ..Default::default() };
    say(store, key, &rules.config.notify, &[n]).await;
}

/// Delivers; what could not be is logged (and told through the other notifiers by `deliver`).
async fn say(store: &Store, key: &MasterKey, settings: &[rules::notify::NotifySettings], notices: &[Notice]) {
    if notices.is_empty() {
        return;
    }
    for problem in notify::deliver(store, key, settings, notices).await {
        tracing::warn!("an alert was not delivered: {problem}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scheduler_is_stopped_after_three_intervals_and_never_while_its_run_goes() {
        let i = Duration::from_secs(30);
        assert!(!stopped(1000, 1090, i, false), "three intervals are not yet a stop");
        assert!(stopped(1000, 1091, i, false));
        assert!(!stopped(1000, 5000, i, true), "a long run is not a stop");
        assert!(!stopped(1000, 1059, Duration::from_secs(1), false), "at least a minute");
        assert!(stopped(1000, 1061, Duration::from_secs(1), false));
        assert!(!stopped(0, 1_000_000, Duration::ZERO, false), "no schedule, no stop");
    }

    #[test]
    fn quarantined_rows_are_said_by_line_and_problem_never_by_value() {
        let body = |line: u64| {
            serde_json::json!({"line": line, "problems": [{"column": "email", "value": "secret@x", "reason": "not an address"}]})
                .to_string()
        };
        let rows: Vec<(i64, Option<String>, String)> =
            (1..=7).map(|r| (r, Some(format!("10{r}")), body(r as u64 + 1))).collect();
        let said = rows_said(&rows, 7);
        assert!(said.starts_with("row 1 (line 2, worker 101) email: not an address; row 2"), "{said}");
        assert!(said.ends_with("and 2 more"), "{said}");
        assert!(!said.contains("secret@x"), "{said}");
    }
}
