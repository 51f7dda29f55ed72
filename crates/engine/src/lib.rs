//! tenure's provisioning engine: the desired accounts (workers x roles x mappings), the actual
//! ones (the target read page by page, and the link table), the plan between them, and its
//! application with every action journaled before and after its call.

pub mod apply;
pub mod paths;
pub mod plan;
pub mod review;

use hr::{Status, Worker};
use jiff::Timestamp;
use rules::formula::Value as FValue;
use rules::LeavePolicy;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// Where a worker's lifecycle stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Life {
    /// Hired, but the (pre-)hire moment has not come.
    NotYet,
    Active,
    OnLeave,
    Gone,
}

pub fn life(w: &Worker, cfg: &hr::LifecycleConfig, leave: LeavePolicy, now: Timestamp) -> Life {
    let gone_at = match (&w.status, w.termination_date) {
        (Status::Terminated, _) => Some(hr::lifecycle::termination_moment(w, cfg, now)),
        (_, Some(_)) => Some(hr::lifecycle::termination_moment(w, cfg, now)),
        _ => None,
    };
    if gone_at.is_some_and(|t| t <= now) {
        return Life::Gone;
    }
    if hr::lifecycle::hire_moment(w, cfg) > now {
        return Life::NotYet;
    }
    if let Status::Leave { .. } = w.status {
        let tz = hr::lifecycle::zone(w, cfg);
        let started = w.leave_start.is_none_or(|d| hr::lifecycle::start_of(d, &tz) <= now);
        if started && leave == LeavePolicy::Suspend {
            return Life::OnLeave;
        }
    }
    Life::Active
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Create,
    Adopt,
    Update,
    Deactivate,
    Reactivate,
    TeamAdd,
    TeamRemove,
    /// SCIM DELETE of a leaver's account, days after its deactivation (only when configured).
    Delete,
    NoChange,
    Skip,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Create => "create",
            Kind::Adopt => "adopt",
            Kind::Update => "update",
            Kind::Deactivate => "deactivate",
            Kind::Reactivate => "reactivate",
            Kind::TeamAdd => "team_add",
            Kind::TeamRemove => "team_remove",
            Kind::Delete => "delete",
            Kind::NoChange => "no_change",
            Kind::Skip => "skip",
        }
    }
    /// Whether it calls the target.
    pub fn acts(self) -> bool {
        !matches!(self, Kind::NoChange | Kind::Skip)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub attribute: String,
    pub before: Value,
    pub after: Value,
}

/// One thing to do (or not) for one worker, with why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub worker: String,
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Why: the lifecycle stage, the rule, the match.
    pub reason: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// The new account, for a create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// For an adopt: the worker the account was linked to (who left), whose link moves here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_from: Option<String>,
    /// Why a reviewer must decide this worker's actions even on autopilot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<String>,
    /// For a skip: what holds the worker back (its reason says it in words).
    #[serde(skip)]
    pub hold: Option<Hold>,
    /// For a deactivation: a leave of absence, rather than a termination (a leaver, or out of
    /// scope). Supervised separately.
    #[serde(skip)]
    pub on_leave: bool,
}

/// What holds a worker's actions back, so that no caller reads it from the reason's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// The HR data must change: an account that only looks like another, one that two workers
    /// match, a record known only from quarantined rows. No decision releases it.
    Data,
    /// A supervised stage or a sensitive action waits for a reviewer.
    Waiting,
    /// A reviewer rejected these actions.
    Rejected,
    /// Failed run after run: set aside on the dead-letter list.
    Dead,
    /// A guard refused this many of its kind at once: held until a person confirms the number,
    /// while the rest of the run goes on.
    Guard,
}

impl Action {
    /// An action with only its worker, kind and reason; the rest is filled in as it applies.
    pub fn new(worker: &str, kind: Kind, reason: impl Into<String>) -> Action {
        Action {
            worker: worker.to_string(),
            kind,
            target_id: None,
            user_name: None,
            role: None,
            reason: reason.into(),
            changes: vec![],
            body: None,
            team: None,
            moved_from: None,
            review: None,
            hold: None,
            on_leave: false,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub connection: String,
    pub actions: Vec<Action>,
    /// Accounts tenure did not make and cannot link: reported, never touched.
    pub unmanaged: Vec<String>,
    /// Active accounts tenure manages on the target (the guard's base).
    pub managed_active: usize,
    /// Inactive accounts tenure manages on the target (with the active ones, the reactivation
    /// guard's base).
    #[serde(skip)]
    pub managed_inactive: usize,
    /// Teams the plan needs that the target lacks (made at apply).
    pub missing_teams: Vec<String>,
    /// Teams tenure made that this plan leaves without a member, deleted at apply
    /// (`remove_empty_teams`; re-read first, so a member added meanwhile keeps the team).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub empty_teams: Vec<String>,
    /// Members each team the plan takes someone out of has now (lower-cased name): the team
    /// guard's base.
    #[serde(skip)]
    pub team_members: HashMap<String, usize>,
    /// The moment planned for (deactivations done are dated to it).
    pub at: String,
}

impl Plan {
    pub fn count(&self, k: Kind) -> usize {
        self.actions.iter().filter(|a| a.kind == k).count()
    }
    /// The guard: Some(why) when this plan deactivates too much to apply unconfirmed.
    pub fn guard(&self, g: &rules::DeprovisionGuard) -> Option<String> {
        plan::guard(self, g).refused
    }
    /// The reactivation guard: Some(why) when this plan reactivates too many managed accounts
    /// to apply unconfirmed.
    pub fn reactivation_guard(&self, g: &rules::ReactivationGuard) -> Option<String> {
        plan::guard::reactivations(self, g)
    }
    /// The team guard: Some(why) when this plan takes too many of one team's members out.
    pub fn team_guard(&self, g: &rules::TeamGuard) -> Option<String> {
        plan::guard::teams(self, g)
    }
}

/// The target as read: users and teams (groups).
#[derive(Debug, Clone, Default)]
pub struct Actual {
    pub users: Vec<Value>,
    pub groups: Vec<Value>,
}

fn s(v: &Value, k: &str) -> String {
    sv(v, k).to_string()
}

/// A text attribute, borrowed ("" when absent).
fn sv<'v>(v: &'v Value, k: &str) -> &'v str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

fn to_json(v: &FValue) -> Value {
    match v {
        FValue::Blank => Value::Null,
        FValue::Bool(b) => Value::Bool(*b),
        FValue::Number(n) => serde_json::Number::from_f64(*n).map(Value::Number).unwrap_or(Value::Null),
        other => Value::String(other.to_text()),
    }
}

/// Case-insensitive where SCIM says so (userName, e-mail values), by ASCII case only (see
/// `fold`); exact otherwise.
pub(crate) fn same(attr: &str, a: &Value, b: &Value) -> bool {
    let ci = attr == "userName" || attr.starts_with("emails");
    match (a, b) {
        (Value::String(x), Value::String(y)) if ci => x.eq_ignore_ascii_case(y),
        (Value::Null, Value::String(y)) | (Value::String(y), Value::Null) => y.is_empty(),
        _ => a == b,
    }
}

/// How userNames and e-mail addresses are compared when accounts are matched: ASCII letters
/// without case, every other character exactly. Never Unicode lowercase: it turns the Kelvin
/// sign (U+212A) into "k" and the dotted capital I into "i", so an address typed with a
/// look-alike would match (and take over) somebody else's account. Look-alikes are caught
/// apart, by `confusable`.
pub fn fold(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// A string's look-alike key (Unicode TR39 skeleton, of the lowercase): two addresses with the
/// same key but different `fold` are confusable, and neither is matched to the other.
pub fn confusable(s: &str) -> String {
    let lower = s.to_lowercase();
    unicode_security::confusable_detection::skeleton(&lower).collect::<String>().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_fold_by_ascii_case_only_and_look_alikes_share_a_key() {
        assert_eq!(fold("Ida.Moss@ACME.example"), fold("ida.moss@acme.example"));
        // Unicode lowercase would make these equal; folding keeps them apart.
        for (look, real) in [("\u{212A}im@x.example", "kim@x.example"), ("\u{130}da@x.example", "ida@x.example")] {
            assert_eq!(look.to_lowercase().replace('\u{307}', ""), real, "the trap being avoided");
            assert_ne!(fold(look), fold(real));
        }
        assert_eq!(confusable("\u{212A}im@x.example"), confusable("kim@x.example"));
        // Cyrillic а (U+0430) for Latin a.
        assert_eq!(confusable("\u{430}nn@x.example"), confusable("ann@x.example"));
        assert_ne!(confusable("ann@x.example"), confusable("bob@x.example"));
    }
}
