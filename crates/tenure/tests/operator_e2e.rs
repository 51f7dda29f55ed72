//! What a run tells, refuses and keeps (issue 14), end to end with the real binary and the
//! sandbox: failures named, JSON alone on stdout, provision on demand, the create
//! confirmation at a terminal, closed pipes, exit codes.

mod common;

use common::env::*;
use std::io::{BufRead, Read, Write};
use std::process::Stdio;

const AT: &str = "2026-06-01T12:00:00Z";

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON alone ({e}):\n{out}"))
}

/// stdout only (the JSON), with the exit code.
fn stdout_of(env: &Env, args: &[&str]) -> (i32, String) {
    let o = env.command().args(args).output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).to_string())
}

#[tokio::test]
async fn failures_are_named_where_they_happen_in_text_and_json() {
    // Bodies past 2,000 bytes are refused (413): Bob's long title fails his create.
    let sb = common::spawn(&["--max-body-bytes", "2000"]);
    let env = Env::connect(&sb, "failures", "");
    let ann = row("1", "Ann", "Lee", "Engineer", "Sales", "employee", "active", ",2020-01-01", ",,,");
    let bob = row("2", "Bob", "Ray", &"Analyst ".repeat(300), "Sales", "employee", "active", ",2020-01-01", ",,,");
    env.load("hr.csv", &[ann, bob], AT, &["--max-field-bytes", "4096"]);
    let (code, out) = env.tenure(&["apply", "--as-of", AT, "--quiet"]);
    assert_eq!(code, 4, "{out}");
    assert!(!out.contains("plan for"), "quiet leaves the plan out: {out}");
    let summary = out.lines().position(|l| l.starts_with("run ")).expect("a summary");
    let failed: Vec<&str> = out.lines().skip(summary + 1).filter(|l| l.starts_with("failed: ")).collect();
    assert!(
        failed.iter().any(|l| l.starts_with("failed: worker 2 (bob.ray@acme.example) create: ") && l.contains("413")),
        "{out}"
    );
    assert!(failed.iter().any(|l| l.contains("team_add") && l.contains("not tried")), "{out}");
    assert!(!failed.iter().any(|l| l.contains("worker 1 ")), "Ann's actions went through: {out}");
    // The same as JSON, alone on stdout: run id, counts, failures.
    let (code, out) = stdout_of(&env, &["apply", "--as-of", AT, "--json"]);
    assert_eq!(code, 4, "{out}");
    let v = json(&out);
    assert!(v["run_id"].as_str().is_some_and(|r| r.len() == 36), "{v}");
    assert_eq!(v["failed"], 2);
    assert_eq!(v["failed_actions"][0]["worker"], "2");
    assert_eq!(v["failed_actions"][0]["action"], "create");
    assert!(v["failed_actions"][0]["error"].as_str().unwrap().contains("413"), "{v}");
    // The target's status travels beside the words, for a reader that must not parse them;
    // an action never sent has none.
    assert_eq!(v["failed_actions"][0]["status"], 413, "{v}");
    assert!(v["failed_actions"][1]["status"].is_null(), "{v}");
}

#[tokio::test]
async fn json_is_alone_on_stdout_and_closed_pipes_end_quietly() {
    let sb = common::spawn(&[]);
    let env = Env::connect(&sb, "json-out", "");
    let n = 3000;
    env.load("all.csv", &population(n), AT, &[]);
    let p = env.dir.join("all.csv");
    for args in [
        vec!["plan", "--json", "--as-of", AT],
        vec!["hr", "validate", p.to_str().unwrap(), "--json"],
        vec!["hr", "load", p.to_str().unwrap(), "--json", "--as-of", AT],
        vec!["connection", "list", "--json"],
        vec!["reviews", "--json"],
    ] {
        let (code, out) = stdout_of(&env, &args);
        assert!(code == 0 || code == 2, "{args:?}: {code}");
        let _ = json(&out);
    }
    let plan = json(&stdout_of(&env, &["plan", "--json", "--as-of", AT]).1);
    assert_eq!(plan["guard"]["refused"], false, "the guard's verdict is in the plan: {}", plan["guard"]);
    // `| head`: the reader goes after one line; tenure ends quietly, never with a panic (101).
    for args in [vec!["plan", "--as-of", AT, "--verbose"], vec!["plan", "--json", "--as-of", AT], vec!["hr", "events"]]
    {
        let mut child = env.command().args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let status = child.wait().unwrap();
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(matches!(status.code(), Some(0) | Some(141)), "{args:?}: {status:?} {err}");
    }
}

#[tokio::test]
async fn provision_on_demand_acts_for_the_named_workers_only() {
    let sb = common::spawn(&[]);
    let env = Env::connect(&sb, "on-demand", "");
    let rows: Vec<String> = population(6);
    env.load("hr.csv", &rows, AT, &[]);
    let plan = json(&stdout_of(&env, &["plan", "--json", "--as-of", AT, "--worker", "10002"]).1);
    let workers: std::collections::BTreeSet<&str> =
        plan["actions"].as_array().unwrap().iter().map(|a| a["worker"].as_str().unwrap()).collect();
    assert_eq!(workers.into_iter().collect::<Vec<_>>(), vec!["10002"], "{plan}");
    // Now, not a rehearsal: a rehearsal leaves every event pending.
    let out = env.ok(&["apply", "--worker", "10002", "--worker", "10004"]);
    assert!(out.contains("failed 0") && out.contains("create 2"), "{out}");
    let acc = accounts(&sb).await;
    assert_eq!(acc.len(), 2, "{:?}", acc.keys());
    assert!(acc.contains_key("worker.n0002@acme.example") && acc.contains_key("worker.n0004@acme.example"));
    // The others' hire events still wait; the named ones' are done.
    let events = json(&stdout_of(&env, &["hr", "events", "--json", "--state", "pending"]).1);
    let pending: Vec<&str> = events.as_array().unwrap().iter().filter_map(|e| e["worker"].as_str()).collect();
    assert!(pending.contains(&"10001") && !pending.contains(&"10002"), "{events}");
    let (code, out) = env.tenure(&["apply", "--worker", "99999"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("worker 99999 is not in the HR snapshot"), "{out}");
    // The rest, later, as a full run.
    assert!(env.ok(&["apply"]).contains("create 4"));
}

/// Runs tenure under a pseudo-terminal (util-linux `script`), answering its prompt.
fn at_terminal(env: &Env, args: &[&str], answer: &str) -> (i32, String) {
    let mut cmd = vec![env!("CARGO_BIN_EXE_tenure").to_string(), "--data-dir".into(), env.dir.display().to_string()];
    cmd.extend(args.iter().map(|a| a.to_string()));
    let line = cmd.iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(" ");
    let mut child = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("TENURE_LOG", "warn")
        .env_remove("TENURE_DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    stdin.write_all(answer.as_bytes()).unwrap();
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).to_string())
}

#[tokio::test]
async fn many_creates_wait_for_a_yes_at_a_terminal() {
    let sb = common::spawn(&[]);
    let env = Env::connect_with(&sb, "seats", "", "confirm_creates_over = 2");
    env.load("hr.csv", &population(3), AT, &[]);
    let (code, out) = at_terminal(&env, &["apply", "--as-of", AT], "n\n");
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("3 new account(s) will be created") && out.contains("Go on? [y/N]"), "{out}");
    assert!(out.contains("not confirmed: nothing was applied"), "{out}");
    assert_eq!(accounts(&sb).await.len(), 0);
    let (code, out) = at_terminal(&env, &["apply", "--as-of", AT], "y\n");
    assert_eq!(code, 0, "{out}");
    assert_eq!(accounts(&sb).await.len(), 3);
    // Not on a terminal (cron, the daemon), or with --yes: no question.
    let more: Vec<String> = population(6);
    env.load("hr2.csv", &more, AT, &[]);
    let (code, out) = at_terminal(&env, &["apply", "--as-of", AT, "--yes"], "");
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("Go on?"), "{out}");
    assert_eq!(accounts(&sb).await.len(), 6);
}

#[test]
fn exit_codes_are_documented_and_global_options_are_not_ignored() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_tenure")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    for line in
        ["Exit codes:", "3    a guard held what it refused, the rest applied", "5    another run holds the connection"]
    {
        assert!(help.contains(line), "{help}");
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    assert!(readme.contains("| 6 | not confirmed at the prompt"), "the README has the same table");
    let dir = common::tempdir("qs-db");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args(["--data-dir", dir.to_str().unwrap(), "--database-url", "postgres://nobody@127.0.0.1:1/x", "quickstart"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot use --database-url"));
}

#[tokio::test]
async fn decisions_runs_and_exports_are_part_of_the_record() {
    let sb = common::spawn(&[]);
    let env = Env::connect_with(&sb, "decisions", "", "supervised = [\"hire\"]");
    // An employee id that a spreadsheet would run as a formula.
    let ann = row("1", "Ann", "Lee", "Engineer", "Sales", "employee", "active", ",2020-01-01", ",,,");
    let odd = row("=7+1", "Odd", "Id", "Staff", "Sales", "employee", "active", ",2020-01-01", ",,,");
    env.load("hr.csv", &[ann, odd], AT, &[]);
    let out = env.ok(&["apply", "--as-of", AT]);
    assert!(out.contains("wait for a reviewer"), "{out}");
    let out = env.ok(&["approve", "--all", "--note", "checked with HR"]);
    // Decided as the OS user running the command: no name typed on the line.
    assert!(out.contains("approved by os:"), "{out}");
    let timeline = json(&stdout_of(&env, &["audit", "worker", "1", "--json"]).1);
    let approval = timeline
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "decision" && e["action"] == "approve")
        .unwrap_or_else(|| panic!("the approval is in the worker's record: {timeline}"));
    assert!(approval["detail"]["actor"].as_str().unwrap().starts_with("os:"), "{approval}");
    assert_eq!(approval["detail"]["note"], "checked with HR");
    assert!(approval["detail"]["review"].as_i64().is_some(), "{approval}");
    assert_eq!(approval["detail"]["actions"][0]["kind"], "create", "what it released: {approval}");
    assert!(timeline.as_array().unwrap().iter().any(|e| e["type"] == "hr_event" && e["kind"] == "hire"), "{timeline}");
    let out = env.ok(&["apply", "--as-of", AT]);
    assert!(out.contains("create 2"), "{out}");
    let text = env.ok(&["audit", "worker", "1"]);
    assert!(
        text.lines().any(|l| l.contains("approve") && l.contains("decided by os:") && l.contains("review #")),
        "{text}"
    );
    assert!(text.lines().any(|l| l.contains("create") && l.contains("created")), "{text}");
    assert!(text.contains("hr hire"), "{text}");
    assert!(env.ok(&["audit", "verify"]).contains("chain intact"), "decisions are in the same chain");
    // Runs with their counts; one run's actions.
    let runs = json(&stdout_of(&env, &["runs", "--json"]).1);
    assert_eq!(runs.as_array().unwrap().len(), 2, "{runs}");
    let last = &runs[0];
    assert_eq!(last["summary"]["processed"], 4, "{last}");
    let text = env.ok(&["runs"]);
    assert!(text.contains("Total 4, Skipped 0, No change 0, Processed 4, Failed 0"), "{text}");
    let id = last["id"].as_str().unwrap();
    let shown = env.ok(&["runs", "show", id]);
    assert!(shown.contains("worker 1 (ann.lee@acme.example) create: created"), "{shown}");
    // Exports: CSV cells never start a formula; NDJSON one record a line.
    let (code, csv) = stdout_of(&env, &["audit", "export", "--run", id, "--format", "csv"]);
    assert_eq!(code, 0);
    assert!(csv.starts_with("seq,at,run,connection,worker,action,outcome,reason,detail,hash\n"), "{csv}");
    assert!(csv.contains(",'=7+1,create,"), "the formula-like id is neutralised: {csv}");
    assert!(!csv.contains(",=7+1,"), "{csv}");
    let (_, nd) = stdout_of(&env, &["audit", "export", "--format", "ndjson"]);
    let all: Vec<serde_json::Value> = nd.lines().map(json).collect();
    for what in ["connection_add", "config_import", "approve", "create"] {
        assert!(all.iter().any(|r| r["action"] == what), "{what} is exported");
    }
    let import = all.iter().find(|r| r["action"] == "config_import").unwrap();
    let actor = import["detail"]["actor"].as_str().unwrap();
    assert!(!actor.is_empty() && actor != "unknown", "the OS user by default: {import}");
    // A window that ends before everything: nothing.
    let (_, none) = stdout_of(&env, &["audit", "export", "--until", "2000-01-01T00:00:00Z", "--format", "ndjson"]);
    assert!(none.trim().is_empty(), "{none}");
}

#[tokio::test]
async fn rehearsals_act_only_on_the_sandbox_and_leave_real_events_pending() {
    // A target that answers as production does (no sandbox marker).
    let prod = common::spawn(&["--as-production"]);
    let env = Env::connect(&prod, "rehearse-prod", "");
    env.load("hr.csv", &population(3), AT, &[]);
    let (code, out) = env.tenure(&["apply", "--as-of", "2027-01-01T00:00:00Z"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("is not tenure's sandbox") && out.contains("--confirm-production"), "{out}");
    assert_eq!(accounts(&prod).await.len(), 0, "nothing done");
    // The daemon's rehearsal is refused the same way, run after run, and acts on nothing.
    let o = env
        .command()
        .args(["run", "--interval", "3600", "--rehearse-from", AT])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = o.id();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    let out = o.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("is not tenure's sandbox"), "{text}");
    assert_eq!(accounts(&prod).await.len(), 0);
    // Said in so many words, it goes.
    let out = env.ok(&["apply", "--as-of", AT, "--confirm-production", "Connection-Bearer Token-1"]);
    assert!(out.contains("create 3"), "{out}");
    // On the sandbox a rehearsal acts, and the real events stay pending.
    let sb = common::spawn(&[]);
    let env = Env::connect(&sb, "rehearse-sb", "");
    env.load("hr.csv", &population(3), AT, &[]);
    assert!(env.ok(&["apply", "--as-of", AT]).contains("create 3"));
    let events = json(&stdout_of(&env, &["hr", "events", "--json", "--state", "pending"]).1);
    assert_eq!(events.as_array().unwrap().len(), 3, "the hires wait for a real run: {events}");
    assert!(env.ok(&["apply"]).contains("processed 0"));
    let events = json(&stdout_of(&env, &["hr", "events", "--json", "--state", "pending"]).1);
    assert_eq!(events.as_array().unwrap().len(), 0, "a real run settles them: {events}");
}

#[tokio::test]
async fn a_connection_has_one_url_and_says_its_dialect() {
    let sb = common::spawn(&[]);
    let env = Env::new_store("conn-dialect", None);
    let token = env.dir.join("token");
    std::fs::write(&token, &sb.token).unwrap();
    let out = env.ok(&[
        "connection",
        "add",
        "--name",
        "Generic-1",
        "--url",
        &sb.base,
        "--token-file",
        token.to_str().unwrap(),
        "--dialect",
        "monday",
    ]);
    assert!(
        out.contains("(monday dialect)") && out.contains("(monday)"),
        "the stored dialect, not the URL's guess: {out}"
    );
    let test = env.ok(&["connection", "test", "Generic-1"]);
    assert!(test.contains("(monday dialect)"), "{test}");
    let list = json(&stdout_of(&env, &["connection", "list", "--json"]).1);
    assert_eq!(list[0]["dialect"], "monday");
    // A configuration file naming another URL for a stored connection is refused with both.
    let rules = std::fs::read_to_string(RULES).unwrap().replace("Connection-Bearer Token-1", "Generic-1").replacen(
        "dialect = \"monday\"\n",
        "dialect = \"monday\"\nurl = \"http://127.0.0.1:9/scim/v2\"\n",
        1,
    );
    let p = env.dir.join("rules.toml");
    std::fs::write(&p, rules).unwrap();
    let (code, out) = env.tenure(&["config", "import", p.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("the file names http://127.0.0.1:9/scim/v2/") && out.contains(&sb.base), "{out}");
    assert!(json(&stdout_of(&env, &["connection", "list", "--json"]).1)[0]["url"]
        .as_str()
        .unwrap()
        .starts_with(&sb.base));
    let out = env.ok(&["config", "import", p.to_str().unwrap(), "--confirm-url-change"]);
    assert!(out.contains("settings updated"), "{out}");
    assert_eq!(json(&stdout_of(&env, &["connection", "list", "--json"]).1)[0]["url"], "http://127.0.0.1:9/scim/v2/");
}

#[tokio::test]
async fn quickstart_serve_says_how_to_reach_its_sandbox() {
    let dir = common::tempdir("qs-serve");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args(["--data-dir", dir.to_str().unwrap(), "quickstart", "--serve", "--listen", "127.0.0.1:0"])
        .env("TENURE_LOG", "warn")
        .env_remove("TENURE_DATABASE_URL")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut curl, mut folder) = (None, None);
    for l in lines.by_ref().map_while(Result::ok) {
        if l.trim_start().starts_with("tenure --data-dir ") {
            folder = Some(l.trim().to_string());
        }
        if l.trim_start().starts_with("curl -s -H 'Authorization: Bearer ") {
            curl = Some(l.trim().to_string());
            break;
        }
    }
    let curl = curl.expect("a curl line");
    let token = curl.split("Bearer ").nth(1).unwrap().split('\'').next().unwrap().to_string();
    let url = curl.rsplit(' ').next().unwrap().trim_matches('\'').to_string();
    let r = reqwest::Client::new().get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "the printed way works");
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["totalResults"].as_u64().unwrap() > 0);
    let folder = folder.expect("the data folder for later commands");
    assert!(folder.contains(dir.join("quickstart").to_str().unwrap()), "{folder}");
    let _ = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let _ = child.wait();
}

#[tokio::test]
async fn logs_an_operator_can_read() {
    let sb = common::spawn(&[]);
    let env = Env::connect(&sb, "logs", "");
    env.load("hr.csv", &population(2), AT, &[]);
    // The daemon: stamped lines, one log line per action, no colour codes off a terminal.
    let child = env
        .command()
        .args(["run", "--interval", "3600", "--rehearse-from", AT])
        .env_remove("TENURE_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    for _ in 0..100 {
        if accounts(&sb).await.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let o = child.wait_with_output().unwrap();
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let stamped =
        |l: &str| l.len() > 24 && l.as_bytes()[4] == b'-' && l.as_bytes()[10] == b'T' && l[..24].ends_with('Z');
    assert!(out.lines().all(stamped), "every daemon line starts with its moment:\n{out}");
    assert!(out.lines().any(|l| l.contains("run ") && l.contains("processed 4")), "{out}");
    let per_action: Vec<&str> = err.lines().filter(|l| l.contains("tenure::actions")).collect();
    assert_eq!(per_action.len(), 4, "one line per action:\n{err}");
    assert!(
        per_action.iter().any(|l| l.contains("worker=10000") && l.contains("action=\"create\"") && l.contains("done")),
        "{err}"
    );
    assert!(!err.contains('\u{1b}'), "no ANSI codes off a terminal:\n{err}");
    // A target that keeps failing: its retries are said as they happen, here as JSON lines.
    let failing = common::spawn(&["--error-rate", "1.0"]);
    let env = Env::new_store("logs-json", None);
    let token = env.dir.join("token");
    std::fs::write(&token, &failing.token).unwrap();
    let o = env
        .command()
        .args([
            "--log-format",
            "json",
            "connection",
            "add",
            "--url",
            &failing.base,
            "--token-file",
            token.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    let logged: Vec<serde_json::Value> = err.lines().filter(|l| l.starts_with('{')).map(json).collect();
    assert!(
        logged.iter().any(|v| v["fields"]["message"].as_str().is_some_and(|m| m.contains("retry 1 of 2 in"))),
        "{err}"
    );
}

#[tokio::test]
async fn preview_says_what_the_plan_will_do() {
    let sb = common::spawn(&[]);
    let env = Env::connect(&sb, "preview", "");
    // Two Jean Martins: the earlier hire left years ago and never had an account here.
    let old = row("1", "Jean", "Martin", "Staff", "Sales", "employee", "terminated", ",2010-01-01", "2015-01-01,,,");
    let new = row("2", "Jean", "Martin", "Staff", "Sales", "employee", "active", ",2020-01-01", ",,,");
    let leave =
        row("3", "Lou", "Park", "Staff", "Sales", "employee", "leave", "fmla,2019-01-01", ",2026-01-01,2027-06-01,");
    let future = row("4", "Mo", "Diaz", "Staff", "Sales", "employee", "active", ",2030-01-01", ",,,");
    env.load("hr.csv", &[old, new, leave, future], AT, &[]);
    let v = json(
        &stdout_of(&env, &["preview", "--worker", "2", "--worker", "1", "--worker", "3", "--worker", "4", "--json"]).1,
    );
    let of = |id: &str| v.as_array().unwrap().iter().find(|e| e["worker"] == id).unwrap().clone();
    let user_name = |e: &serde_json::Value| {
        e["decision"]["attributes"].as_array().unwrap().iter().find(|a| a["target"] == "userName").unwrap()["value"]
            ["value"]
            .clone()
    };
    assert_eq!(user_name(&of("2")), "jean.martin@acme.example", "claimed as the plan claims it: {v}");
    assert_eq!(of("2")["plan"][0]["kind"], "create");
    let why = |id: &str| of(id)["plan"][0]["reason"].as_str().unwrap_or_default().to_string();
    assert!(why("1").contains("no account: terminated"), "{}", why("1"));
    assert!(why("3").contains("on leave"), "{}", why("3"));
    assert!(why("4").contains("not hired yet"), "{}", why("4"));
    let text = env.ok(&["preview", "--worker", "1"]);
    assert!(text.contains("plan: no_change: no account: terminated"), "{text}");
    // And apply does what preview said.
    let out = env.ok(&["apply"]);
    assert!(out.contains("create 1"), "{out}");
    assert!(accounts(&sb).await.contains_key("jean.martin@acme.example"));
}

#[tokio::test]
async fn the_guard_is_in_the_plan_and_its_confirmation_in_the_record() {
    let sb = common::spawn(&[]);
    let env = Env::connect(&sb, "guard", "");
    let all = population(5);
    env.load("d0.csv", &all, AT, &[]);
    assert!(env.ok(&["apply", "--as-of", AT]).contains("failed 0"));
    let t1 = "2026-06-10T12:00:00Z";
    let day1: Vec<String> = all
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if i < 3 {
                r.replace(",active,", ",terminated,").replace(",2020-01-01,", ",2020-01-01,2026-06-05")
            } else {
                r.clone()
            }
        })
        .collect();
    env.load("d1.csv", &day1, t1, &[]);
    let (code, out) = stdout_of(&env, &["plan", "--json", "--as-of", t1]);
    assert_eq!(code, 3, "plan exits with the guard's code");
    let plan = json(&out);
    assert_eq!(plan["guard"]["refused"], true);
    assert_eq!(plan["guard"]["confirm_with"], 3);
    let (code, out) = env.tenure(&["apply", "--as-of", t1]);
    assert_eq!(code, 3, "{out}");
    // The refusal is kept in the store: a service started afterwards says so, with its numbers,
    // and so does its /metrics; so does the last HR data received.
    let token =
        env.ok(&["token", "create", "monitoring", "--role", "viewer"]).lines().last().unwrap().trim().to_string();
    let serve = env.start(&["serve", "--listen", "127.0.0.1:0", "--interval", "0"]);
    let api = common::api::Client::token(&serve.address().await, &token);
    let status = api.get("/api/v1/status").await;
    assert_eq!(status.status, 200, "{}", status.text);
    let guard = &status.json()["connections"][0]["guard"];
    assert_eq!(guard["refused"], true, "{}", status.text);
    assert_eq!(guard["confirm_with"], 3, "{guard}");
    assert!(guard["why"].as_str().unwrap().contains('3'), "the reason with its numbers: {guard}");
    assert!(guard["tripped_at"].as_str().is_some_and(|t| t.parse::<jiff::Timestamp>().is_ok()), "{guard}");
    let hr = &status.json()["hr"]["last_received"];
    assert!(hr["source"].as_str().unwrap().ends_with("d1.csv"), "{hr}");
    assert_eq!((hr["outcome"].as_str(), hr["rows"].as_i64()), (Some("accepted"), Some(5)), "{hr}");
    let metrics = reqwest::get(format!("{}/metrics", serve.address().await)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tenure_guard_tripped{connection=\"Connection-Bearer Token-1\"} 1"), "{metrics}");
    assert!(metrics.contains("tenure_hr_last_received_timestamp_seconds "), "{metrics}");
    // A run for one worker leaves the refusal in place: the next full run would meet it again.
    let out = env.ok(&["apply", "--as-of", t1, "--worker", "10004"]);
    assert!(out.contains("failed 0"), "{out}");
    assert_eq!(api.get("/api/v1/status").await.json()["connections"][0]["guard"]["refused"], true);
    let out = env.command().args(["apply", "--as-of", t1, "--confirm-deprovision", "3"]).output().unwrap();
    // The service made a platform user: a guard confirmation on the store itself needs
    // break-glass, with a reason.
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--break-glass"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = env
        .command()
        .args(["apply", "--as-of", t1, "--confirm-deprovision", "3", "--break-glass", "HR called: three leavers today"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    // The confirmed run went through, in another process: the running service sees it at once.
    let status = api.get("/api/v1/status").await;
    assert_eq!(status.json()["connections"][0]["guard"], serde_json::Value::Null, "{}", status.text);
    let metrics = reqwest::get(format!("{}/metrics", serve.address().await)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tenure_guard_tripped{connection=\"Connection-Bearer Token-1\"} 0"), "{metrics}");
    drop(serve);
    let (_, nd) = stdout_of(&env, &["audit", "export", "--format", "ndjson"]);
    let confirmed =
        nd.lines().map(json).find(|r| r["action"] == "guard_confirm").expect("the confirmation is recorded");
    let actor = confirmed["detail"]["actor"].as_str().unwrap();
    assert!(actor.starts_with("os:") && actor.ends_with(" (break-glass)"), "{confirmed}");
    let glass = nd.lines().map(json).find(|r| r["action"] == "break_glass").expect("break-glass is recorded");
    assert_eq!(glass["detail"]["reason"], "HR called: three leavers today", "{glass}");
    assert_eq!(glass["detail"]["what"], "confirm the guard", "{glass}");
    assert_eq!(confirmed["detail"]["confirmed"], 3);
    assert_eq!(confirmed["detail"]["workers"].as_array().unwrap().len(), 3);
    assert!(confirmed["run"].as_str().is_some_and(|r| !r.is_empty()), "linked to its run: {confirmed}");
}

#[test]
fn a_store_error_names_the_store_without_its_password() {
    let dir = common::tempdir("store-error");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args([
            "--data-dir",
            dir.to_str().unwrap(),
            "--database-url",
            "postgres://ops:s3cret@127.0.0.1:1/tenure",
            "runs",
        ])
        .env("TENURE_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("the store at postgres://ops:****@127.0.0.1:1/tenure"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
    // A file store that cannot be opened is named by its path.
    let blocked = dir.join("not-a-folder");
    std::fs::write(&blocked, "x").unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args(["--data-dir", blocked.to_str().unwrap(), "runs"])
        .env("TENURE_LOG", "warn")
        .env_remove("TENURE_DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&blocked.display().to_string()), "{err}");
}
