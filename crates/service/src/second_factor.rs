//! A second factor for local accounts: time-based one-time passwords (RFC 6238: HMAC-SHA1,
//! six digits, 30-second steps), their enrolment, recovery codes kept only as hashes, and the
//! admin setting that requires one of every local account.
//!
//! The shared secret is sealed under the master key like every other stored secret (setting
//! `totp:<user id>`, `totp-pending:<user id>` while being enrolled), so a key rotation re-seals
//! it; the recovery codes' hashes and the last step used are plain settings.

use crate::error::{Error, Result};
use hmac::{Hmac, Mac};
use jiff::Timestamp;
use rand::RngCore;
use store::{MasterKey, Secret, Store, UserRecord};

/// What a sealed TOTP secret is bound to, with the user's id.
pub const CONTEXT: &str = "totp";
/// The setting that requires a second factor of every local account.
const REQUIRED: &str = "auth.require_second_factor";
const STEP_SECONDS: i64 = 30;
/// Recovery codes made at enrolment.
const RECOVERY_CODES: usize = 10;

fn secret_setting(user_id: &str) -> String {
    format!("totp:{user_id}")
}
fn pending_setting(user_id: &str) -> String {
    format!("totp-pending:{user_id}")
}
fn recovery_setting(user_id: &str) -> String {
    format!("totp-recovery:{user_id}")
}
fn last_step_setting(user_id: &str) -> String {
    format!("totp-last:{user_id}")
}
fn failures_setting(user_id: &str) -> String {
    format!("totp-failures:{user_id}")
}

/// Wrong codes an account may take, from any address, before its code step closes.
const MAX_WRONG: i64 = 10;
/// How long it stays closed after that.
const CLOSED_SECONDS: i64 = 15 * 60;

/// Whether a sealed setting's name is one of this module's (for a key rotation).
pub fn is_sealed_setting(name: &str) -> bool {
    name.starts_with("totp:") || name.starts_with("totp-pending:")
}

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding, as authenticator apps take a secret.
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for b in bytes {
        buffer = (buffer << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            out.push(ALPHABET[((buffer >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn unbase32(text: &str) -> Option<Vec<u8>> {
    let mut out = vec![];
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| *c != b'=' && *c != b' ') {
        let v = ALPHABET.iter().position(|a| *a == c.to_ascii_uppercase())? as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            out.push((buffer >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    Some(out)
}

/// The six-digit code of `step` (RFC 4226 dynamic truncation over HMAC-SHA1).
pub fn code_at(secret: &[u8], step: i64) -> u32 {
    let mut m = Hmac::<sha1::Sha1>::new_from_slice(secret).expect("any key length");
    m.update(&(step as u64).to_be_bytes());
    let h = m.finalize().into_bytes();
    let at = (h[19] & 0x0f) as usize;
    let n = u32::from_be_bytes([h[at] & 0x7f, h[at + 1], h[at + 2], h[at + 3]]);
    n % 1_000_000
}

fn step_of(t: Timestamp) -> i64 {
    t.as_second().div_euclid(STEP_SECONDS)
}

/// Whether the user has a second factor.
pub async fn enrolled(store: &Store, user: &UserRecord) -> Result<bool> {
    Ok(store.setting(&secret_setting(&user.id)).await?.is_some())
}

/// Whether every local account must have one.
pub async fn required(store: &Store) -> Result<bool> {
    Ok(store.setting(REQUIRED).await?.as_deref() == Some("true"))
}

/// Requires a second factor of every local account, or no longer; audited.
pub async fn set_required(store: &Store, on: bool, by: &str) -> Result<()> {
    store.set_setting(REQUIRED, if on { "true" } else { "false" }).await?;
    // Sessions already open follow at once: held to enrolment, or free again.
    for u in store.users().await?.into_iter().filter(|u| u.idp_subject.is_none()) {
        if !on || !enrolled(store, &u).await? {
            store.sessions_enrol_only(&u.id, !on).await?;
        }
    }
    crate::decisions::record_one(store, "second_factor_required", "", by, serde_json::json!({"required": on})).await
}

/// An enrolment under way: the secret to give the authenticator app.
pub struct Enrolment {
    /// Base32, as typed by hand.
    pub secret: Secret,
    /// `otpauth://totp/...`, what the QR code holds.
    pub url: Secret,
}

fn url_for(user: &UserRecord, secret: &str) -> String {
    format!(
        "otpauth://totp/tenure:{}?secret={secret}&issuer=tenure&algorithm=SHA1&digits=6&period={STEP_SECONDS}",
        crate::names::percent_encode(&user.name)
    )
}

/// Starts (or shows again) the enrolment of a user who has no second factor yet: a secret
/// kept sealed until a code from it confirms it.
pub async fn begin(store: &Store, key: &MasterKey, user: &UserRecord) -> Result<Enrolment> {
    if enrolled(store, user).await? {
        return Err(Error::refused("a second factor is set already: remove it first to set another"));
    }
    let pending = crate::secrets::load_named_secret(store, key, &pending_setting(&user.id), CONTEXT, &user.id).await?;
    let secret = match pending {
        Some(s) => s,
        None => {
            let mut raw = [0u8; 20];
            rand::rngs::OsRng.fill_bytes(&mut raw);
            let s = Secret::new(base32(&raw));
            crate::secrets::save_named_secret(store, key, &pending_setting(&user.id), CONTEXT, &user.id, &s).await?;
            s
        }
    };
    let url = Secret::new(url_for(user, secret.expose()));
    Ok(Enrolment { secret, url })
}

/// Whether `code` is the code of `secret` now (one step either side, for clocks a little
/// apart), and not of a step used already: the step it matched.
fn matches(secret: &Secret, code: &str, now: Timestamp, last: Option<i64>) -> Option<i64> {
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let want: u32 = digits.parse().ok()?;
    let raw = unbase32(secret.expose())?;
    let now = step_of(now);
    (now - 1..=now + 1).find(|s| last.is_none_or(|l| *s > l) && code_at(&raw, *s) == want)
}

/// Confirms an enrolment with a code from the app: the second factor is set, and the recovery
/// codes are answered (shown once; only their hashes are kept). Audited.
pub async fn confirm(store: &Store, key: &MasterKey, user: &UserRecord, code: &str, by: &str) -> Result<Vec<String>> {
    let pending = crate::secrets::load_named_secret(store, key, &pending_setting(&user.id), CONTEXT, &user.id)
        .await?
        .ok_or_else(|| Error::refused("no enrolment under way: start again"))?;
    let Some(step) = matches(&pending, code, Timestamp::now(), None) else {
        return Err(Error::refused(
            "that code is not the app's code now: check the phone's clock, and type the six digits shown",
        ));
    };
    crate::secrets::save_named_secret(store, key, &secret_setting(&user.id), CONTEXT, &user.id, &pending).await?;
    store.delete_setting(&pending_setting(&user.id)).await?;
    store.set_setting(&last_step_setting(&user.id), &step.to_string()).await?;
    let codes = new_recovery_codes(store, user).await?;
    store.sessions_enrol_only(&user.id, true).await?;
    crate::decisions::record_one(store, "second_factor_enrol", "", by, serde_json::json!({"user": user.name})).await?;
    Ok(codes)
}

fn hash(code: &str) -> String {
    let bare: String = code.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_lowercase();
    crate::intake::checksum(bare.as_bytes())
}

async fn new_recovery_codes(store: &Store, user: &UserRecord) -> Result<Vec<String>> {
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            let h = crate::users::random_hex(5);
            format!("{}-{}", &h[..5], &h[5..])
        })
        .collect();
    let hashes: Vec<String> = codes.iter().map(|c| hash(c)).collect();
    store.set_setting(&recovery_setting(&user.id), &serde_json::to_string(&hashes).expect("json")).await?;
    Ok(codes)
}

/// How many unused recovery codes a user has.
pub async fn recovery_left(store: &Store, user: &UserRecord) -> Result<usize> {
    let v = store.setting(&recovery_setting(&user.id)).await?.unwrap_or_else(|| "[]".into());
    Ok(serde_json::from_str::<Vec<String>>(&v).map(|h| h.len()).unwrap_or(0))
}

/// How a sign-in's second factor was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Given {
    Code,
    /// A recovery code, now used up.
    Recovery,
}

/// Checks a sign-in's second factor: a code of the app (each step taken once, even by two
/// requests at once), or an unused recovery code (used up, audited). None: neither. After ten
/// wrong codes from anywhere the account's code step is closed for 15 minutes (a refusal that
/// says until when): the throttle per address alone would let many addresses guess on.
pub async fn verify(store: &Store, key: &MasterKey, user: &UserRecord, code: &str) -> Result<Option<Given>> {
    let Some(secret) =
        crate::secrets::load_named_secret(store, key, &secret_setting(&user.id), CONTEXT, &user.id).await?
    else {
        return Ok(None);
    };
    let now = Timestamp::now();
    let fails = store.setting(&failures_setting(&user.id)).await?;
    let (count, since) = fails
        .as_deref()
        .and_then(|v| v.split_once(','))
        .and_then(|(n, t)| Some((n.parse::<i64>().ok()?, t.parse::<i64>().ok()?)))
        .unwrap_or((0, now.as_second()));
    if count >= MAX_WRONG && now.as_second() - since < CLOSED_SECONDS {
        let until = Timestamp::from_second(since + CLOSED_SECONDS).unwrap_or(now);
        return Err(Error::refused(format!(
            "too many wrong codes for {}: the code step is closed until {until}; an admin can reset the second factor",
            user.name
        )));
    }
    let given = take(store, user, &secret, code, now).await?;
    match given {
        Some(_) => store.delete_setting(&failures_setting(&user.id)).await?,
        None => {
            // The count starts again once a closed period has passed.
            let (count, since) = if count >= MAX_WRONG { (0, now.as_second()) } else { (count, since) };
            store.set_setting(&failures_setting(&user.id), &format!("{},{since}", count + 1)).await?;
        }
    }
    Ok(given)
}

async fn take(store: &Store, user: &UserRecord, secret: &Secret, code: &str, now: Timestamp) -> Result<Option<Given>> {
    let last_name = last_step_setting(&user.id);
    let last_text = store.setting(&last_name).await?;
    let last = last_text.as_deref().and_then(|v| v.parse::<i64>().ok());
    if let Some(step) = matches(secret, code, now, last) {
        // Taken only if no other request took a step meanwhile.
        if store.swap_setting(&last_name, last_text.as_deref(), &step.to_string()).await? {
            return Ok(Some(Given::Code));
        }
        return Ok(None);
    }
    let name = recovery_setting(&user.id);
    let v = store.setting(&name).await?;
    let mut hashes: Vec<String> = serde_json::from_str(v.as_deref().unwrap_or("[]")).unwrap_or_default();
    let h = hash(code);
    let Some(at) = hashes.iter().position(|x| *x == h) else { return Ok(None) };
    hashes.remove(at);
    let left = serde_json::to_string(&hashes).expect("json");
    if !store.swap_setting(&name, v.as_deref(), &left).await? {
        return Ok(None);
    }
    crate::decisions::record_one(
        store,
        "recovery_code_used",
        "",
        &format!("user:{}", user.name),
        serde_json::json!({"user": user.name, "left": hashes.len()}),
    )
    .await?;
    Ok(Some(Given::Recovery))
}

/// Removes a user's second factor (their own choice, or an admin's for a lost phone); audited.
pub async fn remove(store: &Store, name: &str, by: &str) -> Result<()> {
    let u = store.user(name).await?.ok_or_else(|| Error::not_found(format!("no user named {name:?}")))?;
    if !enrolled(store, &u).await? {
        return Err(Error::not_found(format!("{} has no second factor", u.name)));
    }
    for s in [
        secret_setting(&u.id),
        pending_setting(&u.id),
        recovery_setting(&u.id),
        last_step_setting(&u.id),
        failures_setting(&u.id),
    ] {
        store.delete_setting(&s).await?;
    }
    crate::decisions::record_one(store, "second_factor_remove", "", by, serde_json::json!({"user": u.name})).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_sha1_vectors() {
        // The RFC's SHA-1 seed, and its codes (the last six digits of its eight).
        let seed = b"12345678901234567890";
        for (t, want) in
            [(59, 287082), (1111111109, 81804), (1111111111, 50471), (1234567890, 5924), (2000000000, 279037)]
        {
            assert_eq!(code_at(seed, t / 30), want, "at {t}");
        }
    }

    /// The code of `key` (base32) at `step`, as an app shows it.
    fn code_of(key: &Secret, step: i64) -> String {
        format!("{:06}", code_at(&unbase32(key.expose()).unwrap(), step))
    }

    #[tokio::test]
    async fn ten_wrong_codes_from_anywhere_close_the_code_step_and_a_code_counts_once() {
        let dir = std::env::temp_dir().join(format!("tenure-totp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open_in(&dir).await.unwrap();
        let key = MasterKey::load_or_create(&dir).unwrap();
        let user =
            crate::users::add_user(&store, "sam", crate::users::Role::Viewer, &Secret::new("sam's passphrase"), false)
                .await
                .unwrap();
        let e = begin(&store, &key, &user).await.unwrap();
        // Steps from one moment, so that a step passing meanwhile changes nothing.
        let now = step_of(Timestamp::now());
        let codes = confirm(&store, &key, &user, &code_of(&e.secret, now), "test").await.unwrap();
        assert_eq!(codes.len(), 10);
        // The step enrolment used is spent; the next one is taken once.
        assert_eq!(verify(&store, &key, &user, &code_of(&e.secret, now)).await.unwrap(), None);
        assert_eq!(verify(&store, &key, &user, &code_of(&e.secret, now + 1)).await.unwrap(), Some(Given::Code));
        assert_eq!(verify(&store, &key, &user, &code_of(&e.secret, now + 1)).await.unwrap(), None);
        // Ten wrong codes in a row (a right one starts the count again; one is counted above):
        // the step closes, to a right recovery code too.
        for _ in 0..9 {
            assert_eq!(verify(&store, &key, &user, "000000").await.unwrap(), None);
        }
        let shut = verify(&store, &key, &user, &codes[0]).await.unwrap_err().to_string();
        assert!(shut.contains("too many wrong codes for sam") && shut.contains("closed until"), "{shut}");
        // An admin's reset clears it all.
        remove(&store, "sam", "test").await.unwrap();
        assert!(!enrolled(&store, &user).await.unwrap());
        assert!(store.setting(&failures_setting(&user.id)).await.unwrap().is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn base32_round_trips() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(unbase32("MZXW6YTBOI").unwrap(), b"foobar");
        let raw = [7u8; 20];
        assert_eq!(unbase32(&base32(&raw)).unwrap(), raw);
    }

    #[test]
    fn a_code_matches_one_step_either_side_and_never_twice() {
        let secret = Secret::new(base32(b"12345678901234567890"));
        let now = Timestamp::from_second(1111111111).unwrap();
        let code = |s: i64| format!("{:06}", code_at(b"12345678901234567890", s));
        let step = 1111111111 / 30;
        assert_eq!(matches(&secret, &code(step), now, None), Some(step));
        assert_eq!(matches(&secret, &code(step - 1), now, None), Some(step - 1));
        assert_eq!(matches(&secret, &code(step + 2), now, None), None, "too far ahead");
        assert_eq!(matches(&secret, &code(step), now, Some(step)), None, "a step used already");
        assert_eq!(matches(&secret, "12345", now, None), None);
        assert_eq!(matches(&secret, "abcdef", now, None), None);
        let spaced = format!("{} {}", &code(step)[..3], &code(step)[3..]);
        assert_eq!(matches(&secret, &spaced, now, None), Some(step), "typed with a space");
    }
}
