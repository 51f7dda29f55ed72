//! `tenure backup` and `tenure restore`: the store copied while it runs, and put back into an
//! empty data folder, over `service::backup`.

use crate::config;
use service::backup::{self, KeyFrom};
use std::path::{Path, PathBuf};
use store::{MasterKey, Secret};

fn passphrase(file: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    Ok(Secret::new(text.trim_end_matches(['\n', '\r']).to_string()))
}

pub async fn backup(
    data_dir: &Path,
    database_url: Option<&str>,
    dest: Option<PathBuf>,
    passphrase_file: Option<PathBuf>,
    check: bool,
) -> Result<u8, String> {
    let store = config::open(data_dir, database_url).await?;
    let r = async {
        let key = MasterKey::load(data_dir)?;
        if check {
            return check_store(&store, &key).await;
        }
        let dest = dest.ok_or("where to: `tenure backup DEST` (a new or empty folder), or --check")?;
        let pass = passphrase_file.as_deref().map(passphrase).transpose()?;
        let m = backup::backup(&store, data_dir, &key, &dest, pass.as_ref(), &crate::local::actor()).await?;
        outln!("backup in {}: {} bytes, sha256 {}", dest.display(), m.bytes, m.sha256);
        match &m.audit_head {
            Some(h) => outln!("audit head: record {} ({})", h.seq, h.hash),
            None => outln!("audit head: no record yet"),
        }
        outln!("schema {}, tenure {}, {} archived HR file(s)", m.schema_version, m.tenure_version, m.archived_files);
        if m.key_included {
            outln!("master key {} included, encrypted with the passphrase", m.key_fingerprint);
        } else {
            outln!(
                "master key {} NOT included: keep master.key apart from the backups (or back up with \
                 --key-passphrase-file)",
                m.key_fingerprint
            );
        }
        Ok(0)
    }
    .await;
    store.close().await;
    r
}

/// `tenure backup --check`: a store as a restore leaves it, verified: its schema, its audit
/// chain, and that the key opens every secret (for a PostgreSQL database restored by pg_dump
/// or point-in-time recovery, and any other).
async fn check_store(store: &store::Store, key: &MasterKey) -> Result<u8, String> {
    let mut bad = 0;
    match store.readiness().await {
        Ok(()) => outln!("schema: {} (this tenure's)", store::Store::build_schema_version()),
        Err(e) => {
            bad += 1;
            outln!("schema: {e}");
        }
    }
    let v = service::audit::verify(store).await.map_err(|e| e.to_string())?;
    match (&v.broken, &v.head) {
        (None, Some((seq, hash))) => {
            outln!("audit: {} records, chain intact; head: record {seq}, hash {hash}", v.records)
        }
        (None, None) => outln!("audit: 0 records"),
        (Some((seq, why)), _) => {
            bad += 1;
            outln!("audit: TAMPERED at record {seq}: {why}");
        }
    }
    match service::keys::check_opens(store, key).await {
        Ok(n) => outln!("secrets: {n}, every one opens with master key {}", key.id()),
        Err(e) => {
            bad += 1;
            outln!("secrets: {e}");
        }
    }
    Ok(if bad == 0 { 0 } else { 1 })
}

pub async fn restore(
    data_dir: &Path,
    database_url: Option<&str>,
    src: PathBuf,
    key_file: Option<PathBuf>,
    passphrase_file: Option<PathBuf>,
) -> Result<u8, String> {
    if database_url.is_some() {
        return Err("a PostgreSQL store is restored with pg_restore or the server's point-in-time recovery \
                    (README, \"Backup and restore\"); then `tenure backup --check`"
            .into());
    }
    let from = match (key_file, passphrase_file) {
        (Some(_), Some(_)) => return Err("give the key one way: --key-file or --key-passphrase-file".into()),
        (Some(f), None) => KeyFrom::File(f),
        (None, Some(p)) => KeyFrom::Passphrase(passphrase(&p)?),
        (None, None) if MasterKey::from_env() => KeyFrom::Environment,
        (None, None) => {
            return Err("the master key: --key-file (the master.key kept apart), --key-passphrase-file (a backup \
                        made with one), or TENURE_MASTER_KEY"
                .into())
        }
    };
    let r = backup::restore(&src, data_dir, from).await?;
    let m = &r.manifest;
    outln!(
        "restored into {}: the backup of {} (tenure {}, schema {})",
        data_dir.display(),
        m.taken_at,
        m.tenure_version,
        m.schema_version
    );
    if let Some(h) = &m.audit_head {
        outln!("audit head: record {} ({})", h.seq, h.hash);
    }
    outln!("{} secret(s) open with master key {}", r.secrets, m.key_fingerprint);
    outln!(
        "scheduled runs wait until a person confirms the restored store: `tenure restore confirm` (or the \
         console's dashboard), after reading the first plan"
    );
    Ok(0)
}

/// `tenure restore --confirm`: the restored store's scheduled runs may start.
pub async fn confirm(data_dir: &Path, database_url: Option<&str>) -> Result<u8, String> {
    let store = config::open(data_dir, database_url).await?;
    let r = backup::confirm_restore(&store, &crate::local::actor()).await;
    store.close().await;
    let v = r?;
    outln!(
        "the store restored at {} (from the backup of {}) is confirmed: scheduled runs start again",
        v["restored_at"].as_str().unwrap_or("?"),
        v["taken_at"].as_str().unwrap_or("?")
    );
    Ok(0)
}
