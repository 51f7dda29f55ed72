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

/// Team joins, many accounts per PATCH: far fewer calls for an initial sync.
async fn join_teams(
    client: &ScimClient,
    teams: &HashMap<String, String>,
    joins: Vec<(usize, String, String)>,
) -> Vec<Outcome> {
    let mut by_team: HashMap<String, Vec<(usize, String)>> = HashMap::new();
    for (i, team, account) in joins {
        by_team.entry(team).or_default().push((i, account));
    }
    let mut out = vec![];
    for (team, members) in by_team {
        let group = &teams[&team];
        for batch in members.chunks(1000) {
            let ids: Vec<&str> = batch.iter().map(|(_, a)| a.as_str()).collect();
            let r = client.add_members(group, &ids).await.map_err(|e| e.to_string());
            for (i, a) in batch {
                out.push((*i, r.as_ref().map(|_| ("ok".to_string(), a.clone())).map_err(Clone::clone)));
            }
        }
    }
    out
}

/// Applies a plan. `teams` maps lower-cased team names to their ids on the target; teams the
/// plan needs and the target lacks are made first. `progress` hears (done, total) workers.
///
/// Batches are pipelined: while one batch's calls are in flight, the previous batch's outcomes
/// and the next batch's intents are written (an intent is always written before its call).
/// Team joins wait for the end of the run and go many accounts per call.
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
    let chunk = (concurrency * 16).max(64);
    let batches: Vec<&[String]> = order.chunks(chunk).collect();
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    // Journal ids by action index.
    let mut ids: HashMap<usize, String> = HashMap::new();
    let intents_for = |workers: &[String], ids: &mut HashMap<usize, String>| -> Vec<JournalEntry> {
        let mut intents = vec![];
        for w in workers {
            for (i, a) in &per_worker[w] {
                let id = uuid::Uuid::new_v4().to_string();
                ids.insert(*i, id.clone());
                intents.push(JournalEntry {
                    id,
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
    let mut all_joins = vec![];
    let mut pending: Option<Outcomes> = None;
    if let Some(first) = batches.first() {
        let intents = intents_for(first, &mut ids);
        store.journal_intents(&intents).await.map_err(|e| e.to_string())?;
    }
    let mut done = 0;
    for (b, workers) in batches.iter().enumerate() {
        let next_intents = batches.get(b + 1).map(|n| intents_for(n, &mut ids)).unwrap_or_default();
        let calls = async {
            let mut set = tokio::task::JoinSet::new();
            for w in workers.iter() {
                let actions = per_worker[w].clone();
                let client = client.clone();
                let teams = teams.clone();
                let permit = sem.clone().acquire_owned().await.expect("the semaphore stays open");
                set.spawn(async move {
                    let r = run_worker(&client, &teams, &actions).await;
                    drop(permit);
                    r
                });
            }
            let mut results = vec![];
            let mut joins = vec![];
            while let Some(joined) = set.join_next().await {
                let (r, j) = joined.map_err(|e| format!("a worker task failed: {e}"))?;
                results.extend(r);
                joins.extend(j);
            }
            Ok::<_, String>((results, joins))
        };
        let writes = async {
            if let Some(o) = &pending {
                store.record_outcomes(o).await.map_err(|e| e.to_string())?;
            }
            if !next_intents.is_empty() {
                store.journal_intents(&next_intents).await.map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        };
        let (called, written) = tokio::join!(calls, writes);
        written?;
        let (results, joins) = called?;
        all_joins.extend(joins);
        pending = Some(outcomes(plan, run_id, &ids, results, &mut summary));
        done += workers.len();
        progress(done, total_workers);
    }
    if let Some(o) = &pending {
        store.record_outcomes(o).await.map_err(|e| e.to_string())?;
    }
    tracing::debug!(workers = total_workers, "calls done; team joins next");
    if !all_joins.is_empty() {
        let results = join_teams(client, &teams, all_joins).await;
        let o = outcomes(plan, run_id, &ids, results, &mut summary);
        store.record_outcomes(&o).await.map_err(|e| e.to_string())?;
    }
    Ok(summary)
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
