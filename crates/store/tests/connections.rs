//! The connection store on SQLite (a temporary file) and, when TENURE_TEST_DATABASE_URL is
//! set, on PostgreSQL: the same tests, the same code path.

mod common;

use store::{MasterKey, NewConnection, Secret, Store, StoreError};

fn conn(name: &str) -> NewConnection {
    NewConnection {
        name: name.into(),
        base_url: "https://acme.monday.com/scim/v2/".into(),
        dialect: "monday".into(),
        insecure_http: false,
        allow_private: false,
        rate_limit_per_second: if name.ends_with('1') { Some(2.5) } else { None },
    }
}

async fn exercise(store: &Store) {
    let key = MasterKey::from_bytes([42; 32]);
    let token = Secret::new("scim-token-SECRET-0001");
    assert_eq!(store.next_connection_name().await.unwrap(), "Connection-Bearer Token-1");
    let a = store.add_connection(&conn("Connection-Bearer Token-1"), &token, &key).await.unwrap();
    assert_eq!(a.token_hint, "0001");
    assert_eq!(a.rate_limit_per_second, Some(2.5));
    assert_eq!(key.open(&a.token, &a.id).unwrap(), token);
    assert_eq!(store.next_connection_name().await.unwrap(), "Connection-Bearer Token-2");
    let dup = store.add_connection(&conn("Connection-Bearer Token-1"), &token, &key).await.unwrap_err();
    assert!(matches!(dup, StoreError::NameTaken(_)), "{dup}");
    store.add_connection(&conn("Connection-Bearer Token-2"), &Secret::new("other-token-9999"), &key).await.unwrap();
    assert_eq!(store.next_connection_name().await.unwrap(), "Connection-Bearer Token-3");
    let list = store.connections().await.unwrap();
    assert_eq!(list.len(), 2);

    let rotated =
        store.replace_token("Connection-Bearer Token-1", &Secret::new("scim-token-NEW-0002"), &key).await.unwrap();
    assert_eq!(rotated.token_hint, "0002");
    assert_eq!(key.open(&rotated.token, &rotated.id).unwrap().expose(), "scim-token-NEW-0002");
    assert_ne!(rotated.token, a.token);
    // A sealed token copied onto another row does not open there.
    let other = store.connection("Connection-Bearer Token-2").await.unwrap().unwrap();
    assert!(key.open(&rotated.token, &other.id).is_err());

    // Paused by a person, resumed; links counted in the store.
    assert!(store.set_connection_paused("Connection-Bearer Token-2", Some("user:ann")).await.unwrap());
    let (_, by) = store.connection("Connection-Bearer Token-2").await.unwrap().unwrap().paused.unwrap();
    assert_eq!(by, "user:ann");
    assert!(store.set_connection_paused("Connection-Bearer Token-2", None).await.unwrap());
    assert_eq!(store.connection("Connection-Bearer Token-2").await.unwrap().unwrap().paused, None);
    assert!(!store.set_connection_paused("nope", Some("x")).await.unwrap());
    let link = |w: &str| store::Link {
        connection: "Connection-Bearer Token-2".into(),
        worker_id: w.into(),
        target_id: format!("t-{w}"),
        user_name: format!("{w}@acme.example"),
        origin: "created".into(),
        linked_at: "2026-01-01T00:00:00Z".into(),
    };
    let o = store::Outcomes { links: vec![link("1"), link("2")], ..Default::default() };
    store.record_outcomes(&o).await.unwrap();
    assert_eq!(store.link_count("Connection-Bearer Token-2").await.unwrap(), 2);
    assert_eq!(store.link_count("Connection-Bearer Token-1").await.unwrap(), 0);

    assert!(store.remove_connection("Connection-Bearer Token-2").await.unwrap());
    assert!(!store.remove_connection("Connection-Bearer Token-2").await.unwrap());
    assert!(matches!(store.replace_token("nope", &token, &key).await.unwrap_err(), StoreError::NotFound(_)));
    assert_eq!(store.next_connection_name().await.unwrap(), "Connection-Bearer Token-2");
}

#[tokio::test]
async fn connections_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("tenure-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open_in(&dir).await.unwrap();
    exercise(&store).await;
    store.close().await;
    // Everything is there after reopening; and no token is in any file, WAL included.
    let store = Store::open_in(&dir).await.unwrap();
    assert_eq!(store.connections().await.unwrap().len(), 1);
    store.close().await;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(15).any(|w| w == b"scim-token-NEW-"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn connections_on_postgres() {
    let Some((store, dropper)) = common::postgres("connections").await else { return };
    exercise(&store).await;
    store.close().await;
    dropper.drop_schema().await;
}

/// A node's renewal after the node left (its row removed) does not list it again; joining
/// adds it, and a renewal of a listed node keeps it listed.
async fn renewals_after_leaving(store: &Store) {
    let me = store::NodeRecord {
        id: "node-renewal-test".into(),
        host: "h".into(),
        pid: 1,
        version: "0".into(),
        started_ms: 0,
        seen_ms: 0,
        expires_ms: 0,
        address: None,
        stopping: false,
        scheduling: true,
    };
    let listed = |nodes: Vec<store::NodeRecord>| nodes.iter().any(|n| n.id == me.id);
    assert!(!store.renew_node(&me, 60_000).await.unwrap(), "not listed yet: nothing to renew");
    assert!(!listed(store.live_nodes().await.unwrap()));
    store.beat_node(&me, 60_000).await.unwrap();
    assert!(store.renew_node(&me, 60_000).await.unwrap());
    assert!(listed(store.live_nodes().await.unwrap()));
    store.remove_node(&me.id).await.unwrap();
    assert!(!store.renew_node(&me, 60_000).await.unwrap(), "a late renewal after leaving");
    assert!(!listed(store.live_nodes().await.unwrap()), "still gone");
}

#[tokio::test]
async fn node_renewals_on_sqlite_and_postgres() {
    let dir = std::env::temp_dir().join(format!("tenure-store-nodes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open_in(&dir).await.unwrap();
    renewals_after_leaving(&store).await;
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    if let Some((store, dropper)) = common::postgres("node_renewals").await {
        renewals_after_leaving(&store).await;
        store.close().await;
        dropper.drop_schema().await;
    }
}
