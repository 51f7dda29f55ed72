//! The three guards' word on a plan (mass deprovision, teams, reactivation), and what a refusal
//! holds: only the actions of the refused kind, never the rest of the run. Every door (the
//! plan, apply, the notices, the run's record) reads a refusal from here.

use engine::{Hold, Kind, Plan};
use serde_json::{json, Value};
use store::GuardKind;

/// A guard that refuses part of a plan: which, why, and the number that confirms it.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub guard: GuardKind,
    pub why: String,
    /// The exact number a person confirms: deactivations and deletions, team removals, or
    /// reactivations, as the plan counts them.
    pub count: usize,
}

impl Refusal {
    /// The guard, in words.
    pub fn name(&self) -> &'static str {
        match self.guard {
            GuardKind::Deprovision => "mass-deprovision guard",
            GuardKind::Teams => "team guard",
            GuardKind::Reactivation => "reactivation guard",
        }
    }
    /// What it holds, in words.
    pub fn holds(&self) -> &'static str {
        match self.guard {
            GuardKind::Deprovision => "deactivations",
            GuardKind::Teams => "team removals",
            GuardKind::Reactivation => "reactivations",
        }
    }
    /// The `apply` flag that confirms it.
    pub fn flag(&self) -> &'static str {
        match self.guard {
            GuardKind::Deprovision => "--confirm-deprovision",
            GuardKind::Teams => "--confirm-team-removals",
            GuardKind::Reactivation => "--confirm-reactivation",
        }
    }
    /// Whether this guard holds an action of this kind.
    fn covers(&self, k: Kind) -> bool {
        match self.guard {
            GuardKind::Deprovision => matches!(k, Kind::Deactivate | Kind::Delete),
            GuardKind::Teams => k == Kind::TeamRemove,
            GuardKind::Reactivation => k == Kind::Reactivate,
        }
    }
    /// As the plan's JSON, the run's record and the API carry it.
    pub fn view(&self) -> Value {
        json!({"guard": self.guard.as_str(), "name": self.name(), "why": self.why, "confirm_with": self.count,
            "flag": self.flag(), "holds": self.holds()})
    }
    /// The sentence a person reads: what is held, what goes on, and how to confirm.
    pub fn said(&self, connection: &str) -> String {
        format!(
            "the {} holds {} {}: {}. The rest of the run goes on. If this is right, confirm with `tenure apply \
             --connection {connection:?} {} {}`",
            self.name(),
            self.count,
            self.holds(),
            self.why.trim_end_matches('.'),
            self.flag(),
            self.count
        )
    }
}

/// Deactivations and deletions a plan holds: what the mass-deprovision guard counts.
pub fn deactivations(plan: &Plan) -> usize {
    plan.count(Kind::Deactivate) + plan.count(Kind::Delete)
}

/// What the plan would hold of each guard, in the order the guards are checked. `confirmed`
/// gives the numbers confirmed (deprovision, teams, reactivation): a guard confirmed with
/// its exact number refuses nothing.
pub fn refusals(plan: &Plan, conn: &rules::CompiledConnection, confirmed: [Option<usize>; 3]) -> Refusals {
    let mut out = Refusals::default();
    let checks = [
        (GuardKind::Deprovision, plan.guard(&conn.guard), deactivations(plan)),
        (GuardKind::Teams, plan.team_guard(&conn.team_guard), plan.count(Kind::TeamRemove)),
        (GuardKind::Reactivation, plan.reactivation_guard(&conn.reactivation_guard), plan.count(Kind::Reactivate)),
    ];
    for ((guard, why, count), confirm) in checks.into_iter().zip(confirmed) {
        let Some(why) = why else { continue };
        let r = Refusal { guard, why, count };
        if confirm == Some(count) {
            out.confirmed.push(r);
        } else {
            out.refused.push(r);
        }
    }
    out
}

/// The guards a plan meets: refused (held), and confirmed with their number (let through).
#[derive(Debug, Default)]
pub struct Refusals {
    pub refused: Vec<Refusal>,
    pub confirmed: Vec<Refusal>,
}

/// The guards' verdict as `plan --json` carries it: the first refusal's fields at the top
/// (as before there were several), every refusal under `guards`, and the deactivations.
pub fn verdict(plan: &Plan, conn: &rules::CompiledConnection) -> Value {
    verdict_of(&refusals(plan, conn, [None; 3]).refused, deactivations(plan))
}

/// The verdict of these refusals, for a plan with this many deactivations.
pub fn verdict_of(refused: &[Refusal], deactivations: usize) -> Value {
    let mut v = match refused.first() {
        Some(first) => {
            let mut v = first.view();
            v["refused"] = json!(true);
            v
        }
        None => json!({"refused": false}),
    };
    v["deactivations"] = json!(deactivations);
    if !refused.is_empty() {
        v["guards"] = Value::Array(refused.iter().map(Refusal::view).collect());
    }
    v
}

/// Holds what the refusals cover: each such action becomes a skip that says which guard holds
/// it and how to confirm; a worker whose reactivation is held has all its actions held (an
/// inactive account is not changed or put in teams). Returns the workers held.
pub fn hold(plan: &mut Plan, refused: &[Refusal]) -> Vec<String> {
    let whole: std::collections::HashSet<String> = plan
        .actions
        .iter()
        .filter(|a| a.kind == Kind::Reactivate && refused.iter().any(|r| r.covers(Kind::Reactivate)))
        .map(|a| a.worker.clone())
        .collect();
    let mut held = vec![];
    for a in plan.actions.iter_mut().filter(|a| a.kind.acts()) {
        let by = refused
            .iter()
            .find(|r| r.covers(a.kind))
            .or_else(|| whole.contains(&a.worker).then(|| refused.iter().find(|r| r.covers(Kind::Reactivate)))?);
        let Some(r) = by else { continue };
        a.reason = format!(
            "held by the {} ({} {}; confirm with {} {}): {} ({})",
            r.name(),
            r.count,
            r.holds(),
            r.flag(),
            r.count,
            a.kind.as_str(),
            a.reason
        );
        a.kind = Kind::Skip;
        a.hold = Some(Hold::Guard);
        if held.last() != Some(&a.worker) {
            held.push(a.worker.clone());
        }
    }
    held.sort();
    held.dedup();
    held
}
