//! JSON and JSON Lines sources: the same validation and quarantine as CSV.

use hr::{parse_json, HeaderDefinition};

#[test]
fn json_lines_with_bad_lines_quarantined_and_good_ones_accepted() {
    let text = r#"{"employee_id": 1, "first_name": "Zoë", "last_name": "Øster", "employment_type": "employee", "status": "active", "hire_date": "2021-01-01", "time_zone": "Europe/Oslo"}
{"employee_id": "2", "first_name": "Bo", "last_name": "Ray", "employment_type": "employee", "status": "active", "hire_date": "2021-13-01"}
not json at all

["an", "array"]
{"employee_id": "3", "first_name": "Cy", "last_name": "Orr", "employment_type": "employee", "status": "active", "hire_date": "2021-01-01", "shoe_size": 44}
{"Employee ID": "4", "First Name": "Di", "Surname": "Poe", "Worker Type": "intern", "Status": "leave", "leave_type": "fmla", "Start Date": "01/02/2022", "title": null}
"#;
    let r = parse_json("feed.jsonl", text.as_bytes(), &HeaderDefinition::default()).unwrap();
    assert_eq!(r.rows, 6, "blank lines are not records");
    assert_eq!(r.accepted.len() + r.quarantined.len(), r.rows);
    let ids: Vec<&str> = r.accepted.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, vec!["1", "3"], "a key the definition lacks is ignored");
    assert_eq!(r.ignored_columns, vec!["shoe_size"]);
    assert_eq!(r.accepted[0].first_name.as_str(), "Zoë");
    let q = |row: usize| r.quarantined.iter().find(|q| q.row == row).unwrap();
    assert_eq!((q(2).problems[0].column.as_str(), q(2).problems[0].value.as_str()), ("hire_date", "2021-13-01"));
    assert!(q(3).problems[0].reason.contains("malformed JSON"));
    assert_eq!(q(3).line, 3);
    assert!(q(4).problems[0].reason.contains("JSON object"));
    // A lone record cannot say which order 01/02/2022 is in: held, not guessed.
    assert_eq!(q(6).problems[0].column, "Start Date");
    assert!(q(6).problems[0].reason.contains("month-first or day-first"), "{:?}", q(6).problems);
    assert_eq!(q(6).raw.len(), 1, "the raw record is kept");
    assert_eq!(q(6).worker_id.as_ref().map(|w| w.as_str()), Some("4"), "its worker is held, not missing");
    // strict = true quarantines the record with the unknown key instead.
    let strict = HeaderDefinition { strict: true, ..HeaderDefinition::default() };
    let r = parse_json("feed.jsonl", text.as_bytes(), &strict).unwrap();
    let q5 = r.quarantined.iter().find(|q| q.row == 5).unwrap();
    assert_eq!(q5.problems[0].column, "shoe_size");
}

#[test]
fn a_json_array_and_a_broken_document() {
    let ok = r#"[{"employee_id": "1", "first_name": "A", "last_name": "B", "employment_type": "employee", "status": "active", "hire_date": "2021-01-01"},
                 {"employee_id": "1", "first_name": "A", "last_name": "C", "employment_type": "employee", "status": "active", "hire_date": "2021-01-01"}]"#;
    let r = parse_json("a.json", ok.as_bytes(), &HeaderDefinition::default()).unwrap();
    assert_eq!((r.accepted.len(), r.quarantined.len()), (0, 2), "an id on two records quarantines both");
    let e = parse_json("b.json", b"[{\"employee_id\": \"1\",\n  }", &HeaderDefinition::default()).unwrap_err();
    assert!(e.reason.contains("line 2"), "{}", e.reason);
}
