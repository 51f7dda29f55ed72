//! Leases: which process works a connection now. A row per connection names the holder (a
//! process incarnation), since when and until when, on the database's clock, so two
//! processes (or nodes) never judge expiry by clocks that disagree.

use crate::{Backend, Store, StoreError};
use sqlx::Row;

/// A lease this process holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub connection: String,
    pub holder: String,
    pub epoch: i64,
    /// Database time, milliseconds since the epoch.
    pub since_ms: i64,
    pub expires_ms: i64,
}

/// Who holds a lease another process asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub holder: String,
    pub epoch: i64,
    pub host: String,
    pub pid: i64,
    /// What the holder said of itself ("tenure apply, pid 12, host h, user u").
    pub info: String,
    pub since_ms: i64,
    pub expires_ms: i64,
}

/// Who asks for a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimant<'a> {
    /// The process incarnation.
    pub holder: &'a str,
    pub info: &'a str,
    pub host: &'a str,
    pub pid: i64,
}

/// The answer to an attempt to take a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    Held(Lease),
    /// Someone else holds it and it has not expired.
    Busy(Holder),
}

impl Store {
    /// The database's clock in milliseconds, as SQL.
    pub(crate) fn db_now_ms(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
            Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }

    /// Takes the lease on `connection` for `ttl_ms` when it is free, expired or already ours.
    /// The epoch rises when the holder changes; a holder taking its own lease again keeps it.
    pub async fn acquire_lease(
        &self,
        connection: &str,
        me: &Claimant<'_>,
        ttl_ms: i64,
    ) -> Result<Acquired, StoreError> {
        let now = self.db_now_ms();
        let sql = format!(
            "INSERT INTO leases (connection, holder, holder_info, host, pid, epoch, since_ms, expires_ms) \
             VALUES ($1, $2, $3, $4, $5, 1, {now}, {now} + $6) \
             ON CONFLICT (connection) DO UPDATE SET \
               epoch = CASE WHEN leases.holder = excluded.holder THEN leases.epoch ELSE leases.epoch + 1 END, \
               since_ms = CASE WHEN leases.holder = excluded.holder THEN leases.since_ms ELSE excluded.since_ms END, \
               holder = excluded.holder, holder_info = excluded.holder_info, host = excluded.host, \
               pid = excluded.pid, expires_ms = excluded.expires_ms \
             WHERE leases.expires_ms <= {now} OR leases.holder = excluded.holder"
        );
        sqlx::query(&sql)
            .bind(connection)
            .bind(me.holder)
            .bind(me.info)
            .bind(me.host)
            .bind(me.pid)
            .bind(ttl_ms)
            .execute(&self.pool)
            .await?;
        self.lease_answer(connection, me.holder).await
    }

    /// Takes a lease from a holder known to be gone (its process no longer runs), only if
    /// that holder still has it at that epoch; the epoch rises.
    pub async fn take_over_lease(
        &self,
        connection: &str,
        from: &Holder,
        me: &Claimant<'_>,
        ttl_ms: i64,
    ) -> Result<Acquired, StoreError> {
        let now = self.db_now_ms();
        let sql = format!(
            "UPDATE leases SET holder = $1, holder_info = $2, host = $3, pid = $4, epoch = epoch + 1, \
             since_ms = {now}, expires_ms = {now} + $5 WHERE connection = $6 AND holder = $7 AND epoch = $8"
        );
        sqlx::query(&sql)
            .bind(me.holder)
            .bind(me.info)
            .bind(me.host)
            .bind(me.pid)
            .bind(ttl_ms)
            .bind(connection)
            .bind(&from.holder)
            .bind(from.epoch)
            .execute(&self.pool)
            .await?;
        self.lease_answer(connection, me.holder).await
    }

    async fn lease_answer(&self, connection: &str, holder: &str) -> Result<Acquired, StoreError> {
        let r = sqlx::query(
            "SELECT holder, holder_info, host, pid, epoch, since_ms, expires_ms FROM leases WHERE connection = $1",
        )
        .bind(connection)
        .fetch_one(&self.pool)
        .await?;
        let who: String = r.try_get("holder")?;
        let (epoch, since_ms, expires_ms): (i64, i64, i64) =
            (r.try_get("epoch")?, r.try_get("since_ms")?, r.try_get("expires_ms")?);
        if who == holder {
            Ok(Acquired::Held(Lease { connection: connection.into(), holder: who, epoch, since_ms, expires_ms }))
        } else {
            Ok(Acquired::Busy(Holder {
                holder: who,
                epoch,
                host: r.try_get("host")?,
                pid: r.try_get("pid")?,
                info: r.try_get("holder_info")?,
                since_ms,
                expires_ms,
            }))
        }
    }

    /// Extends a lease held by exactly this holder and epoch. False: the lease is lost (it
    /// expired and someone took it), and the holder must stop acting on the connection.
    pub async fn renew_lease(&self, lease: &mut Lease, ttl_ms: i64) -> Result<bool, StoreError> {
        let now = self.db_now_ms();
        let sql = format!(
            "UPDATE leases SET expires_ms = {now} + $1 \
             WHERE connection = $2 AND holder = $3 AND epoch = $4 AND expires_ms > {now}"
        );
        let n = sqlx::query(&sql)
            .bind(ttl_ms)
            .bind(&lease.connection)
            .bind(&lease.holder)
            .bind(lease.epoch)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Gives a lease up at once (the row stays, expired, so the next epoch still rises).
    pub async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let now = self.db_now_ms();
        let sql =
            format!("UPDATE leases SET expires_ms = {now} - 1 WHERE connection = $1 AND holder = $2 AND epoch = $3");
        sqlx::query(&sql).bind(&lease.connection).bind(&lease.holder).bind(lease.epoch).execute(&self.pool).await?;
        Ok(())
    }
}

/// A process (node) working on this store, as it says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    /// The process incarnation: fresh at each start.
    pub id: String,
    pub host: String,
    pub pid: i64,
    pub version: String,
    /// Database time, milliseconds since the epoch.
    pub started_ms: i64,
    pub seen_ms: i64,
    pub expires_ms: i64,
    pub address: Option<String>,
    /// Finishing its runs before it stops: it takes no more connections.
    pub stopping: bool,
    /// It takes scheduled turns (false: `--interval 0`, runs are started by people), and so
    /// owns connections.
    pub scheduling: bool,
}

const NODE_COLUMNS: &str = "id, host, pid, version, started_ms, seen_ms, expires_ms, address, stopping, scheduling";

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

fn bind_node<'q>(q: AnyQuery<'q>, n: &'q NodeRecord, ttl_ms: i64) -> AnyQuery<'q> {
    q.bind(&n.id)
        .bind(&n.host)
        .bind(n.pid)
        .bind(&n.version)
        .bind(ttl_ms)
        .bind(n.address.clone())
        .bind(i64::from(n.stopping))
        .bind(i64::from(n.scheduling))
}

fn node_record(r: &sqlx::any::AnyRow) -> Result<NodeRecord, sqlx::Error> {
    Ok(NodeRecord {
        id: r.try_get("id")?,
        host: r.try_get("host")?,
        pid: r.try_get("pid")?,
        version: r.try_get("version")?,
        started_ms: r.try_get("started_ms")?,
        seen_ms: r.try_get("seen_ms")?,
        expires_ms: r.try_get("expires_ms")?,
        address: r.try_get("address")?,
        stopping: r.try_get::<i64, _>("stopping")? != 0,
        scheduling: r.try_get::<i64, _>("scheduling")? != 0,
    })
}

/// A connection's schedule: who owns it and when its next turn is due (database time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRow {
    pub connection: String,
    pub owner: Option<String>,
    pub owned_ms: Option<i64>,
    pub next_ms: i64,
}

/// A connection's lease as every node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    pub connection: String,
    /// The holder (`<node id>/<run id>`).
    pub holder: String,
    pub info: String,
    pub epoch: i64,
    pub since_ms: i64,
    pub expires_ms: i64,
    /// Not expired, on the database's clock.
    pub live: bool,
}

impl LeaseRecord {
    /// The node (process incarnation) holding it.
    pub fn node(&self) -> &str {
        self.holder.split('/').next().unwrap_or_default()
    }
}

impl Store {
    /// Says this node is alive until `ttl_ms` from now (database time), adding it the first time.
    pub async fn beat_node(&self, n: &NodeRecord, ttl_ms: i64) -> Result<(), StoreError> {
        let sql = self.node_beat();
        bind_node(sqlx::query(&sql), n, ttl_ms).execute(&self.pool).await?;
        if n.stopping {
            self.hint("owners").await;
        }
        Ok(())
    }

    /// Says this node is still alive until `ttl_ms` from now, only if it is listed: whether it
    /// was. A renewal landing after the node's row was removed (it left) adds nothing back.
    pub async fn renew_node(&self, n: &NodeRecord, ttl_ms: i64) -> Result<bool, StoreError> {
        let now = self.db_now_ms();
        let sql = format!(
            "UPDATE nodes SET seen_ms = {now}, expires_ms = {now} + $2, address = $3, stopping = $4, scheduling = $5 \
             WHERE id = $1"
        );
        let done = sqlx::query(&sql)
            .bind(&n.id)
            .bind(ttl_ms)
            .bind(n.address.clone())
            .bind(i64::from(n.stopping))
            .bind(i64::from(n.scheduling))
            .execute(&self.pool)
            .await?;
        if n.stopping {
            self.hint("owners").await;
        }
        Ok(done.rows_affected() > 0)
    }

    fn node_beat(&self) -> String {
        let now = self.db_now_ms();
        format!(
            "INSERT INTO nodes (id, host, pid, version, started_ms, seen_ms, expires_ms, address, stopping, scheduling) \
             VALUES ($1, $2, $3, $4, {now}, {now}, {now} + $5, $6, $7, $8) \
             ON CONFLICT (id) DO UPDATE SET seen_ms = {now}, expires_ms = {now} + $5, address = excluded.address, \
             stopping = excluded.stopping, scheduling = excluded.scheduling"
        )
    }

    /// On a store for one node (SQLite): says this node is alive only when no other live node
    /// is, in one write transaction, so that two nodes starting at once cannot both join.
    /// Answers the others that are (and then adds nothing).
    pub async fn join_alone(&self, n: &NodeRecord, ttl_ms: i64) -> Result<Vec<NodeRecord>, StoreError> {
        self.write_tx(async |c| {
            let now = self.db_now_ms();
            let sql = format!(
                "SELECT {NODE_COLUMNS} FROM nodes WHERE expires_ms > {now} AND id <> $1 ORDER BY started_ms, id"
            );
            let rows = sqlx::query(&sql).bind(&n.id).fetch_all(&mut *c).await?;
            let others = rows.iter().map(node_record).collect::<Result<Vec<_>, sqlx::Error>>()?;
            if others.is_empty() {
                let sql = self.node_beat();
                bind_node(sqlx::query(&sql), n, ttl_ms).execute(&mut *c).await?;
            }
            Ok(others)
        })
        .await
    }

    /// A node that stops says so: it is no longer listed.
    pub async fn remove_node(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM nodes WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// The nodes alive on the database's clock (their last word not yet run out), oldest first;
    /// the long dead are forgotten.
    pub async fn live_nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let now = self.db_now_ms();
        // A day after its last word, a node that never said goodbye (kill -9) is dropped.
        sqlx::query(&format!("DELETE FROM nodes WHERE expires_ms < {now} - 86400000")).execute(&self.pool).await?;
        let sql = format!("SELECT {NODE_COLUMNS} FROM nodes WHERE expires_ms > {now} ORDER BY started_ms, id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(node_record).collect::<Result<_, sqlx::Error>>().map_err(Into::into)
    }

    /// Every connection's lease, live or run out, by connection.
    pub async fn leases(&self) -> Result<Vec<LeaseRecord>, StoreError> {
        let now = self.db_now_ms();
        let sql = format!(
            "SELECT connection, holder, holder_info, epoch, since_ms, expires_ms, \
             CAST(CASE WHEN expires_ms > {now} THEN 1 ELSE 0 END AS BIGINT) AS live FROM leases ORDER BY connection"
        );
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(LeaseRecord {
                    connection: r.try_get("connection")?,
                    holder: r.try_get("holder")?,
                    info: r.try_get("holder_info")?,
                    epoch: r.try_get("epoch")?,
                    since_ms: r.try_get("since_ms")?,
                    expires_ms: r.try_get("expires_ms")?,
                    live: r.try_get::<i64, _>("live")? != 0,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }
}

impl Store {
    /// Claims the connection's scheduled turn when it is due (or has none yet) and this node
    /// owns the connection (a connection with no schedule yet is taken with its first turn):
    /// the next is then `interval_ms` after the one claimed (or from now, when that is past
    /// already), on the database's clock: turns keep their rhythm rather than drift by each
    /// wake-up's delay. False: not due, owned
    /// by another node, or another node claimed it first.
    pub async fn claim_turn(&self, connection: &str, interval_ms: i64, node: &str) -> Result<bool, StoreError> {
        let now = self.db_now_ms();
        let sql = format!(
            "INSERT INTO schedule (connection, next_ms, claimed_by, claimed_ms, owner, owned_ms) \
             VALUES ($1, {now} + $2, $3, {now}, $3, {now}) \
             ON CONFLICT (connection) DO UPDATE SET next_ms = CASE WHEN schedule.next_ms + $2 > {now} \
               THEN schedule.next_ms + $2 ELSE {now} + $2 END, claimed_by = $3, claimed_ms = {now} \
             WHERE schedule.next_ms <= {now} AND schedule.owner = $3"
        );
        let n = sqlx::query(&sql).bind(connection).bind(interval_ms).bind(node).execute(&self.pool).await?;
        Ok(n.rows_affected() == 1)
    }

    /// Every connection's schedule: its owner and next turn.
    pub async fn schedule_rows(&self) -> Result<Vec<ScheduleRow>, StoreError> {
        let rows = sqlx::query("SELECT connection, owner, owned_ms, next_ms FROM schedule ORDER BY connection")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ScheduleRow {
                    connection: r.try_get("connection")?,
                    owner: r.try_get("owner")?,
                    owned_ms: r.try_get("owned_ms")?,
                    next_ms: r.try_get("next_ms")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// A schedule for a connection that has none: owned by nobody yet, its first turn due now.
    pub async fn add_turn(&self, connection: &str) -> Result<(), StoreError> {
        let now = self.db_now_ms();
        sqlx::query(&format!(
            "INSERT INTO schedule (connection, next_ms, claimed_by, claimed_ms) VALUES ($1, {now}, '', 0) \
             ON CONFLICT (connection) DO NOTHING"
        ))
        .bind(connection)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Moves a connection's ownership from `from` to `to` (None: nobody), only if `from` still
    /// owns it: two nodes taking the same connection at once, one wins.
    pub async fn move_owner(&self, connection: &str, from: Option<&str>, to: Option<&str>) -> Result<bool, StoreError> {
        let now = self.db_now_ms();
        let sql = format!(
            "UPDATE schedule SET owner = $1, owned_ms = {now} WHERE connection = $2 \
             AND (owner = $3 OR (owner IS NULL AND $4 = 1))"
        );
        let n = sqlx::query(&sql)
            .bind(to.map(str::to_string))
            .bind(connection)
            .bind(from.unwrap_or_default())
            .bind(i64::from(from.is_none()))
            .execute(&self.pool)
            .await?;
        if to.is_none() && n.rows_affected() == 1 {
            self.hint("owners").await;
        }
        Ok(n.rows_affected() == 1)
    }

    /// Connections with an account of a worker whose HR event is due and pending (a leaver, a
    /// move): a turn runs them first.
    pub async fn connections_with_due_events(&self, now_s: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT l.connection AS connection FROM links l JOIN hr_events e ON e.worker_id = l.worker_id \
             WHERE e.state = 'pending' AND e.effective_at <= $1 ORDER BY l.connection",
        )
        .bind(now_s)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| r.try_get("connection")).collect::<Result<_, sqlx::Error>>().map_err(Into::into)
    }

    /// A node that leaves gives back every connection it owns.
    pub async fn give_back_all(&self, node: &str) -> Result<u64, StoreError> {
        let now = self.db_now_ms();
        let n = sqlx::query(&format!("UPDATE schedule SET owner = NULL, owned_ms = {now} WHERE owner = $1"))
            .bind(node)
            .execute(&self.pool)
            .await?;
        self.hint("owners").await;
        Ok(n.rows_affected())
    }

    /// The connections this node owns, each with how long until its next turn (milliseconds
    /// on the database's clock; zero or less: due).
    pub async fn owned_turns(&self, node: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let now = self.db_now_ms();
        let rows =
            sqlx::query(&format!("SELECT connection, next_ms - {now} AS until_ms FROM schedule WHERE owner = $1"))
                .bind(node)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("connection")?, r.try_get("until_ms")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// A turn of a connection this node owns that it could not run (another run held the
    /// connection, or a run for HR news could not go): due again `after_ms` from now.
    pub async fn turn_again(&self, connection: &str, node: &str, after_ms: i64) -> Result<(), StoreError> {
        let now = self.db_now_ms();
        sqlx::query(&format!("UPDATE schedule SET next_ms = {now} + $3 WHERE connection = $1 AND owner = $2"))
            .bind(connection)
            .bind(node)
            .bind(after_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The connection's turn is due now if HR data was recorded since its last turn was
    /// claimed (taken over from a node that may not have carried it out); true if it now is.
    pub async fn make_turn_due_if_news(&self, connection: &str) -> Result<bool, StoreError> {
        let now = self.db_now_ms();
        let n = sqlx::query(&format!(
            "UPDATE schedule SET next_ms = {now} WHERE connection = $1 AND next_ms > {now} \
             AND claimed_ms < (SELECT COALESCE(MAX(recorded_ms), 0) FROM hr_loads)"
        ))
        .bind(connection)
        .execute(&self.pool)
        .await?;
        Ok(n.rows_affected() > 0)
    }

    /// Every connection whose last turn was claimed before `news_ms` (HR data arrived then, an
    /// event's moment came, a node started) is due now: the next node to look claims it once.
    /// A turn claimed after the news already saw it, and stays as it is.
    pub async fn make_turns_due(&self, news_ms: i64) -> Result<(), StoreError> {
        let now = self.db_now_ms();
        sqlx::query(&format!("UPDATE schedule SET next_ms = {now} WHERE next_ms > {now} AND claimed_ms < $1"))
            .bind(news_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl Store {
    /// Connections whose holder left a run unfinished and whose lease has run out (a node
    /// killed, or stopped mid-run): another node should take them up now, not at their next turn.
    pub async fn orphaned_connections(&self) -> Result<Vec<String>, StoreError> {
        let now = self.db_now_ms();
        let sql = format!(
            "SELECT DISTINCT l.connection AS connection FROM leases l JOIN runs r ON r.connection = l.connection \
             AND r.epoch = l.epoch WHERE l.expires_ms <= {now} AND r.finished_at IS NULL ORDER BY l.connection"
        );
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(|r| r.try_get("connection")).collect::<Result<_, sqlx::Error>>().map_err(Into::into)
    }

    /// This connection's turn is due now; false when it was already.
    pub async fn make_turn_due(&self, connection: &str) -> Result<bool, StoreError> {
        let now = self.db_now_ms();
        let n = sqlx::query(&format!("UPDATE schedule SET next_ms = {now} WHERE connection = $1 AND next_ms > {now}"))
            .bind(connection)
            .execute(&self.pool)
            .await?;
        Ok(n.rows_affected() > 0)
    }
}

/// A run asked for on one node and handed to the connection's owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRequest {
    /// The run's id, as the asking node answered it.
    pub id: String,
    pub connection: String,
    /// What the run is to do and who asked, as JSON.
    pub start: String,
    /// The node that asked.
    pub requested_by: String,
    pub requested_ms: i64,
    /// The node that took it, if one did.
    pub taken_by: Option<String>,
    /// Why it could not start.
    pub error: Option<String>,
}

impl Store {
    /// Hands a run to whichever node owns the connection.
    pub async fn request_run(&self, id: &str, connection: &str, start: &str, node: &str) -> Result<(), StoreError> {
        let now = self.db_now_ms();
        sqlx::query(&format!(
            "INSERT INTO run_requests (id, connection, start, requested_by, requested_ms) VALUES ($1, $2, $3, $4, {now})"
        ))
        .bind(id)
        .bind(connection)
        .bind(start)
        .bind(node)
        .execute(&self.pool)
        .await?;
        self.hint("run").await;
        Ok(())
    }

    /// The runs handed to `node` and not started: asked for on connections it owns, and not
    /// taken, or taken by a node that is gone before it started them; and, after five seconds,
    /// those on a connection no live node owns (removed from the configuration, or its owner
    /// gone): any node takes those, and starts them or says why not. Requests a week old are
    /// forgotten.
    pub async fn run_requests_for(&self, node: &str) -> Result<Vec<RunRequest>, StoreError> {
        let now = self.db_now_ms();
        // Now and then (a node looks four times a second): the week-old are forgotten.
        if now_and_then() {
            sqlx::query(&format!("DELETE FROM run_requests WHERE requested_ms < {now} - 604800000"))
                .execute(&self.pool)
                .await?;
        }
        let sql = format!(
            "SELECT q.id, q.connection, q.start, q.requested_by, q.requested_ms, q.taken_by, q.error \
             FROM run_requests q LEFT JOIN schedule s ON s.connection = q.connection \
             WHERE (s.owner = $1 OR (q.requested_ms < {now} - 5000 AND (s.owner IS NULL \
                    OR s.owner NOT IN (SELECT id FROM nodes WHERE expires_ms > {now})))) \
               AND q.error IS NULL AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = q.id) \
               AND (q.taken_by IS NULL OR q.taken_by NOT IN (SELECT id FROM nodes WHERE expires_ms > {now})) \
             ORDER BY q.requested_ms, q.id"
        );
        let rows = sqlx::query(&sql).bind(node).fetch_all(&self.pool).await?;
        rows.iter().map(run_request).collect::<Result<_, sqlx::Error>>().map_err(Into::into)
    }

    /// A handed run, whoever asked for it.
    pub async fn run_request(&self, id: &str) -> Result<Option<RunRequest>, StoreError> {
        let r = sqlx::query(
            "SELECT id, connection, start, requested_by, requested_ms, taken_by, error FROM run_requests WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        r.as_ref().map(run_request).transpose().map_err(Into::into)
    }

    /// Takes a handed run to start it, only if it is still as `seen` (two nodes never both do).
    pub async fn take_run_request(&self, seen: &RunRequest, node: &str) -> Result<bool, StoreError> {
        let now = self.db_now_ms();
        let sql = format!(
            "UPDATE run_requests SET taken_by = $1, taken_ms = {now} WHERE id = $2 AND error IS NULL \
             AND (taken_by = $3 OR (taken_by IS NULL AND $4 = 1))"
        );
        let n = sqlx::query(&sql)
            .bind(node)
            .bind(&seen.id)
            .bind(seen.taken_by.clone().unwrap_or_default())
            .bind(i64::from(seen.taken_by.is_none()))
            .execute(&self.pool)
            .await?;
        Ok(n.rows_affected() == 1)
    }

    /// Gives a taken request back (the connection was busy): it is taken again later.
    pub async fn put_back_run_request(&self, id: &str, node: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE run_requests SET taken_by = NULL, taken_ms = NULL WHERE id = $1 AND taken_by = $2")
            .bind(id)
            .bind(node)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A handed run that cannot start, and why.
    pub async fn fail_run_request(&self, id: &str, error: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE run_requests SET error = $1 WHERE id = $2")
            .bind(error)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// True at the first call and then once in a thousand.
fn now_and_then() -> bool {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed).is_multiple_of(1000)
}

fn run_request(r: &sqlx::any::AnyRow) -> Result<RunRequest, sqlx::Error> {
    Ok(RunRequest {
        id: r.try_get("id")?,
        connection: r.try_get("connection")?,
        start: r.try_get("start")?,
        requested_by: r.try_get("requested_by")?,
        requested_ms: r.try_get("requested_ms")?,
        taken_by: r.try_get("taken_by")?,
        error: r.try_get("error")?,
    })
}

/// The channel on which nodes hint each other that something changed (PostgreSQL's
/// LISTEN/NOTIFY): HR data arrived, a run was handed over, connections were given back. A
/// hint only shortens a wait: every node also looks on its own, so a hint lost (a node
/// reconnecting) delays nothing past the next look.
const HINTS: &str = "tenure_hints";

/// The hints other nodes send, as they come.
pub struct Hints(sqlx::postgres::PgListener);

impl Hints {
    /// The next hint's word ("hr", "run", "owners"). An error: the connection was lost (the
    /// next call connects again, and hints sent meanwhile are lost).
    pub async fn next(&mut self) -> Result<String, StoreError> {
        Ok(self.0.recv().await?.payload().to_string())
    }
}

impl Store {
    /// Hints every node listening (PostgreSQL only; a failure is nothing: they look anyway).
    pub async fn hint(&self, what: &str) {
        if self.backend == Backend::Postgres {
            if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)").bind(HINTS).bind(what).execute(&self.pool).await {
                tracing::debug!("a hint to the other nodes was not sent: {e}");
            }
        }
    }

    /// Listens for the other nodes' hints, on a connection of its own (None on SQLite: one node).
    pub async fn hints(&self) -> Result<Option<Hints>, StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let url = self.pool.connect_options().database_url.clone();
        let mut l = sqlx::postgres::PgListener::connect(url.as_str()).await?;
        l.listen(HINTS).await?;
        Ok(Some(Hints(l)))
    }
}
