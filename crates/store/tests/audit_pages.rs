//! One page of the audit read in SQL, on SQLite and (when TENURE_TEST_DATABASE_URL is set)
//! PostgreSQL: newest first, with the filter's total, by worker, connection, action, kind
//! (action names kept or left out), text the detail holds (taken as text, never a pattern),
//! and moments to the second.

mod common;

use store::{AuditEntry, AuditFilter, Outcomes, Store};

fn entry(worker: &str, action: &str, actor: &str) -> AuditEntry {
    AuditEntry {
        run_id: String::new(),
        connection: if worker.is_empty() { String::new() } else { "A".into() },
        worker_id: worker.into(),
        action: action.into(),
        outcome: "ok".into(),
        detail: serde_json::json!({"actor": actor}).to_string(),
    }
}

async fn exercise(store: &Store) {
    let mut audit = vec![];
    for i in 0..30 {
        audit.push(entry(&format!("w{}", i % 3), if i % 2 == 0 { "create" } else { "team_add" }, "schedule"));
    }
    audit.push(entry("", "approve", "user:ri_ta"));
    audit.push(entry("", "approve", "user:rixta"));
    store.record_outcomes(&Outcomes { audit, ..Default::default() }).await.unwrap();
    let all = store.audit(None).await.unwrap();
    assert_eq!(all.len(), 32);

    // Newest first, paged, with the total.
    let (n, page) = store.audit_page(&AuditFilter::default(), 10, 0).await.unwrap();
    assert_eq!((n, page.len(), page[0].seq), (32, 10, 32));
    let (_, last) = store.audit_page(&AuditFilter::default(), 10, 30).await.unwrap();
    assert_eq!(last.iter().map(|r| r.seq).collect::<Vec<_>>(), [2, 1]);
    // By worker and action.
    let f = AuditFilter { worker: Some("w1".into()), action: Some("create".into()), ..Default::default() };
    let (n, page) = store.audit_page(&f, 100, 0).await.unwrap();
    assert_eq!(n, 5);
    assert!(page.iter().all(|r| r.entry.worker_id == "w1" && r.entry.action == "create"));
    // Kind: the decisions only, or all but them.
    let decisions = AuditFilter { actions: Some((vec!["approve".into()], true)), ..Default::default() };
    assert_eq!(store.audit_page(&decisions, 100, 0).await.unwrap().0, 2);
    let actions = AuditFilter { actions: Some((vec!["approve".into()], false)), ..Default::default() };
    assert_eq!(store.audit_page(&actions, 100, 0).await.unwrap().0, 30);
    // Text in the detail: "_" is a character, not a pattern, so rixta is not ri_ta.
    let actor = AuditFilter { detail_holds: Some("\"actor\":\"user:ri_ta\"".into()), ..Default::default() };
    let (n, page) = store.audit_page(&actor, 100, 0).await.unwrap();
    assert_eq!((n, page[0].seq), (1, 31));
    // Moments as stored text: from the first record's second, and before a second long past.
    let first = &all[0].at[..19];
    let since = AuditFilter { since: Some(first.to_string()), ..Default::default() };
    assert_eq!(store.audit_page(&since, 1, 0).await.unwrap().0, 32);
    let before = AuditFilter { before: Some("2001-01-01T00:00:00".into()), ..Default::default() };
    assert_eq!(store.audit_page(&before, 1, 0).await.unwrap().0, 0);
}

#[tokio::test]
async fn audit_pages_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("tenure-audit-pages-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open_in(&dir).await.unwrap();
    exercise(&store).await;
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn audit_pages_on_postgres() {
    let Some((store, dropper)) = common::postgres("auditpages").await else { return };
    exercise(&store).await;
    store.close().await;
    dropper.drop_schema().await;
}

/// Issue 31 point 5: writers on several nodes append to one chain at once. Each of eight
/// handles (own pools, as nodes have) appends twenty batches concurrently: none is lost to a
/// key conflict and the chain verifies whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appenders_keep_one_chain_on_postgres() {
    let Some((store, dropper)) = common::postgres("auditrace").await else { return };
    let url = dropper.url();
    let mut tasks = vec![];
    for node in 0..8 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mine = Store::open(&url).await.unwrap();
            for batch in 0..20 {
                let audit = (0..3).map(|i| entry(&format!("n{node}-b{batch}-{i}"), "create", "schedule")).collect();
                mine.record_outcomes(&Outcomes { audit, ..Default::default() }).await.unwrap();
            }
            mine.close().await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (records, broken) = store.verify_audit().await.unwrap();
    assert_eq!((records, broken), (8 * 20 * 3, None));
    assert_eq!(store.audit_head().await.unwrap().map(|h| h.0), Some(480));
    store.close().await;
    dropper.drop_schema().await;
}
