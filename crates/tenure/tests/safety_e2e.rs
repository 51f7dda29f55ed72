//! What an HR file or a target may not do to provisioning (issue 13), end to end with the real
//! binary and the sandbox: two runs at once, a conversion under a new employee id, look-alike
//! addresses, kills during deactivations and recovery, store failures at each write.

mod common;

use common::env::*;
use std::time::Duration;

const AT: &str = "2026-06-01T12:00:00Z";

#[tokio::test]
async fn two_applies_at_once_do_not_both_act() {
    two_applies_at_once(None).await
}

#[tokio::test]
async fn two_applies_at_once_on_postgres() {
    if let Some(pg) = postgres("two_applies_at_once_on_postgres").await {
        two_applies_at_once(Some(pg.url.clone())).await
    }
}

async fn two_applies_at_once(database_url: Option<String>) {
    let sb = common::spawn(&["--latency-ms", "30"]);
    let env = Env::connect_to(&sb, "two-runs", "", "", database_url);
    let n = 150;
    env.load("all.csv", &population(n), AT, &[]);
    let mut first = env.command().args(["apply", "--as-of", AT]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    // The first run is under way once accounts appear.
    wait_for_users(&sb, None, 5, 25, 400).await;
    let (code, out) = env.tenure(&["apply", "--as-of", AT]);
    assert_eq!(code, 5, "the second run is refused with its own code:\n{out}");
    assert!(out.contains("is being worked by another run: tenure apply (pid "), "{out}");
    assert!(out.contains(&format!("pid {}", first.id())), "it names the holder's process: {out}");
    assert!(out.contains("since 20"), "and since when: {out}");
    assert!(!out.contains("plan for"), "the refused run planned nothing and applied nothing: {out}");
    // A plan meanwhile does not resolve the running apply's in-flight intents.
    let (code, out) = env.tenure(&["plan", "--as-of", AT]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("a run is in progress") && !out.contains("resolved"), "{out}");
    // The daemon waits its turn, then finds nothing left to do.
    let mut daemon = env
        .command()
        .args(["run", "--interval", "3600", "--rehearse-from", AT])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = first.wait().unwrap();
    let mut first_out = String::new();
    std::io::Read::read_to_string(&mut first.stdout.take().unwrap(), &mut first_out).unwrap();
    assert!(status.success(), "{first_out}");
    assert!(first_out.contains("failed 0"), "{first_out}");
    assert_exactly_once(&sb, n).await;
    // Read the daemon's lines until its first run ends.
    let lines = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    {
        let lines = lines.clone();
        let out = daemon.stdout.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                lines.lock().unwrap().push_str(&(l + "\n"));
            }
        });
    }
    for _ in 0..600 {
        if lines.lock().unwrap().contains("run ") && lines.lock().unwrap().contains("total") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    terminate(daemon.id());
    let _ = daemon.wait();
    let text = lines.lock().unwrap().clone();
    assert!(text.contains("waiting for the run of tenure apply"), "{text}");
    assert!(text.contains("processed 0, failed 0"), "the daemon's turn found everything done: {text}");
    assert_exactly_once(&sb, n).await;
}

/// SIGTERM, the way an operator or a service manager stops the daemon.
fn terminate(pid: u32) {
    let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
}

/// One HR row with the e-mail given (the `row` helper makes it from the names).
#[allow(clippy::too_many_arguments)] // one column each, as in the file
fn person(id: &str, first: &str, last: &str, email: &str, typ: &str, status: &str, term: &str) -> String {
    format!("{id},{first},{last},{email},Staff,Sales,{typ},{status},,2020-01-01,{term},,,")
}

/// The example rules with monday.com's userName being the work e-mail (not numbered).
fn email_user_names(env: &Env) {
    let rules = std::fs::read_to_string(RULES).unwrap();
    let line = rules.lines().find(|l| l.starts_with("userName = ")).unwrap();
    let rules = rules.replace(line, "userName = \"=work_email\"");
    let p = env.dir.join("email-rules.toml");
    std::fs::write(&p, rules).unwrap();
    env.ok(&["config", "import", p.to_str().unwrap()]);
}

fn action<'p>(plan: &'p serde_json::Value, worker: &str, kind: &str) -> Option<&'p serde_json::Value> {
    plan["actions"].as_array().unwrap().iter().find(|a| a["worker"] == worker && a["kind"] == kind)
}

#[tokio::test]
async fn a_conversion_under_a_new_id_moves_the_link_and_never_wedges() {
    conversion(None).await
}

#[tokio::test]
async fn a_conversion_on_postgres() {
    if let Some(pg) = postgres("a_conversion_on_postgres").await {
        conversion(Some(pg.url.clone())).await
    }
}

async fn conversion(database_url: Option<String>) {
    let sb = common::spawn(&[]);
    let env = Env::connect_to(&sb, "conversion", "", "", database_url);
    email_user_names(&env);
    let day0 = vec![
        person("100", "Sam", "Cole", "sam.cole@acme.example", "contractor", "active", ""),
        person("110", "Ida", "Moss", "ida.moss@acme.example", "contractor", "active", ""),
        person("120", "Lea", "Hart", "lea.hart@acme.example", "contractor", "active", ""),
        person("300", "Ray", "Dunn", "ray.dunn@acme.example", "employee", "active", ""),
    ];
    env.load("day0.csv", &day0, AT, &[]);
    let out = env.ok(&["apply", "--as-of", AT]);
    assert!(out.contains("failed 0"), "{out}");
    // Day 1: Sam and Ida become employees under new ids (Ida's e-mail now typed in another
    // case); Lea's new id arrives while her contractor record is still active; Ray leaves.
    let t1 = "2026-06-10T12:00:00Z";
    let day1 = vec![
        person("100", "Sam", "Cole", "sam.cole@acme.example", "contractor", "terminated", "2026-06-05"),
        person("200", "Sam", "Cole", "sam.cole@acme.example", "employee", "active", ""),
        person("110", "Ida", "Moss", "ida.moss@acme.example", "contractor", "terminated", "2026-06-05"),
        person("210", "Ida", "Moss", "Ida.Moss@ACME.example", "employee", "active", ""),
        person("120", "Lea", "Hart", "lea.hart@acme.example", "contractor", "active", ""),
        person("220", "Lea", "Hart", "lea.hart@acme.example", "employee", "active", ""),
        person("300", "Ray", "Dunn", "ray.dunn@acme.example", "employee", "terminated", "2026-06-05"),
    ];
    env.load("day1.csv", &day1, t1, &[]);
    let plan = env.plan(t1);
    for (new, old) in [("200", "100"), ("210", "110")] {
        let adopt = action(&plan, new, "adopt").unwrap_or_else(|| panic!("worker {new} takes over: {plan}"));
        assert_eq!(adopt["moved_from"], old, "{adopt}");
        assert!(
            adopt["reason"].as_str().unwrap().contains(&format!("linked to worker {old}, who has left")),
            "{adopt}"
        );
        assert!(action(&plan, old, "deactivate").is_none(), "the converted account stays active: {plan}");
        assert!(action(&plan, new, "create").is_none(), "{plan}");
    }
    let held = action(&plan, "220", "skip").unwrap_or_else(|| panic!("Lea's new id is held: {plan}"));
    assert!(held["reason"].as_str().unwrap().contains("linked to worker 120, who is active in HR"), "{held}");
    assert!(action(&plan, "300", "deactivate").is_some(), "{plan}");
    let out = env.ok(&["apply", "--as-of", t1]);
    assert!(out.contains("failed 0"), "{out}");
    assert!(out.contains("linked to worker 120, who is active in HR"), "apply says why 220 waits: {out}");
    let reviews = env.ok(&["reviews"]);
    assert!(reviews.contains("held by tenure") && reviews.contains("worker 220"), "{reviews}");
    assert!(reviews.contains("linked to worker 120, who is active in HR"), "{reviews}");
    let acc = accounts(&sb).await;
    assert_eq!(acc.len(), 4, "no second account for anyone: {:?}", acc.keys());
    assert_eq!(acc["ray.dunn@acme.example"]["active"], false, "the unrelated leaver is deactivated");
    assert_eq!(acc["sam.cole@acme.example"]["active"], true);
    assert_eq!(acc["sam.cole@acme.example"]["userType"], "member", "now an employee");
    assert_eq!(acc["sam.cole@acme.example"]["externalId"], "200");
    assert_eq!(acc["ida.moss@acme.example"]["externalId"], "210");
    // The move is in both timelines.
    let old: serde_json::Value = serde_json::from_str(&env.ok(&["audit", "worker", "100", "--json"])).unwrap();
    assert!(
        old.as_array()
            .unwrap()
            .iter()
            .any(|r| r["action"] == "unlink" && r["outcome"] == "account moved to worker 200"),
        "{old}"
    );
    let new: serde_json::Value = serde_json::from_str(&env.ok(&["audit", "worker", "200", "--json"])).unwrap();
    assert!(
        new.as_array().unwrap().iter().any(|r| r["action"] == "adopt" && r["detail"]["moved_from"] == "100"),
        "{new}"
    );
    // Settled: the next run has nothing left but Lea's hold, and works.
    let plan = env.plan(t1);
    let k = kinds(&plan);
    assert!(["create", "adopt", "update", "deactivate", "reactivate"].iter().all(|x| !k.contains_key(*x)), "{k:?}");
    assert_eq!(k["skip"], vec!["220"]);
    env.ok(&["audit", "verify"]);
    // When Lea's contractor record ends, the link moves to her new id.
    let t2 = "2026-06-20T12:00:00Z";
    let mut day2 = day1.clone();
    day2[4] = person("120", "Lea", "Hart", "lea.hart@acme.example", "contractor", "terminated", "2026-06-15");
    env.load("day2.csv", &day2, t2, &[]);
    let out = env.ok(&["apply", "--as-of", t2]);
    assert!(out.contains("failed 0") && out.contains("adopt 1"), "{out}");
    assert_eq!(accounts(&sb).await["lea.hart@acme.example"]["externalId"], "220");
    assert!(!env.ok(&["reviews"]).contains("held by tenure"), "the hold is gone once settled");
}

#[tokio::test]
async fn look_alike_addresses_never_match_and_admins_wait_for_a_reviewer() {
    let seed_dir = common::tempdir("lookalike-seed");
    let seed = seed_dir.join("seed.json");
    std::fs::write(
        &seed,
        r#"{"Users": [
            {"userName": "kim.park@acme.example", "displayName": "Kim Park", "userType": "admin", "active": true,
             "emails": [{"value": "kim.park@acme.example", "type": "work", "primary": true}]},
            {"userName": "ops@acme.example", "displayName": "Ops Lead", "userType": "admin", "active": true,
             "emails": [{"value": "ops@acme.example", "type": "work", "primary": true}]},
            {"userName": "desk@acme.example", "displayName": "Help Desk", "userType": "admin", "active": true,
             "emails": [{"value": "desk@acme.example", "type": "work", "primary": true}]}]}"#,
    )
    .unwrap();
    let sb = common::spawn(&["--seed", seed.to_str().unwrap()]);
    let env = Env::connect(&sb, "lookalike", "");
    email_user_names(&env);
    // A Kelvin sign (U+212A) for the k: Unicode lowercase would make it kim.park@.
    let kelvin = "\u{212A}im.park@acme.example";
    let rows = vec![
        person("700", "Kim", "Parker", kelvin, "employee", "active", ""),
        person("701", "Ops", "Lead", "OPS@acme.example", "employee", "active", ""),
    ];
    env.load("hr.csv", &rows, AT, &[]);
    let plan = env.plan(AT);
    let held = action(&plan, "700", "skip").unwrap_or_else(|| panic!("the look-alike is held: {plan}"));
    let why = held["reason"].as_str().unwrap();
    assert!(why.contains("only looks like the existing account \"kim.park@acme.example\""), "{why}");
    assert!(action(&plan, "700", "adopt").is_none() && action(&plan, "700", "create").is_none(), "{plan}");
    // An exact match (ASCII case aside) to an admin account tenure did not make waits for a reviewer.
    let wait = action(&plan, "701", "skip").unwrap_or_else(|| panic!("adopting an admin waits: {plan}"));
    assert!(wait["reason"].as_str().unwrap().contains("waiting for approval: hire: adopts an admin account"), "{wait}");
    let out = env.ok(&["apply", "--as-of", AT]);
    assert!(out.contains("failed 0"), "{out}");
    let acc = accounts(&sb).await;
    assert_eq!(acc.len(), 3, "nothing created: {:?}", acc.keys());
    assert_eq!(acc["kim.park@acme.example"]["userType"], "admin", "the admin is untouched");
    assert_eq!(acc["ops@acme.example"]["userType"], "admin", "not adopted before a reviewer says so");
    let reviews = env.ok(&["reviews"]);
    assert!(
        reviews.contains("worker 701") && reviews.contains("needs a reviewer: adopts an admin account"),
        "{reviews}"
    );
    // Approved, the adoption happens (and the grant's user type applies).
    env.ok(&["approve", "--all"]);
    let out = env.ok(&["apply", "--as-of", AT]);
    assert!(out.contains("adopt 1"), "{out}");
    assert_eq!(accounts(&sb).await["ops@acme.example"]["externalId"], "701");
    // A setting allows it without a reviewer.
    let rules = std::fs::read_to_string(env.dir.join("email-rules.toml")).unwrap();
    let rules = rules.replacen("dialect = \"monday\"\n", "dialect = \"monday\"\nadopt_admins = true\n", 1);
    let p = env.dir.join("allow-admins.toml");
    std::fs::write(&p, rules).unwrap();
    env.ok(&["config", "import", p.to_str().unwrap()]);
    let mut rows = rows;
    rows.push(person("702", "Help", "Desk", "desk@acme.example", "employee", "active", ""));
    env.load("hr2.csv", &rows, AT, &[]);
    let plan = env.plan(AT);
    assert!(action(&plan, "702", "adopt").is_some_and(|a| a.get("review").is_none()), "{plan}");
    assert!(action(&plan, "700", "skip").is_some(), "a look-alike stays held whatever the setting: {plan}");
}

/// A look-alike hired the same day as the address it looks like: neither account exists, and
/// the target (which folds Unicode case) would take one for the other. The look-alike is held
/// from the first run, whichever row comes first, and no store error reaches anyone.
#[tokio::test]
async fn a_look_alike_hired_the_same_day_is_held_from_the_first_run() {
    let sb = common::spawn(&[]);
    let env = Env::connect(&sb, "lookalike-same-day", "");
    email_user_names(&env);
    let kelvin = "\u{212A}im.park@acme.example";
    // The look-alike's row first: order must not decide who gets the account.
    let rows = vec![
        person("700", "Kim", "Parker", kelvin, "employee", "active", ""),
        person("701", "Kim", "Park", "kim.park@acme.example", "employee", "active", ""),
    ];
    env.load("hr.csv", &rows, AT, &[]);
    let plan = env.plan(AT);
    let held = action(&plan, "700", "skip").unwrap_or_else(|| panic!("the look-alike is held: {plan}"));
    let why = held["reason"].as_str().unwrap();
    assert!(why.contains("only looks like \"kim.park@acme.example\", the address of worker 701"), "{why}");
    assert!(action(&plan, "700", "create").is_none(), "{plan}");
    assert!(action(&plan, "701", "create").is_some(), "the plain address is made: {plan}");
    let out = env.ok(&["apply", "--as-of", AT]);
    assert!(out.contains("failed 0") && out.contains("create 1"), "{out}");
    assert!(!out.contains("UNIQUE") && !out.contains("constraint"), "{out}");
    let acc = accounts(&sb).await;
    assert_eq!(acc.len(), 1, "{:?}", acc.keys());
    assert_eq!(acc["kim.park@acme.example"]["externalId"], "701", "the real address's worker has it");
    // Held the next run too (now against the account), and shown to a person.
    let plan = env.plan(AT);
    assert!(action(&plan, "700", "skip").is_some(), "{plan}");
    assert!(env.ok(&["reviews"]).contains("worker 700"), "the hold is listed");
}

/// The store behind an `Env` (SQLite or PostgreSQL), for a test that reads or faults it.
async fn store(env: &Env) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&env.store_url()).await.unwrap()
}

async fn count(pool: &sqlx::AnyPool, sql: &str) -> i64 {
    use sqlx::Row;
    sqlx::query(sql).fetch_one(pool).await.unwrap().try_get::<i64, _>(0).unwrap()
}

/// Inactive accounts on the sandbox.
async fn inactive(sb: &common::Sandbox) -> u64 {
    let f = common::filter("active eq false");
    sb.get(&format!("/Users?{f}&count=1")).await.body["totalResults"].as_u64().unwrap_or(0)
}

const OPEN_GUARD: &str = "deprovision_guard = { max_share = 1.0, max_count = 100000, min_count = 3 }";

#[tokio::test]
async fn every_deactivation_is_audited_even_after_kill_9() {
    deactivations_after_kill(None).await
}

#[tokio::test]
async fn every_deactivation_is_audited_after_kill_9_on_postgres() {
    if let Some(pg) = postgres("every_deactivation_is_audited_after_kill_9_on_postgres").await {
        deactivations_after_kill(Some(pg.url.clone())).await
    }
}

async fn deactivations_after_kill(database_url: Option<String>) {
    let sb = common::spawn(&["--latency-ms", "40"]);
    let env = Env::connect_to(&sb, "deact-kill", "", OPEN_GUARD, database_url);
    let n = 480;
    let all = population(n + 20);
    env.load("day0.csv", &all, AT, &[]);
    assert!(env.ok(&["apply", "--as-of", AT]).contains("failed 0"));
    // 480 of them leave at once.
    let t1 = "2026-06-10T12:00:00Z";
    let leavers: Vec<String> = all
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if i < n {
                r.replace(",active,", ",terminated,").replace(",2020-01-01,", ",2020-01-01,2026-06-05")
            } else {
                r.clone()
            }
        })
        .collect();
    env.load("day1.csv", &leavers, t1, &[]);
    assert_eq!(kinds(&env.plan(t1))["deactivate"].len(), n);
    let mut child = env.command().args(["apply", "--as-of", t1]).stdout(std::process::Stdio::null()).spawn().unwrap();
    let seen = wait_for_users(&sb, Some("active eq false"), 60, 10, 800).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = inactive(&sb).await;
    assert!(seen >= 60 && (at_kill as usize) < n, "killed mid-run ({at_kill} of {n} deactivated)");
    let o = env.command().args(["apply", "--as-of", t1, "--json"]).output().unwrap();
    let (out, said) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success() && said.contains("left in flight by an earlier run"), "{said}");
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    let recovered = summary["recovered"].as_u64().unwrap_or_else(|| panic!("no recovered count: {out}"));
    assert!(recovered > 0, "the run counts what it resolved of the killed one: {out}");
    assert_eq!(inactive(&sb).await as usize, n);
    let runs = env.ok(&["runs", "--json"]);
    assert!(runs.contains(&format!("\"recovered\": {recovered}")), "runs keep the count: {runs}");
    // Audit records equal effects: one deactivation per leaver, done or found done, and the
    // hard-delete clock started for each.
    let pool = store(&env).await;
    let audited = count(
        &pool,
        "SELECT COUNT(*) FROM audit WHERE action = 'deactivate' AND (outcome = 'ok' OR outcome = 'found done after an interruption')",
    )
    .await;
    assert_eq!(audited as usize, n, "one audit record per deactivation");
    let workers = count(&pool, "SELECT COUNT(DISTINCT worker_id) FROM audit WHERE action = 'deactivate'").await;
    assert_eq!(workers as usize, n, "no leaver audited twice");
    let found = count(&pool, "SELECT COUNT(*) FROM audit WHERE outcome = 'found done after an interruption'").await;
    assert!(found > 0, "the calls made before the kill were found and recorded");
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM deactivations").await as usize, n);
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM journal WHERE state = 'intent'").await, 0);
    pool.close().await;
    assert!(env.ok(&["audit", "verify"]).contains("chain intact"));
}

#[tokio::test]
async fn recovery_of_many_intents_makes_progress_across_kills() {
    many_intents(None).await
}

#[tokio::test]
async fn recovery_of_many_intents_on_postgres() {
    if let Some(pg) = postgres("recovery_of_many_intents_on_postgres").await {
        many_intents(Some(pg.url.clone())).await
    }
}

async fn many_intents(database_url: Option<String>) {
    // 20 ms a call, 100 calls in flight: a kill leaves well over a thousand intents open.
    let sb = common::spawn(&["--latency-ms", "20"]);
    let env = Env::connect_to(&sb, "many-intents", "", "concurrency = 100", database_url);
    let n = 2000;
    env.load("all.csv", &population(n), AT, &[]);
    let mut child = env.command().args(["apply", "--as-of", AT]).stdout(std::process::Stdio::null()).spawn().unwrap();
    wait_for_users(&sb, None, 150, 10, 800).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let pool = store(&env).await;
    let open = count(&pool, "SELECT COUNT(*) FROM journal WHERE state = 'intent'").await;
    assert!(open >= 1000, "a large open set: {open}");
    // Killed again as soon as recovery has written something: what it wrote stays written.
    let mut child = env.command().args(["apply", "--as-of", AT]).stdout(std::process::Stdio::null()).spawn().unwrap();
    for _ in 0..1000 {
        if count(&pool, "SELECT COUNT(*) FROM journal WHERE state = 'intent'").await < open {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let still = count(&pool, "SELECT COUNT(*) FROM journal WHERE state = 'intent'").await;
    eprintln!("open intents: {open} after the first kill, {still} after the kill during recovery");
    assert!(still < open, "recovery killed midway kept its progress ({still} of {open} open)");
    let out = env.ok(&["apply", "--as-of", AT]);
    assert!(out.contains("failed 0"), "{out}");
    assert_exactly_once(&sb, n).await;
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM journal WHERE state = 'intent'").await, 0);
    // Every account made has exactly one create in the audit (done, recovered or found done).
    let creates =
        count(&pool, "SELECT COUNT(*) FROM audit WHERE action = 'create' AND outcome NOT LIKE 'failed%'").await;
    assert_eq!(creates as usize, n, "audit records equal effects");
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM links").await as usize, n);
    pool.close().await;
    assert!(env.ok(&["audit", "verify"]).contains("chain intact"));
}

#[tokio::test]
async fn a_store_failure_at_any_write_fails_only_its_worker() {
    store_faults(None).await
}

#[tokio::test]
async fn a_store_failure_at_any_write_on_postgres() {
    if let Some(pg) = postgres("a_store_failure_at_any_write_on_postgres").await {
        store_faults(Some(pg.url.clone())).await
    }
}

/// Makes the store refuse one kind of write for one worker, as a failing disk, a constraint
/// or a bug would: a trigger that raises.
async fn fault(pool: &sqlx::AnyPool, postgres: bool, name: &str, when: &str, table: &str, worker: &str) {
    let sql = if postgres {
        format!(
            "CREATE OR REPLACE FUNCTION tenure_fault() RETURNS trigger AS $f$ BEGIN RAISE EXCEPTION 'injected fault'; END \
             $f$ LANGUAGE plpgsql; CREATE TRIGGER fault_{name} {when} ON {table} FOR EACH ROW WHEN (NEW.worker_id = '{worker}') \
             EXECUTE FUNCTION tenure_fault()"
        )
    } else {
        format!(
            "CREATE TRIGGER fault_{name} {when} ON {table} WHEN NEW.worker_id = '{worker}' BEGIN SELECT RAISE(ABORT, \
             'injected fault'); END"
        )
    };
    sqlx::raw_sql(&sql).execute(pool).await.unwrap();
}

async fn unfault(pool: &sqlx::AnyPool, postgres: bool, name: &str, table: &str) {
    let on = if postgres { format!(" ON {table}") } else { String::new() };
    sqlx::raw_sql(&format!("DROP TRIGGER fault_{name}{on}")).execute(pool).await.unwrap();
}

async fn store_faults(database_url: Option<String>) {
    let pg = database_url.is_some();
    let sb = common::spawn(&[]);
    let env = Env::connect_to(&sb, "store-faults", "", "", database_url);
    let base = population(10);
    let hire =
        |id: &str, last: &str| row(id, "New", last, "Staff", "Sales", "employee", "active", ",2020-01-01", ",,,");
    env.load("day0.csv", &base, AT, &[]);
    assert!(env.ok(&["apply", "--as-of", AT]).contains("failed 0"));
    // Day 1: five hires (801-805), two leavers (10000 and 10001).
    let t1 = "2026-06-10T12:00:00Z";
    let mut day1: Vec<String> = base.clone();
    for r in day1.iter_mut().take(2) {
        *r = r.replace(",active,", ",terminated,").replace(",2020-01-01,", ",2020-01-01,2026-06-05");
    }
    for (id, last) in [("801", "Alpha"), ("802", "Bravo"), ("803", "Charlie"), ("804", "Delta"), ("805", "Echo")] {
        day1.push(hire(id, last));
    }
    env.load("day1.csv", &day1, t1, &[]);
    let pool = store(&env).await;
    // One fault per write of an apply, each for one worker.
    let faults = [
        ("intent", "BEFORE INSERT", "journal", "801"),
        ("link", "BEFORE INSERT", "links", "802"),
        ("audit", "BEFORE INSERT", "audit", "803"),
        ("outcome", "BEFORE UPDATE", "journal", "804"),
        ("deactivation", "BEFORE INSERT", "deactivations", "10000"),
    ];
    for (name, when, table, worker) in faults {
        fault(&pool, pg, name, when, table, worker).await;
    }
    let (code, out) = env.tenure(&["apply", "--as-of", t1]);
    assert_eq!(code, 4, "the failures are reported:\n{out}");
    // The five faulted workers' actions fail (two each, but the leaver's one), nobody else's.
    assert!(out.contains("processed 3, failed 9 (create 1, deactivate 1, team_add 1)"), "{out}");
    let acc = accounts(&sb).await;
    assert_eq!(acc["new.echo@acme.example"]["active"], true, "the hire without a fault is made");
    assert_eq!(acc["worker.n0001@acme.example"]["active"], false, "the leaver without a fault is deactivated");
    assert!(!acc.contains_key("new.alpha@acme.example"), "no call without its intent");
    // The next run, faults still in place, recovers the others and goes on.
    let (code, out) = env.tenure(&["apply", "--as-of", t1]);
    assert!(code == 4 || code == 0, "{out}");
    assert!(!out.contains("tenure: "), "no run-stopping error: {out}");
    // One fault at a write of recovery: the outcome of 804's interrupted create.
    for (name, _, table, _) in faults.iter().filter(|f| f.0 != "outcome") {
        unfault(&pool, pg, name, table).await;
    }
    let (code, out) = env.tenure(&["apply", "--as-of", t1]);
    assert!(code == 4 || code == 0, "{out}");
    assert!(!out.contains("tenure: "), "{out}");
    unfault(&pool, pg, "outcome", "journal").await;
    let out = env.ok(&["apply", "--as-of", t1]);
    assert!(out.contains("failed 0"), "{out}");
    let k = kinds(&env.plan(t1));
    assert!(["create", "adopt", "update", "deactivate", "team_add"].iter().all(|x| !k.contains_key(*x)), "{k:?}");
    assert_exactly_once(&sb, 15).await;
    // Every effect has its audit record; the leavers' clocks started.
    for w in ["801", "802", "803", "804", "805"] {
        let n = count(
            &pool,
            &format!("SELECT COUNT(*) FROM audit WHERE worker_id = '{w}' AND action IN ('create', 'adopt') AND outcome NOT LIKE 'failed%'"),
        )
        .await;
        assert!(n >= 1, "worker {w}'s account is in the audit");
    }
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM deactivations").await, 2);
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM links").await, 15);
    pool.close().await;
    assert!(env.ok(&["audit", "verify"]).contains("chain intact"));
}

#[tokio::test]
async fn a_patch_may_name_the_enterprise_extension_as_a_whole() {
    // The generic dialect: monday.com documents no enterprise extension.
    let sb = common::spawn(&["--dialect", "generic"]);
    let ext = common::ENTERPRISE;
    let id = sb.create_user("ext.user@acme.example", "Ext User").await;
    let boss = sb.create_user("boss@acme.example", "The Boss").await;
    let path = format!("/Users/{id}");
    let a = sb
        .patch(
            &path,
            serde_json::json!([{"op": "add", "path": ext,
                "value": {"department": "Sales", "employeeNumber": "42", "manager": {"value": boss}}}]),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body[ext]["department"], "Sales");
    assert_eq!(a.body[ext]["manager"]["value"], boss.as_str());
    // Replace sets what it names and keeps the rest; the path's case does not matter.
    let a = sb
        .patch(
            &path,
            serde_json::json!([{"op": "Replace", "path": ext.to_lowercase(), "value": {"department": "Ops"}}]),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body[ext]["department"], "Ops");
    assert_eq!(a.body[ext]["employeeNumber"], "42");
    assert_eq!(sb.get(&path).await.body[ext]["department"], "Ops", "stored, not only answered");
    // A value that is not an object is a SCIM error naming the operation.
    let a = sb.patch(&path, serde_json::json!([{"op": "replace", "path": ext, "value": "Ops"}])).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.body["scimType"], "invalidValue");
    assert!(a.body["detail"].as_str().unwrap().contains("Operations[0]"), "{}", a.body);
    // Remove clears the extension.
    let a = sb.patch(&path, serde_json::json!([{"op": "remove", "path": ext}])).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.get(ext).is_none(), "{}", a.body);
    let schemas = a.body["schemas"].as_array().unwrap();
    assert!(!schemas.iter().any(|s| s == ext), "the extension leaves schemas too: {}", a.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wide_filter_and_a_huge_patch_are_refused_while_reads_go_on() {
    let sb = common::spawn(&[]);
    let id = sb.create_user("reader@acme.example", "Reader").await;
    // 7,000 terms, 251 KB, through .search (a URL would not carry it).
    let wide: Vec<String> = (0..7000).map(|i| format!("userName eq \"user{i:04}@acme.example\"")).collect();
    let body = serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": wide.join(" or ")});
    let a = sb.post("/Users/.search", &body).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.body["scimType"], "invalidFilter", "{}", a.body);
    // Short enough, but too many terms.
    let many: Vec<String> = (0..300).map(|i| format!("id eq \"{i}\"")).collect();
    let a = sb.get(&format!("/Users?{}", common::filter(&many.join(" or ")))).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body["detail"].as_str().unwrap().contains("more than 200 comparisons"), "{}", a.body);
    // Within the bounds, a wide filter is served.
    let some: Vec<String> = (0..150).map(|i| format!("userName eq \"user{i}@acme.example\"")).collect();
    let ok = format!("{} or userName eq \"reader@acme.example\"", some.join(" or "));
    let a = sb.get(&format!("/Users?{}", common::filter(&ok))).await;
    assert_eq!((a.status, a.body["totalResults"].as_u64()), (200, Some(1)), "{}", a.body);
    // 10,000 operations in one PATCH: refused as a whole, nothing applied.
    let ops: Vec<serde_json::Value> =
        (0..10_000).map(|i| serde_json::json!({"op": "replace", "path": "title", "value": format!("T{i}")})).collect();
    let reads = {
        let (base, token) = (sb.base.clone(), sb.token.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut statuses = vec![];
            for _ in 0..50 {
                let r = http.get(format!("{base}/Users?count=10")).bearer_auth(&token).send().await.unwrap();
                statuses.push(r.status().as_u16());
            }
            statuses
        })
    };
    let a = sb.patch(&format!("/Users/{id}"), serde_json::Value::Array(ops)).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.body["scimType"], "tooMany", "{}", a.body);
    assert!(sb.get(&format!("/Users/{id}")).await.body.get("title").is_none(), "nothing of it applied");
    // The largest PATCH allowed is applied, while the reads go on.
    let ops: Vec<serde_json::Value> = (0..1000)
        .map(|i| serde_json::json!({"op": "add", "path": "emails", "value": [{"value": format!("alias{i}@acme.example"), "type": "other"}]}))
        .collect();
    let a = sb.patch(&format!("/Users/{id}"), serde_json::Value::Array(ops)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["emails"].as_array().unwrap().len(), 1001);
    assert!(reads.await.unwrap().iter().all(|s| *s == 200), "every read during them was answered");
    assert_eq!(sb.get("/Users?count=1").await.status, 200, "the sandbox is up");
}

/// A server that answers every request with a redirect to `to` (and a body that must never be
/// shown), counting what it got.
async fn redirector(to: String) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let (to, seen) = (to.clone(), seen.clone());
        async move {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            (axum::http::StatusCode::TEMPORARY_REDIRECT, [("location", to)], "REDIRECTED-BODY-NEVER-SHOWN")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_calls_go_only_where_the_admin_said() {
    // A fault knob on, so the sandbox counts the requests it gets.
    let sb = common::spawn(&["--latency-ms", "1"]);
    // A target that redirects to the (real) sandbox, with a code in the query.
    let (target, hits) = redirector(format!("{}/Users?code=SECRET-CODE", sb.base)).await;
    let env = Env::new_store("redirects", None);
    let token = env.dir.join("token");
    std::fs::write(&token, &sb.token).unwrap();
    // `connection add` tests the connection before it keeps it.
    let (code, test) = env.tenure(&[
        "connection",
        "add",
        "--name",
        "Connection-Bearer Token-1",
        "--url",
        &format!("{target}/scim/v2"),
        "--token-file",
        token.to_str().unwrap(),
    ]);
    assert_ne!(code, 0, "{test}");
    assert!(test.contains("answered 307, redirecting to") && test.contains("does not follow redirects"), "{test}");
    assert!(!test.contains("REDIRECTED-BODY") && !test.contains("SECRET-CODE"), "{test}");
    assert!(hits.load(std::sync::atomic::Ordering::SeqCst) > 0);
    let root = sb.base.trim_end_matches("/scim/v2");
    let stats: serde_json::Value = sb
        .http
        .get(format!("{root}/_sandbox/stats"))
        .bearer_auth(&sb.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The sandbox's own endpoints are not counted.
    assert_eq!(stats["requests"], 0, "the sandbox was never reached through the redirect: {stats}");
    assert_eq!(sb.get("/Users?count=1").await.status, 200);
    let stats: serde_json::Value = sb
        .http
        .get(format!("{root}/_sandbox/stats"))
        .bearer_auth(&sb.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["requests"], 1, "the count is real: {stats}");

    // Notifiers: a redirecting webhook fails and names it; addresses a webhook or relay may
    // not name are refused when the configuration is checked.
    let env = Env::connect(&sb, "notify-redirect", "");
    let (hook, hook_hits) = redirector("http://127.0.0.1:9/elsewhere".into()).await;
    let rules = std::fs::read_to_string(RULES).unwrap();
    let with = |notify: &str| {
        let p = env.dir.join("notify.toml");
        std::fs::write(&p, format!("{rules}\n{notify}")).unwrap();
        env.tenure(&["config", "import", p.to_str().unwrap()])
    };
    for (notify, says) in [
        ("[[notify]]\nname = \"n\"\nwebhook = \"http://localhost@attacker.example/hook\"", "user name or password"),
        ("[[notify]]\nname = \"n\"\nwebhook = \"https://[64:ff9b::a9fe:a9fe]/hook\"", "link-local address"),
        ("[[notify]]\nname = \"n\"\nwebhook = \"https://10.1.2.3/hook\"", "private address"),
        (
            "[[notify]]\nname = \"n\"\n[notify.email]\nsmtp = \"smtp://mail.acme.example:25\"\nfrom = \"t@acme.example\"\nto = [\"it@acme.example\"]\nusername = \"tenure\"",
            "only over TLS",
        ),
    ] {
        let (code, out) = with(notify);
        assert_eq!(code, 1, "{notify}: {out}");
        assert!(out.contains(says), "{notify}: {out}");
    }
    let (code, out) = with("[[notify]]\nname = \"n\"\nwebhook = \"https://10.1.2.3/hook\"\nallow_private = true");
    assert_eq!(code, 0, "allowed when said so: {out}");
    let (code, out) = with(&format!("[[notify]]\nname = \"hook\"\nwebhook = \"{hook}/hook\""));
    assert_eq!(code, 0, "{out}");
    env.ok(&["notify", "secret", "hook"]);
    let (code, out) = env.tenure(&["notify", "test", "hook"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("redirecting to \"http://127.0.0.1:9/elsewhere\": redirects are not followed"), "{out}");
    assert!(!out.contains("REDIRECTED-BODY"), "{out}");
    assert_eq!(hook_hits.load(std::sync::atomic::Ordering::SeqCst), 1, "tried once, not retried or followed");
}

#[tokio::test]
async fn hr_values_are_data_and_oversized_fields_are_held() {
    let sb = common::spawn(&[]);
    let env = Env::connect(&sb, "hr-values", "");
    let ann = |title: &str| row("1", "Ann", "Lee", title, "Sales", "employee", "active", ",2020-01-01", ",,,");
    let bob = |title: &str| row("2", "Bob", "Ray", title, "Sales", "employee", "active", ",2020-01-01", ",,,");
    env.load("day0.csv", &[ann("Engineer"), bob("Analyst")], AT, &[]);
    assert!(env.ok(&["apply", "--as-of", AT]).contains("failed 0"));
    // Day 1: a 9 MB title for Ann; a formula for Bob's title (quoted: it has a comma).
    let huge = "x".repeat(9 * 1024 * 1024);
    let out =
        env.load("day1.csv", &[ann(&huge), bob("\"=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\"")], AT, &[]);
    assert!(
        out.contains("over the limit of 1024 bytes per field") && out.contains("(9437184 bytes)"),
        "{}",
        &out[..out.len().min(2000)]
    );
    assert!(out.len() < 20_000, "the huge value is not echoed whole");
    assert!(
        out.contains("held: worker 1"),
        "Ann is held as she was, not taken as gone: {}",
        &out[..out.len().min(2000)]
    );
    assert!(out.contains("begins as a spreadsheet formula would"), "{out}");
    let (code, out) = env.tenure(&["apply", "--as-of", AT]);
    assert_eq!(code, 0, "the next runs are not failed by the huge value: {}", &out[..out.len().min(2000)]);
    let acc = accounts(&sb).await;
    assert_eq!(acc["ann.lee@acme.example"]["title"], "Engineer", "never sent");
    assert_eq!(acc["ann.lee@acme.example"]["active"], true);
    assert_eq!(acc["bob.ray@acme.example"]["title"], "=HYPERLINK(\"http://evil.example\",\"x\")", "carried as data");
    // A higher cap, said on the command line, lets it through to the plan.
    let out = env.load("day1b.csv", &[ann(&"y".repeat(2000)), bob("Analyst")], AT, &["--max-field-bytes", "4096"]);
    assert!(!out.contains("over the limit"), "{}", &out[..out.len().min(2000)]);
}

#[tokio::test]
async fn stray_quotes_never_lose_a_row_nor_make_a_leaver() {
    let sb = common::spawn(&[]);
    let env = Env::connect(&sb, "stray-quotes", "");
    let all = population(20);
    env.load("day0.csv", &all, AT, &[]);
    env.ok(&["apply", "--as-of", AT]);
    let write = |name: &str, rows: &[String]| {
        let p = env.dir.join(name);
        std::fs::write(&p, format!("{HEADER}\n{}\n", rows.join("\n"))).unwrap();
        p
    };
    // A quote opened in row 7's last name and closed in row 8's: parsed, the two rows are one
    // record with the header's number of fields. Refused, naming the lines.
    let mut merged = all.clone();
    merged[6] = merged[6].replacen(",N0006,", ",\"N0006,", 1);
    merged[7] = merged[7].replacen(",N0007,", ",N0007\",", 1);
    let p = write("merged.csv", &merged);
    let (code, out) = env.tenure(&["hr", "load", p.to_str().unwrap(), "--as-of", AT, "--missing", "terminate"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("line 8, field 3: a quote opened here is not closed"), "{out}");
    assert!(out.contains("lines 8 to 9 were read as one row, yet 2 of them hold a whole row's fields"), "{out}");
    // A short row 7 with the same stray quotes reads as one row of the right shape; row 8's
    // worker has no row, but the file still names it: held, never a leaver by the policy.
    let mut short = all.clone();
    short[6] = "10006,Worker,\"N0006,worker.n0006@acme.example,Staff".into();
    short[7] = short[7].replacen(",N0007,", ",N0007\",", 1);
    let p = write("short-merged.csv", &short);
    let (code, out) = env.tenure(&["hr", "load", p.to_str().unwrap(), "--as-of", AT, "--missing", "terminate"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("held: worker 10007 has no row tenure could read, yet the file names its id"), "{out}");
    assert!(!out.contains("termination"), "nobody made a leaver: {out}");
    let plan = env.plan(AT);
    let held = action(&plan, "10007", "skip").unwrap_or_else(|| panic!("10007 is held: {plan}"));
    assert!(held["reason"].as_str().unwrap().contains("the file names its id"), "{held}");
    assert!(!kinds(&plan).contains_key("deactivate"), "{plan}");
}

#[tokio::test]
async fn a_damaged_or_shrunken_hr_file_is_refused_not_half_read() {
    let sb = common::spawn(&[]);
    let env = Env::connect(&sb, "damaged-hr", "");
    let all = population(20);
    env.load("day0.csv", &all, AT, &[]);
    // A stray quote on row 5 (line 6) would swallow every later row.
    let mut damaged = all.clone();
    damaged[4] = damaged[4].replacen(",Worker,", ",\"Worker,", 1);
    let p = env.dir.join("damaged.csv");
    std::fs::write(&p, format!("{HEADER}\n{}\n", damaged.join("\n"))).unwrap();
    let (code, out) = env.tenure(&["hr", "load", p.to_str().unwrap(), "--as-of", AT]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("line 6, field 2: a quote opened here is not closed"), "{out}");
    assert!(out.contains("Nothing was loaded"), "{out}");
    let (code, out) = env.tenure(&["hr", "validate", p.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    // A quoted value that holds a line break, as an address would, is still data.
    let mut multi = all.clone();
    multi[3] = multi[3].replacen(",Staff,", ",\"Staff\nsecond line\",", 1);
    let out = env.load("multi.csv", &multi, AT, &[]);
    assert!(out.contains("accepted: 20, quarantined: 0"), "{out}");
    // A full load that lost a quarter of the population is refused with the numbers.
    let (code, out) = {
        let p = env.dir.join("short.csv");
        std::fs::write(&p, format!("{HEADER}\n{}\n", all[..15].join("\n"))).unwrap();
        env.tenure(&["hr", "load", p.to_str().unwrap(), "--as-of", AT, "--missing", "terminate"])
    };
    assert_eq!(code, 7, "the population check's own code: {out}");
    assert!(out.contains("has 15 workers where the last snapshot has 20: 25% fewer"), "{out}");
    assert!(out.contains("--confirm-population 15"), "{out}");
    assert!(!kinds(&env.plan(AT)).contains_key("deactivate"), "nobody was made a leaver");
    let p = env.dir.join("empty.csv");
    std::fs::write(&p, format!("{HEADER}\n")).unwrap();
    let (code, out) = env.tenure(&["hr", "load", p.to_str().unwrap(), "--as-of", AT]);
    assert_eq!(code, 7, "{out}");
    assert!(out.contains("a full load with no workers"), "{out}");
    // Confirmed with the exact count, it is taken.
    let p = env.dir.join("short.csv");
    let (code, out) = env.tenure(&["hr", "load", p.to_str().unwrap(), "--as-of", AT, "--confirm-population", "15"]);
    assert!(code == 0, "{out}");
}
