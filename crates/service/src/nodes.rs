//! The nodes working on one store: each `tenure serve` or `tenure run` process says it is
//! alive there, on the database's clock, and who holds which connection is read from the
//! leases. A SQLite store is a single node's: a second one is refused with why.

use crate::error::{Error, Result};
use crate::run_lock;
use store::{Backend, LeaseRecord, NodeRecord, Store};

/// A live node and the connections it holds now.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub node: NodeRecord,
    pub holds: Vec<LeaseRecord>,
    /// This process.
    pub me: bool,
}

/// The live nodes, oldest first, each with the live leases it holds.
pub async fn list(store: &Store) -> Result<Vec<NodeView>> {
    let nodes = store.live_nodes().await?;
    let leases = store.leases().await?;
    Ok(nodes
        .into_iter()
        .map(|node| {
            let holds = leases.iter().filter(|l| l.live && l.node() == node.id).cloned().collect();
            let me = node.id == run_lock::incarnation();
            NodeView { node, holds, me }
        })
        .collect())
}

/// This process's presence in the store, kept alive on a task of its own.
pub struct Presence {
    store: Store,
    record: std::sync::Arc<std::sync::Mutex<NodeRecord>>,
    id: String,
    beat: tokio::task::JoinHandle<()>,
}

/// Says this process works on the store (with the address its API answers on, if any), and
/// keeps saying it. On SQLite, refused while another live process says so.
pub async fn join(store: &Store, address: Option<String>) -> Result<Presence> {
    let me = NodeRecord {
        id: run_lock::incarnation().to_string(),
        host: run_lock::host(),
        pid: std::process::id() as i64,
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_ms: 0,
        seen_ms: 0,
        expires_ms: 0,
        address,
        stopping: false,
    };
    if store.backend() == Backend::Sqlite {
        for other in store.live_nodes().await?.iter().filter(|n| n.id != me.id) {
            // A process of this host that is gone (kill -9) left its word behind: not a node.
            if other.host == me.host && !run_lock::alive(other.pid) {
                store.remove_node(&other.id).await?;
                continue;
            }
            return Err(Error::refused(format!(
                "another tenure process works on this SQLite store: pid {} on {}, up since {}{}. A SQLite store is \
                 for one node; several nodes share a PostgreSQL store (--database-url). Stop the other, or use it",
                other.pid,
                other.host,
                run_lock::moment(other.started_ms),
                other.address.as_deref().map(|a| format!(", serving {a}")).unwrap_or_default()
            )));
        }
    }
    let ttl = run_lock::settings().ttl;
    if let Err(e) = store.beat_node(&me, ttl.as_millis() as i64).await {
        // A store that refuses writes (a full disk) still serves what it can, and says why
        // it is not ready; the heartbeat tries again.
        tracing::warn!("this node could not say it is alive: {e}");
    }
    // Through a connection of its own: a busy pool must not make a live node look dead.
    let keeper = store.for_renewals().await?;
    let id = me.id.clone();
    let record = std::sync::Arc::new(std::sync::Mutex::new(me));
    let beat = {
        let record = record.clone();
        tokio::spawn(async move {
            let every = ttl / 6;
            loop {
                tokio::time::sleep(every).await;
                let me = record.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if let Err(e) = keeper.beat_node(&me, ttl.as_millis() as i64).await {
                    tracing::warn!("this node's heartbeat: {e}");
                }
            }
        })
    };
    Ok(Presence { store: store.clone(), record, id, beat })
}

impl Presence {
    /// Where its API answers, said at once.
    pub async fn serving(&self, address: String) -> Result<()> {
        let me = {
            let mut r = self.record.lock().unwrap_or_else(|p| p.into_inner());
            r.address = Some(address);
            r.clone()
        };
        if let Err(e) = self.store.beat_node(&me, run_lock::settings().ttl.as_millis() as i64).await {
            tracing::warn!("this node could not say where it serves: {e}");
        }
        Ok(())
    }

    /// What says this node is stopping (from a task that hears the signal).
    pub fn stopper(&self) -> Stopper {
        Stopper { store: self.store.clone(), record: self.record.clone() }
    }

    /// Gone: no longer listed (its leases are released by its runs).
    pub async fn leave(self) {
        self.beat.abort();
        if let Err(e) = self.store.remove_node(&self.id).await {
            tracing::warn!("this node could not say it leaves: {e}");
        }
    }
}

/// A node as the status API and `tenure nodes --json` give it: the connections `shown` lets
/// through (a token limited to one connection sees only that one's lease).
pub fn document(n: &NodeView, shown: impl Fn(&str) -> bool) -> serde_json::Value {
    let at = |ms: i64| run_lock::moment(ms);
    let holds: Vec<serde_json::Value> = n
        .holds
        .iter()
        .filter(|l| shown(&l.connection))
        .map(|l| {
            serde_json::json!({"connection": l.connection, "epoch": l.epoch, "since": at(l.since_ms),
                "expires": at(l.expires_ms), "run": l.info})
        })
        .collect();
    let d = &n.node;
    serde_json::json!({"id": d.id, "host": d.host, "pid": d.pid, "version": d.version, "started": at(d.started_ms),
        "seen": at(d.seen_ms), "expires": at(d.expires_ms), "address": d.address, "stopping": d.stopping,
        "this_process": n.me, "holds": holds})
}

/// Says that a node is stopping: it finishes its runs and takes no new work.
pub struct Stopper {
    store: Store,
    record: std::sync::Arc<std::sync::Mutex<NodeRecord>>,
}

impl Stopper {
    pub async fn mark(self) {
        let me = {
            let mut r = self.record.lock().unwrap_or_else(|p| p.into_inner());
            r.stopping = true;
            r.clone()
        };
        if let Err(e) = self.store.beat_node(&me, run_lock::settings().ttl.as_millis() as i64).await {
            tracing::warn!("this node could not say it is stopping: {e}");
        }
    }
}
