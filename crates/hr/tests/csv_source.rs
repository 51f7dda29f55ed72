//! The CSV feed: whole-file rejection on a header mismatch, row quarantine with file, row,
//! column, value and reason, encodings, and rows = accepted + quarantined.

use hr::{parse_csv, Encoding, HeaderDefinition, LeaveKind, Status};

const HEADER: &str = "employee_id,first_name,last_name,work_email,title,department,manager_id,employment_type,status,leave_type,hire_date,termination_date,time_zone";

fn file(rows: &[&str]) -> String {
    let mut s = String::from(HEADER);
    for r in rows {
        s.push('\n');
        s.push_str(r);
    }
    s.push('\n');
    s
}

#[test]
fn good_rows_become_workers_with_unicode_kept() {
    let text = file(&[
        "E1,Zoë,Ñúñez-Øster,zoe.nunez@ACME.example,Engineer,Engineering,,employee,active,,03/15/2021,,Europe/Paris",
        "E2,José,García,jose@acme.example,Designer,Design,E1,Contractor,Leave,FMLA,2022-01-10,,America/New_York",
        "E3,Li,Wei,,Intern,Engineering,E1,intern,terminated,,2023-06-01,2023-08-31,",
    ]);
    let r = parse_csv("hr.csv", text.as_bytes(), &HeaderDefinition::default()).unwrap();
    assert_eq!((r.rows, r.accepted.len(), r.quarantined.len()), (3, 3, 0));
    let zoe = &r.accepted[0];
    assert_eq!(zoe.first_name.as_str(), "Zoë");
    assert_eq!(zoe.last_name.as_str(), "Ñúñez-Øster");
    assert_eq!(zoe.work_email.as_ref().unwrap().as_str(), "zoe.nunez@acme.example");
    assert_eq!(zoe.hire_date.to_string(), "2021-03-15");
    assert_eq!(r.accepted[1].status, Status::Leave { kind: LeaveKind::Fmla });
    assert_eq!(r.accepted[2].termination_date.unwrap().to_string(), "2023-08-31");
    assert_eq!(r.checksum.len(), 64);
}

#[test]
fn a_missing_required_column_rejects_the_whole_file_and_other_columns_are_listed_not_read() {
    let text = "employee_id,first_name,surname_x,status,hire_date,shoe_size\nE1,A,B,active,2020-01-01,42\n";
    let e = parse_csv("bad.csv", text.as_bytes(), &HeaderDefinition::default()).unwrap_err();
    assert_eq!(e.missing, vec!["last_name", "employment_type"]);
    assert!(e.to_string().contains("bad.csv"), "{e}");
    assert!(e.reason.contains("missing columns: last_name, employment_type"), "{}", e.reason);
    // Columns the definition does not name are ignored and listed once.
    let ok = "employee_id,first_name,last_name,employment_type,status,hire_date,shoe_size,,Badge\n\
              E1,A,B,employee,active,2020-01-01,42,x,=1+1\n";
    let r = parse_csv("extra.csv", ok.as_bytes(), &HeaderDefinition::default()).unwrap();
    assert_eq!(r.accepted.len(), 1);
    assert_eq!(r.ignored_columns, vec!["shoe_size", "Badge"]);
    assert!(r.flagged.is_empty(), "an ignored column is not carried, so not flagged: {:?}", r.flagged);
    // strict = true refuses them instead, naming them.
    let strict = HeaderDefinition { strict: true, ..HeaderDefinition::default() };
    let e = parse_csv("extra.csv", ok.as_bytes(), &strict).unwrap_err();
    assert_eq!(e.unexpected, vec!["shoe_size", "(column 8, no header)", "Badge"]);
    assert!(e.reason.contains("unexpected columns (strict = true): shoe_size"), "{}", e.reason);
}

#[test]
fn ambiguous_dates_are_refused_not_guessed_and_the_report_says_each_columns_format() {
    let head = "employee_id,first_name,last_name,employment_type,status,hire_date,termination_date\n";
    let amb = format!("{head}E1,A,B,employee,active,1/2/2020,\nE2,C,D,employee,active,3/4/2021,\n");
    let e = parse_csv("amb.csv", amb.as_bytes(), &HeaderDefinition::default()).unwrap_err();
    assert!(
        e.reason.contains("\"hire_date\": its dates fit both month-first and day-first (row 1: 1/2/2020"),
        "{}",
        e.reason
    );
    // Fixed by the definition: read as it says.
    let fixed = HeaderDefinition { date_formats: vec!["%d/%m/%Y".into()], ..HeaderDefinition::default() };
    let r = parse_csv("amb.csv", amb.as_bytes(), &fixed).unwrap();
    assert_eq!(r.accepted[0].hire_date.to_string(), "2020-02-01");
    // One row that can only be day-first settles the column, and the other date column too.
    let told = format!("{head}E1,A,B,employee,active,1/2/2020,3/4/2030\nE2,C,D,employee,active,25/12/2021,\n");
    let r = parse_csv("told.csv", told.as_bytes(), &HeaderDefinition::default()).unwrap();
    assert_eq!(r.accepted[0].hire_date.to_string(), "2020-02-01");
    assert_eq!(r.accepted[0].termination_date.unwrap().to_string(), "2030-04-03");
    assert!(
        r.date_formats["hire_date"].starts_with("%d/%m/%Y (day first, as row 2 shows: 25/12/2021)"),
        "{:?}",
        r.date_formats
    );
    assert!(r.date_formats["termination_date"].contains("as the file's other date columns"), "{:?}", r.date_formats);
    // Both orders in one column: refused, naming both rows.
    let mixed = format!("{head}E1,A,B,employee,active,12/25/2020,\nE2,C,D,employee,active,25/12/2021,\n");
    let e = parse_csv("mixed.csv", mixed.as_bytes(), &HeaderDefinition::default()).unwrap_err();
    assert!(
        e.reason.contains("month-first dates (row 1: 12/25/2020) and day-first dates (row 2: 25/12/2021)"),
        "{}",
        e.reason
    );
}

#[test]
fn a_delta_row_may_carry_only_what_changed_for_a_known_worker() {
    let full = "employee_id,first_name,last_name,employment_type,status,hire_date,title\nE1,Ann,Lee,employee,active,2020-01-01,Engineer\n";
    let known: std::collections::HashMap<_, _> = parse_csv("f.csv", full.as_bytes(), &HeaderDefinition::default())
        .unwrap()
        .accepted
        .into_iter()
        .map(|w| (w.id.clone(), w))
        .collect();
    let delta = "employee_id,status,termination_date\nE1,terminated,2026-12-31\nE2,active,\n";
    let r = hr::parse_csv_with("d.csv", delta.as_bytes(), &HeaderDefinition::default(), Some(&known)).unwrap();
    assert_eq!(r.accepted.len(), 1);
    let w = &r.accepted[0];
    assert_eq!((w.first_name.as_str(), w.title.as_deref(), &w.status), ("Ann", Some("Engineer"), &Status::Terminated));
    assert_eq!(w.termination_date.unwrap().to_string(), "2026-12-31");
    // A worker tenure does not know needs every required field.
    let q = &r.quarantined[0];
    assert_eq!(q.worker_id.as_ref().unwrap().as_str(), "E2");
    assert!(
        q.problems.iter().any(|p| p.reason.contains("required for a worker tenure does not know yet")),
        "{:?}",
        q.problems
    );
    // Without `known` (a full load), the same file is refused for its missing columns.
    assert!(parse_csv("d.csv", delta.as_bytes(), &HeaderDefinition::default()).is_err());
}

#[test]
fn headers_match_by_alias_and_without_regard_to_case_or_spacing() {
    let text = "Employee ID,First Name,Surname,Worker Type,Status,Start Date\nE1,Ann,Lee,employee,active,2020-01-01\n";
    let r = parse_csv("alias.csv", text.as_bytes(), &HeaderDefinition::default()).unwrap();
    assert_eq!(r.accepted.len(), 1);
}

#[test]
fn each_bad_value_is_quarantined_saying_where_and_why_and_the_rest_go_on() {
    let text = file(&[
        "E1,Ann,Lee,ann@acme.example,,,,employee,active,,2021-02-30,,",
        "E2,Bob,Ray,bob-at-acme,,,,employee,active,,2021-01-01,,",
        "E3,,Kay,,,,,employee,active,,2021-01-01,,",
        "E4,Cy,Orr,,,,,employee,retired,,2021-01-01,,",
        "E5,Di,Poe,,,,,employee,active,,2021-01-01,2020-01-01,",
        "E6,Ed,Fox,,,,,employee,active,,2021-01-01,,Mars/Base",
        "E7,Fa,Gil,,,,,employee,active,,2021-01-01,,",
        "E7,Fa,Gill,,,,,employee,active,,2021-01-01,,",
        "E8,Gu,Hal,,,,,employee,active,,2021-01-01",
        "E9,Ok,Fine,,,,,employee,active,,2021-01-01,,",
    ]);
    let r = parse_csv("rows.csv", text.as_bytes(), &HeaderDefinition::default()).unwrap();
    assert_eq!(r.rows, 10);
    assert_eq!(r.accepted.len() + r.quarantined.len(), r.rows, "nothing lost");
    assert_eq!(r.accepted.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(), vec!["E9"]);
    let find = |row: usize| r.quarantined.iter().find(|q| q.row == row).unwrap_or_else(|| panic!("row {row}"));
    let p = &find(1).problems[0];
    assert_eq!((p.column.as_str(), p.value.as_str()), ("hire_date", "2021-02-30"));
    assert_eq!(find(1).line, 2);
    assert_eq!(find(2).problems[0].column, "work_email");
    assert_eq!(
        (find(3).problems[0].column.as_str(), find(3).problems[0].reason.as_str()),
        ("first_name", "the name is empty")
    );
    assert_eq!(find(4).problems[0].value, "retired");
    assert!(find(5).problems[0].reason.contains("before the hire date"));
    assert!(find(6).problems[0].reason.contains("IANA"));
    assert!(find(7).problems[0].reason.contains("appears on rows 7, 8"), "{:?}", find(7).problems);
    assert!(find(8).problems[0].reason.contains("appears on rows 7, 8"));
    assert_eq!(find(8).raw[2], "Gill", "a duplicate keeps its row as read");
    assert_eq!(find(8).line, 9);
    assert!(find(9).problems[0].reason.contains("11 fields, the header has 13"), "{:?}", find(9).problems);
    assert_eq!(find(9).raw.len(), 11, "the raw row is kept");
}

#[test]
fn encodings_bom_and_windows_1252_and_delimiter() {
    let with_bom = format!("\u{feff}{}", file(&["E1,Ann,Lee,,,,,employee,active,,2021-01-01,,"]));
    assert_eq!(parse_csv("bom.csv", with_bom.as_bytes(), &HeaderDefinition::default()).unwrap().accepted.len(), 1);
    // "Renée" in Windows-1252: 0xE9 for é.
    let mut cp1252 = file(&[]).into_bytes();
    cp1252.extend_from_slice(b"E1,Ren\xe9e,Lee,,,,,employee,active,,2021-01-01,,\n");
    let e = parse_csv("excel.csv", &cp1252, &HeaderDefinition::default()).unwrap_err();
    assert!(e.reason.contains("line 2") && e.reason.contains("Windows-1252"), "{}", e.reason);
    let def = HeaderDefinition { encoding: Encoding::Windows1252, ..HeaderDefinition::default() };
    let r = parse_csv("excel.csv", &cp1252, &def).unwrap();
    assert_eq!(r.accepted[0].first_name.as_str(), "Renée");
    let semi = file(&["E1,Ann,Lee,,,,,employee,active,,2021-01-01,,"]).replace(',', ";");
    let def = HeaderDefinition { delimiter: b';', ..HeaderDefinition::default() };
    assert_eq!(parse_csv("semi.csv", semi.as_bytes(), &def).unwrap().accepted.len(), 1);
}

#[test]
fn custom_columns_and_date_formats_are_configurable() {
    let def = HeaderDefinition { date_formats: vec!["%d.%m.%Y".into()], ..HeaderDefinition::default() }
        .with_custom("badge", true);
    let text = "employee_id,first_name,last_name,employment_type,status,hire_date,badge\nE1,A,B,employee,active,31.12.2020,B-7\nE2,C,D,employee,active,31.12.2020,\n";
    let r = parse_csv("c.csv", text.as_bytes(), &def).unwrap();
    assert_eq!(r.accepted[0].custom["badge"], "B-7");
    assert_eq!(r.accepted[0].hire_date.to_string(), "2020-12-31");
    assert_eq!(r.quarantined[0].problems[0].column, "badge");
}

#[test]
fn formula_like_values_are_flagged_kept_as_data_and_neutralised_for_csv() {
    let csv = "employee_id,first_name,last_name,employment_type,status,hire_date,title\n\
               1,Ann,Lee,employee,active,2020-01-01,=1+1\n\
               2,Bob,Ray,employee,active,2020-01-01,@SUM(A1)\n\
               3,Cat,Kim,employee,active,2020-01-01,Engineer\n";
    let r = hr::parse_csv("f.csv", csv.as_bytes(), &hr::HeaderDefinition::default()).unwrap();
    assert_eq!(r.accepted.len(), 3);
    assert_eq!(r.accepted[0].title.as_deref(), Some("=1+1"), "carried as data");
    let flagged: Vec<(usize, &str)> = r.flagged.iter().map(|f| (f.row, f.column.as_str())).collect();
    assert_eq!(flagged, vec![(1, "title"), (2, "title")]);
    for (v, safe) in [("=1+1", "'=1+1"), ("+1", "'+1"), ("-2", "'-2"), ("@x", "'@x"), ("\tx", "'\tx"), ("ok", "ok")] {
        assert_eq!(hr::csv_safe(v), safe);
    }
}

#[test]
fn a_field_over_the_cap_quarantines_its_row_with_the_length_and_keeps_the_id() {
    let long = "z".repeat(5000);
    let csv = format!("employee_id,first_name,last_name,employment_type,status,hire_date,title\n7,Ann,Lee,employee,active,2020-01-01,{long}\n");
    let r = hr::parse_csv("f.csv", csv.as_bytes(), &hr::HeaderDefinition::default()).unwrap();
    assert_eq!(r.quarantined.len(), 1);
    let q = &r.quarantined[0];
    assert_eq!(q.worker_id.as_ref().map(|w| w.as_str()), Some("7"), "held, never taken as missing");
    assert!(q.problems[0].reason.contains("5000 bytes, over the limit of 1024"), "{:?}", q.problems);
    assert!(q.raw.iter().all(|v| v.len() < 1200), "the value is not kept whole");
    let def = hr::HeaderDefinition { max_field_bytes: 8192, ..hr::HeaderDefinition::default() };
    assert_eq!(hr::parse_csv("f.csv", csv.as_bytes(), &def).unwrap().accepted.len(), 1);
}

#[test]
fn an_unclosed_quote_rejects_the_file_naming_the_line_it_opened_on() {
    let head = "employee_id,first_name,last_name,employment_type,status,hire_date\n";
    let rows: Vec<String> = (1..=10).map(|i| format!("{i},Ann{i},Lee,employee,active,2020-01-01")).collect();
    let mut bad = rows.clone();
    bad[2] = "3,\"Ann3,Lee,employee,active,2020-01-01".into();
    let csv = format!("{head}{}\n", bad.join("\n"));
    let e = hr::parse_csv("x.csv", csv.as_bytes(), &hr::HeaderDefinition::default()).unwrap_err();
    assert!(e.reason.contains("line 4, field 2: a quote opened here is not closed"), "{}", e.reason);
    let ok = format!("{head}{}\n", rows.join("\n"));
    assert_eq!(hr::parse_csv("x.csv", ok.as_bytes(), &hr::HeaderDefinition::default()).unwrap().accepted.len(), 10);
}

#[test]
fn two_stray_quotes_that_merge_rows_reject_the_file_and_an_address_on_two_lines_does_not() {
    let head = "employee_id,first_name,last_name,employment_type,status,hire_date,title\n";
    let rows: Vec<String> = (1..=6).map(|i| format!("{i},Ann{i},Lee,employee,active,2020-01-01,Engineer")).collect();
    // A quote opens row 3's last name and closes in row 4's: parsed, the two rows are one
    // record with the header's seven fields, and row 4's worker would be gone.
    let mut bad = rows.clone();
    bad[2] = "3,Ann3,\"Lee,employee,active,2020-01-01,Engineer".into();
    bad[3] = "4,Ann4,Lee\",employee,active,2020-01-01,Engineer".into();
    let csv = format!("{head}{}\n", bad.join("\n"));
    let e = hr::parse_csv("x.csv", csv.as_bytes(), &hr::HeaderDefinition::default()).unwrap_err();
    assert!(e.reason.contains("line 4, field 3: a quote opened here is not closed"), "{}", e.reason);
    assert!(
        e.reason.contains("lines 4 to 5 were read as one row, yet 2 of them hold a whole row's fields"),
        "{}",
        e.reason
    );
    // A quoted title on two lines is one row's value.
    let mut ok = rows.clone();
    ok[2] = "3,Ann3,Lee,employee,active,2020-01-01,\"Engineer,\nPlatform\"".into();
    let csv = format!("{head}{}\n", ok.join("\n"));
    let r = hr::parse_csv("x.csv", csv.as_bytes(), &hr::HeaderDefinition::default()).unwrap();
    assert_eq!((r.accepted.len(), r.quarantined.len()), (6, 0));
}

#[test]
fn an_id_on_several_rows_that_all_say_left_is_a_leaver_whichever_row_is_right() {
    let text = file(&[
        "E1,Ann,Lee,ann@acme.example,Engineer,Engineering,,employee,terminated,,2020-01-01,2026-05-31,",
        "E2,Bob,Ray,bob@acme.example,Engineer,Engineering,,employee,terminated,,2020-01-01,2026-05-31,",
        "E1,Ann,Lee,ann@acme.example,Engineer,Engineering,,employee,terminated,,2020-01-01,2026-05-29,",
        "E2,Bob,Ray,bob@acme.example,Engineer,Engineering,,employee,active,,2020-01-01,,",
        "E3,Cat,Moe,cat@acme.example,Engineer,Engineering,,employee,terminated,,2020-01-01,2026-05-31,",
        "E3,Cat,Moe,cat@acme.example,Engineer,Engineering,,employee,terminated,,2020-01-01,not-a-date,",
    ]);
    let r = parse_csv("hr.csv", text.as_bytes(), &HeaderDefinition::default()).unwrap();
    assert_eq!((r.accepted.len(), r.quarantined.len()), (0, 6));
    let left = r.leavers_on_every_row();
    // E2's rows disagree; one of E3's rows cannot be read: only E1, at its earliest date.
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!((left[0].0.id.as_str(), left[0].1.as_slice()), ("E1", [1, 3].as_slice()));
    assert_eq!(left[0].0.termination_date.unwrap().to_string(), "2026-05-29");
}

#[test]
fn row_lines_are_the_same_in_crlf_files_and_with_quoted_line_breaks() {
    let head = "employee_id,first_name,last_name,employment_type,status,hire_date,title";
    let rows = [
        "1,Ann,Lee,employee,active,2020-01-01,Engineer",
        // An address-like title on two lines: the next row starts two lines further.
        "2,Bob,Ray,employee,active,2020-01-01,\"Head of\nSales\"",
        "3,Cat,Kim,employee,active,2020-13-01,Engineer",
        "4,Dan,Wu,employee,active,2020-02-30,Engineer",
    ];
    let lf = format!("{head}\n{}\n", rows.join("\n"));
    let crlf = lf.replace('\n', "\r\n");
    let bom = format!("\u{feff}{crlf}");
    for (what, text) in [("LF", &lf), ("CRLF", &crlf), ("CRLF with a byte order mark", &bom)] {
        let r = hr::parse_csv("x.csv", text.as_bytes(), &HeaderDefinition::default()).unwrap();
        let lines: Vec<(usize, u64, String)> =
            r.quarantined.iter().map(|q| (q.row, q.line, q.worker_id.as_ref().unwrap().as_str().to_string())).collect();
        // Header on line 1, Ann 2, Bob 3-4, Cat 5, Dan 6.
        assert_eq!(lines, [(3, 5, "3".to_string()), (4, 6, "4".to_string())], "{what}");
    }
}
