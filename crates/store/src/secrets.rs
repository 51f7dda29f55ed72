//! Sealed secrets: connection tokens are kept encrypted with XChaCha20-Poly1305 under a master
//! key, bound to the row they belong to, with the key's id stored beside them so keys can
//! rotate. The master key comes from `TENURE_MASTER_KEY` (64 hex characters) or from a key
//! file made on first run with mode 0600.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::Path;

pub const MASTER_KEY_ENV: &str = "TENURE_MASTER_KEY";
pub const KEY_FILE: &str = "master.key";

/// A secret in memory: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// The last four characters, as shown to people.
    pub fn hint(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        chars[chars.len().saturating_sub(4)..].iter().collect()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(****{})", self.hint())
    }
}

/// A sealed value as stored: which key, and hex(nonce || ciphertext+tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub blob: String,
}

pub struct MasterKey {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

impl MasterKey {
    pub fn from_bytes(key: [u8; 32]) -> Self {
        // The id names the key without revealing it.
        let id = hex(&Sha256::digest([b"tenure-key-id:".as_slice(), &key].concat())[..6]);
        MasterKey { id, cipher: XChaCha20Poly1305::new(&key.into()) }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// `TENURE_MASTER_KEY` when set, else `<data_dir>/master.key`, made (0600) when missing.
    pub fn load(data_dir: &Path) -> Result<MasterKey, String> {
        if let Ok(v) = std::env::var(MASTER_KEY_ENV) {
            return Self::parse(v.trim()).map_err(|e| format!("{MASTER_KEY_ENV}: {e}"));
        }
        let path = data_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(text.trim()).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                private_dir(data_dir).map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                write_private(&path, hex(&key)).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                Ok(Self::from_bytes(key))
            }
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    fn parse(text: &str) -> Result<MasterKey, String> {
        let bytes = unhex(text).filter(|b| b.len() == 32).ok_or("a master key is 64 hex characters (32 bytes)")?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes);
        Ok(Self::from_bytes(key))
    }

    /// Seals `secret`; `context` (the owning row's id) must be given again to open it, so a
    /// sealed value copied to another row does not open.
    pub fn seal(&self, secret: &Secret, context: &str) -> Sealed {
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: secret.expose().as_bytes(), aad: context.as_bytes() })
            .expect("XChaCha20-Poly1305 encryption does not fail on in-memory input");
        Sealed { key_id: self.id.clone(), blob: format!("{}{}", hex(&nonce), hex(&ct)) }
    }

    pub fn open(&self, sealed: &Sealed, context: &str) -> Result<Secret, String> {
        if sealed.key_id != self.id {
            return Err(format!(
                "the secret was sealed with master key {}, but the key loaded is {}: set {MASTER_KEY_ENV} or restore the key file",
                sealed.key_id, self.id
            ));
        }
        let raw = unhex(&sealed.blob).filter(|b| b.len() > 24).ok_or("the sealed secret is damaged")?;
        let (nonce, ct) = raw.split_at(24);
        let pt = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: context.as_bytes() })
            .map_err(|_| "the sealed secret does not open: it was altered or belongs to another record".to_string())?;
        String::from_utf8(pt).map(Secret).map_err(|_| "the sealed secret is not text".into())
    }
}

/// A new file only its owner can read, whatever the umask, written and synced.
#[cfg(unix)]
pub fn write_private(path: &Path, bytes: impl AsRef<[u8]>) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(bytes.as_ref())?;
    f.sync_all()
}

#[cfg(not(unix))]
pub fn write_private(path: &Path, bytes: impl AsRef<[u8]>) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// A folder made owner-only (whatever the umask) when it does not exist yet.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_bound_to_context_and_key() {
        let k = MasterKey::from_bytes([7; 32]);
        let s = Secret::new("monday-token-abcd");
        let sealed = k.seal(&s, "conn-1");
        assert!(!sealed.blob.contains("monday"));
        assert_ne!(k.seal(&s, "conn-1").blob, sealed.blob, "a fresh nonce each time");
        assert_eq!(k.open(&sealed, "conn-1").unwrap(), s);
        assert!(k.open(&sealed, "conn-2").is_err(), "bound to its row");
        let mut tampered = sealed.clone();
        tampered.blob.replace_range(60..62, if &tampered.blob[60..62] == "00" { "01" } else { "00" });
        assert!(k.open(&tampered, "conn-1").is_err());
        let other = MasterKey::from_bytes([8; 32]);
        assert!(other.open(&sealed, "conn-1").unwrap_err().contains(k.id()));
        assert_eq!(format!("{s:?}"), "Secret(****abcd)");
    }

    #[test]
    fn key_file_is_made_once_with_mode_0600() {
        let dir = std::env::temp_dir().join(format!("tenure-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // The environment variable would take precedence; this test is about the file.
        if std::env::var(MASTER_KEY_ENV).is_ok() {
            return;
        }
        let a = MasterKey::load(&dir).unwrap();
        let b = MasterKey::load(&dir).unwrap();
        assert_eq!(a.id(), b.id(), "the same key on the next run");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(KEY_FILE)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
