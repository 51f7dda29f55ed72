//! What Microsoft Entra ID's provisioning service sends (../shared/scim-in-practice.md),
//! replayed against the real `tenure sandbox`.

mod common;
use common::*;
use serde_json::{json, Value};

fn entra_user(name: &str, external: &str) -> Value {
    json!({
        "schemas": [USER],
        "externalId": external,
        "userName": name,
        "active": "True",
        "displayName": "Eli Entra",
        "title": "Engineer",
        "emails": [{"primary": true, "type": "work", "value": name}],
        "name": {"formatted": "Eli Entra", "familyName": "Entra", "givenName": "Eli"},
        "userType": "member"
    })
}

async fn one_user() -> (Sandbox, String) {
    let sb = spawn(&[]);
    let a = sb.post("/Users", &entra_user("eli@contoso.example", "EMP-7")).await;
    assert_eq!(a.status, 201, "{}", a.body);
    (sb, a.body["id"].as_str().unwrap().to_string())
}

async fn find(sb: &Sandbox, path: &str, f: &str) -> Value {
    let a = sb.get(&format!("{path}?{}", filter(f))).await;
    assert_eq!(a.status, 200, "{f}: {}", a.body);
    a.body
}

#[tokio::test]
async fn lookups_by_user_name_external_id_and_work_email() {
    let (sb, id) = one_user().await;
    for f in [
        r#"userName eq "eli@contoso.example""#,
        r#"externalId eq "EMP-7""#,
        r#"emails[type eq "work"].value eq "Eli@Contoso.example""#,
        r#"userName eq "eli@contoso.example" and externalId eq "EMP-7""#,
    ] {
        let b = find(&sb, "/Users", f).await;
        assert_eq!(b["totalResults"], json!(1), "{f}");
        assert_eq!(b["Resources"][0]["id"], json!(id), "{f}");
    }
    let b = find(&sb, "/Users", r#"externalId eq "emp-7""#).await;
    assert_eq!(b["totalResults"], json!(0), "externalId is case-exact");
}

#[tokio::test]
async fn empty_results_are_200_never_404() {
    let (sb, _) = one_user().await;
    for (p, f) in [("/Users", r#"userName eq "ghost@contoso.example""#), ("/Groups", r#"displayName eq "Nobody""#)] {
        let b = find(&sb, p, f).await;
        assert_eq!(b["totalResults"], json!(0));
        assert_eq!(b["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"]));
    }
}

#[tokio::test]
async fn patch_quirks_op_case_dotted_keys_string_booleans_and_clearing() {
    let (sb, id) = one_user().await;
    let a = sb
        .patch(
            &format!("/Users/{id}"),
            json!([
                {"op": "Replace", "value": {"name.givenName": "Elias", "displayName": "Elias Entra"}},
                {"op": "Add", "path": "locale", "value": "de-DE"},
                {"op": "replace", "path": "active", "value": "False"},
                {"op": "Replace", "path": "title", "value": ""}
            ]),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["name"]["givenName"], json!("Elias"));
    assert_eq!(a.body["name"]["familyName"], json!("Entra"));
    assert_eq!(a.body["active"], json!(false));
    assert_eq!(a.body["locale"], json!("de-DE"));
    assert!(a.body.get("title").is_none(), "\"\" clears: {}", a.body);
    let got = sb.get(&format!("/Users/{id}")).await.body;
    assert_eq!(got, a.body, "PATCH answers the full stored resource");
    let a = sb.patch(&format!("/Users/{id}"), json!([{"op": "replace", "path": "locale", "value": null}])).await;
    assert!(a.body.get("locale").is_none());
    let a = sb
        .patch(&format!("/Users/{id}"), json!([{"op": "Replace", "path": "userName", "value": "ELI2@contoso.example"}]))
        .await;
    assert_eq!(a.body["userName"], json!("ELI2@contoso.example"));
    assert_eq!(find(&sb, "/Users", r#"userName eq "eli2@contoso.example""#).await["totalResults"], json!(1));
    assert_eq!(find(&sb, "/Users", r#"userName eq "eli@contoso.example""#).await["totalResults"], json!(0));
}

#[tokio::test]
async fn soft_deleted_user_is_still_returned_by_get_and_filters() {
    let (sb, id) = one_user().await;
    let a = sb.patch(&format!("/Users/{id}"), json!([{"op": "Replace", "path": "active", "value": "False"}])).await;
    assert_eq!(a.status, 200);
    let got = sb.get(&format!("/Users/{id}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["active"], json!(false));
    let b = find(&sb, "/Users", r#"userName eq "eli@contoso.example""#).await;
    assert_eq!(b["Resources"][0]["active"], json!(false));
    let b = find(&sb, "/Users", "active eq false").await;
    assert_eq!(b["totalResults"], json!(1));
}

#[tokio::test]
async fn duplicate_post_is_409() {
    let (sb, _) = one_user().await;
    let a = sb.post("/Users", &entra_user("eli@contoso.example", "EMP-8")).await;
    assert_eq!(a.status, 409);
    assert_eq!(a.body["scimType"], json!("uniqueness"));
}

#[tokio::test]
async fn groups_by_display_name_without_members_and_member_changes() {
    let sb = spawn(&[]);
    let u1 = sb.create_user("a@contoso.example", "Ann").await;
    let u2 = sb.create_user("b@contoso.example", "Ben").await;
    let u3 = sb.create_user("c@contoso.example", "Cid").await;
    let g = sb
        .post(
            "/Groups",
            &json!({"schemas": [GROUP], "displayName": "Engineering", "externalId": "G-1",
                    "members": [{"value": u1}, {"value": u2}, {"value": u3}]}),
        )
        .await;
    assert_eq!(g.status, 201, "{}", g.body);
    let gid = g.body["id"].as_str().unwrap().to_string();
    assert!(g.body["internalId"].is_string(), "monday.com teams carry internalId");
    assert_eq!(g.body["members"][0]["display"], json!("Ann"));
    let b = find(&sb, "/Groups", r#"displayName eq "engineering""#).await;
    assert_eq!(b["Resources"][0]["id"], json!(gid));
    let a = sb.get(&format!("/Groups/{gid}?excludedAttributes=members")).await;
    assert_eq!(a.status, 200);
    assert!(a.body.get("members").is_none());
    assert_eq!(a.body["displayName"], json!("Engineering"));
    // Entra removes members by filter and by a value array.
    let a = sb
        .patch(
            &format!("/Groups/{gid}"),
            json!([
                {"op": "Remove", "path": format!("members[value eq \"{u1}\"]")},
                {"op": "Remove", "path": "members", "value": [{"value": u2}]}
            ]),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let members: Vec<&str> =
        a.body["members"].as_array().unwrap().iter().map(|m| m["value"].as_str().unwrap()).collect();
    assert_eq!(members, vec![u3.as_str()]);
    // The user sees its team in its read-only groups attribute.
    let u = sb.get(&format!("/Users/{u3}")).await.body;
    assert_eq!(u["groups"][0]["value"], json!(gid));
    assert_eq!(u["groups"][0]["display"], json!("Engineering"));
    let u = sb.get(&format!("/Users/{u1}")).await.body;
    assert!(u.get("groups").is_none());
    // Renaming the team (monday.com: rename teams).
    let a = sb.patch(&format!("/Groups/{gid}"), json!([{"op": "replace", "value": {"displayName": "Platform"}}])).await;
    assert_eq!(a.body["displayName"], json!("Platform"));
    assert_eq!(find(&sb, "/Groups", r#"displayName eq "Platform""#).await["totalResults"], json!(1));
    assert_eq!(find(&sb, "/Groups", r#"displayName eq "Engineering""#).await["totalResults"], json!(0));
}

#[tokio::test]
async fn pagination_over_two_pages_of_five() {
    let sb = spawn(&[]);
    for i in 0..8 {
        sb.create_user(&format!("p{i}@contoso.example"), &format!("P {i}")).await;
    }
    let p1 = sb.get("/Users?startIndex=1&count=5").await.body;
    let p2 = sb.get("/Users?startIndex=6&count=5").await.body;
    assert_eq!(p1["totalResults"], json!(8));
    assert_eq!(p1["itemsPerPage"], json!(5));
    assert_eq!(p2["itemsPerPage"], json!(3));
    assert_eq!(p2["startIndex"], json!(6));
    let mut names: Vec<String> = p1["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .chain(p2["Resources"].as_array().unwrap())
        .map(|u| u["userName"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 8, "every user once across the pages");
}

#[tokio::test]
async fn every_attribute_entra_maps_for_monday_is_published_and_sticks() {
    let sb = spawn(&[]);
    let schemas = sb.get("/Schemas").await.body;
    let user = schemas["Resources"].as_array().unwrap().iter().find(|s| s["id"] == json!(USER)).unwrap();
    let names: Vec<&str> = user["attributes"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    for want in
        ["userName", "displayName", "userType", "title", "locale", "timezone", "roles", "active", "emails", "name"]
    {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    assert!(!names.contains(&"phoneNumbers"), "monday.com does not store phone numbers");
    let user_type = user["attributes"].as_array().unwrap().iter().find(|a| a["name"] == json!("userType")).unwrap();
    assert_eq!(user_type["canonicalValues"], json!(["admin", "member", "viewer", "guest"]));
    // Each published writable top-level attribute can be set and read back.
    let id = sb.create_user("all@contoso.example", "All").await;
    let a = sb
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "value": {
                "title": "T", "locale": "fr-FR", "timezone": "Europe/Paris", "userType": "viewer",
                "roles": [{"value": "r1"}], "addresses": [{"locality": "Paris", "type": "work"}],
                "name": {"givenName": "G", "familyName": "F"}, "displayName": "D"
            }}]),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let got = sb.get(&format!("/Users/{id}")).await.body;
    for k in ["title", "locale", "timezone", "userType", "roles", "addresses", "name", "displayName"] {
        assert_eq!(got[k], a.body[k], "{k}");
        assert!(!got[k].is_null(), "{k} stuck");
    }
}

#[tokio::test]
async fn manager_set_change_remove_in_generic_dialect() {
    let sb = spawn(&["--dialect", "generic"]);
    let boss = sb.create_user("boss@contoso.example", "Boss").await;
    let boss2 = sb.create_user("boss2@contoso.example", "Boss 2").await;
    let id = sb.create_user("worker@contoso.example", "Worker").await;
    let path = format!("/Users/{id}");
    let mgr = format!("{ENTERPRISE}:manager");
    // Entra sends the manager id as a bare string; it is read as {"value": id}.
    let a = sb.patch(&path, json!([{"op": "Add", "path": mgr, "value": boss}])).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body[ENTERPRISE]["manager"], json!({"value": boss}));
    let a = sb.patch(&path, json!([{"op": "Add", "path": mgr, "value": {"value": boss}}])).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body[ENTERPRISE]["manager"]["value"], json!(boss));
    assert!(a.body["schemas"].as_array().unwrap().contains(&json!(ENTERPRISE)));
    let a = sb.patch(&path, json!([{"op": "Replace", "path": format!("{mgr}.value"), "value": boss2}])).await;
    assert_eq!(a.body[ENTERPRISE]["manager"]["value"], json!(boss2));
    let b = find(&sb, "/Users", &format!(r#"{ENTERPRISE}:manager.value eq "{boss2}""#)).await;
    assert_eq!(b["totalResults"], json!(1));
    let a = sb.patch(&path, json!([{"op": "Remove", "path": mgr}])).await;
    assert_eq!(a.status, 200);
    assert!(a.body.get(ENTERPRISE).is_none(), "{}", a.body);
    assert_eq!(a.body["schemas"], json!([USER]));
}
