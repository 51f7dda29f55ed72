//! The admin API fuzzed from its own OpenAPI document by schemathesis (PyPI; `scripts/test`
//! installs it and sets TENURE_TEST_SCHEMATHESIS): against the live `tenure serve`, with an
//! Admin token, in every phase (stateful included), no answer may be a 5xx, break the schema
//! the document gives it, or let in a request without the security the document declares.

mod common;

use common::env::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_off_its_schema() {
    let Ok(st) = std::env::var("TENURE_TEST_SCHEMATHESIS") else {
        eprintln!("SKIPPED: schemathesis fuzz: TENURE_TEST_SCHEMATHESIS is not set (scripts/test sets it)");
        return;
    };
    let sb = common::spawn(&[]);
    let env = Env::connect(&sb, "api-fuzz", "");
    env.load("w.csv", &population(20), "2026-06-01T12:00:00Z", &[]);
    let out = env.ok(&["token", "create", "fuzz", "--role", "admin"]);
    let token = out.lines().last().unwrap().trim().to_string();
    let run = env.start(&["serve", "--listen", "127.0.0.1:0", "--interval", "3600"]);
    let base = run.address().await;
    let o = std::process::Command::new(&st)
        .args([
            "run",
            &format!("{base}/api/v1/openapi.json"),
            // Every phase, the stateful one too (it chains operations through the links it
            // infers and the Location headers it meets, such as a run started then read).
            "--phases",
            "examples,coverage,fuzzing,stateful",
            // ignored_auth: each operation the document says needs a token or a session
            // refuses a request without one, or with a wrong one.
            "--checks",
            "not_a_server_error,response_schema_conformance,content_type_conformance,ignored_auth",
            // Revoking tokens is checked by the role matrix: here the stateful phase would find
            // the fuzzer's own token in GET /tokens and revoke it, and test nothing after.
            "--exclude-name",
            "DELETE /api/v1/tokens/{id}",
            "--max-examples",
            "12",
            "--seed",
            "16",
            "--request-timeout",
            "30",
            "-H",
            &format!("Authorization: Bearer {token}"),
        ])
        .env("NO_COLOR", "1")
        // Its cache of findings goes with the test folder, not into the source tree.
        .current_dir(&env.dir)
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "schemathesis found problems:\n{said}");
    assert!(said.contains("passed"), "{said}");
}
