//! A bearer check reads its token with its maker, and any change, made through the same store
//! or by another process (a second `Store` on the same file), is seen by the very next check.

use store::{Store, TokenRecord};

fn token(id: &str, maker: Option<&str>) -> TokenRecord {
    TokenRecord {
        id: id.into(),
        name: format!("script {id}"),
        role: "editor".into(),
        connection: None,
        secret_hash: "h".into(),
        created_at: "2026-01-01T00:00:00Z".into(),
        created_by: None,
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
        maker: maker.map(str::to_string),
        read_only: false,
    }
}

#[tokio::test]
async fn a_bearer_check_sees_every_change_at_once() {
    let dir = std::env::temp_dir().join(format!("tenure-token-checks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let here = Store::open_in(&dir).await.unwrap();
    let other = Store::open_in(&dir).await.unwrap();
    here.add_user("ed", "editor", "x", false).await.unwrap();
    here.add_token(&token("t1", Some("ed"))).await.unwrap();
    here.add_token(&token("t2", None)).await.unwrap();

    let first = here.token_and_maker("t1").await.unwrap().expect("t1 exists");
    assert_eq!(first.maker.as_ref().map(|m| m.role.as_str()), Some("editor"));
    assert_eq!(here.token_and_maker("nope").await.unwrap(), None);

    // Through this store: seen by the next check.
    assert!(here.set_user_role("ed", "viewer").await.unwrap());
    let after = here.token_and_maker("t1").await.unwrap().unwrap();
    assert_eq!(after.maker.as_ref().map(|m| m.role.as_str()), Some("viewer"), "a role change is seen at once");
    assert!(here.set_user_disabled("ed", true).await.unwrap());
    assert!(here.token_and_maker("t1").await.unwrap().unwrap().maker.unwrap().disabled);
    assert!(here.token_and_maker("t2").await.unwrap().unwrap().token.revoked_at.is_none());
    assert!(here.revoke_token("t2").await.unwrap());
    assert!(here.token_and_maker("t2").await.unwrap().unwrap().token.revoked_at.is_some(), "revoked at once");

    // Through another process: seen at once too.
    here.add_token(&token("t3", None)).await.unwrap();
    assert!(here.token_and_maker("t3").await.unwrap().unwrap().token.revoked_at.is_none());
    assert!(other.revoke_token("t3").await.unwrap());
    assert!(
        here.token_and_maker("t3").await.unwrap().unwrap().token.revoked_at.is_some(),
        "another process's revocation holds for the next check"
    );
    assert!(other.set_user_role("ed", "admin").await.unwrap());
    assert_eq!(here.token_and_maker("t1").await.unwrap().unwrap().maker.unwrap().role, "admin");
    here.close().await;
    other.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
