//! Roles, conditions and the configuration file: every operation, first match wins with its
//! reasons, save-time errors (unknown fields, bad values, roles that can never match, mappings
//! the target lacks), the canonical export, and unique user names.

use jiff::civil::date;
use rules::formula::Value;
use rules::{make_unique, worker_row, Config, Rules};
use std::collections::HashSet;

fn workers() -> Vec<hr::Worker> {
    let csv = "employee_id,first_name,last_name,work_email,title,department,employment_type,status,leave_type,\
hire_date,termination_date,time_zone,level\n\
1,Amélie,Durand,amelie@acme.example,VP Engineering,Engineering,employee,active,,2019-04-01,,Europe/Paris,9\n\
2,José,García López,jose@acme.example,Engineer,engineering,contractor,active,,2026-05-20,,Europe/Madrid,4\n\
3,Zoë,Ñúñez,zoe@acme.example,Intern,Product,intern,leave,fmla,2026-01-10,2026-06-30,Europe/Oslo,\n\
4,Li,Wei,,Analyst,Finance,employee,terminated,,2015-01-01,2025-12-31,,2\n";
    let def = hr::HeaderDefinition::default().with_custom("level", false);
    let r = hr::parse_csv("t.csv", csv.as_bytes(), &def).unwrap();
    assert!(r.quarantined.is_empty(), "{:?}", r.quarantined);
    r.accepted
}

const TODAY: jiff::civil::Date = date(2026, 6, 1);

fn rows(custom: &[String]) -> Vec<Vec<Value>> {
    workers().iter().map(|w| worker_row(w, custom)).collect()
}

/// Which of the four workers a single test matches.
fn matching(test: &str) -> Vec<usize> {
    let text = format!(
        "[hr]\ncustom_fields = [\"level\"]\n[[connection]]\nname = \"m\"\n[connection.mappings]\nuserName = \"=work_email\"\n\
         displayName = \"=first_name\"\n[[role]]\nname = \"r\"\nwhen = {test}\n[role.grants.m]\nuser_type = \"member\"\n"
    );
    let cfg = Config::from_toml("t.toml", &text).unwrap_or_else(|e| panic!("{test}: {e:?}"));
    let rules = Rules::compile(&cfg).unwrap_or_else(|e| panic!("{test}: {e:?}"));
    rows(rules.custom_fields())
        .iter()
        .enumerate()
        .filter(|(_, r)| rules.decide(0, r, TODAY).role.is_some())
        .map(|(i, _)| i + 1)
        .collect()
}

fn refused(text: &str) -> Vec<String> {
    let cfg = Config::from_toml("t.toml", text).unwrap_or_else(|e| panic!("{e:?}"));
    Rules::compile(&cfg).err().unwrap_or_else(|| panic!("accepted: {text}"))
}

#[test]
fn every_operation() {
    let t = |s: &str| matching(s);
    assert_eq!(t(r#"{ field = "department", op = "equals", value = "ENGINEERING" }"#), vec![1, 2], "case-insensitive");
    assert_eq!(t(r#"{ field = "department", op = "equals", value = "engineering", case_sensitive = true }"#), vec![2]);
    assert_eq!(t(r#"{ field = "department", op = "not_equals", value = "Engineering" }"#), vec![3, 4]);
    assert_eq!(t(r#"{ field = "title", op = "contains", value = "ENGINEER" }"#), vec![1, 2]);
    assert_eq!(t(r#"{ field = "last_name", op = "starts_with", value = "ñú" }"#), vec![3], "Unicode case folding");
    assert_eq!(t(r#"{ field = "last_name", op = "ends_with", value = "lópez" }"#), vec![2]);
    assert_eq!(t(r#"{ field = "employment_type", op = "in", values = ["Contractor", "intern"] }"#), vec![2, 3]);
    assert_eq!(t(r#"{ field = "work_email", op = "matches", value = "^[a-z]+@ACME" }"#), vec![1, 2, 3]);
    assert_eq!(t(r#"{ field = "work_email", op = "is_empty" }"#), vec![4]);
    assert_eq!(t(r#"{ field = "custom.level", op = "is_not_empty" }"#), vec![1, 2, 4]);
    assert_eq!(t(r#"{ field = "hire_date", op = "before", value = "2019-04-01" }"#), vec![4]);
    assert_eq!(t(r#"{ field = "hire_date", op = "after", value = "today-30" }"#), vec![2]);
    assert_eq!(t(r#"{ field = "termination_date", op = "within_days", days = 30 }"#), vec![3]);
    assert_eq!(t(r#"{ field = "custom.level", op = "greater_than", value = 4 }"#), vec![1]);
    assert_eq!(t(r#"{ field = "custom.level", op = "greater_or_equal", value = "4" }"#), vec![1, 2]);
    assert_eq!(t(r#"{ field = "custom.level", op = "less_than", value = 4 }"#), vec![4], "blank is no number");
    assert_eq!(t(r#"{ field = "custom.level", op = "less_or_equal", value = 4 }"#), vec![2, 4]);
    assert_eq!(t(r#"{ field = "hire_date", op = "greater_or_equal", value = "2026-01-10" }"#), vec![2, 3]);
    assert_eq!(t(r#"{ field = "status", op = "equals", value = "leave" }"#), vec![3]);
    assert_eq!(t(r#"{ field = "leave_type", op = "equals", value = "fmla" }"#), vec![3]);
    assert_eq!(
        t(
            r#"{ all = [ { field = "status", op = "not_equals", value = "terminated" }, { any = [ { field = "department", op = "equals", value = "Product" }, { field = "custom.level", op = "greater_than", value = 8 } ] } ] }"#
        ),
        vec![1, 3]
    );
    assert_eq!(t(r#"{ not = { field = "status", op = "equals", value = "active" } }"#), vec![3, 4]);
    assert_eq!(t(r#"{ formula = "=AND(LEN(first_name) <= 4, YEAR(hire_date) > 2020)" }"#), vec![2, 3]);
}

const BASE: &str = r#"
[[connection]]
name = "Connection-Bearer Token-1"
url = "https://acme.monday.com/scim/v2/"
dialect = "monday"
default_teams = ["Everyone"]

[connection.mappings]
userName = { formula = '=LOWER(NORMALIZE(first_name) & "." & NORMALIZE(SUBSTITUTE(last_name, " ", "-"))) & "@acme.com"', unique = true }
displayName = '=COALESCE(preferred_name, first_name) & " " & last_name'
title = { formula = "=title", apply = "on_create" }

[[role]]
name = "Engineering"
when = { all = [ { field = "department", op = "equals", value = "Engineering" }, { field = "employment_type", op = "equals", value = "employee" } ] }
[role.grants."Connection-Bearer Token-1"]
user_type = "member"
teams = ["Engineering"]

[[role]]
name = "Contractors"
when = { field = "employment_type", op = "equals", value = "contractor" }
[role.grants."Connection-Bearer Token-1"]
user_type = "guest"
attributes = { title = '="Contractor: " & title' }

[[role]]
name = "Interns"
when = { field = "employment_type", op = "equals", value = "intern" }
[role.grants."Connection-Bearer Token-1"]
user_type = "viewer"
"#;

#[test]
fn first_match_wins_and_says_why() {
    let cfg = Config::from_toml("roles.toml", BASE).unwrap();
    let rules = Rules::compile(&cfg).unwrap();
    let rows = rows(&[]);
    let d = rules.decide(0, &rows[0], TODAY);
    assert_eq!(d.role.as_deref(), Some("Engineering"));
    assert_eq!(
        d.why,
        vec![
            "department equals \"Engineering\" (is \"Engineering\"): yes",
            "employment_type equals \"employee\" (is \"employee\"): yes"
        ]
    );
    let g = d.grant.clone().unwrap();
    assert_eq!((g.user_type.as_deref(), g.teams.clone()), (Some("member"), vec!["Engineering".to_string()]));
    let attr = |d: &rules::Decision, t: &str| {
        d.attributes.iter().find(|a| a.target == t).unwrap().value.clone().unwrap().to_text()
    };
    assert_eq!(attr(&d, "userName"), "amelie.durand@acme.com");
    assert_eq!(attr(&d, "displayName"), "Amélie Durand");

    // A contractor: guest, the role's title override, default teams.
    let d = rules.decide(0, &rows[1], TODAY);
    assert_eq!(d.role.as_deref(), Some("Contractors"));
    assert_eq!(d.why.last().unwrap(), "employment_type equals \"contractor\" (is \"contractor\"): yes");
    assert_eq!(attr(&d, "userName"), "jose.garcia-lopez@acme.com");
    assert_eq!(attr(&d, "title"), "Contractor: Engineer");
    assert_eq!(d.grant.as_ref().unwrap().teams, vec!["Everyone".to_string()]);
    assert_eq!(d.grant.as_ref().unwrap().user_type.as_deref(), Some("guest"));

    // No role for an employee in Finance: no account in role mode...
    let d = rules.decide(0, &rows[3], TODAY);
    assert_eq!(d.why[0], "role \"Engineering\" did not match: department equals \"Engineering\" (is \"Finance\"): no");
    assert_eq!(d.why.len(), 3);
    assert_eq!((d.role, d.grant), (None, None));

    // ... and the default grant under "process all employees".
    let all = BASE.replace(
        "default_teams = [\"Everyone\"]",
        "default_teams = [\"Everyone\"]\nmode = \"all_employees\"\ndefault_grant = { user_type = \"member\" }",
    );
    let rules = Rules::compile(&Config::from_toml("t", &all).unwrap()).unwrap();
    let d = rules.decide(0, &rows[3], TODAY);
    assert!(d.by_default);
    assert_eq!(d.grant.unwrap().teams, vec!["Everyone".to_string()]);
}

#[test]
fn broken_configurations_are_refused_whole_with_every_problem() {
    let e =
        Config::from_toml("roles.toml", &BASE.replace(r#"value = "contractor""#, r#"value = "contractor", extra = 1"#))
            .unwrap_err();
    assert!(e[0].starts_with("roles.toml:22:8: unknown field `extra`, expected one of `field`, `op`"), "{e:?}");
    let e = Config::from_toml(
        "roles.toml",
        &BASE.replace(r#"op = "equals", value = "contractor""#, r#"op = "resembles", value = "contractor""#),
    )
    .unwrap_err();
    assert!(e[0].contains("unknown variant `resembles`, expected one of `equals`"), "{e:?}");
    let e = Config::from_toml("roles.toml", "[[role]]\nname = \"x\"\nwhen = { field = \n").unwrap_err();
    assert!(e[0].starts_with("roles.toml:3:"), "{e:?}");

    let bad = BASE
        .replace(r#"field = "department""#, r#"field = "departmnet""#)
        .replace(r#"user_type = "viewer""#, r#"user_type = "owner""#)
        .replace("title = { formula = \"=title\"", "nickName = { formula = \"=LEFT(title, \"")
        .replace(
            r#"teams = ["Engineering"]"#,
            "teams = [\"Engineering\"]\n[role.grants.\"Slack\"]\nuser_type = \"member\"",
        );
    let e = refused(&bad);
    let all = e.join("\n");
    assert!(all.contains("role[0] (\"Engineering\").when.all[0] (departmnet equals): unknown field \"departmnet\"; the fields are: employee_id"), "{all}");
    assert!(all.contains("user_type: monday.com user types are admin, member, viewer, guest, not \"owner\""), "{all}");
    assert!(all.contains("mappings.nickName: the monday target has no attribute \"nickName\""), "{all}");
    assert!(all.contains("grants: no connection named \"Slack\""), "{all}");

    // Formula errors carry the position inside the formula.
    let e = refused(&BASE.replace("=COALESCE(preferred_name, first_name)", "=COALESCE(preferred_name, frist_name)"));
    assert!(
        e[0].contains("mappings.displayName: formula")
            && e[0].contains("line 1, column 27: unknown field \"frist_name\""),
        "{e:?}"
    );

    // Roles that can never match.
    let never = |when: &str| {
        let text = BASE.replace(
            r#"when = { field = "employment_type", op = "equals", value = "intern" }"#,
            &format!("when = {when}"),
        );
        refused(&text).join("\n")
    };
    for (when, why) in [
        (
            r#"{ all = [ { field = "department", op = "equals", value = "A" }, { field = "department", op = "equals", value = "B" } ] }"#,
            "cannot equal both",
        ),
        (
            r#"{ all = [ { field = "title", op = "equals", value = "A" }, { field = "title", op = "not_equals", value = "a" } ] }"#,
            "cannot both equal and not equal",
        ),
        (r#"{ field = "status", op = "equals", value = "retired" }"#, "status is one of active, leave, terminated"),
        (r#"{ field = "first_name", op = "is_empty" }"#, "first_name is never empty"),
        (r#"{ field = "title", op = "in", values = [] }"#, "in an empty list"),
        (r#"{ any = [] }"#, "empty \"any\""),
        (
            r#"{ all = [ { field = "hire_date", op = "after", value = "2026-01-01" }, { field = "hire_date", op = "before", value = "2025-01-01" } ] }"#,
            "cannot be after",
        ),
        (
            r#"{ all = [ { field = "custom.level", op = "greater_than", value = 5 }, { field = "custom.level", op = "less_than", value = 5 } ] }"#,
            "cannot be both above",
        ),
        (r#"{ formula = "=1 > 2" }"#, "always FALSE"),
        (r#"{ not = { field = "hire_date", op = "is_not_empty" } }"#, "every worker passes"),
    ] {
        let text =
            if when.contains("custom.") { format!("[hr]\ncustom_fields = [\"level\"]\n{}", "") } else { String::new() };
        let all = if text.is_empty() {
            never(when)
        } else {
            let t = format!(
                "{text}{}",
                BASE.replace(
                    r#"when = { field = "employment_type", op = "equals", value = "intern" }"#,
                    &format!("when = {when}")
                )
            );
            refused(&t).join("\n")
        };
        assert!(all.contains("role[2] (\"Interns\"): can never match") && all.contains(why), "{when}: {all}");
    }
    // A catch-all above other roles shadows them.
    let text = BASE.replacen(
        "[[role]]\nname = \"Engineering\"\nwhen = { all = [ { field = \"department\", op = \"equals\", value = \"Engineering\" }, { field = \"employment_type\", op = \"equals\", value = \"employee\" } ] }",
        "[[role]]\nname = \"Engineering\"",
        1,
    );
    let e = refused(&text).join("\n");
    assert!(
        e.contains("role[1] (\"Contractors\"): can never match: role \"Engineering\" above it matches every worker"),
        "{e}"
    );

    // Things every connection needs, and things no mapping may touch.
    let e = refused(
        "[[connection]]\nname = \"g\"\ndialect = \"generic\"\n[connection.mappings]\npassword = \"=first_name\"\n",
    )
    .join("\n");
    assert!(e.contains("userName must be mapped"), "{e}");
    assert!(e.contains("password cannot be mapped: tenure never sets passwords"), "{e}");
    let e = refused("[[connection]]\nname = \"g\"\ndialect = \"generic\"\n[connection.mappings]\nuserName = \"=work_email\"\nactive = \"=first_name\"\n").join("\n");
    assert!(e.contains("active takes TRUE or FALSE"), "{e}");
    let e = refused("[[connection]]\nname = \"g\"\nmode = \"all_employees\"\n[connection.mappings]\nuserName = \"=work_email\"\ndisplayName = \"=first_name\"\n").join("\n");
    assert!(e.contains("mode all_employees needs a default_grant"), "{e}");
}

#[test]
fn generic_targets_accept_enterprise_and_filtered_paths() {
    let text = r#"
[[connection]]
name = "app"
dialect = "generic"
[connection.mappings]
userName = "=work_email"
'emails[type eq "work"].value' = "=work_email"
'addresses[type eq "work"].locality' = "=location"
"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department" = "=department"
"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value" = "=manager_id"
"name.givenName" = "=first_name"
active = "=status <> \"leave\""
[[role]]
name = "all"
[role.grants.app]
groups = ["staff"]
"#;
    let rules = Rules::compile(&Config::from_toml("g.toml", text).unwrap()).unwrap();
    let d = rules.decide(0, &rows(&[])[2], TODAY);
    assert_eq!(d.grant.unwrap().groups, vec!["staff".to_string()]);
    let active = d.attributes.iter().find(|a| a.target == "active").unwrap();
    assert_eq!(active.value, Ok(Value::Bool(false)));
    let e =
        refused(&text.replace("addresses[type eq \"work\"].locality", "addresses[type eq \"work\"].planet")).join("\n");
    assert!(e.contains("has no sub-attribute \"planet\""), "{e}");
}

#[test]
fn the_export_is_canonical_and_reads_back_the_same() {
    let cfg = Config::from_toml("roles.toml", BASE).unwrap();
    let out = cfg.to_toml();
    let back = Config::from_toml("export.toml", &out).unwrap();
    assert_eq!(back, cfg.canonical());
    assert_eq!(back.to_toml(), out, "exporting twice gives the same text");
    assert!(out.contains("apply = \"always\""), "{out}");
    assert!(!out.contains("token ="), "tokens never live in the file: {out}");
}

#[test]
fn colliding_user_names_get_numbers_deterministically() {
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let taken: HashSet<String> = ["ana.lopez@acme.com".to_string()].into();
    assert_eq!(
        make_unique(&v(&["ana.lopez@acme.com", "Ana.Lopez@acme.com", "bo@acme.com", "jdoe"]), &taken),
        v(&["ana.lopez2@acme.com", "Ana.Lopez3@acme.com", "bo@acme.com", "jdoe"])
    );
    assert_eq!(make_unique(&v(&["jdoe", "jdoe", "jdoe2"]), &HashSet::new()), v(&["jdoe", "jdoe2", "jdoe22"]));
}

/// A custom extension a target publishes at /Schemas, as `Discovery` hands it over.
fn published_with_badge() -> scim::ResourceSchema {
    let ext = serde_json::json!({
        "id": "urn:acme:scim:schemas:extension:badge:1.0:User",
        "name": "Badge",
        "attributes": [
            {"name": "badgeNumber", "type": "string", "mutability": "readWrite"},
            {"name": "issued", "type": "dateTime", "mutability": "readOnly"},
            {"name": "site", "type": "complex", "subAttributes": [{"name": "building"}]}
        ]
    });
    let core = scim::schema::core_user().to_json("/Schemas/core");
    let user_type = serde_json::json!({"name": "User", "schema": scim::schema::USER,
        "schemaExtensions": [{"schema": "urn:acme:scim:schemas:extension:badge:1.0:User", "required": false}]});
    scim::ResourceSchema::user_from_discovery(Some(&user_type), &[core, ext]).unwrap()
}

#[test]
fn mappings_follow_the_schema_the_target_published() {
    let text = r#"
[hr]
custom_fields = ["level"]
[[connection]]
name = "app"
dialect = "generic"
[connection.mappings]
userName = "=work_email"
"urn:acme:scim:schemas:extension:badge:1.0:User:badgeNumber" = "=\"B-\" & employee_id"
"urn:acme:scim:schemas:extension:badge:1.0:User:site.building" = "=location"
[[role]]
name = "all"
[role.grants.app]
groups = ["staff"]
"#;
    let cfg = Config::from_toml("g.toml", text).unwrap();
    // Without the target's word, the custom attribute is unknown and the error lists what is.
    let e = Rules::compile(&cfg).err().unwrap().join("\n");
    assert!(e.contains("no attribute \"urn:acme:scim:schemas:extension:badge:1.0:User:badgeNumber\""), "{e}");
    assert!(
        e.contains("known for the dialect")
            && e.contains("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"),
        "{e}"
    );

    let published = std::collections::HashMap::from([("app".to_string(), published_with_badge())]);
    let rules = Rules::compile_with(&cfg, &published).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(rules.connections[0].published);
    let d = rules.decide(0, &rows(&["level".to_string()])[0], TODAY);
    let badge = d.attributes.iter().find(|a| a.target.ends_with(":badgeNumber")).unwrap();
    assert_eq!(badge.value, Ok(Value::Text("B-1".into())));

    // What the published schema lacks, or marks read-only, is refused against it.
    let refused_with = |from: &str, to: &str| {
        let cfg = Config::from_toml("g.toml", &text.replace(from, to)).unwrap();
        Rules::compile_with(&cfg, &published).err().unwrap_or_else(|| panic!("accepted {to}")).join("\n")
    };
    let e = refused_with("User:badgeNumber\"", "User:badgeColour\"");
    assert!(e.contains("published by the target at /Schemas") && e.contains("badge:1.0:User:badgeNumber"), "{e}");
    let e = refused_with("User:badgeNumber\"", "User:issued\"");
    assert!(e.contains("read-only"), "{e}");
    let e = refused_with("site.building", "site.floor");
    assert!(e.contains("no attribute"), "{e}");
    // The enterprise extension is not published by this target, so it is refused too.
    let e = refused_with(
        "\"urn:acme:scim:schemas:extension:badge:1.0:User:badgeNumber\"",
        "\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department\"",
    );
    assert!(e.contains("no attribute"), "{e}");
    // An extension attribute needs its URN: the engine writes where the path says.
    let e = refused_with("\"urn:acme:scim:schemas:extension:badge:1.0:User:badgeNumber\"", "badgeNumber");
    assert!(e.contains("write it as \"urn:acme:scim:schemas:extension:badge:1.0:User:badgeNumber\""), "{e}");
}

#[test]
fn the_explanation_shows_every_test_of_each_role_tried_up_to_the_one_that_took_the_worker() {
    let cfg = Config::from_toml("roles.toml", BASE).unwrap();
    let rules = Rules::compile(&cfg).unwrap();
    let rows = rows(&[]);
    // José: Engineering is tried (department holds in any case, the employment type does not),
    // then Contractors takes him; Interns is never tried.
    let roles = rules.explain(&rows[1], TODAY);
    let names: Vec<(&str, bool)> = roles.iter().map(|r| (r.role.as_str(), r.matched)).collect();
    assert_eq!(names, [("Engineering", false), ("Contractors", true)]);
    let eng: Vec<(usize, &str, Option<&str>, bool)> =
        roles[0].checks.iter().map(|c| (c.level, c.text.as_str(), c.seen.as_deref(), c.holds)).collect();
    assert_eq!(
        eng,
        [
            (0, "all of these", None, false),
            (1, "department equals \"Engineering\"", Some("engineering"), true),
            (1, "employment_type equals \"employee\"", Some("contractor"), false),
        ]
    );
    // Li, in Finance: every role tried, none takes him, and the first test that failed does not
    // hide the one after it.
    let roles = rules.explain(&rows[3], TODAY);
    assert_eq!(roles.len(), 3);
    assert!(roles.iter().all(|r| !r.matched));
    assert_eq!(roles[0].checks[2].seen.as_deref(), Some("employee"));
    assert!(roles[0].checks[2].holds);
    // The decision agrees with the explanation.
    for row in &rows {
        let last = rules.explain(row, TODAY).into_iter().rfind(|r| r.matched).map(|r| r.role);
        assert_eq!(last, rules.decide(0, row, TODAY).role);
    }
}

/// A connection named "m" with the quickstart-like mappings and the given roles, team rules
/// and connection settings.
fn teams_config(conn_extra: &str, rest: &str) -> String {
    format!(
        "[hr]\ncustom_fields = [\"level\"]\n[[connection]]\nname = \"m\"\n{conn_extra}\n[connection.mappings]\n\
         userName = \"=work_email\"\ndisplayName = \"=first_name\"\n{rest}"
    )
}

#[test]
fn teams_come_from_hr_data_and_from_additive_rules_each_saying_what_put_the_worker_there() {
    let text = teams_config(
        "default_teams = [\"Everyone\", \"=department\"]",
        r#"
[[role]]
name = "Staff"
when = { field = "employment_type", op = "equals", value = "employee" }
[role.grants.m]
teams = ["Everyone", "=\"Office \" & COALESCE(time_zone, \"none\")"]

[[role]]
name = "Others"
[role.grants.m]
user_type = "guest"

[[team_rule]]
name = "Departments"
teams = ["=department"]

[[team_rule]]
name = "Seniors"
when = { field = "custom.level", op = "greater_or_equal", value = "5" }
teams = ["Senior staff"]
"#,
    );
    let rules = Rules::compile(&Config::from_toml("t.toml", &text).unwrap()).unwrap();
    let rows = rows(rules.custom_fields());
    let placed = |i: usize| -> Vec<(String, String)> {
        rules.decide(0, &rows[i], TODAY).placements.iter().map(|p| (p.team.clone(), p.by.to_string())).collect()
    };
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    // Amélie: the role's teams (a literal and a formula), her department by the rule, and
    // the seniors' team by the second rule.
    assert_eq!(
        placed(0),
        [
            s("Everyone", "role \"Staff\""),
            s("Office Europe/Paris", "role \"Staff\""),
            s("Engineering", "team rule \"Departments\""),
            s("Senior staff", "team rule \"Seniors\"")
        ]
    );
    // José, a contractor: a role with no teams gets the default teams (a formula among them);
    // the department rule gives "engineering" again, the same team in another case: once.
    assert_eq!(
        placed(1),
        [s("Everyone", "the connection's default teams"), s("engineering", "the connection's default teams")]
    );
    let d = rules.decide(0, &rows[1], TODAY);
    assert_eq!(d.grant.unwrap().teams, ["Everyone", "engineering"]);
    // The explanation says which team rules applied and why.
    let quiet = rules.decide_with(0, &rows[1], TODAY, false).why;
    assert!(!quiet.iter().any(|w| w.starts_with("team rule")), "not explained when not asked: {quiet:?}");
    assert!(d.why.iter().any(|w| w.starts_with("team rule \"Seniors\" does not apply")), "{:?}", d.why);
    assert!(d.why.iter().any(|w| w.starts_with("team rule \"Departments\" applies: no condition")), "{:?}", d.why);
    // teams_of gives the same without the attributes.
    assert_eq!(rules.teams_of(0, &rows[0], TODAY).0, rules.decide(0, &rows[0], TODAY).placements);
}

#[test]
fn a_team_name_the_data_cannot_give_is_an_error_of_that_worker_only() {
    let long = "x".repeat(300);
    let text = teams_config(
        "",
        &format!(
            r#"
[[role]]
name = "All"
[role.grants.m]
teams = ["=custom.level", "=IF(department = \"Finance\", \"{long}\", department)"]
"#
        ),
    );
    let rules = Rules::compile(&Config::from_toml("t.toml", &text).unwrap()).unwrap();
    let rows = rows(rules.custom_fields());
    let d = |i: usize| rules.decide(0, &rows[i], TODAY);
    assert!(d(0).team_errors.is_empty(), "{:?}", d(0).team_errors);
    assert_eq!(d(0).grant.unwrap().teams, ["9", "Engineering"]);
    // Zoë has no level: an empty name, never sent.
    assert_eq!(
        d(2).team_errors,
        ["role \"All\": the team formula \"=custom.level\" gives a name that is empty"],
        "{:?}",
        d(2).placements
    );
    assert_eq!(d(2).grant.unwrap().teams, ["Product"], "the good team is still known");
    // Li's department gives a name too long for a team.
    assert!(d(3).team_errors.iter().any(|e| e.contains("is 300 characters long")), "{:?}", d(3).team_errors);
    assert!(rules::team_name_problem("Sales\tEMEA").unwrap().contains("U+0009"));
    assert_eq!(rules::team_name_problem("Ventes Île-de-France"), None);
}

#[test]
fn a_team_written_as_a_formula_that_is_not_one_is_refused_at_check_with_its_place() {
    let errors = refused(&teams_config(
        "default_teams = [\"Everyone\", \"=departmnt\"]",
        r#"
[[role]]
name = "All"
[role.grants.m]
teams = ["Sales", "=department &", " Padded", "", "=department = \"x\""]

[[team_rule]]
name = "Departments"
connections = ["nope"]
teams = ["=LOWER(", "Fine"]

[[team_rule]]
name = "departments"
teams = []
"#,
    ));
    let has = |s: &str| assert!(errors.iter().any(|e| e.contains(s)), "no {s:?} in {errors:#?}");
    has("connection[0] (\"m\").default_teams[1]: \"=departmnt\" starts with \"=\", so it is read as a formula, and it is not one: line 1, column 2");
    has("role[0] (\"All\").grants.\"m\".teams[1]: \"=department &\" starts with \"=\"");
    has("role[0] (\"All\").grants.\"m\".teams[2]: the team name \" Padded\" starts or ends with a space");
    has("role[0] (\"All\").grants.\"m\".teams[3]: the team name \"\" is empty");
    has("role[0] (\"All\").grants.\"m\".teams[4]: the team formula \"=department = \\\"x\\\"\" gives TRUE/FALSE, not a team name");
    has("team_rule[0] (\"Departments\").connections: no connection named \"nope\"");
    has("team_rule[0] (\"Departments\").teams[0]: \"=LOWER(\" starts with \"=\"");
    has("team_rule[1] (\"departments\"): a second team rule named \"departments\"");
    has("team_rule[1] (\"departments\").teams: names no team");
    assert!(!errors.iter().any(|e| e.contains("\"Sales\"") || e.contains("\"Fine\"")), "{errors:#?}");
}

#[test]
fn team_rules_and_the_team_guard_read_back_from_the_export() {
    let text = teams_config(
        "remove_empty_teams = true\nteam_guard = { max_share = 0.5, min_count = 3 }",
        r#"
[[role]]
name = "All"
[role.grants.m]
teams = ["=department"]

[[team_rule]]
name = "Departments"
when = { field = "employment_type", op = "equals", value = "contractor" }
teams = ["=department"]
connections = ["m"]
"#,
    );
    let cfg = Config::from_toml("t.toml", &text).unwrap();
    let back = Config::from_toml("export.toml", &cfg.to_toml()).unwrap();
    assert_eq!(back, cfg.canonical());
    assert!(cfg.to_toml().contains("[[team_rule]]"), "{}", cfg.to_toml());
    let rules = Rules::compile(&back).unwrap();
    assert!(rules.connections[0].remove_empty_teams);
    assert_eq!(rules.connections[0].team_guard, rules::TeamGuard { max_share: 0.5, min_count: 3 });
    // Teams written out are managed from the start; a formula's are found per worker.
    assert!(rules.connections[0].managed_teams(&rules).is_empty());
    // Without team settings the export says nothing of them.
    let plain = Config::from_toml("t.toml", &teams_config("", "")).unwrap().to_toml();
    assert!(!plain.contains("team_guard") && !plain.contains("remove_empty_teams"), "{plain}");
}

/// `max_in_flight` is another name for a connection's `concurrency`; the export says
/// `concurrency`, and both at once are refused.
#[test]
fn max_in_flight_names_the_concurrency() {
    let text = |setting: &str| {
        format!(
            "[[connection]]\nname = \"m\"\n{setting}\n[connection.mappings]\nuserName = \"=work_email\"\n\
             displayName = \"=first_name\"\n[[role]]\nname = \"r\"\n\
             when = {{ field = \"status\", op = \"equals\", value = \"active\" }}\n[role.grants.m]\nuser_type = \"member\"\n"
        )
    };
    let cfg = Config::from_toml("t.toml", &text("max_in_flight = 8")).unwrap();
    assert_eq!(cfg.connections[0].concurrency, 8);
    assert!(cfg.to_toml().contains("concurrency = 8"), "{}", cfg.to_toml());
    let both = Config::from_toml("t.toml", &text("max_in_flight = 8\nconcurrency = 4"));
    assert!(both.is_err(), "both names at once: {both:?}");
}
