//! Decisions people make about provisioning (approvals, rejections, dead-letter retries, guard
//! confirmations, configuration imports, connection changes), recorded in the audit's hash
//! chain beside the actions, with who made them and their note.

use crate::error::{Error, Result};
use serde_json::{json, Value};
use store::{AuditEntry, Outcomes, Store};

/// One decision: `action` (approve, reject, dead_letter_retry, guard_confirm, config_import,
/// connection_add, token_rotate, connection_remove), on a worker when it concerns one.
pub struct Decision<'a> {
    pub action: &'a str,
    pub connection: &'a str,
    pub worker: &'a str,
    pub run_id: &'a str,
    pub actor: &'a str,
    pub note: Option<&'a str>,
    /// What it concerned (the review and the actions it released, the version imported, ...).
    pub detail: Value,
}

fn entry(d: &Decision<'_>) -> AuditEntry {
    let mut detail = json!({"actor": d.actor, "decision": true});
    if let Some(n) = d.note {
        detail["note"] = json!(n);
    }
    if let Value::Object(extra) = &d.detail {
        for (k, v) in extra {
            detail[k] = v.clone();
        }
    }
    AuditEntry {
        run_id: d.run_id.into(),
        connection: d.connection.into(),
        worker_id: d.worker.into(),
        action: d.action.into(),
        outcome: format!("decided by {}", d.actor),
        detail: detail.to_string(),
    }
}

/// Records decisions in the audit chain, all in one transaction.
pub async fn record(store: &Store, decisions: &[Decision<'_>]) -> Result<()> {
    if decisions.is_empty() {
        return Ok(());
    }
    let out = Outcomes { audit: decisions.iter().map(entry).collect(), ..Outcomes::default() };
    store
        .record_outcomes(&out)
        .await
        .map_err(|e| Error::refused(format!("cannot record the decision in the audit: {e}")))
}

/// Records one decision that concerns no worker and no run (an administration change, a
/// configuration import, a login failure).
pub async fn record_one(store: &Store, action: &str, connection: &str, actor: &str, detail: Value) -> Result<()> {
    record(store, &[Decision { action, connection, worker: "", run_id: "", actor, note: None, detail }]).await
}
