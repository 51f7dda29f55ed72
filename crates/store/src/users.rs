//! Platform users and API tokens: rows only. Hashing, roles and what each may do live in
//! the binary's use cases; nothing here ever sees a password or a token secret.

use crate::{now, Store, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub id: String,
    pub name: String,
    pub role: String,
    pub password_hash: String,
    pub must_change: bool,
    pub disabled: bool,
    pub created_at: String,
    pub credentials_at: String,
    /// `<issuer> <subject>` for a person who signs in through the identity provider (no
    /// password of theirs is kept); None for a local account.
    pub idp_subject: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub role: String,
    pub connection: Option<String>,
    pub secret_hash: String,
    pub created_at: String,
    pub created_by: Option<String>,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    /// The platform user it acts for (its rights are at most theirs); None: made at the
    /// command line by the machine's operator.
    pub maker: Option<String>,
    /// Only reading routes (GET), whatever its role.
    pub read_only: bool,
}

/// A signed-in session as its person sees it (never its id: only the id's hash is kept).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub id_hash: String,
    pub created_ms: i64,
    pub last_seen_ms: i64,
    /// The client's address at sign-in, and its user agent, when known.
    pub address: Option<String>,
    pub agent: Option<String>,
}

/// A token with the platform user it acts for, as a bearer check needs them.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenAndMaker {
    pub token: TokenRecord,
    /// None when the token has no maker, or its maker is gone.
    pub maker: Option<UserRecord>,
}

const USER: &str = "id, name, role, password_hash, must_change, disabled, created_at, credentials_at, idp_subject";
const TOKEN: &str =
    "id, name, role, connection, secret_hash, created_at, created_by, expires_at, last_used_at, revoked_at, maker, \
     read_only";

fn user(r: &AnyRow) -> Result<UserRecord, sqlx::Error> {
    Ok(UserRecord {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        role: r.try_get("role")?,
        password_hash: r.try_get("password_hash")?,
        must_change: r.try_get::<i64, _>("must_change")? != 0,
        disabled: r.try_get::<i64, _>("disabled")? != 0,
        created_at: r.try_get("created_at")?,
        credentials_at: r.try_get("credentials_at")?,
        idp_subject: r.try_get("idp_subject")?,
    })
}

fn token(r: &AnyRow) -> Result<TokenRecord, sqlx::Error> {
    Ok(TokenRecord {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        role: r.try_get("role")?,
        connection: r.try_get("connection")?,
        secret_hash: r.try_get("secret_hash")?,
        created_at: r.try_get("created_at")?,
        created_by: r.try_get("created_by")?,
        expires_at: r.try_get("expires_at")?,
        last_used_at: r.try_get("last_used_at")?,
        revoked_at: r.try_get("revoked_at")?,
        maker: r.try_get("maker")?,
        read_only: r.try_get::<i64, _>("read_only")? != 0,
    })
}

impl Store {
    /// A new user; `StoreError::Duplicate` when the name (ignoring case) is taken.
    pub async fn add_user(
        &self,
        name: &str,
        role: &str,
        password_hash: &str,
        must_change: bool,
    ) -> Result<UserRecord, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let at = now();
        let r = sqlx::query(
            "INSERT INTO platform_users (id, name, name_key, role, password_hash, must_change, disabled, created_at, \
             credentials_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7)",
        )
        .bind(&id)
        .bind(name)
        .bind(name.to_lowercase())
        .bind(role)
        .bind(password_hash)
        .bind(i64::from(must_change))
        .bind(&at)
        .execute(&self.pool)
        .await;
        match r {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::Duplicate(format!("a user named {name:?} exists already")))
            }
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        Ok(self.user(name).await?.expect("just written"))
    }

    pub async fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        let sql = format!("SELECT {USER} FROM platform_users WHERE name_key = $1");
        let r = sqlx::query(&sql).bind(name.to_lowercase()).fetch_optional(&self.pool).await?;
        Ok(r.as_ref().map(user).transpose()?)
    }

    pub async fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let sql = format!("SELECT {USER} FROM platform_users ORDER BY name_key");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(user).collect::<Result<_, _>>()?)
    }

    /// Changes a user's role; false when there is no such user.
    pub async fn set_user_role(&self, name: &str, role: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE platform_users SET role = $1 WHERE name_key = $2")
            .bind(role)
            .bind(name.to_lowercase())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Disables or enables a user; disabling voids their sessions.
    pub async fn set_user_disabled(&self, name: &str, disabled: bool) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE platform_users SET disabled = $1, credentials_at = $2 WHERE name_key = $3")
            .bind(i64::from(disabled))
            .bind(now())
            .bind(name.to_lowercase())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// A new password hash; its sessions are void from now.
    pub async fn set_user_password(&self, name: &str, hash: &str, must_change: bool) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE platform_users SET password_hash = $1, must_change = $2, credentials_at = $3 WHERE name_key = $4",
        )
        .bind(hash)
        .bind(i64::from(must_change))
        .bind(now())
        .bind(name.to_lowercase())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn add_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
        let sql =
            format!("INSERT INTO api_tokens ({TOKEN}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)");
        sqlx::query(&sql)
            .bind(&t.id)
            .bind(&t.name)
            .bind(&t.role)
            .bind(t.connection.clone())
            .bind(&t.secret_hash)
            .bind(&t.created_at)
            .bind(t.created_by.clone())
            .bind(t.expires_at.clone())
            .bind(t.last_used_at.clone())
            .bind(t.revoked_at.clone())
            .bind(t.maker.clone())
            .bind(t.read_only as i64)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let sql = format!("SELECT {TOKEN} FROM api_tokens ORDER BY created_at, id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(token).collect::<Result<_, _>>()?)
    }

    pub async fn token(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        let sql = format!("SELECT {TOKEN} FROM api_tokens WHERE id = $1");
        let r = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
        Ok(r.as_ref().map(token).transpose()?)
    }

    /// A token and the platform user it acts for (a bearer check per request).
    pub async fn token_and_maker(&self, id: &str) -> Result<Option<TokenAndMaker>, StoreError> {
        let Some(token) = self.token(id).await? else { return Ok(None) };
        let maker = match &token.maker {
            Some(m) => self.user(m).await?,
            None => None,
        };
        Ok(Some(TokenAndMaker { token, maker }))
    }

    /// Revokes a token; false when there is no such token or it was revoked already.
    pub async fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn touch_token(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        let sql = format!("SELECT {USER} FROM platform_users WHERE id = $1");
        let r = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
        Ok(r.as_ref().map(user).transpose()?)
    }

    /// The person the identity provider knows as `subject` (`<issuer> <sub>`), if they signed in before.
    pub async fn user_by_subject(&self, subject: &str) -> Result<Option<UserRecord>, StoreError> {
        let r = sqlx::query(&format!("SELECT {USER} FROM platform_users WHERE idp_subject = $1"))
            .bind(subject)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.as_ref().map(user).transpose()?)
    }

    /// A person at their first sign-in through the identity provider: no password (the hash
    /// is a word no password verifies against); `StoreError::Duplicate` when the name (ignoring
    /// case) or the subject is taken.
    pub async fn add_provider_user(&self, name: &str, role: &str, subject: &str) -> Result<UserRecord, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let at = now();
        let r = sqlx::query(
            "INSERT INTO platform_users (id, name, name_key, role, password_hash, must_change, disabled, created_at, \
             credentials_at, idp_subject) VALUES ($1, $2, $3, $4, 'signs-in-through-the-identity-provider', 0, 0, \
             $5, $5, $6)",
        )
        .bind(&id)
        .bind(name)
        .bind(name.to_lowercase())
        .bind(role)
        .bind(&at)
        .bind(subject)
        .execute(&self.pool)
        .await;
        match r {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::Duplicate(format!("a user named {name:?} exists already")))
            }
            r => {
                r?;
            }
        }
        self.user_by_id(&id).await?.ok_or_else(|| StoreError::NotFound(format!("user {name}")))
    }

    /// Records a sign-in sent to the identity provider (its state's hash), and forgets those
    /// older than `forget_before_ms` that never came back.
    pub async fn add_sign_in_flow(
        &self,
        state_hash: &str,
        now_ms: i64,
        forget_before_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sign_in_flows WHERE created_ms < $1")
            .bind(forget_before_ms)
            .execute(&self.pool)
            .await?;
        sqlx::query("INSERT INTO sign_in_flows (state_hash, created_ms) VALUES ($1, $2)")
            .bind(state_hash)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Takes a sign-in back from the identity provider: when it was sent, once only (a second
    /// take of the same state finds nothing, on any node).
    pub async fn take_sign_in_flow(&self, state_hash: &str) -> Result<Option<i64>, StoreError> {
        let r = sqlx::query("DELETE FROM sign_in_flows WHERE state_hash = $1 RETURNING created_ms")
            .bind(state_hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.map(|r| r.try_get::<i64, _>("created_ms")).transpose()?)
    }

    /// A new session (its id's hash) for a user, at `now_ms`, from the client's address and
    /// user agent.
    /// `pending`: 0 a session, 1 the password was right and the second factor is still to
    /// come, 2 a session that may only enrol a second factor.
    pub async fn add_session(
        &self,
        id_hash: &str,
        user_id: &str,
        now_ms: i64,
        address: Option<&str>,
        agent: Option<&str>,
        pending: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, created_ms, last_seen_ms, address, agent, pending) VALUES ($1, \
             $2, $3, $3, $4, $5, $6)",
        )
        .bind(id_hash)
        .bind(user_id)
        .bind(now_ms)
        .bind(address.map(str::to_string))
        .bind(agent.map(str::to_string))
        .bind(pending)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A session waiting for its second factor: (user id, created), when there is one.
    pub async fn pending_session(&self, id_hash: &str) -> Result<Option<(String, i64)>, StoreError> {
        let r = sqlx::query("SELECT user_id, created_ms FROM sessions WHERE id_hash = $1 AND pending = 1")
            .bind(id_hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.map(|r| Ok::<_, sqlx::Error>((r.try_get("user_id")?, r.try_get("created_ms")?))).transpose()?)
    }

    /// A session by its id's hash: (user id, created, last seen), in Unix milliseconds.
    pub async fn session(&self, id_hash: &str) -> Result<Option<(String, i64, i64)>, StoreError> {
        Ok(self.session_state(id_hash).await?.map(|(u, c, s, _)| (u, c, s)))
    }

    /// As `session`, and whether it may only enrol a second factor (one is required and its
    /// user has none yet). A session still waiting for its second factor is no session yet.
    pub async fn session_state(&self, id_hash: &str) -> Result<Option<(String, i64, i64, bool)>, StoreError> {
        let r = sqlx::query(
            "SELECT user_id, created_ms, last_seen_ms, pending FROM sessions WHERE id_hash = $1 AND pending <> 1",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(r.map(|r| {
            Ok::<_, sqlx::Error>((
                r.try_get("user_id")?,
                r.try_get("created_ms")?,
                r.try_get("last_seen_ms")?,
                r.try_get::<i64, _>("pending")? == 2,
            ))
        })
        .transpose()?)
    }

    /// A user's sessions that were made to enrol a second factor, free to do anything now
    /// (`free`), or every full session of theirs held to enrolment (a second factor has just
    /// been required and they have none).
    pub async fn sessions_enrol_only(&self, user_id: &str, free: bool) -> Result<(), StoreError> {
        let (from, to) = if free { (2, 0) } else { (0, 2) };
        sqlx::query("UPDATE sessions SET pending = $1 WHERE user_id = $2 AND pending = $3")
            .bind(to as i64)
            .bind(user_id)
            .bind(from as i64)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn touch_session(&self, id_hash: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_seen_ms = $1 WHERE id_hash = $2")
            .bind(now_ms)
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A user's sessions, newest first.
    pub async fn sessions_of(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id_hash, created_ms, last_seen_ms, address, agent FROM sessions WHERE user_id = $1 AND pending \
             <> 1 ORDER BY created_ms DESC, id_hash",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SessionRecord {
                    id_hash: r.try_get("id_hash")?,
                    created_ms: r.try_get("created_ms")?,
                    last_seen_ms: r.try_get("last_seen_ms")?,
                    address: r.try_get("address")?,
                    agent: r.try_get("agent")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Ends every session of a user; how many ended.
    pub async fn delete_sessions_of(&self, user_id: &str) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user_id).execute(&self.pool).await?;
        Ok(r.rows_affected())
    }

    /// Ends a user's other sessions, keeping `keep`; how many ended.
    pub async fn delete_sessions_except(&self, user_id: &str, keep: &str) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2")
            .bind(user_id)
            .bind(keep)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1").bind(id_hash).execute(&self.pool).await?;
        Ok(())
    }

    /// Forgets sessions idle since before `idle_before_ms` or made before `made_before_ms`.
    pub async fn prune_sessions(&self, idle_before_ms: i64, made_before_ms: i64) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM sessions WHERE last_seen_ms < $1 OR created_ms < $2")
            .bind(idle_before_ms)
            .bind(made_before_ms)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }
}

impl Store {
    /// Counts a sign-in attempt against `pair` (an account from an address) and `account`,
    /// unless the pair must still wait: Ok(Err(ms)) then, and nothing is counted. Failures
    /// older than `forget_ms` are forgotten. Checked and counted in one transaction, so that
    /// attempts on several nodes at once cannot all pass the check before any is counted.
    pub async fn throttle_attempt(
        &self,
        pair: &str,
        account: &str,
        now: i64,
        forget_ms: i64,
        wait_of: fn(i64) -> i64,
    ) -> Result<Result<(), i64>, StoreError> {
        let lock = if self.backend == crate::Backend::Postgres { " FOR UPDATE" } else { "" };
        self.write_tx(async |tx| {
            sqlx::query("DELETE FROM login_throttle WHERE last_ms < $1")
                .bind(now - forget_ms)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO login_throttle (key, failures, last_ms) VALUES ($1, 0, $2) ON CONFLICT (key) DO NOTHING",
            )
            .bind(pair)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let r = sqlx::query(&format!("SELECT failures, last_ms FROM login_throttle WHERE key = $1{lock}"))
                .bind(pair)
                .fetch_one(&mut *tx)
                .await?;
            let (failures, last): (i64, i64) = (r.try_get("failures")?, r.try_get("last_ms")?);
            let wait = last + wait_of(failures) - now;
            if wait > 0 {
                return Ok(Err(wait));
            }
            for key in [pair, account] {
                sqlx::query(
                    "INSERT INTO login_throttle (key, failures, last_ms) VALUES ($1, 1, $2) ON CONFLICT (key) DO \
                     UPDATE SET failures = login_throttle.failures + 1, last_ms = $2",
                )
                .bind(key)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            Ok(Ok(()))
        })
        .await
    }

    /// Failures counted against a key, not yet forgotten.
    pub async fn throttle_failures(&self, key: &str, now: i64, forget_ms: i64) -> Result<i64, StoreError> {
        let r = sqlx::query("SELECT failures FROM login_throttle WHERE key = $1 AND last_ms >= $2")
            .bind(key)
            .bind(now - forget_ms)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.map(|r| r.try_get("failures")).transpose()?.unwrap_or(0))
    }

    /// Forgets these keys' failures (every factor of a sign-in was right).
    pub async fn throttle_clear(&self, keys: &[&str]) -> Result<(), StoreError> {
        for k in keys {
            sqlx::query("DELETE FROM login_throttle WHERE key = $1").bind(k).execute(&self.pool).await?;
        }
        Ok(())
    }
}
