//! Secrets tenure keeps sealed under its master key (the HR push secret, the HR pull's and the
//! notifiers' credentials), each bound to where it may be sent, and the HMAC signature scheme
//! the HR push endpoint checks and tenure's webhooks sign with.

use crate::error::{Error, Result};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use store::{MasterKey, Sealed, Secret, Store};

pub const TIMESTAMP_HEADER: &str = "x-tenure-timestamp";
pub const SIGNATURE_HEADER: &str = "x-tenure-signature";
/// How far a request's timestamp may be from our clock, either way.
pub const TOLERANCE_SECS: i64 = 300;
pub const SECRET_SETTING: &str = "hr_push_secret";
pub const SECRET_CONTEXT: &str = "hr-push-secret";

/// What the sender signs: `"<timestamp>.<body>"` under the shared secret.
pub fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Checks the timestamp and the signature; the error says which part failed, never the secret.
/// `timestamp` and `signature` are the values of the two headers, as bytes received (None when
/// absent).
pub fn verify(
    secret: &Secret,
    timestamp: Option<&[u8]>,
    signature: Option<&[u8]>,
    body: &[u8],
    now: i64,
) -> std::result::Result<(), String> {
    let ts = std::str::from_utf8(timestamp.ok_or("missing the X-Tenure-Timestamp header (unix seconds)")?)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .ok_or("X-Tenure-Timestamp must be unix seconds")?;
    let skew = (now - ts).abs();
    if skew > TOLERANCE_SECS {
        return Err(format!(
            "the timestamp is {skew} s away from this server's clock (at most {TOLERANCE_SECS} s): \
             a stale or replayed request is refused; sign again with the current time"
        ));
    }
    let given = std::str::from_utf8(signature.ok_or("missing the X-Tenure-Signature header (sha256=<hex HMAC>)")?)
        .map_err(|_| "X-Tenure-Signature is not text")?;
    let hex = given.trim().strip_prefix("sha256=").ok_or("X-Tenure-Signature must start with sha256=")?;
    let bytes = Some(hex)
        .filter(|h| h.len() == 64)
        .and_then(store::secrets::unhex)
        .ok_or("X-Tenure-Signature must be sha256= and 64 hex digits")?;
    // verify_slice compares in constant time.
    mac(secret.expose(), ts, body)
        .verify_slice(&bytes)
        .map_err(|_| "the signature does not match this body and timestamp".to_string())
}

/// Stores a push secret sealed under the master key (it is only received, never sent: it has
/// no destination).
pub async fn save_secret(store: &Store, key: &MasterKey, secret: &Secret) -> Result<()> {
    save_named_secret(store, key, SECRET_SETTING, SECRET_CONTEXT, "", secret).await
}

pub async fn load_secret(store: &Store, key: &MasterKey) -> Result<Secret> {
    load_named_secret(store, key, SECRET_SETTING, SECRET_CONTEXT, "")
        .await?
        .ok_or_else(|| Error::not_found("no push secret yet: create one with `tenure hr push-secret`"))
}

/// Where a credential may be sent: the origin (scheme, host and port) of each URL it goes to.
/// A path or a query may change; another host may not.
pub fn destination(urls: &[&str]) -> String {
    let origin = |u: &str| match reqwest::Url::parse(u) {
        Ok(p) => format!(
            "{}://{}:{}",
            p.scheme(),
            p.host_str().unwrap_or_default().to_ascii_lowercase(),
            p.port_or_known_default().map(|n| n.to_string()).unwrap_or_default()
        ),
        Err(_) => u.to_string(),
    };
    urls.iter().map(|u| origin(u)).collect::<Vec<_>>().join(" and ")
}

/// The sealing context of a secret bound to a destination: opening it for another fails even
/// if the stored record were edited.
pub(crate) fn bound(context: &str, destination: &str) -> String {
    if destination.is_empty() {
        context.to_string()
    } else {
        format!("{context}\nfor {destination}")
    }
}

/// Seals a secret under the master key into a setting; `context` binds it to its use and
/// `destination` (see [`destination`]) to where it may be sent.
pub async fn save_named_secret(
    store: &Store,
    key: &MasterKey,
    setting: &str,
    context: &str,
    destination: &str,
    secret: &Secret,
) -> Result<()> {
    let sealed = key.seal(secret, &bound(context, destination));
    let v = json!({"key_id": sealed.key_id, "blob": sealed.blob, "for": destination}).to_string();
    Ok(store.set_setting(setting, &v).await?)
}

/// Opens a stored secret for `destination`; a secret stored for another destination is
/// refused (the configuration moved: an admin sets it again for the new one), never sent.
pub async fn load_named_secret(
    store: &Store,
    key: &MasterKey,
    setting: &str,
    context: &str,
    destination: &str,
) -> Result<Option<Secret>> {
    let Some(v) = store.setting(setting).await? else { return Ok(None) };
    let v: Value = serde_json::from_str(&v)
        .map_err(|e| Error::refused(format!("the stored secret {setting} is unreadable: {e}")))?;
    let stored_for = v["for"].as_str().unwrap_or_default();
    if stored_for != destination {
        let was =
            if stored_for.is_empty() { "no address (it was set before secrets were bound to one)" } else { stored_for };
        return Err(Error::refused(format!(
            "the stored secret {setting} was set for {was}; the configuration now sends it to {destination}: it is \
             not sent there until an admin sets it again for the new address"
        )));
    }
    let sealed = Sealed {
        key_id: v["key_id"].as_str().unwrap_or_default().into(),
        blob: v["blob"].as_str().unwrap_or_default().into(),
    };
    key.open(&sealed, &bound(context, destination)).map(Some).map_err(Error::refused)
}

/// A new random secret of 256 bits, as hex.
pub fn generate_secret() -> Secret {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    Secret::new(b.iter().map(|x| format!("{x:02x}")).collect::<String>())
}

/// The signature header value of a body sent at `timestamp` (the same scheme the push
/// endpoint checks): `sha256=<hex of HMAC-SHA256 over "<timestamp>.<body>">`.
pub fn signature(secret: &Secret, timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret.expose(), timestamp, body).finalize().into_bytes();
    format!("sha256={}", tag.iter().map(|b| format!("{b:02x}")).collect::<String>())
}
