//! How each connection stands (running or not, its last and last clean run, the next one,
//! reviews waiting, dead letters, held workers, the guard) and when HR data last came: what
//! the API's and console's status show and the metrics export. All of it is read from the
//! store, so every node and process tells the same; a status is a few queries whatever the
//! history holds, since dashboards ask for it all day.

use crate::error::Result;
use crate::registry::Registry;
use serde::Deserialize;
use std::time::Duration;
use store::{GuardTrip, LoadRecord, RunRecord, Store};

/// A run silent for this long (no progress written) is taken for one that did not finish.
pub const STALE_AFTER: Duration = Duration::from_secs(15);

/// How many of a connection's newest runs are searched for its last run without failures.
const SEARCHED: i64 = 50;

/// A finished run's counts, as its summary holds them.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct RunCounts {
    pub total: Option<i64>,
    pub skipped: Option<i64>,
    pub no_change: Option<i64>,
    pub processed: Option<i64>,
    pub failed: Option<i64>,
    /// What the run's requests met at the target (runs recorded before it was kept: none).
    #[serde(default)]
    pub scim: Option<RunScim>,
}

/// A run's requests and the pace it held towards the target.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct RunScim {
    pub requests: u64,
    pub rate_limited: u64,
    /// Requests per second at the run's end, learned from the target's 429s (under the
    /// connection's max_rate); None when the target refused nothing.
    pub pace_per_second: Option<f64>,
}

/// A finished run as the status tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSeen {
    pub id: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub counts: RunCounts,
}

impl RunSeen {
    fn of(r: &RunRecord) -> RunSeen {
        RunSeen {
            id: r.id.clone(),
            started_at: r.started_at.clone(),
            finished_at: r.finished_at.clone(),
            counts: counts(r).unwrap_or_default(),
        }
    }
}

fn counts(r: &RunRecord) -> Option<RunCounts> {
    r.summary.as_deref().and_then(|s| serde_json::from_str(s).ok())
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionStatus {
    pub connection: String,
    /// Whether the configuration in force configures it (a stored connection may not be).
    pub enabled: bool,
    /// Paused by a person (when, by whom): scheduled runs pass it by.
    pub paused: Option<(String, String)>,
    /// A run of this process, or of another (the command line, another node) that wrote its
    /// progress within `STALE_AFTER`.
    pub running: bool,
    /// That run's id.
    pub running_id: Option<String>,
    pub last_run: Option<RunSeen>,
    pub last_successful_run: Option<RunSeen>,
    /// When the scheduler runs it next; None without a schedule or before its first run.
    pub next_run: Option<jiff::Timestamp>,
    pub pending_reviews: i64,
    pub dead_letters: i64,
    pub held: i64,
    pub guard: Option<GuardTrip>,
}

#[derive(Debug, Clone)]
pub struct Status {
    pub connections: Vec<ConnectionStatus>,
    /// The last HR data received, whichever way it came (file, inbox, pull, push, upload).
    pub last_received: Option<LoadRecord>,
    pub audit: AuditState,
    /// A restored store whose scheduled runs wait for a person: when, and from what.
    pub restored: Option<serde_json::Value>,
    /// The live nodes (processes serving or running the schedule) and what each holds.
    pub nodes: Vec<crate::nodes::NodeView>,
}

/// The audit chain's head as the store holds it, against the last head known to have been
/// written (kept apart from the chain): cheap enough for every status.
#[derive(Debug, Clone, Default)]
pub struct AuditState {
    pub head: Option<(i64, String)>,
    pub known: Option<(i64, String)>,
    /// The chain ends before the head last written, or that record is another.
    pub behind: bool,
}

pub async fn audit_state(store: &Store) -> Result<AuditState> {
    let head = store.audit_head().await?;
    let known = store.known_audit_head().await?;
    let behind = match &known {
        None => false,
        Some((seq, hash)) => {
            head.as_ref().is_none_or(|(s, _)| s < seq) || store.audit_record_hash(*seq).await?.as_deref() != Some(hash)
        }
    };
    Ok(AuditState { head, known, behind })
}

/// Whether a run of another process is still going: unfinished, and its progress written
/// lately (it doubles as the run's heartbeat).
/// The status as the API and `tenure status --json` give it, for the connections shown.
pub fn document(st: &Status, shown: impl Fn(&str) -> bool) -> serde_json::Value {
    use serde_json::json;
    let view = |r: &Option<RunSeen>| {
        r.as_ref().map(|r| {
            let n = &r.counts;
            json!({"id": r.id, "started_at": r.started_at, "finished_at": r.finished_at,
                "total": n.total, "skipped": n.skipped, "no_change": n.no_change,
                "processed": n.processed, "failed": n.failed,
                "scim": n.scim.as_ref().map(|s| json!({"requests": s.requests, "rate_limited": s.rate_limited,
                    "pace_per_second": s.pace_per_second}))})
        })
    };
    let out: Vec<serde_json::Value> = st
        .connections
        .iter()
        .filter(|s| shown(&s.connection))
        .map(|s| {
            json!({
                "connection": s.connection,
                "enabled": s.enabled,
                "paused": s.paused.as_ref().map(|(at, by)| json!({"at": at, "by": by})),
                "running": s.running,
                "last_run": view(&s.last_run),
                "last_successful_run": view(&s.last_successful_run),
                "next_run": s.next_run.map(|t| t.to_string()),
                "pending_reviews": s.pending_reviews,
                "dead_letters": s.dead_letters,
                // Workers held until the HR data changes, as the last run found them.
                "held": s.held,
                "guard": s.guard.as_ref().map(|t| json!({
                    "refused": true, "guard": t.guard.as_str(), "why": t.why, "confirm_with": t.deactivations,
                    "tripped_at": t.tripped_at, "by": t.by})),
            })
        })
        .collect();
    let hr = st.last_received.as_ref().map(|l| {
        json!({"received_at": l.loaded_at, "source": l.source, "kind": l.kind, "outcome": l.outcome,
            "reason": l.reason, "rows": l.rows, "accepted": l.accepted, "quarantined": l.quarantined})
    });
    let a = &st.audit;
    let pair = |h: &Option<(i64, String)>| h.as_ref().map(|(seq, hash)| json!({"seq": seq, "hash": hash}));
    let nodes: Vec<serde_json::Value> = st.nodes.iter().map(|n| crate::nodes::document(n, &shown)).collect();
    json!({"connections": out, "hr": {"last_received": hr},
        "audit": {"head": pair(&a.head), "last_written": pair(&a.known), "behind": a.behind},
        "restored": st.restored, "nodes": nodes})
}

pub fn alive(r: &RunRecord) -> bool {
    r.finished_at.is_none()
        && r.progress.as_ref().and_then(|(_, _, at)| at.parse::<jiff::Timestamp>().ok()).is_some_and(|at| {
            jiff::Timestamp::now().duration_since(at) < jiff::SignedDuration::try_from(STALE_AFTER).unwrap_or_default()
        })
}

/// A connection's last finished run and its last finished run without failures, of its
/// newest runs (`runs` newest first).
pub fn last_runs(runs: &[RunRecord]) -> (Option<&RunRecord>, Option<&RunRecord>) {
    // A run a guard refused did nothing: the guard itself is shown apart.
    let mut finished = runs.iter().filter(|r| r.finished_at.is_some() && r.refused().is_none());
    let last = finished.next();
    let clean = |r: &&RunRecord| counts(r).is_some_and(|c| c.failed == Some(0));
    let ok = match last {
        Some(l) if clean(&l) => Some(l),
        _ => finished.find(clean),
    };
    (last, ok)
}

/// The status of the connections `shown` lets through. `live` is this process's registry
/// (its runs count as running before their first progress is written); `interval` the
/// scheduler's, when this process runs one.
pub async fn read(
    store: &Store,
    live: Option<&Registry>,
    interval: Option<Duration>,
    shown: impl Fn(&str) -> bool,
) -> Result<Status> {
    let figures = store.connection_figures().await?;
    let version = figures.first().and_then(|f| f.config_id.as_deref());
    let configured = crate::config::connection_names(store, version).await.unwrap_or_default();
    let mut connections = vec![];
    for f in figures.into_iter().filter(|f| shown(&f.connection)) {
        let runs = store.runs(Some(&f.connection), SEARCHED).await?;
        let (last, ok) = last_runs(&runs);
        let next_run = interval.filter(|i| !i.is_zero() && f.paused.is_none()).and_then(|i| {
            let finished: jiff::Timestamp = last?.finished_at.as_deref()?.parse().ok()?;
            let next = finished + jiff::SignedDuration::try_from(i).ok()?;
            Some(next.max(jiff::Timestamp::now()))
        });
        let running_id = live
            .and_then(|l| l.running_id(&f.connection))
            .or_else(|| runs.first().filter(|r| alive(r)).map(|r| r.id.clone()));
        let running = running_id.is_some();
        connections.push(ConnectionStatus {
            enabled: configured.contains(&f.connection),
            paused: f.paused,
            running,
            running_id,
            last_run: last.map(RunSeen::of),
            last_successful_run: ok.map(RunSeen::of),
            next_run,
            pending_reviews: f.pending_reviews,
            dead_letters: f.dead_letters,
            held: f.held,
            guard: f.guard,
            connection: f.connection,
        });
    }
    Ok(Status {
        connections,
        last_received: store.last_load().await?,
        audit: audit_state(store).await?,
        restored: crate::backup::unconfirmed_restore(store).await?,
        nodes: crate::nodes::list(store).await?,
    })
}

/// The status for many callers at once: a caller that asks while a read is under way takes
/// that read's answer when it ends, rather than making one more of the same reads (a
/// dashboard wall or a monitor's many probes ask together). An answer given was read at most
/// one read before its caller asked.
#[derive(Default)]
pub struct Shared {
    last: tokio::sync::Mutex<Option<(std::time::Instant, std::sync::Arc<Status>)>>,
}

impl Shared {
    /// Every connection's status (the door keeps those its caller may see).
    pub async fn read(
        &self,
        store: &Store,
        live: Option<&Registry>,
        interval: Option<Duration>,
    ) -> Result<std::sync::Arc<Status>> {
        let asked = std::time::Instant::now();
        let mut last = self.last.lock().await;
        if let Some((ended, s)) = last.as_ref() {
            if *ended >= asked {
                return Ok(s.clone());
            }
        }
        let s = std::sync::Arc::new(read(store, live, interval, |_| true).await?);
        *last = Some((std::time::Instant::now(), s.clone()));
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, finished: bool, failed: Option<i64>) -> RunRecord {
        RunRecord {
            id: id.into(),
            connection: "c".into(),
            started_at: "2026-12-01T00:00:00Z".into(),
            finished_at: finished.then(|| "2026-12-01T00:01:00Z".into()),
            summary: failed.map(|f| format!(r#"{{"total": 3, "failed": {f}, "failed_actions": [{{"x": 1}}]}}"#)),
            started_by: None,
            progress: None,
            as_of: None,
        }
    }

    #[test]
    fn the_last_run_and_the_last_clean_one_skip_unfinished_runs() {
        let runs = [run("4", false, None), run("3", true, Some(2)), run("2", true, Some(0)), run("1", true, Some(0))];
        let (last, ok) = last_runs(&runs);
        assert_eq!(last.map(|r| r.id.as_str()), Some("3"));
        assert_eq!(ok.map(|r| r.id.as_str()), Some("2"));
        let runs = [run("2", true, Some(0))];
        let (last, ok) = last_runs(&runs);
        assert_eq!((last.unwrap().id.as_str(), ok.unwrap().id.as_str()), ("2", "2"));
        assert_eq!(last_runs(&[run("1", false, None)]), (None, None));
        // A summary that does not read is not a clean run.
        let mut odd = run("1", true, Some(0));
        odd.summary = Some("not json".into());
        assert_eq!(last_runs(std::slice::from_ref(&odd)).1, None);
        assert_eq!(RunSeen::of(&runs[0]).counts, RunCounts { total: Some(3), failed: Some(0), ..Default::default() });
    }

    #[test]
    fn a_run_is_alive_while_its_progress_is_fresh() {
        let mut r = run("1", false, None);
        assert!(!alive(&r), "no progress written: not alive");
        r.progress = Some((1, 2, jiff::Timestamp::now().to_string()));
        assert!(alive(&r));
        r.progress = Some((1, 2, (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60)).to_string()));
        assert!(!alive(&r), "silent for a minute: did not finish");
        let mut done = run("2", true, Some(0));
        done.progress = Some((2, 2, jiff::Timestamp::now().to_string()));
        assert!(!alive(&done), "a finished run is not running");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn callers_asking_together_share_a_read_and_a_later_caller_sees_what_changed() {
        let dir = std::env::temp_dir().join(format!("tenure-status-shared-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open_in(&dir).await.unwrap();
        let shared = std::sync::Arc::new(Shared::default());
        // Twenty at once: every one gets an answer.
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (shared, store) = (shared.clone(), store.clone());
            set.spawn(async move { shared.read(&store, None, None).await.unwrap().connections.len() });
        }
        let mut answers = vec![];
        while let Some(n) = set.join_next().await {
            answers.push(n.unwrap());
        }
        assert_eq!(answers, vec![0; 20]);
        // A change made before a caller asks is in its answer: nothing is kept for later callers.
        let key = store::MasterKey::from_bytes([1; 32]);
        let c = store::NewConnection {
            name: "A".into(),
            base_url: "https://acme.monday.com/scim/v2/".into(),
            dialect: "monday".into(),
            insecure_http: false,
            allow_private: false,
            rate_limit_per_second: None,
        };
        store.add_connection(&c, &store::Secret::new("token-0001"), &key).await.unwrap();
        let after = shared.read(&store, None, None).await.unwrap();
        assert_eq!(after.connections.iter().map(|c| c.connection.as_str()).collect::<Vec<_>>(), ["A"]);
        store.trip_guard("A", store::GuardKind::Deprovision, "why", 3, "me").await.unwrap();
        assert!(shared.read(&store, None, None).await.unwrap().connections[0].guard.is_some());
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
