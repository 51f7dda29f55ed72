//! What the status, the metrics and the scheduler read with one query each, on SQLite and
//! (when TENURE_TEST_DATABASE_URL is set) PostgreSQL: every connection's counts and guard,
//! reviews filtered by state in the query, and the next pending HR event's moment.

mod common;

use store::{LetterState, MasterKey, NewConnection, ReviewState, Secret, Store};

fn conn(name: &str) -> NewConnection {
    NewConnection {
        name: name.into(),
        base_url: "https://acme.monday.com/scim/v2/".into(),
        dialect: "monday".into(),
        insecure_http: false,
        allow_private: false,
        rate_limit_per_second: None,
    }
}

fn request(worker: &str) -> store::ReviewRequest {
    (worker.into(), "leave".into(), format!("f-{worker}"), "[]".into())
}

async fn exercise(store: &Store) {
    let key = MasterKey::from_bytes([7; 32]);
    assert_eq!(store.connection_figures().await.unwrap(), vec![], "no connection, no rows");
    for n in ["A", "B"] {
        store.add_connection(&conn(n), &Secret::new("token-0001"), &key).await.unwrap();
    }
    // A: three reviews, one approved; two dead letters and one retried; two holds; the guard.
    store.sync_reviews("A", &[request("1"), request("2"), request("3")], None, "test").await.unwrap();
    let first = store.reviews(Some("A"), &[ReviewState::Pending]).await.unwrap()[0].id;
    store.decide_reviews(&[first], Some("A"), true, "rita", None).await.unwrap();
    let failed = |w: &str| (w.to_string(), format!("f{w}"), "[]".to_string(), "500".to_string());
    store.record_attempts("A", &[failed("7"), failed("8")], &[], 1).await.unwrap();
    store.record_attempts("A", &[failed("9")], &[], 3).await.unwrap();
    store.replace_holds("A", &[("4".into(), "no e-mail".into()), ("5".into(), "no e-mail".into())]).await.unwrap();
    store.trip_guard("A", store::GuardKind::Deprovision, "3 of 10 would go", 3, "the scheduler").await.unwrap();
    let v = store.save_config("x = 1").await.unwrap();

    let figures = store.connection_figures().await.unwrap();
    let a = &figures[0];
    assert_eq!((a.connection.as_str(), a.pending_reviews, a.dead_letters, a.held), ("A", 2, 2, 2));
    let g = a.guard.as_ref().expect("A's guard tripped");
    assert_eq!((g.why.as_str(), g.deactivations, g.by.as_str()), ("3 of 10 would go", 3, "the scheduler"));
    let b = &figures[1];
    assert_eq!((b.connection.as_str(), b.pending_reviews, b.dead_letters, b.held, &b.guard), ("B", 0, 0, 0, &None));
    assert!(figures.iter().all(|f| f.config_id.as_deref() == Some(v.id.as_str())));

    // Reviews by state, filtered in the query; every state reads back as written.
    let approved = store.reviews(Some("A"), &[ReviewState::Approved]).await.unwrap();
    assert_eq!(approved.iter().map(|r| (r.id, r.state)).collect::<Vec<_>>(), [(first, ReviewState::Approved)]);
    assert_eq!(store.reviews(None, &ReviewState::OPEN).await.unwrap().len(), 3);
    assert_eq!(store.reviews(Some("B"), &[]).await.unwrap(), vec![]);
    let letters = store.dead_letters(Some("A")).await.unwrap();
    let states: Vec<_> = letters.iter().map(|d| (d.worker_id.as_str(), d.state)).collect();
    assert_eq!(states, [("7", LetterState::Dead), ("8", LetterState::Dead), ("9", LetterState::Retrying)]);

    store.clear_guard("A").await.unwrap();
    assert_eq!(store.connection_figures().await.unwrap()[0].guard, None);

    assert_eq!(store.next_event_after(0).await.unwrap(), None, "no events yet");
    let event = |id: &str, at: i64, state: store::EventState| store::EventRecord {
        id: id.into(),
        load_id: "l1".into(),
        worker_id: id.into(),
        kind: "hire".into(),
        effective_at: at,
        body: "{}".into(),
        state,
        created_at: "2026-01-01T00:00:00Z".into(),
    };
    let w = store::LoadWrite {
        events: vec![
            event("e1", 100, store::EventState::Pending),
            event("e2", 200, store::EventState::Pending),
            event("e3", 150, store::EventState::Done),
        ],
        ..Default::default()
    };
    store.record_load(&w).await.unwrap();
    assert_eq!(store.next_event_after(0).await.unwrap(), Some(100));
    assert_eq!(store.next_event_after(100).await.unwrap(), Some(200), "after, not at; a done event is not waited for");
    assert_eq!(store.next_event_after(200).await.unwrap(), None);
}

#[tokio::test]
async fn status_reads_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("tenure-status-reads-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open_in(&dir).await.unwrap();
    exercise(&store).await;
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn status_reads_on_postgres() {
    let Some((store, dropper)) = common::postgres("status").await else { return };
    exercise(&store).await;
    store.close().await;
    dropper.drop_schema().await;
}
