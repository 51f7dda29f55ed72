//! The nodes working on one store: each `tenure serve` or `tenure run` process says it is
//! alive there, on the database's clock; the connections are shared out between the nodes
//! that take scheduled turns, each owning up to its fair share; who runs which connection now
//! is read from the leases. A SQLite store is a single node's: a second one is refused with why.

use crate::error::{Error, Result};
use crate::run_lock;
use std::collections::BTreeSet;
use store::{Backend, LeaseRecord, NodeRecord, ScheduleRow, Store};

/// A live node, the connections it owns and those it runs now.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub node: NodeRecord,
    /// The connections whose scheduled turns it takes.
    pub owns: Vec<String>,
    pub holds: Vec<LeaseRecord>,
    /// This process.
    pub me: bool,
}

/// The live nodes, oldest first, each with the connections it owns and the live leases it holds.
pub async fn list(store: &Store) -> Result<Vec<NodeView>> {
    let nodes = store.live_nodes().await?;
    let leases = store.leases().await?;
    let schedule = store.schedule_rows().await?;
    Ok(nodes
        .into_iter()
        .map(|node| {
            let holds = leases.iter().filter(|l| l.live && l.node() == node.id).cloned().collect();
            let owns = schedule
                .iter()
                .filter(|r| r.owner.as_deref() == Some(node.id.as_str()))
                .map(|r| r.connection.clone())
                .collect();
            let me = node.id == run_lock::incarnation();
            NodeView { node, owns, holds, me }
        })
        .collect())
}

/// What a node does to hold its fair share of the connections.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Moves {
    /// Connections to take, each from its owner as last seen (None: nobody's): an owner that
    /// is gone, stopping or takes no turns, or none at all.
    pub take: Vec<(String, Option<String>)>,
    /// Connections to give back: above the fair share (never one it runs now), no longer
    /// configured, or all of them when it stops.
    pub give: Vec<String>,
    /// Connections of the configuration with no schedule yet.
    pub add: Vec<String>,
    /// Its fair share: the configured connections over the nodes taking turns, rounded up.
    pub fair: usize,
}

/// A node's moves, from the schedule and the live nodes: `me` takes connections whose owner
/// does not count (gone, stopping, taking no turns, or none) until it owns its fair share, and
/// gives back those above it that it does not run now (`running`), so that a node joining
/// gets its share as the others finish their runs. A stopping node gives everything back.
pub fn share(
    rows: &[ScheduleRow],
    configured: &[String],
    live: &[NodeRecord],
    me: &str,
    stopping: bool,
    running: &BTreeSet<String>,
) -> Moves {
    let mut workers: BTreeSet<&str> =
        live.iter().filter(|n| n.scheduling && !n.stopping).map(|n| n.id.as_str()).collect();
    // A node that could not say it is alive (a full disk) still counts itself.
    if !stopping {
        workers.insert(me);
    }
    let fair = configured.len().div_ceil(workers.len().max(1));
    let wanted: BTreeSet<&str> = configured.iter().map(String::as_str).collect();
    let mut moves = Moves { fair, ..Moves::default() };
    let known: BTreeSet<&str> = rows.iter().map(|r| r.connection.as_str()).collect();
    moves.add = configured.iter().filter(|c| !known.contains(c.as_str())).cloned().collect();
    let mine: Vec<&ScheduleRow> = rows.iter().filter(|r| r.owner.as_deref() == Some(me)).collect();
    let (kept, unwanted): (Vec<_>, Vec<_>) = mine.into_iter().partition(|r| wanted.contains(r.connection.as_str()));
    moves.give.extend(unwanted.iter().map(|r| r.connection.clone()));
    if stopping {
        moves.give.extend(kept.iter().map(|r| r.connection.clone()));
        return moves;
    }
    if kept.len() > fair {
        let spare = kept.iter().filter(|r| !running.contains(&r.connection)).take(kept.len() - fair);
        moves.give.extend(spare.map(|r| r.connection.clone()));
        return moves;
    }
    let room = fair - kept.len();
    let free = rows.iter().filter(|r| {
        wanted.contains(r.connection.as_str()) && r.owner.as_deref().is_none_or(|o| !workers.contains(o) && o != me)
    });
    moves.take = free.take(room).map(|r| (r.connection.clone(), r.owner.clone())).collect();
    moves
}

/// Takes and gives back connections so that this node owns its fair share of `configured`,
/// the configuration's connections (see `share`), and says what moved. A node that takes no
/// scheduled turns (`--interval 0`) does not call it: it owns nothing.
pub async fn balance(store: &Store, configured: &[String], stopping: bool) -> Result<Moves> {
    let me = run_lock::incarnation();
    let live = store.live_nodes().await?;
    let running: BTreeSet<String> =
        store.leases().await?.into_iter().filter(|l| l.live && l.node() == me).map(|l| l.connection).collect();
    let mut rows = store.schedule_rows().await?;
    let first = share(&rows, configured, &live, me, stopping, &running);
    if !first.add.is_empty() {
        for c in &first.add {
            store.add_turn(c).await?;
        }
        rows = store.schedule_rows().await?;
    }
    let mut moves = share(&rows, configured, &live, me, stopping, &running);
    moves.add = first.add;
    // Another node may move first: a move that finds the owner changed is not made.
    let mut took = vec![];
    for (c, from) in moves.take {
        if store.move_owner(&c, from.as_deref(), Some(me)).await? {
            // Taken from a node that died: what it had not carried out yet is carried out now
            // by a whole run; from one that gave it back, if HR data came since its last turn
            // (its news may have gone by while it was being handed over).
            let dead = from.as_ref().is_some_and(|f| !live.iter().any(|n| &n.id == f));
            let due = if dead { store.make_turn_due(&c).await } else { store.make_turn_due_if_news(&c).await };
            if let Err(e) = due {
                tracing::warn!("the turn of {c:?}, taken over, could not be made due: {e}");
            }
            took.push((c, from));
        }
    }
    moves.take = took;
    let mut gave = vec![];
    for c in moves.give {
        if store.move_owner(&c, Some(me), None).await? {
            gave.push(c);
        }
    }
    moves.give = gave;
    Ok(moves)
}

/// This process's presence in the store, kept alive on a task of its own.
pub struct Presence {
    store: Store,
    record: std::sync::Arc<std::sync::Mutex<NodeRecord>>,
    id: String,
    beat: tokio::task::JoinHandle<()>,
    /// Set when the node leaves, before its row is removed: no beat adds it back after.
    left: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Says this node is alive: renews its row, and adds it (again) only while the node has not
/// left. A beat already under way when the node leaves may land after its row was removed; a
/// renewal then changes nothing, where adding it back would list a stopped node for a lease.
async fn beat(
    store: &Store,
    me: &NodeRecord,
    left: &std::sync::atomic::AtomicBool,
) -> std::result::Result<(), store::StoreError> {
    let ttl = run_lock::settings().ttl.as_millis() as i64;
    if store.renew_node(me, ttl).await? || left.load(std::sync::atomic::Ordering::SeqCst) {
        return Ok(());
    }
    store.beat_node(me, ttl).await
}

/// Says this process works on the store (with the address its API answers on, if any), and
/// keeps saying it. On SQLite, refused while another live process says so.
pub async fn join(store: &Store, address: Option<String>, scheduling: bool) -> Result<Presence> {
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
        scheduling,
    };
    let ttl = run_lock::settings().ttl;
    if store.backend() == Backend::Sqlite {
        loop {
            // Checked and joined in one write, so two processes starting at once are not both
            // let in; a store that refuses writes (a full disk) is only checked.
            let others = match store.join_alone(&me, ttl.as_millis() as i64).await {
                Ok(others) => others,
                Err(e) => {
                    tracing::warn!("this node could not say it is alive: {e}");
                    store.live_nodes().await?.into_iter().filter(|n| n.id != me.id).collect()
                }
            };
            let Some(other) = others.first() else { break };
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
    } else if let Err(e) = store.beat_node(&me, ttl.as_millis() as i64).await {
        // A store that refuses writes (a full disk) still serves what it can, and says why
        // it is not ready; the heartbeat tries again.
        tracing::warn!("this node could not say it is alive: {e}");
    }
    // Through a connection of its own: a busy pool must not make a live node look dead.
    let keeper = store.for_renewals().await?;
    let id = me.id.clone();
    let record = std::sync::Arc::new(std::sync::Mutex::new(me));
    let left = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let beating = {
        let (record, left) = (record.clone(), left.clone());
        tokio::spawn(async move {
            let every = ttl / 6;
            loop {
                tokio::time::sleep(every).await;
                let me = record.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if let Err(e) = beat(&keeper, &me, &left).await {
                    tracing::warn!("this node's heartbeat: {e}");
                }
            }
        })
    };
    Ok(Presence { store: store.clone(), record, id, beat: beating, left })
}

impl Presence {
    /// Where its API answers, said at once.
    pub async fn serving(&self, address: String) -> Result<()> {
        let me = {
            let mut r = self.record.lock().unwrap_or_else(|p| p.into_inner());
            r.address = Some(address);
            r.clone()
        };
        if let Err(e) = beat(&self.store, &me, &self.left).await {
            tracing::warn!("this node could not say where it serves: {e}");
        }
        Ok(())
    }

    /// What says this node is stopping (from a task that hears the signal).
    pub fn stopper(&self) -> Stopper {
        Stopper { store: self.store.clone(), record: self.record.clone(), left: self.left.clone() }
    }

    /// Gone: no longer listed, its connections given back for the other nodes to take at once
    /// (its leases are released by its runs).
    pub async fn leave(self) {
        self.left.store(true, std::sync::atomic::Ordering::SeqCst);
        self.beat.abort();
        // Gone before the row is: a beat of its own cannot follow the removal.
        let _ = self.beat.await;
        if let Err(e) = self.store.give_back_all(&self.id).await {
            tracing::warn!("this node could not give its connections back: {e}");
        }
        if let Err(e) = self.store.remove_node(&self.id).await {
            tracing::warn!("this node could not say it leaves: {e}");
        }
    }
}

/// The live node other than this one that owns `connection` and takes its turns, if any: a
/// run asked for here is handed to it.
pub async fn other_owner(store: &Store, connection: &str) -> Result<Option<String>> {
    let me = run_lock::incarnation();
    let rows = store.schedule_rows().await?;
    let Some(owner) = rows.into_iter().find(|r| r.connection == connection).and_then(|r| r.owner) else {
        return Ok(None);
    };
    if owner == me {
        return Ok(None);
    }
    let live = store.live_nodes().await?;
    Ok(live.iter().any(|n| n.id == owner && n.scheduling && !n.stopping).then_some(owner))
}

/// What moved, said as a line (None: nothing did).
pub fn said(m: &Moves) -> Option<String> {
    let list = |v: &mut dyn Iterator<Item = &String>| v.map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", ");
    let mut parts = vec![];
    if !m.take.is_empty() {
        let from_others: Vec<&(String, Option<String>)> = m.take.iter().filter(|(_, f)| f.is_some()).collect();
        parts.push(format!(
            "took {} ({} from another node)",
            list(&mut m.take.iter().map(|(c, _)| c)),
            from_others.len()
        ));
    }
    if !m.give.is_empty() {
        parts.push(format!("gave back {}", list(&mut m.give.iter())));
    }
    (!parts.is_empty()).then(|| format!("connections: {}; its fair share is {}", parts.join("; "), m.fair))
}

/// A node as the status API and `tenure nodes --json` give it: the connections `shown` lets
/// through (a token limited to one connection sees only that one's lease).
pub fn document(n: &NodeView, shown: impl Fn(&str) -> bool) -> serde_json::Value {
    let at = |ms: i64| run_lock::moment(ms);
    let owns: Vec<&String> = n.owns.iter().filter(|c| shown(c)).collect();
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
        "scheduling": d.scheduling, "this_process": n.me, "owns": owns, "holds": holds})
}

/// Says that a node is stopping: it finishes its runs and takes no new work.
pub struct Stopper {
    store: Store,
    record: std::sync::Arc<std::sync::Mutex<NodeRecord>>,
    left: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Stopper {
    pub async fn mark(self) {
        let me = {
            let mut r = self.record.lock().unwrap_or_else(|p| p.into_inner());
            r.stopping = true;
            r.clone()
        };
        if let Err(e) = beat(&self.store, &me, &self.left).await {
            tracing::warn!("this node could not say it is stopping: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, stopping: bool, scheduling: bool) -> NodeRecord {
        NodeRecord {
            id: id.into(),
            host: "h".into(),
            pid: 1,
            version: "v".into(),
            started_ms: 0,
            seen_ms: 0,
            expires_ms: 0,
            address: None,
            stopping,
            scheduling,
        }
    }

    fn rows(owners: &[(&str, Option<&str>)]) -> Vec<ScheduleRow> {
        owners
            .iter()
            .map(|(c, o)| ScheduleRow {
                connection: c.to_string(),
                owner: o.map(str::to_string),
                owned_ms: None,
                next_ms: 0,
            })
            .collect()
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    #[test]
    fn a_node_takes_free_connections_up_to_its_fair_share() {
        let live = [node("a", false, true), node("b", false, true), node("c", false, true)];
        let all: Vec<(String, Option<&str>)> = names(7).into_iter().map(|c| (c, None)).collect();
        let r = rows(&all.iter().map(|(c, o)| (c.as_str(), *o)).collect::<Vec<_>>());
        let m = share(&r, &names(7), &live, "a", false, &BTreeSet::new());
        assert_eq!(m.fair, 3);
        assert_eq!(m.take.len(), 3, "{m:?}");
        assert!(m.give.is_empty() && m.add.is_empty());
    }

    #[test]
    fn a_node_above_its_share_gives_back_what_it_does_not_run() {
        // b joined: a owns all four, its share is now two; it runs c0, so c1 and c2 go.
        let live = [node("a", false, true), node("b", false, true)];
        let r = rows(&[("c0", Some("a")), ("c1", Some("a")), ("c2", Some("a")), ("c3", Some("a"))]);
        let running: BTreeSet<String> = ["c0".to_string()].into();
        let m = share(&r, &names(4), &live, "a", false, &running);
        assert_eq!(m.give, vec!["c1".to_string(), "c2".to_string()]);
        assert!(m.take.is_empty());
        // b takes what is free, and nothing a still owns.
        let r = rows(&[("c0", Some("a")), ("c1", None), ("c2", None), ("c3", Some("a"))]);
        let m = share(&r, &names(4), &live, "b", false, &BTreeSet::new());
        assert_eq!(m.take, vec![("c1".to_string(), None), ("c2".to_string(), None)]);
    }

    #[test]
    fn the_connections_of_a_stopping_dead_or_idle_node_are_taken_over() {
        // a stops, d is dead (not live), e takes no turns: b and c share everything.
        let live = [node("a", true, true), node("b", false, true), node("c", false, true), node("e", false, false)];
        let r = rows(&[("c0", Some("a")), ("c1", Some("d")), ("c2", Some("e")), ("c3", Some("c"))]);
        let m = share(&r, &names(4), &live, "b", false, &BTreeSet::new());
        assert_eq!(m.fair, 2);
        assert_eq!(m.take, vec![("c0".to_string(), Some("a".to_string())), ("c1".to_string(), Some("d".to_string()))]);
        // The stopping node gives back all it owns; a connection no longer configured goes too.
        let r = rows(&[("c0", Some("a")), ("gone", Some("a"))]);
        let m = share(&r, &names(1), &live, "a", true, &BTreeSet::new());
        assert_eq!(m.give, vec!["gone".to_string(), "c0".to_string()]);
        assert!(m.take.is_empty());
    }

    #[test]
    fn a_connection_without_a_schedule_is_added_and_a_lone_node_owns_all() {
        // A node not listed (it could not say it is alive) still counts itself.
        let r = rows(&[("c0", None)]);
        let m = share(&r, &names(3), &[], "a", false, &BTreeSet::new());
        assert_eq!(m.add, vec!["c1".to_string(), "c2".to_string()]);
        assert_eq!(m.fair, 3);
        assert_eq!(m.take, vec![("c0".to_string(), None)]);
    }
}
