//! The README's first command: `tenure quickstart` runs the whole loop, a second run changes
//! nothing, and an edited HR file does exactly the edits (a leaver, a mover, then a rehire).

mod common;

use std::process::Command;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn quickstart(dir: &std::path::Path, extra: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .current_dir(ROOT)
        .arg("--data-dir")
        .arg(dir)
        .args(["quickstart", "--listen", "127.0.0.1:0"])
        .args(extra)
        .env("TENURE_LOG", "warn")
        .output()
        .unwrap();
    let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{out}");
    out
}

fn plan_line(out: &str) -> &str {
    out.lines().find(|l| l.starts_with("plan: ")).unwrap_or_else(|| panic!("{out}"))
}

#[test]
fn the_quickstart_runs_the_loop_and_then_does_only_what_changed() {
    let dir = common::tempdir("quickstart");
    let first = quickstart(&dir, &[]);
    assert!(first.contains("connection \"Connection-Bearer Token-1\" added"), "{first}");
    assert!(first.contains("HR file examples/hr/workers.csv: rows 10, accepted 10, quarantined 0"), "{first}");
    assert_eq!(
        plan_line(&first),
        "plan: create 7, adopt 0, reactivate 0, update 0, team_add 7, team_remove 0, deactivate 0, delete 0, skip 2, no_change 1"
    );
    assert!(first.contains("processed 14, failed 0 (create 7, team_add 7)"), "{first}");
    assert!(first.contains("== accounts in the sandbox (7)"), "{first}");
    assert!(first.contains("amelie.durand@acme.example           active   member  teams [Engineering]"), "{first}");
    assert!(first.contains("wei.li@acme.example                  active   guest   teams [Everyone]"), "{first}");

    let again = quickstart(&dir, &[]);
    assert!(
        plan_line(&again)
            .starts_with("plan: create 0, adopt 0, reactivate 0, update 0, team_add 0, team_remove 0, deactivate 0"),
        "{again}"
    );
    assert!(again.contains("processed 0, failed 0"), "{again}");

    // A leaver and a mover.
    let csv = std::fs::read_to_string(format!("{ROOT}/examples/hr/workers.csv")).unwrap();
    let edited: String = csv
        .lines()
        .map(|l| {
            if l.starts_with("1008,") {
                l.replacen(",active,", ",terminated,", 1)
            } else if l.starts_with("1002,") {
                l.replacen(",Senior Engineer,Engineering,", ",Account Executive,Sales,", 1)
            } else {
                l.to_string()
            }
        })
        .map(|l| l + "\n")
        .collect();
    let day2 = dir.join("day2.csv");
    std::fs::write(&day2, &edited).unwrap();
    let out = quickstart(&dir, &["--hr-file", day2.to_str().unwrap()]);
    assert_eq!(
        plan_line(&out),
        "plan: create 0, adopt 0, reactivate 0, update 1, team_add 1, team_remove 1, deactivate 1, delete 0, skip 2, no_change 6"
    );
    assert!(out.contains("title: \"Senior Engineer\" -> \"Account Executive\""), "{out}");
    // The leaver is the second Jean Martin, whose address HR gives as jean.martin2@: from the
    // names alone, the first (who left before) would have lent him jean.martin@.
    assert!(out.contains("jean.martin2@acme.example            inactive member"), "{out}");
    assert!(!out.contains("jean.martin@acme.example"), "{out}");
    assert!(out.contains("jose.garcia@acme.example             active   member  teams [Everyone]"), "{out}");

    // The leaver comes back: a rehire reactivates the same account.
    let original = csv.lines().find(|l| l.starts_with("1008,")).unwrap();
    let back: String =
        edited.lines().map(|l| if l.starts_with("1008,") { original } else { l }).map(|l| format!("{l}\n")).collect();
    let day3 = dir.join("day3.csv");
    std::fs::write(&day3, back).unwrap();
    let out = quickstart(&dir, &["--hr-file", day3.to_str().unwrap()]);
    assert_eq!(
        plan_line(&out),
        "plan: create 0, adopt 0, reactivate 1, update 0, team_add 0, team_remove 0, deactivate 0, delete 0, skip 2, no_change 7"
    );
    assert!(out.contains("jean.martin2@acme.example            active   member"), "{out}");
    assert!(out.contains("== accounts in the sandbox (7)"), "{out}");
}
