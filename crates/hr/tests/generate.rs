//! Generated data is valid, deterministic, and its next day carries every kind of change.

use hr::generate::{generate, next_day, to_csv};
use hr::{detect, parse_csv, EventKind, HeaderDefinition, LifecycleConfig};

#[test]
fn generated_files_parse_cleanly_and_the_next_day_moves() {
    let rows = generate(3000, 7);
    assert_eq!(rows, generate(3000, 7), "deterministic per seed");
    let def = HeaderDefinition::default();
    let day1 = parse_csv("day1.csv", &to_csv(&rows), &def).unwrap();
    assert_eq!((day1.accepted.len(), day1.quarantined.len()), (3000, 0), "{:?}", day1.quarantined.first());
    assert!(day1.accepted.iter().any(|w| !w.first_name.as_str().is_ascii()), "accented names");
    let day2 = parse_csv("day2.csv", &to_csv(&next_day(&rows, 7)), &def).unwrap();
    assert!(day2.quarantined.is_empty());
    let snapshot = day1.accepted.into_iter().map(|w| (w.id.clone(), w)).collect();
    let now = "2026-11-29T12:00:00Z".parse().unwrap();
    let events = detect(&snapshot, &day2.accepted, true, now, &LifecycleConfig::default());
    for kind in [EventKind::Hire, EventKind::Rehire, EventKind::Change, EventKind::Termination] {
        assert!(events.iter().any(|e| e.kind == kind), "no {kind:?} among {} events", events.len());
    }
}
