//! `tenure plan`, `tenure apply` and `tenure audit`: the engine on the command line.

use crate::{config_cmd, run_lock};
use engine::{Actual, Kind, Plan};
use jiff::Timestamp;
use rules::Rules;
use scim_client::{ClientConfig, InstanceUrl, RetryPolicy, ScimClient, Token, UrlPolicy};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use store::{EventQuery, MasterKey, Store};

/// A client for a stored connection, built as `tenure connection test` builds it.
pub async fn client_for(store: &Store, key: &MasterKey, name: &str) -> Result<ScimClient, String> {
    client_at(store, key, name, RetryPolicy::default(), false).await
}

/// A client for a stored connection. It speaks only to the URL stored with the connection:
/// no caller can point the stored token anywhere else (a configuration naming another URL
/// is checked against the saved schema instead, and saved only with an Admin's confirmation).
pub async fn client_at(
    store: &Store,
    key: &MasterKey,
    name: &str,
    retry: RetryPolicy,
    allow_delete: bool,
) -> Result<ScimClient, String> {
    let c =
        store.connection(name).await.map_err(|e| e.to_string())?.ok_or_else(|| {
            format!("no connection named {name:?}: add it with `tenure connection add --name {name:?}`")
        })?;
    let policy = UrlPolicy { allow_insecure_http: c.insecure_http, allow_private: c.allow_private };
    let url = InstanceUrl::parse(&c.base_url, policy)?;
    url.check_resolved(policy).await?;
    let token = key.open(&c.token, &c.id)?;
    let dialect = c.dialect.parse().unwrap_or(url.dialect());
    let mut cfg = ClientConfig::new(url.as_str(), dialect);
    cfg.requests_per_second = c.rate_limit_per_second;
    cfg.page_size = 1000;
    cfg.retry = retry;
    cfg.allow_delete = allow_delete;
    cfg.address_policy = policy;
    ScimClient::new(cfg, Token::new(token.expose())).map_err(|e| e.to_string())
}

pub async fn workers(store: &Store) -> Result<Vec<hr::Worker>, String> {
    let rows = store.snapshot_decoded::<hr::Worker>().await.map_err(|e| e.to_string())?;
    Ok(rows.into_iter().map(|(_, w)| w).collect())
}

pub async fn read_actual(client: &ScimClient) -> Result<Actual, String> {
    // Both at once: the teams' member lists are one large page the users need not wait for.
    let (users, groups) = tokio::join!(client.list_users_lean(), client.list_groups(None));
    let users = users.map_err(|e| format!("cannot read the target's users: {e}"))?;
    let groups = groups.map_err(|e| format!("cannot read the target's teams: {e}"))?;
    Ok(Actual { users, groups })
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
}

/// How a command reports: in full, the summary and failures only, or JSON alone on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Text,
    Quiet,
    Json,
    /// Nothing on stdout or stderr (the API): notes go to the log, the outcome to the caller.
    Silent,
}

impl Output {
    /// A note for the person at the terminal: on stderr when stdout is for JSON.
    pub fn note(self, msg: &str) {
        match self {
            Output::Json => eprintln!("{msg}"),
            Output::Silent => tracing::info!("{msg}"),
            Output::Text | Output::Quiet => outln!("{msg}"),
        }
    }
}

/// Whether a target is tenure's own sandbox (its ServiceProviderConfig says so).
pub async fn is_sandbox(client: &ScimClient) -> Result<bool, String> {
    match client.service_provider_config().await {
        Ok(spc) => Ok(spc.is_some_and(|s| s.documentation_uri.as_deref() == Some(sandbox::SANDBOX_MARKER))),
        Err(e) => Err(format!("cannot tell whether {} is tenure's sandbox: {e}", client.base_url())),
    }
}

/// The configured connection a command means: the one named, or the only one.
pub fn pick(rules: &Rules, connection: Option<&str>) -> Result<usize, String> {
    match connection {
        Some(n) => rules
            .connections
            .iter()
            .position(|c| c.name == n)
            .ok_or_else(|| format!("the configuration has no connection {n:?}")),
        None if rules.connections.len() == 1 => Ok(0),
        None if rules.connections.is_empty() => Err("the configuration has no connection".into()),
        None => Err("several connections are configured: say which with --connection".into()),
    }
}

/// The name of the connection a command means (to lock it before anything else).
pub async fn connection_name(store: &Store, connection: Option<&str>) -> Result<String, String> {
    let rules = config_cmd::current(store).await?;
    Ok(rules.connections[pick(&rules, connection)?].name.clone())
}

/// Resolves what an earlier run left in flight (only under the run lock: `recover`), reads
/// the target, and plans.
pub async fn prepare(
    store: &Store,
    key: &MasterKey,
    connection: Option<&str>,
    now: Timestamp,
    recover: bool,
    only: &[String],
) -> Result<Prepared, String> {
    let rules = config_cmd::current(store).await?;
    prepare_with(store, key, rules, connection, now, recover, only).await
}

/// As `prepare`, with rules that need not be the saved ones (`preview --config FILE`).
#[allow(clippy::too_many_arguments)] // prepare's inputs and the rules to plan with
pub async fn prepare_with(
    store: &Store,
    key: &MasterKey,
    rules: Rules,
    connection: Option<&str>,
    now: Timestamp,
    recover: bool,
    only: &[String],
) -> Result<Prepared, String> {
    let t0 = std::time::Instant::now();
    tracing::debug!(ms = t0.elapsed().as_millis() as u64, "configuration compiled");
    let index = pick(&rules, connection)?;
    let name = rules.connections[index].name.clone();
    // DELETE only where the configuration asks for hard deletes.
    let deletes = rules.connections[index].hard_delete_after_days.is_some();
    let client = client_at(store, key, &name, RetryPolicy::default(), deletes).await?;
    let mut recovered = 0;
    if recover {
        recovered = engine::apply::recover(store, &client, &name, rules.connections[index].concurrency).await?;
        tracing::debug!(ms = t0.elapsed().as_millis() as u64, "recovered in-flight actions");
    }
    // The target is read while the store is: one waits on the network, the other decodes.
    let reading = {
        let client = client.clone();
        tokio::spawn(async move { read_actual(&client).await })
    };
    let workers = workers(store).await?;
    tracing::debug!(ms = t0.elapsed().as_millis() as u64, n = workers.len(), "read the HR snapshot");
    let links = store.links(&name).await.map_err(|e| e.to_string())?;
    let deactivated = store.deactivations(&name).await.map_err(|e| e.to_string())?;
    tracing::debug!(ms = t0.elapsed().as_millis() as u64, links = links.len(), "read the links");
    let actual = reading.await.map_err(|e| format!("reading the target stopped: {e}"))??;
    tracing::debug!(ms = t0.elapsed().as_millis() as u64, users = actual.users.len(), "read the target");
    let inputs = engine::plan::Inputs {
        rules: &rules,
        connection: index,
        workers: &workers,
        actual: &actual,
        links: &links,
        deactivated: &deactivated,
        now,
    };
    let mut plan = engine::plan::plan(&inputs)?;
    let reviews = store.reviews(Some(&name), &["pending", "approved", "rejected"]).await.map_err(|e| e.to_string())?;
    let dead = store.dead_letters(Some(&name)).await.map_err(|e| e.to_string())?;
    let mut held = engine::review::hold(&mut plan, &rules.connections[index].supervised, &reviews, &dead);
    let hr_held = store.hr_held().await.map_err(|e| e.to_string())?;
    if !hr_held.is_empty() {
        let known: std::collections::HashSet<&str> = workers.iter().map(|w| w.id.as_str()).collect();
        held_by_hr_rows(&mut plan, &known, &hr_held);
    }
    if !only.is_empty() {
        // Provision on demand: these workers' actions only, under the same guard, journal,
        // audit and notices as a full run.
        for w in only {
            if !workers.iter().any(|x| x.id.as_str() == w) {
                return Err(format!("worker {w} is not in the HR snapshot (load it first with `tenure hr load`)"));
            }
        }
        plan.actions.retain(|a| only.contains(&a.worker));
        let needed: std::collections::HashSet<&str> =
            plan.actions.iter().filter(|a| a.kind == Kind::TeamAdd).filter_map(|a| a.team.as_deref()).collect();
        plan.missing_teams.retain(|t| needed.contains(t.as_str()));
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
    Ok(Prepared { rules, index, client, actual, plan, held, names, recovered })
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
        } else {
            extra.push(engine::Action {
                worker: worker.clone(),
                kind: Kind::Skip,
                target_id: mine.first().and_then(|&i| plan.actions[i].target_id.clone()),
                user_name: mine.first().and_then(|&i| plan.actions[i].user_name.clone()),
                role: None,
                reason,
                changes: vec![],
                body: None,
                team: None,
                moved_from: None,
                review: None,
            });
        }
    }
    plan.actions.extend(extra);
}

const ORDER: [Kind; 10] = [
    Kind::Create,
    Kind::Adopt,
    Kind::Reactivate,
    Kind::Update,
    Kind::TeamAdd,
    Kind::TeamRemove,
    Kind::Deactivate,
    Kind::Delete,
    Kind::Skip,
    Kind::NoChange,
];

/// The plan for a person: grouped by kind, coloured on a terminal.
pub fn print_plan(plan: &Plan, verbose: bool) {
    use std::io::Write;
    let color = crate::output::colour(std::io::stdout().is_terminal());
    let paint = |code: &str, s: &str| if color { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() };
    // One buffer for the whole plan: stdout flushes every line, a system call per action.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = (|| -> std::io::Result<()> {
        writeln!(out, "plan for {:?}:", plan.connection)?;
        for k in ORDER {
            let acts: Vec<_> = plan.actions.iter().filter(|a| a.kind == k).collect();
            if acts.is_empty() || (k == Kind::NoChange && !verbose) {
                continue;
            }
            let code = match k {
                Kind::Create | Kind::Reactivate | Kind::Adopt => "32",
                Kind::Update | Kind::TeamAdd | Kind::TeamRemove => "33",
                Kind::Deactivate | Kind::Delete => "31",
                _ => "2",
            };
            writeln!(out, "{}", paint(code, &format!("  {} ({})", k.as_str(), acts.len())))?;
            for a in acts {
                let who = a.user_name.as_deref().unwrap_or_default();
                write!(out, "    worker {:<10} {who:<36} {}", a.worker, a.reason)?;
                if let Some(t) = &a.team {
                    write!(out, " [team {t}]")?;
                }
                writeln!(out)?;
                for c in &a.changes {
                    writeln!(out, "        {}: {} -> {}", c.attribute, c.before, c.after)?;
                }
            }
        }
        if !plan.unmanaged.is_empty() {
            writeln!(
                out,
                "  not managed by tenure, left alone ({}): {}",
                plan.unmanaged.len(),
                plan.unmanaged.join(", ")
            )?;
        }
        let counts: Vec<String> = ORDER.iter().map(|k| format!("{} {}", k.as_str(), plan.count(*k))).collect();
        writeln!(out, "plan: {}", counts.join(", "))?;
        out.flush()
    })();
    if let Err(e) = written {
        crate::output::closed(e);
    }
}

pub async fn open_with_key(data_dir: &Path, database_url: Option<&str>) -> Result<(Store, MasterKey), String> {
    let store = config_cmd::open(data_dir, database_url).await?;
    let key = MasterKey::load(data_dir)?;
    Ok((store, key))
}

/// The guard's verdict on a plan, as `plan --json` carries it.
pub fn guard_verdict(p: &Prepared) -> serde_json::Value {
    let n = p.plan.count(Kind::Deactivate) + p.plan.count(Kind::Delete);
    match p.plan.guard(&p.rules.connections[p.index].guard) {
        Some(why) => serde_json::json!({"refused": true, "why": why, "confirm_with": n}),
        None => serde_json::json!({"refused": false, "deactivations": n}),
    }
}

/// `tenure plan`: exit code 0, or 3 (the guard's) when apply would be refused.
#[allow(clippy::too_many_arguments)] // one per command-line option
pub async fn plan_cmd(
    data_dir: &Path,
    database_url: Option<&str>,
    connection: Option<String>,
    json: bool,
    verbose: bool,
    as_of: Option<Timestamp>,
    only: Vec<String>,
) -> Result<u8, String> {
    let (store, key) = open_with_key(data_dir, database_url).await?;
    let now = as_of.unwrap_or_else(Timestamp::now);
    let output = if json { Output::Json } else { Output::Text };
    let p = async {
        let name = connection_name(&store, connection.as_deref()).await?;
        // Resolving in-flight actions is a run's business: while another run holds the
        // connection, its intents are its own, and the plan is made without touching them.
        match run_lock::try_lock(&store, &name, "tenure plan").await? {
            run_lock::Lock::Got(lock) => {
                let p = prepare(&store, &key, Some(&name), now, true, &only).await;
                lock.release().await;
                p
            }
            run_lock::Lock::Busy(h) => {
                eprintln!(
                    "note: a run is in progress on {name:?} ({} since {}): this plan does not count its actions in \
                     flight",
                    h.info,
                    run_lock::moment(h.since_ms)
                );
                prepare(&store, &key, Some(&name), now, false, &only).await
            }
        }
    }
    .await;
    store.close().await;
    let p = p?;
    if p.recovered > 0 {
        output.note(&format!("resolved {} action(s) left in flight by an earlier run", p.recovered));
    }
    let verdict = guard_verdict(&p);
    if json {
        let mut v = serde_json::to_value(&p.plan).map_err(|e| e.to_string())?;
        v["guard"] = verdict.clone();
        outln!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
    } else {
        print_plan(&p.plan, verbose);
        if let Some(why) = verdict["why"].as_str() {
            outln!("mass-deprovision guard: {why}; apply needs --confirm-deprovision {}", verdict["confirm_with"]);
        }
    }
    release(p);
    Ok(if verdict["refused"] == true { 3 } else { 0 })
}

/// What `tenure apply` (and each daemon run) is asked to do.
pub struct ApplyOptions<'a> {
    pub connection: Option<String>,
    /// Confirms a run the mass-deprovision guard stops: the exact number of deactivations.
    pub confirm: Option<usize>,
    pub as_of: Option<Timestamp>,
    pub output: Output,
    /// Only these workers (provision on demand); everyone when empty.
    pub workers: Vec<String>,
    /// Do not ask before many creates.
    pub yes: bool,
    /// A rehearsal (`as_of`) on a connection that is not the sandbox: its name, confirming.
    pub confirm_production: Option<String>,
    /// The daemon: wait for the run lock until told to stop.
    pub wait: Option<&'a mut tokio::sync::watch::Receiver<bool>>,
    /// Who started the run, as the audit names them (a platform user or token through the
    /// API; else TENURE_ACTOR or the login name).
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
}

/// A run's progress, read by whoever watches it (the API's live status).
#[derive(Default)]
pub struct Progress {
    pub done: std::sync::atomic::AtomicUsize,
    pub total: std::sync::atomic::AtomicUsize,
}

/// What an apply came to, for its door to tell.
pub struct Applied {
    /// 0, or 3 (guard), 4 (failures), 5 (busy), 6 (not confirmed).
    pub code: u8,
    pub connection: String,
    pub summary: Option<engine::apply::Summary>,
    pub newly_dead: Vec<String>,
    /// The guard's verdict when it refused.
    pub guard: Option<serde_json::Value>,
    /// Another run holds the connection: who, since when.
    pub busy: Option<String>,
    /// What the SCIM client had to do.
    pub scim: scim_client::StatsSnapshot,
}

impl Applied {
    fn only(code: u8, connection: &str) -> Applied {
        let scim = scim_client::StatsSnapshot::default();
        Applied {
            code,
            connection: connection.into(),
            summary: None,
            newly_dead: vec![],
            guard: None,
            busy: None,
            scim,
        }
    }
}

impl ApplyOptions<'_> {
    pub fn new(connection: Option<String>) -> Self {
        ApplyOptions {
            connection,
            confirm: None,
            as_of: None,
            output: Output::Text,
            workers: vec![],
            yes: false,
            confirm_production: None,
            wait: None,
            actor: None,
            proposer: None,
            confirm_only: false,
            run_id: None,
            progress: None,
        }
    }
}

/// Exit code of an apply not confirmed at its prompt.
pub const NOT_CONFIRMED: u8 = 6;

/// Applies under the connection's run lock; exit code 0 when every action succeeded, 3 when
/// the guard refused, 4 on failures, 5 when another run holds the connection. With `wait`
/// (the daemon), waits for the lock until told to stop.
pub async fn apply_cmd(store: &Store, key: &MasterKey, opts: ApplyOptions<'_>) -> Result<u8, String> {
    let output = opts.output;
    let a = run_apply(store, key, opts).await?;
    if let Some(busy) = &a.busy {
        output.note(busy);
        if output == Output::Json {
            outln!("{}", serde_json::json!({"connection": a.connection, "busy": busy}));
        }
    }
    if let Some(verdict) = &a.guard {
        if output == Output::Json {
            outln!("{}", serde_json::json!({"connection": a.connection, "guard": verdict, "applied": false}));
        }
    }
    if let Some(summary) = &a.summary {
        print_summary(summary, &a, output)?;
    }
    Ok(a.code)
}

/// The one apply use case: plan and apply under the connection's run lock. With `wait` (the
/// daemon), waits for the lock until told to stop.
pub async fn run_apply(store: &Store, key: &MasterKey, mut opts: ApplyOptions<'_>) -> Result<Applied, String> {
    let name = connection_name(store, opts.connection.as_deref()).await?;
    let who = if opts.wait.is_some() { "tenure run" } else { "tenure apply" };
    let who = opts.actor.clone().map(|a| format!("{who} by {a}")).unwrap_or(who.to_string());
    let lock = match opts.wait.take() {
        Some(stop) => match run_lock::lock_waiting(store, &name, &who, stop).await? {
            Some(l) => l,
            None => return Ok(Applied::only(0, &name)),
        },
        None => match run_lock::try_lock(store, &name, &who).await? {
            run_lock::Lock::Got(l) => l,
            run_lock::Lock::Busy(h) => {
                let mut a = Applied::only(run_lock::BUSY, &name);
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
) -> Result<Applied, String> {
    let t0 = std::time::Instant::now();
    let r = apply_locked(store, key, name, opts, &lock).await;
    lock.release().await;
    if let Ok(a) = &r {
        crate::metrics::record_run(name, a, t0.elapsed().as_secs_f64());
    }
    r
}

fn print_summary(summary: &engine::apply::Summary, a: &Applied, output: Output) -> Result<(), String> {
    match output {
        Output::Silent => {}
        Output::Json => {
            let mut v = serde_json::to_value(summary).map_err(|e| e.to_string())?;
            v["connection"] = serde_json::json!(a.connection);
            v["newly_dead"] = serde_json::json!(a.newly_dead);
            outln!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
        }
        Output::Text | Output::Quiet => {
            let kinds: Vec<String> = summary.by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
            outln!(
                "run {}: total {}, skipped {}, no change {}, processed {}, failed {}{}",
                summary.run_id,
                summary.total,
                summary.skipped,
                summary.no_change,
                summary.processed,
                summary.failed,
                if kinds.is_empty() { String::new() } else { format!(" ({})", kinds.join(", ")) }
            );
            // Each failure where it happened: worker, action, and the target's answer.
            for f in &summary.failed_actions {
                let who = f.user_name.as_deref().map(|u| format!(" ({u})")).unwrap_or_default();
                let team = f.team.as_deref().map(|t| format!(" [team {t}]")).unwrap_or_default();
                outln!("failed: worker {}{who} {}{team}: {}", f.worker, f.action, f.error);
            }
        }
    }
    Ok(())
}

async fn apply_locked(
    store: &Store,
    key: &MasterKey,
    name: &str,
    opts: &ApplyOptions<'_>,
    lock: &run_lock::RunLock,
) -> Result<Applied, String> {
    let (confirm, output) = (opts.confirm, opts.output);
    let now = opts.as_of.unwrap_or_else(Timestamp::now);
    if opts.as_of.is_some() && opts.confirm_production.as_deref() != Some(name) {
        // A rehearsal acts at another moment than now: only on tenure's sandbox, unless the
        // operator names the connection to say it is meant for a real target.
        let client = client_for(store, key, name).await?;
        if !is_sandbox(&client).await? {
            return Err(format!(
                "{name:?} ({}) is not tenure's sandbox: a rehearsal (--as-of, --rehearse-from) acts only on the \
                 sandbox; to act on this real target at another moment, add --confirm-production {name:?}",
                client.base_url()
            ));
        }
    }
    let mut p = prepare(store, key, Some(name), now, true, &opts.workers).await?;
    if p.recovered > 0 {
        output.note(&format!("resolved {} action(s) left in flight by an earlier run", p.recovered));
    }
    if opts.confirm_only && p.plan.guard(&p.rules.connections[p.index].guard).is_none() {
        release(p);
        return Err(format!(
            "refused: the mass-deprovision guard does not stop this run on {name:?}, so there is nothing to confirm; \
             a Reviewer confirms guarded runs only, and an Editor starts ordinary ones. Nothing was applied"
        ));
    }
    // Open (or keep) the reviews this plan needs; stale ones are superseded. Each records who
    // started this run and (the store finds it) who uploaded the HR data it acts on: neither
    // may approve it.
    let (reviews, new_reviews) = store
        .sync_reviews(&p.plan.connection, &p.held.requests, opts.proposer.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    // By worker, so a supervised initial sync of thousands is not a scan per held worker.
    let review_of: HashMap<&str, i64> = reviews.iter().map(|r| (r.worker_id.as_str(), r.id)).collect();
    for a in p.plan.actions.iter_mut().filter(|a| a.kind == Kind::Skip && a.reason.starts_with("waiting for approval"))
    {
        if let Some(id) = review_of.get(a.worker.as_str()).filter(|_| !a.reason.contains("review #")) {
            a.reason = format!("{} (review #{id})", a.reason);
        }
    }
    // Held workers (no decision releases them) are listed beside the reviews until HR settles them.
    let holds: Vec<(String, String)> = p
        .plan
        .actions
        .iter()
        .filter(|a| a.kind == Kind::Skip && a.reason.starts_with("held: "))
        .map(|a| (a.worker.clone(), a.reason.clone()))
        .collect();
    let mut newly_held = vec![];
    if opts.workers.is_empty() {
        // A run for chosen workers leaves the others' holds as the last full run saw them.
        let new = store.replace_holds(&p.plan.connection, &holds).await.map_err(|e| e.to_string())?;
        newly_held = holds.iter().filter(|h| new.contains(&h.0)).cloned().collect();
    }
    if output == Output::Text {
        print_plan(&p.plan, false);
    }
    if !holds.is_empty() {
        output.note(&format!("{} worker(s) held until HR data settles them: see `tenure reviews`", holds.len()));
    }
    if !p.held.waiting.is_empty() {
        output.note(&format!(
            "{} worker(s) wait for a reviewer: see `tenure reviews`, then `tenure approve` or `tenure reject`",
            p.held.waiting.len()
        ));
    }
    let conn = &p.rules.connections[p.index];
    let deactivations = p.plan.count(Kind::Deactivate) + p.plan.count(Kind::Delete);
    let mut guard_confirmed = None;
    if let Some(why) = p.plan.guard(&conn.guard) {
        if confirm != Some(deactivations) {
            output.note(&format!(
                "refused by the mass-deprovision guard: {why}. Nothing was applied. If this is right, run again with \
                 --confirm-deprovision {deactivations}"
            ));
            let mut a = Applied::only(3, name);
            a.guard = Some(guard_verdict(&p));
            release(p);
            return Ok(a);
        }
        output.note(&format!("mass-deprovision guard: {why}; confirmed with --confirm-deprovision {deactivations}"));
        guard_confirmed = Some(why);
    }
    let creates = p.plan.count(Kind::Create);
    let asks = matches!(output, Output::Text | Output::Quiet);
    if creates > conn.confirm_creates_over && !opts.yes && asks && std::io::stdin().is_terminal() {
        // Seats cost money: a person at a terminal says so before many accounts are made.
        eprint!(
            "{creates} new account(s) will be created on {name:?}, more than the {} that go without asking (each may be \
             a paid seat). Go on? [y/N] ",
            conn.confirm_creates_over
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            outln!("not confirmed: nothing was applied (use --yes to skip this question)");
            return Ok(Applied::only(NOT_CONFIRMED, name));
        }
    }
    let run_id = opts.run_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    store.start_run(&run_id, &conn.name).await.map_err(|e| e.to_string())?;
    if let Some(why) = &guard_confirmed {
        let by = crate::decisions::actor(opts.actor.as_deref());
        let leaving: Vec<&str> = p
            .plan
            .actions
            .iter()
            .filter(|a| matches!(a.kind, Kind::Deactivate | Kind::Delete))
            .map(|a| a.worker.as_str())
            .collect();
        crate::decisions::record(
            store,
            &[crate::decisions::Decision {
                action: "guard_confirm",
                connection: &conn.name,
                worker: "",
                run_id: &run_id,
                actor: &by,
                note: None,
                detail: serde_json::json!({"why": why, "confirmed": deactivations, "workers": leaving}),
            }],
        )
        .await?;
    }
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
    // Progress in workers, with rate and time left, on a terminal only.
    let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    if !std::io::stderr().is_terminal() || matches!(output, Output::Json | Output::Silent) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} workers, {per_sec}, {eta} left")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let watched = opts.progress.clone();
    let progress = |done: usize, total: usize| {
        if let Some(w) = &watched {
            w.total.store(total, std::sync::atomic::Ordering::Relaxed);
            w.done.store(done, std::sync::atomic::Ordering::Relaxed);
        }
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        if done == total {
            bar.finish_and_clear();
        }
    };
    let t0 = std::time::Instant::now();
    // Shared with the apply's worker tasks rather than copied action by action; back after.
    let plan = std::sync::Arc::new(std::mem::take(&mut p.plan));
    let lost = lock.flag();
    let pace = engine::apply::Pace { concurrency: conn.concurrency, progress: &progress, lost: &lost };
    let applied = engine::apply::apply(store, &p.client, &plan, teams, &run_id, pace).await;
    p.plan = std::sync::Arc::try_unwrap(plan).unwrap_or_else(|shared| (*shared).clone());
    let mut summary = applied?;
    // What this run resolved of an earlier one's actions in flight, said in its summary.
    summary.recovered = p.recovered;
    if lock.lost() {
        output.note(&format!(
            "warning: this run lost its lease on {name:?} while it ran; actions not yet started were left"
        ));
    }
    tracing::debug!(ms = t0.elapsed().as_millis() as u64, "applied");
    store.finish_run(&run_id, &serde_json::to_string(&summary).unwrap_or_default()).await.map_err(|e| e.to_string())?;
    tracing::debug!("run summary saved");
    // Failures count towards the dead-letter list; successes clear it.
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
    let newly_dead = store
        .record_attempts(&conn.name, &failed, &succeeded, conn.dead_letter_after as i64)
        .await
        .map_err(|e| e.to_string())?;
    if !newly_dead.is_empty() {
        output.note(&format!(
            "dead letters: worker(s) {} failed {} run(s) in a row and are set aside: see `tenure dead-letters`",
            newly_dead.join(", "),
            conn.dead_letter_after
        ));
    }
    tracing::debug!("dead letters counted");
    let applied: Vec<i64> =
        p.held.approved.iter().filter(|(w, _)| !summary.failures.contains_key(w)).map(|(_, id)| *id).collect();
    store.mark_reviews_applied(&applied).await.map_err(|e| e.to_string())?;
    // HR events whose moment has come are now reflected on the target, except for workers
    // that failed or were held back.
    let due = store
        .events(&EventQuery { state: Some("pending".into()), due_by: Some(now.as_second()), ..Default::default() })
        .await
        .map_err(|e| e.to_string())?;
    tracing::debug!(due = due.len(), "due events read");
    let mut except: Vec<String> = summary.failures.keys().chain(&p.held.waiting).chain(&p.held.dead).cloned().collect();
    except.sort();
    except.dedup();
    if opts.as_of.is_some() {
        // A rehearsal's moment is not now: the real events stay pending for the real runs
        // (and the daemon still wakes at their moments).
        tracing::debug!("rehearsal: HR events are left pending");
    } else if !opts.workers.is_empty() {
        // A run for chosen workers settles their events only; the others' wait for a full run.
        let done: Vec<String> = due
            .iter()
            .filter(|e| opts.workers.contains(&e.worker_id) && except.binary_search(&e.worker_id).is_err())
            .map(|e| e.id.clone())
            .collect();
        store.set_events_state(&done, "pending", "done").await.map_err(|e| e.to_string())?;
    } else if except.len() <= 500 {
        // Only the loads this run saw: events of a load made meanwhile stay pending.
        let mut loads: Vec<String> = due.iter().map(|e| e.load_id.clone()).collect();
        loads.sort();
        loads.dedup();
        store.set_due_events_done(now.as_second(), &loads, &except).await.map_err(|e| e.to_string())?;
    } else {
        let done: Vec<String> =
            due.iter().filter(|e| except.binary_search(&e.worker_id).is_err()).map(|e| e.id.clone()).collect();
        store.set_events_state(&done, "pending", "done").await.map_err(|e| e.to_string())?;
    }
    tracing::debug!("recorded attempts, reviews and events");
    if !p.rules.config.notify.is_empty() {
        // A held worker's one skip carries the reason the review was opened for.
        let reason_of: HashMap<&str, &str> = p
            .plan
            .actions
            .iter()
            .filter(|a| a.kind == Kind::Skip && !a.reason.starts_with("held: "))
            .map(|a| (a.worker.as_str(), a.reason.as_str()))
            .collect();
        let new_reviews: std::collections::HashSet<i64> = new_reviews.into_iter().collect();
        let opened = reviews
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
            newly_dead: &newly_dead,
            opened,
            newly_held,
            run_id: &run_id,
        };
        let notices = crate::notify::notices(&facts);
        for problem in crate::notify::deliver(store, key, &p.rules.config.notify, &notices).await {
            output.note(&format!("warning: {problem}"));
        }
    }
    let scim = p.client.stats();
    release(p);
    let code = if summary.failed > 0 { 4 } else { 0 };
    Ok(Applied {
        code,
        connection: name.to_string(),
        summary: Some(summary),
        newly_dead,
        guard: None,
        busy: None,
        scim,
    })
}

/// Frees what a run read and planned on another thread: for 100,000 accounts that is some
/// 300 ms of work the answer need not wait for (a command exits before it is done; the
/// daemon frees it while it sleeps).
fn release<T: Send + 'static>(big: T) {
    std::thread::spawn(move || drop(big));
}
