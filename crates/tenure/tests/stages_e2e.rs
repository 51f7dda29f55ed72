//! Supervised stages as people mean them, end to end with the real binary and the sandbox: a
//! termination and a leave of absence told apart, a mover's team change apart from a title
//! change, each review carrying the HR event behind it (kind, moment in UTC and in the
//! worker's zone, the load) and who set it in motion; and "leave", the name of before, read
//! as it always was, `config check` saying so.

mod common;

use common::env::*;
use serde_json::Value;

const T0: &str = "2026-06-01T12:00:00Z";

fn ann(status: &str, leave_and_hire: &str, rest: &str) -> String {
    row("1", "Ann", "Lee", "Engineer", "Engineering", "employee", status, leave_and_hire, rest)
}
fn bob(status: &str, leave_and_hire: &str, rest: &str) -> String {
    row("2", "Bob", "Ray", "Analyst", "Sales", "employee", status, leave_and_hire, rest)
}
fn cat(dept: &str, title: &str) -> String {
    row("3", "Cat", "Kim", title, dept, "employee", "active", ",2020-01-01", ",,,Asia/Tokyo")
}

#[tokio::test]
async fn a_termination_and_a_leave_of_absence_are_supervised_apart_and_each_review_says_why() {
    let sb = common::spawn(&[]);
    let env = Env::connect_with(&sb, "stages", "", "supervised = [\"termination\", \"team_change\"]");
    // A team per department, so that a move between departments is a team change.
    let rules = std::fs::read_to_string(env.dir.join("rules.toml")).unwrap()
        + "\n[[team_rule]]\nname = \"Departments\"\nteams = [\"=department\"]\n";
    std::fs::write(env.dir.join("rules.toml"), rules).unwrap();
    env.ok(&["config", "import", env.dir.join("rules.toml").to_str().unwrap()]);
    let day0 = [
        ann("active", ",2020-01-01", ",,,Europe/Paris"),
        bob("active", ",2020-01-01", ",,,America/New_York"),
        cat("Sales", "Analyst"),
    ];
    env.load("day0.csv", &day0, T0, &[]);
    assert!(env.ok(&["apply", "--as-of", T0]).contains("failed 0"), "hires are not supervised");

    // Ann is terminated, Bob goes on family leave, Cat moves to Support and is promoted.
    let day1 = [
        ann("terminated", ",2020-01-01", "2026-05-31,,,Europe/Paris"),
        bob("leave", "fmla,2020-01-01", ",2026-06-01,,America/New_York"),
        cat("Support", "Senior Analyst"),
    ];
    env.load("day1.csv", &day1, T0, &[]);
    let out = env.ok(&["apply", "--as-of", T0]);
    assert!(out.contains("failed 0"), "{out}");
    let acc = accounts(&sb).await;
    assert_eq!(acc["ann.lee@acme.example"]["active"], true, "a termination waits for a reviewer");
    assert_eq!(acc["bob.ray@acme.example"]["active"], false, "a leave of absence is not supervised here");
    // A mover's team change waits, title change and all (one worker's actions go together).
    assert_eq!(acc["cat.kim@acme.example"]["title"], "Analyst");

    let v: Value = serde_json::from_str(&env.ok(&["reviews", "--json"])).unwrap();
    let reviews = v.as_array().unwrap();
    assert_eq!(reviews.len(), 2, "{v:#}");
    let of = |w: &str| reviews.iter().find(|r| r["worker"] == w).unwrap_or_else(|| panic!("no review of {w}: {v:#}"));
    let ann_r = of("1");
    assert_eq!(ann_r["stage"], "termination");
    assert_eq!(ann_r["name"], "Ann Lee");
    let e = &ann_r["hr_event"];
    assert_eq!(e["kind"], "termination", "{e}");
    assert_eq!(e["time_zone"], "Europe/Paris");
    // The day's end in Paris, said in UTC and in her zone.
    assert_eq!(e["effective"], "2026-05-31T22:00:00Z", "{e}");
    assert!(e["effective_local"].as_str().unwrap().starts_with("2026-06-01T00:00:00+02:00"), "{e}");
    let load_id = e["load_id"].as_str().unwrap();
    let loads = env.ok(&["hr", "loads"]);
    let newest = loads.lines().find(|l| l.contains("day1.csv")).unwrap_or_else(|| panic!("{loads}"));
    assert!(newest.contains(load_id), "the day's load ({load_id}): {loads}");
    assert!(ann_r["actions"].to_string().contains("deactivate"), "{ann_r}");
    // Who set it in motion: the run was started from the command line (by this login).
    assert!(ann_r["started_by"].as_str().is_some_and(|p| !p.is_empty()), "who set it in motion: {ann_r}");
    let cat_r = of("3");
    assert_eq!(cat_r["stage"], "team_change");
    assert!(cat_r["actions"].to_string().contains("Support"), "{cat_r}");
    // The same in words.
    let text = env.ok(&["reviews"]);
    assert!(text.contains("worker 1 (Ann Lee) termination"), "{text}");
    assert!(
        text.contains("HR event: termination, effective 2026-05-31T22:00:00Z (2026-06-01T00:00:00+02:00"),
        "{text}"
    );
    assert!(text.contains("set in motion: run started by"), "{text}");

    // The queue filtered by stage.
    let v: Value = serde_json::from_str(&env.ok(&["reviews", "--json"])).unwrap();
    assert!(v.as_array().unwrap().iter().all(|r| r["stage"] != "leave_of_absence"));
}

#[test]
fn leave_the_name_of_before_keeps_its_meaning_and_check_says_what_it_covers() {
    let sb = common::spawn(&[]);
    let env = Env::connect_with(&sb, "stages-old", "", "supervised = [\"leave\", \"hire\"]");
    let file = env.dir.join("rules.toml");
    let check = env.ok(&["config", "check", file.to_str().unwrap()]);
    assert!(
        check.contains(
            "supervised: \"leave\" is read as \"termination\" and \"leave_of_absence\", every deactivation, as before"
        ),
        "{check}"
    );
    let exported = env.ok(&["config", "export"]);
    assert!(
        exported.contains("supervised = [\n    \"hire\",\n    \"termination\",\n    \"leave_of_absence\",\n]"),
        "{exported}"
    );
}
