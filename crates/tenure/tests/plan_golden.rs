//! The plan, pinned byte for byte (issue 25, point 3): `tenure plan --json --as-of <fixed
//! moment>` on the quickstart's data and on a generated 3,000-worker population, before and
//! after a first apply, compared with files kept in `tests/golden/`. The planner may be
//! reshaped freely; what it decides may not change unnoticed.
//!
//! The target's account ids are random (the sandbox makes them), so each is replaced by its
//! order of first appearance; everything else is compared as `tenure plan` prints it.
//! `TENURE_GOLDEN_WRITE=1 cargo test --test plan_golden` writes the files again, for a change
//! of plan that is meant: read the diff before committing it (the generated population's plans,
//! megabytes, are pinned by digest; this test leaves them in the temporary folder).

mod common;

use common::env::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const FIRST: &str = "2026-03-02T09:00:00Z";
const LATER: &str = "2026-03-03T09:00:00Z";

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name)
}

/// The plan's JSON as printed, with the target's random ids numbered in order of appearance.
fn plan_text(env: &Env, as_of: &str) -> String {
    let o = env.command().args(["plan", "--json", "--as-of", as_of]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut out = String::with_capacity(text.len());
    let key = "\"target_id\":";
    let mut rest = text.as_str();
    while let Some(i) = rest.find(key) {
        let open = i + key.len() + rest[i + key.len()..].find('"').unwrap() + 1;
        let (head, tail) = rest.split_at(open);
        out.push_str(head);
        let end = tail.find('"').unwrap();
        let n = ids.len();
        out.push_str(ids.entry(tail[..end].to_string()).or_insert_with(|| format!("account-{n}")));
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

fn check(name: &str, actual: &str) {
    let path = golden(name);
    if std::env::var_os("TENURE_GOLDEN_WRITE").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        eprintln!("wrote {}", path.display());
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (TENURE_GOLDEN_WRITE=1 writes it)", path.display()));
    if expected != actual {
        let seen = std::env::temp_dir().join(format!("tenure-golden-{name}"));
        std::fs::write(&seen, actual).unwrap();
        let at =
            expected.bytes().zip(actual.bytes()).position(|(a, b)| a != b).unwrap_or(expected.len().min(actual.len()));
        let from = at.saturating_sub(200);
        panic!(
            "the plan differs from {} at byte {at} (this plan is in {}):\nexpected …{}…\nactual   …{}…",
            path.display(),
            seen.display(),
            &expected[from..(at + 200).min(expected.len())],
            &actual[from..(at + 200).min(actual.len())],
        );
    }
}

/// A plan of thousands of workers, pinned by its SHA-256 and its length (the file would be
/// megabytes); a line per kind says what changed when it differs. The plan itself is left
/// in the temporary folder to compare with one from the commit before.
fn check_digest(name: &str, actual: &str) {
    use sha2::Digest;
    let plan: serde_json::Value = serde_json::from_str(actual).unwrap();
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for a in plan["actions"].as_array().unwrap() {
        *kinds.entry(a["kind"].as_str().unwrap().to_string()).or_default() += 1;
    }
    let digest: String = sha2::Sha256::digest(actual.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let summary = format!("sha256 {digest}\nbytes {}\nkinds {kinds:?}\n", actual.len());
    let seen = std::env::temp_dir().join(format!("tenure-golden-{name}.json"));
    std::fs::write(&seen, actual).unwrap();
    check(&format!("{name}.sha256"), &summary);
}

/// Loads a whole HR file as it is (its own header).
fn load(env: &Env, file: &Path, as_of: &str) {
    let (code, out) = env.tenure(&["hr", "load", file.to_str().unwrap(), "--as-of", as_of]);
    assert!(code == 0 || code == 2, "{out}");
}

#[test]
fn the_quickstart_plan_is_unchanged() {
    let sb = common::spawn(&[]);
    let env = Env::connect_to(&sb, "golden-quickstart", "", "", None);
    load(&env, Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/hr/workers.csv")), FIRST);
    check("quickstart-first.json", &plan_text(&env, FIRST));
    env.ok(&["apply", "--yes", "--as-of", FIRST]);
    // A month on: hires started, leavers gone, the accounts now there.
    check("quickstart-month-later.json", &plan_text(&env, "2026-04-02T09:00:00Z"));
}

#[test]
fn a_generated_population_plans_the_same() {
    let sb = common::spawn(&[]);
    let env = Env::connect_to(&sb, "golden-generated", "", "", None);
    let (day1, day2) = (env.dir.join("day1.csv"), env.dir.join("day2.csv"));
    env.ok(&[
        "hr",
        "generate",
        "--count",
        "3000",
        "--seed",
        "25",
        "--out",
        day1.to_str().unwrap(),
        "--next-day",
        day2.to_str().unwrap(),
    ]);
    load(&env, &day1, FIRST);
    check_digest("generated-3000-first", &plan_text(&env, FIRST));
    env.ok(&["apply", "--yes", "--as-of", FIRST]);
    // The next day's file: movers, leavers, rehires and hires against the accounts made.
    load(&env, &day2, LATER);
    check_digest("generated-3000-next-day", &plan_text(&env, LATER));
    // Months on, without an apply: leaves begun, leavers gone, future hires started.
    check_digest("generated-3000-months-later", &plan_text(&env, "2026-09-01T09:00:00Z"));
}
