//! Teams from HR data end to end, with the real binary and the sandbox: a team per department
//! from one team rule, contractors in their department through it whatever their role, a mover
//! changing team in one run, a bad name from data holding only its worker, the team guard
//! refusing a reorganisation until confirmed with its number, an emptied team tenure made
//! deleted when asked, and a formula that is not one refused at `config check` with its place.

mod common;

use common::env::*;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

const T0: &str = "2026-06-01T12:00:00Z";

/// 250 workers over 25 departments ("Dept 01".."Dept 25"), ten each; every fifth a contractor.
fn company(moves: &HashMap<usize, usize>) -> Vec<String> {
    (0..250)
        .map(|i| {
            let dept = moves.get(&i).copied().unwrap_or(i % 25);
            let typ = if i % 5 == 4 { "contractor" } else { "employee" };
            row(
                &format!("{}", 20_000 + i),
                "Worker",
                &format!("N{i:04}"),
                "Staff",
                &format!("Dept {:02}", dept + 1),
                typ,
                "active",
                ",2020-01-01",
                ",,,",
            )
        })
        .collect()
}

fn email(i: usize) -> String {
    format!("worker.n{i:04}@acme.example")
}

/// Team name -> member count, as the sandbox has them.
async fn team_sizes(sb: &common::Sandbox) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for u in accounts(sb).await.values() {
        for t in u["teams"].as_array().unwrap() {
            *out.entry(t.as_str().unwrap().to_string()).or_default() += 1;
        }
    }
    out
}

fn actions<'p>(plan: &'p Value, kind: &str) -> Vec<&'p Value> {
    plan["actions"].as_array().unwrap().iter().filter(|a| a["kind"] == kind).collect()
}

#[tokio::test]
async fn every_department_gets_its_team_from_one_rule_and_people_move_between_them() {
    let sb = common::spawn(&[]);
    let env = Env::connect_with(
        &sb,
        "teams",
        "",
        "team_guard = { max_share = 0.3, min_count = 5 }\nremove_empty_teams = true",
    );
    // The example rules (roles by employment type, the Engineering role with its own team,
    // Everyone as the default team) and one team rule for every department.
    let rules = std::fs::read_to_string(env.dir.join("rules.toml")).unwrap()
        + "\n[[team_rule]]\nname = \"Departments\"\nteams = [\"=department\"]\n";
    std::fs::write(env.dir.join("rules.toml"), &rules).unwrap();
    let check = env.ok(&["config", "check", env.dir.join("rules.toml").to_str().unwrap()]);
    assert!(!check.contains("=department\" starts"), "{check}");
    env.ok(&["config", "import", env.dir.join("rules.toml").to_str().unwrap()]);

    // A worker whose department is a paragraph pasted into the field: no team can have that name.
    let mut day0 = company(&HashMap::new());
    day0.push(row(
        "29999",
        "Long",
        "Name",
        "Staff",
        &"Operations ".repeat(30),
        "employee",
        "active",
        ",2020-01-01",
        ",,,",
    ));
    env.load("day0.csv", &day0, T0, &[]);
    let plan = env.plan(T0);
    let held: Vec<&Value> = plan["actions"].as_array().unwrap().iter().filter(|a| a["worker"] == "29999").collect();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["kind"], "skip");
    let reason = held[0]["reason"].as_str().unwrap();
    assert!(reason.starts_with("held: a team cannot be named from the HR data: team rule \"Departments\""), "{reason}");
    assert!(reason.contains("329 characters long, over the 255"), "{reason}");
    // A contractor joins their department's team through the rule, though their role names none.
    let contractor_joins: Vec<&str> = actions(&plan, "team_add")
        .into_iter()
        .filter(|a| a["worker"] == "20004")
        .map(|a| a["reason"].as_str().unwrap())
        .collect();
    assert!(
        contractor_joins.contains(&"team rule \"Departments\" puts the worker in \"Dept 05\""),
        "{contractor_joins:?}"
    );
    let out = env.ok(&["apply", "--as-of", T0]);
    assert!(out.contains("failed 0"), "{out}");

    let reviews = env.ok(&["reviews"]);
    assert!(reviews.contains("29999"), "the held worker is listed with the reviews: {reviews}");
    let acc = accounts(&sb).await;
    assert_eq!(acc.len(), 250, "everyone but the held worker has an account");
    assert!(!acc.values().any(|u| u["externalId"] == "29999"));
    let sizes = team_sizes(&sb).await;
    let depts: Vec<(&String, &usize)> = sizes.iter().filter(|(t, _)| t.starts_with("Dept ")).collect();
    assert_eq!(depts.len(), 25, "{sizes:?}");
    assert!(depts.iter().all(|(_, n)| **n == 10), "{sizes:?}");
    assert_eq!(sizes["Everyone"], 250);
    assert_eq!(acc[&email(4)]["userType"], "guest");
    assert_eq!(teams_of(&acc[&email(4)]), ["Dept 05", "Everyone"]);
    // `tenure preview` says what put the worker in each team.
    let why = env.ok(&["preview", "--worker", "20004", "--today", "2026-06-01"]);
    assert!(why.contains("team \"Dept 05\": put there by team rule \"Departments\""), "{why}");
    assert!(why.contains("team \"Everyone\": put there by the connection's default teams"), "{why}");

    // A mover changes team in one run: out of the old, into the new.
    let moved = HashMap::from([(0, 1)]);
    env.load("day1.csv", &company(&moved), T0, &[]);
    let plan = env.plan(T0);
    let team_moves: Vec<(String, String)> = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "team_add" || a["kind"] == "team_remove")
        .map(|a| (a["kind"].as_str().unwrap().to_string(), a["team"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(team_moves, [("team_add".to_string(), "Dept 02".to_string()), ("team_remove".into(), "Dept 01".into())]);
    env.ok(&["apply", "--as-of", T0]);
    assert_eq!(teams_of(&accounts(&sb).await[&email(0)]), ["Dept 02", "Everyone"]);

    // A reorganisation: six of Dept 03's ten go to Dept 04, and all of Dept 05 to Dept 06.
    let mut reorg = moved.clone();
    for i in [2, 27, 52, 77, 102, 127] {
        reorg.insert(i, 3);
    }
    for i in (4..250).step_by(25) {
        reorg.insert(i, 5);
    }
    env.load("day2.csv", &company(&reorg), T0, &[]);
    let joined_before = team_sizes(&sb).await["Dept 04"];
    let (code, out) = env.tenure(&["apply", "--as-of", T0]);
    assert_eq!(code, 3, "held by the team guard: {out}");
    assert!(out.contains("the team guard holds 16 team removals"), "{out}");
    assert!(out.contains("6 of the 10 members of \"Dept 03\" (60%)"), "{out}");
    assert!(out.contains("10 of the 10 members of \"Dept 05\" (100%)"), "{out}");
    assert!(out.contains("--confirm-team-removals 16"), "{out}");
    // Only the removals wait: the movers joined their new teams, and stay in the old.
    assert_eq!(team_sizes(&sb).await["Dept 03"], 10, "no removal was applied");
    assert_eq!(team_sizes(&sb).await["Dept 04"], joined_before + 6, "the joins went on");
    // The overview says so: `tenure status` (text and JSON) and the refused run in `tenure runs`.
    let status = env.ok(&["status"]);
    assert!(status.contains("the team guard holds"), "{status}");
    assert!(status.contains("--confirm-team-removals 16"), "{status}");
    let v: Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    let c = &v["connections"][0];
    assert_eq!(c["guard"]["guard"], "teams", "{v:#}");
    assert_eq!(c["guard"]["confirm_with"], 16, "{v:#}");
    assert_eq!(c["last_run"]["failed"], 0, "the last run that did something: {v:#}");
    assert_eq!(v["hr"]["last_received"]["rows"], 250, "{v:#}");
    let runs = env.ok(&["runs"]);
    let refused: Vec<&str> = runs.lines().filter(|l| l.contains("HELD by the guard: 16 team removals")).collect();
    assert_eq!(refused.len(), 1, "{runs}");
    assert!(refused[0].contains("REHEARSAL as of 2026-06-01T12:00:00Z"), "{runs}");
    assert!(refused[0].contains("--confirm-team-removals 16"), "{runs}");
    assert!(refused[0].contains("  by "), "who started it: {runs}");
    let (code, out) = env.tenure(&["apply", "--as-of", T0, "--confirm-team-removals", "15"]);
    assert_eq!(code, 3, "a wrong number does not confirm: {out}");
    let out = env.ok(&["apply", "--as-of", T0, "--confirm-team-removals", "16"]);
    assert!(out.contains("failed 0"), "{out}");
    let v: Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    assert!(v["connections"][0]["guard"].is_null(), "a run went through: {v:#}");
    // The accounts tenure manages, each with its worker and what was last done.
    let v: Value = serde_json::from_str(&env.ok(&["accounts", "--json"])).unwrap();
    let all = v.as_array().unwrap();
    assert_eq!(all.len(), 250, "the held worker has none");
    let first = all.iter().find(|a| a["worker"] == "20002").unwrap();
    assert_eq!((first["state"].as_str(), first["origin"].as_str()), (Some("active"), Some("created")), "{first}");
    assert_eq!(first["user_name"], email(2));
    assert_eq!(first["name"], "Worker N0002");
    // Moved from Dept 03 to Dept 04: joined while the guard held the removal, which the
    // confirmed run then made last.
    assert_eq!(first["last_action"]["action"], "team_remove", "{first}");
    assert_eq!(first["last_action"]["outcome"], "ok", "{first}");
    let text = env.ok(&["accounts"]);
    assert!(text.trim_end().ends_with("250 account(s)"), "{text}");
    let sizes = team_sizes(&sb).await;
    assert_eq!((sizes["Dept 03"], sizes["Dept 04"]), (4, 16), "{sizes:?}");
    assert_eq!(sizes["Dept 06"], 20, "{sizes:?}");
    // Dept 05, which tenure made, was left empty and is gone (remove_empty_teams).
    assert!(!sizes.contains_key("Dept 05"), "{sizes:?}");
    let groups = read_groups(&sb).await;
    assert!(!groups.iter().any(|g| g == "Dept 05"), "{groups:?}");
    assert!(groups.iter().any(|g| g == "Dept 03"));
    let audit = env.ok(&["audit", "export", "--format", "ndjson"]);
    let deleted: Vec<&str> = audit.lines().filter(|l| l.contains("\"team_delete\"")).collect();
    assert_eq!(deleted.len(), 1, "{audit}");
    assert!(deleted[0].contains("Dept 05"), "{}", deleted[0]);
    // The chain still holds with the team's record in it.
    assert!(env.ok(&["audit", "verify"]).contains("intact"));
}

async fn read_groups(sb: &common::Sandbox) -> Vec<String> {
    let c = reqwest::Client::new();
    let v: Value = c
        .get(format!("{}/Groups?count=1000", sb.base))
        .bearer_auth(&sb.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["Resources"].as_array().unwrap().iter().map(|g| g["displayName"].as_str().unwrap().to_string()).collect()
}

#[test]
fn a_team_that_starts_with_equals_but_is_no_formula_is_refused_at_check_with_its_place() {
    let dir = common::tempdir("teams-check");
    let rules =
        std::fs::read_to_string(RULES).unwrap().replace("teams = [\"Engineering\"]", "teams = [\"=departement\"]");
    let file = dir.join("rules.toml");
    std::fs::write(&file, rules).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("--data-dir")
        .arg(&dir)
        .args(["config", "check", file.to_str().unwrap()])
        .output()
        .unwrap();
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("role[0] (\"Engineering\").grants.\"Connection-Bearer Token-1\".teams[0]: \"=departement\" starts with \"=\", so it is read as a formula, and it is not one: line 1, column 2: unknown field"),
        "{out}"
    );
}

/// An account's teams, sorted: the target lists them in the order the teams were made, and a
/// run makes its missing teams at once, in any order.
fn teams_of(account: &serde_json::Value) -> Vec<String> {
    let mut teams: Vec<String> =
        account["teams"].as_array().unwrap().iter().filter_map(|t| t.as_str().map(str::to_string)).collect();
    teams.sort();
    teams
}
