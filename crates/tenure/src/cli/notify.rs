//! Notices of a run: lifecycle events done, failures, dead letters and reviews opened, sent to
//! signed webhooks and by e-mail (SMTP, through lettre) from editable templates. Delivery
//! never fails a run: a notice that cannot be sent is reported and the run goes on.

use crate::notify::*;
use crate::secrets;
use clap::Subcommand;
use std::path::{Path, PathBuf};
use store::{MasterKey, Secret};

#[derive(Subcommand)]
pub enum NotifyCommand {
    /// Set a notifier's secret: the webhook's signing key (generated and shown once when no
    /// file is given) or the SMTP password (from a file).
    Secret {
        /// The notifier's name (as in the configuration's [[notify]]).
        name: String,
        /// Read the secret from this file (an SMTP password); without it a webhook key is made and shown once.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Send one made-up notice through a notifier now, to check its address, secret and
    /// template before a run needs them. Exits 1 when it could not be delivered.
    Test {
        /// The notifier's name (as in the configuration's [[notify]]).
        name: String,
        /// The event to pretend (hire, change, leave, rehire, failure, dead_letter, review);
        /// by default the first the notifier listens to.
        #[arg(long)]
        event: Option<String>,
    },
}

pub async fn run(cmd: NotifyCommand, data_dir: &Path, database_url: Option<&str>) -> Result<u8, String> {
    match cmd {
        NotifyCommand::Test { name, event } => {
            let store = crate::config::open(data_dir, database_url).await?;
            let key = MasterKey::load(data_dir)?;
            let r = send_test(&store, &key, &name, event.as_deref()).await;
            store.close().await;
            match r? {
                Ok(said) => {
                    outln!("{said}");
                    Ok(0)
                }
                Err(problem) => {
                    outln!("not delivered: {problem}");
                    Ok(1)
                }
            }
        }
        NotifyCommand::Secret { name, file } => {
            let (secret, generated) = match file {
                Some(p) => {
                    let t = std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                    let t = t.trim_end_matches(['\r', '\n']).to_string();
                    if t.is_empty() {
                        return Err(format!("{} is empty", p.display()));
                    }
                    (Secret::new(t), false)
                }
                None => (secrets::generate_secret(), true),
            };
            let store = crate::config::open(data_dir, database_url).await?;
            let key = MasterKey::load(data_dir)?;
            let r = service::notify::set_secret(&store, &key, &name, &secret).await;
            store.close().await;
            r?;
            if generated {
                outln!(
                    "signing secret of {name:?} (shown once; give it to the webhook's receiver): {}",
                    secret.expose()
                );
            } else {
                outln!("secret of {name:?} set (ending in {})", secret.hint());
            }
            Ok(0)
        }
    }
}
