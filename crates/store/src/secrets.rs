//! Sealed secrets: connection tokens are kept encrypted with XChaCha20-Poly1305 under a master
//! key, bound to the row they belong to, with the key's id stored beside them so keys can
//! rotate. The master key comes from `TENURE_MASTER_KEY` (64 hex characters) or from a key
//! file made on first run with mode 0600. A rotation (`rotation`) writes the new key beside
//! the one in force and keeps the old one until every secret is re-sealed past it.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

pub const MASTER_KEY_ENV: &str = "TENURE_MASTER_KEY";
/// The key a rotation re-sealed from, when the master key comes from the environment.
pub const PREVIOUS_KEY_ENV: &str = "TENURE_MASTER_KEY_PREVIOUS";
pub const KEY_FILE: &str = "master.key";
/// The key a rotation is moving to, until it is in force.
pub const NEW_KEY_FILE: &str = "master.key.new";
/// The key a rotation moved from, kept until the next successful start.
pub const OLD_KEY_FILE: &str = "master.key.old";

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

/// The master key in force, with the keys beside it that only open (a rotation's old or new
/// key). Loaded from files, it reads them again when it meets a secret sealed under a key it
/// does not hold, so a `tenure serve` running while `tenure key rotate` runs goes on opening.
pub struct MasterKey {
    keys: RwLock<Keys>,
    /// The data folder the key files are in, when the key did not come from the environment.
    files: Option<PathBuf>,
}

struct Keys {
    id: String,
    cipher: XChaCha20Poly1305,
    others: Vec<(String, XChaCha20Poly1305)>,
}

impl Keys {
    fn cipher(&self, key_id: &str) -> Option<&XChaCha20Poly1305> {
        if key_id == self.id {
            return Some(&self.cipher);
        }
        self.others.iter().find(|(id, _)| id == key_id).map(|(_, c)| c)
    }

    fn add(&mut self, other: Keys) {
        for (id, cipher) in std::iter::once((other.id, other.cipher)).chain(other.others) {
            if id != self.id && !self.others.iter().any(|(o, _)| *o == id) {
                self.others.push((id, cipher));
            }
        }
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.id())
    }
}

/// Bytes as lower-case hexadecimal: how tenure writes digests, ids and sealed values.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hexadecimal back to bytes; None for an odd length or a character that is no hex digit.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

fn keys_from_bytes(key: [u8; 32]) -> Keys {
    // The id names the key without revealing it.
    let id = hex(&Sha256::digest([b"tenure-key-id:".as_slice(), &key].concat())[..6]);
    Keys { id, cipher: XChaCha20Poly1305::new(&key.into()), others: vec![] }
}

fn parse(text: &str) -> Result<Keys, String> {
    let bytes = unhex(text).filter(|b| b.len() == 32).ok_or("a master key is 64 hex characters (32 bytes)")?;
    let mut key = [0u8; 32];
    key.copy_from_slice(&bytes);
    Ok(keys_from_bytes(key))
}

fn read_key(path: &Path) -> Result<Option<Keys>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(text.trim()).map(Some).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// `<data_dir>/master.key` (made, 0600, when no key file is there at all and `create`), with a
/// rotation's old or new key beside it.
fn load_files(data_dir: &Path) -> Result<Keys, String> {
    load_files_as(data_dir, false)
}

fn load_files_as(data_dir: &Path, create: bool) -> Result<Keys, String> {
    let path = data_dir.join(KEY_FILE);
    let (old, new) = (read_key(&data_dir.join(OLD_KEY_FILE))?, read_key(&data_dir.join(NEW_KEY_FILE))?);
    let mut keys = match read_key(&path)? {
        Some(k) => k,
        None if old.is_some() || new.is_some() => {
            // Making a fresh key here would leave every secret sealed under one nobody holds.
            return Err(format!(
                "{} is missing while a rotation's {OLD_KEY_FILE} or {NEW_KEY_FILE} is beside it: restore the key file",
                path.display()
            ));
        }
        None if !create => {
            // A fresh key here would open none of the secrets the store holds: said, never made.
            return Err(format!(
                "no master key in {}: restore {KEY_FILE} from where it is kept (or set {MASTER_KEY_ENV}); only \
                 `tenure init` makes a new one, for a new store",
                data_dir.display()
            ));
        }
        None => {
            private_dir(data_dir).map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
            let mut key = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut key);
            write_private(&path, hex(&key)).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            keys_from_bytes(key)
        }
    };
    for k in [old, new].into_iter().flatten() {
        keys.add(k);
    }
    Ok(keys)
}

impl MasterKey {
    pub fn from_bytes(key: [u8; 32]) -> Self {
        MasterKey { keys: RwLock::new(keys_from_bytes(key)), files: None }
    }

    /// A new random key, with its bytes (to be written where it is kept).
    pub fn generate() -> ([u8; 32], MasterKey) {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        (key, Self::from_bytes(key))
    }

    /// This key, also able to open what `other` sealed (never sealing with it).
    pub fn also_opening(self, other: MasterKey) -> MasterKey {
        let mut keys = self.keys.into_inner().unwrap_or_else(|p| p.into_inner());
        keys.add(other.keys.into_inner().unwrap_or_else(|p| p.into_inner()));
        MasterKey { keys: RwLock::new(keys), files: self.files }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        // A panic while holding the lock cannot leave the keys half changed: reload swaps whole.
        self.keys.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The id of the key in force (the one that seals): names the key without revealing it.
    pub fn id(&self) -> String {
        self.read().id.clone()
    }

    /// The ids of the keys beside the one in force that only open.
    pub fn others(&self) -> Vec<String> {
        self.read().others.iter().map(|(id, _)| id.clone()).collect()
    }

    /// Whether a secret sealed under `key_id` opens with the keys held.
    pub fn holds(&self, key_id: &str) -> bool {
        self.read().cipher(key_id).is_some()
    }

    /// Whether the key in force comes from the environment rather than the key file.
    pub fn from_env() -> bool {
        std::env::var_os(MASTER_KEY_ENV).is_some()
    }

    /// The data folder of the key files, or None when the key comes from the environment.
    pub fn files(&self) -> Option<&Path> {
        self.files.as_deref()
    }

    /// `TENURE_MASTER_KEY` when set (with `TENURE_MASTER_KEY_PREVIOUS` beside it, to open what a
    /// rotation has not re-sealed yet), else `<data_dir>/master.key`, made (0600) when missing,
    /// with a rotation's old or new key file beside it when one is there.
    pub fn load(data_dir: &Path) -> Result<MasterKey, String> {
        Self::load_as(data_dir, false)
    }

    /// As `load`, making `<data_dir>/master.key` when no key is there: for a new store only
    /// (`tenure init`, the quickstart, `tenure serve --init`).
    pub fn load_or_create(data_dir: &Path) -> Result<MasterKey, String> {
        Self::load_as(data_dir, true)
    }

    /// Whether a key file is in the data folder (or the key comes from the environment).
    pub fn present(data_dir: &Path) -> bool {
        std::env::var(MASTER_KEY_ENV).is_ok() || data_dir.join(KEY_FILE).exists()
    }

    fn load_as(data_dir: &Path, create: bool) -> Result<MasterKey, String> {
        if let Ok(v) = std::env::var(MASTER_KEY_ENV) {
            let mut keys = parse(v.trim()).map_err(|e| format!("{MASTER_KEY_ENV}: {e}"))?;
            if let Ok(p) = std::env::var(PREVIOUS_KEY_ENV) {
                keys.add(parse(p.trim()).map_err(|e| format!("{PREVIOUS_KEY_ENV}: {e}"))?);
            }
            return Ok(MasterKey { keys: RwLock::new(keys), files: None });
        }
        Ok(MasterKey { keys: RwLock::new(load_files_as(data_dir, create)?), files: Some(data_dir.to_path_buf()) })
    }

    /// Reads the key files again (a rotation may have changed them); answers whether the key
    /// in force changed. Nothing changes when the files cannot be read.
    pub fn reload(&self) -> bool {
        let Some(dir) = &self.files else { return false };
        let Ok(keys) = load_files(dir) else { return false };
        let mut held = self.keys.write().unwrap_or_else(|p| p.into_inner());
        let changed = held.id != keys.id;
        *held = keys;
        changed
    }

    /// Seals `secret`; `context` (the owning row's id) must be given again to open it, so a
    /// sealed value copied to another row does not open.
    pub fn seal(&self, secret: &Secret, context: &str) -> Sealed {
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let keys = self.read();
        let ct = keys
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: secret.expose().as_bytes(), aad: context.as_bytes() })
            .expect("XChaCha20-Poly1305 encryption does not fail on in-memory input");
        Sealed { key_id: keys.id.clone(), blob: format!("{}{}", hex(&nonce), hex(&ct)) }
    }

    pub fn open(&self, sealed: &Sealed, context: &str) -> Result<Secret, String> {
        if !self.holds(&sealed.key_id) {
            // Sealed by a rotation since this key was loaded: the files hold its key now.
            self.reload();
        }
        let keys = self.read();
        let Some(cipher) = keys.cipher(&sealed.key_id) else {
            return Err(format!(
                "the secret was sealed with master key {}, but the key loaded is {}: set {MASTER_KEY_ENV} or restore the key file",
                sealed.key_id, keys.id
            ));
        };
        let raw = unhex(&sealed.blob).filter(|b| b.len() > 24).ok_or("the sealed secret is damaged")?;
        let (nonce, ct) = raw.split_at(24);
        let pt = cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: context.as_bytes() })
            .map_err(|_| "the sealed secret does not open: it was altered or belongs to another record".to_string())?;
        String::from_utf8(pt).map(Secret).map_err(|_| "the sealed secret is not text".into())
    }
}

/// The rotation's steps on the key files, each leaving files `MasterKey::load` opens every
/// secret with: the new key written beside the one in force (`master.key.new`), then, once
/// every secret is re-sealed under it, put in force with the old one kept as `master.key.old`.
/// `master.key` is there at every moment.
pub mod rotation {
    use super::*;

    /// The new key, written as `master.key.new` (or the one an interrupted rotation wrote).
    pub fn stage(data_dir: &Path) -> Result<MasterKey, String> {
        let path = data_dir.join(NEW_KEY_FILE);
        if let Some(keys) = read_key(&path)? {
            return Ok(MasterKey { keys: RwLock::new(keys), files: None });
        }
        let (bytes, key) = MasterKey::generate();
        write_private(&path, hex(&bytes)).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(key)
    }

    /// The key in force is kept as `master.key.old` and `master.key.new` takes its place.
    pub fn promote(data_dir: &Path) -> Result<(), String> {
        let (key, new, old) = (data_dir.join(KEY_FILE), data_dir.join(NEW_KEY_FILE), data_dir.join(OLD_KEY_FILE));
        let tmp = data_dir.join(format!("{OLD_KEY_FILE}.tmp"));
        let say = |e: std::io::Error| format!("cannot put the new master key in force in {}: {e}", data_dir.display());
        // Checked first: without a staged key, copying the one in force would replace the old.
        std::fs::metadata(&new).map_err(say)?;
        let current = std::fs::read(&key).map_err(say)?;
        let _ = std::fs::remove_file(&tmp);
        write_private(&tmp, current).map_err(say)?;
        // Replaces the key of an earlier rotation: every secret was just re-sealed past it.
        std::fs::rename(&tmp, &old).map_err(say)?;
        std::fs::rename(&new, &key).map_err(say)?;
        // The renames themselves survive a power loss once the folder is synced.
        #[cfg(unix)]
        std::fs::File::open(data_dir).and_then(|d| d.sync_all()).map_err(say)?;
        Ok(())
    }

    /// The id of the key in `master.key.new`, if a rotation staged one.
    pub fn staged_id(data_dir: &Path) -> Option<String> {
        read_key(&data_dir.join(NEW_KEY_FILE)).ok().flatten().map(|k| k.id)
    }

    /// The old key, no longer needed, removed; answers whether there was one.
    pub fn forget_old(data_dir: &Path) -> std::io::Result<bool> {
        match std::fs::remove_file(data_dir.join(OLD_KEY_FILE)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
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
        assert!(other.open(&sealed, "conn-1").unwrap_err().contains(&k.id()));
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
        let missing = MasterKey::load(&dir).err().unwrap();
        assert!(missing.contains("no master key in") && missing.contains("tenure init"), "{missing}");
        assert!(!dir.join(KEY_FILE).exists(), "load never makes a key");
        let a = MasterKey::load_or_create(&dir).unwrap();
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

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tenure-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        private_dir(&dir).unwrap();
        dir
    }

    #[test]
    fn a_rotation_on_files_opens_at_every_step() {
        if std::env::var(MASTER_KEY_ENV).is_ok() {
            return;
        }
        let dir = temp("rotate");
        let before = MasterKey::load_or_create(&dir).unwrap();
        let sealed = before.seal(&Secret::new("token-1"), "c1");
        assert_eq!(rotation::staged_id(&dir), None);

        let new = rotation::stage(&dir).unwrap();
        assert_ne!(new.id(), before.id());
        assert_eq!(rotation::staged_id(&dir), Some(new.id()));
        assert_eq!(rotation::stage(&dir).unwrap().id(), new.id(), "an interrupted rotation's key is taken again");
        // Staged: the key in force is unchanged, and both keys open.
        let staged = MasterKey::load(&dir).unwrap();
        assert_eq!(staged.id(), before.id());
        let resealed = new.seal(&Secret::new("token-1"), "c1");
        assert_eq!(staged.open(&sealed, "c1").unwrap().expose(), "token-1");
        assert_eq!(staged.open(&resealed, "c1").unwrap().expose(), "token-1");

        // A process loaded before the rotation opens what was sealed after it: it reads the files again.
        rotation::promote(&dir).unwrap();
        assert_eq!(before.open(&resealed, "c1").unwrap().expose(), "token-1");
        let after = MasterKey::load(&dir).unwrap();
        assert_eq!(after.id(), new.id(), "the new key is in force");
        assert_eq!(after.others(), vec![staged.id()], "the old key is kept beside it");
        assert_eq!(after.open(&sealed, "c1").unwrap().expose(), "token-1");
        assert!(rotation::promote(&dir).is_err(), "nothing staged: nothing to promote");
        assert_eq!(MasterKey::load(&dir).unwrap().others(), vec![staged.id()], "the old key is still there");

        assert!(rotation::forget_old(&dir).unwrap());
        assert!(!rotation::forget_old(&dir).unwrap());
        let last = MasterKey::load(&dir).unwrap();
        assert!(last.others().is_empty());
        assert!(last.open(&sealed, "c1").is_err(), "the old key is gone");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_key_file_beside_a_rotation_is_not_replaced() {
        if std::env::var(MASTER_KEY_ENV).is_ok() {
            return;
        }
        let dir = temp("lost-key");
        MasterKey::load_or_create(&dir).unwrap();
        rotation::stage(&dir).unwrap();
        std::fs::remove_file(dir.join(KEY_FILE)).unwrap();
        let err = MasterKey::load_or_create(&dir).unwrap_err();
        assert!(err.contains("restore the key file"), "{err}");
        assert!(!dir.join(KEY_FILE).exists(), "no fresh key made");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
