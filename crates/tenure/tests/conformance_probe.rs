//! The independent conformance suite `scim-sanity` (PyPI) probes a real `tenure sandbox` in
//! both dialects. The test script installs it and sets TENURE_TEST_SCIM_SANITY to its path;
//! without it this test says loudly that it was skipped.

mod common;
use common::*;

fn probe(dialect: &str) {
    let Ok(tool) = std::env::var("TENURE_TEST_SCIM_SANITY") else {
        eprintln!("SKIPPED: scim-sanity conformance probe ({dialect}): TENURE_TEST_SCIM_SANITY is not set (scripts/test sets it)");
        return;
    };
    let sb = spawn(&["--dialect", dialect]);
    let out = std::process::Command::new(&tool)
        .args(["probe", &sb.base, "--token", TOKEN, "--i-accept-side-effects", "--json-output"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let results = report["results"].as_array().unwrap_or_else(|| panic!("no results in {report}"));
    let failed: Vec<&serde_json::Value> =
        results.iter().filter(|r| !matches!(r["status"].as_str(), Some("pass" | "skip"))).collect();
    assert!(failed.is_empty(), "scim-sanity failures against the {dialect} sandbox: {failed:#?}");
    let summary = &report["summary"];
    assert_eq!(summary["failed"], 0, "{summary}");
    assert_eq!(summary["errors"], 0, "{summary}");
    // Discovery, user and group lifecycles, search and errors: at least that much must run.
    let passed = summary["passed"].as_u64().unwrap_or(0);
    assert!(passed >= 25, "only {passed} checks passed: {summary}");
    eprintln!("scim-sanity against the {dialect} sandbox: {summary}");
    assert!(out.status.success(), "scim-sanity exited {:?}: {text}", out.status);
}

#[test]
fn scim_sanity_probe_passes_against_the_monday_dialect() {
    probe("monday");
}

#[test]
fn scim_sanity_probe_passes_against_the_generic_dialect() {
    probe("generic");
}
