//! Filter evaluation, normalisation and PATCH against the User and Group schemas.

use scim::{patch, Dialect, Filter, ScimType};
use serde_json::{json, Map, Value};

fn user(v: Value) -> Map<String, Value> {
    Dialect::Generic.user_schema().normalize(&v).expect("valid user")
}

fn alice() -> Map<String, Value> {
    user(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "userName": "Alice@Example.com",
        "name": {"givenName": "Alice", "familyName": "Ünal"},
        "displayName": "Alice Ünal",
        "active": "True",
        "externalId": "E-1",
        "emails": [{"value": "alice@example.com", "type": "work", "primary": true}, {"value": "a@home.example", "type": "home"}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Engineering", "manager": {"value": "m-1"}}
    }))
}

fn matches(filter: &str, res: &Map<String, Value>) -> bool {
    let schema = Dialect::Generic.user_schema();
    let f = Filter::parse(filter).unwrap();
    schema.check_filter(&f).unwrap_or_else(|e| panic!("{filter}: {e}"));
    schema.matches(&f, res)
}

#[test]
fn normalize_reads_string_booleans_and_canonical_names() {
    let a = alice();
    assert_eq!(a["active"], json!(true));
    assert_eq!(a["name"]["familyName"], json!("Ünal"));
    let u = user(
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "USERNAME": "x", "Active": "false", "title": ""}),
    );
    assert_eq!(u["userName"], json!("x"));
    assert_eq!(u["active"], json!(false));
    assert!(!u.contains_key("title"), "empty string is no value");
}

#[test]
fn normalize_refuses_bad_input_saying_where() {
    let s = Dialect::Generic.user_schema();
    let cases = [
        (json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x", "foo": 1}), "\"foo\""),
        (
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x", "active": "yes"}),
            "active",
        ),
        (
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x", "emails": [{"value": 5}]}),
            "emails[0].value",
        ),
        (
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x", "name": {"first": "A"}}),
            "name.first",
        ),
        (json!({"userName": "x"}), "schemas"),
        (
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x", "emails": [{"value": "a", "primary": true}, {"value": "b", "primary": true}]}),
            "primary",
        ),
    ];
    for (body, want) in cases {
        let e = s.normalize(&body).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.detail.contains(want), "{body}: {}", e.detail);
    }
    let missing =
        s.normalize(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "displayName": "x"})).unwrap();
    assert!(s.check_required(&missing).unwrap_err().detail.contains("userName"));
}

#[test]
fn monday_dialect_restricts_user_type_and_requires_display_name() {
    let s = Dialect::Monday.user_schema();
    let ok = s.normalize(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a@b.c", "displayName": "A", "userType": "Viewer"})).unwrap();
    assert_eq!(ok["userType"], json!("viewer"));
    let bad = s.normalize(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a@b.c", "displayName": "A", "userType": "owner"})).unwrap_err();
    assert_eq!(bad.scim_type, Some(ScimType::InvalidValue));
    assert!(bad.detail.contains("admin, member, viewer, guest"), "{}", bad.detail);
    let no_display =
        s.normalize(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a@b.c"})).unwrap();
    assert!(s.check_required(&no_display).is_err());
    let phone = s.normalize(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a@b.c", "displayName": "A", "phoneNumbers": [{"value": "1"}]}));
    assert_eq!(phone.unwrap_err().scim_type, Some(ScimType::InvalidSyntax));
}

#[test]
fn filters_evaluate_case_insensitively_except_case_exact() {
    let a = alice();
    assert!(matches(r#"userName eq "alice@example.com""#, &a));
    assert!(matches(r#"USERNAME EQ "ALICE@EXAMPLE.COM""#, &a));
    assert!(matches(r#"externalId eq "E-1""#, &a));
    assert!(!matches(r#"externalId eq "e-1""#, &a), "externalId is caseExact");
    assert!(matches(r#"name.familyName eq "ünal""#, &a));
    assert!(matches(r#"emails co "home.example""#, &a));
    assert!(matches(r#"emails[type eq "work"].value eq "alice@example.com""#, &a));
    assert!(!matches(r#"emails[type eq "home"].value eq "alice@example.com""#, &a));
    assert!(matches(r#"emails[type eq "work" and primary eq true]"#, &a));
    assert!(matches(r#"emails.value sw "a@""#, &a));
    assert!(matches(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "engineering""#, &a));
    assert!(matches(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m-1""#, &a));
    assert!(matches(r#"active eq true and not (title pr)"#, &a));
    assert!(matches(r#"title eq null"#, &a));
    assert!(matches(r#"userName ne "bob" and (title pr or displayName ew "ünal")"#, &a));
    assert!(!matches(r#"userName ne "Alice@example.com""#, &a));
    assert!(matches(r#"userName gt "aa" and userName lt "b""#, &a));
}

#[test]
fn filters_on_unknown_attributes_or_bad_ops_are_refused() {
    let s = Dialect::Generic.user_schema();
    for f in [r#"shoeSize eq "9""#, r#"active gt true"#, r#"name eq "x""#, r#"emails[shoe eq "x"]"#, r#"active co "t""#]
    {
        let e = s.check_filter(&Filter::parse(f).unwrap()).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{f}");
    }
}

fn apply(res: &Map<String, Value>, ops: Value) -> scim::Result<Map<String, Value>> {
    let s = Dialect::Generic.user_schema();
    let parsed =
        patch::parse(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops}))?;
    patch::apply(&s, res, &parsed)
}

#[test]
fn patch_entra_quirks() {
    let a = alice();
    let r =
        apply(&a, json!([{"op": "Replace", "value": {"name.givenName": "Alicia", "active": "False", "title": "CTO"}}]))
            .unwrap();
    assert_eq!(r["name"]["givenName"], json!("Alicia"));
    assert_eq!(r["name"]["familyName"], json!("Ünal"), "other sub-attributes stay");
    assert_eq!(r["active"], json!(false));
    assert_eq!(r["title"], json!("CTO"));
    let r = apply(&r, json!([{"op": "replace", "path": "title", "value": ""}])).unwrap();
    assert!(!r.contains_key("title"));
    let r = apply(&a, json!([{"op": "replace", "path": "displayName", "value": null}])).unwrap();
    assert!(!r.contains_key("displayName"));
}

#[test]
fn patch_value_filters() {
    let a = alice();
    let r =
        apply(&a, json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "alice@new.example"}]))
            .unwrap();
    assert_eq!(r["emails"][0]["value"], json!("alice@new.example"));
    assert_eq!(r["emails"][1]["value"], json!("a@home.example"));
    let r = apply(&a, json!([{"op": "remove", "path": "emails[type eq \"home\"]"}])).unwrap();
    assert_eq!(r["emails"].as_array().unwrap().len(), 1);
    // Entra adds a work e-mail to a user that has none by its filter.
    let b = user(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "b"}));
    let r =
        apply(&b, json!([{"op": "add", "path": "emails[type eq \"work\"].value", "value": "b@x.example"}])).unwrap();
    assert_eq!(r["emails"], json!([{"type": "work", "value": "b@x.example"}]));
    let e =
        apply(&a, json!([{"op": "replace", "path": "emails[value co \"zzz\"].type", "value": "other"}])).unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::NoTarget));
}

#[test]
fn patch_primary_stays_unique() {
    let a = alice();
    let r = apply(&a, json!([{"op": "add", "path": "emails", "value": [{"value": "new@x.example", "type": "other", "primary": true}]}])).unwrap();
    let primaries: Vec<&Value> =
        r["emails"].as_array().unwrap().iter().filter(|e| e["primary"] == json!(true)).collect();
    assert_eq!(primaries.len(), 1);
    assert_eq!(primaries[0]["value"], json!("new@x.example"));
    let r = apply(&a, json!([{"op": "replace", "path": "emails[type eq \"home\"].primary", "value": true}])).unwrap();
    let p: Vec<&Value> = r["emails"].as_array().unwrap().iter().filter(|e| e["primary"] == json!(true)).collect();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0]["type"], json!("home"));
}

#[test]
fn patch_is_atomic_and_checks_mutability() {
    let a = alice();
    let e = apply(
        &a,
        json!([
            {"op": "replace", "path": "title", "value": "Boss"},
            {"op": "replace", "path": "active", "value": "maybe"}
        ]),
    )
    .unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
    assert!(e.detail.contains("Operations[1]"), "{}", e.detail);
    assert!(!a.contains_key("title"));
    assert_eq!(
        apply(&a, json!([{"op": "replace", "path": "id", "value": "x"}])).unwrap_err().scim_type,
        Some(ScimType::Mutability)
    );
    assert_eq!(
        apply(&a, json!([{"op": "remove", "path": "userName"}])).unwrap_err().scim_type,
        Some(ScimType::Mutability)
    );
    assert_eq!(apply(&a, json!([{"op": "remove"}])).unwrap_err().scim_type, Some(ScimType::NoTarget));
    assert_eq!(apply(&a, json!([{"op": "jump", "path": "x"}])).unwrap_err().scim_type, Some(ScimType::InvalidSyntax));
    assert_eq!(
        apply(&a, json!([{"op": "add", "path": "shoe", "value": 1}])).unwrap_err().scim_type,
        Some(ScimType::InvalidPath)
    );
}

#[test]
fn patch_extension_paths_and_group_members() {
    let a = alice();
    let r = apply(&a, json!([
        {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value", "value": "m-2"},
        {"op": "add", "value": {"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"costCenter": "CC-7"}}}
    ])).unwrap();
    let ext = &r["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"];
    assert_eq!(ext["manager"]["value"], json!("m-2"));
    assert_eq!(ext["costCenter"], json!("CC-7"));
    assert_eq!(ext["department"], json!("Engineering"));
    let r = apply(
        &r,
        json!([{"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"},
        {"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter"},
        {"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"}]),
    )
    .unwrap();
    assert!(!r.contains_key("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"));
    assert_eq!(r["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:User"]));

    let gs = Dialect::Monday.group_schema();
    let g = gs.normalize(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Eng", "members": [{"value": "u1"}, {"value": "u2"}, {"value": "u3"}]})).unwrap();
    let ops = |v: Value| {
        patch::parse(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": v})).unwrap()
    };
    let g2 = patch::apply(&gs, &g, &ops(json!([{"op": "Remove", "path": "members", "value": [{"value": "u1"}]}, {"op": "remove", "path": "members[value eq \"u3\"]"}, {"op": "add", "path": "members", "value": [{"value": "u2"}, {"value": "u4"}]}]))).unwrap();
    assert_eq!(g2["members"], json!([{"value": "u2"}, {"value": "u4"}]));
}

#[test]
fn wide_filters_are_refused_by_length_and_by_terms_without_recursion() {
    use scim::filter::FilterLimits;
    let wide: Vec<String> = (0..7000).map(|i| format!("userName eq \"user{i}@example.com\"")).collect();
    let wide = wide.join(" or ");
    assert!(wide.len() > 250_000);
    let e = Filter::parse(&wide).unwrap_err();
    assert_eq!(e.scim_type.map(|t| t.as_str()), Some("invalidFilter"));
    assert!(e.detail.contains("bytes long; at most 16384"), "{}", e.detail);
    assert!(!e.detail.contains("user6999"), "a huge filter is not echoed back");
    // Past the length bound, the term bound: no 7,000-deep tree is ever built.
    let e = Filter::parse_with_limits(&wide, FilterLimits { max_bytes: usize::MAX, ..Default::default() }).unwrap_err();
    assert!(e.detail.contains("more than 200 comparisons"), "{}", e.detail);
    // Up to the bound, a wide filter parses and evaluates.
    let ok: Vec<String> = (0..200).map(|i| format!("userName eq \"u{i}\"")).collect();
    let f = Filter::parse_with_limits(&ok.join(" or "), FilterLimits { max_bytes: usize::MAX, ..Default::default() });
    assert!(f.is_ok());
}
