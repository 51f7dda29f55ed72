//! `tenure status`, `tenure nodes` and `tenure accounts`: the command line's overview, as the
//! dashboard and the API give it (service::status, service::nodes, service::accounts).

use crate::{accounts, config, duration, status};
use std::path::Path;

pub async fn status(
    data_dir: &Path,
    database_url: Option<&str>,
    interval: Option<String>,
    json: bool,
) -> Result<u8, String> {
    let interval = interval.map(|i| duration::parse(&i).map_err(|e| format!("--interval: {e}"))).transpose()?;
    let store = config::open(data_dir, database_url).await?;
    let st = status::read(&store, None, interval, |_| true).await;
    store.close().await;
    let st = st?;
    if json {
        let v = status::document(&st, |_| true);
        outln!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
        return Ok(0);
    }
    if st.connections.is_empty() {
        outln!("no connection yet: add one with `tenure connection add`");
    }
    let run = |r: &Option<status::RunSeen>| match r {
        None => "none".to_string(),
        Some(r) => {
            let n = &r.counts;
            let c = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
            format!(
                "{} (total {}, skipped {}, no change {}, processed {}, failed {})",
                r.finished_at.as_deref().unwrap_or(&r.started_at),
                c(n.total),
                c(n.skipped),
                c(n.no_change),
                c(n.processed),
                c(n.failed)
            )
        }
    };
    for c in &st.connections {
        let state = match (&c.paused, c.enabled, c.running) {
            (_, _, true) => "running".to_string(),
            (Some((at, by)), _, _) => format!("paused since {at} by {by}"),
            (None, true, _) => "enabled".to_string(),
            (None, false, _) => "not in the configuration".to_string(),
        };
        outln!("{:?}: {state}", c.connection);
        outln!("  last run:            {}", run(&c.last_run));
        outln!("  last successful run: {}", run(&c.last_successful_run));
        if let Some(s) = c.last_run.as_ref().and_then(|r| r.counts.scim.as_ref()) {
            let pace = s.pace_per_second.map_or("no limit met".to_string(), |p| format!("{p} requests/s"));
            outln!(
                "  target pace:         {pace} (last run: {} requests, {} refused with 429)",
                s.requests,
                s.rate_limited
            );
        }
        match (c.next_run, interval) {
            (Some(t), _) => outln!("  next run:            {t}"),
            (None, Some(_)) => outln!("  next run:            when the scheduler next turns (no finished run yet)"),
            (None, None) => outln!("  next run:            set by the scheduler (give --interval to see when)"),
        }
        outln!("  reviews waiting: {}, dead letters: {}, held workers: {}", c.pending_reviews, c.dead_letters, c.held);
        if let Some(g) = &c.guard {
            let (what, held, flag) = match g.guard {
                store::GuardKind::Teams => ("team guard", "team removals", "--confirm-team-removals"),
                store::GuardKind::Deprovision => ("mass-deprovision guard", "deactivations", "--confirm-deprovision"),
                store::GuardKind::Reactivation => ("reactivation guard", "reactivations", "--confirm-reactivation"),
            };
            outln!(
                "  the {what} holds {} {held} (since {}, by {}): {}; the rest of each run goes on; apply {flag} {} \
                 to let them through",
                g.deactivations,
                g.tripped_at,
                g.by,
                g.why.trim_end_matches('.'),
                g.deactivations
            );
        }
    }
    match (&st.audit.head, &st.audit.known, st.audit.behind) {
        (_, Some((seq, hash)), true) => outln!(
            "audit: BEHIND its head: record {seq} ({hash}) was written, the chain ends at {}; run `tenure audit verify`",
            st.audit.head.as_ref().map_or(0, |(s, _)| *s)
        ),
        (Some((seq, hash)), _, _) => outln!("audit: head {seq}:{hash}"),
        (None, _, _) => outln!("audit: no record yet"),
    }
    if let Some(r) = &st.restored {
        outln!(
            "restored at {} from the backup of {}: scheduled runs wait for `tenure restore --confirm`",
            r["restored_at"].as_str().unwrap_or("?"),
            r["taken_at"].as_str().unwrap_or("?")
        );
    }
    match st.nodes.len() {
        0 => outln!("nodes: none running (no `tenure serve` or `tenure run` works on this store)"),
        n => outln!("nodes: {n} running; see `tenure nodes`"),
    }
    match &st.last_received {
        None => outln!("HR data: none received yet"),
        Some(l) => outln!(
            "HR data: last received {} from {} ({}, {}): {} rows, {} accepted, {} quarantined",
            l.loaded_at,
            l.source,
            l.kind,
            l.outcome,
            l.rows,
            l.accepted,
            l.quarantined
        ),
    }
    Ok(0)
}

/// `tenure nodes`: the processes working on this store, the connections each owns (takes the
/// scheduled turns of) and those it runs now.
pub async fn nodes(data_dir: &Path, database_url: Option<&str>, json: bool) -> Result<u8, String> {
    let store = config::open(data_dir, database_url).await?;
    let nodes = service::nodes::list(&store).await;
    store.close().await;
    let nodes = nodes?;
    if json {
        let v: Vec<serde_json::Value> = nodes.iter().map(|n| service::nodes::document(n, |_| true)).collect();
        outln!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
        return Ok(0);
    }
    let at = service::run_lock::moment;
    for n in &nodes {
        let d = &n.node;
        outln!(
            "node {}  {} pid {}  tenure {}  up since {}  last seen {}{}{}",
            d.id,
            d.host,
            d.pid,
            d.version,
            at(d.started_ms),
            at(d.seen_ms),
            d.address.as_deref().map(|a| format!("  serving {a}")).unwrap_or_default(),
            if d.stopping { "  STOPPING" } else { "" }
        );
        match (d.scheduling, n.owns.as_slice()) {
            (false, _) => outln!("  takes no scheduled turns (--interval 0)"),
            (true, []) => outln!("  owns no connection"),
            (true, owns) => outln!(
                "  owns {} connection(s): {}",
                owns.len(),
                owns.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", ")
            ),
        }
        if n.holds.is_empty() {
            outln!("  runs no connection now");
        }
        for l in &n.holds {
            outln!(
                "  runs {:?} (epoch {}) since {}, lease until {} unless renewed",
                l.connection,
                l.epoch,
                at(l.since_ms),
                at(l.expires_ms)
            );
        }
    }
    outln!("nodes: {}", nodes.len());
    Ok(0)
}

pub async fn accounts(
    data_dir: &Path,
    database_url: Option<&str>,
    connection: Option<String>,
    json: bool,
) -> Result<u8, String> {
    let store = config::open(data_dir, database_url).await?;
    let list = accounts::list(&store, connection.as_deref()).await;
    store.close().await;
    let list = list?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&list).map_err(|e| e.to_string())?);
        return Ok(0);
    }
    if list.is_empty() {
        outln!("no account managed yet: `tenure apply` creates or adopts them");
    }
    for a in &list {
        let state = match &a.deactivated_at {
            Some(at) => format!("inactive since {at}"),
            None => a.state.to_string(),
        };
        let last = a
            .last_action
            .as_ref()
            .map(|l| format!("; last: {} {} at {}", l.action, l.outcome, l.at))
            .unwrap_or_default();
        outln!(
            "{:?} {:<32} worker {} ({}): {state}, {} {}{last}",
            a.connection,
            a.user_name,
            a.worker,
            if a.name.is_empty() { "not in the HR data" } else { &a.name },
            a.origin,
            a.linked_at
        );
    }
    outln!("{} account(s)", list.len());
    Ok(0)
}
