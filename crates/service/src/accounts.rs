//! The accounts tenure manages, per connection: which worker each belongs to, its state as
//! tenure left it, and the last thing done to it. Read from the store alone (the links, the
//! deactivations and the audit), so it answers without calling the target.

use crate::error::{Error, Result};
use serde::Serialize;
use store::Store;

/// One account tenure manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Managed {
    pub connection: String,
    pub worker: String,
    /// The worker's name in the last HR data (empty when they are gone from it).
    pub name: String,
    pub user_name: String,
    pub target_id: String,
    /// "active", or "inactive" since tenure deactivated it.
    pub state: &'static str,
    pub deactivated_at: Option<String>,
    /// created or adopted, and when the link was made.
    pub origin: String,
    pub linked_at: String,
    /// The newest audit record of the worker on this connection: action, outcome, moment.
    pub last_action: Option<LastAction>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastAction {
    pub action: String,
    pub outcome: String,
    pub at: String,
}

/// Every account tenure manages on the connections named (all when none), by connection then
/// worker id.
pub async fn list(store: &Store, connection: Option<&str>) -> Result<Vec<Managed>> {
    let stored = store.connections().await?;
    let names: Vec<String> = match connection {
        Some(c) if !stored.iter().any(|s| s.name == c) => {
            return Err(Error::not_found(format!(
                "no connection named {c:?}; the connections are: {}",
                stored.iter().map(|s| format!("{:?}", s.name)).collect::<Vec<_>>().join(", ")
            )))
        }
        Some(c) => vec![c.to_string()],
        None => stored.iter().map(|s| s.name.clone()).collect(),
    };
    let workers: std::collections::HashMap<String, String> = crate::intake::workers(store)
        .await?
        .into_iter()
        .map(|w| {
            let name =
                format!("{} {}", w.preferred_name.as_ref().unwrap_or(&w.first_name).as_str(), w.last_name.as_str());
            (w.id.as_str().to_string(), name)
        })
        .collect();
    let mut out = vec![];
    for c in names {
        let deactivated = store.deactivations(&c).await?;
        let mut last = store.last_actions(&c).await?;
        let mut links = store.links(&c).await?;
        links.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
        for l in links {
            let at = deactivated.get(&l.worker_id).cloned();
            out.push(Managed {
                connection: c.clone(),
                name: workers.get(&l.worker_id).cloned().unwrap_or_default(),
                state: if at.is_some() { "inactive" } else { "active" },
                deactivated_at: at,
                last_action: last.remove(&l.worker_id).map(|(action, outcome, at)| LastAction { action, outcome, at }),
                worker: l.worker_id,
                user_name: l.user_name,
                target_id: l.target_id,
                origin: l.origin,
                linked_at: l.linked_at,
            });
        }
    }
    Ok(out)
}
