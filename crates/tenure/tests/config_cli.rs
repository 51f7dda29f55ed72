//! `tenure config check | import | export` and `tenure preview` with the real binary.

mod common;

use std::path::Path;
use std::process::Command;

const EXAMPLE_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/tenure.toml");
const EXAMPLE_HR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/hr/workers.csv");

fn tenure(dir: &Path, args: &[&str]) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("TENURE_DATABASE_URL")
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
    )
}

#[test]
fn check_import_export_and_a_broken_file_changes_nothing() {
    let dir = common::store_dir("config");
    let (code, out) = tenure(&dir, &["config", "check", EXAMPLE_CONFIG]);
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with("ok: 1 connection(s), 4 role(s), 7 mapping(s)\n"), "{out}");
    let (code, out) = tenure(&dir, &["config", "export"]);
    assert_eq!(code, 1);
    assert!(out.contains("no configuration yet"), "{out}");

    let (code, out) = tenure(&dir, &["config", "import", EXAMPLE_CONFIG]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("has no token yet"), "{out}");
    let (code, first) = tenure(&dir, &["config", "export"]);
    assert_eq!(code, 0, "{first}");

    // The export is itself a valid configuration, and importing it changes nothing.
    let exported = dir.join("exported.toml");
    std::fs::write(&exported, &first).unwrap();
    assert_eq!(tenure(&dir, &["config", "import", exported.to_str().unwrap()]).0, 0);
    assert_eq!(tenure(&dir, &["config", "export"]).1, first);

    // A file with three mistakes: all three listed with where they are; nothing saved.
    let broken = std::fs::read_to_string(EXAMPLE_CONFIG)
        .unwrap()
        .replace("LOWER(NORMALIZE(first_name)", "LOWER(NORMALIZE(frist_name)")
        .replace(r#"user_type = "guest""#, r#"user_type = "visitor""#)
        .replace(
            r#"{ field = "employment_type", op = "equals", value = "intern" }"#,
            r#"{ field = "status", op = "equals", value = "gone" }"#,
        );
    let bad = dir.join("broken.toml");
    std::fs::write(&bad, broken).unwrap();
    let (code, out) = tenure(&dir, &["config", "import", bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("mappings.userName: formula") && out.contains("column 39: unknown field \"frist_name\""),
        "{out}"
    );
    assert!(out.contains("not \"visitor\""), "{out}");
    assert!(
        out.contains("role[2] (\"Interns\"): can never match: status is one of active, leave, terminated"),
        "{out}"
    );
    assert!(out.ends_with("3 problems in ") || out.contains("3 problems in"), "{out}");
    assert!(out.contains("nothing was saved"), "{out}");
    assert_eq!(tenure(&dir, &["config", "export"]).1, first, "the broken file was not saved");
    let syntax = dir.join("syntax.toml");
    std::fs::write(&syntax, "[[role]]\nname = \"x\"\nwhen = {\n").unwrap();
    let (code, out) = tenure(&dir, &["config", "check", syntax.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.contains("syntax.toml:3:"), "{out}");
}

#[test]
fn preview_shows_role_reasons_grant_and_every_attribute() {
    let dir = common::store_dir("preview");
    let (code, out) = tenure(&dir, &["preview", "--config", EXAMPLE_CONFIG]);
    assert_eq!(code, 1);
    assert!(out.contains("no workers yet"), "{out}");
    assert_eq!(tenure(&dir, &["hr", "load", EXAMPLE_HR]).0, 0);
    assert_eq!(tenure(&dir, &["config", "import", EXAMPLE_CONFIG]).0, 0);

    let (code, out) = tenure(&dir, &["preview", "--worker", "1002", "--today", "2026-11-29"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("worker 1002 (José García López) on \"Connection-Bearer Token-1\""), "{out}");
    assert!(out.contains("  role: Engineering"), "{out}");
    assert!(out.contains("department equals \"Engineering\" (is \"Engineering\"): yes"), "{out}");
    assert!(out.contains("grant: user type member, teams [Engineering]"), "{out}");
    // The login is the address HR gives, not one made from the name.
    assert!(out.contains("userName") && out.contains("\"jose.garcia@acme.example\""), "{out}");
    assert!(out.contains("=COALESCE(work_email, LOWER(NORMALIZE(first_name)"), "the formula is shown: {out}");

    // A Sales employee falls through to "Employees", with the default team and the reasons
    // the roles above did not match.
    let (code, out) = tenure(&dir, &["preview", "--worker", "1006", "--json"]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let d = &v[0]["decision"];
    assert_eq!(d["role"], "Employees");
    assert_eq!(d["grant"]["teams"], serde_json::json!(["Everyone"]));
    assert!(d["why"][0].as_str().unwrap().starts_with("role \"Engineering\" did not match"), "{d}");

    // An unsaved file previews without being saved; unknown ids are refused.
    let alt = dir.join("alt.toml");
    std::fs::write(&alt, std::fs::read_to_string(EXAMPLE_CONFIG).unwrap().replace("\"Everyone\"", "\"All staff\""))
        .unwrap();
    let (code, out) = tenure(&dir, &["preview", "--worker", "1006", "--config", alt.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("teams [All staff]"), "{out}");
    assert!(tenure(&dir, &["config", "export"]).1.contains("\"Everyone\""));
    let (code, out) = tenure(&dir, &["preview", "--worker", "nobody"]);
    assert_eq!(code, 1);
    assert!(out.contains("no worker \"nobody\" in the last load"), "{out}");
    let (code, out) = tenure(&dir, &["preview", "--sample", "3"]);
    assert_eq!(code, 0);
    assert_eq!(out.matches("\nworker ").count() + usize::from(out.starts_with("worker ")), 3, "{out}");
}

const BADGE: &str = "urn:acme:scim:schemas:extension:badge:1.0:User";

/// A generic app that publishes a custom User extension at /Schemas: mappings to it are
/// accepted once the target has been asked, saved with the configuration, and written to the
/// accounts; mappings to attributes it does not publish are refused, listing those it does.
#[tokio::test]
async fn custom_attributes_the_target_publishes_can_be_mapped() {
    let dir = common::tempdir("config-schemas");
    let ext = dir.join("badge.json");
    let doc = serde_json::json!({
        "id": BADGE, "name": "Badge", "description": "Door badges",
        "attributes": [{"name": "badgeNumber", "type": "string"}, {"name": "floor", "type": "integer"}]
    });
    std::fs::write(&ext, doc.to_string()).unwrap();
    let sb = common::spawn(&["--dialect", "generic", "--user-extension", ext.to_str().unwrap()]);
    let published = sb.get("/Schemas").await.body;
    assert!(published["Resources"].as_array().unwrap().iter().any(|s| s["id"] == BADGE), "{published}");

    let config = format!(
        r#"[[connection]]
name = "Badges"
dialect = "generic"
[connection.mappings]
userName = "=work_email"
displayName = "=first_name & \" \" & last_name"
"{BADGE}:badgeNumber" = "=\"B-\" & employee_id"
[[role]]
name = "everyone"
[role.grants.Badges]
groups = ["Staff"]
"#
    );
    let file = dir.join("badges.toml");
    std::fs::write(&file, &config).unwrap();

    // Before there is a connection to ask, the attribute is unknown: refused, saying why.
    let (code, out) = tenure(&dir, &["config", "check", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("what tenure knows of the generic dialect (no stored connection to ask)"), "{out}");
    assert!(out.contains(&format!("no attribute \"{BADGE}:badgeNumber\"")), "{out}");
    assert!(!dir.join("tenure.db").exists(), "check created a store");

    common::init_store(&dir, None);
    let token = dir.join("token");
    std::fs::write(&token, &sb.token).unwrap();
    let add = ["connection", "add", "--name", "Badges", "--url", &sb.base, "--token-file", token.to_str().unwrap()];
    assert_eq!(tenure(&dir, &add).0, 0);
    let (code, out) = tenure(&dir, &["config", "check", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("checked against the schema it publishes at /Schemas (asked now)"), "{out}");

    // An attribute the target does not publish is refused; the list names what it does publish.
    let wrong = dir.join("wrong.toml");
    std::fs::write(&wrong, config.replace(":badgeNumber\"", ":badgeColour\"")).unwrap();
    let (code, out) = tenure(&dir, &["config", "import", wrong.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("{BADGE}:badgeNumber")) && out.contains(&format!("{BADGE}:floor")), "{out}");
    assert!(tenure(&dir, &["config", "export"]).1.contains("no configuration yet"));

    let (code, out) = tenure(&dir, &["config", "import", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    // The saved schema serves later runs, even with the target unreachable at check time.
    let (code, out) = tenure(&dir, &["hr", "load", EXAMPLE_HR]);
    assert!(code == 0 || code == 2, "{out}");
    let (code, out) = tenure(&dir, &["apply"]);
    assert_eq!(code, 0, "{out}");
    let users = sb.get("/Users?count=1000").await.body;
    let users = users["Resources"].as_array().unwrap();
    assert!(!users.is_empty());
    for u in users {
        let badge = u[BADGE]["badgeNumber"].as_str().unwrap_or_else(|| panic!("no badge: {u}"));
        assert!(badge.starts_with("B-"), "{u}");
        assert!(u["schemas"].as_array().unwrap().iter().any(|s| s == BADGE), "{u}");
    }
    drop(sb);
    let (code, out) = tenure(&dir, &["config", "check", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("(saved ") && out.contains("not asked now: cannot ask it"), "{out}");
}

/// A usage error has its own exit code (64), apart from 2 (rows quarantined); help is no error;
/// durations are written one way everywhere.
#[test]
fn usage_errors_exit_64_and_durations_read_one_way() {
    let dir = common::tempdir("usage");
    let (code, out) = tenure(&dir, &["hr", "lod", "x.csv"]);
    assert_eq!(code, 64, "{out}");
    assert!(out.contains("unrecognized subcommand 'lod'"), "{out}");
    let (code, out) = tenure(&dir, &["plan", "--no-such-flag"]);
    assert_eq!(code, 64, "{out}");
    for bad in ["5x", "5Ñ", "-1m", "0m"] {
        let (code, out) = tenure(&dir, &["serve", &format!("--session-idle={bad}")]);
        assert_eq!(code, 64, "{bad}: {out}");
        assert!(out.contains(&format!("{bad:?}")), "the value is named: {out}");
    }
    let (code, out) = tenure(&dir, &["serve", "--interval", "5 minutes"]);
    assert_eq!(code, 64, "{out}");
    assert!(out.contains("such as 30s, 30m, 12h or 7d"), "{out}");
    let (code, out) = tenure(&dir, &["--help"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("64   a usage error") && out.contains("7    a full HR load refused"), "{out}");
}
