//! Platform users and API tokens: who may use tenure and as what. Four roles, as Hire2Retire
//! defines them: Viewer reads everything but secrets; Editor also writes roles, mappings and
//! connection settings, uploads HR data, plans and applies; Reviewer approves and rejects
//! reviews, retries dead letters and confirms a guarded run; Admin does all of it, plus users,
//! API tokens, connection tokens and hard deletes. Passwords are kept as argon2id hashes and
//! tokens as SHA-256 of their 256-bit secret; neither is ever stored or shown again.

use crate::error::{Error, Result};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use jiff::Timestamp;
use rand::RngCore;
use serde::Serialize;
use store::{Secret, Store, StoreError, TokenAndMaker, TokenRecord, UserRecord};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Editor,
    Reviewer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Reviewer => "reviewer",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Result<Role> {
        match s.to_ascii_lowercase().as_str() {
            "viewer" => Ok(Role::Viewer),
            "editor" => Ok(Role::Editor),
            "reviewer" => Ok(Role::Reviewer),
            "admin" => Ok(Role::Admin),
            other => Err(Error::refused(format!("{other:?} is not a role: admin, editor, reviewer or viewer"))),
        }
    }
}

/// The shortest password tenure takes.
pub const MIN_PASSWORD: usize = 12;
/// The longest (bytes): checked before any hashing, so a huge "password" costs nothing.
pub const MAX_PASSWORD: usize = 1024;

pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An argon2id hash (the crate's defaults: 19 MiB, 2 passes) in PHC form.
pub fn hash_password(password: &Secret) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::unavailable(e.to_string()))?;
    Argon2::default()
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::refused(format!("cannot hash the password: {e}")))
}

pub fn verify_password(password: &Secret, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.expose().as_bytes(), &h).is_ok())
}

/// Refuses a password too short, or the user's own name.
pub fn check_password(name: &str, password: &Secret) -> Result<()> {
    let p = password.expose();
    if p.chars().count() < MIN_PASSWORD {
        return Err(Error::refused(format!("a password needs at least {MIN_PASSWORD} characters")));
    }
    if p.len() > MAX_PASSWORD {
        return Err(Error::refused(format!("a password is at most {MAX_PASSWORD} bytes")));
    }
    if p.eq_ignore_ascii_case(name) {
        return Err(Error::refused("the password cannot be the user's name"));
    }
    Ok(())
}

/// A one-time password: 20 characters a person can type.
pub fn one_time_password() -> Secret {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut b = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut b);
    Secret::new(b.iter().map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char).collect::<String>())
}

pub async fn add_user(
    store: &Store,
    name: &str,
    role: Role,
    password: &Secret,
    must_change: bool,
) -> Result<UserRecord> {
    let existing = store.users().await?;
    if existing.iter().any(|u| u.name.eq_ignore_ascii_case(name)) {
        return Err(Error::conflict(format!("a user named {name:?} exists already")));
    }
    crate::names::check_new(crate::names::Kind::User, name, existing.iter().map(|u| u.name.as_str()))?;
    check_password(name, password)?;
    store.add_user(name, role.as_str(), &hash_password(password)?, must_change).await.map_err(|e| match e {
        StoreError::Duplicate(m) => Error::Conflict(m),
        e => e.into(),
    })
}

/// At the first start of the service, with no user yet: an Admin named `admin` with a
/// one-time password, returned to be shown once.
pub async fn first_admin(store: &Store) -> Result<Option<Secret>> {
    if !store.users().await?.is_empty() {
        return Ok(None);
    }
    let password = one_time_password();
    match add_user(store, "admin", Role::Admin, &password, true).await {
        Ok(_) => Ok(Some(password)),
        // Another node made it meanwhile.
        Err(_) if !store.users().await?.is_empty() => Ok(None),
        Err(e) => Err(e),
    }
}

/// A duration from now (`90d`, `12h`, `30m`: see `duration`), or an RFC 3339 moment still to come.
pub fn parse_expiry(s: &str, now: Timestamp) -> Result<Timestamp> {
    if let Ok(t) = s.parse::<Timestamp>() {
        if t <= now {
            return Err(Error::refused(format!("{s:?} has passed: a token's expiry is a moment to come")));
        }
        return Ok(t);
    }
    let d = crate::duration::parse(s).map_err(|e| Error::refused(format!("{e}, or an RFC 3339 moment")))?;
    let too_far = || Error::refused(format!("{s:?}: too far in the future"));
    let d = jiff::SignedDuration::try_from(d).map_err(|_| too_far())?;
    now.checked_add(d).map_err(|_| too_far())
}

/// A token as shown once: `tenure_<id>_<secret>`.
pub struct NewToken {
    pub record: TokenRecord,
    pub secret: Secret,
}

fn secret_hash(secret: &str) -> String {
    crate::intake::checksum(secret.as_bytes())
}

/// What a new API token is: its name and role, the one connection it may act on, when it
/// expires, whether it only reads, and the platform user it acts for.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub name: String,
    pub role: Role,
    pub connection: Option<String>,
    pub expires: Option<Timestamp>,
    pub read_only: bool,
    pub maker: Option<String>,
}

impl TokenSpec {
    pub fn new(name: &str, role: Role) -> TokenSpec {
        TokenSpec { name: name.to_string(), role, connection: None, expires: None, read_only: false, maker: None }
    }
}

pub async fn create_token(store: &Store, spec: TokenSpec, by: Option<String>) -> Result<NewToken> {
    let TokenSpec { name, role, connection, expires, read_only, maker } = spec;
    let name = name.as_str();
    let existing = store.tokens().await?;
    let live = existing.iter().filter(|t| t.revoked_at.is_none()).map(|t| t.name.as_str());
    crate::names::check_new(crate::names::Kind::Token, name, live)?;
    if let Some(c) = &connection {
        if store.connection(c).await?.is_none() {
            return Err(Error::not_found(format!("no connection named {c:?}")));
        }
    }
    let id = random_hex(6);
    let secret = random_hex(32);
    let record = TokenRecord {
        id: id.clone(),
        name: name.trim().to_string(),
        role: role.as_str().to_string(),
        connection,
        secret_hash: secret_hash(&secret),
        created_at: Timestamp::now().to_string(),
        created_by: by,
        expires_at: expires.map(|t| t.to_string()),
        last_used_at: None,
        revoked_at: None,
        maker,
        read_only,
    };
    store.add_token(&record).await?;
    Ok(NewToken { record, secret: Secret::new(format!("tenure_{id}_{secret}")) })
}

/// The token a bearer value names, with the platform user it acts for, if it is valid now
/// (not revoked, not expired), in one read; its last use is recorded. Nothing is kept between
/// requests: a revocation by any process holds for the next request.
pub async fn authenticate_token(store: &Store, bearer: &str, now: Timestamp) -> Result<Option<TokenAndMaker>> {
    let Some((id, secret)) = bearer.strip_prefix("tenure_").and_then(|r| r.split_once('_')) else { return Ok(None) };
    let Some(tm) = store.token_and_maker(id).await? else { return Ok(None) };
    let t = &tm.token;
    use subtle::ConstantTimeEq;
    let same: bool = secret_hash(secret).as_bytes().ct_eq(t.secret_hash.as_bytes()).into();
    let expired = t.expires_at.as_deref().and_then(|e| e.parse::<Timestamp>().ok()).is_some_and(|e| e <= now);
    if !same || t.revoked_at.is_some() || expired {
        return Ok(None);
    }
    // Its last use, to the minute: a script polling every second is not a store write each time.
    let stale = t
        .last_used_at
        .as_deref()
        .and_then(|u| u.parse::<Timestamp>().ok())
        .is_none_or(|u| now.duration_since(u) >= jiff::SignedDuration::from_secs(60) || u > now);
    if stale {
        store.touch_token(id).await?;
    }
    Ok(Some(tm))
}

/// A person who signs in through the identity provider has no password here to set.
fn provider_refused(u: &UserRecord) -> Result<()> {
    if u.idp_subject.is_some() {
        return Err(Error::refused(format!(
            "{} signs in through the identity provider: tenure keeps no password for them",
            u.name
        )));
    }
    Ok(())
}

fn missing(name: &str) -> Error {
    Error::not_found(format!("no user named {name:?}"))
}

/// The user administration use cases, each audited with who did it (the CLI and the API).
pub async fn add_audited(
    store: &Store,
    name: &str,
    role: Role,
    password: &Secret,
    once: bool,
    by: &str,
) -> Result<UserRecord> {
    let u = add_user(store, name, role, password, once).await?;
    crate::decisions::record_one(
        store,
        "user_add",
        "",
        by,
        serde_json::json!({"user": u.name, "role": role.as_str(), "one_time_password": once}),
    )
    .await?;
    Ok(u)
}

pub async fn set_role(store: &Store, name: &str, role: Role, by: &str) -> Result<()> {
    if !store.set_user_role(name, role.as_str()).await? {
        return Err(missing(name));
    }
    crate::decisions::record_one(
        store,
        "user_set_role",
        "",
        by,
        serde_json::json!({"user": name, "role": role.as_str()}),
    )
    .await
}

/// Disabling ends the user's sessions.
pub async fn set_disabled(store: &Store, name: &str, disabled: bool, by: &str) -> Result<()> {
    if !store.set_user_disabled(name, disabled).await? {
        return Err(missing(name));
    }
    let action = if disabled { "user_disable" } else { "user_enable" };
    crate::decisions::record_one(store, action, "", by, serde_json::json!({"user": name})).await
}

/// A new password (one-time when `once`): the user's sessions end.
pub async fn reset_password(store: &Store, name: &str, password: &Secret, once: bool, by: &str) -> Result<()> {
    let u = store.user(name).await?.ok_or_else(|| missing(name))?;
    provider_refused(&u)?;
    check_password(&u.name, password)?;
    store.set_user_password(&u.name, &hash_password(password)?, once).await?;
    crate::decisions::record_one(
        store,
        "user_reset_password",
        "",
        by,
        serde_json::json!({"user": u.name, "one_time_password": once}),
    )
    .await
}

pub async fn create_token_audited(store: &Store, spec: TokenSpec, by: &str) -> Result<NewToken> {
    let t = create_token(store, spec, Some(by.to_string())).await?;
    let r = &t.record;
    crate::decisions::record_one(
        store,
        "api_token_create",
        "",
        by,
        serde_json::json!({"token": r.id, "name": r.name, "role": r.role, "connection": r.connection,
            "expires_at": r.expires_at, "maker": r.maker, "read_only": r.read_only}),
    )
    .await?;
    Ok(t)
}

pub async fn revoke_token(store: &Store, id: &str, by: &str) -> Result<()> {
    if !store.revoke_token(id).await? {
        return Err(Error::not_found(format!("no active token {id}")));
    }
    crate::decisions::record_one(store, "api_token_revoke", "", by, serde_json::json!({"token": id})).await
}

/// Changes a user's role, or disables or enables them (`me`: the admin asking, by name): an
/// admin cannot lock themselves out by either.
pub async fn change_user(
    store: &Store,
    name: &str,
    role: Option<Role>,
    disabled: Option<bool>,
    me: Option<&str>,
    by: &str,
) -> Result<UserRecord> {
    let u = store.user(name).await?.ok_or_else(|| missing(name))?;
    if me.is_some_and(|me| me.eq_ignore_ascii_case(&u.name)) && (disabled == Some(true) || role.is_some()) {
        return Err(Error::refused("an admin cannot disable themselves or change their own role"));
    }
    if let Some(r) = role {
        set_role(store, &u.name, r, by).await?;
    }
    if let Some(d) = disabled {
        set_disabled(store, &u.name, d, by).await?;
    }
    store.user(&u.name).await?.ok_or_else(|| missing(name))
}

/// A new one-time password for a user, answered once; their sessions end.
pub async fn reset_one_time(store: &Store, name: &str, by: &str) -> Result<(UserRecord, Secret)> {
    let u = store.user(name).await?.ok_or_else(|| missing(name))?;
    let p = one_time_password();
    reset_password(store, &u.name, &p, true, by).await?;
    Ok((u, p))
}

/// A user agent in a person's words: the browser (or tool) and the system, as far as the
/// header tells them.
pub fn agent_words(agent: &str) -> String {
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("HeadlessChrome/", "Chrome (headless)"),
        ("Chromium/", "Chromium"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
    ]
    .iter()
    .find(|(mark, _)| agent.contains(mark))
    .map(|(_, name)| name.to_string());
    let system = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("CrOS", "ChromeOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(mark, _)| agent.contains(mark))
    .map(|(_, name)| *name);
    match (browser, system) {
        (Some(b), Some(s)) => format!("{b} on {s}"),
        (Some(b), None) => b,
        // A tool names itself first: curl/8.5.0, python-requests/2.31, reqwest.
        (None, _) => agent.split(['/', ' ']).next().unwrap_or(agent).chars().take(40).collect(),
    }
}

/// A session as listed to its person or an admin: never its id (a short handle of its hash).
pub fn session_view(s: &store::SessionRecord, this: Option<&str>) -> serde_json::Value {
    let at = |ms: i64| Timestamp::from_millisecond(ms).map(|t| t.to_string()).unwrap_or_default();
    serde_json::json!({"handle": &s.id_hash[..12.min(s.id_hash.len())], "signed_in": at(s.created_ms),
        "last_active": at(s.last_seen_ms), "address": s.address,
        "browser": s.agent.as_deref().map(agent_words), "this": this == Some(s.id_hash.as_str())})
}

/// A user's sessions, newest first (`tenure user sessions`, the API, the console).
pub async fn sessions(store: &Store, name: &str) -> Result<(UserRecord, Vec<store::SessionRecord>)> {
    let u = store.user(name).await?.ok_or_else(|| Error::not_found(format!("no user named {name:?}")))?;
    let s = store.sessions_of(&u.id).await?;
    Ok((u, s))
}

/// Ends every session of a user (a lost laptop, a person who left): they sign in again;
/// audited. How many ended.
pub async fn end_sessions(store: &Store, name: &str, by: &str) -> Result<u64> {
    let u = store.user(name).await?.ok_or_else(|| Error::not_found(format!("no user named {name:?}")))?;
    let n = store.delete_sessions_of(&u.id).await?;
    crate::decisions::record_one(store, "user_sessions_end", "", by, serde_json::json!({"user": u.name, "ended": n}))
        .await?;
    Ok(n)
}

/// A user as listed: never the hash.
pub fn user_view(u: &UserRecord) -> serde_json::Value {
    serde_json::json!({"name": u.name, "role": u.role, "disabled": u.disabled,
        "must_change_password": u.must_change, "created_at": u.created_at,
        "signs_in_through_identity_provider": u.idp_subject.is_some()})
}

/// A token as listed: never the secret or its hash.
pub fn token_view(t: &TokenRecord) -> serde_json::Value {
    serde_json::json!({"id": t.id, "name": t.name, "role": t.role, "connection": t.connection,
        "created_at": t.created_at, "created_by": t.created_by, "expires_at": t.expires_at,
        "last_used_at": t.last_used_at, "revoked_at": t.revoked_at, "maker": t.maker, "read_only": t.read_only})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let p = Secret::new("correct horse battery");
        let h = hash_password(&p).unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(!h.contains("correct horse"));
        assert!(verify_password(&p, &h));
        assert!(!verify_password(&Secret::new("correct horse batterY"), &h));
        assert!(!verify_password(&p, "not a hash"));
        assert!(check_password("ann", &Secret::new("short")).is_err());
        assert!(check_password("annannannann", &Secret::new("AnnAnnAnnAnn")).is_err());
        assert_eq!(one_time_password().expose().len(), 20);
    }

    #[test]
    fn expiries() {
        let now: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        assert_eq!(parse_expiry("90d", now).unwrap().to_string(), "2027-03-01T00:00:00Z");
        assert_eq!(parse_expiry("12h", now).unwrap().to_string(), "2026-12-01T12:00:00Z");
        assert!(parse_expiry("0d", now).is_err());
        assert!(parse_expiry("soon", now).is_err());
        assert!(parse_expiry("\u{d1}", now).is_err(), "a wide last character");
        assert!(parse_expiry("", now).is_err());
        assert!(parse_expiry("99999999999999999d", now).is_err(), "too far");
        assert!(parse_expiry("2027-01-01T00:00:00Z", now).is_ok());
        assert!(parse_expiry("2026-11-30T00:00:00Z", now).is_err(), "a moment past");
    }
}
