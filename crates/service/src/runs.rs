//! A run: plan a connection's accounts from the HR data and the rules, and apply the plan
//! under the connection's run lock, through the guard, the journal and the audit. The door that
//! asks for it watches through [`Watch`] and reads what it came to in [`Applied`].

use crate::connections::{client_at, client_for, is_sandbox};
use crate::error::{Error, Result};
use crate::intake::workers;
use crate::run_report::{Applied, RunOutcome};
use crate::{config, run_lock};
use engine::{Actual, Hold, Kind, Plan};
use jiff::Timestamp;
use rules::Rules;
use scim_client::{RetryPolicy, ScimClient};
use std::collections::HashMap;
use store::{EventQuery, MasterKey, Store};

pub async fn read_actual(client: &ScimClient) -> Result<Actual> {
    // Both at once: the teams' member lists are one large page the users need not wait for.
    let (users, groups) = tokio::join!(client.list_users_lean(), client.list_groups(None));
    let users = users.map_err(|e| Error::refused(format!("cannot read the target's users: {e}")))?;
    let groups = groups.map_err(|e| Error::refused(format!("cannot read the target's teams: {e}")))?;
    Ok(Actual { users, groups })
}

/// How much of the target and of the HR snapshot a plan reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading<'a> {
    /// Every account and team: what a run acts on.
    Whole,
    /// One account per chosen worker: its linked account, else the one holding the userName the
    /// rules give it. A worker's "why" without reading the whole target.
    Accounts {
        /// The workers planned (None: all): the chosen ones and those whose unique values
        /// could meet theirs (`preview::Namesakes`); the workers linked to the accounts read
        /// are added.
        among: Option<&'a [String]>,
    },
}

/// What a plan of chosen workers read of the target for one of them, and when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AccountRead {
    pub worker: String,
    /// Which account the plan saw, and what such a plan does not see.
    pub basis: String,
    pub read_at: String,
    /// Requests made to the target for this worker (one, or two when its link is broken).
    pub reads: usize,
    /// The account found, as a person checks it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountSeen>,
}

/// An account as read from the target: what tells whether a worker's access is as it should be.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AccountSeen {
    pub id: String,
    pub user_name: String,
    pub active: bool,
    pub user_type: Option<String>,
    /// The teams (groups) the account lists, by name.
    pub teams: Vec<String>,
}

impl AccountSeen {
    pub fn of(u: &serde_json::Value) -> AccountSeen {
        let text = |k: &str| u.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
        AccountSeen {
            id: text("id"),
            user_name: text("userName"),
            active: u.get("active").and_then(|v| v.as_bool()).unwrap_or(true),
            user_type: u.get("userType").and_then(|v| v.as_str()).map(str::to_string),
            teams: u
                .get("groups")
                .and_then(|g| g.as_array())
                .into_iter()
                .flatten()
                .map(|g| {
                    g.get("display").or_else(|| g.get("value")).and_then(|v| v.as_str()).unwrap_or_default().to_string()
                })
                .collect(),
        }
    }
}

/// The accounts of chosen workers, each read alone, with their links and the teams they list.
#[allow(clippy::too_many_arguments)] // the plan's inputs for these workers
async fn read_accounts(
    store: &Store,
    client: &ScimClient,
    rules: &Rules,
    index: usize,
    name: &str,
    workers: &[hr::Worker],
    only: &[String],
    now: Timestamp,
) -> Result<(Actual, Vec<store::Link>, Vec<AccountRead>)> {
    let lifecycle = rules.config.hr.lifecycle().map_err(Error::refused)?;
    let today = now.to_zoned(lifecycle.default_time_zone.clone()).date();
    let custom = rules.custom_fields().to_vec();
    let unreadable =
        |e: scim_client::ClientError| Error::unavailable(format!("cannot read the account on {name:?}: {e}"));
    let (mut users, mut links, mut reads): (Vec<serde_json::Value>, Vec<store::Link>, Vec<AccountRead>) =
        (vec![], vec![], vec![]);
    let unseen =
        "matches by e-mail or externalId, look-alikes and names taken by other accounts are seen by a whole plan";
    for id in only {
        let Some(w) = workers.iter().find(|w| w.id.as_str() == id) else { continue };
        let (mut n, mut found, mut basis) = (0, None, String::new());
        if let Some(link) = store.link_of(name, Some(id), None).await? {
            n += 1;
            match client.get_user(&link.target_id).await.map_err(unreadable)? {
                Some(u) => {
                    found = Some(u);
                    basis = format!("its linked account {}", link.target_id);
                }
                None => basis = format!("its linked account {} is gone from the target; ", link.target_id),
            }
            links.push(link);
        }
        if found.is_none() {
            let decision = rules.decide_with(index, &rules::worker_row(w, &custom), today, false);
            let user_name = decision
                .attributes
                .iter()
                .find(|a| a.target == "userName")
                .and_then(|a| a.value.as_ref().ok())
                .map(|v| v.to_text());
            match user_name {
                Some(un) => {
                    n += 1;
                    match client.find_user_by_user_name(&un).await.map_err(unreadable)? {
                        Some(u) => {
                            let uid = u.get("id").and_then(|v| v.as_str()).unwrap_or_default().to_string();
                            if let Some(l) = store.link_of(name, None, Some(&uid)).await? {
                                links.push(l);
                            }
                            basis +=
                                &format!("the account {uid} holding the userName {un:?} the rules give ({unseen})");
                            found = Some(u);
                        }
                        None => basis += &format!("no account holds the userName {un:?} the rules give ({unseen})"),
                    }
                }
                None => basis += "no userName from the rules to look an account up by",
            }
        }
        let account = found.as_ref().map(AccountSeen::of);
        if let Some(u) = found {
            if !users.iter().any(|x| x.get("id") == u.get("id")) {
                users.push(u);
            }
        }
        reads.push(AccountRead { worker: id.clone(), basis, read_at: Timestamp::now().to_string(), reads: n, account });
    }
    links.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
    links.dedup_by(|a, b| a.worker_id == b.worker_id);
    // The teams as these accounts list them: enough to tell their joins and leaves.
    let mut groups: Vec<serde_json::Value> = vec![];
    for u in &users {
        let uid = u.get("id").cloned().unwrap_or_default();
        for g in u.get("groups").and_then(|g| g.as_array()).into_iter().flatten() {
            let Some(gid) = g.get("value").and_then(|v| v.as_str()) else { continue };
            let at = match groups.iter().position(|x| x["id"] == gid) {
                Some(i) => i,
                None => {
                    groups.push(serde_json::json!({"id": gid, "displayName": g.get("display").cloned().unwrap_or_default(), "members": []}));
                    groups.len() - 1
                }
            };
            if let Some(m) = groups[at]["members"].as_array_mut() {
                m.push(serde_json::json!({"value": uid}));
            }
        }
    }
    Ok((Actual { users, groups }, links, reads))
}

pub struct Prepared {
    pub rules: Rules,
    pub index: usize,
    pub client: ScimClient,
    pub actual: Actual,
    pub plan: Plan,
    /// What supervised mode and the dead-letter list held back.
    pub held: engine::review::Held,
    /// Worker id to name, for notices.
    pub names: HashMap<String, String>,
    /// Actions an earlier run left in flight, resolved before this plan.
    pub recovered: usize,
    /// With `Reading::Accounts`: what was read for each chosen worker.
    pub reads: Vec<AccountRead>,
    /// The newest HR load recorded before the snapshot was read (database time): the events
    /// of loads recorded after it were not seen by this plan, and stay pending after its run.
    pub hr_seen_ms: Option<i64>,
    /// The loads seen within `LATE_COMMIT_MS` before `hr_seen_ms`: any other load stamped in
    /// that span committed after the snapshot was read, and was not seen either.
    pub hr_seen_recent: Vec<String>,
}

/// On PostgreSQL a load is stamped before its transaction commits: one committed late can
/// carry an earlier stamp than a load already seen. Loads stamped this close are told apart
/// by id.
pub(crate) const LATE_COMMIT_MS: i64 = 10_000;

/// An account as the target holds it, with the teams it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user_name: String,
    pub active: bool,
    pub user_type: Option<String>,
    pub teams: Vec<String>,
}

/// Every account of a connection's target with its teams, by userName.
pub async fn accounts(store: &Store, key: &MasterKey, connection: &str) -> Result<Vec<Account>> {
    let actual = read_actual(&client_for(store, key, connection).await?).await?;
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let mut teams_of: HashMap<String, Vec<String>> = HashMap::new();
    for g in &actual.groups {
        for m in g["members"].as_array().into_iter().flatten() {
            teams_of.entry(text(&m["value"])).or_default().push(text(&g["displayName"]));
        }
    }
    let mut out: Vec<Account> = actual
        .users
        .iter()
        .map(|u| Account {
            user_name: text(&u["userName"]),
            active: u["active"].as_bool().unwrap_or(true),
            user_type: u["userType"].as_str().map(str::to_string),
            teams: teams_of.get(u["id"].as_str().unwrap_or_default()).cloned().unwrap_or_default(),
        })
        .collect();
    out.sort_by(|a, b| a.user_name.cmp(&b.user_name));
    Ok(out)
}

/// The configured connection a command means: the one named, or the only one.
pub fn pick(rules: &Rules, connection: Option<&str>) -> Result<usize> {
    match connection {
        Some(n) => rules
            .connections
            .iter()
            .position(|c| c.name == n)
            .ok_or_else(|| Error::not_found(format!("the configuration has no connection {n:?}"))),
        None if rules.connections.len() == 1 => Ok(0),
        None if rules.connections.is_empty() => Err(Error::refused("the configuration has no connection")),
        None => Err(Error::input("several connections are configured: say which with --connection")),
    }
}

/// The name of the connection a command means (to lock it before anything else).
pub async fn connection_name(store: &Store, connection: Option<&str>) -> Result<String> {
    let rules = config::current(store).await?;
    Ok(rules.connections[pick(&rules, connection)?].name.clone())
}

/// Resolves what an earlier run left in flight (only under the run lock: `recover`), reads
/// the target, and plans.
pub async fn prepare(
    store: &Store,
    key: &MasterKey,
    connection: Option<&str>,
    now: Timestamp,
    under: Option<&run_lock::RunLock>,
    only: &[String],
) -> Result<Prepared> {
    let rules = config::current(store).await?;
    prepare_with(store, key, rules, connection, now, under, only).await
}

/// A plan of a connection now, as `tenure plan` and the API's plan show it. It never waits on a
/// running apply: while one holds the connection, the plan is made without touching its actions
/// in flight, and the holder comes back beside the plan.
pub async fn plan(
    store: &Store,
    key: &MasterKey,
    rules: Rules,
    connection: &str,
    now: Timestamp,
    only: &[String],
    who: &str,
) -> Result<(Prepared, Option<store::Holder>)> {
    match run_lock::try_lock(store, connection, who).await? {
        run_lock::Lock::Got(lock) => {
            let p = prepare_with(store, key, rules, Some(connection), now, Some(&lock), only).await;
            lock.release().await;
            Ok((p?, None))
        }
        run_lock::Lock::Busy(h) => {
            Ok((prepare_with(store, key, rules, Some(connection), now, None, only).await?, Some(h)))
        }
    }
}

/// As `prepare`, with rules that need not be the saved ones (`preview --config FILE`).
#[allow(clippy::too_many_arguments)] // prepare's inputs and the rules to plan with
pub async fn prepare_with(
    store: &Store,
    key: &MasterKey,
    rules: Rules,
    connection: Option<&str>,
    now: Timestamp,
    under: Option<&run_lock::RunLock>,
    only: &[String],
) -> Result<Prepared> {
    prepare_reading(store, key, rules, connection, now, under, only, Reading::Whole).await
}

/// As `prepare_with`, reading the whole target or, for chosen workers, one account each.
#[allow(clippy::too_many_arguments)] // prepare_with's inputs and how much to read
pub async fn prepare_reading(
    store: &Store,
    key: &MasterKey,
    rules: Rules,
    connection: Option<&str>,
    now: Timestamp,
    under: Option<&run_lock::RunLock>,
    only: &[String],
    reading: Reading<'_>,
) -> Result<Prepared> {
    let reading = if only.is_empty() { Reading::Whole } else { reading };
    let t0 = std::time::Instant::now();
    tracing::debug!(ms = t0.elapsed().as_millis() as u64, "configuration compiled");
    let index = pick(&rules, connection)?;
    let name = rules.connections[index].name.clone();
    // DELETE only where the configuration asks for hard deletes.
    let deletes = rules.connections[index].hard_delete_after_days.is_some();
    let mut client = client_at(store, key, &name, RetryPolicy::default(), deletes).await?;
    let mut recovered = 0;
    // Only under the connection's lease: what an earlier run left in flight is resolved, with
    // requests gated and tagged by the lease and writes fenced by it.
    if let Some(lock) = under {
        client = client.for_run(lock.tag());
        let store = &store.fenced(lock.fence());
        recovered = engine::apply::recover(store, &client, &name, rules.connections[index].concurrency)
            .await
            .map_err(Error::unavailable)?;
        tracing::debug!(ms = t0.elapsed().as_millis() as u64, "recovered in-flight actions");
    }
    // The target is read while the store is: one waits on the network, the other decodes.
    let whole = (reading == Reading::Whole).then(|| {
        let client = client.clone();
        tokio::spawn(async move { read_actual(&client).await })
    });
    // Read before the snapshot: a load recorded meanwhile counts as unseen.
    let hr_seen_ms = store.last_recorded_ms().await?;
    let hr_seen_recent = match hr_seen_ms {
        Some(ms) => store.loads_since(ms - LATE_COMMIT_MS).await?.into_iter().map(|(id, _)| id).collect(),
        None => vec![],
    };
    let mut workers = match reading {
        Reading::Accounts { among: Some(ids) } => decoded(store, ids).await?,
        _ => workers(store).await?,
    };
    tracing::debug!(ms = t0.elapsed().as_millis() as u64, n = workers.len(), "read the HR snapshot");
    let deactivated = store.deactivations(&name).await?;
    let tenure_teams = store.tenure_teams(&name).await?;
    let (actual, links, reads) = match whole {
        Some(whole) => {
            let links = store.links(&name).await?;
            tracing::debug!(ms = t0.elapsed().as_millis() as u64, links = links.len(), "read the links");
            let actual = whole.await.map_err(|e| Error::refused(format!("reading the target stopped: {e}")))??;
            (actual, links, vec![])
        }
        None => {
            let read = read_accounts(store, &client, &rules, index, &name, &workers, only, now).await?;
            // A worker linked to an account read is planned too, as a whole plan would: the
            // account is theirs, not a leaver's.
            if matches!(reading, Reading::Accounts { among: Some(_) }) {
                let missing: Vec<String> = read
                    .1
                    .iter()
                    .map(|l| l.worker_id.clone())
                    .filter(|id| !workers.iter().any(|w| w.id.as_str() == id))
                    .collect();
                workers.extend(decoded(store, &missing).await?);
            }
            read
        }
    };
    tracing::debug!(ms = t0.elapsed().as_millis() as u64, users = actual.users.len(), "read the target");
    let inputs = engine::plan::Inputs {
        rules: &rules,
        connection: index,
        workers: &workers,
        actual: &actual,
        links: &links,
        deactivated: &deactivated,
        tenure_teams: &tenure_teams,
        now,
    };
    let mut plan = engine::plan::plan(&inputs).map_err(Error::refused)?;
    let reviews = store.reviews(Some(&name), &store::ReviewState::OPEN).await?;
    let dead = store.dead_letters(Some(&name)).await?;
    let mut held = engine::review::hold(&mut plan, &rules.connections[index].supervised, &reviews, &dead);
    let hr_held = store.hr_held().await?;
    if !hr_held.is_empty() {
        let known: std::collections::HashSet<&str> = workers.iter().map(|w| w.id.as_str()).collect();
        held_by_hr_rows(&mut plan, &known, &hr_held);
    }
    if !only.is_empty() {
        // Provision on demand: these workers' actions only, under the same guard, journal,
        // audit and notices as a full run.
        for w in only {
            if !workers.iter().any(|x| x.id.as_str() == w) {
                return Err(Error::refused(format!(
                    "worker {w} is not in the HR snapshot (load it first with `tenure hr load`)"
                )));
            }
        }
        plan.actions.retain(|a| only.contains(&a.worker));
        let needed: std::collections::HashSet<&str> =
            plan.actions.iter().filter(|a| a.kind == Kind::TeamAdd).filter_map(|a| a.team.as_deref()).collect();
        plan.missing_teams.retain(|t| needed.contains(t.as_str()));
        // Whether a team is left empty is a whole run's question.
        plan.empty_teams.clear();
        held.requests.retain(|r| only.contains(&r.0));
        held.approved.retain(|r| only.contains(&r.0));
        held.waiting.retain(|w| only.contains(w));
        held.dead.retain(|w| only.contains(w));
    }
    tracing::debug!(ms = t0.elapsed().as_millis() as u64, actions = plan.actions.len(), "planned");
    // Names are for notices only.
    let names = workers
        .iter()
        .filter(|_| !rules.config.notify.is_empty())
        .map(|w| {
            let first = w.preferred_name.as_ref().map(|n| n.as_str()).unwrap_or(w.first_name.as_str());
            (w.id.to_string(), format!("{first} {}", w.last_name.as_str()))
        })
        .collect();
    release((workers, links, deactivated));
    Ok(Prepared { rules, index, client, actual, plan, held, names, recovered, reads, hr_seen_ms, hr_seen_recent })
}

/// The workers of the last snapshot with these ids (those it holds).
pub(crate) async fn decoded(store: &Store, ids: &[String]) -> Result<Vec<hr::Worker>> {
    store.snapshot_of(ids).await?.iter().map(crate::intake::decode).collect()
}

/// Workers held back by quarantined HR rows are said to be held (the plan, the run's holds
/// in `tenure reviews`, status, a notice), not "in step": on every connection that plans them,
/// and a new hire known only from quarantined rows on every connection.
fn held_by_hr_rows(plan: &mut Plan, known: &std::collections::HashSet<&str>, held: &[(String, String, String)]) {
    let mut at: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, a) in plan.actions.iter().enumerate() {
        at.entry(a.worker.clone()).or_default().push(i);
    }
    let mut extra = vec![];
    for (worker, why, _) in held {
        let reason = format!("held: {why}");
        let mine = at.get(worker.as_str()).map(Vec::as_slice).unwrap_or_default();
        if mine.is_empty() && known.contains(worker.as_str()) {
            continue;
        }
        if let Some(&i) = mine.iter().find(|&&i| plan.actions[i].kind == Kind::NoChange) {
            let a = &mut plan.actions[i];
            a.kind = Kind::Skip;
            a.reason = reason;
            a.hold = Some(Hold::Data);
        } else {
            extra.push(engine::Action {
                target_id: mine.first().and_then(|&i| plan.actions[i].target_id.clone()),
                user_name: mine.first().and_then(|&i| plan.actions[i].user_name.clone()),
                hold: Some(Hold::Data),
                ..engine::Action::new(worker, Kind::Skip, reason)
            });
        }
    }
    plan.actions.extend(extra);
}

/// The guards' verdict on a plan, as `plan --json` carries it.
pub fn guard_verdict(p: &Prepared) -> serde_json::Value {
    crate::guards::verdict(&p.plan, &p.rules.connections[p.index])
}

/// What a door hears of a run as it goes; every method has a quiet default.
pub trait Watch: Send + Sync {
    /// A note for whoever watches (the plan's holds, the guard, warnings).
    fn note(&self, _line: &str) {}
    /// The plan about to be applied.
    fn plan(&self, _plan: &Plan) {}
    /// More accounts to create than go without asking: whether to go on. Only a person at a
    /// terminal is asked; every other door goes on.
    fn confirm_creates(&self, _creates: usize, _over: usize, _connection: &str) -> bool {
        true
    }
    /// Workers done and in all.
    fn progress(&self, _done: usize, _total: usize) {}
    /// Another run holds the connection and this one waits for it (said once).
    fn waiting(&self, _connection: &str, _holder: &store::Holder) {}
}

/// A watch that hears nothing: notes go to the log.
pub struct Quiet;

impl Watch for Quiet {
    fn note(&self, line: &str) {
        tracing::info!("{line}");
    }
}

/// What `tenure apply` (and each daemon run) is asked to do.
pub struct ApplyOptions<'a> {
    pub connection: Option<String>,
    /// Confirms a run the mass-deprovision guard stops: the exact number of deactivations.
    pub confirm: Option<usize>,
    /// Confirms a run the team guard stops: the exact number of team removals.
    pub confirm_team_removals: Option<usize>,
    /// Confirms a run the reactivation guard stops: the exact number of reactivations.
    pub confirm_reactivation: Option<usize>,
    pub as_of: Option<Timestamp>,
    /// Who hears of the run as it goes.
    pub watch: &'a dyn Watch,
    /// Only these workers (provision on demand); everyone when empty.
    pub workers: Vec<String>,
    /// A rehearsal (`as_of`) on a connection that is not the sandbox: its name, confirming.
    pub confirm_production: Option<String>,
    /// The daemon: wait for the run lock until told to stop.
    pub wait: Option<&'a mut tokio::sync::watch::Receiver<bool>>,
    /// Who started the run, as the audit names them (a platform user or token through the
    /// API, `os:NAME` from the command line); none: the door (the scheduler).
    pub actor: Option<String>,
    /// The person behind the start (a token acts as its maker): the proposer of the reviews
    /// it opens, whom maker-checker refuses them.
    pub proposer: Option<String>,
    /// A run a Reviewer started only to confirm the mass-deprovision guard: refused when the
    /// guard does not stop it (ordinary runs are an Editor's).
    pub confirm_only: bool,
    /// The run's id, when the caller names it beforehand (the API answers with it at once).
    pub run_id: Option<String>,
    /// Workers done and in all, as the run goes.
    pub progress: Option<std::sync::Arc<Progress>>,
    /// The door that started it, named when no actor is ("the scheduler", "the command line").
    pub door: &'static str,
    /// The process's run registry, where the run is live while it goes (the service's).
    pub registry: Option<&'a crate::registry::Registry>,
}

// A run's progress belongs to the registry that shows it; named here too for the doors.
pub use crate::registry::Progress;

impl ApplyOptions<'_> {
    pub fn new(connection: Option<String>) -> Self {
        ApplyOptions {
            connection,
            confirm: None,
            confirm_team_removals: None,
            confirm_reactivation: None,
            as_of: None,
            watch: &Quiet,
            workers: vec![],
            confirm_production: None,
            wait: None,
            actor: None,
            proposer: None,
            confirm_only: false,
            run_id: None,
            progress: None,
            door: "the command line",
            registry: None,
        }
    }
}

/// The one apply use case: plan and apply under the connection's run lock. With `wait` (the
/// daemon), waits for the lock until told to stop.
pub async fn run_apply(store: &Store, key: &MasterKey, mut opts: ApplyOptions<'_>) -> Result<Applied> {
    let name = connection_name(store, opts.connection.as_deref()).await?;
    let who = if opts.wait.is_some() { "tenure run" } else { "tenure apply" };
    // The command line's OS user is in the holder's own description already.
    let who = match &opts.actor {
        Some(a) if !a.starts_with("os:") => format!("{who} by {a}"),
        _ => who.to_string(),
    };
    let watch = opts.watch;
    let lock = match opts.wait.take() {
        Some(stop) => match run_lock::lock_waiting(store, &name, &who, stop, |h| watch.waiting(&name, h)).await? {
            Some(l) => l,
            None => return Ok(Applied::only(RunOutcome::Stopped, &name)),
        },
        None => match run_lock::try_lock(store, &name, &who).await? {
            run_lock::Lock::Got(l) => l,
            run_lock::Lock::Busy(h) => {
                let mut a = Applied::only(RunOutcome::Busy, &name);
                a.busy = Some(run_lock::busy_message(&name, &h));
                crate::metrics::record_run(&name, &a, 0.0);
                return Ok(a);
            }
        },
    };
    apply_holding(store, key, &name, &opts, lock).await
}

/// Applies on a connection whose run lock the caller took (the API takes it before it
/// answers, so a busy connection is said at once); the lock is released after.
pub async fn apply_holding(
    store: &Store,
    key: &MasterKey,
    name: &str,
    opts: &ApplyOptions<'_>,
    lock: run_lock::RunLock,
) -> Result<Applied> {
    let t0 = std::time::Instant::now();
    let run_id = opts.run_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let progress = opts.progress.clone().unwrap_or_default();
    let started_by = started_by(opts);
    if let Some(reg) = opts.registry {
        reg.register(&run_id, name, &started_by, progress.clone());
    }
    let run = Run { id: &run_id, started_by: &started_by, progress };
    let r = apply_locked(store, key, name, opts, &lock, run).await;
    lock.release().await;
    if let Some(reg) = opts.registry {
        reg.end(&run_id, crate::registry::outcome_view(&r));
    }
    if let Ok(a) = &r {
        crate::metrics::record_run(name, a, t0.elapsed().as_secs_f64());
        // A whole run went through: the guard no longer stops this connection. (A run for
        // chosen workers leaves the refusal in place: the next full run would meet it again.)
        if matches!(a.outcome, RunOutcome::Done | RunOutcome::Failures) && opts.workers.is_empty() {
            if let Err(e) = store.clear_guard(name).await {
                tracing::warn!("the guard's state of {name:?} could not be cleared: {e}");
            }
        }
    }
    r
}

/// A run's identity and progress, settled before it starts.
struct Run<'a> {
    id: &'a str,
    started_by: &'a str,
    progress: std::sync::Arc<Progress>,
}

/// Stops a task when dropped (the run's progress writer, whichever way the run ends).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Every second while a run goes, its progress is written to its record: every process (and
/// node) sees it live, and a run that stops writing is one that died.
fn write_progress(store: &Store, run: &Run) -> AbortOnDrop {
    let (store, id, progress) = (store.clone(), run.id.to_string(), run.progress.clone());
    AbortOnDrop(tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let (done, total) = (
                progress.done.load(std::sync::atomic::Ordering::Relaxed),
                progress.total.load(std::sync::atomic::Ordering::Relaxed),
            );
            if let Err(e) = store.run_progress(&id, done as i64, total as i64).await {
                tracing::debug!("the progress of run {id} was not written: {e}");
            }
        }
    }))
}

async fn apply_locked(
    store: &Store,
    key: &MasterKey,
    name: &str,
    opts: &ApplyOptions<'_>,
    lock: &run_lock::RunLock,
    run: Run<'_>,
) -> Result<Applied> {
    let watch = opts.watch;
    let now = opts.as_of.unwrap_or_else(Timestamp::now);
    refuse_rehearsal_off_sandbox(store, key, name, opts).await?;
    // Every write of the run is fenced by its lease: once another holder has the connection,
    // nothing more of this run is kept.
    let store = &store.fenced(lock.fence());
    let mut p = prepare(store, key, Some(name), now, Some(lock), &opts.workers).await?;
    if p.recovered > 0 {
        watch.note(&format!("resolved {} action(s) left in flight by an earlier run", p.recovered));
    }
    let conn = &p.rules.connections[p.index];
    if opts.confirm_only
        && p.plan.guard(&conn.guard).is_none()
        && p.plan.team_guard(&conn.team_guard).is_none()
        && p.plan.reactivation_guard(&conn.reactivation_guard).is_none()
    {
        release(p);
        return Err(Error::refused(format!(
            "refused: no guard (mass-deprovision, team or reactivation) stops this run on {name:?}, so there is \
             nothing to confirm; a Reviewer confirms guarded runs only, and an Editor starts ordinary ones. Nothing \
             was applied"
        )));
    }
    let opened = open_reviews_and_holds(store, &mut p, opts).await?;
    let conn = &p.rules.connections[p.index];
    let confirms = [opts.confirm, opts.confirm_team_removals, opts.confirm_reactivation];
    let word = crate::guards::refusals(&p.plan, conn, confirms);
    for c in &word.confirmed {
        watch.note(&format!("{}: {}; confirmed with {} {}", c.name(), c.why, c.flag(), c.count));
    }
    let verdict = (!word.refused.is_empty())
        .then(|| crate::guards::verdict_of(&word.refused, crate::guards::deactivations(&p.plan)));
    let mut news = false;
    let mut guard_held = vec![];
    if let Some(first) = word.refused.first() {
        for r in &word.refused {
            watch.note(&format!("refused: {}", r.said(name)));
        }
        // Kept in the store, so the status of every process says so until a whole run goes
        // through. One refusal is kept per connection: the first guard's.
        let by = opts.actor.clone().unwrap_or_else(crate::local::actor);
        news = store.trip_guard(name, first.guard, &first.why, first.count as i64, &by).await?;
        if opts.confirm_only {
            // A Reviewer only confirms guarded runs: while a guard still refuses, nothing goes.
            let mut a = refuse_whole(store, key, p, &word, news, opts, &run).await?;
            a.guard = verdict;
            return Ok(a);
        }
        guard_held = crate::guards::hold(&mut p.plan, &word.refused);
    }
    show_plan(&p, watch);
    if news && !p.rules.config.notify.is_empty() {
        notify_guard(store, key, &p, &word.refused, run.id, watch).await;
    }
    let conn = &p.rules.connections[p.index];
    let creates = p.plan.count(Kind::Create);
    if creates > conn.confirm_creates_over && !watch.confirm_creates(creates, conn.confirm_creates_over, name) {
        // Seats cost money: the person asked said no.
        return Ok(Applied::only(RunOutcome::NotConfirmed, name));
    }
    let run_id = run.id.to_string();
    let as_of = opts.as_of.map(|t| t.to_string());
    store.start_run(&run_id, &conn.name, run.started_by, as_of.as_deref()).await?;
    let _writing = write_progress(store, &run);
    if !word.confirmed.is_empty() {
        let why: Vec<&str> = word.confirmed.iter().map(|c| c.why.as_str()).collect();
        record_guard_confirmed(store, &p, &why.join("; "), &run_id, opts).await?;
    }
    let summary = carry_out(store, &mut p, lock, &run, watch).await?;
    let held = GuardHeld { refused: &word.refused, workers: &guard_held };
    let newly_dead = settle(store, &p, &summary, now, opts, &run_id, &held).await?;
    if !newly_dead.is_empty() {
        watch.note(&format!(
            "dead letters: worker(s) {} failed {} run(s) in a row and are set aside: see `tenure dead-letters`",
            newly_dead.join(", "),
            p.rules.connections[p.index].dead_letter_after
        ));
    }
    if !p.rules.config.notify.is_empty() {
        notify_after(store, key, &p, &summary, opened, &newly_dead, &run_id, watch).await;
    }
    let scim = p.client.stats();
    release(p);
    // A guard's hold is what a person must act on first; then a worker set aside in this run
    // is a failure of this run, whatever its last attempt said.
    let outcome = if verdict.is_some() {
        RunOutcome::GuardHeld
    } else if summary.failed > 0 || !newly_dead.is_empty() {
        RunOutcome::Failures
    } else {
        RunOutcome::Done
    };
    Ok(Applied {
        outcome,
        connection: name.to_string(),
        summary: Some(summary),
        newly_dead,
        guard: verdict,
        busy: None,
        scim,
    })
}

/// What the guards held of a run, for its record.
struct GuardHeld<'a> {
    refused: &'a [crate::guards::Refusal],
    /// The workers whose actions they held: their HR events stay pending.
    workers: &'a [String],
}

/// A run a guard refuses whole (a Reviewer's confirmation that does not match): kept in the
/// history, since a refused attempt is part of what happened, and nothing applied.
async fn refuse_whole(
    store: &Store,
    key: &MasterKey,
    p: Prepared,
    word: &crate::guards::Refusals,
    news: bool,
    opts: &ApplyOptions<'_>,
    run: &Run<'_>,
) -> Result<Applied> {
    if news && !p.rules.config.notify.is_empty() {
        notify_guard(store, key, &p, &word.refused, run.id, opts.watch).await;
    }
    let first = &word.refused[0];
    let summary = serde_json::json!({"refused": first.why, "guard": first.guard.as_str(), "confirm_with": first.count,
        "guards": word.refused.iter().map(crate::guards::Refusal::view).collect::<Vec<_>>()});
    let as_of = opts.as_of.map(|t| t.to_string());
    store
        .record_refused_run(run.id, &p.plan.connection, run.started_by, as_of.as_deref(), &summary.to_string())
        .await?;
    let a = Applied::only(RunOutcome::GuardRefused, &p.plan.connection);
    release(p);
    Ok(a)
}

/// A rehearsal acts at another moment than now: only on tenure's sandbox, unless the operator
/// names the connection to say it is meant for a real target.
async fn refuse_rehearsal_off_sandbox(
    store: &Store,
    key: &MasterKey,
    name: &str,
    opts: &ApplyOptions<'_>,
) -> Result<()> {
    if opts.as_of.is_none() || opts.confirm_production.as_deref() == Some(name) {
        return Ok(());
    }
    let client = client_for(store, key, name).await?;
    if is_sandbox(&client).await? {
        return Ok(());
    }
    Err(Error::refused(format!(
        "{name:?} ({}) is not tenure's sandbox: a rehearsal (--as-of, --rehearse-from) acts only on the \
         sandbox; to act on this real target at another moment, add --confirm-production {name:?}",
        client.base_url()
    )))
}

/// Who or what started a run, as its record and the reviews it opens say: the actor, or the door.
fn started_by(opts: &ApplyOptions<'_>) -> String {
    opts.actor.clone().unwrap_or_else(|| opts.door.to_string())
}

/// The reviews and holds a plan opened, for the notices after the run.
struct Opened {
    reviews: Vec<store::Review>,
    new_reviews: Vec<i64>,
    newly_held: Vec<(String, String)>,
}

/// Opens (or keeps) the reviews the plan needs, superseding stale ones, and lists the held
/// workers until HR settles them. Each review records who started this run and (the store
/// finds it) who uploaded the HR data it acts on: neither may approve it.
async fn open_reviews_and_holds(store: &Store, p: &mut Prepared, opts: &ApplyOptions<'_>) -> Result<Opened> {
    let (reviews, new_reviews) =
        store.sync_reviews(&p.plan.connection, &p.held.requests, opts.proposer.as_deref(), &started_by(opts)).await?;
    // By worker, so a supervised initial sync of thousands is not a scan per held worker.
    let review_of: HashMap<&str, i64> = reviews.iter().map(|r| (r.worker_id.as_str(), r.id)).collect();
    for a in p.plan.actions.iter_mut().filter(|a| a.hold == Some(Hold::Waiting)) {
        if let Some(id) = review_of.get(a.worker.as_str()).filter(|_| !a.reason.contains("review #")) {
            a.reason = format!("{} (review #{id})", a.reason);
        }
    }
    // Held workers (no decision releases them) are listed beside the reviews.
    let holds: Vec<(String, String)> = p
        .plan
        .actions
        .iter()
        .filter(|a| a.hold == Some(Hold::Data))
        .map(|a| (a.worker.clone(), a.reason.clone()))
        .collect();
    let mut newly_held = vec![];
    if opts.workers.is_empty() {
        // A run for chosen workers leaves the others' holds as the last full run saw them.
        let new = store.replace_holds(&p.plan.connection, &holds).await?;
        newly_held = holds.iter().filter(|h| new.contains(&h.0)).cloned().collect();
    }
    Ok(Opened { reviews, new_reviews, newly_held })
}

/// The plan about to be applied, with what holds workers back, for whoever watches.
fn show_plan(p: &Prepared, watch: &dyn Watch) {
    watch.plan(&p.plan);
    let data = p.plan.actions.iter().filter(|a| a.hold == Some(Hold::Data)).count();
    if data > 0 {
        watch.note(&format!("{data} worker(s) held until HR data settles them: see `tenure reviews`"));
    }
    if !p.held.waiting.is_empty() {
        watch.note(&format!(
            "{} worker(s) wait for a reviewer: see `tenure reviews`, then `tenure approve` or `tenure reject`",
            p.held.waiting.len()
        ));
    }
}

/// The notices of the guards that held part of a run: each one's numbers and the command
/// that confirms it.
async fn notify_guard(
    store: &Store,
    key: &MasterKey,
    p: &Prepared,
    refused: &[crate::guards::Refusal],
    run_id: &str,
    watch: &dyn Watch,
) {
    let notices: Vec<crate::notify::Notice> = refused
        .iter()
        .map(|r| crate::notify::Notice {
            kind: Some(rules::notify::NoticeKind::GuardRefused),
            connection: p.plan.connection.clone(),
            stage: r.name().to_string(),
            reason: r.why.trim_end_matches('.').to_string(),
            count: r.count.to_string(),
            holds: r.holds().to_string(),
            confirm: format!("tenure apply --connection {:?} {} {}", p.plan.connection, r.flag(), r.count),
            run_id: run_id.to_string(),
            at: Timestamp::now().to_string(),
            ..Default::default()
        })
        .collect();
    for problem in crate::notify::deliver(store, key, &p.rules.config.notify, &notices).await {
        watch.note(&problem);
    }
}

/// The audit's record of who confirmed the guard, for how many, and whom it let go.
async fn record_guard_confirmed(
    store: &Store,
    p: &Prepared,
    why: &str,
    run_id: &str,
    opts: &ApplyOptions<'_>,
) -> Result<()> {
    let by = opts.actor.clone().unwrap_or_else(crate::local::actor);
    let deactivations = crate::guards::deactivations(&p.plan);
    let leaving: Vec<&str> = p
        .plan
        .actions
        .iter()
        .filter(|a| matches!(a.kind, Kind::Deactivate | Kind::Delete))
        .map(|a| a.worker.as_str())
        .collect();
    let decision = crate::decisions::Decision {
        action: "guard_confirm",
        connection: &p.plan.connection,
        worker: "",
        run_id,
        actor: &by,
        note: None,
        detail: serde_json::json!({"why": why, "confirmed": deactivations, "workers": leaving,
            "team_removals": p.plan.count(Kind::TeamRemove)}),
    };
    crate::decisions::record(store, &[decision]).await
}

/// Applies the plan with the connection's concurrency, its progress told as it goes.
async fn carry_out(
    store: &Store,
    p: &mut Prepared,
    lock: &run_lock::RunLock,
    run: &Run<'_>,
    watch: &dyn Watch,
) -> Result<engine::apply::Summary> {
    let teams: HashMap<String, String> = p
        .actual
        .groups
        .iter()
        .map(|g| {
            (
                g["displayName"].as_str().unwrap_or_default().to_lowercase(),
                g["id"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let watched = run.progress.clone();
    let progress = |done: usize, total: usize| {
        watched.total.store(total, std::sync::atomic::Ordering::Relaxed);
        watched.done.store(done, std::sync::atomic::Ordering::Relaxed);
        watch.progress(done, total);
    };
    let t0 = std::time::Instant::now();
    // Shared with the apply's worker tasks rather than copied action by action; back after.
    let plan = std::sync::Arc::new(std::mem::take(&mut p.plan));
    let lost = lock.flag();
    let concurrency = p.rules.connections[p.index].concurrency;
    let pace = engine::apply::Pace { concurrency, progress: &progress, lost: &lost };
    let applied = engine::apply::apply(store, &p.client, &plan, teams, run.id, pace).await;
    p.plan = std::sync::Arc::try_unwrap(plan).unwrap_or_else(|shared| (*shared).clone());
    let mut summary = applied.map_err(Error::unavailable)?;
    // What this run resolved of an earlier one's actions in flight, said in its summary.
    summary.recovered = p.recovered;
    if lock.lost() {
        watch.note(&format!(
            "warning: this run lost its lease on {:?} while it ran; actions not yet started were left",
            p.plan.connection
        ));
    }
    tracing::debug!(ms = t0.elapsed().as_millis() as u64, "applied");
    Ok(summary)
}

/// The after-run bookkeeping, in one transaction so that a kill leaves all or none: the run's
/// record, failures towards the dead-letter list (successes clear it), approved reviews
/// carried out, and the HR events now reflected on the target. The workers that became dead
/// letters.
async fn settle(
    store: &Store,
    p: &Prepared,
    summary: &engine::apply::Summary,
    now: Timestamp,
    opts: &ApplyOptions<'_>,
    run_id: &str,
    guarded: &GuardHeld<'_>,
) -> Result<Vec<String>> {
    let conn = &p.rules.connections[p.index];
    let failing: std::collections::HashSet<&str> = summary.failures.keys().map(String::as_str).collect();
    let units = engine::review::units(&p.plan, &failing);
    let failed: Vec<(String, String, String, String)> = summary
        .failures
        .iter()
        .map(|(w, e)| {
            let (f, d) = units.get(w).cloned().unwrap_or_default();
            (w.clone(), f, d, e.clone())
        })
        .collect();
    let mut succeeded: Vec<String> = p
        .plan
        .actions
        .iter()
        .filter(|a| a.kind.acts() && !summary.failures.contains_key(&a.worker))
        .map(|a| a.worker.clone())
        .collect();
    succeeded.dedup();
    // An approved review is carried out only when its actions were: not when they failed, nor
    // when a guard held them (the approval waits for the run that applies them).
    let applied: Vec<i64> = p
        .held
        .approved
        .iter()
        .filter(|(w, _)| !summary.failures.contains_key(w) && !guarded.workers.contains(w))
        .map(|(_, id)| *id)
        .collect();
    // HR events whose moment has come are now reflected on the target, except for workers
    // that failed or were held back.
    let due = store
        .events(&EventQuery {
            state: Some(store::EventState::Pending),
            due_by: Some(now.as_second()),
            ..Default::default()
        })
        .await?;
    // Only what the plan saw: the events of a load recorded after its snapshot was read stay
    // pending (the news of that load brings another run).
    let mut late = store.loads_recorded_after(p.hr_seen_ms.map(|ms| ms - LATE_COMMIT_MS)).await?;
    late.retain(|l| !p.hr_seen_recent.contains(l));
    let due: Vec<_> = due.into_iter().filter(|e| !late.contains(&e.load_id)).collect();
    tracing::debug!(due = due.len(), "due events read");
    let mut except: Vec<String> =
        summary.failures.keys().chain(&p.held.waiting).chain(&p.held.dead).chain(guarded.workers).cloned().collect();
    except.sort();
    except.dedup();
    let mut loads: Vec<String> = due.iter().map(|e| e.load_id.clone()).collect();
    loads.sort();
    loads.dedup();
    let events = if opts.as_of.is_some() {
        // A rehearsal's moment is not now: the real events stay pending for the real runs
        // (and the daemon still wakes at their moments).
        tracing::debug!("rehearsal: HR events are left pending");
        store::EventsDone::None
    } else if !opts.workers.is_empty() {
        // A run for chosen workers settles their events only; the others' wait for a full run.
        store::EventsDone::These(
            due.iter()
                .filter(|e| opts.workers.contains(&e.worker_id) && except.binary_search(&e.worker_id).is_err())
                .map(|e| e.id.clone())
                .collect(),
        )
    } else if except.len() <= 500 {
        // Only the loads this run saw: events of a load made meanwhile stay pending.
        store::EventsDone::DueFromLoads { due_by: now.as_second(), loads: &loads, except: &except }
    } else {
        store::EventsDone::These(
            due.iter().filter(|e| except.binary_search(&e.worker_id).is_err()).map(|e| e.id.clone()).collect(),
        )
    };
    // What a guard held is part of the run's record: its views read it from there.
    let mut record = serde_json::to_value(summary).unwrap_or_default();
    let scim = p.client.stats();
    // The pace learned from the target's refusals (not the ceiling, nor a quota it tells
    // anew), and where: what the connection's next run starts from.
    record["scim"] = serde_json::json!({"requests": scim.requests, "rate_limited": scim.rate_limited,
        "pace_per_second": p.client.learned_rate().map(|r| (r * 10.0).round() / 10.0),
        "pace_at": p.client.base_url()});
    if !guarded.refused.is_empty() {
        record["guards"] = guarded.refused.iter().map(crate::guards::Refusal::view).collect();
    }
    let summary_json = record.to_string();
    let newly_dead = store
        .finish_run_with(&store::AfterRun {
            run_id,
            connection: &conn.name,
            summary: &summary_json,
            failed: &failed,
            succeeded: &succeeded,
            dead_after: conn.dead_letter_after as i64,
            reviews_applied: &applied,
            events,
        })
        .await?;
    tracing::debug!("recorded attempts, reviews and events");
    Ok(newly_dead)
}

/// The notices a run gives (failures, new dead letters, reviews opened, workers held); a
/// notice that cannot be delivered is a warning, never the run's failure.
#[allow(clippy::too_many_arguments)]
async fn notify_after(
    store: &Store,
    key: &MasterKey,
    p: &Prepared,
    summary: &engine::apply::Summary,
    opened: Opened,
    newly_dead: &[String],
    run_id: &str,
    watch: &dyn Watch,
) {
    // A held worker's one skip carries the reason the review was opened for.
    let reason_of: HashMap<&str, &str> = p
        .plan
        .actions
        .iter()
        .filter(|a| a.kind == Kind::Skip && matches!(a.hold, Some(Hold::Waiting | Hold::Rejected)))
        .map(|a| (a.worker.as_str(), a.reason.as_str()))
        .collect();
    let new_reviews: std::collections::HashSet<i64> = opened.new_reviews.into_iter().collect();
    let reviews_opened = opened
        .reviews
        .iter()
        .filter(|r| new_reviews.contains(&r.id))
        .map(|r| {
            let reason = reason_of.get(r.worker_id.as_str()).copied().unwrap_or_default().to_string();
            (r.worker_id.clone(), r.stage.clone(), reason)
        })
        .collect();
    let facts = crate::notify::RunFacts {
        plan: &p.plan,
        names: &p.names,
        failures: &summary.failures,
        newly_dead,
        opened: reviews_opened,
        newly_held: opened.newly_held,
        run_id,
    };
    let notices = crate::notify::notices(&facts);
    for problem in crate::notify::deliver(store, key, &p.rules.config.notify, &notices).await {
        watch.note(&format!("warning: {problem}"));
    }
}

/// Frees what a run read and planned on another thread: for 100,000 accounts that is some
/// 300 ms of work the answer need not wait for (a command exits before it is done; the
/// daemon frees it while it sleeps).
pub fn release<T: Send + 'static>(big: T) {
    std::thread::spawn(move || drop(big));
}

/// A run a person starts from a door (the API, the console), carried out in the background.
#[derive(Debug, Clone)]
pub struct Start {
    /// Only these workers (provision on demand); everyone when empty.
    pub workers: Vec<String>,
    /// Confirms a run the mass-deprovision guard stops: the exact number of deactivations.
    pub confirm: Option<usize>,
    /// Confirms a run the team guard stops: the exact number of team removals.
    pub confirm_team_removals: Option<usize>,
    /// Confirms a run the reactivation guard stops: the exact number of reactivations.
    pub confirm_reactivation: Option<usize>,
    /// As the audit names who started it.
    pub actor: String,
    /// The person behind it, for maker-checker.
    pub person: String,
    /// The starter may only confirm the guard (a Reviewer who is not an Editor).
    pub confirm_only: bool,
    /// How the run's record names the door.
    pub door: &'static str,
}

/// A `Start` as a handed run's request keeps it in the store.
#[derive(serde::Serialize, serde::Deserialize)]
struct Handed {
    workers: Vec<String>,
    confirm: Option<usize>,
    confirm_team_removals: Option<usize>,
    confirm_reactivation: Option<usize>,
    actor: String,
    person: String,
    confirm_only: bool,
    door: String,
}

/// The doors a run is started from, by name: a handed run keeps the name of its door.
const DOORS: [&str; 3] = ["the API", "the console", "the command line"];

impl Start {
    fn to_request(&self) -> Result<String> {
        let h = Handed {
            workers: self.workers.clone(),
            confirm: self.confirm,
            confirm_team_removals: self.confirm_team_removals,
            confirm_reactivation: self.confirm_reactivation,
            actor: self.actor.clone(),
            person: self.person.clone(),
            confirm_only: self.confirm_only,
            door: self.door.to_string(),
        };
        serde_json::to_string(&h).map_err(|e| Error::unavailable(e.to_string()))
    }

    fn from_request(text: &str) -> std::result::Result<Start, serde_json::Error> {
        let h: Handed = serde_json::from_str(text)?;
        Ok(Start {
            workers: h.workers,
            confirm: h.confirm,
            confirm_team_removals: h.confirm_team_removals,
            confirm_reactivation: h.confirm_reactivation,
            actor: h.actor,
            person: h.person,
            confirm_only: h.confirm_only,
            door: DOORS.into_iter().find(|d| *d == h.door).unwrap_or("another node"),
        })
    }
}

/// A run started: its id, and the node it was handed to when this one does not own the
/// connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub id: String,
    pub handed_to: Option<String>,
}

/// Starts a run on a connection under the configuration in force and answers its id at once.
/// On the node that owns the connection (or when no live node does), the run is registered
/// live before this returns (so whoever follows it finds it), holds the connection's lock
/// (Busy when another run does), and ends in the registry whatever its outcome. On another
/// node it is handed to the owner through the store, which starts it under the same id.
pub async fn start(
    store: &Store,
    key: &std::sync::Arc<MasterKey>,
    registry: &std::sync::Arc<crate::registry::Registry>,
    name: &str,
    s: Start,
) -> Result<Started> {
    let rules = config::current(store).await?;
    pick(&rules, Some(name)).map_err(Error::not_found)?;
    if let Some(owner) = crate::nodes::other_owner(store, name).await? {
        let id = uuid::Uuid::new_v4().to_string();
        let what = s.to_request()?;
        store.request_run(&id, name, &what, run_lock::incarnation()).await?;
        return Ok(Started { id, handed_to: Some(owner) });
    }
    let id = start_here(store, key, registry, name, s, None).await?;
    Ok(Started { id, handed_to: None })
}

/// Starts the run on this node, under `id` when it was handed here.
async fn start_here(
    store: &Store,
    key: &std::sync::Arc<MasterKey>,
    registry: &std::sync::Arc<crate::registry::Registry>,
    name: &str,
    s: Start,
    id: Option<String>,
) -> Result<String> {
    let lock = match run_lock::try_lock(store, name, &format!("run by {}", s.actor)).await? {
        run_lock::Lock::Got(l) => l,
        run_lock::Lock::Busy(h) => return Err(Error::Busy(run_lock::busy_message(name, &h))),
    };
    let handed = id.is_some();
    let run_id = id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let progress: std::sync::Arc<Progress> = std::sync::Arc::default();
    registry.register(&run_id, name, &s.actor, progress.clone());
    let (store, key, registry, id, connection) =
        (store.clone(), key.clone(), registry.clone(), run_id.clone(), name.to_string());
    tokio::spawn(async move {
        let mut opts = ApplyOptions::new(Some(connection.clone()));
        opts.workers = s.workers;
        opts.confirm = s.confirm;
        opts.confirm_team_removals = s.confirm_team_removals;
        opts.confirm_reactivation = s.confirm_reactivation;
        opts.actor = Some(s.actor);
        opts.proposer = Some(s.person);
        opts.confirm_only = s.confirm_only;
        opts.run_id = Some(id.clone());
        opts.progress = Some(progress);
        opts.door = s.door;
        opts.registry = Some(&registry);
        // Its outcome goes to the registry, whatever it is.
        let outcome = apply_holding(&store, &key, &connection, &opts, lock).await;
        // A handed run that ended before its record was written (a target that cannot be
        // reached, a refusal) says why where the asking node reads it; it is not taken again.
        if handed && matches!(store.run(&id).await, Ok(None)) {
            let why = match outcome {
                Err(e) => e.to_string(),
                Ok(_) => "it ended before it began".to_string(),
            };
            if let Err(e) = store.fail_run_request(&id, &why).await {
                tracing::warn!("run {id} handed over: its end could not be recorded: {e}");
            }
        }
    });
    Ok(run_id)
}

/// Starts the runs other nodes handed to this one (it owns their connections); a run whose
/// connection is busy waits for the next look. Says each run started or refused.
pub async fn start_handed(
    store: &Store,
    key: &std::sync::Arc<MasterKey>,
    registry: &std::sync::Arc<crate::registry::Registry>,
    say: &(dyn Fn(&str) + Send + Sync),
) -> Result<()> {
    let me = run_lock::incarnation();
    for q in store.run_requests_for(me).await? {
        if !store.take_run_request(&q, me).await? {
            continue;
        }
        let start = match Start::from_request(&q.start) {
            Ok(s) => s,
            Err(e) => {
                store.fail_run_request(&q.id, &format!("the request cannot be read: {e}")).await?;
                continue;
            }
        };
        let found = config::current(store).await.and_then(|r| pick(&r, Some(&q.connection)).map_err(Error::not_found));
        let started = match found {
            Ok(_) => start_here(store, key, registry, &q.connection, start, Some(q.id.clone())).await,
            Err(e) => Err(e),
        };
        match started {
            Ok(_) => say(&format!("{:?}: started run {} handed over by node {}", q.connection, q.id, q.requested_by)),
            // Another run holds the connection: this one starts when it is done.
            Err(Error::Busy(_)) => store.put_back_run_request(&q.id, me).await?,
            Err(e) => {
                say(&format!("{:?}: run {} handed over cannot start: {e}", q.connection, q.id));
                store.fail_run_request(&q.id, &e.to_string()).await?;
            }
        }
    }
    Ok(())
}

/// A handed run not started yet, as the run's documents give it: queued at its owner, or
/// failed to start with why. None: no such request, or its run has begun (the store has it).
pub async fn handed(store: &Store, id: &str) -> Result<Option<serde_json::Value>> {
    let Some(q) = store.run_request(id).await? else { return Ok(None) };
    let actor = Start::from_request(&q.start).map(|s| s.actor).unwrap_or_default();
    let state = if q.error.is_some() { "error" } else { "queued" };
    Ok(Some(serde_json::json!({"id": q.id, "connection": q.connection, "started_by": actor, "state": state,
        "taken_by": q.taken_by, "requested_at": run_lock::moment(q.requested_ms), "error": q.error})))
}

/// A plan as `tenure plan --json` prints it and the API and console answer it: its actions
/// and the guard's verdict.
pub fn plan_document(p: &Prepared) -> Result<serde_json::Value> {
    let mut v = serde_json::to_value(&p.plan).map_err(|e| Error::unavailable(e.to_string()))?;
    v["guard"] = guard_verdict(p);
    Ok(v)
}
