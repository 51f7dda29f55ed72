//! Backups that restore. `backup` makes a consistent copy of a running SQLite store (SQLite's
//! `VACUUM INTO`, never a copy of the file, which would miss what its WAL holds), the HR
//! archive beside it, and a manifest: tenure's version, the schema version, the audit chain's
//! head, when, and the master key's fingerprint. The key is not in it unless asked for, then
//! encrypted with a passphrase (argon2id, XChaCha20-Poly1305). `restore` goes into an empty
//! data folder only, checks the manifest, the copy's checksum and that the key opens every
//! secret, and marks the store as restored (its scheduled runs wait for a person).

use crate::error::{Error, Result};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use store::secrets::{hex, unhex};
use store::secrets::{KEY_FILE, MASTER_KEY_ENV};
use store::{MasterKey, Secret, Store};

pub const MANIFEST: &str = "manifest.json";
pub const DB_FILE: &str = "tenure.db";
/// The master key, encrypted with the passphrase, when the backup was asked to hold it.
pub const KEY_IN_BACKUP: &str = "master.key.enc";
const ARCHIVE: &str = "hr-archive";
/// The setting that marks a restored store until a person confirms it.
pub const RESTORED: &str = "store_restored";
const FORMAT: u32 = 1;

/// The audit chain's last record: its number and hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

/// What a backup holds, written beside it as `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub tenure_version: String,
    /// The store's schema (its newest migration).
    pub schema_version: i64,
    /// When the copy was taken (RFC 3339).
    pub taken_at: String,
    /// The audit chain's head in the copy (none: no record yet).
    pub audit_head: Option<Head>,
    /// The id of the master key the secrets are sealed under (never the key).
    pub key_fingerprint: String,
    /// The key is in the backup, encrypted with a passphrase (`master.key.enc`).
    pub key_included: bool,
    /// SHA-256 of `tenure.db`, and its size.
    pub sha256: String,
    pub bytes: u64,
    /// Archived HR files copied beside it (`hr-archive/`).
    pub archived_files: usize,
}

fn sha256_of(path: &Path) -> Result<(String, u64)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::refused(format!("{}: {e}", path.display())))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| Error::refused(format!("{}: {e}", path.display())))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex(&h.finalize()), n))
}

/// A folder that does not exist yet or is empty, made owner-only.
fn empty_folder(dir: &Path, what: &str) -> Result<()> {
    if let Ok(mut entries) = std::fs::read_dir(dir) {
        if entries.next().is_some() {
            return Err(Error::refused(format!("{what} {} is not empty: give a new or empty folder", dir.display())));
        }
    }
    store::secrets::private_dir(dir).map_err(|e| Error::refused(format!("cannot make {}: {e}", dir.display())))
}

/// The master key's text (hex) as tenure reads it: the environment's, else the key file's.
fn key_text(data_dir: &Path) -> Result<Secret> {
    if let Ok(v) = std::env::var(MASTER_KEY_ENV) {
        return Ok(Secret::new(v.trim().to_string()));
    }
    let p = data_dir.join(KEY_FILE);
    std::fs::read_to_string(&p)
        .map(|t| Secret::new(t.trim().to_string()))
        .map_err(|e| Error::refused(format!("cannot read {}: {e}", p.display())))
}

/// The passphrase's key for the key file: argon2id with the crate's defaults (19 MiB, 2 passes).
fn passphrase_key(passphrase: &Secret, salt: &[u8]) -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    argon2::Argon2::default()
        .hash_password_into(passphrase.expose().as_bytes(), salt, &mut out)
        .map_err(|e| Error::refused(format!("cannot derive a key from the passphrase: {e}")))?;
    Ok(out)
}

/// Checks a passphrase for a backup's key: long enough to stand against guessing offline.
pub fn check_passphrase(p: &Secret) -> Result<()> {
    if p.expose().chars().count() < 16 {
        return Err(Error::input("a backup's passphrase needs at least 16 characters (it guards the master key)"));
    }
    Ok(())
}

fn encrypt_key(key: &Secret, passphrase: &Secret) -> Result<String> {
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let k = passphrase_key(passphrase, &salt)?;
    let ct = XChaCha20Poly1305::new(&k.into())
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: key.expose().as_bytes(), aad: b"tenure backup key" })
        .map_err(|_| Error::refused("cannot encrypt the key"))?;
    Ok(serde_json::json!({"kdf": "argon2id", "salt": hex(&salt), "nonce": hex(&nonce), "sealed": hex(&ct)}).to_string())
}

fn decrypt_key(text: &str, passphrase: &Secret) -> Result<Secret> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Error::refused(format!("{KEY_IN_BACKUP} is unreadable: {e}")))?;
    let field =
        |n: &str| v[n].as_str().and_then(unhex).ok_or_else(|| Error::refused(format!("{KEY_IN_BACKUP}: no {n}")));
    let (salt, nonce, ct) = (field("salt")?, field("nonce")?, field("sealed")?);
    if nonce.len() != 24 {
        return Err(Error::refused(format!("{KEY_IN_BACKUP} is damaged")));
    }
    let k = passphrase_key(passphrase, &salt)?;
    let plain = XChaCha20Poly1305::new(&k.into())
        .decrypt(XNonce::from_slice(&nonce), Payload { msg: &ct, aad: b"tenure backup key" })
        .map_err(|_| Error::refused("the passphrase does not open the backup's key"))?;
    String::from_utf8(plain).map(Secret::new).map_err(|_| Error::refused(format!("{KEY_IN_BACKUP} is damaged")))
}

/// Copies the files of `from` into the new folder `to` (the HR archive: flat, write-once files).
fn copy_files(from: &Path, to: &Path) -> Result<usize> {
    let Ok(entries) = std::fs::read_dir(from) else { return Ok(0) };
    store::secrets::private_dir(to).map_err(|e| Error::refused(format!("cannot make {}: {e}", to.display())))?;
    let mut n = 0;
    for e in entries {
        let e = e.map_err(|e| Error::refused(format!("{}: {e}", from.display())))?;
        if e.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::copy(e.path(), to.join(e.file_name()))
                .map_err(|err| Error::refused(format!("cannot copy {}: {err}", e.path().display())))?;
            n += 1;
        }
    }
    Ok(n)
}

/// A new owner-only file, or an error that names it.
fn write_private(path: &Path, text: &str) -> Result<()> {
    store::secrets::write_private(path, text)
        .map_err(|e| Error::refused(format!("cannot write {}: {e}", path.display())))
}

/// `tenure backup DEST`: a consistent copy of the store (while `tenure serve` runs), the HR
/// archive, and the manifest; the master key too, encrypted, when a passphrase is given.
/// Audited as `store_backup`.
pub async fn backup(
    store: &Store,
    data_dir: &Path,
    key: &MasterKey,
    dest: &Path,
    passphrase: Option<&Secret>,
    by: &str,
) -> Result<Manifest> {
    if let Some(p) = passphrase {
        check_passphrase(p)?;
    }
    empty_folder(dest, "the backup folder")?;
    let db = dest.join(DB_FILE);
    store.backup_into(&db).await.map_err(|e| Error::refused(format!("the backup into {}: {e}", db.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600));
    }
    let (schema_version, head) = Store::file_facts(&db).await?;
    let (sha256, bytes) = sha256_of(&db)?;
    let archived_files = copy_files(&data_dir.join(ARCHIVE), &dest.join(ARCHIVE))?;
    if let Some(p) = passphrase {
        write_private(&dest.join(KEY_IN_BACKUP), &encrypt_key(&key_text(data_dir)?, p)?)?;
    }
    let m = Manifest {
        format: FORMAT,
        tenure_version: env!("CARGO_PKG_VERSION").to_string(),
        schema_version,
        taken_at: jiff::Timestamp::now().to_string(),
        audit_head: head.map(|(seq, hash)| Head { seq, hash }),
        key_fingerprint: key.id(),
        key_included: passphrase.is_some(),
        sha256,
        bytes,
        archived_files,
    };
    let text = serde_json::to_string_pretty(&m).map_err(|e| Error::unavailable(e.to_string()))?;
    write_private(&dest.join(MANIFEST), &format!("{text}\n"))?;
    crate::decisions::record_one(
        store,
        "store_backup",
        "",
        by,
        serde_json::json!({"to": dest.display().to_string(), "audit_head": m.audit_head, "key_included": m.key_included,
            "sha256": m.sha256}),
    )
    .await?;
    Ok(m)
}

/// Reads and checks a backup's manifest.
pub fn read_manifest(src: &Path) -> Result<Manifest> {
    let p = src.join(MANIFEST);
    let text = std::fs::read_to_string(&p)
        .map_err(|e| Error::refused(format!("{}: {e} (is {} a tenure backup?)", p.display(), src.display())))?;
    let m: Manifest =
        serde_json::from_str(&text).map_err(|e| Error::refused(format!("{} is unreadable: {e}", p.display())))?;
    if m.format != FORMAT {
        return Err(Error::refused(format!(
            "{} is of backup format {}, this tenure reads {FORMAT}",
            p.display(),
            m.format
        )));
    }
    if m.schema_version > Store::build_schema_version() {
        return Err(Error::refused(format!(
            "the backup's schema ({}) is newer than this tenure's ({}): restore it with tenure {} or later",
            m.schema_version,
            Store::build_schema_version(),
            m.tenure_version
        )));
    }
    Ok(m)
}

/// Where a restore takes its key from.
pub enum KeyFrom {
    /// `TENURE_MASTER_KEY` is set: the store opens with it.
    Environment,
    /// A key file kept apart from the backup.
    File(PathBuf),
    /// The backup's own encrypted key.
    Passphrase(Secret),
}

/// What a restore did.
pub struct Restored {
    pub manifest: Manifest,
    pub secrets: usize,
}

/// `tenure restore SRC`: into an empty data folder only. The copy's checksum, its schema and
/// that the key opens every secret are checked before anything is kept; the store is marked as
/// restored, so its scheduled runs wait until a person confirms. Nothing is left half-made:
/// a check that fails removes what was written.
pub async fn restore(src: &Path, data_dir: &Path, key_from: KeyFrom) -> Result<Restored> {
    let m = read_manifest(src)?;
    if Store::exists_in(data_dir) || data_dir.join(KEY_FILE).exists() {
        return Err(Error::refused(format!(
            "{} holds a store already: a restore goes into an empty data folder only (give another --data-dir)",
            data_dir.display()
        )));
    }
    let key_text = match &key_from {
        KeyFrom::Environment => None,
        KeyFrom::File(p) => Some(
            std::fs::read_to_string(p)
                .map(|t| Secret::new(t.trim().to_string()))
                .map_err(|e| Error::refused(format!("cannot read {}: {e}", p.display())))?,
        ),
        KeyFrom::Passphrase(pass) => {
            if !m.key_included {
                return Err(Error::refused(
                    "this backup holds no key: give the master key kept apart (--key-file) or set TENURE_MASTER_KEY",
                ));
            }
            let text = std::fs::read_to_string(src.join(KEY_IN_BACKUP))
                .map_err(|e| Error::refused(format!("{}: {e}", src.join(KEY_IN_BACKUP).display())))?;
            Some(decrypt_key(&text, pass)?)
        }
    };
    store::secrets::private_dir(data_dir)
        .map_err(|e| Error::refused(format!("cannot make {}: {e}", data_dir.display())))?;
    let written = [data_dir.join(DB_FILE), data_dir.join(KEY_FILE)];
    let undo = |e: Error| {
        for f in &written {
            let _ = std::fs::remove_file(f);
        }
        let _ = std::fs::remove_dir_all(data_dir.join(ARCHIVE));
        e
    };
    let r = async {
        let db = data_dir.join(DB_FILE);
        std::fs::copy(src.join(DB_FILE), &db)
            .map_err(|e| Error::refused(format!("cannot copy {}: {e}", src.join(DB_FILE).display())))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600));
        }
        let (sha, _) = sha256_of(&db)?;
        if sha != m.sha256 {
            return Err(Error::refused(format!(
                "{} does not match its manifest's checksum: the backup is damaged",
                src.join(DB_FILE).display()
            )));
        }
        if let Some(k) = &key_text {
            write_private(&data_dir.join(KEY_FILE), k.expose())?;
        }
        let key = MasterKey::load(data_dir).map_err(Error::refused)?;
        if key.id() != m.key_fingerprint {
            return Err(Error::refused(format!(
                "the key given is {}, the backup's secrets are sealed under {}: give the key that was in force when \
                 it was taken",
                key.id(),
                m.key_fingerprint
            )));
        }
        copy_files(&src.join(ARCHIVE), &data_dir.join(ARCHIVE))?;
        let store = crate::config::open(data_dir, None).await?;
        let checked = async {
            let secrets = crate::keys::check_opens(&store, &key).await?;
            let mark = serde_json::json!({"restored_at": jiff::Timestamp::now().to_string(), "taken_at": m.taken_at,
                "audit_head": m.audit_head, "from": src.display().to_string(), "confirmed_by": null});
            store.set_setting(RESTORED, &mark.to_string()).await?;
            crate::decisions::record_one(&store, "store_restored", "", &crate::local::actor(), mark).await?;
            Ok::<_, Error>(secrets)
        }
        .await;
        store.close().await;
        checked
    }
    .await;
    match r {
        Ok(secrets) => Ok(Restored { manifest: m, secrets }),
        Err(e) => Err(undo(e)),
    }
}

/// A restored store not yet confirmed by a person: when it was restored and from what.
pub async fn unconfirmed_restore(store: &Store) -> Result<Option<serde_json::Value>> {
    let Some(v) = store.setting(RESTORED).await? else { return Ok(None) };
    let v: serde_json::Value = serde_json::from_str(&v).unwrap_or_default();
    Ok(v["confirmed_by"].is_null().then_some(v))
}

/// A person has looked at the restored store: its scheduled runs may start. Audited.
pub async fn confirm_restore(store: &Store, by: &str) -> Result<serde_json::Value> {
    let Some(mut v) = unconfirmed_restore(store).await? else {
        return Err(Error::not_found("this store is not a restored one waiting to be confirmed"));
    };
    v["confirmed_by"] = serde_json::Value::from(by);
    v["confirmed_at"] = serde_json::Value::from(jiff::Timestamp::now().to_string());
    store.set_setting(RESTORED, &v.to_string()).await?;
    crate::decisions::record_one(store, "store_restore_confirmed", "", by, v.clone()).await?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_opens_only_with_its_passphrase() {
        let key = Secret::new("ab".repeat(32));
        let pass = Secret::new("a long backup passphrase");
        let sealed = encrypt_key(&key, &pass).unwrap();
        assert!(!sealed.contains(key.expose()));
        assert_eq!(decrypt_key(&sealed, &pass).unwrap().expose(), key.expose());
        let wrong = decrypt_key(&sealed, &Secret::new("another long passphrase")).err().unwrap();
        assert!(wrong.to_string().contains("does not open"), "{wrong}");
        assert!(check_passphrase(&Secret::new("short")).is_err());
    }
}
