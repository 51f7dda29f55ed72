//! The sandbox as monday.com behaves and as a demanding SCIM client expects: dialect rules,
//! persistence, authentication, ETags, limits, errors, search, bulk and the fault knobs.

mod common;
use common::*;
use serde_json::{json, Value};

fn user(name: &str) -> Value {
    json!({"schemas": [USER], "userName": name, "displayName": name})
}

#[tokio::test]
async fn monday_user_type_rules() {
    let sb = spawn(&[]);
    let a = sb.post("/Users", &user("default@acme.example")).await;
    assert_eq!(a.body["userType"], json!("member"), "omitted userType is member");
    assert_eq!(a.body["active"], json!(true));
    let a = sb
        .post(
            "/Users",
            &json!({"schemas": [USER], "userName": "o@acme.example", "displayName": "O", "userType": "owner"}),
        )
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["scimType"], json!("invalidValue"));
    assert!(a.body["detail"].as_str().unwrap().contains("admin, member, viewer, guest"));
    let a = sb.post("/Users", &json!({"schemas": [USER], "userName": "nodisplay@acme.example"})).await;
    assert_eq!(a.status, 400, "displayName is required by monday.com");
    assert!(a.body["detail"].as_str().unwrap().contains("displayName"));
    for t in ["admin", "Viewer", "GUEST"] {
        let a = sb
            .post(
                "/Users",
                &json!({"schemas": [USER], "userName": format!("{t}@acme.example"), "displayName": t, "userType": t}),
            )
            .await;
        assert_eq!(a.status, 201);
        assert_eq!(a.body["userType"], json!(t.to_lowercase()));
    }
    // In the generic dialect userType is free text and displayName optional.
    let g = spawn(&["--dialect", "generic"]);
    let a = g.post("/Users", &json!({"schemas": [USER], "userName": "x@acme.example", "userType": "Contractor"})).await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["userType"], json!("Contractor"));
}

#[tokio::test]
async fn monday_changes_active_and_user_type_only_by_patch() {
    let sb = spawn(&[]);
    let id = sb.create_user("put@acme.example", "Put").await;
    let a = sb
        .put(
            &format!("/Users/{id}"),
            &json!({"schemas": [USER], "userName": "put@acme.example", "displayName": "Put Renamed", "active": false, "userType": "admin"}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["displayName"], json!("Put Renamed"));
    assert_eq!(a.body["active"], json!(true), "PUT leaves active alone");
    assert_eq!(a.body["userType"], json!("member"), "PUT leaves userType alone");
    let a = sb
        .patch(&format!("/Users/{id}"), json!([{"op": "replace", "value": {"userType": "viewer", "active": false}}]))
        .await;
    assert_eq!(a.body["userType"], json!("viewer"));
    assert_eq!(a.body["active"], json!(false));
    // In the generic dialect PUT replaces them.
    let g = spawn(&["--dialect", "generic"]);
    let id = g.create_user("put@acme.example", "Put").await;
    let a = g
        .put(&format!("/Users/{id}"), &json!({"schemas": [USER], "userName": "put@acme.example", "active": false}))
        .await;
    assert_eq!(a.body["active"], json!(false));
    assert!(a.body.get("displayName").is_none(), "PUT replaces the whole resource");
}

#[tokio::test]
async fn hand_invited_users_are_hidden_unless_scim_provisioned_only_is_false() {
    let dir = tempdir("seed");
    let seed = dir.join("seed.json");
    std::fs::write(
        &seed,
        json!({"Users": [{"userName": "hand@acme.example", "displayName": "Hand Invited", "emails": [{"value": "hand@acme.example", "type": "work"}]}],
               "Groups": [{"displayName": "Marketing", "members": [{"value": "hand@acme.example"}]}]})
        .to_string(),
    )
    .unwrap();
    let sb = spawn(&["--seed", seed.to_str().unwrap()]);
    assert!(sb.stdout_lines.iter().any(|l| l.contains("seeded 2")), "{:?}", sb.stdout_lines);
    let f = filter(r#"userName eq "hand@acme.example""#);
    assert_eq!(sb.get(&format!("/Users?{f}")).await.body["totalResults"], json!(0));
    assert_eq!(sb.get("/Users").await.body["totalResults"], json!(0));
    assert_eq!(sb.get("/Groups").await.body["totalResults"], json!(0));
    let all = sb.get(&format!("/Users?{f}&scim_provisioned_only=false")).await.body;
    assert_eq!(all["totalResults"], json!(1));
    let id = all["Resources"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(all["Resources"][0]["groups"][0]["display"], json!("Marketing"));
    assert_eq!(sb.get("/Groups?scim_provisioned_only=false").await.body["totalResults"], json!(1));
    // A POST for the hidden user conflicts, as on monday.com.
    let a = sb.post("/Users", &user("HAND@acme.example")).await;
    assert_eq!(a.status, 409);
    // Known by id, it can be read and managed.
    assert_eq!(sb.get(&format!("/Users/{id}")).await.status, 200);
    // .search honours the parameter too.
    let s = sb.send("POST", "/Users/.search?scim_provisioned_only=false", Some(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userName sw \"hand\""})), &[]).await;
    assert_eq!(s.body["totalResults"], json!(1));
}

#[tokio::test]
async fn data_survives_restart_and_kill_9() {
    let dir = tempdir("persist");
    let db = db_in(&dir);
    let mut sb = spawn(&["--db", &db]);
    let id = sb.create_user("keep@acme.example", "Keep").await;
    let g =
        sb.post("/Groups", &json!({"schemas": [GROUP], "displayName": "Keepers", "members": [{"value": id}]})).await;
    let gid = g.body["id"].as_str().unwrap().to_string();
    let patched =
        sb.patch(&format!("/Users/{id}"), json!([{"op": "replace", "path": "active", "value": false}])).await.body;
    let old_base = sb.base.clone();
    sb.kill(); // SIGKILL: no chance to flush anything
    let sb = spawn(&["--db", &db]);
    let got = sb.get(&format!("/Users/{id}")).await;
    assert_eq!(got.status, 200);
    // The same resource; only the port in its URLs differs.
    assert_eq!(got.body.to_string().replace(&sb.base, &old_base), patched.to_string());
    assert_eq!(sb.get(&format!("/Groups/{gid}")).await.body["members"][0]["value"], json!(id));
    assert_eq!(
        sb.get(&format!("/Users?{}", filter(r#"userName eq "KEEP@acme.example""#))).await.body["totalResults"],
        json!(1)
    );
    let dup = sb.post("/Users", &user("keep@acme.example")).await;
    assert_eq!(dup.status, 409, "indexes are rebuilt on start");
    // The token is not in the database file in plain text.
    let bytes = std::fs::read(dir.join("sandbox.db")).unwrap();
    assert!(!bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()));
}

#[tokio::test]
async fn generated_token_is_printed_once_and_only_its_hash_kept() {
    let dir = tempdir("token");
    let db = db_in(&dir);
    let mut first = spawn_with(&["--db", &db], None);
    assert!(first.token.starts_with("sbx_"), "{:?}", first.stdout_lines);
    assert_eq!(first.get("/Users").await.status, 200);
    let token = first.token.clone();
    first.kill();
    let mut second = spawn_with(&["--db", &db], None);
    assert!(second.stdout_lines.iter().all(|l| !l.contains("bearer token")), "{:?}", second.stdout_lines);
    second.token = token.clone();
    assert_eq!(second.get("/Users").await.status, 200, "the stored hash still accepts it");
    second.kill();
    let bytes = std::fs::read(dir.join("sandbox.db")).unwrap();
    assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()), "token on disk in plain text");
    // A token given by file replaces it.
    let tf = dir.join("token.txt");
    std::fs::write(&tf, "from-a-file-123\n").unwrap();
    let mut third = spawn_with(&["--db", &db, "--token-file", tf.to_str().unwrap()], None);
    third.token = "from-a-file-123".into();
    assert_eq!(third.get("/Users").await.status, 200);
    third.token = token;
    assert_eq!(third.get("/Users").await.status, 401);
}

#[tokio::test]
async fn etags_if_match_and_if_none_match() {
    let sb = spawn(&[]);
    let a = sb.post("/Users", &user("etag@acme.example")).await;
    let id = a.body["id"].as_str().unwrap();
    let v1 = a.header("etag").unwrap();
    let path = format!("/Users/{id}");
    let ops = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": "A"}]});
    let ok = sb.send("PATCH", &path, Some(&ops), &[("If-Match", &v1)]).await;
    assert_eq!(ok.status, 200);
    let v2 = ok.header("etag").unwrap();
    assert_ne!(v1, v2);
    let stale = sb.send("PATCH", &path, Some(&ops), &[("If-Match", &v1)]).await;
    assert_eq!(stale.status, 412);
    let stale_put = sb.send("PUT", &path, Some(&user("etag@acme.example")), &[("If-Match", &v1)]).await;
    assert_eq!(stale_put.status, 412);
    let stale_delete = sb.send("DELETE", &path, None, &[("If-Match", &v1)]).await;
    assert_eq!(stale_delete.status, 412);
    assert_eq!(sb.send("GET", &path, None, &[("If-None-Match", &v2)]).await.status, 304);
    assert_eq!(sb.send("GET", &path, None, &[("If-None-Match", &v1)]).await.status, 200);
    assert_eq!(sb.send("PATCH", &path, Some(&ops), &[("If-None-Match", "*")]).await.status, 412);
    // A PATCH that changes nothing keeps the version.
    let same = sb.send("PATCH", &path, Some(&ops), &[]).await;
    assert_eq!(same.header("etag").unwrap(), v2);
    assert_eq!(sb.send("DELETE", &path, None, &[("If-Match", &v2)]).await.status, 204);
    assert_eq!(sb.get(&path).await.status, 404);
}

#[tokio::test]
async fn bad_input_gets_a_400_that_says_what_and_where_and_changes_nothing() {
    let sb = spawn(&["--max-body-bytes", "2000", "--max-filter-depth", "4"]);
    let id = sb.create_user("err@acme.example", "Err").await;
    let before = sb.get(&format!("/Users/{id}")).await.body;
    let raw = |body: &'static str| {
        let sb = &sb;
        async move {
            let r = sb.http.post(format!("{}/Users", sb.base)).bearer_auth(TOKEN).body(body).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let (s, b) = raw("{\"schemas\": [\"urn:ietf:params:scim:schemas:core:2.0:User\"],\n \"userName\": }").await;
    assert_eq!(s, 400);
    assert_eq!(b["scimType"], json!("invalidSyntax"));
    assert!(b["detail"].as_str().unwrap().contains("line 2, column 14"), "{b}");
    let (s, b) = raw("").await;
    assert_eq!((s, b["scimType"].as_str()), (400, Some("invalidSyntax")));
    let cases = [
        (json!({"schemas": [USER], "userName": 42, "displayName": "X"}), "userName", "invalidValue"),
        (
            json!({"schemas": [USER], "userName": "x@a", "displayName": "X", "nickname": "n"}),
            "nickname",
            "invalidSyntax",
        ),
        (
            json!({"schemas": [USER], "userName": "x@a", "displayName": "X", "emails": [{"value": "x@a", "type": 3}]}),
            "emails[0].type",
            "invalidValue",
        ),
        (json!({"schemas": ["urn:example:Nope"], "userName": "x@a"}), "urn:example:Nope", "invalidSyntax"),
        (json!(["not", "an", "object"]), "object", "invalidSyntax"),
    ];
    for (body, want, scim_type) in cases {
        let a = sb.post("/Users", &body).await;
        assert_eq!(a.status, 400, "{body}");
        assert_eq!(a.body["scimType"], json!(scim_type), "{body}: {}", a.body);
        assert!(a.body["detail"].as_str().unwrap().contains(want), "{body}: {}", a.body);
    }
    let big = json!({"schemas": [USER], "userName": "big@a", "displayName": "x".repeat(3000)});
    let a = sb.post("/Users", &big).await;
    assert_eq!(a.status, 413);
    assert_eq!(a.body["status"], json!("413"));
    let a = sb.get(&format!("/Users?{}", filter("userName eq"))).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["scimType"], json!("invalidFilter"));
    assert!(a.body["detail"].as_str().unwrap().contains("position 11"));
    let a = sb.get(&format!("/Users?{}", filter("((((((userName pr))))))"))).await;
    assert_eq!(a.body["scimType"], json!("invalidFilter"));
    assert!(a.body["detail"].as_str().unwrap().contains("nested deeper"));
    let a = sb.get(&format!("/Users?{}", filter(r#"phoneNumbers eq "1""#))).await;
    assert_eq!(a.body["scimType"], json!("invalidFilter"));
    let a = sb.get("/Users?startIndex=abc").await;
    assert_eq!((a.status, a.body["scimType"].as_str()), (400, Some("invalidValue")));
    // A PATCH whose second operation fails leaves the user exactly as it was.
    let a = sb
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "path": "displayName", "value": "Changed"}, {"op": "replace", "path": "userType", "value": "boss"}]),
        )
        .await;
    assert_eq!(a.status, 400);
    assert!(a.body["detail"].as_str().unwrap().contains("Operations[1]"), "{}", a.body);
    assert_eq!(sb.get(&format!("/Users/{id}")).await.body, before);
    assert_eq!(sb.get("/Users").await.body["totalResults"], json!(1), "no failed POST left anything");
    let a = sb.send("PATCH", "/Users", None, &[]).await;
    assert_eq!(a.status, 405);
    let a = sb.get("/Nope").await;
    assert_eq!((a.status, a.body["status"].as_str()), (404, Some("404")));
}

#[tokio::test]
async fn count_is_capped_and_paging_is_one_based() {
    let sb = spawn(&["--max-results", "3"]);
    for i in 0..5 {
        sb.create_user(&format!("c{i}@acme.example"), &format!("C{i}")).await;
    }
    let a = sb.get("/Users?count=100").await.body;
    assert_eq!((a["totalResults"].as_u64(), a["itemsPerPage"].as_u64()), (Some(5), Some(3)));
    let a = sb.get("/Users?count=0").await.body;
    assert_eq!((a["totalResults"].as_u64(), a["itemsPerPage"].as_u64()), (Some(5), Some(0)));
    let a = sb.get("/Users?startIndex=0&count=1").await.body;
    assert_eq!(a["startIndex"], json!(1), "startIndex below 1 is read as 1");
    assert_eq!(a["Resources"][0]["userName"], json!("c0@acme.example"));
    let a = sb.get("/Users?startIndex=5&count=3").await.body;
    assert_eq!(a["Resources"][0]["userName"], json!("c4@acme.example"));
    let a = sb.get("/Users?startIndex=9").await.body;
    assert_eq!(a["itemsPerPage"], json!(0));
    let spc = sb.get("/ServiceProviderConfig").await.body;
    assert_eq!(spc["filter"]["maxResults"], json!(3));
}

#[tokio::test]
async fn sort_attributes_and_search() {
    let sb = spawn(&[]);
    for (n, t) in [("b@acme.example", "Zed"), ("a@acme.example", "Amy"), ("c@acme.example", "mia")] {
        sb.post("/Users", &json!({"schemas": [USER], "userName": n, "displayName": t, "title": t})).await;
    }
    let names = |v: &Value| -> Vec<String> {
        v["Resources"].as_array().unwrap().iter().map(|u| u["userName"].as_str().unwrap().to_string()).collect()
    };
    let a = sb.get("/Users?sortBy=userName").await.body;
    assert_eq!(names(&a), ["a@acme.example", "b@acme.example", "c@acme.example"]);
    let a = sb.get("/Users?sortBy=displayName&sortOrder=descending").await.body;
    assert_eq!(names(&a), ["b@acme.example", "c@acme.example", "a@acme.example"], "case-insensitive order");
    let a = sb.get("/Users?attributes=userName,name.givenName&count=1").await.body;
    let u = a["Resources"][0].as_object().unwrap();
    let mut keys: Vec<&str> = u.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["id", "schemas", "userName"]);
    let a = sb.get("/Users?excludedAttributes=title,meta&count=1").await.body;
    assert!(a["Resources"][0].get("title").is_none() && a["Resources"][0].get("meta").is_none());
    assert!(a["Resources"][0].get("displayName").is_some());
    let s = sb
        .post(
            "/Users/.search",
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "title co \"m\"",
                    "sortBy": "userName", "attributes": ["userName"], "startIndex": 1, "count": 10}),
        )
        .await;
    assert_eq!(s.status, 200, "{}", s.body);
    assert_eq!(names(&s.body), ["a@acme.example", "c@acme.example"]);
    sb.post("/Groups", &json!({"schemas": [GROUP], "displayName": "Amy's team"})).await;
    let all = sb
        .post("/.search", &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "displayName sw \"am\""}))
        .await;
    assert_eq!(all.body["totalResults"], json!(2), "one user and one group: {}", all.body);
}

#[tokio::test]
async fn bulk_with_bulk_id_references_and_fail_on_errors() {
    let sb = spawn(&[]);
    let a = sb
        .post(
            "/Bulk",
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "failOnErrors": 1, "Operations": [
                {"method": "POST", "path": "/Users", "bulkId": "u1", "data": user("bulk1@acme.example")},
                {"method": "POST", "path": "/Groups", "bulkId": "g1", "data": {"schemas": [GROUP], "displayName": "Bulkers", "members": [{"value": "bulkId:u1"}]}},
                {"method": "PATCH", "path": "/Users/bulkId:u1", "data": {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": "Bulked"}]}},
                {"method": "POST", "path": "/Users", "bulkId": "dup", "data": user("bulk1@acme.example")},
                {"method": "POST", "path": "/Users", "bulkId": "never", "data": user("never@acme.example")}
            ]}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let ops = a.body["Operations"].as_array().unwrap();
    assert_eq!(ops.len(), 4, "stops after the first error");
    assert_eq!(ops[0]["status"], json!("201"));
    assert_eq!(ops[2]["status"], json!("200"));
    assert_eq!(ops[3]["status"], json!("409"));
    assert_eq!(ops[3]["response"]["scimType"], json!("uniqueness"));
    let uid = ops[0]["location"].as_str().unwrap().rsplit('/').next().unwrap();
    let g = sb.get(&format!("/Groups?{}", filter(r#"displayName eq "Bulkers""#))).await.body;
    assert_eq!(g["Resources"][0]["members"][0]["value"], json!(uid));
    assert_eq!(sb.get(&format!("/Users/{uid}")).await.body["title"], json!("Bulked"));
    assert_eq!(
        sb.get(&format!("/Users?{}", filter(r#"userName eq "never@acme.example""#))).await.body["totalResults"],
        json!(0)
    );
}

#[tokio::test]
async fn deleting_a_user_removes_it_from_its_teams() {
    let sb = spawn(&[]);
    let u = sb.create_user("gone@acme.example", "Gone").await;
    let g = sb.post("/Groups", &json!({"schemas": [GROUP], "displayName": "T", "members": [{"value": u}]})).await.body;
    assert_eq!(sb.delete(&format!("/Users/{u}")).await.status, 204);
    let g2 = sb.get(&format!("/Groups/{}", g["id"].as_str().unwrap())).await.body;
    assert!(g2.get("members").is_none(), "{g2}");
    assert_ne!(g2["meta"]["version"], g["meta"]["version"]);
}

#[tokio::test]
async fn discovery_publishes_what_is_stored() {
    let sb = spawn(&[]);
    let rt = sb.get("/ResourceTypes").await.body;
    let ids: Vec<&str> = rt["Resources"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["User", "Group"]);
    assert_eq!(sb.get("/ResourceTypes/User").await.body["schemaExtensions"], json!([]));
    let schemas = sb.get("/Schemas").await.body;
    assert_eq!(schemas["totalResults"], json!(2), "monday.com: no enterprise extension");
    let g = spawn(&["--dialect", "generic"]);
    let schemas = g.get("/Schemas").await.body;
    assert_eq!(schemas["totalResults"], json!(3));
    assert_eq!(g.get(&format!("/Schemas/{ENTERPRISE}")).await.status, 200);
    assert_eq!(g.get("/ResourceTypes/User").await.body["schemaExtensions"][0]["schema"], json!(ENTERPRISE));
    let spc = g.get("/ServiceProviderConfig").await.body;
    assert_eq!(spc["patch"]["supported"], json!(true));
    assert_eq!(spc["etag"]["supported"], json!(true));
    assert_eq!(spc["authenticationSchemes"][0]["type"], json!("oauthbearertoken"));
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let sb = spawn(&["--rate-limit", "5"]);
    let mut statuses = vec![];
    for _ in 0..8 {
        let a = sb.get("/Users").await;
        if a.status == 429 {
            let secs: u64 = a.header("retry-after").unwrap().parse().unwrap();
            assert!((1..=60).contains(&secs));
            assert_eq!(a.body["status"], json!("429"));
        }
        statuses.push(a.status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
}

async fn fault_run(seed: &str) -> (Vec<String>, Value) {
    let sb = spawn(&["--error-rate", "0.3", "--drop-rate", "0.2", "--fault-seed", seed]);
    let mut outcomes = vec![];
    for i in 0..40 {
        let r = sb
            .http
            .post(format!("{}/Users", sb.base))
            .bearer_auth(TOKEN)
            .header("Content-Type", "application/scim+json")
            .body(user(&format!("f{i}@acme.example")).to_string())
            .send()
            .await;
        outcomes.push(match r {
            Ok(r) => r.status().as_u16().to_string(),
            Err(_) => "dropped".into(),
        });
    }
    // Read the counters without faults in the way: they are not behind the knobs' dice only
    // if lucky, so retry until an answer comes.
    let mut stats = Value::Null;
    for _ in 0..50 {
        if let Ok(r) = sb
            .http
            .get(format!("{}/_sandbox/stats", sb.base.trim_end_matches("/scim/v2")))
            .bearer_auth(TOKEN)
            .send()
            .await
        {
            if r.status() == 200 {
                stats = r.json().await.unwrap();
                break;
            }
        }
    }
    (outcomes, stats)
}

#[tokio::test]
async fn error_and_drop_knobs_are_seeded_and_deterministic() {
    let (a, stats) = fault_run("42").await;
    let (b, _) = fault_run("42").await;
    let (c, _) = fault_run("43").await;
    assert_eq!(a, b, "same seed, same faults");
    assert_ne!(a, c, "another seed, other faults");
    for want in ["201", "dropped"] {
        assert!(a.contains(&want.to_string()), "{a:?}");
    }
    assert!(a.iter().any(|s| s == "500" || s == "503"), "{a:?}");
    // Dropped-after requests were carried out although no answer came.
    let created = a.iter().filter(|s| *s == "201").count() as u64;
    assert!(stats["users"].as_u64().unwrap() > created, "{stats} vs {created} answered creates");
    assert!(stats["dropped"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn latency_knob_delays_answers() {
    let sb = spawn(&["--latency-ms", "150"]);
    let t = std::time::Instant::now();
    sb.get("/Users").await;
    // A lower bound only: the knob must add at least what it says.
    assert!(t.elapsed() >= std::time::Duration::from_millis(150));
}

#[tokio::test]
async fn a_password_is_taken_but_never_returned() {
    let sb = spawn(&["--dialect", "generic"]);
    let a = sb
        .post("/Users", &json!({"schemas": [USER], "userName": "pw@acme.example", "password": "hunter2-secret"}))
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let id = a.body["id"].as_str().unwrap().to_string();
    let answers = [
        a.body.clone(),
        sb.get(&format!("/Users/{id}")).await.body,
        sb.get(&format!("/Users/{id}?attributes=password,userName")).await.body,
        sb.get("/Users").await.body,
        sb.patch(&format!("/Users/{id}"), json!([{"op": "replace", "path": "title", "value": "T"}])).await.body,
        sb.put(
            &format!("/Users/{id}"),
            &json!({"schemas": [USER], "userName": "pw@acme.example", "password": "hunter2-secret"}),
        )
        .await
        .body,
    ];
    for body in answers {
        assert!(body["id"] == json!(id) || body["totalResults"] == json!(1), "{body}");
        assert!(!body.to_string().contains("hunter2"), "{body}");
    }
}

/// A user's read-only `groups` is in a list answer exactly when the projection keeps it (the
/// sandbox skips building it otherwise; the answer must not change).
#[tokio::test]
async fn users_groups_follow_the_projection_in_lists() {
    let sb = spawn(&[]);
    let u = sb.post("/Users", &user("g@acme.example")).await.body;
    let id = u["id"].as_str().unwrap().to_string();
    let g = sb.post("/Groups", &json!({"schemas": [GROUP], "displayName": "Team", "members": [{"value": id}]})).await;
    assert_eq!(g.status, 201, "{}", g.body);
    let gid = g.body["id"].clone();
    let groups_of = |v: &Value| v["Resources"][0].get("groups").cloned();
    let all = groups_of(&sb.get("/Users").await.body).expect("groups by default");
    assert_eq!((&all[0]["value"], &all[0]["display"]), (&gid, &json!("Team")));
    assert!(groups_of(&sb.get("/Users?excludedAttributes=groups,meta").await.body).is_none());
    let core = "urn:ietf:params:scim:schemas:core:2.0:User:groups";
    assert!(groups_of(&sb.get(&format!("/Users?excludedAttributes={core}")).await.body).is_none());
    assert_eq!(groups_of(&sb.get("/Users?excludedAttributes=title").await.body), Some(all.clone()));
    assert_eq!(groups_of(&sb.get("/Users?attributes=groups").await.body).unwrap()[0]["value"], gid);
    assert_eq!(groups_of(&sb.get("/Users?attributes=groups.value").await.body).unwrap()[0]["value"], gid);
    assert!(groups_of(&sb.get("/Users?attributes=userName").await.body).is_none());
    let s = sb
        .post(
            "/Users/.search",
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "excludedAttributes": ["groups"]}),
        )
        .await;
    assert_eq!(s.status, 200, "{}", s.body);
    assert!(groups_of(&s.body).is_none());
}

/// A user's teams by name, sorted (none: empty).
fn team_names(user: Value) -> Vec<String> {
    let names = user["groups"].as_array().map(|g| g.iter().filter_map(|x| x["display"].as_str()).map(str::to_string));
    let mut names: Vec<String> = names.map(Iterator::collect).unwrap_or_default();
    names.sort();
    names
}

/// A team's member ids, in order (none: empty).
fn member_values(group: Value) -> Vec<Value> {
    group["members"].as_array().map(|m| m.iter().map(|x| x["value"].clone()).collect()).unwrap_or_default()
}

#[tokio::test]
async fn group_patches_keep_memberships_names_and_rows_in_step() {
    let dir = tempdir("group-diff");
    let db = db_in(&dir);
    let mut sb = spawn(&["--db", &db]);
    let a = sb.create_user("a@acme.example", "A").await;
    let b = sb.create_user("b@acme.example", "B").await;
    let c = sb.create_user("c@acme.example", "C").await;
    let g = sb
        .post("/Groups", &json!({"schemas": [GROUP], "displayName": "Old", "members": [{"value": a}, {"value": b}]}))
        .await;
    let gid = g.body["id"].as_str().unwrap().to_string();
    // One PATCH: a stays, b leaves, c joins, and the team is renamed.
    let r = sb
        .patch(
            &format!("/Groups/{gid}"),
            json!([
                {"op": "remove", "path": format!("members[value eq \"{b}\"]")},
                {"op": "add", "path": "members", "value": [{"value": c}]},
                {"op": "replace", "path": "displayName", "value": "New"}
            ]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(team_names(sb.get(&format!("/Users/{a}")).await.body), ["New"]);
    assert_eq!(team_names(sb.get(&format!("/Users/{b}")).await.body), Vec::<String>::new(), "b left the team");
    assert_eq!(team_names(sb.get(&format!("/Users/{c}")).await.body), ["New"]);
    let by = |name: &str| format!("/Groups?{}", filter(&format!("displayName eq \"{name}\"")));
    assert_eq!(sb.get(&by("Old")).await.body["totalResults"], json!(0), "the old name is free");
    assert_eq!(sb.get(&by("new")).await.body["totalResults"], json!(1));
    assert_eq!(member_values(sb.get(&format!("/Groups/{gid}")).await.body), [json!(a), json!(c)]);
    // Members are resolved (type, display, $ref) when asked for, and not built when left out.
    let only = sb.get(&format!("/Groups/{gid}?attributes=members")).await.body;
    assert_eq!(only["members"][0]["display"], json!("A"), "{only}");
    assert_eq!(only["members"][0]["type"], json!("User"));
    assert!(only["members"][1]["$ref"].as_str().unwrap().ends_with(&format!("/Users/{c}")), "{only}");
    let listed = sb.get("/Groups?attributes=displayName").await.body;
    assert_eq!(listed["Resources"][0]["displayName"], json!("New"));
    assert!(listed["Resources"][0].get("members").is_none(), "{listed}");
    // A member's new name shows in the team.
    let r = sb.patch(&format!("/Users/{a}"), json!([{"op": "replace", "path": "displayName", "value": "A2"}])).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(sb.get(&format!("/Groups/{gid}")).await.body["members"][0]["display"], json!("A2"));
    // Deleting a user who left does not touch the team.
    assert_eq!(sb.delete(&format!("/Users/{b}")).await.status, 204);
    assert_eq!(member_values(sb.get(&format!("/Groups/{gid}")).await.body), [json!(a), json!(c)]);
    sb.kill();
    // The patched team as written to the database reads back the same.
    sb = spawn(&["--db", &db]);
    assert_eq!(sb.get(&format!("/Users/{b}")).await.status, 404);
    assert_eq!(member_values(sb.get(&format!("/Groups/{gid}")).await.body), [json!(a), json!(c)]);
    assert_eq!(sb.get(&by("New")).await.body["totalResults"], json!(1));
    assert_eq!(team_names(sb.get(&format!("/Users/{c}")).await.body), ["New"], "memberships rebuilt on start");
    // Deleting a member takes it out of the team.
    assert_eq!(sb.delete(&format!("/Users/{c}")).await.status, 204);
    assert_eq!(member_values(sb.get(&format!("/Groups/{gid}")).await.body), [json!(a)]);
}

#[tokio::test]
async fn adding_members_by_id_matches_the_general_patch() {
    // The sandbox adds members by id without rewriting the team; the answer must be the one
    // the general PATCH path gives for the same change (here asked through a path-less add).
    let dir = tempdir("member-add");
    let db = db_in(&dir);
    let mut sb = spawn(&["--db", &db]);
    let a = sb.create_user("a@acme.example", "A").await;
    let b = sb.create_user("b@acme.example", "B").await;
    let c = sb.create_user("c@acme.example", "C").await;
    let team = |name: &str| json!({"schemas": [GROUP], "displayName": name, "members": [{"value": a}]});
    let fast = sb.post("/Groups", &team("Fast")).await.body["id"].as_str().unwrap().to_string();
    let general = sb.post("/Groups", &team("General")).await.body["id"].as_str().unwrap().to_string();
    let nested = sb.post("/Groups", &team("Nested")).await.body["id"].as_str().unwrap().to_string();
    // a is in already, c twice, a team and an id nobody has.
    let adds =
        json!([{"value": a}, {"value": b}, {"value": c}, {"value": c}, {"value": nested}, {"value": "no-such-id"}]);
    let r1 = sb.patch(&format!("/Groups/{fast}"), json!([{"op": "add", "path": "members", "value": adds}])).await;
    let r2 = sb.patch(&format!("/Groups/{general}"), json!([{"op": "add", "value": {"members": adds}}])).await;
    assert_eq!((r1.status, r2.status), (200, 200), "{} {}", r1.body, r2.body);
    let strip = |mut v: Value| {
        let o = v.as_object_mut().unwrap();
        for k in ["id", "displayName", "meta", "internalId"] {
            o.remove(k);
        }
        v
    };
    let got = |id: &str| {
        let sb = &sb;
        let id = id.to_string();
        async move { sb.get(&format!("/Groups/{id}")).await }
    };
    let (g1, g2) = (got(&fast).await, got(&general).await);
    let members = member_values(g1.body.clone());
    assert_eq!(members, [json!(a), json!(b), json!(c), json!(nested), json!("no-such-id")]);
    assert_eq!(g1.body["members"][1]["display"], json!("B"));
    assert_eq!(g1.body["members"][3]["type"], json!("Group"));
    assert_eq!(strip(g1.body.clone()), strip(g2.body.clone()), "same members, types, names and $refs");
    assert_eq!(r1.header("etag"), Some("W/\"2\"".into()));
    assert_eq!(r1.header("etag"), r2.header("etag"));
    // The users see their new teams; an add of members already in changes nothing.
    assert_eq!(team_names(sb.get(&format!("/Users/{b}")).await.body), ["Fast", "General"]);
    let again =
        sb.patch(&format!("/Groups/{fast}"), json!([{"op": "add", "path": "members", "value": [{"value": b}]}])).await;
    assert_eq!(again.header("etag"), Some("W/\"2\"".into()), "no change, no new version");
    // If-Match holds as on any write; the answer leaves the members out when asked.
    let stale = sb
        .send(
            "PATCH",
            &format!("/Groups/{fast}"),
            Some(&json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": "x"}]}]})),
            &[("If-Match", "W/\"1\"")],
        )
        .await;
    assert_eq!(stale.status, 412, "{}", stale.body);
    let lean = sb
        .send(
            "PATCH",
            &format!("/Groups/{fast}?excludedAttributes=members"),
            Some(&json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": "late"}]}]})),
            &[],
        )
        .await;
    assert_eq!(lean.status, 200);
    assert!(lean.body.get("members").is_none(), "{}", lean.body);
    assert_eq!(lean.body["meta"]["version"], json!("W/\"3\""));
    // Written through: after a kill, the team reads back the same.
    let before = got(&fast).await.body;
    let old_base = sb.base.clone();
    sb.kill();
    let sb = spawn(&["--db", &db]);
    let after = sb.get(&format!("/Groups/{fast}")).await.body;
    assert_eq!(after.to_string().replace(&sb.base, &old_base), before.to_string());
    assert_eq!(team_names(sb.get(&format!("/Users/{c}")).await.body), ["Fast", "General"]);
}

/// The token bucket per second: its burst, then 429 with or without Retry-After, and the rate
/// headers on every answer when asked.
#[tokio::test]
async fn the_per_second_limit_tells_its_quota_and_may_keep_quiet_on_retry_after() {
    let sb = spawn(&["--rate-per-second", "2", "--rate-burst", "3", "--rate-headers"]);
    let mut statuses = vec![];
    for _ in 0..4 {
        let a = sb.get("/Users").await;
        assert_eq!(a.header("ratelimit-policy").as_deref(), Some("3;w=1.500"), "3 per 1.5 s");
        assert_eq!(a.header("x-ratelimit-limit").as_deref(), Some("3"));
        assert!(a.header("ratelimit-remaining").is_some() && a.header("ratelimit-reset").is_some());
        if a.status == 429 {
            assert_eq!(a.header("retry-after").as_deref(), Some("1"));
            assert_eq!(a.header("ratelimit-remaining").as_deref(), Some("0"));
        }
        statuses.push(a.status);
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    let quiet = spawn(&["--rate-per-second", "1", "--no-retry-after"]);
    let (first, second) = (quiet.get("/Users").await, quiet.get("/Users").await);
    assert_eq!((first.status, second.status), (200, 429));
    assert_eq!(second.header("retry-after"), None, "a 429 that says nothing of when to come back");
    assert_eq!(second.header("ratelimit-limit"), None, "no rate headers unless asked");
}

/// Many accounts from one process: each its own base URL, store and rate limit, the same
/// token; more added while it runs; tenure connects to one as to any target.
#[tokio::test]
async fn many_accounts_each_with_its_own_base_url_store_and_limit() {
    let sb = spawn(&["--accounts", "3", "--rate-per-second", "100", "--rate-burst", "2"]);
    let root = sb.base.trim_end_matches("/scim/v2").to_string();
    assert!(sb.stdout_lines.iter().any(|l| l.contains("also serving 3 accounts")), "{:?}", sb.stdout_lines);
    let at = |path: String| {
        let (http, token, url) = (sb.http.clone(), sb.token.clone(), format!("{root}{path}"));
        async move {
            let r = http.get(url).bearer_auth(&token).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let listed = at("/_sandbox/accounts".into()).await.1;
    let names: Vec<&str> = listed["accounts"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["1", "2", "3"]);

    let made = sb
        .http
        .post(format!("{root}/a/2/scim/v2/Users"))
        .bearer_auth(&sb.token)
        .json(&user("two@acme.example"))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let made: Value = made.json().await.unwrap();
    let location = made["meta"]["location"].as_str().unwrap();
    assert!(location.starts_with(&format!("{root}/a/2/scim/v2/Users/")), "{location}");
    assert_eq!(at("/a/2/scim/v2/Users".into()).await.1["totalResults"], 1);
    assert_eq!(at("/a/1/scim/v2/Users".into()).await.1["totalResults"], 0, "each account its own store");
    assert_eq!(sb.get("/Users").await.body["totalResults"], 0, "the sandbox's own account too");
    assert_eq!(at("/a/nope/scim/v2/Users".into()).await.0, 404);
    for path in ["/a/1/scim/v2/Users", "/a/nope/scim/v2/Users"] {
        let stranger = sb.http.get(format!("{root}{path}")).bearer_auth("not-the-token").send().await.unwrap();
        assert_eq!(stranger.status(), 401, "{path}: no account told to a stranger");
    }
    // The rest of the path reaches the account as sent, decoded once, as the sandbox's own.
    for rest in ["/scim/v2/Users/no%20such", "/scim/v2/Users/x%3Fy", "/scim/v2/Users/a%2Fb"] {
        // Under each account's limit (a burst of 2, 100 a second).
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let own = sb.http.get(format!("{root}{rest}")).bearer_auth(&sb.token).send().await.unwrap().status();
        assert_eq!(at(format!("/a/1{rest}")).await.0, own.as_u16(), "{rest}");
        assert_eq!(own, 404, "{rest}");
    }

    // Each account its own limit: the burst of 2 is spent on account 3 alone.
    let statuses: Vec<u16> = {
        let mut s = vec![];
        for _ in 0..3 {
            s.push(at("/a/3/scim/v2/Users".into()).await.0);
        }
        s
    };
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert_eq!(at("/a/1/_sandbox/stats".into()).await.1["rateLimited"], 0);
    assert!(at("/a/3/_sandbox/stats".into()).await.1["rateLimited"].as_u64().unwrap() >= 1);

    // Added while it runs: with the token only, with a name that can be a path, once.
    let add = |name: &str, token: &str| {
        let req = sb.http.post(format!("{root}/_sandbox/accounts")).bearer_auth(token).json(&json!({"name": name}));
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    assert_eq!(add("tenant-x", "not-the-token").await.0, 401);
    assert_eq!(add("no/slash", &sb.token).await.0, 400);
    let (status, body) = add("tenant-x", &sb.token).await;
    assert_eq!((status, body["url"].as_str().unwrap()), (201, format!("{root}/a/tenant-x/scim/v2").as_str()));
    assert_eq!(add("tenant-x", &sb.token).await.0, 400, "a name once");

    let dir = tempdir("sandbox-accounts");
    let token = dir.join("token");
    std::fs::write(&token, &sb.token).unwrap();
    init_store(&dir, None);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("--data-dir")
        .arg(&dir)
        .env_remove("TENURE_DATABASE_URL")
        .args(["connection", "add", "--name", "Tenant X", "--url", &format!("{root}/a/tenant-x/scim/v2")])
        .args(["--token-file", token.to_str().unwrap()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("connection works"), "{said}");
}
