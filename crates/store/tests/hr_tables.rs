//! The HR tables on SQLite and, when TENURE_TEST_DATABASE_URL is set, PostgreSQL: a load is
//! written whole or not at all; events are listed, superseded and moved on.

mod common;

use store::{EventQuery, EventRecord, HeldSettled, LoadRecord, LoadWrite, SnapshotRow, Store, StoreError};

fn load(id: &str) -> LoadRecord {
    LoadRecord {
        id: id.into(),
        source: "feed.csv".into(),
        checksum: format!("sum-{id}"),
        kind: "full".into(),
        loaded_at: format!("2026-06-0{}T00:00:00Z", id.len()),
        rows: 2,
        accepted: 1,
        quarantined: 1,
        events: 1,
        outcome: "accepted".into(),
        reason: None,
        uploaded_by: None,
        fields: None,
    }
}

fn event(id: &str, worker: &str, kind: &str, at: i64) -> EventRecord {
    EventRecord {
        id: id.into(),
        load_id: "l1".into(),
        worker_id: worker.into(),
        kind: kind.into(),
        effective_at: at,
        body: format!("{{\"id\":\"{id}\"}}"),
        state: store::EventState::Pending,
        created_at: "2026-06-01T00:00:00Z".into(),
    }
}

fn worker(id: &str, body: &str) -> SnapshotRow {
    SnapshotRow { worker_id: id.into(), body: body.into(), missing_since: None }
}

async fn exercise(store: &Store) {
    let first = LoadWrite {
        load: Some(load("l1")),
        upserts: vec![worker("w1", "{\"v\":1}")],
        supersede: vec![],
        events: vec![event("e1", "w1", "termination", 2_000), event("e2", "w1", "hire", 1_000)],
        quarantined: vec![(2, Some("w9".into()), "{\"row\":2}".into())],
        push_ids: vec!["p1".into()],
        supersede_loads: vec![],
        held: vec![("w9".into(), "row 2 quarantined".into())],
        held_settled: HeldSettled::All,
    };
    store.record_load(&first).await.unwrap();
    let held = store.hr_held().await.unwrap();
    assert_eq!((held.len(), held[0].0.as_str(), held[0].1.as_str()), (1, "w9", "row 2 quarantined"));

    // One id taken already: nothing of this load is written, the snapshot is untouched.
    let second = LoadWrite {
        load: Some(load("l22")),
        upserts: vec![worker("w1", "{\"v\":2}"), worker("w2", "{\"v\":1}")],
        supersede: vec![("w1".into(), "termination".into())],
        events: vec![event("e3", "w2", "hire", 500)],
        quarantined: vec![],
        push_ids: vec!["p2".into(), "p1".into()],
        supersede_loads: vec![],
        held: vec![],
        held_settled: HeldSettled::Workers(vec!["w9".into()]),
    };
    assert!(matches!(store.record_load(&second).await.unwrap_err(), StoreError::Duplicate(_)));
    assert_eq!(store.snapshot().await.unwrap(), vec![worker("w1", "{\"v\":1}")]);
    assert_eq!(store.loads().await.unwrap().len(), 1);
    assert_eq!(store.hr_held().await.unwrap().len(), 1, "a refused load changed the held list");
    let all = store.events(&EventQuery::default()).await.unwrap();
    assert_eq!(all.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), vec!["e2", "e1"], "ordered by moment");
    assert_eq!(store.seen_push_ids(&["p1".into(), "p2".into()]).await.unwrap(), vec!["p1".to_string()]);

    // Without the taken id it goes in, superseding w1's pending termination.
    let second =
        LoadWrite { push_ids: vec!["p2".into()], held_settled: HeldSettled::Workers(vec!["w1".into()]), ..second };
    store.record_load(&second).await.unwrap();
    assert_eq!(store.snapshot_of(&["w1".into()]).await.unwrap(), vec![worker("w1", "{\"v\":2}")]);
    assert_eq!(store.snapshot().await.unwrap().len(), 2);
    let pending = |w: &str| EventQuery {
        state: Some(store::EventState::Pending),
        worker_id: Some(w.into()),
        ..Default::default()
    };
    assert_eq!(
        store.events(&pending("w1")).await.unwrap().iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        vec!["e2"]
    );
    let due = EventQuery { state: Some(store::EventState::Pending), due_by: Some(999), ..Default::default() };
    assert_eq!(store.events(&due).await.unwrap().iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), vec!["e3"]);
    assert!(store.set_event_state("e3", store::EventState::Pending, store::EventState::Done).await.unwrap());
    assert!(
        !store.set_event_state("e3", store::EventState::Pending, store::EventState::Done).await.unwrap(),
        "only once"
    );
    assert!(store.events(&due).await.unwrap().is_empty());
    assert_eq!(store.quarantined("l1").await.unwrap(), vec![(2, Some("w9".to_string()), "{\"row\":2}".to_string())]);

    // Loads large enough to need several statements.
    let many = LoadWrite {
        load: Some(load("l333")),
        upserts: (0..1_234).map(|i| worker(&format!("m{i}"), "{}")).collect(),
        events: (0..1_234).map(|i| event(&format!("x{i}"), &format!("m{i}"), "hire", i)).collect(),
        ..LoadWrite::default()
    };
    store.record_load(&many).await.unwrap();
    assert_eq!(store.snapshot().await.unwrap().len(), 1_236);
    // Held through a refused load and one that settles nobody; held again by a full load, it
    // keeps its first moment; a load that takes a row of its worker settles it.
    assert_eq!(store.hr_held().await.unwrap().len(), 1, "settled by a load that took another worker");
    let since = store.hr_held().await.unwrap()[0].2.clone();
    let again = LoadWrite {
        load: Some(load("l4")),
        held: vec![("w9".into(), "rows 2, 5 quarantined".into()), ("w8".into(), "row 7 quarantined".into())],
        held_settled: HeldSettled::All,
        ..LoadWrite::default()
    };
    store.record_load(&again).await.unwrap();
    let held = store.hr_held().await.unwrap();
    assert_eq!(
        held.iter().map(|h| (h.0.as_str(), h.1.as_str())).collect::<Vec<_>>(),
        [("w8", "row 7 quarantined"), ("w9", "rows 2, 5 quarantined")]
    );
    assert_eq!(held[1].2, since);
    let settle = LoadWrite {
        load: Some(load("l5")),
        held_settled: HeldSettled::Workers(vec!["w9".into()]),
        ..LoadWrite::default()
    };
    store.record_load(&settle).await.unwrap();
    assert_eq!(store.hr_held().await.unwrap().iter().map(|h| h.0.as_str()).collect::<Vec<_>>(), ["w8"]);
    let full = LoadWrite { load: Some(load("l6")), held_settled: HeldSettled::All, ..LoadWrite::default() };
    store.record_load(&full).await.unwrap();
    assert!(store.hr_held().await.unwrap().is_empty(), "a full load with no holds settles all");
    let ids: Vec<String> = (0..1_234).map(|i| format!("m{i}")).collect();
    assert_eq!(store.snapshot_of(&ids).await.unwrap().len(), 1_234);

    // Read in bulk (chunks of 500 here: three round trips), the same rows in the same order
    // as row by row, each body decoded.
    let rows = store.snapshot().await.unwrap();
    let decoded = store.snapshot_decoded::<serde_json::Value>().await.unwrap();
    assert_eq!(
        decoded.iter().map(|d| d.0.clone()).collect::<Vec<_>>(),
        rows.iter().map(|r| r.worker_id.clone()).collect::<Vec<_>>()
    );
    for ((_, body), row) in decoded.iter().zip(&rows) {
        assert_eq!(*body, serde_json::from_str::<serde_json::Value>(&row.body).unwrap());
    }
    // A body that is not what it should be is named.
    let bad = LoadWrite { upserts: vec![worker("m5x", "{\"v\": 1")], ..LoadWrite::default() };
    store.record_load(&bad).await.unwrap();
    let e = store.snapshot_decoded::<serde_json::Value>().await.unwrap_err().to_string();
    assert!(e.contains("worker m5x"), "{e}");
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Strict {
        v: u32,
    }
    let bad = LoadWrite { upserts: vec![worker("m5x", "{\"v\": \"one\"}")], ..LoadWrite::default() };
    store.record_load(&bad).await.unwrap();
    let e = store.snapshot_decoded::<Strict>().await.unwrap_err().to_string();
    // m0's body is `{}`: the first, in worker id order, that lacks `v`.
    assert!(e.contains("worker m0:") && e.contains("missing field `v`"), "{e}");
    let bad = LoadWrite { upserts: vec![worker("m5x", "{}")], ..LoadWrite::default() };
    store.record_load(&bad).await.unwrap();

    // Links, read in chunks of 500 after the last worker id of the chunk before: each once,
    // in worker id order, only the connection's own.
    let link = |c: &str, i: usize| store::Link {
        connection: c.into(),
        worker_id: format!("w{i:04}"),
        target_id: format!("t{i}"),
        user_name: format!("user{i}@example.com"),
        origin: "created".into(),
        linked_at: "2026-06-01T00:00:00Z".into(),
    };
    let out = store::Outcomes {
        links: (0..1_234).map(|i| link("A", i)).chain((0..7).map(|i| link("B", i))).collect(),
        ..Default::default()
    };
    store.record_outcomes(&out).await.unwrap();
    let a = store.links("A").await.unwrap();
    assert_eq!(a, (0..1_234).map(|i| link("A", i)).collect::<Vec<_>>());
    assert_eq!(store.links("B").await.unwrap().len(), 7);
    assert!(store.links("C").await.unwrap().is_empty());

    assert_eq!(store.current_config().await.unwrap(), None);
    let v1 = store.save_config("[hr]\n").await.unwrap();
    let v2 = store.save_config("[hr]\ncustom_fields = []\n").await.unwrap();
    assert_ne!(v1.checksum, v2.checksum);
    assert_eq!(store.current_config().await.unwrap().unwrap().body, "[hr]\ncustom_fields = []\n");
    // Saves over a named version: one lands, the other is told, whatever the interleaving
    // (the unique mark of the version replaced, on SQLite and PostgreSQL alike). Many rounds
    // within the same second also keep "the one in force" the last one saved.
    for round in 0..5 {
        let over = store.current_config().await.unwrap().unwrap().id;
        let (ta, tb) = (format!("# a{round}\n"), format!("# b{round}\n"));
        let (a, b) = tokio::join!(
            store.save_config_after(&ta, Some(&over), "a"),
            store.save_config_after(&tb, Some(&over), "b")
        );
        assert!(a.is_ok() != b.is_ok(), "round {round}: exactly one lands: {a:?} {b:?}");
        let landed = a.or(b).unwrap();
        let now = store.current_config().await.unwrap().unwrap();
        assert_eq!((now.id, now.saved_by.as_deref()), (landed.id.clone(), landed.saved_by.as_deref()));
        let stale = store.save_config_after("# late\n", Some(&over), "c").await.unwrap_err();
        assert!(matches!(stale, StoreError::Duplicate(_)), "{stale}");
        assert_eq!(store.config_version(&over).await.unwrap().unwrap().id, over);
    }
    assert!(matches!(
        store.update_connection_settings("nope", "https://x.example/", "generic", None).await.unwrap_err(),
        StoreError::NotFound(_)
    ));

    assert_eq!(store.setting("s").await.unwrap(), None);
    store.set_setting("s", "one").await.unwrap();
    store.set_setting("s", "two").await.unwrap();
    assert_eq!(store.setting("s").await.unwrap().as_deref(), Some("two"));
}

#[tokio::test]
async fn hr_tables_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("tenure-store-hr-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open_in(&dir).await.unwrap().with_read_chunk(500);
    exercise(&store).await;
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn hr_tables_on_postgres() {
    let Some((store, dropper)) = common::postgres("hr").await else { return };
    let store = store.with_read_chunk(500);
    exercise(&store).await;
    store.close().await;
    dropper.drop_schema().await;
}
