//! HR intake tables: loads, the worker snapshot, lifecycle events, quarantined rows, pushed
//! event ids. Records are JSON text here; their meaning lives in the `hr` crate.

use crate::{now, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone, PartialEq)]
pub struct LoadRecord {
    pub id: String,
    /// The file name, or `push`.
    pub source: String,
    pub checksum: String,
    /// `full` or `delta`.
    pub kind: String,
    pub loaded_at: String,
    pub rows: i64,
    pub accepted: i64,
    pub quarantined: i64,
    pub events: i64,
    /// `accepted`, or `rejected` (nothing of it was taken; `reason` says why).
    pub outcome: String,
    pub reason: Option<String>,
    /// The person who uploaded it (`user:NAME`), when a person did: the proposer of the
    /// changes it brings, for maker-checker.
    pub uploaded_by: Option<String>,
    /// The accepted workers' values, field by field (JSON), when the load was summarised.
    pub fields: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotRow {
    pub worker_id: String,
    pub body: String,
    pub missing_since: Option<String>,
}

/// Where an HR event stands: waiting for its moment or a run, acted on, replaced by a later
/// event, or told for information only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventState {
    Pending,
    Done,
    Superseded,
    Reported,
}

impl EventState {
    pub const ALL: [EventState; 4] =
        [EventState::Pending, EventState::Done, EventState::Superseded, EventState::Reported];

    pub fn as_str(self) -> &'static str {
        match self {
            EventState::Pending => "pending",
            EventState::Done => "done",
            EventState::Superseded => "superseded",
            EventState::Reported => "reported",
        }
    }

    pub fn parse(s: &str) -> Option<EventState> {
        EventState::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl std::fmt::Display for EventState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub id: String,
    pub load_id: String,
    pub worker_id: String,
    pub kind: String,
    /// Unix seconds.
    pub effective_at: i64,
    pub body: String,
    pub state: EventState,
    pub created_at: String,
}

/// Everything one load changes, written in one transaction: all of it or none of it.
#[derive(Debug, Clone, Default)]
pub struct LoadWrite {
    pub load: Option<LoadRecord>,
    pub upserts: Vec<SnapshotRow>,
    /// Pending events of (worker, kind) replaced by this load's events.
    pub supersede: Vec<(String, String)>,
    pub events: Vec<EventRecord>,
    /// (row number, worker id when readable, the row as JSON)
    pub quarantined: Vec<(i64, Option<String>, String)>,
    pub push_ids: Vec<String>,
    /// Loads whose still-pending events this load cancels (a load taken again after them).
    pub supersede_loads: Vec<String>,
    /// Workers this load holds back by a quarantined row: (worker, why).
    pub held: Vec<(String, String)>,
    /// What this load settles of the held list: all of it (a full load), or these workers (a
    /// delta or a push took a row of theirs).
    pub held_settled: HeldSettled,
}

/// Which held workers a load settles (before its own holds are written).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum HeldSettled {
    /// None (a load refused whole).
    #[default]
    Nothing,
    /// The whole list: a full load says where every worker stands.
    All,
    Workers(Vec<String>),
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub state: Option<EventState>,
    pub worker_id: Option<String>,
    /// Only events whose moment has come (effective_at <= this).
    pub due_by: Option<i64>,
    pub limit: Option<i64>,
}

// Rows per multi-row INSERT: well under both backends' bind-parameter limits.
const CHUNK: usize = 500;

const LOAD_COLUMNS: &str =
    "id, source, checksum, kind, loaded_at, row_count, accepted, quarantined, event_count, outcome, reason, uploaded_by, \
     fields";

fn load_record(r: &AnyRow) -> Result<LoadRecord, sqlx::Error> {
    Ok(LoadRecord {
        id: r.try_get("id")?,
        source: r.try_get("source")?,
        checksum: r.try_get("checksum")?,
        kind: r.try_get("kind")?,
        loaded_at: r.try_get("loaded_at")?,
        rows: r.try_get("row_count")?,
        accepted: r.try_get("accepted")?,
        quarantined: r.try_get("quarantined")?,
        events: r.try_get("event_count")?,
        outcome: r.try_get("outcome")?,
        reason: r.try_get("reason")?,
        uploaded_by: r.try_get("uploaded_by")?,
        fields: r.try_get("fields")?,
    })
}

fn event_record(r: &AnyRow) -> Result<EventRecord, sqlx::Error> {
    Ok(EventRecord {
        id: r.try_get("id")?,
        load_id: r.try_get("load_id")?,
        worker_id: r.try_get("worker_id")?,
        kind: r.try_get("kind")?,
        effective_at: r.try_get("effective_at")?,
        body: r.try_get("body")?,
        state: {
            let s: String = r.try_get("state")?;
            EventState::parse(&s).ok_or_else(|| sqlx::Error::Decode(format!("unknown event state {s:?}").into()))?
        },
        created_at: r.try_get("created_at")?,
    })
}

impl Store {
    /// Writes a load whole. A pushed event id seen before makes the whole write fail with
    /// `StoreError::Duplicate` and change nothing.
    pub async fn record_load(&self, w: &LoadWrite) -> Result<(), StoreError> {
        self.write_tx(async |tx| {
            let stamp = now();
            let load_id = w.load.as_ref().map(|l| l.id.clone()).unwrap_or_default();
            for chunk in w.push_ids.chunks(CHUNK) {
                let sql = format!(
                    "INSERT INTO hr_push_ids (event_id, load_id, received_at) VALUES {}",
                    self.placeholders(chunk.len(), 3)
                );
                let mut q = sqlx::query(&sql);
                for id in chunk {
                    q = q.bind(id).bind(&load_id).bind(&stamp);
                }
                match q.execute(&mut *tx).await {
                    Ok(_) => {}
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        return Err(StoreError::Duplicate("a pushed event id was taken already".into()))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if let Some(l) = &w.load {
                // The other nodes hear of it at the commit (a hint; they also look on their own).
                if self.backend == crate::Backend::Postgres {
                    sqlx::query("SELECT pg_notify('tenure_hints', 'hr')").execute(&mut *tx).await?;
                }
                sqlx::query(
                    "INSERT INTO hr_loads (id, source, checksum, kind, loaded_at, row_count, accepted, quarantined, \
                     event_count, outcome, reason, uploaded_by, fields) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
                     $13)",
                )
                .bind(&l.id)
                .bind(&l.source)
                .bind(&l.checksum)
                .bind(&l.kind)
                .bind(&l.loaded_at)
                .bind(l.rows)
                .bind(l.accepted)
                .bind(l.quarantined)
                .bind(l.events)
                .bind(&l.outcome)
                .bind(l.reason.clone())
                .bind(l.uploaded_by.clone())
                .bind(l.fields.clone())
                .execute(&mut *tx)
                .await?;
            }
            for load in &w.supersede_loads {
                sqlx::query("UPDATE hr_events SET state = 'superseded' WHERE load_id = $1 AND state = 'pending'")
                    .bind(load)
                    .execute(&mut *tx)
                    .await?;
            }
            for chunk in w.upserts.chunks(CHUNK) {
                let sql = format!(
                    "INSERT INTO hr_workers (worker_id, body, missing_since, load_id, updated_at) VALUES {} \
                     ON CONFLICT (worker_id) DO UPDATE SET body = excluded.body, missing_since = \
                     excluded.missing_since, load_id = excluded.load_id, updated_at = excluded.updated_at",
                    self.placeholders(chunk.len(), 5)
                );
                let mut q = sqlx::query(&sql);
                for r in chunk {
                    q = q.bind(&r.worker_id).bind(&r.body).bind(r.missing_since.clone()).bind(&load_id).bind(&stamp);
                }
                q.execute(&mut *tx).await?;
            }
            for (worker, kind) in &w.supersede {
                sqlx::query(
                    "UPDATE hr_events SET state = 'superseded' WHERE worker_id = $1 AND kind = $2 AND state = 'pending'",
                )
                .bind(worker)
                .bind(kind)
                .execute(&mut *tx)
                .await?;
            }
            for chunk in w.events.chunks(CHUNK) {
                let sql = format!(
                    "INSERT INTO hr_events (id, load_id, worker_id, kind, effective_at, body, state, created_at) VALUES {}",
                    self.placeholders(chunk.len(), 8)
                );
                let mut q = sqlx::query(&sql);
                for e in chunk {
                    q = q
                        .bind(&e.id)
                        .bind(&e.load_id)
                        .bind(&e.worker_id)
                        .bind(&e.kind)
                        .bind(e.effective_at)
                        .bind(&e.body)
                        .bind(e.state.as_str())
                        .bind(&e.created_at);
                }
                q.execute(&mut *tx).await?;
            }
            // A worker held again keeps the moment it was first held.
            let mut since: std::collections::HashMap<String, String> = std::collections::HashMap::new();
            match &w.held_settled {
                HeldSettled::Nothing => {}
                HeldSettled::All => {
                    for r in sqlx::query("SELECT worker_id, since FROM hr_held").fetch_all(&mut *tx).await? {
                        since.insert(r.try_get("worker_id")?, r.try_get("since")?);
                    }
                    sqlx::query("DELETE FROM hr_held").execute(&mut *tx).await?;
                }
                HeldSettled::Workers(ids) => {
                    for chunk in ids.chunks(CHUNK) {
                        let sql = format!("DELETE FROM hr_held WHERE worker_id IN ({})", self.list(1, chunk.len()));
                        let mut q = sqlx::query(&sql);
                        for id in chunk {
                            q = q.bind(id);
                        }
                        q.execute(&mut *tx).await?;
                    }
                }
            }
            for (worker, reason) in &w.held {
                // Held since the first load that held it, while loads keep holding it.
                sqlx::query(
                    "INSERT INTO hr_held (worker_id, load_id, reason, since) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (worker_id) DO UPDATE SET load_id = excluded.load_id, reason = excluded.reason",
                )
                .bind(worker)
                .bind(&load_id)
                .bind(reason)
                .bind(since.get(worker).unwrap_or(&stamp))
                .execute(&mut *tx)
                .await?;
            }
            for chunk in w.quarantined.chunks(CHUNK) {
                let sql = format!(
                    "INSERT INTO hr_quarantine (load_id, row_number, worker_id, body) VALUES {}",
                    self.placeholders(chunk.len(), 4)
                );
                let mut q = sqlx::query(&sql);
                for (row, worker, body) in chunk {
                    q = q.bind(&load_id).bind(*row).bind(worker.clone()).bind(body);
                }
                q.execute(&mut *tx).await?;
            }
            // When it was recorded on the database's clock, as the transaction's last word:
            // the schedule compares it with the moments turns were claimed, on that clock too.
            if let Some(l) = &w.load {
                let now = self.db_now_ms();
                sqlx::query(&format!("UPDATE hr_loads SET recorded_ms = {now} WHERE id = $1"))
                    .bind(&l.id)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(())
        })
        .await
    }

    /// The database moment the newest load was recorded (None: none recorded since it was kept).
    pub async fn last_recorded_ms(&self) -> Result<Option<i64>, StoreError> {
        let r = sqlx::query("SELECT MAX(recorded_ms) AS ms FROM hr_loads").fetch_one(&self.pool).await?;
        Ok(r.try_get("ms")?)
    }

    /// The loads recorded after `ms` (database time; None: every load with a recorded moment).
    pub async fn loads_recorded_after(&self, ms: Option<i64>) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT id FROM hr_loads WHERE recorded_ms > $1")
            .bind(ms.unwrap_or(i64::MIN))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| r.try_get("id")).collect::<Result<_, sqlx::Error>>().map_err(Into::into)
    }

    /// The loads recorded after `ms` (database time), with their moment, oldest first.
    pub async fn loads_since(&self, ms: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT id, recorded_ms FROM hr_loads WHERE recorded_ms > $1 ORDER BY recorded_ms")
            .bind(ms)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("recorded_ms")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// The workers with an event due by `due_by` (unix seconds) in these loads, whatever its
    /// state (another connection's run may have marked it done already), at most `limit`.
    pub async fn workers_of_loads(
        &self,
        loads: &[String],
        due_by: i64,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        if loads.is_empty() {
            return Ok(vec![]);
        }
        // Numbers inlined: SQLite's `?` and PostgreSQL's `$n` would not mix with a bound first.
        let list = self.list(1, loads.len());
        let sql = format!(
            "SELECT DISTINCT worker_id FROM hr_events WHERE load_id IN ({list}) AND effective_at <= {due_by} \
             ORDER BY worker_id LIMIT {limit}"
        );
        let mut q = sqlx::query(&sql);
        for l in loads {
            q = q.bind(l);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(|r| r.try_get("worker_id")).collect::<Result<_, sqlx::Error>>().map_err(Into::into)
    }

    /// Which connections these workers have an account on: (connection, worker) pairs.
    pub async fn links_of_workers(&self, workers: &[String]) -> Result<Vec<(String, String)>, StoreError> {
        let mut out = vec![];
        for chunk in workers.chunks(CHUNK) {
            let list = self.list(1, chunk.len());
            let sql = format!("SELECT connection, worker_id FROM links WHERE worker_id IN ({list})");
            let mut q = sqlx::query(&sql);
            for w in chunk {
                q = q.bind(w);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.push((r.try_get("connection")?, r.try_get("worker_id")?));
            }
        }
        Ok(out)
    }

    /// The whole snapshot, by worker id.
    /// Workers in the last snapshot that a full load did not find missing: the population.
    pub async fn population(&self) -> Result<i64, StoreError> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM hr_workers WHERE missing_since IS NULL")
            .fetch_one(&self.pool)
            .await?;
        Ok(r.try_get("n")?)
    }

    pub async fn snapshot(&self) -> Result<Vec<SnapshotRow>, StoreError> {
        let rows = self.text_rows("hr_workers", "worker_id", &["body", "missing_since"], None).await?;
        Ok(rows
            .into_iter()
            .map(|(worker_id, r)| {
                let mut it = r.into_iter();
                SnapshotRow {
                    worker_id,
                    body: it.next().flatten().unwrap_or_default(),
                    missing_since: it.next().flatten(),
                }
            })
            .collect())
    }

    /// The snapshot with each body decoded as `T`, in worker id order: the bodies travel as
    /// JSON inside the result rather than as escaped text, so they are parsed once (100,000
    /// workers are read on every reconcile). A body that does not decode is named by a
    /// second, row-by-row pass.
    pub async fn snapshot_decoded<T: serde::de::DeserializeOwned>(&self) -> Result<Vec<(String, T)>, StoreError> {
        match self.json_rows::<T>("hr_workers", "worker_id", ("json(body)", "body::json"), None).await {
            Ok(rows) => Ok(rows),
            Err(e) => {
                for r in self.snapshot().await? {
                    if let Err(why) = serde_json::from_str::<T>(&r.body) {
                        return Err(StoreError::Invalid(format!("worker {}: {why}", r.worker_id)));
                    }
                }
                Err(e)
            }
        }
    }

    /// The snapshot decoded as `T` row by row into `each`, in worker id order, `chunk` rows
    /// at a time: for what is built from every worker and kept (the search index), so only
    /// that and one chunk are ever in memory.
    pub async fn snapshot_each<T: serde::de::DeserializeOwned>(
        &self,
        chunk: usize,
        each: impl FnMut(String, T),
    ) -> Result<(), StoreError> {
        let chunk = chunk.min(self.read_chunk).max(1);
        let read =
            self.json_rows_each("hr_workers", "worker_id", ("json(body)", "body::json"), None, chunk, each).await;
        if let Err(e) = read {
            // Name the worker whose record does not decode, as `snapshot_decoded` does.
            for r in self.snapshot().await? {
                if let Err(why) = serde_json::from_str::<T>(&r.body) {
                    return Err(StoreError::Invalid(format!("worker {}: {why}", r.worker_id)));
                }
            }
            return Err(e);
        }
        Ok(())
    }

    /// The snapshot's first worker by id, if any (what an example is shown for).
    pub async fn snapshot_first(&self) -> Result<Option<SnapshotRow>, StoreError> {
        let r = sqlx::query("SELECT worker_id, body, missing_since FROM hr_workers ORDER BY worker_id LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.as_ref().map(snapshot_row).transpose()?)
    }

    /// The snapshot rows of these workers (those that have one).
    pub async fn snapshot_of(&self, ids: &[String]) -> Result<Vec<SnapshotRow>, StoreError> {
        let mut out = vec![];
        for chunk in ids.chunks(CHUNK) {
            let list = self.list(1, chunk.len());
            let sql = format!("SELECT worker_id, body, missing_since FROM hr_workers WHERE worker_id IN ({list})");
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.push(snapshot_row(&r)?);
            }
        }
        Ok(out)
    }

    /// A mark that changes whenever a load is recorded (by any process): the daemon polls it
    /// to wake at once after `tenure hr load` in another process.
    pub async fn loads_mark(&self) -> Result<(i64, Option<String>), StoreError> {
        let r = sqlx::query("SELECT COUNT(*) AS n, MAX(loaded_at) AS last FROM hr_loads").fetch_one(&self.pool).await?;
        Ok((r.try_get("n")?, r.try_get("last")?))
    }

    /// The loads of this content (SHA-256), oldest first: a file dropped twice is taken once.
    pub async fn loads_of(&self, checksum: &str) -> Result<Vec<LoadRecord>, StoreError> {
        let sql = format!("SELECT {LOAD_COLUMNS} FROM hr_loads WHERE checksum = $1 ORDER BY loaded_at, id");
        let rows = sqlx::query(&sql).bind(checksum).fetch_all(&self.pool).await?;
        rows.iter().map(load_record).collect::<Result<_, _>>().map_err(Into::into)
    }

    /// Every load, oldest first.
    pub async fn loads(&self) -> Result<Vec<LoadRecord>, StoreError> {
        let sql = format!("SELECT {LOAD_COLUMNS} FROM hr_loads ORDER BY loaded_at, id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(load_record).collect::<Result<_, _>>().map_err(Into::into)
    }

    pub async fn load(&self, id: &str) -> Result<Option<LoadRecord>, StoreError> {
        let sql = format!("SELECT {LOAD_COLUMNS} FROM hr_loads WHERE id = $1");
        let r = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
        Ok(r.as_ref().map(load_record).transpose()?)
    }

    /// The newest load, accepted or refused: the last HR data received.
    pub async fn last_load(&self) -> Result<Option<LoadRecord>, StoreError> {
        let sql = format!("SELECT {LOAD_COLUMNS} FROM hr_loads ORDER BY loaded_at DESC, id DESC LIMIT 1");
        let r = sqlx::query(&sql).fetch_optional(&self.pool).await?;
        Ok(r.as_ref().map(load_record).transpose()?)
    }

    /// The newest accepted load (refused ones changed nothing).
    pub async fn last_accepted_load(&self) -> Result<Option<LoadRecord>, StoreError> {
        let sql = format!(
            "SELECT {LOAD_COLUMNS} FROM hr_loads WHERE outcome = 'accepted' ORDER BY loaded_at DESC, id DESC LIMIT 1"
        );
        let r = sqlx::query(&sql).fetch_optional(&self.pool).await?;
        Ok(r.as_ref().map(load_record).transpose()?)
    }

    /// The moment of the next pending HR event after `after` (epoch seconds), if any: what
    /// the scheduler sleeps until, found by index rather than by reading every pending event.
    pub async fn next_event_after(&self, after: i64) -> Result<Option<i64>, StoreError> {
        let r = sqlx::query("SELECT MIN(effective_at) FROM hr_events WHERE state = 'pending' AND effective_at > $1")
            .bind(after)
            .fetch_one(&self.pool)
            .await?;
        Ok(r.try_get::<Option<i64>, _>(0)?)
    }

    pub async fn events(&self, q: &EventQuery) -> Result<Vec<EventRecord>, StoreError> {
        let mut sql = "SELECT id, load_id, worker_id, kind, effective_at, body, state, created_at FROM hr_events \
                       WHERE 1 = 1"
            .to_string();
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if q.state.is_some() {
            sql += &format!(" AND state = {}", next());
        }
        if q.worker_id.is_some() {
            sql += &format!(" AND worker_id = {}", next());
        }
        if q.due_by.is_some() {
            sql += &format!(" AND effective_at <= {}", next());
        }
        sql += " ORDER BY effective_at, created_at, id";
        if q.limit.is_some() {
            sql += &format!(" LIMIT {}", next());
        }
        let mut query = sqlx::query(&sql);
        if let Some(s) = q.state {
            query = query.bind(s.as_str());
        }
        if let Some(w) = &q.worker_id {
            query = query.bind(w);
        }
        if let Some(d) = q.due_by {
            query = query.bind(d);
        }
        if let Some(l) = q.limit {
            query = query.bind(l);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(event_record).collect::<Result<_, _>>().map_err(Into::into)
    }

    /// The events of these workers, each worker's oldest first (a review queue's "why").
    pub async fn events_of(&self, ids: &[String]) -> Result<Vec<EventRecord>, StoreError> {
        let mut out = vec![];
        for chunk in ids.chunks(CHUNK) {
            let list = self.list(1, chunk.len());
            let sql = format!(
                "SELECT id, load_id, worker_id, kind, effective_at, body, state, created_at FROM hr_events \
                 WHERE worker_id IN ({list}) ORDER BY worker_id, effective_at, created_at, id"
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.push(event_record(&r)?);
            }
        }
        Ok(out)
    }

    /// Moves an event on (pending to done, say); false when it was not in state `from`.
    pub async fn set_event_state(&self, id: &str, from: EventState, to: EventState) -> Result<bool, StoreError> {
        let n = sqlx::query("UPDATE hr_events SET state = $1 WHERE id = $2 AND state = $3")
            .bind(to.as_str())
            .bind(id)
            .bind(from.as_str())
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Moves many events from one state to another in one transaction (a run marks thousands
    /// done at once). Returns how many moved.
    pub async fn set_events_state(&self, ids: &[String], from: EventState, to: EventState) -> Result<u64, StoreError> {
        self.write_tx(async |tx| self.set_events_state_in(tx, ids, from, to).await).await
    }

    pub(crate) async fn set_events_state_in(
        &self,
        tx: &mut sqlx::AnyConnection,
        ids: &[String],
        from: EventState,
        to: EventState,
    ) -> Result<u64, StoreError> {
        {
            let mut n = 0;
            for chunk in ids.chunks(CHUNK) {
                let sql = format!(
                    "UPDATE hr_events SET state = {} WHERE state = {} AND id IN ({})",
                    self.list(1, 1),
                    self.list(2, 1),
                    self.list(3, chunk.len())
                );
                let mut q = sqlx::query(&sql).bind(to.as_str()).bind(from.as_str());
                for id in chunk {
                    q = q.bind(id);
                }
                n += q.execute(&mut *tx).await?.rows_affected();
            }
            Ok(n)
        }
    }

    /// Marks done, in one statement, the pending events due by `due_by` that came with these
    /// loads, except those of the given workers (few: failed or held back). Updating by id is
    /// far slower in SQLite once thousands of rows move in the (state, effective_at) index.
    pub async fn set_due_events_done(
        &self,
        due_by: i64,
        load_ids: &[String],
        except_workers: &[String],
    ) -> Result<u64, StoreError> {
        self.write_tx(async |tx| self.set_due_events_done_in(tx, due_by, load_ids, except_workers).await).await
    }

    pub(crate) async fn set_due_events_done_in(
        &self,
        tx: &mut sqlx::AnyConnection,
        due_by: i64,
        load_ids: &[String],
        except_workers: &[String],
    ) -> Result<u64, StoreError> {
        if load_ids.is_empty() {
            return Ok(0);
        }
        let mut sql = format!(
            "UPDATE hr_events SET state = 'done' WHERE state = 'pending' AND effective_at <= {} AND load_id IN ({})",
            self.list(1, 1),
            self.list(2, load_ids.len())
        );
        if !except_workers.is_empty() {
            sql += &format!(" AND worker_id NOT IN ({})", self.list(2 + load_ids.len(), except_workers.len()));
        }
        let mut q = sqlx::query(&sql).bind(due_by);
        for l in load_ids {
            q = q.bind(l);
        }
        for w in except_workers {
            q = q.bind(w);
        }
        Ok(q.execute(&mut *tx).await?.rows_affected())
    }

    /// Which of these pushed event ids were taken already.
    pub async fn seen_push_ids(&self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        let mut out = vec![];
        for chunk in ids.chunks(CHUNK) {
            let list = self.list(1, chunk.len());
            let sql = format!("SELECT event_id FROM hr_push_ids WHERE event_id IN ({list})");
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.push(r.try_get("event_id")?);
            }
        }
        Ok(out)
    }

    /// Workers held back by quarantined rows: (worker, why, since), by worker id.
    pub async fn hr_held(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        let rows = sqlx::query("SELECT worker_id, reason, since FROM hr_held ORDER BY worker_id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("worker_id")?, r.try_get("reason")?, r.try_get("since")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Quarantined rows of a load: (row number, worker id, the row as JSON).
    pub async fn quarantined(&self, load_id: &str) -> Result<Vec<(i64, Option<String>, String)>, StoreError> {
        let rows =
            sqlx::query("SELECT row_number, worker_id, body FROM hr_quarantine WHERE load_id = $1 ORDER BY row_number")
                .bind(load_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("row_number")?, r.try_get("worker_id")?, r.try_get("body")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    pub async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row =
            sqlx::query("SELECT value FROM settings WHERE name = $1").bind(name).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| r.try_get("value")).transpose()?)
    }

    /// Every setting whose name begins with `prefix`, by name.
    pub async fn settings_with_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, value FROM settings WHERE substr(name, 1, CAST($1 AS INTEGER)) = $2 ORDER BY name",
        )
        .bind(prefix.chars().count() as i64)
        .bind(prefix)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("value")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    pub async fn delete_setting(&self, name: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM settings WHERE name = $1").bind(name).execute(&self.pool).await?;
        Ok(())
    }

    /// Sets a setting only if it still holds `old` (None: absent): whether it did. Two
    /// processes taking the same one-time value: one wins.
    pub async fn swap_setting(&self, name: &str, old: Option<&str>, new: &str) -> Result<bool, StoreError> {
        let r = match old {
            Some(old) => {
                sqlx::query("UPDATE settings SET value = $1 WHERE name = $2 AND value = $3")
                    .bind(new)
                    .bind(name)
                    .bind(old)
                    .execute(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                    .bind(name)
                    .bind(new)
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(r.rows_affected() == 1)
    }

    pub async fn set_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value")
            .bind(name)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn snapshot_row(r: &AnyRow) -> Result<SnapshotRow, sqlx::Error> {
    Ok(SnapshotRow {
        worker_id: r.try_get("worker_id")?,
        body: r.try_get("body")?,
        missing_since: r.try_get("missing_since")?,
    })
}

/// Bytes per part of an archived file (before base64).
const ARCHIVE_PART: usize = 4 << 20;

impl Store {
    /// Keeps an HR file's bytes under their checksum, in parts; a file kept already is left.
    pub async fn archive_put(&self, checksum: &str, bytes: &[u8]) -> Result<(), StoreError> {
        use base64::Engine;
        self.write_tx(async |tx| {
            let kept = sqlx::query("SELECT part FROM hr_archive WHERE checksum = $1 AND part = 0")
                .bind(checksum)
                .fetch_optional(&mut *tx)
                .await?;
            if kept.is_some() {
                return Ok(());
            }
            // An empty file is one empty part, so that it reads back as kept.
            let parts: Vec<&[u8]> = if bytes.is_empty() { vec![&[]] } else { bytes.chunks(ARCHIVE_PART).collect() };
            for (i, part) in parts.into_iter().enumerate() {
                // Two nodes taking the same bytes at once keep one copy.
                sqlx::query(
                    "INSERT INTO hr_archive (checksum, part, data) VALUES ($1, $2, $3) ON CONFLICT (checksum, part) \
                     DO NOTHING",
                )
                .bind(checksum)
                .bind(i as i64)
                .bind(base64::engine::general_purpose::STANDARD.encode(part))
                .execute(&mut *tx)
                .await?;
            }
            Ok(())
        })
        .await
    }

    /// An archived file's bytes, when the store keeps it.
    pub async fn archive_get(&self, checksum: &str) -> Result<Option<Vec<u8>>, StoreError> {
        use base64::Engine;
        let rows = sqlx::query("SELECT data FROM hr_archive WHERE checksum = $1 ORDER BY part")
            .bind(checksum)
            .fetch_all(&self.pool)
            .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut out = vec![];
        for r in &rows {
            let text: String = r.try_get("data")?;
            let part = base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| StoreError::Invalid(format!("the archived copy {checksum} does not read back: {e}")))?;
            out.extend(part);
        }
        Ok(Some(out))
    }
}
