//! `tenure key rotate`: a new master key, every stored secret re-sealed under it.

use crate::config;
use clap::Subcommand;
use service::keys;
use std::path::Path;

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Re-seal every stored secret (connection tokens, the HR push and pull secrets, the
    /// notifiers' secrets) under a new master key, in one transaction. With the key file, the
    /// new key is made here and the old one is kept as master.key.old until `tenure serve`
    /// next starts. With TENURE_MASTER_KEY, put the new key there and the current one in
    /// TENURE_MASTER_KEY_PREVIOUS first; restart every node with the new key afterwards.
    Rotate,
}

pub async fn run(cmd: KeyCommand, data_dir: &Path, database_url: Option<&str>) -> Result<u8, String> {
    match cmd {
        KeyCommand::Rotate => {
            let store = config::open(data_dir, database_url).await?;
            let done = keys::rotate(&store, data_dir).await;
            store.close().await;
            let done = done?;
            let was = if done.from.is_empty() { String::new() } else { format!(" (was {})", done.from) };
            outln!("re-sealed {} secret(s) under master key {}{was}", done.resealed, done.to);
            match &done.old_kept_in {
                Some(path) => outln!(
                    "the old key is kept in {} until `tenure serve` next starts and finds every secret under the new one",
                    path.display()
                ),
                None => outln!(
                    "restart every tenure process with the new key in TENURE_MASTER_KEY; once they run, remove \
                     TENURE_MASTER_KEY_PREVIOUS"
                ),
            }
            Ok(0)
        }
    }
}
