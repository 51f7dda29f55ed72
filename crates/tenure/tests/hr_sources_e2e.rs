//! Real HR exports as they come (issue 15), end to end with the real binary: Workday-,
//! BambooHR- and Personio-shaped exports read by their definitions (and by one `hr definition
//! infer` proposes), lifecycle settings from the saved configuration, ambiguous dates
//! refused, refused files in the history, going back to an earlier load, partial changes,
//! the inbox under a running daemon, and the pull from an HTTPS report URL.

mod common;

use common::env::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const EXPORTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/hr/exports");
const AT: &str = "2026-12-01T12:00:00Z";

fn export(name: &str) -> String {
    format!("{EXPORTS}/{name}")
}

fn json_of(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

/// A data folder with no connection: only HR intake.
fn bare(tag: &str) -> Env {
    Env::new_store(tag, None)
}

fn write(env: &Env, name: &str, text: &str) -> PathBuf {
    let p = env.dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// The example rules with these `[hr]` settings (and sub-tables) put first.
fn rules_with(env: &Env, hr: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let rules = std::fs::read_to_string(RULES).unwrap();
    write(env, "rules.toml", &edit(format!("[hr]\n{hr}\n\n{rules}")))
}

#[test]
fn real_exports_read_by_their_definitions_and_by_an_inferred_one() {
    let env = bare("exports");
    for (file, def, delimiter) in [
        ("workday_workers.csv", "workday.toml", ","),
        ("bamboohr_employees.csv", "bamboohr.toml", ","),
        ("personio_employees.csv", "personio.toml", ";"),
    ] {
        let path = export(file);
        let bytes = std::fs::read(&path).unwrap();
        let header = String::from_utf8_lossy(&bytes).lines().next().unwrap().to_string();
        assert!(header.split(delimiter).count() >= 30, "{file}: an export of 30 columns or more");
        assert!(bytes.windows(2).any(|w| w == b"\r\n"), "{file}: CRLF as exported");
        // tenure's own header does not fit: refused whole, naming what is missing.
        let (code, out) = env.tenure(&["hr", "validate", &path]);
        assert_eq!(code, 1, "{file}: {out}");
        assert!(out.contains("rejected whole: "), "{file}: {out}");
        // Its definition reads every row; the columns it does not name are listed once.
        let (code, out) = env.tenure(&["hr", "validate", &path, "--config", &export(def)]);
        assert_eq!(code, 0, "{file}: {out}");
        assert!(out.ends_with("rows: 40, accepted: 40, quarantined: 0\n"), "{file}: {out}");
        assert_eq!(out.matches("not in the definition, ignored").count(), 1, "{file}: {out}");
        assert!(out.contains("dates read as"), "{file}: {out}");
        // And the one `hr definition infer` proposes reads them all too, as it stands.
        let proposed = env.ok(&["hr", "definition", "infer", &path]);
        let p = write(&env, &format!("{file}.toml"), &proposed);
        let (code, out) = env.tenure(&["hr", "validate", &path, "--config", p.to_str().unwrap()]);
        assert_eq!(code, 0, "{file}: inferred:\n{proposed}\n{out}");
        assert!(out.ends_with("rows: 40, accepted: 40, quarantined: 0\n"), "{file}: inferred:\n{proposed}\n{out}");
    }
    // The definition in force, as TOML: the saved one, or the file's with --config.
    let shown = env.ok(&["hr", "definition", "show", "--config", &export("personio.toml")]);
    assert!(shown.contains("delimiter = \";\""), "{shown}");
    assert!(shown.contains("employee_id = { header = \"ID\", required = true }"), "{shown}");
    assert!(shown.contains("\"onboarding\" = \"active\""), "{shown}");
    let own = env.ok(&["hr", "definition", "show"]);
    assert!(own.contains("tenure's own header") && own.contains("hire_date = { header = \"hire_date\""), "{own}");
    // A sample saved by Excel (Windows-1252) is read as such, and the proposal says so.
    let latin = std::fs::read_to_string(export("bamboohr_employees.csv")).unwrap();
    let (cp1252, _, _) = encoding_rs::WINDOWS_1252.encode(&latin);
    let p = write(&env, "excel.csv", "");
    std::fs::write(&p, &cp1252).unwrap();
    let proposed = env.ok(&["hr", "definition", "infer", p.to_str().unwrap()]);
    assert!(proposed.contains("encoding = \"windows-1252\""), "{proposed}");
    assert!(proposed.contains("# e.g. \"Amélie\""), "{proposed}");
    // What each definition made of the rows.
    let report = |file: &str, def: &str| {
        let o =
            env.command().args(["hr", "validate", &export(file), "--json", "--config", &export(def)]).output().unwrap();
        json_of(&String::from_utf8_lossy(&o.stdout))
    };
    let w = report("workday_workers.csv", "workday.toml");
    let jose = &w["accepted"][1];
    assert_eq!((jose["first_name"].as_str(), jose["preferred_name"].as_str()), (Some("José"), Some("Pepe")));
    assert_eq!(jose["custom"]["badge"], "B5001", "a declared custom field is carried");
    assert_eq!(w["accepted"][9]["status"]["state"], "leave", "\"On Leave\" translated: {}", w["accepted"][9]);
    assert_eq!(w["accepted"][4]["employment_type"], "contractor", "\"Contractor\" sub-type: {}", w["accepted"][4]);
    assert!(w["ignored_columns"].as_array().unwrap().iter().any(|c| c == "Pay Rate Type"), "{}", w["ignored_columns"]);
    assert_eq!(w["accepted"][17]["termination_date"], "2025-11-21", "US dates: {}", w["accepted"][17]);
    let p = report("personio_employees.csv", "personio.toml");
    assert_eq!(p["accepted"][17]["termination_date"], "2025-11-21", "German dates: {}", p["accepted"][17]);
    assert_eq!(p["accepted"][17]["status"]["state"], "terminated", "inactive is a leaver");
    assert_eq!(p["accepted"][4]["employment_type"], "contractor", "external: {}", p["accepted"][4]);
    let b = report("bamboohr_employees.csv", "bamboohr.toml");
    assert_eq!(b["accepted"][5]["status"]["state"], "terminated");
    assert!(b["accepted"][0]["time_zone"].is_null(), "BambooHR has no zone: the default applies");
}

#[tokio::test]
async fn a_custom_field_reaches_the_account_and_namesakes_keep_their_own_address() {
    let sb = common::spawn(&[]);
    let env = Env::connect(&sb, "custom", "");
    let def = std::fs::read_to_string(export("workday.toml")).unwrap();
    let def = def.replace("[hr]\n", "");
    let rules =
        rules_with(&env, &def, |r| r.replace("title = \"=title\"", "title = '=title & \" (\" & custom.badge & \")\"'"));
    env.ok(&["config", "import", rules.to_str().unwrap()]);
    let (code, out) = env.tenure(&["hr", "load", &export("workday_workers.csv"), "--as-of", AT]);
    assert_eq!(code, 0, "{out}");
    let preview = env.ok(&["preview", "--worker", "1001"]);
    assert!(preview.contains("\"Account Executive (B5001)\""), "{preview}");
    env.ok(&["apply", "--as-of", AT, "--yes"]);
    let acc = accounts(&sb).await;
    assert_eq!(acc["jose.garcia@acme.example"]["title"], "Account Executive (B5001)");
    // Two Jean Martins: each has the address HR gives, whatever order tenure meets them in.
    assert_eq!(acc["jean.martin@acme.example"]["externalId"], "1002");
    assert_eq!(acc["jean.martin2@acme.example"]["externalId"], "1003");
}

#[test]
fn lifecycle_settings_come_from_the_saved_configuration_and_flags_say_they_override() {
    let env = bare("lifecycle");
    let rules = rules_with(&env, "termination_hour = 5\ndefault_time_zone = \"Europe/Paris\"", |r| r);
    env.ok(&["config", "import", rules.to_str().unwrap()]);
    let f = write(
        &env,
        "hr.csv",
        &format!("{HEADER}\n1,Ann,Lee,ann.lee@acme.example,Engineer,Sales,employee,active,,2020-01-01,2026-12-18,,,\n"),
    );
    let (code, out) = env.tenure(&["hr", "load", f.to_str().unwrap(), "--as-of", AT]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("overrides"), "{out}");
    // 05:00 in Paris in winter: 04:00Z, as the plan will act.
    assert!(out.contains("waits until 2026-12-18T04:00:00Z"), "{out}");
    let events =
        json_of(&String::from_utf8_lossy(&env.command().args(["hr", "events", "--json"]).output().unwrap().stdout));
    assert_eq!(events[1]["effective"], "2026-12-18T04:00:00Z", "{events}");
    // A flag overrides for one command, and says so on stderr.
    let g = write(
        &env,
        "hr2.csv",
        &format!("{HEADER}\n1,Ann,Lee,ann.lee@acme.example,Engineer,Sales,employee,active,,2020-01-01,2026-12-19,,,\n"),
    );
    let o = env
        .command()
        .args(["hr", "load", g.to_str().unwrap(), "--as-of", AT, "--termination-hour", "17"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("note: --termination-hour 17 overrides [hr] termination_hour = 5"), "{err}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("waits until 2026-12-19T16:00:00Z"));
}

#[test]
fn refused_files_are_in_the_history_and_an_earlier_load_can_be_taken_again() {
    refused_and_back_to(&bare("back-to"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_files_and_back_to_on_postgres() {
    let Some(pg) = postgres("hr_sources_back_to").await else { return };
    let env = Env::new_store("back-to-pg", Some(pg.url.clone()));
    tokio::task::spawn_blocking(move || refused_and_back_to(&env)).await.unwrap();
}

fn refused_and_back_to(env: &Env) {
    let env = Env { dir: env.dir.clone(), database_url: env.database_url.clone() };
    let good = write(&env, "good.csv", &format!("{HEADER}\n{}\n", population(20).join("\n")));
    env.ok(&["hr", "load", good.to_str().unwrap(), "--as-of", AT]);
    // Dates that could be either order: refused, not guessed, and recorded as refused.
    let amb = write(
        &env,
        "amb.csv",
        &format!("{HEADER}\n1,Ann,Lee,ann.lee@acme.example,Engineer,Sales,employee,active,,1/2/2020,,,,\n"),
    );
    let (code, out) = env.tenure(&["hr", "load", amb.to_str().unwrap(), "--as-of", AT]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("could be either"), "{out}");
    // A truncated export: refused by the population check, and recorded.
    let short = write(&env, "short.csv", &format!("{HEADER}\n{}\n", population(20)[..5].join("\n")));
    let (code, out) = env.tenure(&["hr", "load", short.to_str().unwrap(), "--as-of", AT, "--missing", "terminate"]);
    assert_eq!(code, 7, "{out}");
    assert!(out.contains("has 5 workers where the last snapshot has 20"), "{out}");
    let text = env.ok(&["hr", "loads"]);
    assert!(text.contains("amb.csv (full)  REJECTED: column \"hire_date\""), "{text}");
    assert!(text.contains("short.csv (full)  REJECTED: refused: "), "{text}");
    assert!(text.ends_with("loads: 1, rejected: 2\n"), "{text}");
    // Someone confirms the bad file anyway: 15 terminations wait for the next run.
    let (code, out) = env.tenure(&[
        "hr",
        "load",
        short.to_str().unwrap(),
        "--as-of",
        AT,
        "--missing",
        "terminate",
        "--confirm-population",
        "5",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("termination 15"), "{out}");
    let loads = json_of(&env.ok(&["hr", "loads", "--json"]));
    let first = loads.as_array().unwrap().iter().find(|l| l["source"].as_str().unwrap().ends_with("good.csv")).unwrap();
    // Back to the good load: its pending terminations are cancelled, and no one is "rehired".
    let (code, out) = env.tenure(&["hr", "load", "--back-to", first["id"].as_str().unwrap(), "--as-of", AT]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("events: 0"), "{out}");
    let events = json_of(&env.ok(&["hr", "events", "--json"]));
    let of = |kind: &str, state: &str| {
        events.as_array().unwrap().iter().filter(|e| e["kind"] == kind && e["state"] == state).count()
    };
    assert_eq!(of("termination", "superseded"), 15, "{events}");
    assert_eq!(of("termination", "pending"), 0);
    assert_eq!(of("rehire", "pending"), 0);
    let loads = json_of(&env.ok(&["hr", "loads", "--json"]));
    let last = loads.as_array().unwrap().last().unwrap().clone();
    assert!(last["source"].as_str().unwrap().starts_with("back to load "), "{last}");
    assert_eq!(last["accepted"], 20);
}

#[test]
fn validate_and_load_summarise_values_and_warn_of_values_no_role_names() {
    let env = bare("fields");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/hr/workers.csv");
    // The example data under the example rules: a summary, and every worker has a role.
    let out = env.ok(&["hr", "validate", example, "--config", RULES]);
    assert!(out.contains("values of 10 accepted worker(s), by field"), "{out}");
    assert!(out.contains("\n  department: 4 value(s): Engineering 4, Sales 3, Support 2, Design 1\n"), "{out}");
    assert!(!out.contains("warning:"), "{out}");
    assert_eq!(out.lines().last(), Some("rows: 10, accepted: 10, quarantined: 0"));
    // An export with a type of its own ("Working Student"), and temporary workers outside
    // Engineering: no role takes them, and the rules name neither value for them.
    let file = write(
        &env,
        "new_types.csv",
        &format!(
            "{HEADER}\n1,Ann,Lee,ann@acme.example,Engineer,Engineering,employee,active,,2020-01-01,,,,\n\
             2,Bo,Ray,bo@acme.example,Analyst,Finance,Working Student,active,,2020-01-01,,,,\n\
             3,Cy,Fox,cy@acme.example,Clerk,Sales,temporary,active,,2020-01-01,,,,\n\
             4,Di,Ng,di@acme.example,Clerk,Sales,temporary,active,,2020-01-01,,,,\n"
        ),
    );
    let path = file.to_str().unwrap();
    let (code, out) = env.tenure(&["hr", "validate", path, "--config", RULES]);
    assert_eq!(code, 0, "warnings do not fail validation: {out}");
    // "temporary" is a value a role names (Engineering's): only the department leaves those
    // two without a role, and the warning says so by the department.
    assert!(
        out.contains(
            "warning: field employment_type: 1 value(s) that no role condition names, on 1 worker(s) no role takes: \
             \"Working Student\" (1)\n"
        ),
        "{out}"
    );
    assert!(out.contains("warning: field department: 2 value(s) that no role condition names, on 3 worker(s) no role takes: \"Sales\" (2), \"Finance\" (1)\n"), "{out}");
    assert!(out.contains("\n  empty in every row: division, location, cost_center, leave_type, time_zone\n"), "{out}");
    assert_eq!(out.lines().last(), Some("rows: 4, accepted: 4, quarantined: 0"));
    let v = json_of(&env.ok(&["hr", "validate", path, "--config", RULES, "--json"]));
    assert_eq!(v["fields"]["workers"], 4, "{v}");
    assert!(v["fields"]["unnamed"].as_array().unwrap().iter().any(|u| u["field"] == "employment_type"), "{v}");
    // A load says the same, and the history keeps it with the load.
    let (code, out) = env.tenure(&["hr", "load", path, "--config", RULES, "--as-of", AT]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("  employment_type: 3 value(s): temporary 2, Working Student 1, employee 1"), "{out}");
    assert!(out.contains("warning: field employment_type: 1 value(s)"), "{out}");
    assert!(out.lines().last().unwrap().starts_with("rows: 4, accepted: 4, quarantined: 0"), "{out}");
    let loads = json_of(&env.ok(&["hr", "loads", "--json"]));
    let warnings = loads[0]["warnings"].as_array().unwrap();
    assert!(warnings.iter().any(|w| w.as_str().unwrap().contains("\"Working Student\" (1)")), "{loads}");
}

fn sign(secret: &str, ts: i64, body: &[u8]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(format!("{ts}.").as_bytes());
    m.update(body);
    format!("sha256={}", m.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>())
}

#[tokio::test]
async fn partial_changes_merge_onto_the_stored_record() {
    let env = bare("partial");
    let base = write(
        &env,
        "base.csv",
        &format!("{HEADER}\n1,Ann,Lee,ann.lee@acme.example,Engineer,Sales,employee,active,,2020-01-01,,,,\n"),
    );
    env.ok(&["hr", "load", base.to_str().unwrap(), "--as-of", AT]);
    // A delta file with only the columns that changed.
    let delta = write(&env, "delta.csv", "employee_id,title\n1,Staff Engineer\n2,Intern\n");
    let (code, out) = env.tenure(&["hr", "load", delta.to_str().unwrap(), "--kind", "delta", "--as-of", AT]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("title: \"Engineer\" -> \"Staff Engineer\""), "{out}");
    assert!(out.contains("column first_name, value \"\": required for a worker tenure does not know yet"), "{out}");
    // A push of only what changed, as HR webhooks send it.
    let secret = write(&env, "secret", "partial-push-secret-0123456789");
    env.ok(&["hr", "push-secret", "--secret-file", secret.to_str().unwrap()]);
    let child = env.start(&["hr", "listen", "--listen", "127.0.0.1:0"]);
    let url = child.wait_line("listening on").await.rsplit(' ').next().unwrap().to_string();
    let http = reqwest::Client::new();
    let send = |body: Value| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let bytes = serde_json::to_vec(&body).unwrap();
            let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
            let r = http
                .post(&url)
                .header("x-tenure-timestamp", ts.to_string())
                .header("x-tenure-signature", sign("partial-push-secret-0123456789", ts, &bytes))
                .header("content-type", "application/json")
                .body(bytes)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, v) = send(json!({"event_id": "t-1", "worker": {"employee_id": "1", "status": "terminated", "termination_date": "2026-12-31"}})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["accepted"], json!(["t-1"]), "{v}");
    assert!(v["warnings"].is_array(), "a push says which values no role names: {v}");
    assert_eq!(v["events"][0]["kind"], "termination", "{v}");
    let (status, v) = send(json!({"event_id": "n-1", "worker": {"employee_id": "9", "status": "active"}})).await;
    assert_eq!(status, 422, "{v}");
    assert!(
        v["quarantined"][0]["problems"].to_string().contains("required for a worker tenure does not know yet"),
        "{v}"
    );
    drop(child);
    // The termination takes its moment from the merged record (the end of 2026-12-31 UTC).
    let events = json_of(&env.ok(&["hr", "events", "--json", "--worker", "1"]));
    let term = events.as_array().unwrap().iter().find(|e| e["kind"] == "termination").unwrap();
    assert_eq!(term["effective"], "2027-01-01T00:00:00Z", "{term}");
}

fn inbox_rules(env: &Env, inbox: &Path, extra: &str) -> PathBuf {
    rules_with(
        env,
        &format!(
            "[hr.inbox]\npath = {:?}\npattern = \"employee_*.csv\"\nretention_days = 30\n{extra}",
            inbox.display().to_string()
        ),
        |r| r,
    )
}

#[tokio::test]
async fn the_inbox_takes_files_dropped_while_the_daemon_runs() {
    let sb = common::spawn(&[]);
    let env = Env::connect(&sb, "inbox", "");
    let inbox = env.dir.join("inbox");
    std::fs::create_dir_all(inbox.join("processed")).unwrap();
    let rules = inbox_rules(&env, &inbox, "");
    env.ok(&["config", "import", rules.to_str().unwrap()]);
    // An old file past the retention period, and a recent one.
    let old = inbox.join("processed/employee_old.csv");
    std::fs::write(&old, "x").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(40 * 86_400))
        .unwrap();
    let recent = inbox.join("processed/employee_recent.csv");
    std::fs::write(&recent, "x").unwrap();
    let ann = row("1", "Ann", "Lee", "Engineer", "Sales", "employee", "active", ",2020-01-01", ",,,");
    let bob = row("2", "Bob", "Ray", "Analyst", "Sales", "employee", "active", ",2020-01-01", ",,,");
    let cat = row("3", "Cat", "Poe", "Analyst", "Sales", "employee", "active", ",2020-01-01", ",,,");
    std::fs::write(inbox.join("employee_1.csv"), format!("{HEADER}\n{ann}\n{bob}\n{cat}\n")).unwrap();
    std::fs::write(inbox.join("notes.txt"), "not an export").unwrap();
    let child = env.start(&["run", "--interval", "3600"]);
    let lines = child.lines.clone();
    assert_eq!(wait_for_users(&sb, Some("active eq true"), 3, 100, 600).await, 3, "{:?}", lines.lock().unwrap());
    // Bob leaves: the file dropped in the inbox deactivates him without waiting for the hour.
    let bob_gone = row("2", "Bob", "Ray", "Analyst", "Sales", "employee", "terminated", ",2020-01-01", "2026-01-31,,,");
    let leaver = format!("{HEADER}\n{ann}\n{bob_gone}\n{cat}\n");
    std::fs::write(inbox.join("employee_2.csv"), &leaver).unwrap();
    assert_eq!(wait_for_users(&sb, Some("active eq false"), 1, 50, 1200).await, 1, "{:?}", lines.lock().unwrap());
    assert_eq!(accounts(&sb).await["bob.ray@acme.example"]["active"], false);
    child.wait_line("inbox: employee_2.csv: load").await;
    assert!(inbox.join("processed/employee_2.csv").exists());
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(inbox.join("processed/employee_2.csv.report.json")).unwrap())
            .unwrap();
    assert_eq!(report["outcome"]["accepted"], 3, "{report}");
    // The inbox's report has the values field by field, as `hr load` prints them.
    assert_eq!(report["outcome"]["fields"]["workers"], 3, "{report}");
    // A damaged file goes to rejected/ with its report, and the history says so.
    let broken = leaver.replacen("Ann,Lee", "\"Ann,Lee", 1);
    std::fs::write(inbox.join("employee_3.csv"), broken).unwrap();
    child.wait_line("inbox: employee_3.csv: REJECTED").await;
    assert!(inbox.join("rejected/employee_3.csv").exists());
    let why = std::fs::read_to_string(inbox.join("rejected/employee_3.csv.report.json")).unwrap();
    assert!(why.contains("a quote opened here is not closed"), "{why}");
    // The same content again is taken once only.
    std::fs::write(inbox.join("employee_4.csv"), &leaver).unwrap();
    child.wait_line("inbox: employee_4.csv: the same content was taken before").await;
    // A load from another process wakes the daemon too.
    let dan = row("4", "Dan", "Orr", "Analyst", "Sales", "employee", "active", ",2020-01-01", ",,,");
    env.load("cli.csv", &[ann.clone(), bob_gone.clone(), cat.clone(), dan.clone()], AT, &[]);
    assert_eq!(wait_for_users(&sb, Some("active eq true"), 3, 100, 600).await, 3, "{:?}", lines.lock().unwrap());
    // The inbox moves in a new configuration: the running daemon watches the new folder at its
    // next turn, without a restart, and leaves the old one alone.
    let moved = env.dir.join("inbox-2");
    std::fs::create_dir_all(&moved).unwrap();
    let rules = inbox_rules(&env, &moved, "");
    env.ok(&["config", "import", rules.to_str().unwrap()]);
    child.wait_line(&format!("watching the HR inbox {}", moved.display())).await;
    let eve = row("5", "Eve", "Lin", "Analyst", "Sales", "employee", "active", ",2020-01-01", ",,,");
    let with_eve = format!("{HEADER}\n{ann}\n{bob_gone}\n{cat}\n{dan}\n{eve}\n");
    std::fs::write(inbox.join("employee_5.csv"), &with_eve).unwrap();
    std::fs::write(moved.join("employee_6.csv"), &with_eve).unwrap();
    child.wait_line("inbox: employee_6.csv: load").await;
    assert_eq!(wait_for_users(&sb, Some("active eq true"), 4, 100, 600).await, 4, "{:?}", lines.lock().unwrap());
    assert_eq!(accounts(&sb).await["eve.lin@acme.example"]["active"], true);
    assert!(moved.join("processed/employee_6.csv").exists(), "taken from the new folder");
    assert!(inbox.join("employee_5.csv").exists(), "the old folder is no longer watched");
    assert!(!child.said("employee_5.csv"), "{:?}", lines.lock().unwrap());
    drop(child);
    let text = env.ok(&["hr", "loads"]);
    assert!(text.contains("inbox:employee_3.csv (full)  REJECTED"), "{text}");
    assert!(inbox.join("notes.txt").exists(), "a file outside the pattern is left alone");
    assert!(!old.exists(), "past the retention period: removed");
    assert!(recent.exists());
}

/// A TLS listener for axum: each connection's handshake is made as it is accepted.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    tls: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;
    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((s, a)) = self.tcp.accept().await else { continue };
            if let Ok(t) = self.tls.accept(s).await {
                return (t, a);
            }
        }
    }
    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// An HTTPS report server on a random port, with its certificate authority written to
/// `ca.pem`: /report.csv (bearer auth, ETag), /token (OAuth 2.0 client credentials),
/// /slow.csv (never answers in time), /big.csv (larger than the cap).
async fn report_server(dir: &Path, csv: String) -> (String, PathBuf, Arc<Mutex<Vec<String>>>) {
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::{get, post};
    let (ca, cert, key) = test_certificates();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let config = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![tokio_rustls::rustls::pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
            tokio_rustls::rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
        )
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    let report = move |headers: HeaderMap| {
        let csv = csv.clone();
        let log = log.clone();
        async move {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            log.lock().unwrap().push(format!("report auth={auth}"));
            if auth != "Bearer tok-123" {
                return (StatusCode::UNAUTHORIZED, "no").into_response();
            }
            if headers.get("if-none-match").is_some_and(|v| v == "\"v1\"") {
                return StatusCode::NOT_MODIFIED.into_response();
            }
            ([("etag", "\"v1\""), ("content-type", "text/csv")], csv).into_response()
        }
    };
    let log = seen.clone();
    let token = move |headers: HeaderMap, body: String| {
        let log = log.clone();
        async move {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            log.lock().unwrap().push(format!("token auth={auth} body={body}"));
            // client-1:s3cret in Basic.
            if auth != "Basic Y2xpZW50LTE6czNjcmV0" || !body.contains("grant_type=client_credentials") {
                return (StatusCode::UNAUTHORIZED, "{}").into_response();
            }
            axum::Json(json!({"access_token": "tok-123", "token_type": "Bearer", "expires_in": 3600})).into_response()
        }
    };
    let log = seen.clone();
    let report_json = move |headers: HeaderMap| {
        let log = log.clone();
        async move {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            log.lock().unwrap().push(format!("json auth={auth}"));
            // hr-user:pw in Basic.
            if auth != "Basic aHItdXNlcjpwdw==" {
                return (StatusCode::UNAUTHORIZED, "no").into_response();
            }
            axum::Json(json!({"Report_Entry": [{"employee_id": "7", "first_name": "Zoë", "last_name": "Øster",
                "employment_type": "employee", "status": "active", "hire_date": "2021-03-15"}]}))
            .into_response()
        }
    };
    let app = axum::Router::new()
        .route("/report.csv", get(report))
        .route("/report.json", get(report_json))
        .route("/token", post(token))
        .route(
            "/slow.csv",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route("/big.csv", get(|| async { "x".repeat(200_000) }));
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let listener = TlsListener { tcp, tls: tokio_rustls::TlsAcceptor::from(Arc::new(config)) };
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("https://localhost:{port}"), ca_file, seen)
}

// Multi-threaded: the server answers while the test waits on the tenure process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pull_fetches_the_report_over_https_once_per_change() {
    let env = bare("pull");
    let ann = row("1", "Ann", "Lee", "Engineer", "Sales", "employee", "active", ",2020-01-01", ",,,");
    let (base, ca, seen) = report_server(&env.dir, format!("{HEADER}\n{ann}\n")).await;
    let configure = |path: &str, extra: &str| {
        let rules = rules_with(
            &env,
            &format!(
                "[hr.pull]\nurl = \"{base}{path}?key=do-not-show\"\ninterval_minutes = 60\ntimeout_seconds = 2\n\
                 max_bytes = 100000\nca_file = {:?}\n{extra}",
                ca.display().to_string()
            ),
            |r| r,
        );
        env.ok(&["config", "import", rules.to_str().unwrap()]);
    };
    configure("/report.csv", "auth = \"bearer\"");
    // Without its secret, it says what to do.
    let (code, out) = env.tenure(&["hr", "pull"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("tenure hr pull-secret"), "{out}");
    // The wrong token: refused, said plainly, nothing loaded.
    let secret = write(&env, "secret", "wrong-token\n");
    env.ok(&["hr", "pull-secret", "--secret-file", secret.to_str().unwrap()]);
    let (code, out) = env.tenure(&["hr", "pull"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("refused the credentials (401"), "{out}");
    assert!(!out.contains("do-not-show") && !out.contains("wrong-token"), "no query, no secret: {out}");
    // The right one: loaded; the second pull is answered 304 and loads nothing.
    std::fs::write(&secret, "tok-123").unwrap();
    env.ok(&["hr", "pull-secret", "--secret-file", secret.to_str().unwrap()]);
    let out = env.ok(&["hr", "pull"]);
    assert!(out.contains("rows 1, accepted 1, quarantined 0, events 1"), "{out}");
    let out = env.ok(&["hr", "pull"]);
    assert!(out.contains("not modified"), "{out}");
    let loads = json_of(&env.ok(&["hr", "loads", "--json"]));
    assert_eq!(loads.as_array().unwrap().len(), 1, "{loads}");
    assert_eq!(loads[0]["source"], format!("{base}/report.csv"), "the history shows the URL without its query");
    // The configuration moves the pull to another server: the secret set for the first one
    // is not sent there (the request is not even made) until an admin sets it again.
    std::fs::create_dir_all(env.dir.join("other")).unwrap();
    let (other, other_ca, other_seen) = report_server(&env.dir.join("other"), format!("{HEADER}\n{ann}\n")).await;
    let moved = rules_with(
        &env,
        &format!(
            "[hr.pull]\nurl = \"{other}/report.csv\"\ninterval_minutes = 60\ntimeout_seconds = 2\nca_file = {:?}\n\
             auth = \"bearer\"",
            other_ca.display().to_string()
        ),
        |r| r,
    );
    env.ok(&["config", "import", moved.to_str().unwrap()]);
    let (code, out) = env.tenure(&["hr", "pull"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("was set for https://localhost:{}", base.rsplit(':').next().unwrap())), "{out}");
    assert!(
        other_seen.lock().unwrap().is_empty(),
        "nothing reached the other server: {:?}",
        other_seen.lock().unwrap()
    );
    // OAuth 2.0 client credentials: a token from the token endpoint, then the report (304).
    configure(
        "/report.csv",
        &format!("auth = \"oauth2\"\ntoken_url = \"{base}/token\"\nclient_id = \"client-1\"\nscope = \"reports\""),
    );
    std::fs::write(&secret, "s3cret").unwrap();
    env.ok(&["hr", "pull-secret", "--secret-file", secret.to_str().unwrap()]);
    let out = env.ok(&["hr", "pull"]);
    assert!(out.contains("not modified"), "{out}");
    let log = seen.lock().unwrap().clone();
    assert!(log.iter().any(|l| l.contains("body=grant_type=client_credentials&scope=reports")), "{log:?}");
    assert_eq!(log.last().unwrap(), "report auth=Bearer tok-123", "{log:?}");
    // A server that never answers in time, and a report over the size cap: errors, nothing loaded.
    configure("/slow.csv", "");
    let (code, out) = env.tenure(&["hr", "pull"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("timed out"), "{out}");
    configure("/big.csv", "");
    let (code, out) = env.tenure(&["hr", "pull"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("over max_bytes (100000)"), "{out}");
    assert_eq!(json_of(&env.ok(&["hr", "loads", "--json"])).as_array().unwrap().len(), 1);
    // Basic auth and a JSON report wrapped as Workday wraps it.
    configure("/report.json", "auth = \"basic\"\nusername = \"hr-user\"\nformat = \"json\"\nkind = \"delta\"");
    std::fs::write(&secret, "pw").unwrap();
    env.ok(&["hr", "pull-secret", "--secret-file", secret.to_str().unwrap()]);
    let out = env.ok(&["hr", "pull"]);
    assert!(out.contains("rows 1, accepted 1"), "{out}");
    // The daemon pulls on its schedule: at once when never pulled, then every interval.
    let fresh = bare("pull-daemon");
    let rules = std::fs::read_to_string(env.dir.join("rules.toml")).unwrap();
    let path = write(&fresh, "rules.toml", &rules);
    fresh.ok(&["config", "import", path.to_str().unwrap()]);
    fresh.ok(&["hr", "pull-secret", "--secret-file", secret.to_str().unwrap()]);
    let daemon = fresh.start(&["run", "--interval", "3600"]);
    let line = daemon.wait_line("pull: ").await;
    assert!(line.contains(&format!("{base}/report.json: load")) && line.contains("accepted 1"), "{line}");
    drop(daemon);
    assert_eq!(json_of(&fresh.ok(&["hr", "loads", "--json"])).as_array().unwrap().len(), 1);
}
