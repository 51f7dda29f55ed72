//! The scheduler of `tenure serve` and `tenure run`: every configured connection reconciled on
//! a schedule, at once after HR data arrives, and at the moment a future-dated event takes
//! effect; and the watcher of where HR data arrives (the inbox, the pull, other processes'
//! loads). The configuration in force is read at each turn: a change needs no restart.

use crate::error::Result;
use crate::intake::Intake;
use crate::run_report::Applied;
use crate::runs::{self, Watch};
use crate::{config, inbox, pull};
use futures_util::{FutureExt, StreamExt};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use store::{MasterKey, Store};
use tokio::sync::Notify;

/// Where the scheduler says what it does (the daemon prints it, stamped).
pub type Say = Arc<dyn Fn(&str) + Send + Sync>;

/// What the probes read: the store, and the scheduler's last sign of life.
#[derive(Clone)]
pub struct Health {
    pub store: Store,
    /// Unix seconds of the scheduler's last turn (its watch loop turns four times a second).
    pub heartbeat: Arc<AtomicI64>,
}

/// The scheduler counts as alive while it turned within this long (a slow pull may hold it).
const ALIVE: i64 = 120;

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

impl Health {
    pub fn new(store: Store) -> Health {
        Health { store, heartbeat: Arc::new(AtomicI64::new(now())) }
    }
    pub fn beat(&self) {
        self.heartbeat.store(now(), Ordering::Relaxed);
    }
    /// Whether the scheduler turned lately, with how long ago when not.
    pub fn scheduler(&self) -> Result<(), String> {
        let age = now() - self.heartbeat.load(Ordering::Relaxed);
        if age <= ALIVE {
            Ok(())
        } else {
            Err(format!("no turn for {age} s"))
        }
    }
}

/// What the scheduler works with.
#[derive(Clone)]
pub struct Scheduler {
    pub store: Store,
    pub key: Arc<MasterKey>,
    /// The data folder (the HR archive, the inbox's own files).
    pub data_dir: std::path::PathBuf,
    /// Between two turns when nothing wakes it; zero: no scheduled runs (people start them).
    pub interval: Duration,
    /// A rehearsal: how far the scheduler's clock is from now (it then moves in real time).
    pub rehearsal: Option<jiff::SignedDuration>,
    /// Connections on which a rehearsal may act though they are not the sandbox.
    pub confirm_production: Vec<String>,
    /// Woken by an HR push or load: reconcile now.
    pub wake: Arc<Notify>,
    /// Where its runs are live while they go (shared with the API of the same process).
    pub registry: Arc<crate::registry::Registry>,
    /// Unix seconds of the start of its last turn (0: none yet); the watcher reads it to tell
    /// a stopped scheduler.
    pub turned: Arc<AtomicI64>,
    /// Its runs going now, waiting for a connection's lease included: a scheduler busy with a
    /// long run is not a stopped one.
    pub working: Arc<AtomicUsize>,
}

/// Scheduled runs of different connections going at once on one node: a slow or large
/// connection does not hold up the others' turns, and a node's share of many connections is
/// worked through in a fraction of the time. `--runs-at-once` sets it (4 unless said).
static RUNS_AT_ONCE: AtomicUsize = AtomicUsize::new(4);

/// Sets how many scheduled runs go at once on this node (at least one).
pub fn configure_runs_at_once(n: usize) {
    RUNS_AT_ONCE.store(n.max(1), Ordering::Relaxed);
}

/// How soon a turn that found its connection held by another run is tried again (doubled
/// each time in a row, up to half a minute).
const RETRY_BUSY_MS: i64 = 1000;

/// Counts a run as going while it lives.
struct Working<'a>(&'a AtomicUsize);

impl<'a> Working<'a> {
    fn new(n: &'a AtomicUsize) -> Working<'a> {
        n.fetch_add(1, Ordering::Relaxed);
        Working(n)
    }
}

impl Drop for Working<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Turns until `stop` says so: each configured connection this node owns is applied when its
/// turn is due (once per interval), HR news is carried out at once for the workers it concerns
/// (a run for those workers only, on each connection they have or get an account on), and the
/// scheduler sleeps until the next turn, a wake-up or the next future event's moment. `ran`
/// hears what each run came to; one connection's failure never stops the others.
pub async fn run(
    s: &Scheduler,
    watch: &dyn Watch,
    ran: &(dyn Fn(&str, &Result<Applied>) + Sync),
    say: &(dyn Fn(&str) + Send + Sync),
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let mut said = String::new();
    // A turn longer than the interval is told once per spell: until a turn is on time again.
    let mut behind = false;
    // Connections found held by another run: how many times in a row (said the first time;
    // tried again later each time, up to half a minute).
    let busy = std::cell::RefCell::new(std::collections::HashMap::<String, u32>::new());
    // A node that starts alone runs every connection once (as one process always did); one
    // that joins others taking turns (a rolling restart) leaves the turns as they are, each at
    // its interval, rather than rerunning every connection once per node replaced.
    let node = crate::run_lock::incarnation();
    let alone = s
        .store
        .live_nodes()
        .await
        .map(|n| n.iter().all(|x| x.id == node || !x.scheduling || x.stopping))
        .unwrap_or(true);
    if alone && !s.interval.is_zero() {
        if let Err(e) = s.store.make_turns_due(i64::MAX).await {
            say(&format!("the schedule: {e}"));
        }
    }
    // News before the start is in those first turns; joining others, the news of the last
    // seconds is carried out again (the node replaced may not have).
    let news = std::cell::RefCell::new(News::since(&s.store, alone).await);
    let interval_ms = s.interval.as_millis() as i64;
    loop {
        if s.interval.is_zero() {
            // No schedule: the watcher still takes HR data; runs are started by people.
            let _ = stop.changed().await;
            break;
        }
        // A heartbeat for the monitoring: a stale one is a scheduler stopped or stuck.
        let turn = std::time::Instant::now();
        s.turned.store(now(), Ordering::Relaxed);
        crate::metrics::set(
            "tenure_scheduler_last_turn_timestamp_seconds",
            &[],
            jiff::Timestamp::now().as_second() as f64,
        );
        // The configuration in force at each turn: a change through the API or the CLI needs
        // no restart.
        let read = config::current_if_any(&s.store).await;
        let mut names: Vec<String> = match &read {
            Ok(r) => r.iter().flat_map(|r| &r.connections).map(|c| c.name.clone()).collect(),
            Err(e) => {
                let e = e.to_string();
                if e != said {
                    say(&format!("the configuration: {e}"));
                }
                said = e;
                vec![]
            }
        };
        // This node's share of the connections, taken before their turns are claimed: only an
        // owner claims a turn. (A configuration that cannot be read moves nothing.)
        if read.is_ok() {
            match crate::nodes::balance(&s.store, &names, false).await {
                Ok(m) => crate::nodes::said(&m).into_iter().for_each(|l| say(&l)),
                Err(e) => say(&format!("sharing the connections between the nodes: {e}")),
            }
        }
        // A restored store may have gone back in time: nothing runs on its own until a person
        // has looked at it (its first plan says so) and confirmed.
        match crate::backup::unconfirmed_restore(&s.store).await {
            Ok(Some(r)) => {
                let e = format!(
                    "scheduled runs wait: this store was restored at {} from the backup of {}; look at `tenure plan`, \
                     then `tenure restore --confirm`",
                    r["restored_at"].as_str().unwrap_or("?"),
                    r["taken_at"].as_str().unwrap_or("?")
                );
                if e != said {
                    say(&e);
                }
                said = e;
                names.clear();
            }
            Ok(None) => {}
            Err(e) => say(&format!("the store: {e}")),
        }
        // HR news first: the runs for the workers it concerns go before any turn.
        let mut queue: std::collections::VecDeque<Job> = news_jobs(s, &news, &names, node).await.into();
        // The turns due now (only the owner's claim runs one), those with a leaver's or a
        // mover's account first.
        let due: Option<std::collections::HashSet<String>> = s
            .store
            .owned_turns(node)
            .await
            .ok()
            .map(|t| t.into_iter().filter(|(_, until)| *until <= 0).map(|(c, _)| c).collect());
        let mut turns: Vec<String> =
            names.iter().filter(|n| due.as_ref().is_none_or(|d| d.contains(*n))).cloned().collect();
        if let Ok(urgent) = s.store.connections_with_due_events(s.now().as_second()).await {
            turns.sort_by_key(|n| !urgent.contains(n));
        }
        queue.extend(turns.into_iter().map(Job::Turn));
        // The turn's queue, pulled as runs end. HR news arriving meanwhile (a termination
        // pushed) puts its runs at the front, and is looked for while runs go even when the
        // queue is empty: a long run elsewhere does not hold it up.
        let turn_state = TurnState::new(queue);
        let news_meanwhile = std::cell::Cell::new(false);
        let pull = futures_util::stream::unfold(stop.clone(), |mut stop| {
            let (t, news_meanwhile, names, news) = (&turn_state, &news_meanwhile, &names, &news);
            async move {
                let mut woken = s.wake.notified().now_or_never().is_some();
                let mut ended = false;
                loop {
                    if woken {
                        let jobs = news_jobs(s, news, names, node).await;
                        // News too large for runs of their own made every turn due: another
                        // turn follows this one at once.
                        if news.borrow().made_due {
                            news_meanwhile.set(true);
                        }
                        t.front(jobs);
                    }
                    if woken || ended {
                        // Turns made due meanwhile (taken over from a node that died, held by
                        // another run before, news for a connection without an owner) join
                        // this turn rather than wait for its end.
                        if let Ok(turns) = s.store.owned_turns(node).await {
                            t.add_due(turns, names);
                        }
                    }
                    if *stop.borrow() {
                        return None;
                    }
                    if let Some(job) = t.next() {
                        return Some((job, stop));
                    }
                    if t.idle() {
                        return None;
                    }
                    (woken, ended) = tokio::select! {
                        _ = s.wake.notified() => (true, false),
                        _ = t.ended.notified() => (false, true),
                        _ = stop.changed() => return None,
                    };
                }
            }
        });
        // Up to RUNS_AT_ONCE connections at once; each its own run, lease and outcome.
        pull.for_each_concurrent(RUNS_AT_ONCE.load(Ordering::Relaxed), |job: Job| {
            let (stop, busy, t) = (stop.clone(), &busy, &turn_state);
            async move {
                let name = job.connection().to_string();
                let _going = t.going(&name);
                // A stopping node takes no more turns: the others take its connections over,
                // and the news it had not carried out makes their turns due.
                if *stop.borrow() {
                    return news_left(s, &job).await;
                }
                if let Job::Turn(_) = &job {
                    // One scheduled run per connection per interval, whatever the number of
                    // nodes: only the node that owns the connection and claims its due turn
                    // runs it.
                    match s.store.claim_turn(&name, interval_ms, node).await {
                        Ok(true) => {}
                        Ok(false) => return,
                        Err(e) => return say(&format!("the schedule of {name:?}: {e}")),
                    }
                }
                // A connection a person paused is passed by (a run started by a person still
                // goes); its turn is taken all the same, so that it is not due over and over.
                if let Ok(Some(c)) = s.store.connection(&name).await {
                    if c.paused.is_some() {
                        return;
                    }
                }
                let _working = Working::new(&s.working);
                // A run that holds the connection (a person's, or a leaving owner's last) is
                // not waited for in a slot: the turn is due again a little later (a whole run,
                // which also sees any news), while this slot goes on to the next connection.
                let lock = match crate::run_lock::try_lock(&s.store, &name, "tenure run").await {
                    Ok(crate::run_lock::Lock::Got(l)) => l,
                    Ok(crate::run_lock::Lock::Busy(h)) => {
                        let times = {
                            let mut b = busy.borrow_mut();
                            let n = b.entry(name.clone()).or_default();
                            *n += 1;
                            *n
                        };
                        if times == 1 {
                            watch.waiting(&name, &h);
                        }
                        let after = (RETRY_BUSY_MS << (times - 1).min(5)).min(30_000);
                        if let Err(e) = s.store.turn_again(&name, node, after).await {
                            say(&format!("the schedule of {name:?}: {e}"));
                        }
                        return;
                    }
                    Err(e) => return ran(&name, &Err(e)),
                };
                busy.borrow_mut().remove(&name);
                let (workers, door) = match job {
                    Job::Turn(_) => (vec![], "the scheduler"),
                    Job::News(_, w) => (w, "HR news"),
                };
                let news_run = !workers.is_empty();
                let opts = runs::ApplyOptions {
                    as_of: s.rehearsal.map(|_| s.now()),
                    watch,
                    confirm_production: s.confirm_production.contains(&name).then(|| name.clone()),
                    door,
                    workers,
                    registry: Some(&s.registry),
                    ..runs::ApplyOptions::new(Some(name.clone()))
                };
                let r = runs::apply_holding(&s.store, &s.key, &name, &opts, lock).await;
                if news_run && r.is_err() {
                    // A run for the news' workers that could not go (a worker gone from the
                    // snapshot meanwhile, the target unreachable): a whole run follows.
                    if let Err(e) = s.store.turn_again(&name, node, 0).await {
                        say(&format!("the schedule of {name:?}: {e}"));
                    }
                }
                ran(&name, &r);
            }
        })
        .await;
        // Stopping: the news jobs not begun make their connections' turns due, for whoever
        // takes them over.
        for job in turn_state.left() {
            news_left(s, &job).await;
        }
        if *stop.borrow() {
            break;
        }
        // News too large for runs of their own made every turn due: another turn now, not
        // after the interval.
        if news_meanwhile.get() {
            continue;
        }
        if turn.elapsed() > s.interval {
            crate::metrics::inc("tenure_scheduler_behind_total", &[]);
            let why = format!(
                "the scheduler is behind: a turn over {} connection(s) took {} s, longer than the interval of {} s",
                names.len(),
                turn.elapsed().as_secs(),
                s.interval.as_secs()
            );
            say(&why);
            if !behind {
                crate::alerts::scheduler(&s.store, &s.key, crate::alerts::SchedulerAlert::Behind, why).await;
            }
            behind = true;
        } else {
            behind = false;
        }
        // Sleep until the next turn of a connection this node owns (its interval counted from
        // its claim, so a long turn does not stretch the interval), a push, or the next future
        // event's moment.
        let now = s.now().as_second();
        let next_event = s.store.next_event_after(now).await?;
        let mut wait = match s.store.owned_turns(node).await {
            Ok(t) => t
                .into_iter()
                .filter(|(c, _)| names.contains(c))
                .map(|(_, until)| Duration::from_millis(until.max(0) as u64))
                .min()
                .unwrap_or(s.interval)
                .max(MIN_SLEEP)
                .min(s.interval),
            Err(_) => s.interval,
        };
        // The moment of an HR event to wake for: every connection's turn is due then.
        let mut event_at = None;
        if let Some(t) = next_event {
            let until = Duration::from_secs((t - now) as u64);
            if until < wait {
                (wait, event_at) = (until, Some(t));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {
                if let Some(t) = event_at {
                    let ms = (t - s.rehearsal.map_or(0, |r| r.as_secs())) * 1000;
                    if let Err(e) = s.store.make_turns_due(ms).await {
                        say(&format!("the schedule: {e}"));
                    }
                }
            }
            // HR data arrived (here or on another node): the next look takes its news.
            _ = s.wake.notified() => {}
            _ = stop.changed() => break,
        };
    }
    Ok(())
}

/// The least a scheduler sleeps between looks (news wakes it sooner): turns claimed a few
/// milliseconds apart are taken in one look rather than one look each, and a turn due but not
/// run (a claim refused) does not make it spin.
const MIN_SLEEP: Duration = Duration::from_secs(1);

/// What a scheduler's turn does with one connection.
enum Job {
    /// Its scheduled turn: a whole run, when this node owns the connection and claims the turn.
    Turn(String),
    /// HR news: a run for these workers only.
    News(String, Vec<String>),
}

impl Job {
    fn connection(&self) -> &str {
        match self {
            Job::Turn(c) | Job::News(c, _) => c,
        }
    }
}

/// A turn's queue and the jobs going: one job per connection at a time on this node (a news
/// job for a connection whose whole run goes waits for its end, rather than meeting its own
/// node's lease).
struct TurnState {
    queue: std::cell::RefCell<std::collections::VecDeque<Job>>,
    going: std::cell::RefCell<std::collections::HashSet<String>>,
    /// Jobs pulled while their connection's job was going: queued again at its end.
    waiting: std::cell::RefCell<Vec<Job>>,
    /// Connections whose turn this turn took already: not added again (a run longer than the
    /// interval would otherwise keep the turn going for ever).
    taken: std::cell::RefCell<std::collections::HashSet<String>>,
    /// A job ended.
    ended: Notify,
}

impl TurnState {
    fn new(queue: std::collections::VecDeque<Job>) -> TurnState {
        TurnState {
            queue: queue.into(),
            going: Default::default(),
            waiting: Default::default(),
            taken: Default::default(),
            ended: Notify::new(),
        }
    }

    /// These jobs next.
    fn front(&self, jobs: Vec<Job>) {
        let mut q = self.queue.borrow_mut();
        for j in jobs.into_iter().rev() {
            q.push_front(j);
        }
    }

    /// The next job whose connection has none going, counted as going from now (its run
    /// holds a `Going` until it ends).
    fn next(&self) -> Option<Job> {
        let mut q = self.queue.borrow_mut();
        let mut going = self.going.borrow_mut();
        while let Some(j) = q.pop_front() {
            if going.contains(j.connection()) {
                self.waiting.borrow_mut().push(j);
            } else {
                going.insert(j.connection().to_string());
                if let Job::Turn(c) = &j {
                    self.taken.borrow_mut().insert(c.clone());
                }
                return Some(j);
            }
        }
        None
    }

    /// The turns due now among `turns` (this node's, with the time until each is due) that are
    /// configured and not queued, going, waiting or taken in this turn already, at the end of
    /// the queue.
    fn add_due(&self, turns: Vec<(String, i64)>, names: &[String]) {
        let (going, taken) = (self.going.borrow(), self.taken.borrow());
        let waiting = self.waiting.borrow();
        let mut q = self.queue.borrow_mut();
        for (c, until) in turns {
            let known = going.contains(&c)
                || taken.contains(&c)
                || waiting.iter().chain(q.iter()).any(|j| matches!(j, Job::Turn(t) if *t == c));
            if until <= 0 && !known && names.contains(&c) {
                q.push_back(Job::Turn(c));
            }
        }
    }

    /// Nothing going (and so nothing waiting).
    fn idle(&self) -> bool {
        self.going.borrow().is_empty()
    }

    /// A job `next` gave, going until the guard is dropped.
    fn going<'a>(&'a self, connection: &str) -> Going<'a> {
        Going { t: self, connection: connection.to_string() }
    }

    /// The jobs not begun.
    fn left(&self) -> Vec<Job> {
        let mut all: Vec<Job> = self.queue.borrow_mut().drain(..).collect();
        all.append(&mut self.waiting.borrow_mut());
        all
    }
}

/// A job going: at its end, the jobs that waited for its connection are queued again.
struct Going<'a> {
    t: &'a TurnState,
    connection: String,
}

impl Drop for Going<'_> {
    fn drop(&mut self) {
        self.t.going.borrow_mut().remove(&self.connection);
        let mut waiting = self.t.waiting.borrow_mut();
        let (again, rest): (Vec<Job>, Vec<Job>) = waiting.drain(..).partition(|j| j.connection() == self.connection);
        *waiting = rest;
        drop(waiting);
        self.t.front(again);
        self.t.ended.notify_one();
    }
}

/// A news job this node will not carry out (it is stopping): its connection's turn is due, for
/// whoever takes it over.
async fn news_left(s: &Scheduler, job: &Job) {
    if let Job::News(c, _) = job {
        if let Err(e) = s.store.make_turn_due(c).await {
            tracing::warn!("the schedule of {c:?}: {e}");
        }
    }
}

/// News concerning more workers than this is carried out by whole runs (every turn made due):
/// runs for so many workers are whole runs in all but name, one per connection concerned.
const NEWS_WORKERS: usize = 100;

/// Loads recorded this long before the newest seen are looked at again (a load committed
/// late can carry an earlier stamp).
const NEWS_MARGIN_MS: i64 = runs::LATE_COMMIT_MS;

/// The HR news a scheduler has carried out: loads up to a moment, and those within the
/// margin before it by id.
struct News {
    seen_ms: i64,
    taken: std::collections::HashMap<String, i64>,
    /// The last look found news too large for runs of its own and made every turn due.
    made_due: bool,
}

impl News {
    /// Alone, every load recorded so far counts as seen (the first turns run every connection);
    /// joining other nodes, those of the last seconds are news still (the node replaced may not
    /// have carried them out).
    async fn since(store: &Store, alone: bool) -> News {
        let last = store.last_recorded_ms().await.ok().flatten().unwrap_or(0);
        if !alone {
            return News { seen_ms: last - NEWS_MARGIN_MS, taken: Default::default(), made_due: false };
        }
        let taken = store.loads_since(last - NEWS_MARGIN_MS).await.unwrap_or_default().into_iter().collect();
        News { seen_ms: last, taken, made_due: false }
    }
}

/// The runs HR news recorded since the last look asks of this node: for each connection it
/// owns, the news' workers with an account there or given one by the rules. News about many
/// workers (a full file's first load) makes every turn due instead; so does news that cannot
/// be read through (whole runs carry it out).
async fn news_jobs(s: &Scheduler, news: &std::cell::RefCell<News>, names: &[String], node: &str) -> Vec<Job> {
    news.borrow_mut().made_due = false;
    // Without the configuration (unreadable, or a restore to confirm) news is left for later.
    if names.is_empty() {
        return vec![];
    }
    let since = news.borrow().seen_ms - NEWS_MARGIN_MS;
    let loads = match s.store.loads_since(since).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("HR news: {e}");
            return vec![];
        }
    };
    let fresh: Vec<(String, i64)> = loads.into_iter().filter(|(id, _)| !news.borrow().taken.contains_key(id)).collect();
    if fresh.is_empty() {
        return vec![];
    }
    let jobs = match news_for(s, &fresh, names, node).await {
        Ok(Some(jobs)) => Ok(jobs),
        Ok(None) => Err(None),
        Err(e) => Err(Some(e)),
    };
    {
        let mut n = news.borrow_mut();
        for (id, ms) in &fresh {
            n.taken.insert(id.clone(), *ms);
            n.seen_ms = n.seen_ms.max(*ms);
        }
        let keep_from = n.seen_ms - NEWS_MARGIN_MS;
        n.taken.retain(|_, ms| *ms >= keep_from);
        n.made_due = jobs.is_err();
    }
    match jobs {
        Ok(jobs) => jobs,
        Err(e) => {
            if let Some(e) = e {
                tracing::warn!("HR news, carried out by whole runs: {e}");
            }
            // Due from a second after the news was recorded (on the database's clock, as the
            // claims are), so that a turn claimed while the load was committed runs again.
            let moment = fresh.iter().map(|(_, ms)| ms).max().copied().unwrap_or(0) + 1000;
            if let Err(e) = s.store.make_turns_due(moment).await {
                tracing::warn!("the schedule: {e}");
            }
            vec![]
        }
    }
}

/// The runs for the workers of these loads on the connections this node owns; None when they
/// concern too many workers.
async fn news_for(s: &Scheduler, loads: &[(String, i64)], names: &[String], node: &str) -> Result<Option<Vec<Job>>> {
    let ids: Vec<String> = loads.iter().map(|(id, _)| id.clone()).collect();
    let workers = s.store.workers_of_loads(&ids, s.now().as_second(), NEWS_WORKERS + 1).await?;
    if workers.len() > NEWS_WORKERS {
        return Ok(None);
    }
    if workers.is_empty() {
        return Ok(Some(vec![]));
    }
    let mut per: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = Default::default();
    for (c, w) in s.store.links_of_workers(&workers).await? {
        if names.contains(&c) {
            per.entry(c).or_default().insert(w);
        }
    }
    // Those the rules give an account where they have none yet (a hire, a mover).
    if let Some(rules) = config::current_if_any(&s.store).await? {
        let lifecycle = rules.config.hr.lifecycle().map_err(crate::error::Error::refused)?;
        let today = s.now().to_zoned(lifecycle.default_time_zone.clone()).date();
        let custom = rules.custom_fields().to_vec();
        for w in runs::decoded(&s.store, &workers).await? {
            let row = rules::worker_row(&w, &custom);
            for (i, c) in rules.connections.iter().enumerate() {
                if names.contains(&c.name) && rules.decide_with(i, &row, today, false).grant.is_some() {
                    per.entry(c.name.clone()).or_default().insert(w.id.as_str().to_string());
                }
            }
        }
    }
    if per.is_empty() {
        return Ok(Some(vec![]));
    }
    // This node carries out the news on the connections it owns; the owner of each other one
    // does too, and where there is none able to (gone, stopping, none yet) its turn is due, for
    // whoever takes it.
    let live: std::collections::HashSet<String> =
        s.store.live_nodes().await?.into_iter().filter(|n| n.scheduling && !n.stopping).map(|n| n.id).collect();
    let owners: std::collections::HashMap<String, Option<String>> =
        s.store.schedule_rows().await?.into_iter().map(|r| (r.connection, r.owner)).collect();
    let mut mine = std::collections::BTreeMap::new();
    for (c, w) in per {
        match owners.get(&c).cloned().flatten() {
            Some(o) if o == node => {
                mine.insert(c, w);
            }
            Some(o) if live.contains(&o) => {}
            _ => {
                s.store.make_turn_due(&c).await?;
            }
        }
    }
    let per = mine;
    Ok(Some(per.into_iter().map(|(c, w)| Job::News(c, w.into_iter().collect())).collect()))
}

/// The stack of the threads that drive and carry out scheduled runs: a main thread's, since
/// a run's futures (a plan of 100,000 workers) were driven by the main thread before.
pub const STACK: usize = 8 << 20;

/// The runtime the scheduled runs go on: its threads (workers and blocking) run at a lower
/// priority than the API's, so that interactive requests come first on a busy machine.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name("tenure-runs")
        .thread_stack_size(STACK)
        .enable_all()
        .on_thread_start(background_priority)
        .build()
}

/// Lowers this thread's CPU priority (Linux gives each thread its own nice value, and the
/// threads it starts inherit it); elsewhere the runs keep the process's.
pub fn background_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on this thread's own id changes only its scheduling weight.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, BACKGROUND_NICE);
    }
}

/// nice 10: about a tenth of an interactive thread's share of a busy core.
#[cfg(target_os = "linux")]
const BACKGROUND_NICE: libc::c_int = 10;

impl Scheduler {
    /// The scheduler's now: the real one, or the rehearsal's.
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now() + self.rehearsal.unwrap_or_default()
    }
}

/// How often the watcher looks for connections a dead holder left mid-run: with the lease's
/// length, how soon another node takes them up.
const ORPHANS_EVERY: Duration = Duration::from_secs(1);

/// How often the watcher looks for the alerts no run gives (a stopped scheduler, late HR data).
const ALERTS_EVERY: Duration = Duration::from_secs(5);

/// How often the watcher looks at the inbox, the pull's schedule and the loads of other
/// processes: a file dropped is taken within two looks (it must be seen whole first).
const LOOK: Duration = Duration::from_millis(250);

/// Watches where HR data arrives: the inbox folder, the pull's schedule, and loads recorded
/// by any other process (`tenure hr load`, another node's push). Any of them wakes the
/// reconcile loop at once. The `[hr]` settings are read again whenever a new configuration is
/// saved: a changed inbox, pull or header definition needs no restart.
pub fn watch_sources(
    s: &Scheduler,
    config: &rules::Config,
    mut stop: tokio::sync::watch::Receiver<bool>,
    health: Health,
    say: Say,
) -> Result<tokio::task::JoinHandle<()>> {
    let mut intake = Intake::for_config(config)?;
    let mut hr = config.hr.clone();
    say_sources(&hr, &*say);
    let Scheduler { store, key, data_dir, wake, registry, turned, working, interval, .. } = s.clone();
    Ok(tokio::spawn(async move {
        // Other nodes' hints (PostgreSQL's LISTEN/NOTIFY) end a look's wait at once.
        let hint = Arc::new(Notify::new());
        let listener = listen(&store, hint.clone()).await;
        let mut hinted = false;
        // The alerts no run gives, looked at now and then (a stopped scheduler, HR data late).
        let mut looked = std::time::Instant::now();
        // Connections a dead holder left mid-run, looked for every second.
        let mut orphans_looked = std::time::Instant::now();
        let mut orphans_said: Vec<String> = vec![];
        let mut stopped_told = false;
        let mut inbox = inbox::Inbox::default();
        let mut mark = store.loads_mark().await.ok();
        let mut version = store.current_config().await.ok().flatten().map(|v| v.id);
        // The configuration's connections, shared out between the nodes every second.
        // None until it could be read: nothing is shared out on a configuration not known.
        let mut configured = connection_names(&store).await;
        // The same failure is said once, not four times a second.
        let mut last_error: Option<String> = None;
        let mut once = |r: Result<(), String>| match r {
            Err(e) if last_error.as_ref() != Some(&e) => {
                say(&e);
                last_error = Some(e);
            }
            Err(_) => {}
            Ok(()) => last_error = None,
        };
        loop {
            health.beat();
            if let Ok(Some(v)) = store.current_config().await {
                if version.as_deref() != Some(v.id.as_str()) {
                    version = Some(v.id);
                    if let Some(names) = connection_names(&store).await {
                        configured = Some(names);
                    }
                    let fresh = config::current_if_any(&store).await.and_then(|r| {
                        let c = r.map(|r| r.config).unwrap_or_default();
                        Intake::for_config(&c).map(|i| (c.hr, i))
                    });
                    match fresh {
                        Ok((h, i)) => {
                            if h != hr {
                                say_sources(&h, &*say);
                            }
                            (hr, intake) = (h, i);
                        }
                        Err(e) => once(Err(format!("the new configuration's [hr]: {e}; the last one stays in force"))),
                    }
                }
            }
            if let Some(settings) = &hr.inbox {
                match inbox.sweep(&store, &data_dir, settings, &intake).await {
                    Ok(taken) => {
                        for t in &taken {
                            t.line.lines().for_each(|l| say(l));
                        }
                        once(Ok(()));
                    }
                    Err(e) => once(Err(e.to_string())),
                }
            }
            if let Some(p) = &hr.pull {
                if pull::due(&store, p, jiff::Timestamp::now()).await {
                    match pull::pull_once(&store, &key, &data_dir, &hr, &intake).await {
                        Ok(said) => {
                            say(&format!("pull: {}", said.summary));
                            for w in &said.warnings {
                                say(&format!("pull: warning: {w}"));
                            }
                        }
                        Err(e) => say(&format!("pull: {e}")),
                    }
                }
            }
            // Every load, whoever recorded it, is a reason to reconcile now, and may be news
            // (quarantined rows, a file refused whole).
            let seen = store.loads_mark().await.ok();
            if seen.is_some() && seen != mark {
                mark = seen;
                wake.notify_one();
                let (store, key) = (store.clone(), key.clone());
                tokio::spawn(async move {
                    if let Err(e) = crate::alerts::hr_news(&store, &key).await {
                        tracing::warn!("the HR data's alerts: {e}");
                    }
                });
            }
            // Runs asked for on other nodes, on connections this one owns.
            if !interval.is_zero() {
                if let Err(e) = crate::runs::start_handed(&store, &key, &registry, &*say).await {
                    tracing::warn!("runs handed over by other nodes: {e}");
                }
            }
            if (hinted || orphans_looked.elapsed() >= ORPHANS_EVERY) && !interval.is_zero() {
                orphans_looked = std::time::Instant::now();
                hinted = false;
                // A node that joined, stopped or died: the connections move to their fair shares.
                let stopping = *stop.borrow();
                if configured.is_none() {
                    configured = connection_names(&store).await;
                }
                let moved = match configured.as_deref() {
                    Some(names) => Some(crate::nodes::balance(&store, names, stopping).await),
                    None => None,
                };
                match moved {
                    Some(Ok(m)) => {
                        crate::nodes::said(&m).into_iter().for_each(|l| say(&l));
                        // A connection taken over may have a turn due already (a termination's
                        // moment passed while its owner was dying): the scheduler looks now.
                        if !m.take.is_empty() {
                            wake.notify_one();
                        }
                    }
                    Some(Err(e)) => tracing::warn!("sharing the connections between the nodes: {e}"),
                    None => {}
                }
                match store.orphaned_connections().await {
                    Ok(orphans) if !orphans.is_empty() => {
                        // Woken only when a turn was made due: one already due (a paused or
                        // removed connection nobody takes up) wakes nobody every second.
                        let mut made_due = false;
                        for c in &orphans {
                            match store.make_turn_due(c).await {
                                Ok(changed) => made_due |= changed,
                                Err(e) => tracing::warn!("the schedule of {c:?}: {e}"),
                            }
                        }
                        if orphans != orphans_said {
                            say(&format!(
                                "{} left mid-run by a holder whose lease ran out: its turn is due now",
                                orphans.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", ")
                            ));
                        }
                        orphans_said = orphans;
                        if made_due {
                            wake.notify_one();
                        }
                    }
                    Ok(_) => orphans_said.clear(),
                    Err(e) => tracing::warn!("looking for connections left mid-run: {e}"),
                }
            }
            if looked.elapsed() >= ALERTS_EVERY {
                looked = std::time::Instant::now();
                if let Err(e) = crate::alerts::hr_quiet(&store, &key, jiff::Timestamp::now()).await {
                    tracing::warn!("the HR data's alerts: {e}");
                }
                let last = turned.load(Ordering::Relaxed);
                let stopped =
                    last > 0 && crate::alerts::stopped(last, now(), interval, working.load(Ordering::Relaxed) > 0);
                if stopped && !stopped_told {
                    let at = jiff::Timestamp::from_second(last).map(|t| t.to_string()).unwrap_or_default();
                    let why = format!(
                        "the scheduler has not begun a turn since {at} ({} s, with an interval of {} s)",
                        now() - last,
                        interval.as_secs()
                    );
                    say(&why);
                    crate::alerts::scheduler(&store, &key, crate::alerts::SchedulerAlert::Stopped, why).await;
                }
                stopped_told = stopped;
            }
            tokio::select! {
                _ = tokio::time::sleep(LOOK) => {}
                _ = hint.notified() => hinted = true,
                _ = stop.changed() => break,
            }
        }
        if let Some(l) = listener {
            l.abort();
        }
    }))
}

/// Listens for the other nodes' hints on a task of its own, each one a `hint`; None on SQLite
/// (or when listening cannot start: the watcher's own looks go on, a second or so slower).
async fn listen(store: &Store, hint: Arc<Notify>) -> Option<tokio::task::JoinHandle<()>> {
    let mut hints = match store.hints().await {
        Ok(h) => h?,
        Err(e) => {
            tracing::warn!("the other nodes' hints are not heard (each node looks on its own): {e}");
            return None;
        }
    };
    Some(tokio::spawn(async move {
        loop {
            match hints.next().await {
                Ok(_) => hint.notify_one(),
                // Lost: the next call connects again; meanwhile the looks go on.
                Err(e) => {
                    tracing::debug!("the other nodes' hints: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }))
}

/// The names of the connections in the configuration in force (None when it cannot be read:
/// the scheduler says why).
async fn connection_names(store: &Store) -> Option<Vec<String>> {
    let rules = config::current_if_any(store).await.ok()?;
    Some(rules.iter().flat_map(|r| &r.connections).map(|c| c.name.clone()).collect())
}

/// Says where HR data is watched for.
fn say_sources(hr: &rules::HrSettings, say: &(dyn Fn(&str) + Send + Sync)) {
    if let Some(i) = &hr.inbox {
        say(&format!("watching the HR inbox {} for {}", i.path, i.pattern));
    }
    if let Some(p) = &hr.pull {
        say(&format!("pulling the HR report every {} min", p.interval_minutes));
    }
}
