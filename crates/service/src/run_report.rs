//! What a run came to: its outcome, summary and what it set aside; read by every door and by
//! the metrics.

/// What a run came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// Every action succeeded (or there was nothing to do).
    Done,
    /// Some actions failed; the others were applied.
    Failures,
    /// A guard refused it whole (a Reviewer's confirmation that did not match): nothing was
    /// applied.
    GuardRefused,
    /// A guard held the actions it refused (deactivations, team removals or reactivations);
    /// the rest of the run was applied.
    GuardHeld,
    /// Another run holds the connection: nothing was applied.
    Busy,
    /// The person asked before many creates said no: nothing was applied.
    NotConfirmed,
    /// Told to stop while waiting for the connection: nothing was applied.
    Stopped,
}

impl RunOutcome {
    /// The word the API and the metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Done => "succeeded",
            RunOutcome::Failures => "failed",
            RunOutcome::GuardRefused => "refused",
            RunOutcome::GuardHeld => "held",
            RunOutcome::Busy => "busy",
            RunOutcome::NotConfirmed => "not_confirmed",
            RunOutcome::Stopped => "stopped",
        }
    }
}

/// What an apply came to, for its door to tell.
pub struct Applied {
    pub outcome: RunOutcome,
    pub connection: String,
    pub summary: Option<engine::apply::Summary>,
    pub newly_dead: Vec<String>,
    /// The guard's verdict when it refused.
    pub guard: Option<serde_json::Value>,
    /// Another run holds the connection: who, since when.
    pub busy: Option<String>,
    /// What the SCIM client had to do.
    pub scim: scim_client::StatsSnapshot,
}

impl Applied {
    pub(crate) fn only(outcome: RunOutcome, connection: &str) -> Applied {
        let scim = scim_client::StatsSnapshot::default();
        Applied {
            outcome,
            connection: connection.into(),
            summary: None,
            newly_dead: vec![],
            guard: None,
            busy: None,
            scim,
        }
    }
}
