//! Lifecycle events from snapshot comparison: each kind, effective moments in the worker's
//! own time zone, across DST changes.

use hr::{detect, parse_csv, EventKind, HeaderDefinition, LifecycleConfig, Worker, WorkerId};
use jiff::Timestamp;
use std::collections::BTreeMap;

const HEADER: &str =
    "employee_id,first_name,last_name,title,department,employment_type,status,leave_type,hire_date,termination_date,leave_start,time_zone";

fn workers(rows: &[&str]) -> Vec<Worker> {
    let text = format!("{HEADER}\n{}\n", rows.join("\n"));
    let r = parse_csv("t.csv", text.as_bytes(), &HeaderDefinition::default()).unwrap();
    assert!(r.quarantined.is_empty(), "{:?}", r.quarantined);
    r.accepted
}

fn snapshot(rows: &[&str]) -> BTreeMap<WorkerId, Worker> {
    workers(rows).into_iter().map(|w| (w.id.clone(), w)).collect()
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const NOW: &str = "2026-11-29T12:00:00Z";

#[test]
fn hire_now_and_pre_hire_lead_time() {
    let load = workers(&[
        "1,Ann,Lee,Eng,Engineering,employee,active,,2026-11-02,,,Europe/Paris",
        "2,Bob,Ray,Eng,Engineering,employee,active,,2026-12-09,,,America/New_York",
    ]);
    let cfg = LifecycleConfig { pre_hire_lead_days: 14, ..Default::default() };
    let ev = detect(&BTreeMap::new(), &load, true, ts(NOW), &cfg);
    assert_eq!(ev.len(), 2);
    assert!(ev.iter().all(|e| e.kind == EventKind::Hire));
    // Ann: 14 days before 2 Nov, at midnight in Paris (CET, UTC+1).
    assert_eq!(ev[0].effective, ts("2026-10-18T22:00:00Z"));
    // Bob: 14 days before 9 Dec is 25 Nov, midnight in New York (EST, UTC-5): due now.
    assert_eq!(ev[1].effective, ts("2026-11-25T05:00:00Z"));
    assert!(ev[1].is_due(ts(NOW)));
    let cfg = LifecycleConfig { pre_hire_lead_days: 3, ..Default::default() };
    let ev = detect(&BTreeMap::new(), &load, true, ts(NOW), &cfg);
    assert!(!ev[1].is_due(ts(NOW)), "hired on 9 Dec, account three days before: not yet");
    assert!(ev[1].is_due(ts("2026-12-06T05:00:00Z")));
}

#[test]
fn change_lists_exactly_the_fields_that_changed() {
    let before = snapshot(&["1,Ann,Lee,Engineer,Engineering,employee,active,,2020-01-01,,,"]);
    let load = workers(&["1,Ann,Lee-Smith,Manager,Engineering,employee,active,,2020-01-01,,,"]);
    let ev = detect(&before, &load, true, ts(NOW), &LifecycleConfig::default());
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].kind, EventKind::Change);
    let fields: Vec<(&str, &str, &str)> =
        ev[0].changes.iter().map(|c| (c.field.as_str(), c.before.as_str(), c.after.as_str())).collect();
    assert_eq!(fields, vec![("last_name", "Lee", "Lee-Smith"), ("title", "Engineer", "Manager")]);
    assert!(
        detect(
            &before,
            &workers(&["1,Ann,Lee,Engineer,Engineering,employee,active,,2020-01-01,,,"]),
            true,
            ts(NOW),
            &LifecycleConfig::default()
        )
        .is_empty(),
        "no change, no event"
    );
}

#[test]
fn termination_immediate_and_future_dated_in_the_workers_zone() {
    let before = snapshot(&[
        "1,Ann,Lee,E,D,employee,active,,2020-01-01,,,",
        "2,Bob,Ray,E,D,employee,active,,2020-01-01,,,America/Los_Angeles",
    ]);
    let load = workers(&[
        "1,Ann,Lee,E,D,employee,terminated,,2020-01-01,,,",
        "2,Bob,Ray,E,D,employee,active,,2020-01-01,2026-12-15,,America/Los_Angeles",
    ]);
    let ev = detect(&before, &load, true, ts(NOW), &LifecycleConfig::default());
    let term: Vec<_> = ev.iter().filter(|e| e.kind == EventKind::Termination).collect();
    assert_eq!(term.len(), 2, "{ev:?}");
    assert_eq!(term[0].effective, ts(NOW), "no date: at once");
    // End of 15 Dec in Los Angeles (PST, UTC-8).
    assert_eq!(term[1].effective, ts("2026-12-16T08:00:00Z"));
    assert!(!term[1].is_due(ts("2026-12-15T20:00:00Z")), "still the 15th in Los Angeles");
    assert!(term[1].is_due(ts("2026-12-16T08:00:00Z")));
    // At a configured hour instead of the end of the day.
    let cfg = LifecycleConfig { termination_hour: Some(17), ..Default::default() };
    let ev = detect(&before, &load, true, ts(NOW), &cfg);
    let t = ev.iter().find(|e| e.kind == EventKind::Termination && e.worker.as_str() == "2").unwrap();
    assert_eq!(t.effective, ts("2026-12-16T01:00:00Z"));
}

#[test]
fn termination_moments_across_dst_changes() {
    let before = snapshot(&["1,Ann,Lee,E,D,employee,active,,2020-01-01,,,America/New_York"]);
    let at = |date: &str, hour: Option<i8>| {
        let load = workers(&[&format!("1,Ann,Lee,E,D,employee,terminated,,2020-01-01,{date},,America/New_York")]);
        let cfg = LifecycleConfig { termination_hour: hour, ..Default::default() };
        detect(&before, &load, true, ts(NOW), &cfg)
            .into_iter()
            .find(|e| e.kind == EventKind::Termination)
            .unwrap()
            .effective
    };
    // Spring forward on 8 March 2026: the next midnight is EDT (UTC-4).
    assert_eq!(at("2026-03-08", None), ts("2026-03-09T04:00:00Z"));
    // Fall back on 1 November 2026: the next midnight is EST (UTC-5).
    assert_eq!(at("2026-11-01", None), ts("2026-11-02T05:00:00Z"));
    // 02:00 does not exist on 8 March in New York: it becomes 03:00 EDT.
    assert_eq!(at("2026-03-08", Some(2)), ts("2026-03-08T07:00:00Z"));
    // 01:00 happens twice on 1 November: the first one (EDT) is taken.
    assert_eq!(at("2026-11-01", Some(1)), ts("2026-11-01T05:00:00Z"));
}

#[test]
fn rehire_leave_and_return() {
    let before = snapshot(&[
        "1,Ann,Lee,E,D,employee,terminated,,2020-01-01,2025-06-30,,",
        "2,Bob,Ray,E,D,employee,active,,2020-01-01,,,Europe/Berlin",
        "3,Cy,Orr,E,D,employee,leave,fmla,2020-01-01,,2026-10-01,",
    ]);
    let load = workers(&[
        "1,Ann,Lee,E,D,employee,active,,2026-11-16,,,",
        "2,Bob,Ray,E,D,employee,leave,legal,2020-01-01,,2026-12-01,Europe/Berlin",
        "3,Cy,Orr,E,D,employee,active,,2020-01-01,,2026-10-01,",
    ]);
    let ev = detect(&before, &load, true, ts(NOW), &LifecycleConfig::default());
    let kinds: Vec<(&str, EventKind)> = ev.iter().map(|e| (e.worker.as_str(), e.kind)).collect();
    assert!(kinds.contains(&("1", EventKind::Rehire)), "{kinds:?}");
    assert!(kinds.contains(&("2", EventKind::LeaveStart)), "{kinds:?}");
    assert!(kinds.contains(&("3", EventKind::LeaveReturn)), "{kinds:?}");
    let leave = ev.iter().find(|e| e.kind == EventKind::LeaveStart).unwrap();
    assert_eq!(leave.effective, ts("2026-11-30T23:00:00Z"), "midnight in Berlin");
    let rehire = ev.iter().find(|e| e.kind == EventKind::Rehire).unwrap();
    assert!(rehire.changes.iter().any(|c| c.field == "hire_date"), "{:?}", rehire.changes);
}

#[test]
fn absent_workers_are_reported_on_full_loads_only() {
    let before = snapshot(&[
        "1,Ann,Lee,E,D,employee,active,,2020-01-01,,,",
        "2,Bob,Ray,E,D,employee,terminated,,2020-01-01,2021-01-01,,",
    ]);
    let ev = detect(&before, &[], true, ts(NOW), &LifecycleConfig::default());
    assert_eq!(ev.len(), 1, "a terminated worker's absence says nothing");
    assert_eq!(ev[0].kind, EventKind::MissingFromFullLoad);
    assert!(detect(&before, &[], false, ts(NOW), &LifecycleConfig::default()).is_empty());
}

#[test]
fn a_newcomer_with_an_announced_end_gets_a_termination_event_too() {
    let load = workers(&[
        "1,Eve,Sato,Counsel,Legal,contractor,active,,2026-01-05,2027-03-31,,Asia/Tokyo",
        "2,Ann,Lee,Eng,Engineering,employee,active,,2026-01-05,,,",
        "3,Old,Gone,Eng,Engineering,employee,terminated,,2020-01-05,2025-03-31,,",
    ]);
    let ev = detect(&BTreeMap::new(), &load, true, ts(NOW), &LifecycleConfig::default());
    let kinds: Vec<(&str, EventKind)> = ev.iter().map(|e| (e.worker.as_str(), e.kind)).collect();
    assert_eq!(kinds, vec![("1", EventKind::Hire), ("1", EventKind::Termination), ("2", EventKind::Hire)]);
    // The end of 31 March in Tokyo (UTC+9).
    assert_eq!(ev[1].effective, ts("2027-03-31T15:00:00Z"));
    assert!(!ev[1].is_due(ts(NOW)));
}
