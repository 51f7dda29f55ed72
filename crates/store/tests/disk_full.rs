//! A store whose disk fills: a write the store refused is reported as refused, and once
//! there is room again every write is kept (issue 24). The data folder is a small tmpfs the
//! test mounts (it needs root, as CI runs; said loudly when it cannot).

use std::path::{Path, PathBuf};
use std::process::Command;

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn small_disk(tag: &str, kib: u64) -> Option<Mount> {
    let dir = std::env::temp_dir().join(format!("tenure-full-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: disk full: cannot mount a small tmpfs (needs root)");
        return None;
    }
    Some(Mount(dir))
}

fn resize(m: &Path, kib: u64) {
    let s = Command::new("mount").args(["-o", &format!("remount,size={kib}k")]).arg(m).status().unwrap();
    assert!(s.success());
}

fn entries(n: usize, tag: &str) -> Vec<store::JournalEntry> {
    (0..n)
        .map(|i| store::JournalEntry {
            id: format!("{tag}-{i}"),
            run_id: "r".into(),
            connection: "c".into(),
            worker_id: format!("w{i}"),
            kind: "create".into(),
            body: "x".repeat(400),
            state: "intent".into(),
            attempts: 0,
            error: None,
            created_at: String::new(),
        })
        .collect()
}

#[tokio::test]
async fn after_the_disk_filled_writes_are_kept_or_refused_never_lost() {
    let Some(m) = small_disk("store", 1536) else { return };
    let data = m.0.join("data");
    let s = store::Store::open_in(&data).await.unwrap();
    // Fill it: some batch is refused.
    let mut refused = None;
    for b in 0..400 {
        if let Err(e) = s.journal_intents(&entries(50, &format!("b{b}"))).await {
            refused = Some(e.to_string());
            break;
        }
    }
    let refused = refused.expect("the disk filled");
    assert!(refused.contains("full"), "{refused}");
    // Room again: what is written now is kept, as another connection sees it.
    resize(&m.0, 65536);
    s.set_setting("after", "kept").await.unwrap();
    s.journal_intents(&entries(5, "after")).await.unwrap();
    let other = store::Store::open_in(&data).await.unwrap();
    assert_eq!(other.setting("after").await.unwrap().as_deref(), Some("kept"), "a write reported done is kept");
    let open = other.journal_in_state("c", "intent").await.unwrap();
    assert!(open.iter().any(|e| e.id == "after-4"), "the intents written after the disk had room again are kept");
    // And the first store still writes after the other read (it holds no lock for ever).
    s.set_setting("again", "kept").await.unwrap();
    assert_eq!(other.setting("again").await.unwrap().as_deref(), Some("kept"));
}

fn outcomes(batch: &[store::JournalEntry]) -> store::Outcomes {
    store::Outcomes {
        journal: batch.iter().map(|e| (e.id.clone(), "done".to_string(), None)).collect(),
        links: batch
            .iter()
            .map(|e| store::Link {
                connection: "c".into(),
                worker_id: e.id.clone(),
                target_id: format!("t-{}", e.id),
                user_name: format!("{}@acme.example", e.id),
                origin: "created".into(),
                linked_at: "2026-01-01T00:00:00Z".into(),
            })
            .collect(),
        audit: batch
            .iter()
            .map(|e| store::AuditEntry {
                run_id: "r".into(),
                connection: "c".into(),
                worker_id: e.id.clone(),
                action: "create".into(),
                outcome: "ok".into(),
                detail: "{}".into(),
            })
            .collect(),
        ..Default::default()
    }
}

/// As an apply writes: intents, then their outcomes (links and audit), batch after batch.
#[tokio::test]
async fn an_apply_that_meets_a_full_disk_keeps_what_it_reports() {
    let Some(m) = small_disk("apply", 1536) else { return };
    let data = m.0.join("data");
    let s = store::Store::open_in(&data).await.unwrap();
    let mut reported = vec![];
    let mut failures = 0;
    for b in 0..200 {
        let batch = entries(20, &format!("b{b}"));
        if let Err(e) = s.journal_intents(&batch).await {
            failures += 1;
            assert!(e.to_string().contains("full"), "{e}");
            continue;
        }
        match s.record_outcomes(&outcomes(&batch)).await {
            Ok(()) => reported.extend(batch.iter().map(|e| e.id.clone())),
            Err(e) => {
                failures += 1;
                assert!(e.to_string().contains("full"), "{e}");
            }
        }
        if b == 150 {
            resize(&m.0, 65536);
        }
    }
    assert!(failures > 0, "the disk filled");
    let other = store::Store::open_in(&data).await.unwrap();
    let links = other.links("c").await.unwrap();
    for id in &reported {
        assert!(
            links.iter().any(|l| &l.worker_id == id),
            "{id} was reported written but is not kept ({} links)",
            links.len()
        );
    }
    let (n, broken) = other.verify_audit().await.unwrap();
    assert!(broken.is_none(), "{broken:?}");
    assert_eq!(n, reported.len(), "one audit record per reported outcome");
}
