//! The run registry: every run of this process, whoever started it (the scheduler, the API),
//! live while it goes: who started it, its progress in workers, and its outcome once it ended,
//! including the outcomes that leave no run record (a guard's refusal, an error before the
//! first action). A run of another process (the command line, another node) is seen through
//! the store, where every run writes its progress as it goes. Ended runs leave memory after a
//! bound; the store keeps them.

use crate::error::Result;
use crate::run_report::Applied;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A run's progress in workers, written by the run and read by whoever watches it.
#[derive(Default)]
pub struct Progress {
    pub done: std::sync::atomic::AtomicUsize,
    pub total: std::sync::atomic::AtomicUsize,
}

/// How long an ended run stays in memory, and how many ended runs at most.
const KEEP: Duration = Duration::from_secs(600);
const MAX_ENDED: usize = 100;

/// A run as this process sees it while it goes.
pub struct LiveRun {
    pub id: String,
    pub connection: String,
    pub started_by: String,
    pub progress: Arc<Progress>,
    ended: Mutex<Option<(Instant, Value)>>,
}

impl LiveRun {
    /// Its outcome as the API tells it, once it ended.
    pub fn outcome(&self) -> Option<Value> {
        self.ended.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|(_, v)| v.clone())
    }

    pub fn running(&self) -> bool {
        self.ended.lock().unwrap_or_else(|p| p.into_inner()).is_none()
    }

    /// The live view: state (running, or the outcome's), who started it, progress in workers.
    pub fn view(&self) -> Value {
        let mut v = json!({"id": self.id, "connection": self.connection, "started_by": self.started_by,
            "progress": {"done": self.progress.done.load(Ordering::Relaxed),
                         "total": self.progress.total.load(Ordering::Relaxed)}});
        match self.outcome() {
            None => v["state"] = json!("running"),
            Some(Value::Object(m)) => {
                for (k, x) in m {
                    v[k] = x;
                }
            }
            Some(_) => {}
        }
        v
    }
}

/// What a run came to, as the API and the live view tell it.
pub fn outcome_view(r: &Result<Applied>) -> Value {
    match r {
        Ok(a) => {
            json!({"state": a.outcome.as_str(), "summary": a.summary, "guard": a.guard, "newly_dead": a.newly_dead})
        }
        Err(e) => json!({"state": "error", "error": e.to_string()}),
    }
}

/// The runs of this process.
#[derive(Default)]
pub struct Registry {
    runs: Mutex<HashMap<String, Arc<LiveRun>>>,
}

impl Registry {
    /// The run with this id, registered now unless it was already (a door may register it
    /// before the run starts, to answer with its id at once).
    pub fn register(&self, id: &str, connection: &str, started_by: &str, progress: Arc<Progress>) -> Arc<LiveRun> {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        prune(&mut runs);
        runs.entry(id.to_string())
            .or_insert_with(|| {
                Arc::new(LiveRun {
                    id: id.to_string(),
                    connection: connection.to_string(),
                    started_by: started_by.to_string(),
                    progress,
                    ended: Mutex::new(None),
                })
            })
            .clone()
    }

    pub fn get(&self, id: &str) -> Option<Arc<LiveRun>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    /// The run ended with this outcome.
    pub fn end(&self, id: &str, outcome: Value) {
        if let Some(r) = self.get(id) {
            *r.ended.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), outcome));
        }
    }

    /// Whether a run of this process is going on a connection.
    pub fn running_on(&self, connection: &str) -> bool {
        self.running_id(connection).is_some()
    }

    /// The id of the run of this process going on a connection.
    pub fn running_id(&self, connection: &str) -> Option<String> {
        let runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        runs.values().find(|r| r.connection == connection && r.running()).map(|r| r.id.clone())
    }

    /// How many runs are in memory (running and ended).
    pub fn len(&self) -> usize {
        self.runs.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Ended runs past `KEEP`, and the oldest ended past `MAX_ENDED`, leave memory.
fn prune(runs: &mut HashMap<String, Arc<LiveRun>>) {
    let mut ended: Vec<(Instant, String)> = runs
        .values()
        .filter_map(|r| r.ended.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|(t, _)| (*t, r.id.clone())))
        .collect();
    ended.sort();
    let over = ended.len().saturating_sub(MAX_ENDED);
    for (i, (t, id)) in ended.iter().enumerate() {
        if i < over || t.elapsed() > KEEP {
            runs.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_live_until_it_ends_and_ended_runs_leave_memory_past_the_bound() {
        let reg = Registry::default();
        let p = Arc::new(Progress::default());
        let r = reg.register("r1", "c", "the scheduler", p.clone());
        p.total.store(10, Ordering::Relaxed);
        p.done.store(4, Ordering::Relaxed);
        assert!(reg.running_on("c") && !reg.running_on("d"));
        let v = reg.get("r1").unwrap().view();
        assert_eq!((v["state"].as_str(), v["progress"]["done"].as_u64()), (Some("running"), Some(4)), "{v}");
        assert_eq!(v["started_by"], "the scheduler");
        // Registered again by the run itself: the same entry.
        assert!(Arc::ptr_eq(&r, &reg.register("r1", "c", "x", Arc::default())));
        reg.end("r1", json!({"state": "succeeded"}));
        assert!(!reg.running_on("c"));
        assert_eq!(reg.get("r1").unwrap().view()["state"], "succeeded");
        // Past MAX_ENDED ended runs, the oldest go; running ones stay.
        reg.register("live", "c", "api", Arc::default());
        for i in 0..MAX_ENDED + 5 {
            let id = format!("e{i}");
            reg.register(&id, "c", "api", Arc::default());
            reg.end(&id, json!({"state": "succeeded"}));
        }
        reg.register("one-more", "c", "api", Arc::default());
        assert!(reg.get("r1").is_none(), "the oldest ended run left memory");
        assert!(reg.get("live").is_some_and(|r| r.running()), "a running run stays");
        assert!(reg.len() <= MAX_ENDED + 2, "{}", reg.len());
    }
}
