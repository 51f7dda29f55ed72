//! Master key rotation: every stored secret (connection tokens, the HR push and pull secrets,
//! the notifiers' secrets) re-sealed under a new key in one transaction, the old key kept
//! beside the new one until the next start of `tenure serve` finds every secret under the new.
//!
//! With key files, a rotation writes `master.key.new`, re-seals, then puts it in force and keeps
//! the old key as `master.key.old`; each step leaves files that open every secret, so a kill at
//! any point loses nothing and `tenure key rotate` run again finishes the work. With the key in
//! `TENURE_MASTER_KEY`, the operator puts the new key there and the current one in
//! `TENURE_MASTER_KEY_PREVIOUS`, and the rotation re-seals from the one to the other.

use crate::error::{Error, Result};
use crate::{notify, pull, secrets};
use std::path::Path;
use store::secrets::{rotation, MASTER_KEY_ENV, OLD_KEY_FILE, PREVIOUS_KEY_ENV};
use store::{MasterKey, Sealable, Store};

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    /// How many secrets were re-sealed.
    pub resealed: usize,
    /// The id of the key in force before (never the key itself).
    pub from: String,
    /// The id of the key in force now.
    pub to: String,
    /// Where the old key is kept until the next start, when it is in a file.
    pub old_kept_in: Option<std::path::PathBuf>,
}

/// What a start found and did about an earlier rotation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settled {
    /// A rotation had re-sealed every secret but not put its key in force: now it is.
    pub promoted: bool,
    /// Secrets found under a key other than the one in force (sealed by a process that had not
    /// seen the rotation yet, or under `TENURE_MASTER_KEY_PREVIOUS`), re-sealed.
    pub resealed: usize,
    /// The old key file, no longer needed, was removed.
    pub forgot_old: bool,
    /// A rotation was begun and not finished: `tenure key rotate` again finishes it.
    pub unfinished: bool,
}

/// The context a stored secret was sealed for: what `MasterKey::open` needs again.
fn context(item: &Sealable) -> std::result::Result<String, String> {
    match item {
        Sealable::Token { connection_id } => Ok(connection_id.clone()),
        Sealable::Setting { name, destination } => {
            let base = if name == secrets::SECRET_SETTING {
                secrets::SECRET_CONTEXT
            } else if name == pull::SECRET {
                pull::SECRET
            } else if name.starts_with(&notify::secret_setting("")) {
                notify::SECRET_CONTEXT
            } else if name == crate::oidc::SECRET_SETTING {
                crate::oidc::SECRET_CONTEXT
            } else if crate::second_factor::is_sealed_setting(name) {
                crate::second_factor::CONTEXT
            } else {
                // Re-sealing it for a guessed use would make it open for nothing.
                return Err(format!(
                    "the setting {name:?} holds a sealed value of a kind this version does not know; nothing was \
                     re-sealed (run the rotation with the version that stored it)"
                ));
            };
            Ok(secrets::bound(base, destination))
        }
    }
}

fn describe(item: &Sealable) -> String {
    match item {
        Sealable::Token { connection_id } => format!("the access token of connection {connection_id}"),
        Sealable::Setting { name, .. } => format!("the secret in setting {name:?}"),
    }
}

/// Checks that `key` opens every secret the store holds (a restored store, before it is used):
/// how many, or the first that does not open, said.
pub async fn check_opens(store: &Store, key: &MasterKey) -> Result<usize> {
    let items = store.sealed_items().await?;
    for (item, sealed) in &items {
        let ctx = context(item).map_err(Error::refused)?;
        key.open(sealed, &ctx)
            .map_err(|e| Error::refused(format!("{} does not open with this key: {e}", describe(item))))?;
    }
    Ok(items.len())
}

/// Every sealed secret opened with `opener` and sealed again with `sealer`, in one transaction.
async fn reseal(store: &Store, opener: &MasterKey, sealer: &MasterKey) -> Result<usize> {
    let n = store
        .reseal(|item, sealed| {
            let ctx = context(item)?;
            let secret = opener.open(sealed, &ctx).map_err(|e| format!("{}: {e}", describe(item)))?;
            Ok(sealer.seal(&secret, &ctx))
        })
        .await
        .map_err(|e| match e {
            // A secret that does not open, or one of an unknown kind: nothing changed.
            store::StoreError::Invalid(why) => Error::refused(format!("the rotation was not done: {why}")),
            e => Error::from(e),
        })?;
    Ok(n)
}

/// `tenure key rotate`: a new master key, every stored secret re-sealed under it in one
/// transaction, and the old key kept beside it until the next start.
pub async fn rotate(store: &Store, data_dir: &Path) -> Result<Rotated> {
    if MasterKey::from_env() {
        let key = MasterKey::load(data_dir).map_err(|e| Error::invalid(MASTER_KEY_ENV, e))?;
        let previous = key.others();
        if previous.is_empty() {
            return Err(Error::invalid(
                PREVIOUS_KEY_ENV,
                format!(
                    "the master key comes from {MASTER_KEY_ENV}: to rotate it, put a new key there (64 hex \
                     characters, e.g. from `openssl rand -hex 32`) and the current one in {PREVIOUS_KEY_ENV}, then \
                     run `tenure key rotate` again"
                ),
            ));
        }
        let resealed = reseal(store, &key, &key).await?;
        return Ok(Rotated { resealed, from: previous.join(", "), to: key.id(), old_kept_in: None });
    }
    let unreadable = |e: String| Error::unavailable(format!("the master key files: {e}"));
    let before = MasterKey::load(data_dir).map_err(unreadable)?;
    // Staged first, so that a kill at any later point leaves a key that opens what was sealed.
    let new = rotation::stage(data_dir).map_err(unreadable)?;
    let opener = MasterKey::load(data_dir).map_err(unreadable)?;
    let resealed = match reseal(store, &opener, &new).await {
        Ok(n) => n,
        Err(e) => {
            // Nothing changed: a staged key nothing is sealed under would only make the next
            // start say a rotation is unfinished.
            let ids = store.sealed_key_ids().await.unwrap_or_default();
            if !ids.iter().any(|(k, _)| *k == new.id()) {
                let _ = std::fs::remove_file(data_dir.join(store::secrets::NEW_KEY_FILE));
            }
            return Err(e);
        }
    };
    if let Err(e) = rotation::promote(data_dir) {
        // A `tenure serve` starting meanwhile may have put the key in force already.
        if MasterKey::load(data_dir).map(|k| k.id()).ok() != Some(new.id()) {
            return Err(unreadable(e));
        }
    }
    Ok(Rotated { resealed, from: before.id(), to: new.id(), old_kept_in: Some(data_dir.join(OLD_KEY_FILE)) })
}

/// At the start of `tenure serve`: finishes a rotation that re-sealed everything but did not
/// put its key in force, re-seals what a process sealed under the old key meanwhile, and
/// removes the old key once every secret is under the key in force.
pub async fn settle(store: &Store, key: &MasterKey) -> Result<Settled> {
    let mut out = Settled::default();
    let under = |ids: &[(String, usize)], id: &str| ids.iter().all(|(k, _)| k == id);
    if let Some(dir) = key.files() {
        if let Some(staged) = rotation::staged_id(dir) {
            let ids = store.sealed_key_ids().await?;
            // Every secret (or none at all) under the staged key: the rotation did its work.
            if under(&ids, &staged) {
                rotation::promote(dir).map_err(Error::unavailable)?;
                key.reload();
                out.promoted = true;
            } else {
                // Begun (perhaps running now, in another process): not ours to finish.
                out.unfinished = true;
                return Ok(out);
            }
        }
    }
    let primary = key.id();
    let ids = store.sealed_key_ids().await?;
    if ids.iter().any(|(k, _)| *k != primary && key.holds(k)) {
        out.resealed = reseal(store, key, key).await?;
    }
    if let Some(dir) = key.files() {
        if under(&store.sealed_key_ids().await?, &primary) {
            out.forgot_old = rotation::forget_old(dir)
                .map_err(|e| Error::unavailable(format!("cannot remove {}: {e}", dir.join(OLD_KEY_FILE).display())))?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::{NewConnection, Secret};

    async fn setup(tag: &str) -> Option<(std::path::PathBuf, Store)> {
        if MasterKey::from_env() {
            eprintln!("SKIPPED: {tag}: {MASTER_KEY_ENV} is set, and these tests are about the key files");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("tenure-keys-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open_in(&dir).await.unwrap();
        MasterKey::load_or_create(&dir).unwrap();
        Some((dir, store))
    }

    async fn connect(store: &Store, name: &str, token: &str, key: &MasterKey) {
        let c = NewConnection {
            name: name.into(),
            base_url: "https://acme.monday.com/scim/v2/".into(),
            dialect: "monday".into(),
            insecure_http: false,
            allow_private: false,
            rate_limit_per_second: None,
        };
        store.add_connection(&c, &Secret::new(token), key).await.unwrap();
    }

    async fn token(store: &Store, name: &str, key: &MasterKey) -> String {
        let c = store.connection(name).await.unwrap().unwrap();
        key.open(&c.token, &c.id).unwrap().expose().to_string()
    }

    #[tokio::test]
    async fn a_rotation_cut_before_its_key_was_put_in_force_is_finished_at_the_next_start() {
        let Some((dir, store)) = setup("cut").await else { return };
        let before = MasterKey::load(&dir).unwrap();
        connect(&store, "a", "token-a", &before).await;
        let new = rotation::stage(&dir).unwrap();
        reseal(&store, &MasterKey::load(&dir).unwrap(), &new).await.unwrap();
        // Killed here: every secret is under the staged key, which is not in force yet.
        let key = MasterKey::load(&dir).unwrap();
        assert_eq!(key.id(), before.id());
        let s = settle(&store, &key).await.unwrap();
        assert_eq!(s, Settled { promoted: true, resealed: 0, forgot_old: true, unfinished: false });
        let key = MasterKey::load(&dir).unwrap();
        assert_eq!(key.id(), new.id());
        assert!(key.others().is_empty(), "the old key is gone");
        assert_eq!(token(&store, "a", &key).await, "token-a");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn what_a_process_sealed_under_the_old_key_is_resealed_before_the_old_key_goes() {
        let Some((dir, store)) = setup("late").await else { return };
        let before = MasterKey::load(&dir).unwrap();
        connect(&store, "a", "token-a", &before).await;
        let done = rotate(&store, &dir).await.unwrap();
        assert_eq!((done.resealed, done.from.as_str()), (1, before.id().as_str()));
        // A `tenure serve` that has not restarted seals a new token with the key it loaded.
        connect(&store, "b", "token-b", &before).await;
        let key = MasterKey::load(&dir).unwrap();
        assert_eq!(key.id(), done.to);
        let s = settle(&store, &key).await.unwrap();
        assert_eq!(s, Settled { promoted: false, resealed: 2, forgot_old: true, unfinished: false });
        let key = MasterKey::load(&dir).unwrap();
        assert!(key.others().is_empty());
        assert_eq!(token(&store, "b", &key).await, "token-b");
        assert_eq!(store.sealed_key_ids().await.unwrap(), vec![(done.to.clone(), 2)]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_rotation_begun_and_not_done_is_left_for_the_next_rotate() {
        let Some((dir, store)) = setup("begun").await else { return };
        let before = MasterKey::load(&dir).unwrap();
        connect(&store, "a", "token-a", &before).await;
        let staged = rotation::stage(&dir).unwrap();
        let s = settle(&store, &MasterKey::load(&dir).unwrap()).await.unwrap();
        assert_eq!(s, Settled { unfinished: true, ..Settled::default() });
        assert_eq!(MasterKey::load(&dir).unwrap().id(), before.id(), "nothing put in force");
        let done = rotate(&store, &dir).await.unwrap();
        assert_eq!(done.to, staged.id(), "the staged key is taken");
        assert_eq!(token(&store, "a", &MasterKey::load(&dir).unwrap()).await, "token-a");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_secret_that_does_not_open_refuses_the_whole_rotation() {
        let Some((dir, store)) = setup("refused").await else { return };
        let key = MasterKey::load(&dir).unwrap();
        connect(&store, "a", "token-a", &key).await;
        connect(&store, "lost", "token-lost", &MasterKey::from_bytes([9; 32])).await;
        let ids = store.sealed_key_ids().await.unwrap();
        let err = rotate(&store, &dir).await.unwrap_err();
        assert!(matches!(err, Error::Refused(_)), "{err:?}");
        assert!(err.to_string().contains("the access token of connection"), "{err}");
        assert_eq!(store.sealed_key_ids().await.unwrap(), ids, "nothing re-sealed");
        assert_eq!(MasterKey::load(&dir).unwrap().id(), key.id(), "the key in force is unchanged");
        assert_eq!(rotation::staged_id(&dir), None, "no staged key left behind");
        assert_eq!(token(&store, "a", &key).await, "token-a");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
