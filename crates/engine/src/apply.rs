//! Applying a plan: workers in parallel up to the connection's concurrency, one worker's
//! actions in order; every action journaled as an intent before its call and given its
//! outcome after, together with its links and audit records. A run that stopped (crash,
//! kill -9) is resolved against the target before the next one plans.

use crate::{Action, Kind, Plan};
use scim::patch::{OpKind, Operation};
use scim::PatchPath;
use scim_client::{Created, ScimClient};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use store::{AuditEntry, JournalEntry, Link, Outcomes, Store};

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub run_id: String,
    pub total: usize,
    pub skipped: usize,
    pub no_change: usize,
    pub processed: usize,
    pub failed: usize,
    pub by_kind: std::collections::BTreeMap<String, usize>,
    /// Actions left in flight by an earlier run, resolved before this one.
    pub recovered: usize,
    /// The first error of each worker that failed (for the dead-letter count and notices).
    #[serde(skip)]
    pub failures: std::collections::BTreeMap<String, String>,
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// Resolves actions an earlier run left as intents: a create whose account exists on the
/// target is linked (no duplicate); anything else is marked interrupted, and the next plan,
/// made from the target's actual state, redoes what is still needed.
pub async fn recover(store: &Store, client: &ScimClient, connection: &str) -> Result<usize, String> {
    let open = store.journal_in_state(connection, "intent").await.map_err(|e| e.to_string())?;
    let mut out = Outcomes::default();
    for e in &open {
        let action: Action = serde_json::from_str(&e.body).map_err(|x| format!("journal {}: {x}", e.id))?;
        if action.kind == Kind::Create {
            let name = action.user_name.clone().unwrap_or_default();
            let found = client.find_user_by_user_name(&name).await.map_err(|x| x.to_string())?;
            if let Some(u) = found {
                let id = u["id"].as_str().unwrap_or_default().to_string();
                out.links.push(Link {
                    connection: connection.into(),
                    worker_id: e.worker_id.clone(),
                    target_id: id.clone(),
                    user_name: name.clone(),
                    origin: "created".into(),
                    linked_at: now(),
                });
                out.journal.push((e.id.clone(), "resolved".into(), Some(format!("found on the target as {id}"))));
                out.audit.push(AuditEntry {
                    run_id: e.run_id.clone(),
                    connection: connection.into(),
                    worker_id: e.worker_id.clone(),
                    action: "create".into(),
                    outcome: "recovered".into(),
                    detail: json!({"reason": "the run stopped after the call; the account exists", "target_id": id})
                        .to_string(),
                });
                continue;
            }
        }
        out.journal.push((
            e.id.clone(),
            "interrupted".into(),
            Some("the run stopped; re-planned from the target".into()),
        ));
    }
    store.record_outcomes(&out).await.map_err(|e| e.to_string())?;
    Ok(open.len())
}

fn op(kind: OpKind, path: &str, value: Option<Value>) -> Result<Operation, String> {
    let path = PatchPath::parse(path).map_err(|e| e.detail)?;
    Ok(Operation { op: kind, path: Some(path), value })
}

type Outcome = (usize, Result<(String, String), String>);

/// Runs one worker's actions in order; stops at the first failure. Joining a team is left to
/// the caller (returned as (action, team, account)), which joins many accounts per call.
async fn run_worker(
    client: &ScimClient,
    teams: &HashMap<String, String>,
    actions: &[(usize, Action)],
) -> (Vec<Outcome>, Vec<(usize, String, String)>) {
    let mut out = vec![];
    let mut joins = vec![];
    let mut target: Option<String> = None;
    let mut failed = false;
    for (i, a) in actions {
        if failed {
            out.push((*i, Err("not tried: an earlier action for this worker failed".into())));
            continue;
        }
        if a.target_id.is_some() && target.is_none() {
            target = a.target_id.clone();
        }
        let id = target.clone().unwrap_or_default();
        let r: Result<Option<String>, String> = match a.kind {
            Kind::Create => match client.create_user(a.body.as_ref().unwrap_or(&Value::Null)).await {
                Ok(c) => {
                    target = Some(c.id().to_string());
                    Ok(Some(match c {
                        Created::New(_) => "created".into(),
                        Created::Recovered(_) => "created (answer lost, found)".into(),
                        Created::Adopted(_) => "adopted (existed)".into(),
                    }))
                }
                Err(e) => Err(e.to_string()),
            },
            Kind::Adopt => Ok(Some("linked".into())),
            Kind::Update => {
                let ops: Result<Vec<Operation>, String> = a
                    .changes
                    .iter()
                    .map(|c| match &c.after {
                        Value::Null => op(OpKind::Remove, &c.attribute, None),
                        v => op(OpKind::Replace, &c.attribute, Some(v.clone())),
                    })
                    .collect();
                match ops {
                    Ok(ops) => client.patch_user(&id, &ops).await.map(|_| None).map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                }
            }
            Kind::Deactivate => client.deactivate_user(&id).await.map(|_| None).map_err(|e| e.to_string()),
            Kind::Reactivate => client.reactivate_user(&id).await.map(|_| None).map_err(|e| e.to_string()),
            Kind::Delete => match client.delete_user(&id).await {
                Ok(()) => Ok(Some("deleted".into())),
                // Gone already (deleted by hand): the outcome wanted.
                Err(scim_client::ClientError::Http { status: 404, .. }) => Ok(Some("deleted (was gone)".into())),
                Err(e) => Err(e.to_string()),
            },
            Kind::TeamAdd if teams.contains_key(&a.team.clone().unwrap_or_default().to_lowercase()) => {
                joins.push((*i, a.team.clone().unwrap_or_default().to_lowercase(), id.clone()));
                continue;
            }
            Kind::TeamAdd | Kind::TeamRemove => {
                let team = a.team.clone().unwrap_or_default();
                match teams.get(&team.to_lowercase()) {
                    None => Err(format!("team {team:?} does not exist on the target")),
                    Some(g) if a.kind == Kind::TeamAdd => {
                        client.add_members(g, &[id.as_str()]).await.map(|_| None).map_err(|e| e.to_string())
                    }
                    Some(g) => client.remove_members(g, &[id.as_str()]).await.map(|_| None).map_err(|e| e.to_string()),
                }
            }
            Kind::NoChange | Kind::Skip => Ok(None),
        };
        // (what happened, the account it happened to)
        let r = r.map(|note| (note.unwrap_or_else(|| "ok".into()), target.clone().unwrap_or_default()));
        failed = r.is_err();
        out.push((*i, r));
    }
    (out, joins)
}

/// Applies a plan. `teams` maps lower-cased team names to their ids on the target; teams the
/// plan needs and the target lacks are made first. `progress` hears (done, total) workers.
///
/// Workers start as soon as a call slot is free, batch after batch: a batch's intents are
/// written before any of its calls and while the previous batch's calls are in flight (an
/// intent is always written before its call), and no batch waits for the slowest worker of
/// the one before. Outcomes are written as they come, in groups. Team joins go many accounts
/// per call, as soon as a team has a full call's worth, while the creates go on.
pub async fn apply(
    store: &Store,
    client: &ScimClient,
    plan: &Plan,
    mut teams: HashMap<String, String>,
    run_id: &str,
    concurrency: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Summary, String> {
    let mut summary = Summary { run_id: run_id.to_string(), total: plan.actions.len(), ..Summary::default() };
    for t in &plan.missing_teams {
        let g = client.create_group(t, &[]).await.map_err(|e| format!("cannot make team {t:?}: {e}"))?;
        teams.insert(t.to_lowercase(), g.id().to_string());
    }
    let teams = Arc::new(teams);
    // One worker's actions stay together and in order.
    let mut order: Vec<String> = vec![];
    let mut per_worker: HashMap<String, Vec<(usize, Action)>> = HashMap::new();
    for (i, a) in plan.actions.iter().enumerate() {
        match a.kind {
            Kind::NoChange => summary.no_change += 1,
            Kind::Skip => summary.skipped += 1,
            _ => {
                let e = per_worker.entry(a.worker.clone()).or_default();
                if e.is_empty() {
                    order.push(a.worker.clone());
                }
                e.push((i, a.clone()));
            }
        }
    }
    let total_workers = order.len();
    // Journal ids by action index, made up front: intents and outcomes are written
    // concurrently and both name them.
    // Time-ordered (v7) and made in the order they are written: each journal insert appends
    // to the id index instead of landing on a random page of it.
    let ids: HashMap<usize, String> =
        order.iter().flat_map(|w| &per_worker[w]).map(|(i, _)| (*i, uuid::Uuid::now_v7().to_string())).collect();
    let intents_for = |workers: &[String]| -> Vec<JournalEntry> {
        let mut intents = vec![];
        for w in workers {
            for (i, a) in &per_worker[w] {
                intents.push(JournalEntry {
                    id: ids[i].clone(),
                    run_id: run_id.into(),
                    connection: plan.connection.clone(),
                    worker_id: w.clone(),
                    kind: a.kind.as_str().into(),
                    body: serde_json::to_string(a).expect("serialisable"),
                    state: "intent".into(),
                    attempts: 0,
                    error: None,
                });
            }
        }
        intents
    };
    let chunk = (concurrency * 16).max(64);
    let batches: Vec<&[String]> = order.chunks(chunk).collect();
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    type Finished = (Vec<Outcome>, Vec<(usize, String, String)>);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Finished>();

    let calls = async {
        let mut set = tokio::task::JoinSet::new();
        if let Some(first) = batches.first() {
            store.journal_intents(&intents_for(first)).await.map_err(|e| e.to_string())?;
        }
        for (b, workers) in batches.iter().enumerate() {
            let start = async {
                for w in workers.iter() {
                    let permit = sem.clone().acquire_owned().await.expect("the semaphore stays open");
                    let (client, teams, actions, tx) =
                        (client.clone(), teams.clone(), per_worker[w].clone(), tx.clone());
                    set.spawn(async move {
                        let r = run_worker(&client, &teams, &actions).await;
                        drop(permit);
                        // The receiver outlives every worker task (it ends when all senders do).
                        let _ = tx.send(r);
                    });
                }
            };
            let next = async {
                match batches.get(b + 1) {
                    Some(n) => store.journal_intents(&intents_for(n)).await.map_err(|e| e.to_string()),
                    None => Ok(()),
                }
            };
            let ((), written) = tokio::join!(start, next);
            written?;
            while let Some(r) = set.try_join_next() {
                r.map_err(|e| format!("a worker task failed: {e}"))?;
            }
        }
        while let Some(r) = set.join_next().await {
            r.map_err(|e| format!("a worker task failed: {e}"))?;
        }
        drop(tx);
        Ok::<_, String>(())
    };

    let summary_ref = &mut summary;
    let record = async {
        const GROUP: usize = 512;
        let mut buffered: Vec<Outcome> = vec![];
        // Per team: accounts waiting to join; one PATCH in flight per team at a time, so a
        // team's member list is never written by two calls at once.
        let mut waiting: HashMap<String, Vec<(usize, String)>> = HashMap::new();
        let mut busy: std::collections::HashSet<String> = Default::default();
        let mut joining: Joining = tokio::task::JoinSet::new();
        let mut done = 0;
        let mut open = true;
        loop {
            tokio::select! {
                got = rx.recv(), if open => match got {
                    Some((results, joins)) => {
                        buffered.extend(results);
                        for (i, team, account) in joins {
                            waiting.entry(team.clone()).or_default().push((i, account));
                            start_joins(client, &teams, &mut joining, &mut waiting, &mut busy, &team, false);
                        }
                        done += 1;
                        if done % 64 == 0 || done == total_workers {
                            progress(done, total_workers);
                        }
                    }
                    None => open = false,
                },
                Some(r) = joining.join_next() => {
                    let (team, out) = r.map_err(|e| format!("a team join failed: {e}"))?;
                    buffered.extend(out);
                    busy.remove(&team);
                    start_joins(client, &teams, &mut joining, &mut waiting, &mut busy, &team, !open);
                }
                else => {}
            }
            if !open {
                // The calls are over: whatever waits joins now, a call's worth at a time.
                let names: Vec<String> = waiting.keys().cloned().collect();
                for team in names {
                    start_joins(client, &teams, &mut joining, &mut waiting, &mut busy, &team, true);
                }
            }
            let finished = !open && joining.is_empty();
            if buffered.len() >= GROUP || (finished && !buffered.is_empty()) {
                let o = outcomes(plan, run_id, &ids, std::mem::take(&mut buffered), summary_ref);
                store.record_outcomes(&o).await.map_err(|e| e.to_string())?;
            }
            if finished {
                return Ok::<_, String>(());
            }
        }
    };
    let (called, recorded) = tokio::join!(calls, record);
    called?;
    recorded?;
    tracing::debug!(workers = total_workers, "calls and team joins done");
    Ok(summary)
}

/// Accounts joining one team per PATCH.
const JOIN_BATCH: usize = 1000;

/// Team-join calls in flight, each answering for its team.
type Joining = tokio::task::JoinSet<(String, Vec<Outcome>)>;

/// Starts the next join call for `team` unless one is in flight for it or, before the end
/// (`all` false), fewer than a call's worth of accounts wait.
fn start_joins(
    client: &ScimClient,
    teams: &HashMap<String, String>,
    joining: &mut Joining,
    waiting: &mut HashMap<String, Vec<(usize, String)>>,
    busy: &mut std::collections::HashSet<String>,
    team: &str,
    all: bool,
) {
    let Some(w) = waiting.get_mut(team) else { return };
    if busy.contains(team) || w.is_empty() || (!all && w.len() < JOIN_BATCH) {
        return;
    }
    let members: Vec<(usize, String)> = w.drain(..w.len().min(JOIN_BATCH)).collect();
    busy.insert(team.to_string());
    let (client, group, team) = (client.clone(), teams[team].clone(), team.to_string());
    joining.spawn(async move {
        let ids: Vec<&str> = members.iter().map(|(_, a)| a.as_str()).collect();
        let r = client.add_members(&group, &ids).await.map_err(|e| e.to_string());
        let out = members
            .iter()
            .map(|(i, a)| (*i, r.as_ref().map(|_| ("ok".to_string(), a.clone())).map_err(Clone::clone)))
            .collect();
        (team, out)
    });
}

/// The journal outcomes, links and audit records of finished calls.
fn outcomes(
    plan: &Plan,
    run_id: &str,
    ids: &HashMap<usize, String>,
    results: Vec<Outcome>,
    summary: &mut Summary,
) -> Outcomes {
    let mut out = Outcomes::default();
    for (i, r) in results {
        let a = &plan.actions[i];
        let jid = ids[&i].clone();
        let (state, error, outcome, target) = match &r {
            Ok((note, t)) => ("done", None, note.clone(), t.clone()),
            Err(e) => ("failed", Some(e.clone()), "failed".to_string(), a.target_id.clone().unwrap_or_default()),
        };
        if r.is_ok() {
            summary.processed += 1;
            *summary.by_kind.entry(a.kind.as_str().to_string()).or_default() += 1;
        } else {
            summary.failed += 1;
            if let Err(e) = &r {
                summary.failures.entry(a.worker.clone()).or_insert_with(|| e.clone());
            }
        }
        if r.is_ok() && matches!(a.kind, Kind::Create | Kind::Adopt) && !target.is_empty() {
            out.links.push(Link {
                connection: plan.connection.clone(),
                worker_id: a.worker.clone(),
                target_id: target.clone(),
                user_name: a.user_name.clone().unwrap_or_default(),
                origin: if a.kind == Kind::Create { "created".into() } else { "adopted".into() },
                linked_at: now(),
            });
        }
        if r.is_ok() {
            let key = (plan.connection.clone(), a.worker.clone());
            match a.kind {
                Kind::Deactivate => out.deactivated.push((key.0, key.1, plan.at.clone())),
                Kind::Reactivate => out.undeactivated.push(key),
                Kind::Delete => out.unlinks.push(key),
                _ => {}
            }
        }
        out.journal.push((jid, state.into(), error.clone()));
        out.audit.push(AuditEntry {
            run_id: run_id.into(),
            connection: plan.connection.clone(),
            worker_id: a.worker.clone(),
            action: a.kind.as_str().into(),
            outcome: if let Some(e) = &error { format!("failed: {e}") } else { outcome },
            detail: json!({"reason": a.reason, "role": a.role, "changes": a.changes, "team": a.team,
                           "user_name": a.user_name, "target_id": if target.is_empty() { None } else { Some(&target) }})
            .to_string(),
        });
    }
    out
}
