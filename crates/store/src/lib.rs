//! tenure's persistence: SQLite in a file by default, PostgreSQL for a shared setup, through
//! one code path (sqlx's Any driver and portable SQL); migrations as files; secrets sealed.
//! It stores and fetches; decisions belong to the domain crates.

pub mod engine;
pub mod hr;
pub mod lease;
pub mod review;
pub mod secrets;
pub mod users;

pub use engine::{
    AfterRun, AuditEntry, AuditFilter, AuditRecord, ConnectionFigures, EventsDone, GuardKind, GuardTrip, JournalEntry,
    Link, Outcomes, RunRecord, TenureTeam,
};
pub use hr::{EventQuery, EventRecord, EventState, HeldSettled, LoadRecord, LoadWrite, SnapshotRow};
pub use lease::{Acquired, Claimant, Holder, Lease, LeaseRecord, NodeRecord, RunRequest, ScheduleRow};

pub use review::{DeadLetter, LetterState, Review, ReviewRequest, ReviewState};
pub use secrets::{MasterKey, Sealed, Secret};
pub use users::{SessionRecord, TokenAndMaker, TokenRecord, UserRecord};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::fmt;
use std::path::Path;

#[derive(Debug)]
pub enum StoreError {
    Database(sqlx::Error),
    Migration(sqlx::migrate::MigrateError),
    /// A connection with this name exists already.
    NameTaken(String),
    NotFound(String),
    /// Something to be written once was written before (a pushed event id).
    Duplicate(String),
    /// A request that cannot be carried out as asked (said why).
    Invalid(String),
    /// The store refused a write for want of room (SQLite's "database or disk is full",
    /// PostgreSQL's insufficient resources): nothing of it was kept.
    Full(String),
    /// A write of a run whose lease is no longer its own (another holder took the connection
    /// at a newer epoch): refused, nothing of it was kept.
    Fenced {
        connection: String,
        epoch: i64,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Database(e) => write!(f, "database error: {e}"),
            StoreError::Migration(e) => write!(f, "database migration failed: {e}"),
            StoreError::NameTaken(n) => write!(f, "a connection named {n:?} exists already"),
            StoreError::NotFound(n) => write!(f, "no connection named {n:?}"),
            StoreError::Duplicate(what) | StoreError::Invalid(what) => write!(f, "{what}"),
            StoreError::Full(e) => write!(f, "the store refused writes: {e} (is the disk full?)"),
            StoreError::Fenced { connection, epoch } => write!(
                f,
                "this run's lease on {connection:?} (epoch {epoch}) was taken over by another holder: its write was \
                 refused, and it stops"
            ),
        }
    }
}

impl std::error::Error for StoreError {}

/// A sealed secret in the store, as [`Store::reseal`] hands it over: where it is, so that the
/// caller can give the context it was sealed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sealable {
    /// A connection's access token, sealed for the connection's id.
    Token { connection_id: String },
    /// A setting holding a sealed value, with the destination it is bound to ("" for none).
    Setting { name: String, destination: String },
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        // SQLITE_FULL (13, SQLite's codes are numbers); PostgreSQL's disk_full (53100) and
        // out_of_memory (53200), SQLSTATEs of five characters.
        let full = e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|c| matches!(c.as_ref(), "13" | "53100" | "53200"));
        if full {
            return StoreError::Full(e.as_database_error().map(|d| d.message().to_string()).unwrap_or_default());
        }
        StoreError::Database(e)
    }
}

/// A pooled connection inside a write transaction. Dropped before its commit was answered (an
/// error, or the caller's future cancelled mid-way, a client gone), it is closed rather than
/// given back to the pool still inside the transaction: closing it rolls the transaction back.
struct Writing(Option<sqlx::pool::PoolConnection<sqlx::Any>>);

impl Drop for Writing {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            c.close_on_drop();
        }
    }
}

/// Set while this process's last write was refused for want of room, cleared by the next
/// write kept: runs start no call while it is set, and readiness fails.
static REFUSING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A stored connection. The token stays sealed here; `MasterKey::open` with the connection's
/// id as context gives it back.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionRecord {
    pub id: String,
    pub name: String,
    pub base_url: String,
    pub dialect: String,
    pub token: Sealed,
    pub token_hint: String,
    pub insecure_http: bool,
    pub allow_private: bool,
    pub rate_limit_per_second: Option<f64>,
    pub created_at: String,
    pub updated_at: String,
    /// Paused by a person (when, by whom): scheduled runs pass it by.
    pub paused: Option<(String, String)>,
}

/// What a new connection needs; the token is sealed on the way in.
#[derive(Debug, Clone)]
pub struct NewConnection {
    pub name: String,
    pub base_url: String,
    pub dialect: String,
    pub insecure_http: bool,
    pub allow_private: bool,
    pub rate_limit_per_second: Option<f64>,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Rows per round trip of the bulk reads (`json_rows`).
    read_chunk: usize,
    /// Where the audit chain's head is written after each commit that adds to it (a SQLite
    /// store in a data folder: `audit.head` beside `tenure.db`), so that a copy of the database
    /// file alone, put back, is seen to be behind.
    head_file: Option<std::sync::Arc<std::path::PathBuf>>,
    /// The lease a run works under: each write transaction of this handle first checks that
    /// the lease is still its holder's at its epoch, so a holder that lost it writes nothing.
    fence: Option<std::sync::Arc<Fence>>,
    /// A pool of its own for renewing leases (made at the first renewal, shared by clones):
    /// a long run or a busy pool must not starve a renewal.
    renewals: std::sync::Arc<tokio::sync::OnceCell<sqlx::AnyPool>>,
}

/// The lease a fenced store handle writes under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub connection: String,
    pub holder: String,
    pub epoch: i64,
}

/// The file beside `tenure.db` that keeps the audit chain's last known head.
pub const HEAD_FILE: &str = "audit.head";

/// `SEQ HASH` from the head file, if it is there and reads.
fn read_head_file(path: &Path) -> Option<(i64, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let (seq, hash) = text.trim().split_once(' ')?;
    Some((seq.parse().ok()?, hash.to_string()))
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Now to the nanosecond with every digit written: versions are ordered by this text, and
/// RFC 3339 with trailing zeros cut (`05.1Z` against `05.15Z`) does not sort as time does.
fn stamp() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    )
}

fn now() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn record(r: &AnyRow) -> Result<ConnectionRecord, sqlx::Error> {
    Ok(ConnectionRecord {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        base_url: r.try_get("base_url")?,
        dialect: r.try_get("dialect")?,
        token: Sealed { key_id: r.try_get("token_key_id")?, blob: r.try_get("token_sealed")? },
        token_hint: r.try_get("token_hint")?,
        insecure_http: r.try_get::<i64, _>("insecure_http")? != 0,
        allow_private: r.try_get::<i64, _>("allow_private")? != 0,
        rate_limit_per_second: r.try_get("rate_limit_per_second")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        paused: match (r.try_get::<Option<String>, _>("paused_at")?, r.try_get::<Option<String>, _>("paused_by")?) {
            (Some(at), by) => Some((at, by.unwrap_or_default())),
            _ => None,
        },
    })
}

/// The folder holding a SQLite store must take new files (SQLite makes its `-wal` and `-shm`
/// beside the database). Asked of the file system itself, because SQLite alone may not say:
/// on a read-only mount with a `-wal` and `-shm` left by a process that did not close the store,
/// it opens the file read-only and even grants `BEGIN IMMEDIATE`.
fn sqlite_folder_writable(url: &str) -> Result<(), StoreError> {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    let folder = match std::path::Path::new(path).parent() {
        Some(f) if f.as_os_str().is_empty() => std::path::Path::new("."),
        Some(f) => f,
        None => return Ok(()),
    };
    if !folder.is_dir() {
        // SQLite says it cannot open the file; nothing to add here.
        return Ok(());
    }
    let probe = folder.join(format!(".tenure-write-check-{}", std::process::id()));
    let written = std::fs::OpenOptions::new().write(true).create_new(true).open(&probe);
    match written {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem => Err(StoreError::Invalid(format!(
            "it is read-only ({e}: the file system holding {} is mounted read-only): tenure needs to write its store",
            folder.display()
        ))),
        // A probe left by a process of the same id that died before removing it.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(StoreError::Invalid(format!(
            "it cannot be written: no new file can be made in {} ({e}), and SQLite needs one beside the store",
            folder.display()
        ))),
    }
}

const COLUMNS: &str = "id, name, base_url, dialect, token_sealed, token_key_id, token_hint, insecure_http, \
     allow_private, created_at, updated_at, rate_limit_per_second";
/// What a connection is read with: its columns and its pause.
const READ: &str = "id, name, base_url, dialect, token_sealed, token_key_id, token_hint, insecure_http, \
     allow_private, created_at, updated_at, rate_limit_per_second, paused_at, paused_by";

impl Store {
    /// `sqlite://PATH` (created when missing) or `postgres://...`; runs the migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Self::open_with(url, None).await
    }

    /// As `open`, with this many connections (SQLite's default is one: its writes then never
    /// wait on each other). A store mostly read by many at once (the API's) takes a few: WAL
    /// lets readers go side by side, and its writers wait their turn (busy_timeout).
    pub async fn open_with(url: &str, connections: Option<u32>) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres") { Backend::Postgres } else { Backend::Sqlite };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { "&" } else { "?" })
            }
            _ => url.to_string(),
        };
        if backend == Backend::Sqlite {
            sqlite_folder_writable(&url)?;
            // One connection first, by hand: a file that cannot be opened or written (a
            // read-only disk) is said at once with its cause, where the pool would retry for
            // its whole acquire timeout and then say only that it timed out.
            use sqlx::{Connection, Executor};
            let mut probe = sqlx::AnyConnection::connect(&url).await?;
            let writable = async {
                // As patient as the pool's connections: a long write elsewhere is waited for.
                probe.execute("PRAGMA busy_timeout = 30000").await?;
                probe.execute("PRAGMA journal_mode = WAL").await?;
                probe.execute("BEGIN IMMEDIATE").await?;
                probe.execute("ROLLBACK").await
            }
            .await;
            let _ = probe.close().await;
            if let Err(e) = writable {
                let why = e.as_database_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string());
                return Err(StoreError::Invalid(if why.contains("readonly") || why.contains("read-only") {
                    format!("it is read-only ({why}): tenure needs to write its store")
                } else {
                    format!("it cannot be written: {why}")
                }));
            }
        }
        // SQLite allows one writer: one connection keeps writes in order without busy errors.
        let max = connections.unwrap_or(if backend == Backend::Sqlite { 1 } else { 8 });
        let mut options = AnyPoolOptions::new().max_connections(max);
        if backend == Backend::Postgres {
            // A store that refuses connections is said within seconds, not after sqlx's 30.
            options = options.acquire_timeout(std::time::Duration::from_secs(8));
        }
        // 64 MiB of page cache for the one connection that syncs; 2 MiB each for a readers'
        // store (the API's small reads), whose connections would otherwise each keep a copy of
        // the tables they scanned, for as long as the service is up.
        let cache = if connections.is_some() { "PRAGMA cache_size = -2048" } else { "PRAGMA cache_size = -65536" };
        if backend == Backend::Sqlite {
            // A file connection does not go stale as a network one does; the ping sqlx makes
            // before handing one out is a round trip to its thread that doubled a small read.
            options = options.test_before_acquire(false);
            // On every connection the pool opens (it replaces idle ones in a long-lived daemon),
            // not only the first.
            options = options.after_connect(move |conn, _| {
                Box::pin(async move {
                    use sqlx::Executor;
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    // Other pools of this process (the API beside the scheduler) and other
                    // processes (a CLI command beside the service) write too: wait for their
                    // turn rather than fail with "database is locked".
                    conn.execute("PRAGMA busy_timeout = 30000").await?;
                    // With WAL, NORMAL survives any process crash (kill -9 included); only a
                    // power loss can drop the last commits. It spares an fsync per journal write.
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    // 64 MiB of page cache (the default 2 MiB re-read index pages from the file
                    // on every journal write of a large sync) and fewer, larger checkpoints.
                    conn.execute(cache).await?;
                    conn.execute("PRAGMA wal_autocheckpoint = 4000").await?;
                    Ok(())
                })
            });
        }
        let pool = options.connect(&url).await?;
        MIGRATOR.run(&pool).await.map_err(StoreError::Migration)?;
        Ok(Store { pool, backend, read_chunk: 50_000, head_file: None, fence: None, renewals: Default::default() })
    }

    /// A write transaction on a connection of its own: committed when `f` and the commit
    /// succeed; otherwise rolled back, and the connection closed rather than given back to the
    /// pool. SQLite keeps a transaction open when its commit fails for want of disk, and a
    /// connection left so would take every later write into that transaction, answer "done",
    /// and keep none of it. On SQLite the write lock is taken at the start (BEGIN IMMEDIATE),
    /// so writers wait for each other (busy_timeout) instead of failing when a read would
    /// turn into a write.
    pub(crate) async fn write_tx<T>(
        &self,
        f: impl AsyncFnOnce(&mut sqlx::AnyConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        use sqlx::Executor;
        let mut guard = Writing(Some(self.pool.acquire().await?));
        let conn = guard.0.as_mut().expect("held");
        let begin = match self.backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        };
        let r = async {
            conn.execute(begin).await?;
            if let Some(fence) = &self.fence {
                self.check_fence(conn, fence).await?;
            }
            let v = f(&mut *conn).await?;
            conn.execute("COMMIT").await?;
            Ok(v)
        }
        .await;
        match &r {
            Ok(_) => {
                REFUSING.store(false, std::sync::atomic::Ordering::SeqCst);
                // Committed: back to the pool as it is.
                drop(guard.0.take());
            }
            Err(e) => {
                if matches!(e, StoreError::Full(_)) {
                    REFUSING.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                let _ = conn.execute("ROLLBACK").await;
                // The guard closes it as it goes.
            }
        }
        r
    }

    /// This store through a connection of its own, for renewing leases: a run that holds the
    /// pool's connections (or SQLite's one) does not keep its lease from being renewed.
    pub async fn for_renewals(&self) -> Result<Store, StoreError> {
        let backend = self.backend;
        let pool = self
            .renewals
            .get_or_try_init(|| async {
                // A few, so that one renewal waiting behind its run's write does not hold up
                // the others' renewals and the node's heartbeat.
                let mut options = AnyPoolOptions::new().max_connections(4);
                if backend == Backend::Sqlite {
                    options = options.after_connect(|conn, _| {
                        Box::pin(async move {
                            use sqlx::Executor;
                            conn.execute("PRAGMA busy_timeout = 30000").await?;
                            Ok(())
                        })
                    });
                } else {
                    options = options.acquire_timeout(std::time::Duration::from_secs(8));
                }
                options.connect_with((*self.pool.connect_options()).clone()).await
            })
            .await?;
        Ok(Store { pool: pool.clone(), fence: None, ..self.clone() })
    }

    /// A handle whose every write transaction is fenced by this lease (see [`Fence`]).
    pub fn fenced(&self, fence: Fence) -> Store {
        Store { fence: Some(std::sync::Arc::new(fence)), ..self.clone() }
    }

    /// The epoch this handle writes under, when fenced.
    pub fn epoch(&self) -> Option<i64> {
        self.fence.as_ref().map(|f| f.epoch)
    }

    /// Inside a write transaction: the lease is still this holder's at this epoch. On
    /// PostgreSQL the row is locked against a takeover until the transaction ends (a new
    /// holder's epoch comes after every write of the old one); on SQLite the transaction
    /// holds the database's write lock from its start.
    async fn check_fence(&self, conn: &mut sqlx::AnyConnection, f: &Fence) -> Result<(), StoreError> {
        let lock = match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR SHARE",
        };
        let sql = format!("SELECT epoch FROM leases WHERE connection = $1 AND holder = $2 AND epoch = $3{lock}");
        let held =
            sqlx::query(&sql).bind(&f.connection).bind(&f.holder).bind(f.epoch).fetch_optional(&mut *conn).await?;
        if held.is_none() {
            return Err(StoreError::Fenced { connection: f.connection.clone(), epoch: f.epoch });
        }
        Ok(())
    }

    /// True while the last write of this process was refused for want of room.
    pub fn refusing_writes(&self) -> bool {
        REFUSING.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The default: `tenure.db` in the data directory.
    /// The folder and the database are made owner-only whatever the umask: they hold HR data,
    /// audit records and sealed secrets. SQLite gives its WAL and shared-memory files the
    /// database file's mode.
    /// Whether the database at `url` holds a tenure store (its migrations were run there).
    pub async fn initialised(url: &str) -> Result<bool, StoreError> {
        sqlx::any::install_default_drivers();
        use sqlx::Connection;
        let mut c = sqlx::AnyConnection::connect(url).await?;
        let r = sqlx::query("SELECT COUNT(*) AS n FROM _sqlx_migrations").fetch_one(&mut c).await;
        let _ = c.close().await;
        Ok(r.is_ok())
    }

    /// Whether `data_dir` holds a SQLite store (an empty file is none: a first open cut short).
    pub fn exists_in(data_dir: &Path) -> bool {
        std::fs::metadata(data_dir.join("tenure.db")).is_ok_and(|m| m.is_file() && m.len() > 0)
    }

    pub async fn open_in(data_dir: &Path) -> Result<Store, StoreError> {
        Self::open_in_with(data_dir, None).await
    }

    /// As `open_in`, with this many connections (see `open_with`).
    pub async fn open_in_with(data_dir: &Path, connections: Option<u32>) -> Result<Store, StoreError> {
        let io = |e| StoreError::Database(sqlx::Error::Io(e));
        let file = data_dir.join("tenure.db");
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            secrets::private_dir(data_dir).map_err(io)?;
            // Only a file not there yet: opening and closing a database SQLite has open in this
            // process would drop its POSIX locks, and another process could then take the WAL
            // for unused and reset it under us.
            match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&file) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(e)),
            }
        }
        #[cfg(not(unix))]
        secrets::private_dir(data_dir).map_err(io)?;
        let mut store = Self::open_with(&format!("sqlite://{}", file.display()), connections).await?;
        store.head_file = Some(std::sync::Arc::new(data_dir.join(HEAD_FILE)));
        Ok(store)
    }

    /// The audit chain's last known head, kept apart from the chain: the larger of the
    /// `audit_heads` row and the data folder's `audit.head` file.
    pub async fn known_audit_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM audit_heads WHERE id = 1").fetch_optional(&self.pool).await?;
        let row: Option<(i64, String)> =
            row.map(|r| Ok::<_, sqlx::Error>((r.try_get("seq")?, r.try_get("hash")?))).transpose()?;
        let file = self.head_file.as_deref().and_then(|p| read_head_file(p));
        Ok(match (row, file) {
            (Some(a), Some(b)) => Some(if b.0 > a.0 { b } else { a }),
            (a, b) => a.or(b),
        })
    }

    /// Writes the head to the data folder's file when it is further than what the file holds
    /// (processes beside each other write it; it never goes back). Written whole, then renamed.
    pub(crate) fn note_audit_head(&self, seq: i64, hash: &str) {
        let Some(path) = self.head_file.as_deref() else { return };
        if read_head_file(path).is_some_and(|(s, _)| s >= seq) {
            return;
        }
        let tmp = path.with_extension(format!("head.{}", std::process::id()));
        let written = (|| {
            use std::io::Write;
            let mut o = std::fs::OpenOptions::new();
            o.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
            let mut f = o.open(&tmp)?;
            f.write_all(format!("{seq} {hash}\n").as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!("the audit head file {} could not be written: {e}", path.display());
        }
    }

    /// Placeholders for a multi-row INSERT. SQLite gets `?`: its driver looks every `$N` up
    /// by name, which is quadratic in a statement's parameters (a quarter of an initial sync's
    /// time went there); PostgreSQL needs `$N`.
    fn placeholders(&self, rows: usize, cols: usize) -> String {
        (0..rows).map(|r| format!("({})", self.list(r * cols + 1, cols))).collect::<Vec<_>>().join(", ")
    }

    /// `n` placeholders numbered from `first`.
    fn list(&self, first: usize, n: usize) -> String {
        match self.backend {
            Backend::Sqlite => vec!["?"; n].join(", "),
            Backend::Postgres => (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", "),
        }
    }

    /// Smaller bulk-read chunks, so tests cross chunk boundaries with few rows.
    pub fn with_read_chunk(mut self, rows: usize) -> Store {
        self.read_chunk = rows.max(1);
        self
    }

    /// Many rows in few round trips: the database packs each chunk of rows (50,000 by
    /// default) into one JSON array of `[key, value]` pairs, which serde reads far faster
    /// than sqlx hands rows over one by one (85,000 links took 0.85 s as rows). `value` is a
    /// (SQLite, PostgreSQL) JSON expression over the row's columns; `filter` an optional
    /// `column = value` condition. Chunks follow `key` (unique within the filter), each
    /// starting after the last key of the one before, so a row is never read twice even when
    /// the table changes between chunks.
    async fn json_rows<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        key: &str,
        value: (&str, &str),
        filter: Option<(&str, &str)>,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let mut out: Vec<(String, T)> = Vec::new();
        self.json_rows_each(table, key, value, filter, self.read_chunk, |k, v| out.push((k, v))).await?;
        Ok(out)
    }

    /// `json_rows` handing each row to `each` as its chunk is read, `chunk` rows at a time:
    /// what is built from the rows is all that stays in memory.
    async fn json_rows_each<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        key: &str,
        value: (&str, &str),
        filter: Option<(&str, &str)>,
        chunk: usize,
        mut each: impl FnMut(String, T),
    ) -> Result<(), StoreError> {
        let mut last: Option<String> = None;
        loop {
            let mut conds = vec![];
            if let Some((col, _)) = filter {
                conds.push(format!("{col} = {}", self.list(1, 1)));
            }
            let after = last.take();
            if after.is_some() {
                conds.push(format!("{key} > {}", self.list(conds.len() + 1, 1)));
            }
            let cond = if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) };
            let inner = format!("SELECT * FROM {table}{cond} ORDER BY {key} LIMIT {chunk}");
            let sql = match self.backend {
                // An aggregate over a LIMITed subquery reads it in the subquery's order.
                Backend::Sqlite => format!("SELECT json_group_array(json_array({key}, {})) FROM ({inner})", value.0),
                Backend::Postgres => format!(
                    "SELECT COALESCE(json_agg(json_build_array({key}, {}) ORDER BY {key}), '[]')::text FROM ({inner}) AS t",
                    value.1
                ),
            };
            let mut q = sqlx::query(&sql);
            if let Some((_, v)) = filter {
                q = q.bind(v);
            }
            if let Some(a) = after {
                q = q.bind(a);
            }
            let text: String = q.fetch_one(&self.pool).await?.try_get(0)?;
            let rows: Vec<(String, T)> = serde_json::from_str(&text)
                .map_err(|e| StoreError::Invalid(format!("rows of {table} read back as JSON: {e}")))?;
            let n = rows.len();
            // The largest key, whatever order the aggregate kept.
            last = rows.iter().map(|(k, _)| k).max().cloned();
            for (k, v) in rows {
                each(k, v);
            }
            if n < chunk {
                return Ok(());
            }
        }
    }

    /// Text columns besides the key, through `json_rows`.
    async fn text_rows(
        &self,
        table: &str,
        key: &str,
        cols: &[&str],
        filter: Option<(&str, &str)>,
    ) -> Result<Vec<(String, Vec<Option<String>>)>, StoreError> {
        let list = format!("json_array({})", cols.join(", "));
        let pg = format!("json_build_array({})", cols.join(", "));
        self.json_rows(table, key, (&list, &pg), filter).await
    }

    /// The newest schema version (migration) this build carries.
    pub fn build_schema_version() -> i64 {
        MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// A consistent copy of the whole SQLite store into the new file `path` while others read
    /// and write it (`VACUUM INTO`: one read transaction, the WAL's committed pages included;
    /// never a copy of the file, which would miss them). Refused on PostgreSQL.
    pub async fn backup_into(&self, path: &Path) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            return Err(StoreError::Invalid(
                "a PostgreSQL store is backed up with pg_dump or the server's point-in-time recovery (README, \
                 \"Backup and restore\"); `tenure backup --check` verifies a restored database"
                    .into(),
            ));
        }
        let to = path.to_str().ok_or_else(|| StoreError::Invalid(format!("{} is not UTF-8", path.display())))?;
        sqlx::query("VACUUM INTO $1").bind(to).execute(&self.pool).await?;
        Ok(())
    }

    /// A store file's schema version and audit head, read without changing it (a backup's copy).
    pub async fn file_facts(path: &Path) -> Result<(i64, Option<(i64, String)>), StoreError> {
        sqlx::any::install_default_drivers();
        use sqlx::Connection;
        let mut c = sqlx::AnyConnection::connect(&format!("sqlite://{}?mode=ro", path.display())).await?;
        let v: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_one(&mut c)
            .await?
            .try_get("v")?;
        let head = sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetch_optional(&mut c).await?;
        let head = head.map(|r| Ok::<_, sqlx::Error>((r.try_get("seq")?, r.try_get("hash")?))).transpose()?;
        let _ = c.close().await;
        Ok((v, head))
    }

    /// Every sealed secret in the store with what it is, read only (a restore checks that its
    /// key opens each one before the store is used).
    pub async fn sealed_items(&self) -> Result<Vec<(Sealable, Sealed)>, StoreError> {
        let mut out = vec![];
        for r in sqlx::query("SELECT id, token_sealed, token_key_id FROM connections ORDER BY id")
            .fetch_all(&self.pool)
            .await?
        {
            let id: String = r.try_get("id")?;
            out.push((
                Sealable::Token { connection_id: id },
                Sealed { key_id: r.try_get("token_key_id")?, blob: r.try_get("token_sealed")? },
            ));
        }
        for r in sqlx::query("SELECT name, value FROM settings ORDER BY name").fetch_all(&self.pool).await? {
            let name: String = r.try_get("name")?;
            let value: String = r.try_get("value")?;
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&value) else { continue };
            let (Some(key_id), Some(blob)) = (v["key_id"].as_str(), v["blob"].as_str()) else { continue };
            let destination = v["for"].as_str().unwrap_or_default().to_string();
            out.push((Sealable::Setting { name, destination }, Sealed { key_id: key_id.into(), blob: blob.into() }));
        }
        Ok(out)
    }

    /// Whether the store answers and its schema is the one this build expects: every
    /// migration this build carries applied, none newer (a node of an older build must not
    /// write to a newer schema). For readiness probes.
    pub async fn readiness(&self) -> Result<(), String> {
        let rows = sqlx::query("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| format!("the store does not answer: {e}"))?;
        let applied: std::collections::BTreeSet<i64> =
            rows.iter().filter_map(|r| r.try_get::<i64, _>("version").ok()).collect();
        let known: std::collections::BTreeSet<i64> = MIGRATOR.iter().map(|m| m.version).collect();
        if let Some(v) = known.difference(&applied).next() {
            return Err(format!("migration {v} is not applied"));
        }
        if let Some(v) = applied.difference(&known).next() {
            return Err(format!("the store has migration {v}, newer than this build"));
        }
        {
            // Ready means writes are kept: one small write tries it (a full disk refuses it).
            let at = now();
            self.write_tx(async |c| {
                sqlx::query(
                    "INSERT INTO settings (name, value) VALUES ('readiness_probe', $1) \
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                )
                .bind(&at)
                .execute(&mut *c)
                .await?;
                Ok(())
            })
            .await
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn close(self) {
        self.pool.close().await;
    }

    /// Stores a connection, sealing its token bound to the new row's id.
    pub async fn add_connection(
        &self,
        c: &NewConnection,
        token: &Secret,
        key: &MasterKey,
    ) -> Result<ConnectionRecord, StoreError> {
        if self.connection(&c.name).await?.is_some() {
            return Err(StoreError::NameTaken(c.name.clone()));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let sealed = key.seal(token, &id);
        let t = now();
        let res = sqlx::query(&format!(
            "INSERT INTO connections ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(&id)
        .bind(&c.name)
        .bind(&c.base_url)
        .bind(&c.dialect)
        .bind(&sealed.blob)
        .bind(&sealed.key_id)
        .bind(token.hint())
        .bind(c.insecure_http as i64)
        .bind(c.allow_private as i64)
        .bind(&t)
        .bind(&t)
        .bind(c.rate_limit_per_second)
        .execute(&self.pool)
        .await;
        match res {
            Ok(_) => {}
            // Lost a race with another writer on the unique name.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::NameTaken(c.name.clone()))
            }
            Err(e) => return Err(e.into()),
        }
        self.connection(&c.name).await?.ok_or_else(|| StoreError::NotFound(c.name.clone()))
    }

    pub async fn connection(&self, name: &str) -> Result<Option<ConnectionRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {READ} FROM connections WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(record).transpose()?)
    }

    pub async fn connections(&self) -> Result<Vec<ConnectionRecord>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {READ} FROM connections ORDER BY created_at, name"))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(record).collect::<Result<_, _>>()?)
    }

    /// The next free default name: `Connection-Bearer Token-1`, then -2, -3...
    pub async fn next_connection_name(&self) -> Result<String, StoreError> {
        let taken: Vec<String> = self.connections().await?.into_iter().map(|c| c.name).collect();
        Ok((1..)
            .map(|n| format!("Connection-Bearer Token-{n}"))
            .find(|n| !taken.contains(n))
            .expect("some number is free"))
    }

    /// Replaces the token in one statement: the old one is gone the moment the new one is in.
    pub async fn replace_token(
        &self,
        name: &str,
        token: &Secret,
        key: &MasterKey,
    ) -> Result<ConnectionRecord, StoreError> {
        let c = self.connection(name).await?.ok_or_else(|| StoreError::NotFound(name.into()))?;
        let sealed = key.seal(token, &c.id);
        let n = sqlx::query(
            "UPDATE connections SET token_sealed = $1, token_key_id = $2, token_hint = $3, updated_at = $4 WHERE id = $5",
        )
        .bind(&sealed.blob)
        .bind(&sealed.key_id)
        .bind(token.hint())
        .bind(now())
        .bind(&c.id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(name.into()));
        }
        self.connection(name).await?.ok_or_else(|| StoreError::NotFound(name.into()))
    }

    /// Re-seals every sealed secret in the store (connection tokens, and settings holding a
    /// sealed value) through `f`, in one transaction: all of them change or none does, and no
    /// secret stored meanwhile is missed. `f` opens with the old key and seals with the new;
    /// the first refusal rolls everything back. Answers how many were re-sealed.
    pub async fn reseal(&self, f: impl Fn(&Sealable, &Sealed) -> Result<Sealed, String>) -> Result<usize, StoreError> {
        self.write_tx(async |tx| {
            let mut n = 0;
            let rows = sqlx::query("SELECT id, token_sealed, token_key_id FROM connections ORDER BY id")
                .fetch_all(&mut *tx)
                .await?;
            for r in rows {
                let id: String = r.try_get("id")?;
                let old = Sealed { key_id: r.try_get("token_key_id")?, blob: r.try_get("token_sealed")? };
                let new = f(&Sealable::Token { connection_id: id.clone() }, &old).map_err(StoreError::Invalid)?;
                sqlx::query("UPDATE connections SET token_sealed = $1, token_key_id = $2 WHERE id = $3")
                    .bind(&new.blob)
                    .bind(&new.key_id)
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
                n += 1;
            }
            let rows = sqlx::query("SELECT name, value FROM settings ORDER BY name").fetch_all(&mut *tx).await?;
            for r in rows {
                let name: String = r.try_get("name")?;
                let value: String = r.try_get("value")?;
                let Ok(serde_json::Value::Object(mut v)) = serde_json::from_str(&value) else { continue };
                let (Some(key_id), Some(blob)) =
                    (v.get("key_id").and_then(|x| x.as_str()), v.get("blob").and_then(|x| x.as_str()))
                else {
                    continue;
                };
                let old = Sealed { key_id: key_id.into(), blob: blob.into() };
                let destination = v.get("for").and_then(|x| x.as_str()).unwrap_or_default().to_string();
                let new =
                    f(&Sealable::Setting { name: name.clone(), destination }, &old).map_err(StoreError::Invalid)?;
                v.insert("key_id".into(), new.key_id.into());
                v.insert("blob".into(), new.blob.into());
                sqlx::query("UPDATE settings SET value = $1 WHERE name = $2")
                    .bind(serde_json::Value::Object(v).to_string())
                    .bind(&name)
                    .execute(&mut *tx)
                    .await?;
                n += 1;
            }
            Ok(n)
        })
        .await
    }

    /// The key ids secrets are sealed under, with how many each (to tell whether a rotation is
    /// complete).
    pub async fn sealed_key_ids(&self) -> Result<Vec<(String, usize)>, StoreError> {
        let mut count = std::collections::BTreeMap::<String, usize>::new();
        for r in sqlx::query("SELECT token_key_id FROM connections").fetch_all(&self.pool).await? {
            *count.entry(r.try_get("token_key_id")?).or_default() += 1;
        }
        for r in sqlx::query("SELECT value FROM settings").fetch_all(&self.pool).await? {
            let value: String = r.try_get("value")?;
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&value) {
                if let (Some(id), Some(_)) = (v["key_id"].as_str(), v["blob"].as_str()) {
                    *count.entry(id.to_string()).or_default() += 1;
                }
            }
        }
        Ok(count.into_iter().collect())
    }

    /// Pauses (`Some(by)`) or resumes (`None`) a connection; false when there is none.
    pub async fn set_connection_paused(&self, name: &str, by: Option<&str>) -> Result<bool, StoreError> {
        let at = by.map(|_| now());
        let n = sqlx::query("UPDATE connections SET paused_at = $1, paused_by = $2, updated_at = $3 WHERE name = $4")
            .bind(at)
            .bind(by.map(str::to_string))
            .bind(now())
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    pub async fn remove_connection(&self, name: &str) -> Result<bool, StoreError> {
        let n = sqlx::query("DELETE FROM connections WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }
}

/// A stored configuration version.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigVersion {
    pub id: String,
    pub created_at: String,
    pub checksum: String,
    pub body: String,
    /// Who saved it (None for versions saved before this was kept).
    pub saved_by: Option<String>,
}

/// The previous-version mark of a first configuration: unique like any other, so two first
/// saves cannot both succeed either.
const NO_PREVIOUS: &str = "(none)";

fn config_version(r: &AnyRow) -> Result<ConfigVersion, sqlx::Error> {
    Ok(ConfigVersion {
        id: r.try_get("id")?,
        created_at: r.try_get("created_at")?,
        checksum: r.try_get("checksum")?,
        body: r.try_get("body")?,
        saved_by: r.try_get("saved_by")?,
    })
}

impl Store {
    /// Saves a configuration as the one in force, whatever was saved before it.
    pub async fn save_config(&self, body: &str) -> Result<ConfigVersion, StoreError> {
        self.insert_config(body, None, None).await
    }

    /// Saves a configuration as the one replacing version `previous` (None: the first one).
    /// When another was saved over `previous` meanwhile, nothing is saved and the answer is
    /// `Duplicate`: a change is never lost silently to one made at the same moment.
    pub async fn save_config_after(
        &self,
        body: &str,
        previous: Option<&str>,
        by: &str,
    ) -> Result<ConfigVersion, StoreError> {
        let current = self.current_config().await?.map(|c| c.id);
        if current.as_deref() != previous {
            return Err(StoreError::Duplicate("another configuration was saved meanwhile: nothing was saved".into()));
        }
        self.insert_config(body, Some(previous.unwrap_or(NO_PREVIOUS)), Some(by)).await
    }

    async fn insert_config(
        &self,
        body: &str,
        previous: Option<&str>,
        by: Option<&str>,
    ) -> Result<ConfigVersion, StoreError> {
        use sha2::Digest;
        let v = ConfigVersion {
            id: uuid::Uuid::new_v4().to_string(),
            created_at: stamp(),
            checksum: sha2::Sha256::digest(body.as_bytes()).iter().map(|b| format!("{b:02x}")).collect(),
            body: body.to_string(),
            saved_by: by.map(str::to_string),
        };
        let r = sqlx::query(
            "INSERT INTO config_versions (id, created_at, checksum, body, previous, saved_by) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&v.id)
        .bind(&v.created_at)
        .bind(&v.checksum)
        .bind(&v.body)
        .bind(previous)
        .bind(by)
        .execute(&self.pool)
        .await;
        match r {
            Ok(_) => Ok(v),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Duplicate(
                "another configuration was saved over the same version meanwhile: nothing was saved".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// The configuration in force, if one was saved.
    pub async fn current_config(&self) -> Result<Option<ConfigVersion>, StoreError> {
        let row = sqlx::query(
            "SELECT id, created_at, checksum, body, saved_by FROM config_versions \
             ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(config_version).transpose()?)
    }

    /// One saved configuration version, in force or not.
    pub async fn config_version(&self, id: &str) -> Result<Option<ConfigVersion>, StoreError> {
        let row = sqlx::query("SELECT id, created_at, checksum, body, saved_by FROM config_versions WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(config_version).transpose()?)
    }

    /// Sets a connection's URL, dialect and client-side rate limit (the token stays as it is).
    /// Whether a connection may use plain http and private addresses (`connection set`).
    pub async fn update_connection_policy(
        &self,
        name: &str,
        insecure_http: bool,
        allow_private: bool,
    ) -> Result<(), StoreError> {
        let n = sqlx::query(
            "UPDATE connections SET insecure_http = $1, allow_private = $2, updated_at = $3 WHERE name = $4",
        )
        .bind(i64::from(insecure_http))
        .bind(i64::from(allow_private))
        .bind(now())
        .bind(name)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(name.into()));
        }
        Ok(())
    }

    pub async fn update_connection_settings(
        &self,
        name: &str,
        base_url: &str,
        dialect: &str,
        rate_limit_per_second: Option<f64>,
    ) -> Result<(), StoreError> {
        let n = sqlx::query(
            "UPDATE connections SET base_url = $1, dialect = $2, rate_limit_per_second = $3, updated_at = $4 \
             WHERE name = $5",
        )
        .bind(base_url)
        .bind(dialect)
        .bind(rate_limit_per_second)
        .bind(now())
        .bind(name)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(name.into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SQLite settings hold on every connection the pool opens, also one that replaces a
    /// closed connection (a daemon's pool does that after idle time).
    #[tokio::test]
    async fn sqlite_settings_hold_on_every_connection() {
        let dir = std::env::temp_dir().join(format!("tenure-store-pragmas-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open_in(&dir).await.unwrap();
        for round in 0..2 {
            let mut conn = store.pool.acquire().await.unwrap();
            let get = |p: &'static str| sqlx::query(p);
            let sync: i64 = get("PRAGMA synchronous").fetch_one(&mut *conn).await.unwrap().try_get(0).unwrap();
            let cache: i64 = get("PRAGMA cache_size").fetch_one(&mut *conn).await.unwrap().try_get(0).unwrap();
            let mode: String = get("PRAGMA journal_mode").fetch_one(&mut *conn).await.unwrap().try_get(0).unwrap();
            assert_eq!((sync, cache, mode.as_str()), (1, -65536, "wal"), "connection {round}");
            // Closed for good: the next acquire opens a new connection.
            conn.close().await.unwrap();
        }
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
