//! Per-field summaries of a load, and the warning for values no role or team rule condition
//! names.

use rules::summary::{summarize, SummaryRules};
use rules::Config;

const TODAY: jiff::civil::Date = jiff::civil::date(2026, 12, 1);

fn workers(csv: &str) -> Vec<hr::Worker> {
    let def = hr::HeaderDefinition::default().with_custom("level", false);
    let r = hr::parse_csv("t.csv", csv.as_bytes(), &def).unwrap();
    assert!(r.quarantined.is_empty(), "{:?}", r.quarantined);
    r.accepted
}

const HEAD: &str = "employee_id,first_name,last_name,work_email,department,employment_type,status,hire_date,level\n";

fn config(roles: &str) -> Config {
    let text = format!(
        "[hr]\ncustom_fields = [\"level\"]\n[[connection]]\nname = \"m\"\n[connection.mappings]\nuserName = \
         \"=work_email\"\ndisplayName = \"=first_name\"\n{roles}"
    );
    Config::from_toml("t.toml", &text).unwrap_or_else(|e| panic!("{e:?}"))
}

fn population() -> Vec<hr::Worker> {
    let mut csv = HEAD.to_string();
    // 7 departments: Sales x6, Eng x5, Ops x4, Legal x3, HR x2, Board x1, one empty.
    let depts = [("Sales", 6), ("Eng", 5), ("Ops", 4), ("Legal", 3), ("HR", 2), ("Board", 1), ("", 1)];
    let mut n = 0;
    for (d, k) in depts {
        for _ in 0..k {
            n += 1;
            let kind = if n % 4 == 0 {
                "contractor"
            } else if n == 5 {
                "intern"
            } else {
                "employee"
            };
            csv.push_str(&format!("{n},A{n},B,a{n}@x.example,{d},{kind},active,2020-01-01,{}\n", n % 3));
        }
    }
    workers(&csv)
}

#[test]
fn counts_top_values_other_and_empty_per_field() {
    let s = summarize(&population(), &SummaryRules::of(&config("")), TODAY);
    assert_eq!(s.workers, 22);
    let dept = s.fields.iter().find(|f| f.field == "department").unwrap();
    assert_eq!(dept.distinct, 6);
    let top: Vec<(&str, usize)> = dept.top.iter().map(|c| (c.value.as_str(), c.workers)).collect();
    assert_eq!(top, [("Sales", 6), ("Eng", 5), ("Ops", 4), ("Legal", 3), ("HR", 2)]);
    assert_eq!((dept.other, dept.empty), (1, 1));
    let custom = s.fields.iter().find(|f| f.field == "custom.level").expect("custom fields are summarised");
    assert_eq!(custom.distinct, 3);
    let kind = s.fields.iter().find(|f| f.field == "employment_type").unwrap();
    assert_eq!(kind.top.iter().map(|c| c.workers).sum::<usize>(), 22);
    // No condition names anything: nothing to warn about.
    assert!(s.unnamed.is_empty(), "{:?}", s.unnamed);
    let line = &s.lines()[0];
    assert!(line.starts_with("department: 6 value(s): Sales 6, Eng 5"), "{line}");
    assert!(line.ends_with("; other 1; empty 1"), "{line}");
}

#[test]
fn warns_of_values_no_role_names_on_workers_no_role_takes() {
    let cfg = config(
        "[[role]]\nname = \"core\"\nwhen = { field = \"department\", op = \"in\", values = [\"Sales\", \"eng\"] \
         }\n[role.grants.m]\nuser_type = \"member\"\n[[role]]\nname = \"contractors\"\nwhen = { field = \
         \"employment_type\", op = \"equals\", value = \"contractor\" }\n[role.grants.m]\nuser_type = \
         \"guest\"\n[[team_rule]]\nname = \"ops\"\nwhen = { field = \"department\", op = \"equals\", value = \
         \"Ops\" }\nteams = [\"Ops\"]\n",
    );
    let s = summarize(&population(), &SummaryRules::of(&cfg), TODAY);
    // Workers 13-15 (Ops), 17-18 (Legal), 19 (HR), 21 (Board) and 22 (no department) match
    // no role; Sales' intern and every contractor do. A team rule's values are not a role's.
    let depts = s.unnamed.iter().find(|u| u.field == "department").expect("departments no role names");
    let names: Vec<(&str, usize)> = depts.values.iter().map(|c| (c.value.as_str(), c.workers)).collect();
    assert_eq!(names, [("Ops", 3), ("Legal", 2), ("Board", 1), ("HR", 1)]);
    assert_eq!((depts.distinct, depts.workers), (4, 7));
    let kinds = s.unnamed.iter().find(|u| u.field == "employment_type").expect("employee is named by no role");
    assert_eq!(kinds.values.iter().map(|c| (c.value.as_str(), c.workers)).collect::<Vec<_>>(), [("employee", 8)]);
    let msg = depts.message();
    assert!(msg.starts_with("field department: 4 value(s) that no role condition names, on 7 worker(s)"), "{msg}");
    assert!(msg.contains("\"Legal\" (2)"), "{msg}");
    // A catch-all role takes everyone: nothing is left without a role, nothing to warn about.
    let catch_all = format!(
        "{}[[role]]\nname = \"everyone\"\n[role.grants.m]\nuser_type = \"viewer\"\n",
        "[[role]]\nname = \"core\"\nwhen = { field = \"department\", op = \"in\", values = [\"Sales\"] \
         }\n[role.grants.m]\nuser_type = \"member\"\n"
    );
    let s = summarize(&population(), &SummaryRules::of(&config(&catch_all)), TODAY);
    assert!(s.unnamed.is_empty(), "{:?}", s.unnamed);
}

#[test]
fn leavers_are_not_warned_about() {
    let mut csv = HEAD.to_string();
    csv.push_str(
        "1,A,B,a@x.example,Sales,employee,active,2020-01-01,1
",
    );
    csv.push_str(
        "2,C,D,c@x.example,Legal,employee,terminated,2020-01-01,1
",
    );
    let cfg = config(
        "[[role]]\nname = \"sales\"\nwhen = { field = \"department\", op = \"equals\", value = \"Sales\" \
         }\n[role.grants.m]\nuser_type = \"member\"\n",
    );
    let s = summarize(&workers(&csv), &SummaryRules::of(&cfg), TODAY);
    assert!(s.unnamed.is_empty(), "{:?}", s.unnamed);
    let dept = s.fields.iter().find(|f| f.field == "department").unwrap();
    assert_eq!(dept.distinct, 2, "a leaver's values are still summarised");
}

#[test]
fn a_field_read_other_than_by_named_values_is_not_warned_about() {
    for when in [
        "{ field = \"department\", op = \"contains\", value = \"a\" }",
        "{ not = { field = \"department\", op = \"equals\", value = \"Board\" } }",
        "{ field = \"department\", op = \"not_equals\", value = \"Board\" }",
        "{ all = [{ field = \"department\", op = \"equals\", value = \"Sales\" }, { field = \"department\", op = \
         \"matches\", value = \"^E\" }] }",
    ] {
        let cfg = config(&format!("[[role]]\nname = \"r\"\nwhen = {when}\n[role.grants.m]\nuser_type = \"member\"\n"));
        let s = summarize(&population(), &SummaryRules::of(&cfg), TODAY);
        assert!(s.unnamed.iter().all(|u| u.field != "department"), "{when}: {:?}", s.unnamed);
    }
}

#[test]
fn a_field_only_a_condition_reads_is_summarised_too() {
    let cfg = config(
        "[[role]]\nname = \"r\"\nwhen = { field = \"work_email\", op = \"equals\", value = \"a1@x.example\" \
         }\n[role.grants.m]\nuser_type = \"member\"\n[[team_rule]]\nname = \"t\"\nwhen = { field = \
         \"first_name\", op = \"equals\", value = \"A1\" }\nteams = [\"One\"]\n",
    );
    let s = summarize(&population(), &SummaryRules::of(&cfg), TODAY);
    let f = s.fields.iter().find(|f| f.field == "work_email").expect("summarised");
    assert_eq!(f.distinct, 22);
    assert!(s.fields.iter().any(|f| f.field == "first_name"), "a team rule's field is summarised");
    assert!(s.unnamed.iter().all(|u| u.field != "first_name"), "a team rule's values warn of nothing");
    let u = s.unnamed.iter().find(|u| u.field == "work_email").unwrap();
    assert_eq!((u.distinct, u.values.len(), u.workers), (21, 10, 21));
    assert!(u.message().ends_with(" and 11 more"), "{}", u.message());
}
