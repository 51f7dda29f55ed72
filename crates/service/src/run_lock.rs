//! One run at a time per connection: a lease in the store (holder, since, expiry on the
//! database's clock), renewed on a task of its own while the run goes on. A second `apply`
//! (cron meeting the daemon) is told who holds it since when and stops; the daemon waits its
//! turn. The same lease will fence several nodes: a holder is one run of one process
//! incarnation, so two runs of one process exclude each other as two processes do.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use store::{Acquired, Claimant, Holder, Lease, Store};

/// How long a lease lasts unrenewed: a holder killed with -9 blocks the connection this long.
const TTL_MS: i64 = 30_000;
/// Renewed this often: two renewals may fail (a busy database) before the lease runs out.
const RENEW_EVERY: Duration = Duration::from_millis(TTL_MS as u64 / 3);

/// Exit code of a run refused because another holds the connection.
pub const BUSY: u8 = 5;

/// This process's holder id: fresh at each start, never the host name (a restarted process
/// must not inherit the lease of the one that died).
fn incarnation() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| uuid::Uuid::new_v4().to_string())
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown host".into())
}

/// Whether a process of this host with this id runs tenure still (a reused pid running
/// something else counts as gone).
fn alive(pid: i64) -> bool {
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
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

pub enum Lock {
    Got(RunLock),
    Busy(Holder),
}

impl RunLock {
    /// True once a renewal found the lease taken over: stop acting on the connection.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// A cheap check the apply can call before each worker.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.lost.clone()
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
    let (info, host) = (describe(what), host());
    // A holder per run, not per process: two runs of one `tenure serve` (the API and the
    // scheduler, two API calls) are two holders, and the second finds the connection busy.
    let holder = format!("{}/{}", incarnation(), uuid::Uuid::new_v4());
    let me = Claimant { holder: &holder, info: &info, host: &host, pid: std::process::id() as i64 };
    let fail = |e: store::StoreError| Error::refused(format!("cannot take the run lock on {connection:?}: {e}"));
    let mut got = store.acquire_lease(connection, &me, TTL_MS).await.map_err(fail)?;
    if let Acquired::Busy(h) = &got {
        // A run on this host that was killed (kill -9, a crash) holds the lease until it
        // expires; its process is gone, so the next run need not wait for the clock.
        if h.host == host && !alive(h.pid) {
            tracing::info!("taking over the lease of {} on {connection:?}: its process is gone", h.info);
            got = store.take_over_lease(connection, h, &me, TTL_MS).await.map_err(fail)?;
        }
    }
    let lease = match got {
        Acquired::Busy(h) => return Ok(Lock::Busy(h)),
        Acquired::Held(l) => l,
    };
    let lease = Arc::new(tokio::sync::Mutex::new(lease));
    let lost = Arc::new(AtomicBool::new(false));
    let renewer = {
        let (store, lease, lost) = (store.clone(), lease.clone(), lost.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                let mut l = lease.lock().await;
                match store.renew_lease(&mut l, TTL_MS).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::error!("the lease on {:?} was lost: this run stops acting on it", l.connection);
                        lost.store(true, Ordering::SeqCst);
                        return;
                    }
                    // A failed renewal is tried again; the lease lasts three periods.
                    Err(e) => tracing::warn!("renewing the lease on {:?}: {e}", l.connection),
                }
            }
        })
    };
    Ok(Lock::Got(RunLock { store: store.clone(), lease, lost, renewer }))
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
