//! Reviews (supervised mode: a worker's actions wait for a reviewer) and dead letters (a
//! worker's actions that kept failing, set aside for the admin).

use crate::{now, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;

/// Where a review stands: waiting for a reviewer, decided, overtaken by a newer plan for its
/// worker, or carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReviewState {
    Pending,
    Approved,
    Rejected,
    Superseded,
    Applied,
}

impl ReviewState {
    /// The open ones: waiting, or decided and not yet carried out.
    pub const OPEN: [ReviewState; 3] = [ReviewState::Pending, ReviewState::Approved, ReviewState::Rejected];

    pub fn as_str(self) -> &'static str {
        match self {
            ReviewState::Pending => "pending",
            ReviewState::Approved => "approved",
            ReviewState::Rejected => "rejected",
            ReviewState::Superseded => "superseded",
            ReviewState::Applied => "applied",
        }
    }

    pub fn parse(s: &str) -> Option<ReviewState> {
        [Self::Pending, Self::Approved, Self::Rejected, Self::Superseded, Self::Applied]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

impl std::fmt::Display for ReviewState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// A dead letter's state: still retried at each run, or set aside for the admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LetterState {
    Retrying,
    Dead,
}

impl LetterState {
    pub fn as_str(self) -> &'static str {
        match self {
            LetterState::Retrying => "retrying",
            LetterState::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<LetterState> {
        [Self::Retrying, Self::Dead].into_iter().find(|x| x.as_str() == s)
    }
}

impl std::fmt::Display for LetterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// A state column read back: a value tenure never writes is a decode error naming it.
fn state_of<T>(r: &AnyRow, parse: fn(&str) -> Option<T>) -> Result<T, sqlx::Error> {
    let s: String = r.try_get("state")?;
    parse(&s).ok_or_else(|| sqlx::Error::Decode(format!("unknown state {s:?}").into()))
}

#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    pub id: i64,
    pub connection: String,
    pub worker_id: String,
    pub stage: String,
    pub fingerprint: String,
    /// The actions reviewed, as JSON.
    pub actions: String,
    pub state: ReviewState,
    pub requested_at: String,
    pub decided_at: Option<String>,
    pub decided_by: Option<String>,
    pub note: Option<String>,
    /// The person who started the run that opened it, when known (maker-checker).
    pub proposed_by: Option<String>,
    /// The person who uploaded the HR data it acts on, when a person did (maker-checker).
    pub uploaded_by: Option<String>,
    /// Who or what started the run that opened it (a person, the scheduler, the command line).
    pub started_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub connection: String,
    pub worker_id: String,
    pub fingerprint: String,
    pub actions: String,
    pub attempts: i64,
    pub last_error: String,
    pub state: LetterState,
    pub first_at: String,
    pub last_at: String,
}

fn review(r: &AnyRow) -> Result<Review, sqlx::Error> {
    Ok(Review {
        id: r.try_get("id")?,
        connection: r.try_get("connection")?,
        worker_id: r.try_get("worker_id")?,
        stage: r.try_get("stage")?,
        fingerprint: r.try_get("fingerprint")?,
        actions: r.try_get("actions")?,
        state: state_of(r, ReviewState::parse)?,
        requested_at: r.try_get("requested_at")?,
        decided_at: r.try_get("decided_at")?,
        decided_by: r.try_get("decided_by")?,
        note: r.try_get("note")?,
        proposed_by: r.try_get("proposed_by")?,
        uploaded_by: r.try_get("uploaded_by")?,
        started_by: r.try_get("started_by")?,
    })
}

fn dead_letter(r: &AnyRow) -> Result<DeadLetter, sqlx::Error> {
    Ok(DeadLetter {
        connection: r.try_get("connection")?,
        worker_id: r.try_get("worker_id")?,
        fingerprint: r.try_get("fingerprint")?,
        actions: r.try_get("actions")?,
        attempts: r.try_get("attempts")?,
        last_error: r.try_get("last_error")?,
        state: state_of(r, LetterState::parse)?,
        first_at: r.try_get("first_at")?,
        last_at: r.try_get("last_at")?,
    })
}

const REVIEW_COLUMNS: &str =
    "id, connection, worker_id, stage, fingerprint, actions, state, requested_at, decided_at, decided_by, note, proposed_by, uploaded_by, started_by";

/// A review request to open: (worker, stage, fingerprint, actions).
pub type ReviewRequest = (String, String, String, String);

impl Store {
    /// Reviews of a connection (every connection when None) in the given states (all when
    /// empty), oldest first. The filter is the query's: decided reviews pile up for years.
    pub async fn reviews(&self, connection: Option<&str>, states: &[ReviewState]) -> Result<Vec<Review>, StoreError> {
        let mut conds = vec![];
        if connection.is_some() {
            conds.push(format!("connection = {}", self.list(1, 1)));
        }
        if !states.is_empty() {
            // The states are tenure's own words, never input: written into the query.
            let list: Vec<String> = states.iter().map(|s| format!("'{}'", s.as_str())).collect();
            conds.push(format!("state IN ({})", list.join(", ")));
        }
        let cond = if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) };
        let sql = format!("SELECT {REVIEW_COLUMNS} FROM reviews{cond} ORDER BY id");
        let mut q = sqlx::query(&sql);
        if let Some(c) = connection {
            q = q.bind(c);
        }
        let rows = q.fetch_all(&self.pool).await?;
        Ok(rows.iter().map(review).collect::<Result<_, _>>()?)
    }

    /// Brings a connection's open reviews in line with the plan just made, in one transaction:
    /// a pending or approved review whose worker now wants other actions (or none) is
    /// superseded, and a request not yet open is opened as pending. Returns the reviews of
    /// this plan (the kept and the new) and the ids of the new ones.
    pub async fn sync_reviews(
        &self,
        connection: &str,
        wanted: &[ReviewRequest],
        proposed_by: Option<&str>,
        started_by: &str,
    ) -> Result<(Vec<Review>, Vec<i64>), StoreError> {
        self.write_tx(async |tx| {
            let rows = sqlx::query(&format!(
                "SELECT {REVIEW_COLUMNS} FROM reviews WHERE connection = $1 AND state IN ('pending', 'approved', 'rejected')"
            ))
            .bind(connection)
            .fetch_all(&mut *tx)
            .await?;
            let open: Vec<Review> = rows.iter().map(review).collect::<Result<_, _>>()?;
            let t = now();
            for r in &open {
                let still = wanted.iter().any(|(w, _, f, _)| *w == r.worker_id && *f == r.fingerprint);
                // A rejection stays on record while the same actions are proposed; anything else
                // the plan no longer proposes is superseded.
                if !still {
                    sqlx::query("UPDATE reviews SET state = 'superseded', decided_at = $1 WHERE id = $2")
                        .bind(&t)
                        .bind(r.id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            let next: i64 =
                sqlx::query("SELECT COALESCE(MAX(id), 0) AS n FROM reviews").fetch_one(&mut *tx).await?.try_get("n")?;
            let mut next = next + 1;
            let mut out = vec![];
            let mut new = vec![];
            for (w, stage, f, actions) in wanted {
                if let Some(r) = open.iter().find(|r| r.worker_id == *w && r.fingerprint == *f) {
                    out.push(r.clone());
                    continue;
                }
                // Whoever uploaded the load that last changed this worker set the change in motion too.
                let uploaded_by: Option<String> = sqlx::query(
                    "SELECT l.uploaded_by FROM hr_workers w JOIN hr_loads l ON l.id = w.load_id WHERE w.worker_id = $1",
                )
                .bind(w)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("uploaded_by"))
                .transpose()?
                .flatten();
                sqlx::query(
                    "INSERT INTO reviews (id, connection, worker_id, stage, fingerprint, actions, state, requested_at, \
                     proposed_by, uploaded_by, started_by) VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $10)",
                )
                .bind(next)
                .bind(connection)
                .bind(w)
                .bind(stage)
                .bind(f)
                .bind(actions)
                .bind(&t)
                .bind(proposed_by)
                .bind(uploaded_by.clone())
                .bind(started_by)
                .execute(&mut *tx)
                .await?;
                out.push(Review {
                    id: next,
                    connection: connection.into(),
                    worker_id: w.clone(),
                    stage: stage.clone(),
                    fingerprint: f.clone(),
                    actions: actions.clone(),
                    state: ReviewState::Pending,
                    requested_at: t.clone(),
                    decided_at: None,
                    decided_by: None,
                    note: None,
                    proposed_by: proposed_by.map(str::to_string),
                    uploaded_by,
                    started_by: Some(started_by.to_string()),
                });
                new.push(next);
                next += 1;
            }
            Ok((out, new))
        })
        .await
    }

    /// A reviewer's decision on pending reviews (all pending ones when `ids` is empty, within
    /// `connection` when given). Returns the reviews decided, as stored after the decision;
    /// ids not pending are an error naming them, and then nothing is decided.
    pub async fn decide_reviews(
        &self,
        ids: &[i64],
        connection: Option<&str>,
        approve: bool,
        by: &str,
        note: Option<&str>,
    ) -> Result<Vec<Review>, StoreError> {
        let pending = self.reviews(connection, &[ReviewState::Pending]).await?;
        let chosen: Vec<Review> = if ids.is_empty() {
            pending
        } else {
            let missing: Vec<String> =
                ids.iter().filter(|i| !pending.iter().any(|r| r.id == **i)).map(|i| i.to_string()).collect();
            if !missing.is_empty() {
                return Err(StoreError::Invalid(format!(
                    "no pending review {} (see `tenure reviews`); nothing was decided",
                    missing.join(", ")
                )));
            }
            pending.into_iter().filter(|r| ids.contains(&r.id)).collect()
        };
        self.write_tx(async |tx| {
            let t = now();
            let state = if approve { ReviewState::Approved } else { ReviewState::Rejected };
            let mut chosen = chosen;
            for r in &mut chosen {
                sqlx::query(
                    "UPDATE reviews SET state = $1, decided_at = $2, decided_by = $3, note = $4 WHERE id = $5 AND state = 'pending'",
                )
                .bind(state.as_str())
                .bind(&t)
                .bind(by)
                .bind(note)
                .bind(r.id)
                .execute(&mut *tx)
                .await?;
                // Returned as now stored.
                r.state = state;
                r.decided_at = Some(t.clone());
                r.decided_by = Some(by.into());
                r.note = note.map(str::to_string);
            }
            Ok(chosen)
        })
        .await
    }

    /// Approved reviews whose actions were carried out.
    pub async fn mark_reviews_applied(&self, ids: &[i64]) -> Result<(), StoreError> {
        self.write_tx(async |tx| Self::mark_reviews_applied_in(tx, ids).await).await
    }

    pub(crate) async fn mark_reviews_applied_in(tx: &mut sqlx::AnyConnection, ids: &[i64]) -> Result<(), StoreError> {
        for id in ids {
            sqlx::query("UPDATE reviews SET state = 'applied' WHERE id = $1 AND state = 'approved'")
                .bind(*id)
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }

    /// Replaces a connection's holds with these (worker, reason); a hold that stays keeps its
    /// `since`. The workers held now that were not held before.
    pub async fn replace_holds(&self, connection: &str, holds: &[(String, String)]) -> Result<Vec<String>, StoreError> {
        self.write_tx(async |tx| {
            let before: std::collections::HashMap<String, String> =
                sqlx::query("SELECT worker_id, since FROM holds WHERE connection = $1")
                    .bind(connection)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(|r| Ok((r.try_get("worker_id")?, r.try_get("since")?)))
                    .collect::<Result<_, sqlx::Error>>()?;
            sqlx::query("DELETE FROM holds WHERE connection = $1").bind(connection).execute(&mut *tx).await?;
            let t = now();
            let mut new = vec![];
            for (worker, reason) in holds {
                if !before.contains_key(worker) {
                    new.push(worker.clone());
                }
                sqlx::query("INSERT INTO holds (connection, worker_id, reason, since) VALUES ($1, $2, $3, $4)")
                    .bind(connection)
                    .bind(worker)
                    .bind(reason)
                    .bind(before.get(worker).unwrap_or(&t))
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(new)
        })
        .await
    }

    /// Held workers: (connection, worker, reason, since).
    pub async fn holds(&self, connection: Option<&str>) -> Result<Vec<(String, String, String, String)>, StoreError> {
        let rows = sqlx::query("SELECT connection, worker_id, reason, since FROM holds ORDER BY connection, worker_id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("connection")?, r.try_get("worker_id")?, r.try_get("reason")?, r.try_get("since")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map(|v| {
                v.into_iter()
                    .filter(|h: &(String, String, String, String)| connection.is_none_or(|c| h.0 == c))
                    .collect()
            })
            .map_err(Into::into)
    }

    pub async fn dead_letters(&self, connection: Option<&str>) -> Result<Vec<DeadLetter>, StoreError> {
        let rows = sqlx::query(
            "SELECT connection, worker_id, fingerprint, actions, attempts, last_error, state, first_at, last_at \
             FROM dead_letters ORDER BY connection, worker_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let all: Vec<DeadLetter> = rows.iter().map(dead_letter).collect::<Result<_, _>>()?;
        Ok(all.into_iter().filter(|d| connection.is_none_or(|c| d.connection == c)).collect())
    }

    /// Records a run's failures and successes: a worker that failed again with the same
    /// actions counts one more attempt (dead at `dead_after`), with new actions starts at one;
    /// a worker that succeeded is cleared. Returns the workers that became dead letters now.
    pub async fn record_attempts(
        &self,
        connection: &str,
        failed: &[(String, String, String, String)],
        succeeded: &[String],
        dead_after: i64,
    ) -> Result<Vec<String>, StoreError> {
        self.write_tx(async |tx| Self::record_attempts_in(tx, connection, failed, succeeded, dead_after).await).await
    }

    /// `record_attempts` inside a transaction the caller holds.
    pub(crate) async fn record_attempts_in(
        tx: &mut sqlx::AnyConnection,
        connection: &str,
        failed: &[(String, String, String, String)],
        succeeded: &[String],
        dead_after: i64,
    ) -> Result<Vec<String>, StoreError> {
        let known: Vec<DeadLetter> = sqlx::query(
            "SELECT connection, worker_id, fingerprint, actions, attempts, last_error, state, first_at, last_at \
             FROM dead_letters WHERE connection = $1 ORDER BY worker_id",
        )
        .bind(connection)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(dead_letter)
        .collect::<Result<_, _>>()?;
        {
            let t = now();
            let mut newly_dead = vec![];
            for (worker, fingerprint, actions, error) in failed {
                let prev = known.iter().find(|d| d.worker_id == *worker);
                let attempts = match prev {
                    Some(d) if d.fingerprint == *fingerprint => d.attempts + 1,
                    _ => 1,
                };
                let state = if attempts >= dead_after { LetterState::Dead } else { LetterState::Retrying };
                if state == LetterState::Dead && prev.is_none_or(|d| d.state != LetterState::Dead) {
                    newly_dead.push(worker.clone());
                }
                let first =
                    prev.filter(|d| d.fingerprint == *fingerprint).map(|d| d.first_at.clone()).unwrap_or(t.clone());
                sqlx::query("DELETE FROM dead_letters WHERE connection = $1 AND worker_id = $2")
                    .bind(connection)
                    .bind(worker)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO dead_letters (connection, worker_id, fingerprint, actions, attempts, last_error, state, \
                     first_at, last_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(connection)
                .bind(worker)
                .bind(fingerprint)
                .bind(actions)
                .bind(attempts)
                .bind(error)
                .bind(state.as_str())
                .bind(first)
                .bind(&t)
                .execute(&mut *tx)
                .await?;
            }
            for w in succeeded.iter().filter(|w| known.iter().any(|d| d.worker_id == **w)) {
                sqlx::query("DELETE FROM dead_letters WHERE connection = $1 AND worker_id = $2")
                    .bind(connection)
                    .bind(w)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(newly_dead)
        }
    }

    /// Puts dead letters back in play (all of a connection's when `workers` is empty):
    /// the next run tries them again, with a fresh count of attempts.
    pub async fn retry_dead_letters(&self, connection: Option<&str>, workers: &[String]) -> Result<usize, StoreError> {
        let dead: Vec<DeadLetter> = self
            .dead_letters(connection)
            .await?
            .into_iter()
            .filter(|d| d.state == LetterState::Dead && (workers.is_empty() || workers.contains(&d.worker_id)))
            .collect();
        if !workers.is_empty() && dead.len() < workers.len() {
            let missing: Vec<&str> =
                workers.iter().filter(|w| !dead.iter().any(|d| d.worker_id == **w)).map(String::as_str).collect();
            return Err(StoreError::Invalid(format!(
                "no dead letter for worker {}; nothing was changed",
                missing.join(", ")
            )));
        }
        self.write_tx(async |tx| {
            for d in &dead {
                sqlx::query("DELETE FROM dead_letters WHERE connection = $1 AND worker_id = $2")
                    .bind(&d.connection)
                    .bind(&d.worker_id)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(dead.len())
        })
        .await
    }
}
