//! Provisioning tables: links (worker to account), the action journal, runs, and the
//! hash-chained audit log. Bodies are JSON text; their meaning lives in the engine.

use crate::{now, Store, StoreError};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub connection: String,
    pub worker_id: String,
    pub target_id: String,
    pub user_name: String,
    pub origin: String,
    pub linked_at: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    pub id: String,
    pub run_id: String,
    pub connection: String,
    pub worker_id: String,
    pub kind: String,
    pub body: String,
    pub state: String,
    pub attempts: i64,
    pub error: Option<String>,
    /// When the intent was written (read back; ignored on write).
    pub created_at: String,
}

/// One audit record before it is chained.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub run_id: String,
    pub connection: String,
    pub worker_id: String,
    pub action: String,
    pub outcome: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: String,
    pub entry: AuditEntry,
    pub prev_hash: String,
    pub hash: String,
}

/// Which audit records a page shows: moments as stored text (`since` inclusive, `before`
/// exclusive), exact columns, text the detail holds, and action names kept or left out.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub since: Option<String>,
    pub before: Option<String>,
    pub worker: Option<String>,
    pub connection: Option<String>,
    pub action: Option<String>,
    pub run: Option<String>,
    pub detail_holds: Option<String>,
    /// (names, true: only these; false: all but these).
    pub actions: Option<(Vec<String>, bool)>,
}

/// The outcome of an action, written with the links and audit records it causes.
#[derive(Debug, Clone, Default)]
pub struct Outcomes {
    /// (journal id, state, error)
    pub journal: Vec<(String, String, Option<String>)>,
    pub links: Vec<Link>,
    /// (connection, worker id) links to drop.
    pub unlinks: Vec<(String, String)>,
    pub audit: Vec<AuditEntry>,
    /// (connection, worker id, moment) of deactivations done: the hard-delete clock starts.
    pub deactivated: Vec<(String, String, String)>,
    /// (connection, worker id) whose account is active again or gone: the clock stops.
    pub undeactivated: Vec<(String, String)>,
    /// (connection, team) someone was put in: a team tenure manages from then on.
    pub joined: Vec<(String, String)>,
}

/// A team tenure made or put someone in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenureTeam {
    pub name: String,
    /// Made by tenure (not only joined): deleted once empty when the connection asks for it.
    pub made: bool,
}

const CHUNK: usize = 400;

/// Outcomes written as one.
struct Parts<'a>(&'a [&'a Outcomes]);

impl<'a> Parts<'a> {
    fn journal(&self) -> impl Iterator<Item = &'a (String, String, Option<String>)> {
        self.0.iter().flat_map(|o| &o.journal)
    }
    fn links(&self) -> impl Iterator<Item = &'a Link> {
        self.0.iter().flat_map(|o| &o.links)
    }
    fn unlinks(&self) -> impl Iterator<Item = &'a (String, String)> {
        self.0.iter().flat_map(|o| &o.unlinks)
    }
    fn audit(&self) -> impl Iterator<Item = &'a AuditEntry> {
        self.0.iter().flat_map(|o| &o.audit)
    }
    fn deactivated(&self) -> impl Iterator<Item = &'a (String, String, String)> {
        self.0.iter().flat_map(|o| &o.deactivated)
    }
    fn undeactivated(&self) -> impl Iterator<Item = &'a (String, String)> {
        self.0.iter().flat_map(|o| &o.undeactivated)
    }
    /// Each (connection, team) once, whatever its case: thousands of joins are a few teams.
    fn joined(&self) -> Vec<(&'a str, &'a str)> {
        let mut seen = std::collections::HashSet::new();
        self.0
            .iter()
            .flat_map(|o| &o.joined)
            .filter(|(c, t)| seen.insert((c.as_str(), t.to_lowercase())))
            .map(|(c, t)| (c.as_str(), t.as_str()))
            .collect()
    }
}

fn journal(r: &AnyRow) -> Result<JournalEntry, sqlx::Error> {
    Ok(JournalEntry {
        id: r.try_get("id")?,
        run_id: r.try_get("run_id")?,
        connection: r.try_get("connection")?,
        worker_id: r.try_get("worker_id")?,
        kind: r.try_get("kind")?,
        body: r.try_get("body")?,
        state: r.try_get("state")?,
        attempts: r.try_get("attempts")?,
        error: r.try_get("error")?,
        created_at: r.try_get("created_at")?,
    })
}

/// One run as kept: its summary is the engine's, as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub id: String,
    pub connection: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub summary: Option<String>,
    /// Who started it (a person, the scheduler, the command line); None for older runs.
    pub started_by: Option<String>,
    /// Workers done and in all, as last written while it ran, and when.
    pub progress: Option<(i64, i64, String)>,
    /// A rehearsal's moment: the run acted as of then, not as of its start.
    pub as_of: Option<String>,
}

impl RunRecord {
    /// Why a guard refused the run, when one did (nothing was applied).
    pub fn refused(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(self.summary.as_deref()?).ok()?;
        v.get("refused").and_then(|r| r.as_str()).map(str::to_string)
    }
}

const RUN_COLUMNS: &str =
    "id, connection, started_at, finished_at, summary, started_by, progress_done, progress_total, progress_at, as_of";

fn run_record(r: &AnyRow) -> Result<RunRecord, sqlx::Error> {
    let progress = match (
        r.try_get::<Option<i64>, _>("progress_done")?,
        r.try_get::<Option<i64>, _>("progress_total")?,
        r.try_get::<Option<String>, _>("progress_at")?,
    ) {
        (Some(d), Some(t), Some(at)) => Some((d, t, at)),
        _ => None,
    };
    Ok(RunRecord {
        id: r.try_get("id")?,
        connection: r.try_get("connection")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        summary: r.try_get("summary")?,
        started_by: r.try_get("started_by")?,
        progress,
        as_of: r.try_get("as_of")?,
    })
}

fn audit_record(r: &AnyRow) -> Result<AuditRecord, sqlx::Error> {
    Ok(AuditRecord {
        seq: r.try_get("seq")?,
        at: r.try_get("at")?,
        entry: AuditEntry {
            run_id: r.try_get("run_id")?,
            connection: r.try_get("connection")?,
            worker_id: r.try_get("worker_id")?,
            action: r.try_get("action")?,
            outcome: r.try_get("outcome")?,
            detail: r.try_get("detail")?,
        },
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

/// The chained hash of one record.
pub fn audit_hash(prev: &str, seq: i64, at: &str, e: &AuditEntry) -> String {
    let mut h = Sha256::new();
    for part in [prev, &seq.to_string(), at, &e.run_id, &e.connection, &e.worker_id, &e.action, &e.outcome, &e.detail] {
        // Length-prefixed, so no two different records hash alike by shifting text between fields.
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    // One string written in place: a format! per byte was a tenth of the audit's cost.
    let mut hex = String::with_capacity(64);
    for b in h.finalize() {
        use std::fmt::Write;
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// Which HR events a run settles.
pub enum EventsDone<'a> {
    None,
    /// These events, by id.
    These(Vec<String>),
    /// Every pending event due by `due_by` from these loads, but those of the `except` workers.
    DueFromLoads {
        due_by: i64,
        loads: &'a [String],
        except: &'a [String],
    },
}

/// What a run leaves behind in the store, written in one transaction by `finish_run_with`.
pub struct AfterRun<'a> {
    pub run_id: &'a str,
    pub connection: &'a str,
    /// The summary as JSON.
    pub summary: &'a str,
    /// Workers that failed (with the fingerprint and text of their actions, and the error).
    pub failed: &'a [(String, String, String, String)],
    /// Workers whose actions all went through.
    pub succeeded: &'a [String],
    pub dead_after: i64,
    pub reviews_applied: &'a [i64],
    pub events: EventsDone<'a>,
}

/// The mass-deprovision guard's refusal of a connection's last run, kept until a run goes through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardTrip {
    pub connection: String,
    /// Which guard refused the run.
    pub guard: GuardKind,
    /// The guard's reason, with its numbers.
    pub why: String,
    /// The number the run is confirmed with: deactivations and deletions the refused plan
    /// held (`--confirm-deprovision`), or its team removals (`--confirm-team-removals`).
    pub deactivations: i64,
    pub tripped_at: String,
    /// Who started the refused run (a person, the scheduler, the command line).
    pub by: String,
}

/// The guards that stop a run until a person confirms it with a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardKind {
    /// Too many deactivations at once.
    Deprovision,
    /// Too many of one team's members taken out at once.
    Teams,
    /// Too many managed accounts given back at once.
    Reactivation,
}

impl GuardKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GuardKind::Deprovision => "deprovision",
            GuardKind::Teams => "teams",
            GuardKind::Reactivation => "reactivation",
        }
    }
    fn parse(s: &str) -> GuardKind {
        match s {
            "teams" => GuardKind::Teams,
            "reactivation" => GuardKind::Reactivation,
            _ => GuardKind::Deprovision,
        }
    }
}

/// What status and metrics count of one connection, read for every connection in one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionFigures {
    pub connection: String,
    pub pending_reviews: i64,
    /// Workers set aside as dead letters (not those still being retried).
    pub dead_letters: i64,
    /// Workers held until their HR data changes.
    pub held: i64,
    /// The guard's refusal of its last run, while it stands.
    pub guard: Option<GuardTrip>,
    /// The configuration version in force (the same on every row; None before the first).
    pub config_id: Option<String>,
    /// Paused by a person: when, by whom.
    pub paused: Option<(String, String)>,
}

impl Store {
    /// Keeps the guard's refusal of a connection's run (replacing an earlier one).
    pub async fn trip_guard(
        &self,
        connection: &str,
        guard: GuardKind,
        why: &str,
        deactivations: i64,
        by: &str,
    ) -> Result<bool, StoreError> {
        // News when it was not tripped already by the same guard for the same number: the
        // scheduler meets a refused plan at every turn, and says so once.
        let before = sqlx::query("SELECT guard, deactivations FROM guard_trips WHERE connection = $1")
            .bind(connection)
            .fetch_optional(&self.pool)
            .await?;
        let news = match before {
            Some(r) => {
                r.try_get::<String, _>("guard")? != guard.as_str()
                    || r.try_get::<i64, _>("deactivations")? != deactivations
            }
            None => true,
        };
        sqlx::query(
            "INSERT INTO guard_trips (connection, guard, why, deactivations, tripped_at, by_whom) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (connection) DO UPDATE SET guard = excluded.guard, \
             why = excluded.why, deactivations = excluded.deactivations, tripped_at = excluded.tripped_at, \
             by_whom = excluded.by_whom",
        )
        .bind(connection)
        .bind(guard.as_str())
        .bind(why)
        .bind(deactivations)
        .bind(now())
        .bind(by)
        .execute(&self.pool)
        .await?;
        Ok(news)
    }

    /// A run went through: the connection's guard is no longer tripped.
    pub async fn clear_guard(&self, connection: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM guard_trips WHERE connection = $1").bind(connection).execute(&self.pool).await?;
        Ok(())
    }

    /// Every connection whose guard is tripped.
    pub async fn guard_trips(&self) -> Result<Vec<GuardTrip>, StoreError> {
        let rows = sqlx::query(
            "SELECT connection, guard, why, deactivations, tripped_at, by_whom FROM guard_trips ORDER BY connection",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(GuardTrip {
                    connection: r.try_get("connection")?,
                    guard: GuardKind::parse(&r.try_get::<String, _>("guard")?),
                    why: r.try_get("why")?,
                    deactivations: r.try_get("deactivations")?,
                    tripped_at: r.try_get("tripped_at")?,
                    by: r.try_get("by_whom")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Every connection's figures, in the connections' order, in one query: a status asked
    /// thousands of times a second reads the counts, not the rows.
    pub async fn connection_figures(&self) -> Result<Vec<ConnectionFigures>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.name, \
               (SELECT COUNT(*) FROM reviews r WHERE r.connection = c.name AND r.state = 'pending') AS pending, \
               (SELECT COUNT(*) FROM dead_letters d WHERE d.connection = c.name AND d.state = 'dead') AS dead, \
               (SELECT COUNT(*) FROM holds h WHERE h.connection = c.name) AS held, \
               (SELECT id FROM config_versions ORDER BY created_at DESC, id DESC LIMIT 1) AS config_id, \
               g.guard, g.why, g.deactivations, g.tripped_at, g.by_whom, c.paused_at, c.paused_by \
             FROM connections c LEFT JOIN guard_trips g ON g.connection = c.name \
             ORDER BY c.created_at, c.name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let connection: String = r.try_get("name")?;
                let guard = match r.try_get::<Option<String>, _>("why")? {
                    Some(why) => Some(GuardTrip {
                        connection: connection.clone(),
                        guard: GuardKind::parse(&r.try_get::<Option<String>, _>("guard")?.unwrap_or_default()),
                        why,
                        deactivations: r.try_get("deactivations")?,
                        tripped_at: r.try_get("tripped_at")?,
                        by: r.try_get("by_whom")?,
                    }),
                    None => None,
                };
                let paused = match r.try_get::<Option<String>, _>("paused_at")? {
                    Some(at) => Some((at, r.try_get::<Option<String>, _>("paused_by")?.unwrap_or_default())),
                    None => None,
                };
                Ok(ConnectionFigures {
                    paused,
                    pending_reviews: r.try_get("pending")?,
                    dead_letters: r.try_get("dead")?,
                    held: r.try_get("held")?,
                    config_id: r.try_get("config_id")?,
                    guard,
                    connection,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// How many links a connection has, counted in the store (a page that says it need not
    /// read 100,000 rows).
    pub async fn link_count(&self, connection: &str) -> Result<usize, StoreError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM links WHERE connection = $1")
            .bind(connection)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        Ok(n as usize)
    }

    pub async fn links(&self, connection: &str) -> Result<Vec<Link>, StoreError> {
        let cols = ["target_id", "user_name", "origin", "linked_at"];
        let rows = self.text_rows("links", "worker_id", &cols, Some(("connection", connection))).await?;
        Ok(rows
            .into_iter()
            .map(|(worker_id, r)| {
                let mut it = r.into_iter().map(Option::unwrap_or_default);
                let mut next = || it.next().unwrap_or_default();
                Link {
                    connection: connection.to_string(),
                    worker_id,
                    target_id: next(),
                    user_name: next(),
                    origin: next(),
                    linked_at: next(),
                }
            })
            .collect())
    }

    /// One worker's link on a connection, or the link of one account: a single indexed read.
    pub async fn link_of(
        &self,
        connection: &str,
        worker_id: Option<&str>,
        target_id: Option<&str>,
    ) -> Result<Option<Link>, StoreError> {
        let (column, value) = match (worker_id, target_id) {
            (Some(w), _) => ("worker_id", w),
            (None, Some(t)) => ("target_id", t),
            (None, None) => return Ok(None),
        };
        let sql = format!(
            "SELECT worker_id, target_id, user_name, origin, linked_at FROM links WHERE connection = $1 AND {column} = $2"
        );
        let row = sqlx::query(&sql).bind(connection).bind(value).fetch_optional(&self.pool).await?;
        row.map(|r| {
            Ok(Link {
                connection: connection.to_string(),
                worker_id: r.try_get("worker_id")?,
                target_id: r.try_get("target_id")?,
                user_name: r.try_get("user_name")?,
                origin: r.try_get("origin")?,
                linked_at: r.try_get("linked_at")?,
            })
        })
        .transpose()
        .map_err(|e: sqlx::Error| e.into())
    }

    /// When tenure deactivated each of a connection's accounts, by worker id.
    pub async fn deactivations(
        &self,
        connection: &str,
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        let rows = sqlx::query("SELECT worker_id, at FROM deactivations WHERE connection = $1")
            .bind(connection)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("worker_id")?, r.try_get("at")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Each worker's newest audit record on a connection: (action, outcome, moment), by worker id.
    pub async fn last_actions(
        &self,
        connection: &str,
    ) -> Result<std::collections::HashMap<String, (String, String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.worker_id, a.action, a.outcome, a.at FROM audit a JOIN \
             (SELECT worker_id, MAX(seq) AS seq FROM audit WHERE connection = $1 AND worker_id <> '' GROUP BY worker_id) m \
             ON a.seq = m.seq",
        )
        .bind(connection)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("worker_id")?, (r.try_get("action")?, r.try_get("outcome")?, r.try_get("at")?))))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// The teams tenure made or put someone in on a connection.
    pub async fn tenure_teams(&self, connection: &str) -> Result<Vec<TenureTeam>, StoreError> {
        let rows = sqlx::query("SELECT name, made FROM tenure_teams WHERE connection = $1 ORDER BY name_key")
            .bind(connection)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok(TenureTeam { name: r.try_get("name")?, made: r.try_get::<i64, _>("made")? != 0 }))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// A team tenure made: recorded as soon as the target answered, before anyone joins it.
    /// Fenced like every write of a run.
    pub async fn record_team_made(&self, connection: &str, team: &str) -> Result<(), StoreError> {
        self.write_tx(async |tx| {
            sqlx::query(
                "INSERT INTO tenure_teams (connection, name_key, name, made, since) VALUES ($1, $2, $3, 1, $4) \
                 ON CONFLICT (connection, name_key) DO UPDATE SET made = 1, name = excluded.name",
            )
            .bind(connection)
            .bind(team.to_lowercase())
            .bind(team)
            .bind(now())
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
        .await
    }

    /// A team tenure deleted (empty): no longer tenure's. Fenced like every write of a run.
    pub async fn forget_team(&self, connection: &str, team: &str) -> Result<(), StoreError> {
        self.write_tx(async |tx| {
            sqlx::query("DELETE FROM tenure_teams WHERE connection = $1 AND name_key = $2")
                .bind(connection)
                .bind(team.to_lowercase())
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
        .await
    }

    /// Writes intents, in one transaction, before their calls are made.
    pub async fn journal_intents(&self, entries: &[JournalEntry]) -> Result<(), StoreError> {
        self.write_tx(async |tx| {
            let t = now();
            for chunk in entries.chunks(CHUNK) {
                let sql = format!(
                    "INSERT INTO journal (id, run_id, connection, worker_id, kind, body, state, attempts, error, \
                     created_at, updated_at, epoch) VALUES {}",
                    self.placeholders(chunk.len(), 12)
                );
                let mut q = sqlx::query(&sql);
                for e in chunk {
                    q = q
                        .bind(&e.id)
                        .bind(&e.run_id)
                        .bind(&e.connection)
                        .bind(&e.worker_id)
                        .bind(&e.kind)
                        .bind(&e.body)
                        .bind(&e.state)
                        .bind(e.attempts)
                        .bind(e.error.clone())
                        .bind(&t)
                        .bind(&t)
                        .bind(self.epoch());
                }
                q.execute(&mut *tx).await?;
            }
            Ok(())
        })
        .await
    }

    /// Journal entries of a connection in a state (intent: in flight when a run stopped).
    pub async fn journal_in_state(&self, connection: &str, state: &str) -> Result<Vec<JournalEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, run_id, connection, worker_id, kind, body, state, attempts, error, created_at FROM journal \
             WHERE connection = $1 AND state = $2 ORDER BY created_at, id",
        )
        .bind(connection)
        .bind(state)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(journal).collect::<Result<_, _>>().map_err(Into::into)
    }

    /// Outcomes, links and audit records of a batch of calls, in one transaction.
    pub async fn record_outcomes(&self, o: &Outcomes) -> Result<(), StoreError> {
        self.record_outcome_parts(&[o]).await
    }

    /// Several workers' outcomes in one transaction, as if they were one `Outcomes` (in their
    /// order): the caller keeps them apart, to write them one by one if the whole is refused.
    pub async fn record_outcome_parts(&self, parts: &[&Outcomes]) -> Result<(), StoreError> {
        let o = Parts(parts);
        self.write_tx(async |tx| {
            let t = now();
            // Successes in one statement per few hundred; failures one by one, with their error.
            let done: Vec<&String> =
                o.journal().filter(|(_, s, e)| s == "done" && e.is_none()).map(|(id, _, _)| id).collect();
            for chunk in done.chunks(CHUNK) {
                let list = self.list(3, chunk.len());
                let sql = format!(
                    "UPDATE journal SET state = {}, attempts = attempts + 1, updated_at = {} WHERE id IN ({list})",
                    self.list(1, 1),
                    self.list(2, 1)
                );
                let mut q = sqlx::query(&sql).bind("done").bind(&t);
                for id in chunk {
                    q = q.bind(*id);
                }
                q.execute(&mut *tx).await?;
            }
            for (id, state, error) in o.journal().filter(|(_, s, e)| !(s == "done" && e.is_none())) {
                sqlx::query(
                    "UPDATE journal SET state = $1, error = $2, attempts = attempts + 1, updated_at = $3 WHERE id = $4",
                )
                .bind(state)
                .bind(error.clone())
                .bind(&t)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            for (conn, worker) in o.unlinks() {
                sqlx::query("DELETE FROM links WHERE connection = $1 AND worker_id = $2")
                    .bind(conn)
                    .bind(worker)
                    .execute(&mut *tx)
                    .await?;
            }
            for (conn, worker) in o.unlinks().chain(o.undeactivated()) {
                sqlx::query("DELETE FROM deactivations WHERE connection = $1 AND worker_id = $2")
                    .bind(conn)
                    .bind(worker)
                    .execute(&mut *tx)
                    .await?;
            }
            for (conn, worker, at) in o.deactivated() {
                sqlx::query(
                    "INSERT INTO deactivations (connection, worker_id, at) VALUES ($1, $2, $3) \
                     ON CONFLICT (connection, worker_id) DO UPDATE SET at = excluded.at",
                )
                .bind(conn)
                .bind(worker)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            for (conn, team) in o.joined() {
                sqlx::query(
                    "INSERT INTO tenure_teams (connection, name_key, name, made, since) VALUES ($1, $2, $3, 0, $4) \
                     ON CONFLICT (connection, name_key) DO NOTHING",
                )
                .bind(conn)
                .bind(team.to_lowercase())
                .bind(team)
                .bind(&t)
                .execute(&mut *tx)
                .await?;
            }
            let links: Vec<&Link> = o.links().collect();
            for chunk in links.chunks(CHUNK) {
                let sql = format!(
                    "INSERT INTO links (connection, worker_id, target_id, user_name, origin, linked_at) VALUES {} \
                     ON CONFLICT (connection, worker_id) DO UPDATE SET target_id = excluded.target_id, \
                     user_name = excluded.user_name, origin = excluded.origin, linked_at = excluded.linked_at",
                    self.placeholders(chunk.len(), 6)
                );
                let mut q = sqlx::query(&sql);
                for l in chunk {
                    q = q
                        .bind(&l.connection)
                        .bind(&l.worker_id)
                        .bind(&l.target_id)
                        .bind(&l.user_name)
                        .bind(&l.origin)
                        .bind(&l.linked_at);
                }
                if let Err(e) = q.execute(&mut *tx).await {
                    // One account per worker: said in a person's words (the caller writes
                    // parts one by one after this, so a part names its own account).
                    if e.as_database_error().is_some_and(|d| d.is_unique_violation()) {
                        let names: Vec<String> =
                            chunk.iter().map(|l| format!("{:?} for worker {}", l.user_name, l.worker_id)).collect();
                        return Err(StoreError::Invalid(format!(
                            "not linked: the account {} is linked to another worker already (two workers matched \
                             one account); correct the address in HR",
                            names.join(", ")
                        )));
                    }
                    return Err(e.into());
                }
            }
            let audit: Vec<&AuditEntry> = o.audit().collect();
            if !audit.is_empty() {
                if self.backend == crate::Backend::Postgres {
                    // Appenders take turns (held to the commit): the last record read next is the
                    // last one written, whichever node wrote it.
                    sqlx::query("SELECT id FROM audit_writer WHERE id = 1 FOR UPDATE").fetch_optional(&mut *tx).await?;
                }
                let last =
                    sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetch_optional(&mut *tx).await?;
                let (mut seq, mut prev): (i64, String) = match last {
                    Some(r) => (r.try_get("seq")?, r.try_get("hash")?),
                    None => (0, String::new()),
                };
                for chunk in audit.chunks(CHUNK) {
                    let sql = format!(
                        "INSERT INTO audit (seq, at, run_id, connection, worker_id, action, outcome, detail, prev_hash, \
                         hash) VALUES {}",
                        self.placeholders(chunk.len(), 10)
                    );
                    let mut q = sqlx::query(&sql);
                    for e in chunk {
                        seq += 1;
                        let hash = audit_hash(&prev, seq, &t, e);
                        q = q
                            .bind(seq)
                            .bind(t.clone())
                            .bind(e.run_id.clone())
                            .bind(e.connection.clone())
                            .bind(e.worker_id.clone())
                            .bind(e.action.clone())
                            .bind(e.outcome.clone())
                            .bind(e.detail.clone())
                            .bind(prev.clone())
                            .bind(hash.clone());
                        prev = hash;
                    }
                    q.execute(&mut *tx).await?;
                }
                // Kept apart from the chain's table: a cut at the end leaves it ahead.
                sqlx::query(
                    "INSERT INTO audit_heads (id, seq, hash) VALUES (1, $1, $2) ON CONFLICT (id) DO UPDATE SET seq = \
                     excluded.seq, hash = excluded.hash WHERE excluded.seq > audit_heads.seq",
                )
                .bind(seq)
                .bind(prev.clone())
                .execute(&mut *tx)
                .await?;
                return Ok(Some((seq, prev)));
            }
            Ok(None)
        })
        .await
        .map(|head| {
            if let Some((seq, hash)) = head {
                tracing::info!(target: "tenure::audit", seq, hash = %hash, "audit head");
                self.note_audit_head(seq, &hash);
            }
        })
    }

    /// How many audit records each (run, worker, action) of these runs has: recovery does
    /// not record twice what a run wrote before it stopped.
    pub async fn audited_in_runs(
        &self,
        runs: &[String],
    ) -> Result<std::collections::HashMap<(String, String, String), usize>, StoreError> {
        let mut out = std::collections::HashMap::new();
        for chunk in runs.chunks(CHUNK) {
            let sql = format!(
                "SELECT run_id, worker_id, action, COUNT(*) AS n FROM audit WHERE run_id IN ({}) \
                 GROUP BY run_id, worker_id, action",
                self.list(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for r in chunk {
                q = q.bind(r);
            }
            for r in q.fetch_all(&self.pool).await? {
                let n: i64 = r.try_get("n")?;
                out.insert((r.try_get("run_id")?, r.try_get("worker_id")?, r.try_get("action")?), n as usize);
            }
        }
        Ok(out)
    }

    pub async fn start_run(
        &self,
        id: &str,
        connection: &str,
        started_by: &str,
        as_of: Option<&str>,
    ) -> Result<(), StoreError> {
        let t = now();
        // Fenced like every write of the run, and kept with the epoch it runs under.
        self.write_tx(async |tx| {
            sqlx::query(
                "INSERT INTO runs (id, connection, started_at, started_by, progress_done, progress_total, \
                 progress_at, as_of, epoch) VALUES ($1, $2, $3, $4, 0, 0, $3, $5, $6)",
            )
            .bind(id)
            .bind(connection)
            .bind(&t)
            .bind(started_by)
            .bind(as_of)
            .bind(self.epoch())
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
        .await
    }

    /// A run a guard refused: kept beside the others (started and finished at once, nothing
    /// applied), with why in its summary, so the history shows every attempt.
    pub async fn record_refused_run(
        &self,
        id: &str,
        connection: &str,
        started_by: &str,
        as_of: Option<&str>,
        summary: &str,
    ) -> Result<(), StoreError> {
        let t = now();
        sqlx::query(
            "INSERT INTO runs (id, connection, started_at, finished_at, summary, started_by, as_of) \
             VALUES ($1, $2, $3, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(connection)
        .bind(&t)
        .bind(summary)
        .bind(started_by)
        .bind(as_of)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How far a running run got: every process's live view of it (and its heartbeat).
    pub async fn run_progress(&self, id: &str, done: i64, total: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE runs SET progress_done = $1, progress_total = $2, progress_at = $3 WHERE id = $4 AND finished_at IS NULL",
        )
        .bind(done)
        .bind(total)
        .bind(now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A run's bookkeeping, in one transaction: its record finished with its summary, the
    /// dead-letter attempts, the reviews it carried out and the HR events it settled. A kill
    /// leaves all of it or none (and then the run reads as not finished).
    pub async fn finish_run_with(&self, after: &AfterRun<'_>) -> Result<Vec<String>, StoreError> {
        self.write_tx(async |tx| {
            sqlx::query("UPDATE runs SET finished_at = $1, summary = $2 WHERE id = $3")
                .bind(now())
                .bind(after.summary)
                .bind(after.run_id)
                .execute(&mut *tx)
                .await?;
            let newly_dead =
                Self::record_attempts_in(tx, after.connection, after.failed, after.succeeded, after.dead_after).await?;
            Self::mark_reviews_applied_in(tx, after.reviews_applied).await?;
            match &after.events {
                EventsDone::None => {}
                EventsDone::These(ids) => {
                    self.set_events_state_in(tx, ids, crate::EventState::Pending, crate::EventState::Done).await?;
                }
                EventsDone::DueFromLoads { due_by, loads, except } => {
                    self.set_due_events_done_in(tx, *due_by, loads, except).await?;
                }
            }
            Ok(newly_dead)
        })
        .await
    }

    pub async fn finish_run(&self, id: &str, summary: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE runs SET finished_at = $1, summary = $2 WHERE id = $3")
            .bind(now())
            .bind(summary)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Audit records, oldest first; of one worker when given.
    pub async fn audit(&self, worker: Option<&str>) -> Result<Vec<AuditRecord>, StoreError> {
        let sql = "SELECT seq, at, run_id, connection, worker_id, action, outcome, detail, prev_hash, hash FROM audit";
        let rows = match worker {
            Some(w) => {
                sqlx::query(&format!("{sql} WHERE worker_id = $1 ORDER BY seq")).bind(w).fetch_all(&self.pool).await?
            }
            None => sqlx::query(&format!("{sql} ORDER BY seq")).fetch_all(&self.pool).await?,
        };
        rows.iter().map(audit_record).collect::<Result<_, _>>().map_err(Into::into)
    }

    /// Audit records of a run, or between two moments (RFC 3339 text, compared as stored: the
    /// caller narrows to the exact instant), oldest first.
    pub async fn audit_where(
        &self,
        since: Option<&str>,
        until: Option<&str>,
        run: Option<&str>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut conds = vec![];
        let mut binds: Vec<&str> = vec![];
        for (col, op, v) in [("at", ">=", since), ("at", "<=", until), ("run_id", "=", run)] {
            if let Some(v) = v {
                binds.push(v);
                conds.push(format!("{col} {op} ${}", binds.len()));
            }
        }
        let cond = if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) };
        let sql = format!(
            "SELECT seq, at, run_id, connection, worker_id, action, outcome, detail, prev_hash, hash FROM audit{cond} \
             ORDER BY seq"
        );
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(b);
        }
        q.fetch_all(&self.pool).await?.iter().map(audit_record).collect::<Result<_, _>>().map_err(Into::into)
    }

    /// Runs, newest first: (id, connection, started, finished, summary JSON).
    pub async fn runs(&self, connection: Option<&str>, limit: i64) -> Result<Vec<RunRecord>, StoreError> {
        let rows = match connection {
            Some(c) => {
                let sql =
                    format!("SELECT {RUN_COLUMNS} FROM runs WHERE connection = $1 ORDER BY started_at DESC LIMIT $2");
                sqlx::query(&sql).bind(c).bind(limit).fetch_all(&self.pool).await?
            }
            None => {
                let sql = format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY started_at DESC LIMIT $1");
                sqlx::query(&sql).bind(limit).fetch_all(&self.pool).await?
            }
        };
        rows.iter().map(run_record).collect::<Result<_, _>>().map_err(Into::into)
    }

    pub async fn run(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        let r = sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        r.as_ref().map(run_record).transpose().map_err(Into::into)
    }

    /// One page of audit records, newest first, and how many the filter holds in all: the
    /// filter is SQL, so a page of a long audit reads only its own records.
    pub async fn audit_page(
        &self,
        f: &AuditFilter,
        limit: i64,
        offset: i64,
    ) -> Result<(i64, Vec<AuditRecord>), StoreError> {
        let mut conds: Vec<String> = vec![];
        let mut binds: Vec<String> = vec![];
        let mut bind = |conds: &mut Vec<String>, sql: &str, v: String| {
            binds.push(v);
            conds.push(sql.replace('?', &format!("${}", binds.len())));
        };
        if let Some(v) = &f.since {
            bind(&mut conds, "at >= ?", v.clone());
        }
        if let Some(v) = &f.before {
            bind(&mut conds, "at < ?", v.clone());
        }
        if let Some(v) = &f.worker {
            bind(&mut conds, "worker_id = ?", v.clone());
        }
        if let Some(v) = &f.connection {
            bind(&mut conds, "connection = ?", v.clone());
        }
        if let Some(v) = &f.action {
            bind(&mut conds, "action = ?", v.clone());
        }
        if let Some(v) = &f.run {
            bind(&mut conds, "run_id = ?", v.clone());
        }
        if let Some(v) = &f.detail_holds {
            // Escaped: what is looked for is text, never a pattern.
            let escaped = v.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            bind(&mut conds, "detail LIKE ? ESCAPE '\\'", format!("%{escaped}%"));
        }
        if let Some((actions, within)) = &f.actions {
            // tenure's own action names, never input: written into the query.
            let list: Vec<String> = actions.iter().map(|a| format!("'{}'", a.replace('\'', ""))).collect();
            conds.push(format!("action {} ({})", if *within { "IN" } else { "NOT IN" }, list.join(", ")));
        }
        let cond = if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) };
        let count_sql = format!("SELECT COUNT(*) AS n FROM audit{cond}");
        let mut count = sqlx::query(&count_sql);
        for b in &binds {
            count = count.bind(b);
        }
        let total: i64 = count.fetch_one(&self.pool).await?.try_get("n")?;
        let sql = format!(
            "SELECT seq, at, run_id, connection, worker_id, action, outcome, detail, prev_hash, hash FROM audit{cond} \
             ORDER BY seq DESC LIMIT {} OFFSET {}",
            limit.max(0),
            offset.max(0)
        );
        let mut q = sqlx::query(&sql);
        for b in &binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(&self.pool).await?.iter().map(audit_record).collect::<Result<_, _>>()?;
        Ok((total, rows))
    }

    /// The chain's head: the last record's number and hash.
    pub async fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        let r = sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetch_optional(&self.pool).await?;
        Ok(match r {
            Some(r) => Some((r.try_get("seq")?, r.try_get("hash")?)),
            None => None,
        })
    }

    /// The hash of record `seq`, when the chain holds it.
    pub async fn audit_record_hash(&self, seq: i64) -> Result<Option<String>, StoreError> {
        let r = sqlx::query("SELECT hash FROM audit WHERE seq = $1").bind(seq).fetch_optional(&self.pool).await?;
        Ok(r.map(|r| r.try_get("hash")).transpose()?)
    }

    /// Checks the whole chain; the first broken record, if any, and why.
    pub async fn verify_audit(&self) -> Result<(usize, Option<(i64, String)>), StoreError> {
        let all = self.audit(None).await?;
        let mut prev = String::new();
        for (i, r) in all.iter().enumerate() {
            if r.seq != i as i64 + 1 {
                return Ok((all.len(), Some((r.seq, format!("record {} is missing", i + 1)))));
            }
            if r.prev_hash != prev {
                return Ok((all.len(), Some((r.seq, "it does not follow the record before it".into()))));
            }
            if audit_hash(&prev, r.seq, &r.at, &r.entry) != r.hash {
                return Ok((all.len(), Some((r.seq, "its content does not match its hash".into()))));
            }
            prev = r.hash.clone();
        }
        Ok((all.len(), None))
    }
}
