//! `tenure hr validate` on the example data and on broken files.

use std::process::Command;

fn validate(args: &[&str]) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_tenure")).args(["hr", "validate"]).args(args).output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).to_string())
}

#[test]
fn the_example_file_is_clean() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/hr/workers.csv");
    let (code, out) = validate(&[example]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().last(), Some("rows: 10, accepted: 10, quarantined: 0"));
    let (code, out) = validate(&[example, "--json"]);
    assert_eq!(code, 0);
    // JSON alone on stdout: a parser reads it whole.
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["accepted"][2]["first_name"], "Zoë");
    assert_eq!(json["accepted"][2]["status"]["state"], "leave");
}

#[test]
fn bad_rows_are_reported_with_file_row_column_value_and_reason() {
    let dir = std::env::temp_dir().join(format!("tenure-hr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("feed.csv");
    std::fs::write(
        &f,
        "employee_id,first_name,last_name,employment_type,status,hire_date\n1,Ann,Lee,employee,active,13/45/2020\n2,Bo,Ray,employee,active,2020-01-01\n",
    )
    .unwrap();
    let (code, out) = validate(&[f.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("feed.csv: row 1 (line 2, employee 1), column hire_date, value \"13/45/2020\""), "{out}");
    assert_eq!(out.lines().last(), Some("rows: 2, accepted: 1, quarantined: 1"));
    std::fs::write(&f, "id,name\n1,Ann\n").unwrap();
    let (code, out) = validate(&[f.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("missing columns: employee_id"), "{out}");
    assert!(out.contains("columns the definition does not name: id, name"), "{out}");
}

#[test]
fn generated_files_validate_cleanly() {
    let dir = std::env::temp_dir().join(format!("tenure-hr-gen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (dir.join("day1.csv"), dir.join("day2.csv"));
    let o = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args(["hr", "generate", "--count", "500", "--out", a.to_str().unwrap(), "--next-day", b.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success());
    let (code, out) = validate(&[a.to_str().unwrap()]);
    assert_eq!((code, out.lines().last()), (0, Some("rows: 500, accepted: 500, quarantined: 0")));
    let (code, out) = validate(&[b.to_str().unwrap()]);
    assert_eq!((code, out.lines().last()), (0, Some("rows: 503, accepted: 503, quarantined: 0")), "{out}");
}

#[test]
fn json_lines_files_are_validated_too() {
    let dir = std::env::temp_dir().join(format!("tenure-hr-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("push.jsonl");
    std::fs::write(
        &f,
        "{\"employee_id\": \"9\", \"first_name\": \"Ines\", \"last_name\": \"Moreau\", \"employment_type\": \"employee\", \"status\": \"active\", \"hire_date\": \"2024-05-06\"}\n{\"employee_id\": \"10\"}\n",
    )
    .unwrap();
    let (code, out) = validate(&[f.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("push.jsonl: row 2 (line 2, employee 10), column first_name"), "{out}");
    assert_eq!(out.lines().last(), Some("rows: 2, accepted: 1, quarantined: 1"));
}
