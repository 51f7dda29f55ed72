//! One run at a time per connection: a lease in the store (holder, since, expiry on the
//! database's clock), renewed on a task of its own while the run goes on. A second `apply`
//! (cron meeting the daemon) is told who holds it since when and stops; the daemon waits its
//! turn. The same lease will fence several nodes: a holder is one run of one process
//! incarnation, so two runs of one process exclude each other as two processes do.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};
use store::{Acquired, Claimant, Fence, Holder, Lease, Store};

/// How leases are held, the same for every run of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseSettings {
    /// How long a lease lasts unrenewed: a holder killed with -9 (on another host) keeps the
    /// connection this long.
    pub ttl: Duration,
    /// How often it is renewed: several renewals may fail (a busy database) before it runs out.
    pub renew_every: Duration,
    /// How long one request to a target may take: none starts unless the lease has that long
    /// left.
    pub request_timeout: Duration,
}

impl Default for LeaseSettings {
    fn default() -> Self {
        LeaseSettings {
            ttl: Duration::from_secs(60),
            renew_every: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

static SETTINGS: RwLock<Option<LeaseSettings>> = RwLock::new(None);

/// Sets how this process holds leases (its command line's --lease and --request-timeout).
pub fn configure(s: LeaseSettings) {
    *SETTINGS.write().unwrap_or_else(|p| p.into_inner()) = Some(s);
}

/// How this process holds leases.
pub fn settings() -> LeaseSettings {
    SETTINGS.read().unwrap_or_else(|p| p.into_inner()).unwrap_or_default()
}

/// Exit code of a run refused because another holds the connection.
pub const BUSY: u8 = 5;

/// This process's holder id: fresh at each start, never the host name (a restarted process
/// must not inherit the lease of the one that died). The node's id too.
pub fn incarnation() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| uuid::Uuid::new_v4().to_string())
}

pub fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown host".into())
}

/// Whether a process of this host with this id runs tenure still (a reused pid running
/// something else counts as gone).
pub(crate) fn alive(pid: i64) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmd) => cmd.split(|b| *b == 0).next().is_some_and(|exe| exe.ends_with(b"tenure")),
        // No /proc (not Linux): assume it runs, and let the lease expire.
        Err(_) => !std::path::Path::new("/proc/self").exists(),
    }
}

/// What a holder says of itself, for whoever finds the connection busy.
fn describe(what: &str) -> String {
    let user = crate::local::os_user();
    format!("{what} (pid {}, host {}, user {user})", std::process::id(), host())
}

pub fn moment(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map(|t| t.to_string()).unwrap_or_else(|_| ms.to_string())
}

/// Says who works a connection, since when and until when at the latest.
pub fn busy_message(connection: &str, h: &Holder) -> String {
    format!(
        "connection {connection:?} is being worked by another run: {} since {}; its lease runs until {} unless \
         renewed. Nothing was done",
        h.info,
        moment(h.since_ms),
        moment(h.expires_ms)
    )
}

/// A held run lock. Dropping it without `release` leaves the lease to expire.
pub struct RunLock {
    store: Store,
    lease: Arc<tokio::sync::Mutex<Lease>>,
    fence: Fence,
    clock: Arc<LeaseClock>,
    renewer: tokio::task::JoinHandle<()>,
}

/// What the holder knows of its lease without asking the database: lost (a renewal matched
/// no row), and when it was last renewed on this process's monotonic clock, which goes on
/// while the process is stopped (SIGSTOP, a paused VM): a holder woken after its lease ran
/// out sees it at once, before any renewal is tried.
struct LeaseClock {
    lost: Arc<AtomicBool>,
    /// The moment the last renewal that succeeded was sent (the lease runs at least until
    /// then plus its length).
    renewed: Mutex<Instant>,
    settings: LeaseSettings,
}

impl LeaseClock {
    /// Why no request may start now, if so.
    fn why_not(&self, connection: &str) -> Option<String> {
        if self.lost.load(Ordering::SeqCst) {
            return Some(format!("not sent: this run lost its lease on {connection:?} to another holder"));
        }
        let since = self.renewed.lock().unwrap_or_else(|p| p.into_inner()).elapsed();
        if since + self.settings.request_timeout >= self.settings.ttl {
            // Past this point another holder may take the connection before the answer comes.
            self.lost.store(true, Ordering::SeqCst);
            return Some(format!(
                "not sent: this run's lease on {connection:?} has less than the request timeout ({} s) left (renewed \
                 {} s ago): it stops acting on the connection",
                self.settings.request_timeout.as_secs(),
                since.as_secs()
            ));
        }
        None
    }
}

pub enum Lock {
    Got(RunLock),
    Busy(Holder),
}

impl RunLock {
    /// True once the run may no longer act on the connection: a renewal found the lease taken
    /// over, or it has less than the request timeout left.
    pub fn lost(&self) -> bool {
        self.clock.why_not(&self.fence.connection).is_some()
    }

    /// The flag the apply checks before each worker (set by `lost`, the renewer and the gate).
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.clock.lost.clone()
    }

    /// The lease, for the run's writes to be fenced by.
    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    /// Asked before every request of the run: None to go, Some(why) to send nothing.
    pub fn gate(&self) -> Box<dyn Fn() -> Option<String> + Send + Sync> {
        let (clock, connection) = (self.clock.clone(), self.fence.connection.clone());
        Box::new(move || clock.why_not(&connection))
    }

    /// What tags and gates the run's requests to the target.
    pub fn tag(&self) -> scim_client::RunTag {
        scim_client::RunTag { node: incarnation().to_string(), epoch: self.fence.epoch, gate: self.gate() }
    }

    pub async fn release(self) {
        self.renewer.abort();
        let lease = self.lease.lock().await.clone();
        if let Err(e) = self.store.release_lease(&lease).await {
            // It expires on its own; the next run waits at most the lease's time.
            tracing::warn!("could not release the lease on {:?}: {e}", lease.connection);
        }
    }
}

/// Takes the connection's lease if free (or expired), else says who holds it.
pub async fn try_lock(store: &Store, connection: &str, what: &str) -> Result<Lock> {
    let settings = settings();
    let ttl_ms = settings.ttl.as_millis() as i64;
    let (info, host) = (describe(what), host());
    // A holder per run, not per process: two runs of one `tenure serve` (the API and the
    // scheduler, two API calls) are two holders, and the second finds the connection busy.
    let holder = format!("{}/{}", incarnation(), uuid::Uuid::new_v4());
    let me = Claimant { holder: &holder, info: &info, host: &host, pid: std::process::id() as i64 };
    let fail = |e: store::StoreError| Error::refused(format!("cannot take the run lock on {connection:?}: {e}"));
    let asked = Instant::now();
    let mut got = store.acquire_lease(connection, &me, ttl_ms).await.map_err(fail)?;
    if let Acquired::Busy(h) = &got {
        // A run on this host that was killed (kill -9, a crash) holds the lease until it
        // expires; its process is gone, so the next run need not wait for the clock.
        if h.host == host && !alive(h.pid) {
            tracing::info!("taking over the lease of {} on {connection:?}: its process is gone", h.info);
            got = store.take_over_lease(connection, h, &me, ttl_ms).await.map_err(fail)?;
        }
    }
    let lease = match got {
        Acquired::Busy(h) => return Ok(Lock::Busy(h)),
        Acquired::Held(l) => l,
    };
    let fence = Fence { connection: lease.connection.clone(), holder: lease.holder.clone(), epoch: lease.epoch };
    let lease = Arc::new(tokio::sync::Mutex::new(lease));
    let clock = Arc::new(LeaseClock { lost: Arc::default(), renewed: Mutex::new(asked), settings });
    // Renewed through a connection of its own: the run's writes may hold the others.
    let renewals = store.for_renewals().await.map_err(fail)?;
    let renewer = {
        let (lease, clock) = (lease.clone(), clock.clone());
        let connection = connection.to_string();
        tokio::spawn(async move {
            // Every second the time left is looked at (setting the flag the apply checks
            // before each worker); every renew_every the lease is renewed.
            let tick = settings.renew_every.min(Duration::from_secs(1));
            let mut due = Instant::now() + settings.renew_every;
            loop {
                tokio::time::sleep(tick).await;
                if clock.why_not(&connection).is_some() {
                    return;
                }
                if Instant::now() < due {
                    continue;
                }
                due = Instant::now() + settings.renew_every;
                let mut l = lease.lock().await;
                let sent = Instant::now();
                match renewals.renew_lease(&mut l, ttl_ms).await {
                    Ok(true) => *clock.renewed.lock().unwrap_or_else(|p| p.into_inner()) = sent,
                    Ok(false) => {
                        tracing::error!("the lease on {:?} was lost: this run stops acting on it", l.connection);
                        clock.lost.store(true, Ordering::SeqCst);
                        return;
                    }
                    // A failed renewal is tried again while the lease lasts; the gate stops the
                    // run's requests before it runs out.
                    Err(e) => tracing::warn!("renewing the lease on {:?}: {e}", l.connection),
                }
            }
        })
    };
    Ok(Lock::Got(RunLock { store: store.clone(), lease, fence, clock, renewer }))
}

/// Waits for the connection's lease (the daemon's turn), calling `waiting` once with whom it
/// waits for;
/// None when `stop` says to stop first.
pub async fn lock_waiting(
    store: &Store,
    connection: &str,
    what: &str,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    waiting: impl FnOnce(&Holder),
) -> Result<Option<RunLock>> {
    let mut waiting = Some(waiting);
    loop {
        match try_lock(store, connection, what).await? {
            Lock::Got(l) => return Ok(Some(l)),
            Lock::Busy(h) => {
                if let Some(say) = waiting.take() {
                    say(&h);
                }
            }
        }
        if *stop.borrow() {
            return Ok(None);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.changed() => return Ok(None),
        }
    }
}
