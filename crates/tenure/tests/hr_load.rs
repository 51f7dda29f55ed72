//! `tenure hr load` end to end with the real binary: files archived under their checksum,
//! the snapshot and events in the store (SQLite, and PostgreSQL when
//! TENURE_TEST_DATABASE_URL is set), full vs delta loads, the missing-worker policy, future
//! events that wait, and superseded ones.

mod common;

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

struct Tenure {
    dir: PathBuf,
    database_url: Option<String>,
}

impl Tenure {
    /// Exit code, and standard error (notes) followed by standard output.
    fn run(&self, args: &[&str]) -> (i32, String) {
        let (code, out, err) = self.run_split(args);
        (code, format!("{err}{out}"))
    }

    fn run_split(&self, args: &[&str]) -> (i32, String, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tenure"));
        cmd.arg("--data-dir").arg(&self.dir).args(args).env_remove("TENURE_DATABASE_URL");
        if let Some(u) = &self.database_url {
            cmd.arg("--database-url").arg(u);
        }
        let o = cmd.output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        (o.status.code().unwrap_or(-1), out, err)
    }

    fn load(&self, file: &Path, as_of: &str, extra: &[&str]) -> (i32, String) {
        let mut args = vec!["hr", "load", file.to_str().unwrap(), "--as-of", as_of];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// Events as (worker, kind, state, effective), in the store's order.
    fn events(&self, extra: &[&str]) -> Vec<(String, String, String, String)> {
        let mut args = vec!["hr", "events", "--json"];
        args.extend_from_slice(extra);
        let (code, out, err) = self.run_split(&args);
        assert_eq!(code, 0, "{out}{err}");
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let s = |k: &str| e[k].as_str().unwrap().to_string();
                (s("worker"), s("kind"), s("state"), s("effective"))
            })
            .collect()
    }

    fn loads(&self) -> Vec<Value> {
        let (code, out, err) = self.run_split(&["hr", "loads", "--json"]);
        assert_eq!(code, 0, "{out}{err}");
        serde_json::from_str::<Value>(&out).unwrap().as_array().unwrap().clone()
    }
}

const HEADER: &str = "employee_id,first_name,last_name,work_email,title,department,employment_type,status,leave_type,\
hire_date,termination_date,leave_start,leave_end,time_zone";

fn write(dir: &Path, name: &str, rows: &[&str]) -> PathBuf {
    let p = dir.join(name);
    let mut text = format!("{HEADER}\n");
    for r in rows {
        text.push_str(r);
        text.push('\n');
    }
    std::fs::write(&p, text).unwrap();
    p
}

const ANN: &str = "1,Ann,Lee,ann@acme.example,Engineer,Engineering,employee,active,,2020-01-01,,,,America/New_York";
const BOB: &str = "2,Bob,Ray,bob@acme.example,Analyst,Finance,employee,active,,2020-01-01,,,,Europe/Paris";
const CAT: &str = "3,Cat,Øster,cat@acme.example,Designer,Product,contractor,active,,2021-05-01,,,,Asia/Tokyo";
const DAN: &str = "4,Dan,Søren,dan@acme.example,Engineer,Engineering,employee,terminated,,2019-01-01,2025-01-31,,,";
const EVE: &str = "5,Eve,Adé,eve@acme.example,Lawyer,Legal,employee,active,,2018-02-01,,,,Europe/Berlin";
const FAY: &str = "6,Fay,Müller,fay@acme.example,Manager,Sales,employee,leave,long_term,2017-03-01,,2026-01-10,,";
const GUS: &str = "7,Gus,Öz,gus@acme.example,Intern,Engineering,intern,active,,2026-06-10,,,,America/Los_Angeles";
const HAL: &str = "8,Hal,Ng,hal@acme.example,Support,Support,employee,active,,2016-01-01,,,,";

fn kinds(events: &[(String, String, String, String)], worker: &str) -> Vec<(String, String)> {
    events.iter().filter(|e| e.0 == worker).map(|e| (e.1.clone(), e.2.clone())).collect()
}

fn pair(kind: &str, state: &str) -> (String, String) {
    (kind.to_string(), state.to_string())
}

fn lifecycle_story(t: &Tenure) {
    let files = common::tempdir("hr-files");
    // Day 1: the first load; every active worker is a hire, Gus's waits for his pre-hire moment.
    let day1 = write(&files, "day1.csv", &[ANN, BOB, CAT, DAN, EVE, FAY, GUS, HAL]);
    let (code, out) = t.load(&day1, "2026-06-01T12:00:00Z", &["--pre-hire-days", "5"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.ends_with("rows: 8, accepted: 8, quarantined: 0, events: 8 (hire 7, leave_start 1), waiting: 1\n"),
        "{out}"
    );
    let ev = t.events(&[]);
    // Gus starts on 2026-06-10 in Los Angeles; five days ahead is the 5th at 00:00 PDT.
    assert!(ev.contains(&("7".into(), "hire".into(), "pending".into(), "2026-06-05T07:00:00Z".into())), "{ev:?}");
    assert_eq!(kinds(&ev, "4"), vec![], "a worker terminated before tenure knew them is no hire");

    // The file is archived under its SHA-256, byte for byte: beside a SQLite store in the data
    // folder, on PostgreSQL in the store itself (every node reads it; cluster_e2e takes it again).
    let bytes = std::fs::read(&day1).unwrap();
    let sum: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    let loads = t.loads();
    assert_eq!(loads.len(), 1);
    assert_eq!(loads[0]["checksum"], sum.as_str());
    assert_eq!(loads[0]["kind"], "full");
    match t.database_url {
        None => assert_eq!(std::fs::read(t.dir.join("hr-archive").join(&sum)).unwrap(), bytes),
        Some(_) => {
            assert_eq!(loads[0]["archived"], format!("in the store (hr_archive, sha256 {sum})"), "{:?}", loads[0]);
            assert!(!t.dir.join("hr-archive").exists(), "nothing on the node's own disk");
        }
    }

    // Day 2: a mover, an immediate leaver, a future-dated leaver in Tokyo, a rehire, a leave, a
    // return, a worker missing, a new row with a bad e-mail.
    let ann2 = ANN.replace("Engineer,Engineering", "Staff Engineer,Platform");
    let bob2 = BOB.replace("active", "terminated");
    let cat2 = CAT.replace("2021-05-01,,", "2021-05-01,2026-06-20,");
    let dan2 = DAN.replace("terminated,,2019-01-01,2025-01-31", "active,,2026-06-02,");
    let eve2 = EVE.replace("active,,2018-02-01,,,", "leave,fmla,2018-02-01,,2026-06-02,");
    let fay2 = FAY.replace("leave,long_term", "active,");
    let ivy = "9,Ivy,Tan,ivy-at-acme,Engineer,Engineering,employee,active,,2026-06-01,,,,";
    let day2 = write(&files, "day2.csv", &[&ann2, &bob2, &cat2, &dan2, &eve2, &fay2, GUS, ivy]);
    let (code, out) = t.load(&day2, "2026-06-02T12:00:00Z", &["--pre-hire-days", "5"]);
    assert_eq!(code, 2, "a quarantined row gives exit code 2: {out}");
    assert!(out.contains("day2.csv: row 8 (line 9, employee 9), column work_email, value \"ivy-at-acme\""), "{out}");
    assert!(out.ends_with("rows: 8, accepted: 7, quarantined: 1, events: 8 (change 2, leave_return 1, leave_start 1, missing_from_full_load 1, rehire 1, termination 2), waiting: 1\n"), "{out}");
    let ev = t.events(&[]);
    assert_eq!(kinds(&ev, "1"), vec![pair("hire", "pending"), pair("change", "pending")]);
    assert!(out.contains("title: \"Engineer\" -> \"Staff Engineer\""), "{out}");
    assert!(ev.contains(&("2".into(), "termination".into(), "pending".into(), "2026-06-02T12:00:00Z".into())));
    // The end of 20 June in Tokyo (UTC+9) is 15:00 UTC that day.
    assert!(ev.contains(&("3".into(), "termination".into(), "pending".into(), "2026-06-20T15:00:00Z".into())));
    assert_eq!(kinds(&ev, "4"), vec![pair("rehire", "pending")]);
    assert!(ev.contains(&("5".into(), "leave_start".into(), "pending".into(), "2026-06-01T22:00:00Z".into())));
    // Cat's hire stands: she works until her last day. Fay's return ends her leave.
    assert_eq!(
        kinds(&ev, "3"),
        vec![pair("hire", "pending"), pair("change", "pending"), pair("termination", "pending")]
    );
    assert_eq!(
        kinds(&ev, "6"),
        vec![pair("hire", "pending"), pair("leave_start", "superseded"), pair("leave_return", "pending")]
    );
    assert_eq!(kinds(&ev, "8"), vec![pair("hire", "pending"), pair("missing_from_full_load", "reported")]);
    assert_eq!(kinds(&ev, "9"), vec![], "a quarantined row makes no event");

    // Due by day 2: Cat's termination still waits; Gus's pre-hire has not come either.
    let due = t.events(&["--due", "--as-of", "2026-06-02T12:00:00Z"]);
    assert!(due.iter().all(|e| e.0 != "3" || e.1 != "termination"), "{due:?}");
    assert!(due.iter().all(|e| e.0 != "7"), "{due:?}");
    assert!(due.iter().any(|e| e.0 == "2" && e.1 == "termination"));
    let due_later = t.events(&["--due", "--as-of", "2026-06-20T15:00:00Z"]);
    assert!(due_later.iter().any(|e| e.0 == "3" && e.1 == "termination"), "{due_later:?}");

    // Day 3, a delta with Cat's date moved: the old termination is superseded by the new one;
    // Hal, absent from a delta, is not news.
    let cat3 = CAT.replace("2021-05-01,,", "2021-05-01,2026-06-25,");
    let delta = write(&files, "delta3.csv", &[&cat3]);
    let (code, out) = t.load(&delta, "2026-06-03T12:00:00Z", &["--kind", "delta"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with("events: 2 (change 1, termination 1), waiting: 1\n"), "{out}");
    let ev = t.events(&["--worker", "3"]);
    assert_eq!(
        ev.iter().filter(|e| e.1 == "termination").map(|e| (e.2.as_str(), e.3.as_str())).collect::<Vec<_>>(),
        vec![("superseded", "2026-06-20T15:00:00Z"), ("pending", "2026-06-25T15:00:00Z")]
    );

    // Day 4, full again, Hal still absent: reported once, not again. Cat's termination is
    // rescinded (the date cleared): nothing of it is left pending.
    let day4 = write(&files, "day4.csv", &[&ann2, &bob2, CAT, &dan2, &eve2, &fay2, GUS]);
    let (code, out) = t.load(&day4, "2026-06-04T12:00:00Z", &[]);
    assert_eq!(code, 0, "{out}");
    let ev = t.events(&[]);
    assert_eq!(kinds(&ev, "8"), vec![pair("hire", "pending"), pair("missing_from_full_load", "reported")]);
    assert!(kinds(&ev, "3").iter().all(|(k, s)| k != "termination" || s == "superseded"), "{ev:?}");

    // Hal comes back unchanged: no event, and a later absence is news again.
    let day5 = write(&files, "day5.csv", &[&ann2, &bob2, CAT, &dan2, &eve2, &fay2, GUS, HAL]);
    let (code, out) = t.load(&day5, "2026-06-05T12:00:00Z", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with("events: 0, waiting: 0\n"), "{out}");
    let (code, _) = t.load(&day4, "2026-06-06T12:00:00Z", &[]);
    assert_eq!(code, 0);
    assert_eq!(kinds(&t.events(&["--worker", "8"]), "8").len(), 3);
    assert_eq!(t.loads().len(), 6);
}

#[test]
fn lifecycle_story_on_sqlite() {
    let t = Tenure { dir: common::store_dir("hr-load"), database_url: None };
    lifecycle_story(&t);
}

#[test]
fn lifecycle_story_on_postgres() {
    let Ok(url) = std::env::var("TENURE_TEST_DATABASE_URL") else {
        eprintln!("SKIPPED: lifecycle_story_on_postgres: TENURE_TEST_DATABASE_URL is not set (.ci/run sets it)");
        return;
    };
    let schema = format!("tenure_hr_test_{}", std::process::id());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        sqlx::any::install_default_drivers();
        let admin = sqlx::AnyPool::connect(&url).await.unwrap();
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&admin).await.unwrap();
        sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&admin).await.unwrap();
    });
    let sep = if url.contains('?') { '&' } else { '?' };
    let t = Tenure {
        dir: common::tempdir("hr-load-pg"),
        database_url: Some(format!("{url}{sep}options=-c%20search_path%3D{schema}")),
    };
    common::init_store(&t.dir, t.database_url.as_deref());
    lifecycle_story(&t);
    assert!(!t.dir.join("tenure.db").exists(), "PostgreSQL was used, not a SQLite file");
    rt.block_on(async {
        let admin = sqlx::AnyPool::connect(&url).await.unwrap();
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(&admin).await.unwrap();
    });
}

#[test]
fn missing_workers_can_be_terminated_by_policy_and_a_quarantined_row_holds_its_worker() {
    let t = Tenure { dir: common::store_dir("hr-missing"), database_url: None };
    let files = common::tempdir("hr-missing-files");
    let day1 = write(&files, "day1.csv", &[ANN, BOB, HAL]);
    assert_eq!(t.load(&day1, "2026-06-01T12:00:00Z", &[]).0, 0);

    // Bob's row is broken and Hal is absent: Bob is held (not missing), Hal is terminated.
    let bob_bad = BOB.replace("2020-01-01", "2020-13-45");
    let day2 = write(&files, "day2.csv", &[ANN, &bob_bad]);
    let (code, out) = t.load(&day2, "2026-06-02T12:00:00Z", &["--missing", "terminate"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("held: worker 2 is absent from the accepted rows because its row was quarantined"), "{out}");
    let ev = t.events(&[]);
    assert_eq!(kinds(&ev, "2"), vec![pair("hire", "pending")], "{ev:?}");
    assert!(ev.contains(&("8".into(), "termination".into(), "pending".into(), "2026-06-02T12:00:00Z".into())));

    // Hal back, active: a rehire, since the policy recorded the termination; the termination
    // not yet acted on is superseded by it.
    let (code, out) = t.load(&day1, "2026-06-03T12:00:00Z", &["--missing", "terminate"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        kinds(&t.events(&[]), "8"),
        vec![pair("hire", "superseded"), pair("termination", "superseded"), pair("rehire", "pending")]
    );

    // --missing ignore: an absence is not even reported.
    let t2 = Tenure { dir: common::store_dir("hr-missing-ignore"), database_url: None };
    assert_eq!(t2.load(&day1, "2026-06-01T12:00:00Z", &[]).0, 0);
    let only_ann = write(&files, "ann.csv", &[ANN]);
    let (code, out) = t2.load(&only_ann, "2026-06-02T12:00:00Z", &["--missing", "ignore"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with("events: 0, waiting: 0\n"), "{out}");
}

#[test]
fn a_rejected_file_changes_nothing_and_is_not_archived() {
    let t = Tenure { dir: common::store_dir("hr-reject"), database_url: None };
    let files = common::tempdir("hr-reject-files");
    let day1 = write(&files, "day1.csv", &[ANN, BOB]);
    assert_eq!(t.load(&day1, "2026-06-01T12:00:00Z", &[]).0, 0);
    let bad = files.join("bad.csv");
    std::fs::write(&bad, "code,given,family\n1,Ann,Lee\n").unwrap();
    let (code, out) = t.load(&bad, "2026-06-02T12:00:00Z", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("missing columns: employee_id"), "{out}");
    assert!(out.contains("columns the definition does not name: code, given, family"), "{out}");
    // The refusal is in the history, with its reason; nothing else of it was written.
    let loads = t.loads();
    assert_eq!(loads.len(), 2);
    assert_eq!((loads[1]["outcome"].as_str(), loads[1]["archived"].is_null()), (Some("rejected"), true));
    assert!(loads[1]["reason"].as_str().unwrap().contains("missing columns: employee_id"), "{}", loads[1]);
    assert_eq!(std::fs::read_dir(t.dir.join("hr-archive")).unwrap().count(), 1);
    assert_eq!(t.events(&[]).len(), 2);
    // The same file again is noted, and yields nothing new.
    let (code, out) = t.load(&day1, "2026-06-03T12:00:00Z", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("this exact file (sha256 "), "{out}");
    assert!(out.ends_with("events: 0, waiting: 0\n"), "{out}");
}

#[test]
fn an_archived_json_load_replays_from_its_checksum() {
    let t = Tenure { dir: common::store_dir("hr-replay"), database_url: None };
    let files = common::tempdir("hr-replay-files");
    let f = files.join("feed.jsonl");
    std::fs::write(
        &f,
        "{\"employee_id\": \"J1\", \"first_name\": \"Åsa\", \"last_name\": \"Lind\", \"employment_type\": \"employee\", \
         \"status\": \"active\", \"hire_date\": \"2022-03-01\"}\n",
    )
    .unwrap();
    let (code, out) = t.load(&f, "2026-06-01T12:00:00Z", &[]);
    assert_eq!(code, 0, "{out}");
    let archived = t.loads()[0]["archived"].as_str().unwrap().to_string();
    // Without an extension the archive reads as CSV and its header does not match; said so.
    let (code, out) = t.load(Path::new(&archived), "2026-06-01T12:00:00Z", &[]);
    assert_eq!(code, 1, "{out}");
    let (code, out) = t.load(Path::new(&archived), "2026-06-01T12:00:00Z", &["--format", "json"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("was loaded before"), "{out}");
    assert!(out.ends_with("rows: 1, accepted: 1, quarantined: 0, events: 0, waiting: 0\n"), "{out}");
}
