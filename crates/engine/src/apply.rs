//! Applying a plan: workers in parallel up to the connection's concurrency, one worker's
//! actions in order; a worker's actions journaled as one intent before the first call and
//! given their outcome when the last ends; each action's audit record (and a create's link)
//! written as calls end. A run that stopped (crash, kill -9) is resolved against the target
//! before the next one plans.

use crate::{Action, Kind, Plan};
use scim::patch::{OpKind, Operation};
use scim::PatchPath;
use scim_client::{Created, ScimClient};
use serde::Serialize;
use serde_json::Value;
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
    /// Every action that failed, with why, in the order they ended.
    pub failed_actions: Vec<FailedAction>,
}

/// One failed action, as the operator is told of it.
#[derive(Debug, Clone, Serialize)]
pub struct FailedAction {
    pub worker: String,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    pub error: String,
    /// The target's HTTP status, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The target's SCIM error type (`uniqueness`, `invalidValue`...), when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scim_type: Option<String>,
}

/// Why an action failed: in words, and the target's answer (HTTP status, SCIM error type) when
/// there was one, kept apart so that no reader has to find them in the words.
#[derive(Debug, Clone, PartialEq)]
pub struct Failed {
    pub text: String,
    pub status: Option<u16>,
    pub scim_type: Option<String>,
}

impl From<String> for Failed {
    fn from(text: String) -> Failed {
        Failed { text, status: None, scim_type: None }
    }
}

impl From<&str> for Failed {
    fn from(text: &str) -> Failed {
        text.to_string().into()
    }
}

impl From<scim_client::ClientError> for Failed {
    fn from(e: scim_client::ClientError) -> Failed {
        let mut last = &e;
        while let scim_client::ClientError::RetriesExhausted { last: l, .. } = last {
            last = l;
        }
        let (status, scim_type) = match last {
            scim_client::ClientError::Http { status, scim_type, .. } => (Some(*status), scim_type.clone()),
            scim_client::ClientError::Redirect { status, .. } => (Some(*status), None),
            _ => (None, None),
        };
        Failed { text: e.to_string(), status, scim_type }
    }
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// What the journal keeps of an action: enough to resolve it after a stop. The account's
/// attributes, reasons and changes are in the plan and the audit, not repeated here.
#[derive(Debug, Serialize, serde::Deserialize)]
struct Intended<'a> {
    kind: Kind,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    user_name: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    team: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    target_id: Option<std::borrow::Cow<'a, str>>,
    /// An update's new values: recovery tells by them whether the update was made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    changes: Vec<Set>,
}

/// One attribute's new value.
#[derive(Debug, Serialize, serde::Deserialize)]
struct Set {
    attribute: String,
    after: Value,
}

impl<'a> Intended<'a> {
    fn of(a: &'a Action) -> Self {
        Intended {
            kind: a.kind,
            user_name: a.user_name.as_deref().map(Into::into),
            team: a.team.as_deref().map(Into::into),
            target_id: a.target_id.as_deref().map(Into::into),
            changes: a.changes.iter().map(|c| Set { attribute: c.attribute.clone(), after: c.after.clone() }).collect(),
        }
    }
}

/// The actions of one journal row: a worker's actions of a run (a list), or, in rows written
/// before that, one action (an object).
fn intended(body: &str) -> Result<Vec<Intended<'_>>, serde_json::Error> {
    if body.trim_start().starts_with('[') {
        serde_json::from_str(body)
    } else {
        serde_json::from_str(body).map(|one| vec![one])
    }
}

/// How many open intents are looked up one by one; past this the target is read once.
const LOOKUPS_ONE_BY_ONE: usize = 64;
/// Resolved intents written per transaction, as recovery goes (a kill keeps what was written).
const RECOVERY_GROUP: usize = 200;

/// What the target shows of the accounts open intents touched.
#[derive(Default)]
struct Seen {
    by_id: HashMap<String, Value>,
    by_user_name: HashMap<String, String>,
    /// Ids whose lookup failed: their intents stay open.
    unknown: std::collections::HashSet<String>,
    /// Folded team name -> member ids (None: the teams could not be read).
    teams: Option<HashMap<String, std::collections::HashSet<String>>>,
}

/// Resolves what earlier runs left as intents (stopped by a crash or kill -9), against the
/// target: every action whose effect is found there is recorded as done ("found done after an
/// interruption": a create's link, a deactivation's moment, and an audit record for every
/// kind), unless its audit record was written before the stop; the rest is marked
/// interrupted, and the next plan, made from the target, redoes what is still needed.
/// Intents a link settles are not looked up; a few are looked up concurrently, many by
/// reading the target once; results are written as they come, entry by entry where the store
/// refuses a group, so one entry never holds up the others. Returns the open intents found.
pub async fn recover(
    store: &Store,
    client: &ScimClient,
    connection: &str,
    concurrency: usize,
) -> Result<usize, String> {
    let t0 = std::time::Instant::now();
    let open = store.journal_in_state(connection, "intent").await.map_err(|e| e.to_string())?;
    if open.is_empty() {
        return Ok(0);
    }
    let links: HashMap<String, String> = store
        .links(connection)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|l| (l.worker_id, l.target_id))
        .collect();
    let runs: Vec<String> = {
        let mut r: Vec<String> = open.iter().map(|e| e.run_id.clone()).collect();
        r.sort();
        r.dedup();
        r
    };
    let mut recorded = store.audited_in_runs(&runs).await.map_err(|e| e.to_string())?;
    let parsed: Vec<(&JournalEntry, Result<Vec<Intended<'_>>, String>)> =
        open.iter().map(|e| (e, intended(&e.body).map_err(|x| format!("journal {}: {x}", e.id)))).collect();
    // What must be looked at on the target.
    let mut ids: Vec<String> = vec![];
    let mut names: Vec<String> = vec![];
    let mut any_team = false;
    for (e, actions) in &parsed {
        let Ok(actions) = actions else { continue };
        let linked = links.get(&e.worker_id);
        for a in actions {
            match a.kind {
                Kind::Create if linked.is_none() => names.extend(a.user_name.as_deref().map(str::to_string)),
                Kind::Create | Kind::Adopt | Kind::NoChange | Kind::Skip => {}
                Kind::TeamAdd | Kind::TeamRemove => any_team = true,
                _ => ids.extend(a.target_id.as_deref().map(str::to_string).or_else(|| linked.cloned())),
            }
        }
    }
    ids.sort();
    ids.dedup();
    names.sort();
    names.dedup();
    let mut seen = Seen::default();
    if ids.len() + names.len() > LOOKUPS_ONE_BY_ONE {
        let users = client.list_users_lean().await.map_err(|e| format!("cannot read the target's users: {e}"))?;
        for u in users {
            let id = u["id"].as_str().unwrap_or_default().to_string();
            seen.by_user_name.insert(crate::fold(u["userName"].as_str().unwrap_or_default()), id.clone());
            seen.by_id.insert(id, u);
        }
    } else {
        look_up(client, &ids, &names, concurrency, &mut seen).await;
    }
    if any_team {
        seen.teams = match client.list_groups(None).await {
            Ok(groups) => Some(
                groups
                    .iter()
                    .map(|g| {
                        let members = g["members"].as_array().into_iter().flatten();
                        let members = members.filter_map(|m| m["value"].as_str().map(str::to_string)).collect();
                        (g["displayName"].as_str().unwrap_or_default().to_lowercase(), members)
                    })
                    .collect(),
            ),
            Err(e) => {
                tracing::warn!("recovery could not read the teams: {e}; team actions are re-planned");
                None
            }
        };
    }
    let mut parts: Vec<Outcomes> = vec![];
    let mut left_open = 0;
    for (e, actions) in parsed {
        let part = match actions {
            Ok(actions) => resolve(connection, e, &actions, links.get(&e.worker_id), &seen, &mut recorded),
            Err(why) => {
                Some(Outcomes { journal: vec![(e.id.clone(), "interrupted".into(), Some(why))], ..Outcomes::default() })
            }
        };
        match part {
            Some(p) => parts.push(p),
            None => left_open += 1,
        }
        if parts.len() >= RECOVERY_GROUP {
            write_recovered(store, std::mem::take(&mut parts)).await;
        }
    }
    write_recovered(store, parts).await;
    if left_open > 0 {
        tracing::warn!("{left_open} interrupted action(s) could not be looked up on the target: tried again next run");
    }
    tracing::debug!(ms = t0.elapsed().as_millis() as u64, intents = open.len(), "recovery done");
    Ok(open.len())
}

/// Looks accounts up by id and by userName, `concurrency` at a time.
async fn look_up(client: &ScimClient, ids: &[String], names: &[String], concurrency: usize, seen: &mut Seen) {
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for (key, by_name) in ids.iter().map(|i| (i.clone(), false)).chain(names.iter().map(|n| (n.clone(), true))) {
        let (client, sem) = (client.clone(), sem.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("the semaphore stays open");
            let r = if by_name { client.find_user_by_user_name(&key).await } else { client.get_user(&key).await };
            (key, by_name, r)
        });
    }
    while let Some(done) = set.join_next().await {
        let Ok((key, by_name, r)) = done else { continue };
        match r {
            Ok(Some(u)) => {
                let id = u["id"].as_str().unwrap_or_default().to_string();
                seen.by_user_name.insert(crate::fold(u["userName"].as_str().unwrap_or_default()), id.clone());
                seen.by_id.insert(id, u);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!("recovery could not look up {key:?}: {e}");
                if by_name {
                    seen.unknown.insert(format!("name:{}", crate::fold(&key)));
                } else {
                    seen.unknown.insert(key);
                }
            }
        }
    }
}

/// One open intent's outcome from what the target shows; None when it cannot be told (a
/// lookup failed): it stays open for the next run.
fn resolve(
    connection: &str,
    e: &JournalEntry,
    actions: &[Intended<'_>],
    link: Option<&String>,
    seen: &Seen,
    recorded: &mut HashMap<(String, String, String), usize>,
) -> Option<Outcomes> {
    let mut out = Outcomes::default();
    let mut account: Option<String> = link.cloned();
    let (mut done, mut acting) = (0, 0);
    for a in actions {
        if !a.kind.acts() || a.kind == Kind::Adopt {
            continue;
        }
        acting += 1;
        let key = (e.run_id.clone(), e.worker_id.clone(), a.kind.as_str().to_string());
        if let Some(n) = recorded.get_mut(&key).filter(|n| **n > 0) {
            // Its outcome was written before the stop (audit and all): nothing to add.
            *n -= 1;
            done += 1;
            if a.kind == Kind::Create && account.is_none() {
                account = a.user_name.as_deref().and_then(|n| seen.by_user_name.get(&crate::fold(n))).cloned();
            }
            continue;
        }
        let id = a.target_id.as_deref().map(str::to_string).or_else(|| account.clone());
        if !found_done(connection, e, a, id.as_deref(), &mut account, seen, &mut out)? {
            continue;
        }
        done += 1;
        let target = account.clone().or(id.clone()).unwrap_or_default();
        let key = (connection.to_string(), e.worker_id.clone());
        match a.kind {
            Kind::Deactivate => out.deactivated.push((key.0, key.1, e.created_at.clone())),
            Kind::Reactivate => out.undeactivated.push(key),
            Kind::Delete => out.unlinks.push(key),
            _ => {}
        }
        out.audit.push(AuditEntry {
            run_id: e.run_id.clone(),
            connection: connection.into(),
            worker_id: e.worker_id.clone(),
            action: a.kind.as_str().into(),
            outcome: "found done after an interruption".into(),
            detail: serde_json::to_string(&Detail {
                reason: "the run stopped after the call; its effect is on the target",
                role: None,
                changes: &[],
                team: a.team.as_deref(),
                user_name: a.user_name.as_deref(),
                target_id: &target,
                moved_from: None,
            })
            .expect("serialisable"),
        });
    }
    let (state, note) = if done == acting {
        ("resolved", "the run stopped; every action was found done on the target".to_string())
    } else {
        ("interrupted", format!("the run stopped; {done} of {acting} action(s) found done, the rest re-planned"))
    };
    out.journal.push((e.id.clone(), state.into(), Some(note)));
    Some(out)
}

/// Whether an interrupted action's effect is on the target; None when the target could not
/// say (the intent then stays open). A create found there links its account.
fn found_done(
    connection: &str,
    e: &JournalEntry,
    a: &Intended<'_>,
    id: Option<&str>,
    account: &mut Option<String>,
    seen: &Seen,
    out: &mut Outcomes,
) -> Option<bool> {
    let user = id.and_then(|i| seen.by_id.get(i));
    let unknown = id.is_some_and(|i| seen.unknown.contains(i));
    let found = match a.kind {
        Kind::Create => {
            let name = a.user_name.as_deref().unwrap_or_default();
            if account.is_some() {
                // Linked already: the create's records were written.
                true
            } else if seen.unknown.contains(&format!("name:{}", crate::fold(name))) {
                return None;
            } else if let Some(id) = seen.by_user_name.get(&crate::fold(name)) {
                out.links.push(Link {
                    connection: connection.into(),
                    worker_id: e.worker_id.clone(),
                    target_id: id.clone(),
                    user_name: name.to_string(),
                    origin: "created".into(),
                    linked_at: now(),
                });
                *account = Some(id.clone());
                true
            } else {
                false
            }
        }
        _ if unknown => return None,
        Kind::Deactivate => user.is_some_and(|u| u["active"] == Value::Bool(false)),
        Kind::Reactivate => user.is_some_and(|u| u["active"] != Value::Bool(false)),
        Kind::Update => {
            user.is_some_and(|u| {
                a.changes.iter().all(|c| {
                    crate::same(
                        &c.attribute,
                        crate::paths::compile(&c.attribute).get(u).unwrap_or(&Value::Null),
                        &c.after,
                    )
                })
            }) && !a.changes.is_empty()
        }
        Kind::Delete => id.is_some() && user.is_none(),
        Kind::TeamAdd | Kind::TeamRemove => {
            let team = a.team.as_deref().unwrap_or_default().to_lowercase();
            match (&seen.teams, &*account) {
                (Some(teams), Some(acc)) => {
                    teams.get(&team).is_some_and(|m| m.contains(acc)) == (a.kind == Kind::TeamAdd)
                }
                _ => false,
            }
        }
        Kind::Adopt | Kind::NoChange | Kind::Skip => false,
    };
    Some(found)
}

/// Writes recovered outcomes as one transaction, or entry by entry when it is refused; an
/// entry the store refuses stays open and is tried again next run.
async fn write_recovered(store: &Store, parts: Vec<Outcomes>) {
    let all: Vec<&Outcomes> = parts.iter().collect();
    for (p, e) in parts.iter().zip(record_each(store, &all).await) {
        if let Some(e) = e {
            let id = p.journal.first().map(|j| j.0.as_str()).unwrap_or_default();
            tracing::error!("recovery could not record journal entry {id}: {e}; tried again next run");
        }
    }
}

/// Writes outcomes in one transaction; when the store refuses it, part by part, so a
/// refusal touches only its own part. Each part's error, if it could not be written.
async fn record_each(store: &Store, parts: &[&Outcomes]) -> Vec<Option<String>> {
    match store.record_outcome_parts(parts).await {
        Ok(()) => vec![None; parts.len()],
        Err(e) if parts.len() == 1 => vec![Some(e.to_string())],
        Err(_) => {
            let mut out = Vec::with_capacity(parts.len());
            for p in parts {
                out.push(store.record_outcomes(p).await.err().map(|e| e.to_string()));
            }
            out
        }
    }
}

fn op(kind: OpKind, path: &str, value: Option<Value>) -> Result<Operation, String> {
    let path = PatchPath::parse(path).map_err(|e| e.detail)?;
    Ok(Operation { op: kind, path: Some(path), value })
}

type Outcome = (usize, Result<(String, String), Failed>);

/// Runs one worker's actions in order; stops at the first failure. Joining a team is left to
/// the caller (returned as (action, team, account)), which joins many accounts per call.
async fn run_worker(
    client: &ScimClient,
    teams: &HashMap<String, String>,
    plan: &Plan,
    actions: &[usize],
) -> (Vec<Outcome>, Vec<(usize, String, String)>) {
    let mut out = vec![];
    let mut joins = vec![];
    let mut target: Option<String> = None;
    let mut failed = false;
    for i in actions {
        let a = &plan.actions[*i];
        if failed {
            out.push((*i, Err("not tried: an earlier action for this worker failed".into())));
            continue;
        }
        if a.target_id.is_some() && target.is_none() {
            target = a.target_id.clone();
        }
        let id = target.clone().unwrap_or_default();
        let r: Result<Option<String>, Failed> = match a.kind {
            Kind::Create => match client.create_user(a.body.as_ref().unwrap_or(&Value::Null)).await {
                Ok(c) => {
                    target = Some(c.id().to_string());
                    Ok(Some(match c {
                        Created::New(_) => "created".into(),
                        Created::Recovered(_) => "created (answer lost, found)".into(),
                        Created::Adopted(_) => "adopted (existed)".into(),
                    }))
                }
                Err(e) => Err(e.into()),
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
                    Ok(ops) => client.patch_user(&id, &ops).await.map(|_| None).map_err(Failed::from),
                    Err(e) => Err(e.into()),
                }
            }
            Kind::Deactivate => client.deactivate_user(&id).await.map(|_| None).map_err(Failed::from),
            Kind::Reactivate => client.reactivate_user(&id).await.map(|_| None).map_err(Failed::from),
            Kind::Delete => match client.delete_user(&id).await {
                Ok(()) => Ok(Some("deleted".into())),
                // Gone already (deleted by hand): the outcome wanted.
                Err(scim_client::ClientError::Http { status: 404, .. }) => Ok(Some("deleted (was gone)".into())),
                Err(e) => Err(e.into()),
            },
            Kind::TeamAdd if teams.contains_key(&a.team.clone().unwrap_or_default().to_lowercase()) => {
                joins.push((*i, a.team.clone().unwrap_or_default().to_lowercase(), id.clone()));
                continue;
            }
            Kind::TeamAdd | Kind::TeamRemove => {
                let team = a.team.clone().unwrap_or_default();
                match teams.get(&team.to_lowercase()) {
                    None => Err(format!("team {team:?} does not exist on the target and could not be made").into()),
                    Some(g) if a.kind == Kind::TeamAdd => {
                        client.add_members(g, &[id.as_str()]).await.map(|_| None).map_err(Failed::from)
                    }
                    Some(g) => client.remove_members(g, &[id.as_str()]).await.map(|_| None).map_err(Failed::from),
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

/// How an apply goes: calls in flight at most, whom to tell of progress, and the flag that
/// says the run lost its lease (no call starts once it is set).
pub struct Pace<'a> {
    pub concurrency: usize,
    /// Hears (done, total) workers.
    pub progress: &'a (dyn Fn(usize, usize) + Sync),
    pub lost: &'a std::sync::atomic::AtomicBool,
}

/// Applies a plan. `teams` maps lower-cased team names to their ids on the target; teams the
/// plan needs and the target lacks are made first.
///
/// Workers start as soon as a call slot is free, batch after batch: a batch's intents are
/// written before any of its calls and while the previous batch's calls are in flight (an
/// intent is always written before its call), and no batch waits for the slowest worker of
/// the one before. Outcomes are written as they come, in groups. Team joins go many accounts
/// per call, as soon as a team has a full call's worth, while the creates go on.
pub async fn apply(
    store: &Store,
    client: &ScimClient,
    plan: &Arc<Plan>,
    mut teams: HashMap<String, String>,
    run_id: &str,
    pace: Pace<'_>,
) -> Result<Summary, String> {
    let Pace { concurrency, progress, lost } = pace;
    let mut summary = Summary { run_id: run_id.to_string(), total: plan.actions.len(), ..Summary::default() };
    // Every call of the run, the workers' and the team joins', holds one of these: the
    // connection's concurrency is a ceiling the target never sees passed.
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    make_missing_teams(store, client, plan, &mut teams, &sem).await;
    let empty: Vec<(String, String)> = plan
        .empty_teams
        .iter()
        .filter_map(|t| teams.get(&t.to_lowercase()).map(|id| (t.clone(), id.clone())))
        .collect();
    let units = units_of(plan, &mut summary);
    let total_workers = units.len();
    let book = Book::new(&units);
    // Time-ordered (v7) and made in the order they are written: each journal insert appends
    // to the id index instead of landing on a random page of it. Made up front: intents and
    // outcomes are written concurrently and both name them.
    let ids: Vec<String> = (0..units.len()).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    // Shared with the worker tasks without copying the actions again.
    let units: Vec<Arc<[usize]>> = units.into_iter().map(Into::into).collect();
    let run = Run { store, client, plan, teams: Arc::new(teams), run_id, ids, units, sem };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Finished>();
    let (called, recorded) =
        tokio::join!(run.calls(concurrency, lost, tx), run.record(rx, book, progress, &mut summary));
    called?;
    recorded?;
    tracing::debug!(workers = total_workers, "calls and team joins done");
    if !lost.load(std::sync::atomic::Ordering::SeqCst) {
        remove_empty_teams(store, client, plan, run_id, &empty).await;
    }
    Ok(summary)
}

/// Deletes the teams tenure made that the run left empty (`remove_empty_teams`), each read
/// again first: a member added by hand meanwhile keeps the team. A failure is logged and the
/// next run tries again; the team stays tenure's until it is gone.
async fn remove_empty_teams(store: &Store, client: &ScimClient, plan: &Plan, run_id: &str, empty: &[(String, String)]) {
    for (name, id) in empty {
        let members = match client.find_group_by_name(name).await {
            Ok(Some(g)) if g.get("id").and_then(Value::as_str) == Some(id) => {
                g.get("members").and_then(Value::as_array).map_or(0, Vec::len)
            }
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!("team {name:?} could not be read before its removal: {e}; kept for now");
                continue;
            }
        };
        if members > 0 {
            continue;
        }
        if let Err(e) = client.delete_group(id).await {
            tracing::error!("team {name:?} is empty but could not be deleted: {e}; the next run tries again");
            continue;
        }
        let audit = AuditEntry {
            run_id: run_id.into(),
            connection: plan.connection.clone(),
            worker_id: String::new(),
            action: "team_delete".into(),
            outcome: "done".into(),
            detail: serde_json::json!({"reason": "tenure made this team and its last member left (remove_empty_teams)", "team": name, "target_id": id}).to_string(),
        };
        let out = Outcomes { audit: vec![audit], ..Outcomes::default() };
        if let Err(e) = store.record_outcomes(&out).await {
            tracing::error!("team {name:?} was deleted but its audit record was not written: {e}");
        }
        if let Err(e) = store.forget_team(&plan.connection, name).await {
            tracing::error!("team {name:?} was deleted but is still listed as tenure's: {e}");
        }
        tracing::info!(team = %name, "empty team deleted");
    }
}

/// Makes the teams the plan needs that the target lacks, as many at once as the run's calls
/// may be (one after the other, twenty teams were a second of an idle connection at 50 ms a
/// call). A team the target will not make fails only the joins to it (run_worker says the
/// team is missing); everyone else's actions go on.
async fn make_missing_teams(
    store: &Store,
    client: &ScimClient,
    plan: &Plan,
    teams: &mut HashMap<String, String>,
    sem: &Arc<tokio::sync::Semaphore>,
) {
    let mut making = tokio::task::JoinSet::new();
    // One call per name as the target compares names (without case): two at once for "Sales"
    // and "sales" could leave a target whose check is not atomic with both.
    let mut asked = std::collections::HashSet::new();
    for t in &plan.missing_teams {
        if !asked.insert(t.to_lowercase()) {
            continue;
        }
        let (client, sem, t) = (client.clone(), sem.clone(), t.clone());
        making.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("the semaphore stays open");
            let made = client.create_group(&t, &[]).await;
            (t, made)
        });
    }
    while let Some(r) = making.join_next().await {
        match r {
            Ok((t, Ok(g))) => {
                teams.insert(t.to_lowercase(), g.id().to_string());
                // As each is made (the others may be slow), and before anyone joins: a team
                // tenure made is one it may later delete when empty.
                if let Err(e) = store.record_team_made(&plan.connection, &t).await {
                    tracing::warn!("team {t:?} was made but not recorded as tenure's: {e}");
                }
            }
            Ok((t, Err(e))) => tracing::error!("cannot make team {t:?}: {e}; joins to it fail this run"),
            Err(e) => tracing::error!("making a team failed: {e}; joins to it fail this run"),
        }
    }
}

/// The plan's acting actions by worker: one worker's actions stay together and in order, a
/// unit journaled as one row. Counts what does not act.
fn units_of(plan: &Plan, summary: &mut Summary) -> Vec<Vec<usize>> {
    let mut units: Vec<Vec<usize>> = vec![];
    let mut unit_of_worker: HashMap<&str, usize> = HashMap::new();
    for (i, a) in plan.actions.iter().enumerate() {
        match a.kind {
            Kind::NoChange => summary.no_change += 1,
            Kind::Skip => summary.skipped += 1,
            _ => {
                let u = *unit_of_worker.entry(a.worker.as_str()).or_insert_with(|| {
                    units.push(vec![]);
                    units.len() - 1
                });
                units[u].push(i);
            }
        }
    }
    units
}

/// A worker's results (its actions' outcomes, then the team joins it asks for).
type Finished = (Vec<Outcome>, Vec<(usize, String, String)>);

/// One apply under way: what its two halves, the calls and the recording, share.
struct Run<'a> {
    store: &'a Store,
    client: &'a ScimClient,
    plan: &'a Arc<Plan>,
    teams: Arc<HashMap<String, String>>,
    run_id: &'a str,
    /// Each unit's journal row id.
    ids: Vec<String>,
    units: Vec<Arc<[usize]>>,
    /// The run's call slots (see `apply`).
    sem: Arc<tokio::sync::Semaphore>,
}

impl Run<'_> {
    fn intents(&self, range: std::ops::Range<usize>) -> Vec<JournalEntry> {
        range
            .map(|u| {
                let actions: Vec<&Action> = self.units[u].iter().map(|&i| &self.plan.actions[i]).collect();
                let kinds: Vec<&str> = actions.iter().map(|a| a.kind.as_str()).collect();
                let body: Vec<Intended> = actions.iter().map(|a| Intended::of(a)).collect();
                JournalEntry {
                    id: self.ids[u].clone(),
                    run_id: self.run_id.into(),
                    connection: self.plan.connection.clone(),
                    worker_id: actions[0].worker.clone(),
                    kind: kinds.join(","),
                    body: serde_json::to_string(&body).expect("serialisable"),
                    state: "intent".into(),
                    attempts: 0,
                    error: None,
                    created_at: String::new(),
                }
            })
            .collect()
    }

    /// Every action of a unit not tried, with why.
    fn not_tried(&self, u: usize, why: &str) -> Finished {
        (self.units[u].iter().map(|&i| (i, Err(format!("not tried: {why}").into()))).collect(), vec![])
    }

    /// Why no more calls may start, if so.
    fn stopped(&self, lost: &std::sync::atomic::AtomicBool) -> Option<&'static str> {
        if self.store.refusing_writes() {
            // The store refuses writes (its disk is full): no call starts whose outcome could
            // not be kept; the next run resolves what is in flight.
            return Some("the store refused writes (is the disk full?)");
        }
        // Another holder works the connection now: no call starts from here on.
        lost.load(std::sync::atomic::Ordering::SeqCst).then_some("this run lost its lease on the connection")
    }

    /// Starts every unit's calls, batch by batch, each batch's intents written first.
    async fn calls(
        &self,
        concurrency: usize,
        lost: &std::sync::atomic::AtomicBool,
        tx: tokio::sync::mpsc::UnboundedSender<Finished>,
    ) -> Result<(), String> {
        let chunk = (concurrency * 16).max(64);
        let batches: Vec<std::ops::Range<usize>> =
            (0..self.units.len()).step_by(chunk).map(|b| b..(b + chunk).min(self.units.len())).collect();
        let sem = &self.sem;
        let mut set = tokio::task::JoinSet::new();
        // Units whose intent the journal refused: their calls never start (no call without
        // its intent), and the others go on.
        let mut refused = match batches.first() {
            Some(first) => write_intents(self.store, self.intents(first.clone()), first.start).await,
            None => HashMap::new(),
        };
        for (b, range) in batches.iter().enumerate() {
            let this = std::mem::take(&mut refused);
            let start = async {
                for u in range.clone() {
                    if let Some(e) = this.get(&u) {
                        let _ = tx.send(self.not_tried(u, &format!("the journal refused its intent: {e}")));
                        continue;
                    }
                    let permit = sem.clone().acquire_owned().await.expect("the semaphore stays open");
                    if let Some(why) = self.stopped(lost) {
                        let _ = tx.send(self.not_tried(u, why));
                        continue;
                    }
                    let (client, teams, plan, actions, tx) =
                        (self.client.clone(), self.teams.clone(), self.plan.clone(), self.units[u].clone(), tx.clone());
                    set.spawn(async move {
                        let r = run_worker(&client, &teams, &plan, &actions).await;
                        drop(permit);
                        // The receiver outlives every worker task (it ends when all senders do).
                        let _ = tx.send(r);
                    });
                }
            };
            let next = async {
                match batches.get(b + 1) {
                    Some(n) => write_intents(self.store, self.intents(n.clone()), n.start).await,
                    None => HashMap::new(),
                }
            };
            let ((), next_refused) = tokio::join!(start, next);
            refused = next_refused;
            while let Some(r) = set.try_join_next() {
                r.map_err(|e| format!("a worker task failed: {e}"))?;
            }
        }
        while let Some(r) = set.join_next().await {
            r.map_err(|e| format!("a worker task failed: {e}"))?;
        }
        Ok(())
    }

    /// Writes outcomes as workers finish, in groups, and sends the team joins they ask for,
    /// a call's worth at a time per team, until every worker and every join has ended.
    async fn record(
        &self,
        mut rx: tokio::sync::mpsc::UnboundedReceiver<Finished>,
        mut book: Book,
        progress: &(dyn Fn(usize, usize) + Sync),
        summary: &mut Summary,
    ) -> Result<(), String> {
        const GROUP: usize = 512;
        let total = self.units.len();
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
                            self.start_joins(&mut joining, &mut waiting, &mut busy, &team, false);
                        }
                        done += 1;
                        if done % 64 == 0 || done == total {
                            progress(done, total);
                        }
                    }
                    None => open = false,
                },
                Some(r) = joining.join_next() => {
                    let (team, out) = r.map_err(|e| format!("a team join failed: {e}"))?;
                    buffered.extend(out);
                    busy.remove(&team);
                    self.start_joins(&mut joining, &mut waiting, &mut busy, &team, !open);
                }
                else => {}
            }
            if !open {
                // The calls are over: whatever waits joins now, a call's worth at a time.
                let names: Vec<String> = waiting.keys().cloned().collect();
                for team in names {
                    self.start_joins(&mut joining, &mut waiting, &mut busy, &team, true);
                }
            }
            let finished = !open && joining.is_empty();
            if buffered.len() >= GROUP || (finished && !buffered.is_empty()) {
                let parts = outcomes(self.plan, self.run_id, &self.ids, &mut book, std::mem::take(&mut buffered));
                write_parts(self.store, self.plan, &mut book, parts, summary).await;
            }
            if finished {
                return Ok(());
            }
        }
    }
}

/// Writes a batch of intents in one transaction or, refused, one by one: the units (numbered
/// from `first`) whose intent could not be written, with the store's error.
async fn write_intents(store: &Store, entries: Vec<JournalEntry>, first: usize) -> HashMap<usize, String> {
    let mut refused = HashMap::new();
    if store.journal_intents(&entries).await.is_ok() {
        return refused;
    }
    for (n, e) in entries.into_iter().enumerate() {
        if let Err(x) = store.journal_intents(std::slice::from_ref(&e)).await {
            tracing::error!(worker = %e.worker_id, "the journal refused an intent: {x}");
            refused.insert(first + n, x.to_string());
        }
    }
    refused
}

/// Accounts joining one team per PATCH.
const JOIN_BATCH: usize = 1000;

/// Team-join calls in flight, each answering for its team.
type Joining = tokio::task::JoinSet<(String, Vec<Outcome>)>;

impl Run<'_> {
    /// Starts the next join call for `team` unless one is in flight for it or, before the end
    /// (`all` false), fewer than a call's worth of accounts wait while every call slot is
    /// taken: a slot left idle (the last workers' calls, a batch's intents being written) is
    /// filled with the joins waiting, so they do not all wait for the end. The call takes one
    /// of the run's slots before it goes.
    fn start_joins(
        &self,
        joining: &mut Joining,
        waiting: &mut HashMap<String, Vec<(usize, String)>>,
        busy: &mut std::collections::HashSet<String>,
        team: &str,
        all: bool,
    ) {
        let Some(w) = waiting.get_mut(team) else { return };
        let idle = self.sem.available_permits() > 0;
        if busy.contains(team) || w.is_empty() || (!all && !idle && w.len() < JOIN_BATCH) {
            return;
        }
        let members: Vec<(usize, String)> = w.drain(..w.len().min(JOIN_BATCH)).collect();
        busy.insert(team.to_string());
        let (client, group, team, sem) =
            (self.client.clone(), self.teams[team].clone(), team.to_string(), self.sem.clone());
        joining.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("the semaphore stays open");
            let ids: Vec<&str> = members.iter().map(|(_, a)| a.as_str()).collect();
            let r = client.add_members(&group, &ids).await.map_err(Failed::from);
            let out = members
                .iter()
                .map(|(i, a)| (*i, r.as_ref().map(|_| ("ok".to_string(), a.clone())).map_err(Clone::clone)))
                .collect();
            (team, out)
        });
    }
}

/// Which journal row (unit) each action belongs to, and what is still out per unit: a unit's
/// outcome is written when its last action ends (a team join may end long after its create).
struct Book {
    unit_of: HashMap<usize, usize>,
    remaining: Vec<usize>,
    /// The first error of each unit.
    error: Vec<Option<String>>,
    /// Units with records the store refused (a create's link and audit): their journal row
    /// stays an intent, for the next run's recovery, even when their later actions are kept.
    unkept: std::collections::HashSet<usize>,
}

impl Book {
    fn new(units: &[Vec<usize>]) -> Self {
        Book {
            unit_of: units.iter().enumerate().flat_map(|(u, a)| a.iter().map(move |i| (*i, u))).collect(),
            remaining: units.iter().map(Vec::len).collect(),
            error: vec![None; units.len()],
            unkept: Default::default(),
        }
    }

    /// Counts an action's end; the unit's (state, error) once it was the last.
    fn end(&mut self, action: usize, error: Option<&String>) -> Option<(usize, &'static str, Option<String>)> {
        let u = self.unit_of[&action];
        if self.error[u].is_none() {
            self.error[u] = error.cloned();
        }
        self.remaining[u] -= 1;
        (self.remaining[u] == 0 && !self.unkept.contains(&u)).then(|| {
            let e = self.error[u].take();
            (u, if e.is_some() { "failed" } else { "done" }, e)
        })
    }

    /// The store refused these actions' records: their unit is never closed by this run.
    fn unkept(&mut self, actions: impl Iterator<Item = usize>) {
        for i in actions {
            self.unkept.insert(self.unit_of[&i]);
        }
    }
}

/// Why an action was taken and what it touched, as the audit keeps it (empty parts left out).
#[derive(Serialize)]
struct Detail<'a> {
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    changes: &'a [crate::Change],
    #[serde(skip_serializing_if = "Option::is_none")]
    team: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_name: Option<&'a str>,
    #[serde(skip_serializing_if = "str::is_empty")]
    target_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    moved_from: Option<&'a str>,
}

/// One worker's outcomes of a group, kept apart so that a store refusing one worker's
/// records never takes another's with it.
struct Part {
    worker: String,
    out: Outcomes,
    /// (action index, its error) for the run's counts, once written.
    tally: Vec<(usize, Option<Failed>)>,
}

/// Writes a group of outcomes in one transaction; when the store refuses it, worker by
/// worker, so only the worker whose records cannot be written fails. That worker's intent
/// stays open: the next run's recovery finds its effects on the target and records them.
async fn write_parts(store: &Store, plan: &Plan, book: &mut Book, parts: Vec<Part>, summary: &mut Summary) {
    let all: Vec<&Outcomes> = parts.iter().map(|p| &p.out).collect();
    let written = record_each(store, &all).await;
    drop(all);
    for (p, e) in parts.iter().zip(written) {
        match e {
            None => tally(plan, summary, p, None),
            Some(e) => {
                // A later part of this worker (its team join) must not close the journal row
                // over records that were never kept: the account would be made but unlinked.
                book.unkept(p.tally.iter().map(|t| t.0));
                refused(plan, p, &e, summary)
            }
        }
    }
}

fn refused(plan: &Plan, p: &Part, error: &str, summary: &mut Summary) {
    let why = format!("the store refused this worker's outcome ({error}); the next run resolves it from the target");
    tracing::error!(worker = %p.worker, "{why}");
    tally(plan, summary, p, Some(&why));
}

/// Counts a part's actions in the run's summary (all failed, with `refused`, when its records
/// could not be written).
fn tally(plan: &Plan, summary: &mut Summary, p: &Part, refused: Option<&str>) {
    for (i, error) in &p.tally {
        let a = &plan.actions[*i];
        let refused = refused.map(Failed::from);
        let outcome = refused.as_ref().or(error.as_ref());
        match outcome {
            None => tracing::info!(
                target: "tenure::actions",
                connection = %plan.connection,
                worker = %a.worker,
                action = a.kind.as_str(),
                user_name = a.user_name.as_deref().unwrap_or_default(),
                team = a.team.as_deref().unwrap_or_default(),
                outcome = "done",
            ),
            // A failure is a warning, with the target's answer: never lost among the done.
            Some(e) => tracing::warn!(
                target: "tenure::actions",
                connection = %plan.connection,
                worker = %a.worker,
                action = a.kind.as_str(),
                user_name = a.user_name.as_deref().unwrap_or_default(),
                team = a.team.as_deref().unwrap_or_default(),
                outcome = %format!("failed: {e}"),
            ),
        }
        match outcome {
            None => {
                summary.processed += 1;
                *summary.by_kind.entry(a.kind.as_str().to_string()).or_default() += 1;
            }
            Some(e) => {
                summary.failed += 1;
                summary.failures.entry(p.worker.clone()).or_insert_with(|| e.text.clone());
                summary.failed_actions.push(FailedAction {
                    worker: a.worker.clone(),
                    action: a.kind.as_str().into(),
                    user_name: a.user_name.clone(),
                    team: a.team.clone(),
                    error: e.text.clone(),
                    status: e.status,
                    scim_type: e.scim_type.clone(),
                });
            }
        }
    }
}

/// The journal outcomes, links and audit records of finished calls, per worker.
fn outcomes(plan: &Plan, run_id: &str, ids: &[String], book: &mut Book, results: Vec<Outcome>) -> Vec<Part> {
    let mut parts: Vec<Part> = vec![];
    let mut part_of: HashMap<&str, usize> = HashMap::new();
    for (i, r) in results {
        let a = &plan.actions[i];
        let at = *part_of.entry(a.worker.as_str()).or_insert_with(|| {
            parts.push(Part { worker: a.worker.clone(), out: Outcomes::default(), tally: vec![] });
            parts.len() - 1
        });
        let part = &mut parts[at];
        let out = &mut part.out;
        let (error, outcome, target) = match r {
            Ok((note, t)) => (None, note, t),
            Err(e) => (Some(e), String::new(), a.target_id.clone().unwrap_or_default()),
        };
        part.tally.push((i, error.clone()));
        if error.is_none() && matches!(a.kind, Kind::Create | Kind::Adopt) && !target.is_empty() {
            out.links.push(Link {
                connection: plan.connection.clone(),
                worker_id: a.worker.clone(),
                target_id: target.clone(),
                user_name: a.user_name.clone().unwrap_or_default(),
                origin: if a.kind == Kind::Create { "created".into() } else { "adopted".into() },
                linked_at: now(),
            });
        }
        if let (None, Kind::Adopt, Some(from)) = (&error, a.kind, &a.moved_from) {
            // The leaver's link goes (in the same transaction, before the new one is written),
            // and their timeline says where the account went.
            out.unlinks.push((plan.connection.clone(), from.clone()));
            out.audit.push(AuditEntry {
                run_id: run_id.into(),
                connection: plan.connection.clone(),
                worker_id: from.clone(),
                action: "unlink".into(),
                outcome: format!("account moved to worker {}", a.worker),
                detail: serde_json::to_string(&Detail {
                    reason: "the account's link moved to the worker who took it over",
                    role: None,
                    changes: &[],
                    team: None,
                    user_name: a.user_name.as_deref(),
                    target_id: &target,
                    moved_from: None,
                })
                .expect("serialisable"),
            });
        }
        if error.is_none() {
            let key = (plan.connection.clone(), a.worker.clone());
            match a.kind {
                Kind::TeamAdd => out.joined.push((key.0, a.team.clone().unwrap_or_default())),
                Kind::Deactivate => out.deactivated.push((key.0, key.1, plan.at.clone())),
                Kind::Reactivate => out.undeactivated.push(key),
                Kind::Delete => out.unlinks.push(key),
                _ => {}
            }
        }
        if let Some((u, state, e)) = book.end(i, error.as_ref().map(|e| &e.text)) {
            out.journal.push((ids[u].clone(), state.into(), e));
        }
        let detail = Detail {
            reason: &a.reason,
            role: a.role.as_deref(),
            changes: &a.changes,
            team: a.team.as_deref(),
            user_name: a.user_name.as_deref(),
            target_id: &target,
            moved_from: a.moved_from.as_deref(),
        };
        out.audit.push(AuditEntry {
            run_id: run_id.into(),
            connection: plan.connection.clone(),
            worker_id: a.worker.clone(),
            action: a.kind.as_str().into(),
            outcome: match error {
                Some(e) => format!("failed: {e}"),
                None => outcome,
            },
            detail: serde_json::to_string(&detail).expect("serialisable"),
        });
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn action(worker: &str, kind: Kind, team: Option<&str>) -> Action {
        Action {
            user_name: (kind == Kind::Create).then(|| format!("{worker}@example.com")),
            role: Some("Employees".into()),
            body: Some(json!({"userName": format!("{worker}@example.com")})),
            team: team.map(Into::into),
            ..Action::new(worker, kind, "hire")
        }
    }

    #[test]
    fn a_unit_whose_records_were_refused_is_never_closed() {
        // Unit 0: a create (action 0) and its team join (action 1); unit 1: one update.
        let mut book = Book::new(&[vec![0, 1], vec![2]]);
        assert_eq!(book.end(0, None), None, "the join is still out");
        book.unkept([0].into_iter());
        assert_eq!(book.end(1, None), None, "the create's link was not kept: the intent stays open");
        assert_eq!(book.end(2, None), Some((1, "done", None)));
    }

    #[test]
    fn journal_rows_keep_what_recovery_needs_and_older_rows_still_read() {
        let a = action("w1", Kind::Create, None);
        let t = action("w1", Kind::TeamAdd, Some("Everyone"));
        let body = serde_json::to_string(&vec![Intended::of(&a), Intended::of(&t)]).unwrap();
        // The account's attributes are not copied into the journal.
        assert!(!body.contains("\"body\""), "{body}");
        let back = intended(&body).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!((back[0].kind, back[0].user_name.as_deref()), (Kind::Create, Some("w1@example.com")));
        assert_eq!((back[1].kind, back[1].team.as_deref()), (Kind::TeamAdd, Some("Everyone")));
        // A row written before rows held a worker's actions: the whole action as an object.
        let old = serde_json::to_string(&a).unwrap();
        let back = intended(&old).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].user_name.as_deref(), Some("w1@example.com"));
        assert!(intended("{\"kind\": \"explode\"}").is_err());
    }

    #[test]
    fn a_units_outcome_comes_with_its_last_action_and_keeps_the_first_error() {
        // Two workers (action indexes in the plan), each a create and a team join.
        let units = vec![vec![0, 1], vec![2, 3]];
        let mut book = Book::new(&units);
        assert_eq!(book.end(0, None), None, "the team join is still out");
        assert_eq!(book.end(1, None), Some((0, "done", None)));
        let first = "HTTP 500".to_string();
        assert_eq!(book.end(2, Some(&first)), None);
        let second = "not tried".to_string();
        assert_eq!(book.end(3, Some(&second)), Some((1, "failed", Some(first))));
    }
}
