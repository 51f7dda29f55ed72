//! Okta's SCIM 2.0 conformance run (../shared/scim-in-practice.md), step by step, against the
//! real `tenure sandbox` in its default monday.com dialect.

mod common;
use common::*;
use serde_json::{json, Value};

fn okta_user(name: &str) -> Value {
    json!({
        "schemas": [USER],
        "userName": name,
        "name": {"givenName": "Inez", "familyName": "Okta"},
        "emails": [{"primary": true, "value": name, "type": "work"}],
        "displayName": "Inez Okta",
        "locale": "en-US",
        "groups": [],
        "password": null,
        "active": true
    })
}

async fn with_one_user() -> (Sandbox, String) {
    let sb = spawn(&[]);
    let a = sb.post("/Users", &okta_user("inez.okta@example.com")).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let id = a.body["id"].as_str().unwrap().to_string();
    (sb, id)
}

#[tokio::test]
async fn step01_list_users_count_1_has_numeric_paging_and_user_fields() {
    let (sb, id) = with_one_user().await;
    let a = sb.get("/Users?count=1&startIndex=1").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["itemsPerPage"], json!(1));
    assert_eq!(a.body["startIndex"], json!(1));
    assert_eq!(a.body["totalResults"], json!(1));
    let u = &a.body["Resources"][0];
    assert_eq!(u["id"], json!(id));
    assert_eq!(u["name"]["givenName"], json!("Inez"));
    assert_eq!(u["name"]["familyName"], json!("Okta"));
    assert_eq!(u["userName"], json!("inez.okta@example.com"));
    assert_eq!(u["active"], json!(true));
    assert_eq!(u["emails"][0]["value"], json!("inez.okta@example.com"));
}

#[tokio::test]
async fn step02_get_user_by_id() {
    let (sb, id) = with_one_user().await;
    let a = sb.get(&format!("/Users/{id}")).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["id"], json!(id));
    assert_eq!(a.body["userName"], json!("inez.okta@example.com"));
    assert_eq!(a.header("content-type").as_deref(), Some("application/scim+json"));
}

#[tokio::test]
async fn step03_filter_unknown_user_name_is_empty_200() {
    let (sb, _) = with_one_user().await;
    let a = sb.get(&format!("/Users?{}", filter(r#"userName eq "nobody@example.com""#))).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["totalResults"], json!(0));
    assert_eq!(a.body["Resources"], json!([]));
}

#[tokio::test]
async fn step04_unknown_id_is_404_with_error_body() {
    let sb = spawn(&[]);
    let a = sb.get("/Users/010101010101").await;
    assert_eq!(a.status, 404);
    assert_eq!(a.body["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:Error"]));
    assert_eq!(a.body["status"], json!("404"));
    assert!(a.body["detail"].as_str().unwrap().contains("010101010101"));
}

#[tokio::test]
async fn step05_create_echoes_values_with_location_and_meta() {
    let sb = spawn(&[]);
    let a = sb.post("/Users", &okta_user("new.user@example.com")).await;
    assert_eq!(a.status, 201);
    let id = a.body["id"].as_str().unwrap();
    assert_eq!(a.body["userName"], json!("new.user@example.com"));
    assert_eq!(a.body["displayName"], json!("Inez Okta"));
    assert_eq!(a.body["emails"][0]["primary"], json!(true));
    let loc = a.header("location").unwrap();
    assert_eq!(loc, format!("{}/Users/{id}", sb.base));
    assert_eq!(a.body["meta"]["location"], json!(loc));
    for k in ["created", "lastModified", "version"] {
        assert!(a.body["meta"][k].is_string(), "meta.{k} in {}", a.body);
    }
    assert_eq!(a.header("etag").as_deref(), a.body["meta"]["version"].as_str());
}

#[tokio::test]
async fn step06_get_new_user_returns_same_values() {
    let sb = spawn(&[]);
    let created = sb.post("/Users", &okta_user("round.trip@example.com")).await.body;
    let got = sb.get(&format!("/Users/{}", created["id"].as_str().unwrap())).await.body;
    assert_eq!(created, got);
}

#[tokio::test]
async fn step07_same_post_again_is_409_uniqueness() {
    let (sb, _) = with_one_user().await;
    let a = sb.post("/Users", &okta_user("inez.okta@example.com")).await;
    assert_eq!(a.status, 409);
    assert_eq!(a.body["scimType"], json!("uniqueness"));
    let upper = sb.post("/Users", &okta_user("INEZ.OKTA@EXAMPLE.COM")).await;
    assert_eq!(upper.status, 409, "userName uniqueness ignores case");
    assert_eq!(sb.get("/Users").await.body["totalResults"], json!(1));
}

#[tokio::test]
async fn step08_filter_user_name_in_upper_case_finds_user() {
    let (sb, id) = with_one_user().await;
    let a = sb.get(&format!("/Users?{}", filter(r#"userName eq "INEZ.OKTA@EXAMPLE.COM""#))).await;
    assert_eq!(a.body["totalResults"], json!(1));
    assert_eq!(a.body["Resources"][0]["id"], json!(id));
}

#[tokio::test]
async fn step09_list_groups_is_200() {
    let sb = spawn(&[]);
    let a = sb.get("/Groups").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["totalResults"], json!(0));
}

#[tokio::test]
async fn step10_bad_authorization_is_401_with_error_body() {
    let sb = spawn(&[]);
    for auth in ["Bearer wrong-token", "Basic dXNlcjpwYXNz", ""] {
        let mut req = sb.http.get(format!("{}/Users", sb.base));
        if !auth.is_empty() {
            req = req.header("Authorization", auth);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{auth}");
        assert!(resp.headers().get("www-authenticate").unwrap().to_str().unwrap().starts_with("Bearer"));
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["status"], json!("401"));
        assert_eq!(body["schemas"][0], json!("urn:ietf:params:scim:api:messages:2.0:Error"));
    }
}

#[tokio::test]
async fn okta_posts_with_plain_json_and_deprovisions_by_patch() {
    let (sb, id) = with_one_user().await;
    let resp = sb
        .http
        .post(format!("{}/Users", sb.base))
        .bearer_auth(TOKEN)
        .header("Content-Type", "application/json")
        .body(okta_user("plain.json@example.com").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let a = sb.patch(&format!("/Users/{id}"), json!([{"op": "replace", "value": {"active": false}}])).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["active"], json!(false));
    assert_eq!(a.body["id"], json!(id));
}
