//! Whatever the rows hold, each one is accepted or quarantined: rows in = accepted +
//! quarantined, and a quarantined row keeps what it held.

use hr::{parse_csv, HeaderDefinition};
use proptest::prelude::*;

const HEADER: &str = "employee_id,first_name,last_name,employment_type,status,hire_date,time_zone";

fn cell() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("E1".to_string()),
        Just("E2".to_string()),
        Just("Zoë".to_string()),
        Just("".to_string()),
        Just("employee".to_string()),
        Just("active".to_string()),
        Just("leave".to_string()),
        Just("2021-01-01".to_string()),
        Just("02/30/2021".to_string()),
        Just("Europe/Paris".to_string()),
        Just("\"quoted, with comma\"".to_string()),
        "[a-zA-Z0-9 ]{0,6}",
    ]
}

proptest! {
    #[test]
    fn every_row_is_accepted_or_quarantined(rows in prop::collection::vec(prop::collection::vec(cell(), 5..9), 0..30)) {
        let mut text = String::from(HEADER);
        for r in &rows {
            text.push('\n');
            text.push_str(&r.join(","));
        }
        let report = parse_csv("p.csv", text.as_bytes(), &HeaderDefinition::default()).unwrap();
        prop_assert_eq!(report.rows, rows.len());
        prop_assert_eq!(report.accepted.len() + report.quarantined.len(), rows.len());
        for q in &report.quarantined {
            prop_assert!(!q.problems.is_empty());
            prop_assert!(q.row >= 1 && q.row <= rows.len());
            prop_assert!(!q.raw.is_empty(), "row {} lost what it held", q.row);
        }
    }
}
