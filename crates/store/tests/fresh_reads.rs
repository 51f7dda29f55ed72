//! A value written by another process (another pool on the same file) is read at once: no
//! read is served from a snapshot an earlier, unfinished statement kept open.

#[tokio::test]
async fn a_setting_written_elsewhere_is_read_at_once() {
    let dir = std::env::temp_dir().join(format!("tenure-fresh-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let a = store::Store::open_in(&dir).await.unwrap();
    let b = store::Store::open_in(&dir).await.unwrap();
    b.save_config("x = 1").await.unwrap();
    b.set_setting("k", "one").await.unwrap();
    for (i, v) in ["two", "three", "four"].iter().enumerate() {
        // Other reads of one row on the same connection between.
        let _ = a.current_config().await.unwrap();
        let _ = a.setting("other").await.unwrap();
        let _ = a.loads_mark().await.unwrap();
        b.set_setting("k", v).await.unwrap();
        assert_eq!(a.setting("k").await.unwrap().as_deref(), Some(*v), "read {i}");
    }
}

#[tokio::test]
async fn after_a_load_reads_are_fresh() {
    let dir = std::env::temp_dir().join(format!("tenure-fresh2-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let a = store::Store::open_in(&dir).await.unwrap();
    let b = store::Store::open_in(&dir).await.unwrap();
    b.set_setting("k", "one").await.unwrap();
    assert_eq!(a.setting("k").await.unwrap().as_deref(), Some("one"));
    let _ = a.current_config().await.unwrap();
    let _ = a.seen_push_ids(&["x".into()]).await.unwrap();
    let _ = a.snapshot_of(&["9".into()]).await.unwrap();
    let _ = a.loads().await.unwrap();
    b.set_setting("k", "two").await.unwrap();
    assert_eq!(a.setting("k").await.unwrap().as_deref(), Some("two"), "after reads");
    let w = store::LoadWrite {
        load: Some(store::LoadRecord {
            id: "l1".into(),
            source: "push".into(),
            checksum: "c".into(),
            kind: "delta".into(),
            loaded_at: "2026-01-01T00:00:00Z".into(),
            rows: 1,
            accepted: 1,
            quarantined: 0,
            events: 0,
            outcome: "accepted".into(),
            reason: None,
            uploaded_by: None,
            fields: None,
        }),
        push_ids: vec!["e1".into()],
        ..Default::default()
    };
    a.record_load(&w).await.unwrap();
    b.set_setting("k", "three").await.unwrap();
    assert_eq!(a.setting("k").await.unwrap().as_deref(), Some("three"), "after a load");
}
