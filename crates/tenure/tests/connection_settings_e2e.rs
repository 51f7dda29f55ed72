//! Connections that say what they are, end to end: a stored dialect the configuration does not
//! give is flagged at `config check`, `config import` and `connection test` with the fix;
//! `connection set` changes a setting in place (a new address only once it works); and a
//! connection with linked accounts is removed only when its name is given again.

mod common;

use common::env::*;
use serde_json::Value;

const NAME: &str = "Connection-Bearer Token-1";
const T0: &str = "2026-06-01T12:00:00Z";

#[test]
fn a_dialect_mismatch_is_flagged_settings_change_in_place_and_removal_is_guarded() {
    let sb = common::spawn(&[]);
    let env = Env::connect(&sb, "conn-settings", "");
    let rules = env.dir.join("rules.toml");
    let rules = rules.to_str().unwrap();

    // Stored as generic while the configuration says monday.
    let out = env.ok(&["connection", "set", NAME, "--dialect", "generic"]);
    assert!(out.contains("dialect monday -> generic"), "{out}");
    let check = env.ok(&["config", "check", rules]);
    assert!(
        check.contains(&format!(
            "warning: connection {NAME:?} is stored with dialect \"generic\", the configuration says \"monday\""
        )),
        "{check}"
    );
    assert!(check.contains(&format!("Fix: `tenure connection set {NAME:?} --dialect monday`")), "{check}");
    let test = env.ok(&["connection", "test", NAME]);
    assert!(test.contains("connection works") && test.contains("is stored with dialect \"generic\""), "{test}");
    let import = env.ok(&["config", "import", rules]);
    assert!(import.contains("was stored with dialect \"generic\""), "{import}");
    let list: Value = serde_json::from_str(&env.ok(&["connection", "list", "--json"])).unwrap();
    assert_eq!(list[0]["dialect"], "monday", "the file's dialect is in force now");
    assert!(!env.ok(&["connection", "test", NAME]).contains("warning"), "in step: nothing to flag");

    // A new address that does not work is refused; the stored one stays.
    let (code, out) = env.tenure(&["connection", "set", NAME, "--url", "http://127.0.0.1:9/scim/v2/"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("did not pass the test, nothing was changed"), "{out}");
    let list: Value = serde_json::from_str(&env.ok(&["connection", "list", "--json"])).unwrap();
    assert_eq!(list[0]["url"].as_str().unwrap().trim_end_matches('/'), sb.base.trim_end_matches('/'), "{list}");
    let out = env.ok(&["connection", "set", NAME, "--rate-limit", "50"]);
    assert!(out.contains("rate limit none -> 50 req/s"), "{out}");
    assert!(env.ok(&["connection", "set", NAME, "--max-rate", "50"]).contains("nothing to change"), "the same setting");

    // With an account linked, removal needs the name again.
    env.load(
        "day0.csv",
        &[row("1", "Ann", "Lee", "Engineer", "Engineering", "employee", "active", ",2020-01-01", ",,,")],
        T0,
        &[],
    );
    env.ok(&["apply", "--as-of", T0]);
    let (code, out) = env.tenure(&["connection", "remove", NAME]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("manages 1 linked account(s); nothing was removed"), "{out}");
    assert!(out.contains(&format!("--confirm {NAME:?}")), "{out}");
    let (code, out) = env.tenure(&["connection", "remove", NAME, "--confirm", "Connection-Bearer Token-2"]);
    assert_ne!(code, 0, "a wrong name does not confirm: {out}");
    let out = env.ok(&["connection", "remove", NAME, "--confirm", NAME]);
    assert!(out.contains(&format!("removed {NAME:?}")) && out.contains("keeps its 1 link(s)"), "{out}");
    let list: Value = serde_json::from_str(&env.ok(&["connection", "list", "--json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 0);
}
