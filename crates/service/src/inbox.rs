//! `[hr.inbox]`: a folder the daemon watches (where an SFTP upload lands). Files that fit the
//! pattern are taken in name order once each is whole (unchanged between two looks), once
//! per content (by SHA-256), through the one intake use case; then moved to `processed/` or
//! `rejected/` with a report beside them, and removed from there after the retention period.

use crate::error::{Error, Result};
use crate::intake::{self, Delivery, Intake, LoadKind, Taken};
use jiff::Timestamp;
use rules::hr_source::{name_matches, FeedKind, InboxSettings};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use store::Store;

/// What the watcher remembers between looks: each candidate's size and modification time.
#[derive(Default)]
pub struct Inbox {
    seen: HashMap<PathBuf, (u64, SystemTime)>,
    /// Files that could not be taken, with the reason last said (said again only if it changes).
    failing: HashMap<PathBuf, String>,
    last_cleanup: Option<SystemTime>,
}

/// One file taken: what the daemon prints.
pub struct Swept {
    pub line: String,
}

/// Where a taken file goes: its name, or with a suffix when one of that name is there already.
fn destination(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    if !p.exists() {
        return p;
    }
    let stamp = Timestamp::now().strftime("%Y%m%dT%H%M%S%.3fZ").to_string();
    dir.join(format!("{name}.{stamp}"))
}

impl Inbox {
    /// Looks once: takes every whole file that fits, in name order.
    pub async fn sweep(
        &mut self,
        store: &Store,
        data_dir: &Path,
        settings: &InboxSettings,
        intake: &Intake,
    ) -> Result<Vec<Swept>> {
        let dir = Path::new(&settings.path);
        let mut names: Vec<(String, PathBuf, u64, SystemTime)> = vec![];
        let entries =
            std::fs::read_dir(dir).map_err(|e| Error::refused(format!("[hr.inbox] {}: {e}", dir.display())))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            // Dot files are uploads in progress for many SFTP servers.
            if name.starts_with('.') || !name_matches(&settings.pattern, &name) {
                continue;
            }
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_file() {
                names.push((name, e.path(), meta.len(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
            }
        }
        names.sort();
        let mut out = vec![];
        let mut still: HashMap<PathBuf, (u64, SystemTime)> = HashMap::new();
        for (name, path, len, modified) in names {
            // Whole when it has not changed since the last look (a copy in progress grows).
            let whole = self.seen.get(&path) == Some(&(len, modified));
            if !whole {
                still.insert(path, (len, modified));
                continue;
            }
            // One file's trouble (unreadable, a store refusal) never stops the others: it is
            // said, and tried again at the next looks.
            match self.take(store, data_dir, settings, intake, &name, &path).await {
                Ok(t) => out.push(t),
                Err(e) => {
                    let e = e.to_string();
                    if self.failing.get(&path) != Some(&e) {
                        out.push(Swept { line: format!("inbox: {name}: not taken, tried again: {e}") });
                        self.failing.insert(path.clone(), e);
                    }
                }
            }
        }
        self.failing.retain(|p, _| p.exists());
        self.seen = still;
        self.cleanup(dir, settings.retention_days);
        Ok(out)
    }

    async fn take(
        &mut self,
        store: &Store,
        data_dir: &Path,
        settings: &InboxSettings,
        intake: &Intake,
        name: &str,
        path: &Path,
    ) -> Result<Swept> {
        let dir = Path::new(&settings.path);
        let bytes = std::fs::read(path).map_err(|e| Error::refused(format!("[hr.inbox] {}: {e}", path.display())))?;
        let checksum = intake::checksum(&bytes);
        let before = store.loads_of(&checksum).await?;
        let (to, report, line) = if let Some(l) = before.iter().find(|l| l.source.starts_with("inbox:")) {
            let line = format!(
                "inbox: {name}: the same content was taken before as load {} ({}); not loaded again",
                l.id, l.source
            );
            ("processed", serde_json::json!({"file": name, "already_taken": l.id, "at": l.loaded_at}), line)
        } else {
            let lower = name.to_ascii_lowercase();
            let d = Delivery {
                source: format!("inbox:{name}"),
                json: lower.ends_with(".json") || lower.ends_with(".jsonl") || lower.ends_with(".ndjson"),
                bytes,
                kind: if settings.kind == FeedKind::Full { LoadKind::Full } else { LoadKind::Delta },
                confirm_population: None,
                supersede_loads: vec![],
                // Nobody signed in brought it: named so that no person can be taken for it.
                uploaded_by: Some("hr inbox".into()),
            };
            match intake::take(store, data_dir, intake, d, Timestamp::now()).await? {
                Taken::Loaded { outcome, report } => {
                    let mut line = format!(
                        "inbox: {name}: load {}: rows {}, accepted {}, quarantined {}, events {}",
                        outcome.load_id,
                        outcome.rows,
                        outcome.accepted,
                        outcome.quarantined,
                        outcome.events.len()
                    );
                    for w in outcome.fields.as_ref().map(|f| f.warnings()).unwrap_or_default() {
                        line.push_str(&format!("\ninbox: {name}: warning: {w}"));
                    }
                    let v = serde_json::json!({"file": name, "outcome": outcome, "quarantined": report.quarantined,
                        "ignored_columns": report.ignored_columns, "date_formats": report.date_formats});
                    ("processed", v, line)
                }
                Taken::Rejected { load_id, reason, rejected } => {
                    let line = format!("inbox: {name}: REJECTED (load {load_id}): {reason}");
                    let v =
                        serde_json::json!({"file": name, "load_id": load_id, "rejected": reason, "detail": rejected});
                    ("rejected", v, line)
                }
            }
        };
        let target_dir = dir.join(to);
        std::fs::create_dir_all(&target_dir)
            .map_err(|e| Error::refused(format!("[hr.inbox] {}: {e}", target_dir.display())))?;
        let target = destination(&target_dir, name);
        let report_path = PathBuf::from(format!("{}.report.json", target.display()));
        std::fs::write(&report_path, serde_json::to_string_pretty(&report).expect("json"))
            .map_err(|e| Error::refused(format!("[hr.inbox] {}: {e}", report_path.display())))?;
        std::fs::rename(path, &target)
            .map_err(|e| Error::refused(format!("[hr.inbox] moving {name} to {to}/: {e}")))?;
        Ok(Swept { line })
    }

    /// Removes files older than the retention period from processed/ and rejected/, once an
    /// hour at most.
    fn cleanup(&mut self, dir: &Path, days: u32) {
        let now = SystemTime::now();
        if self.last_cleanup.is_some_and(|t| now.duration_since(t).unwrap_or_default() < Duration::from_secs(3600)) {
            return;
        }
        self.last_cleanup = Some(now);
        let keep = Duration::from_secs(u64::from(days) * 86_400);
        for sub in ["processed", "rejected"] {
            let Ok(entries) = std::fs::read_dir(dir.join(sub)) else { continue };
            for e in entries.flatten() {
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|m| now.duration_since(m).unwrap_or_default() > keep);
                if old {
                    if let Err(err) = std::fs::remove_file(e.path()) {
                        tracing::warn!(file = %e.path().display(), error = %err, "inbox retention: cannot remove");
                    }
                }
            }
        }
    }
}
