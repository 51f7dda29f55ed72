//! Holding actions back: a supervised stage's actions wait for a reviewer, and a worker whose
//! actions failed run after run waits on the dead-letter list. Both work on a worker's acting
//! actions as one unit, identified by a fingerprint of exactly what would be done, so a
//! decision holds for those actions and no others.

use crate::{Action, Hold, Kind, Plan};
use rules::Stage;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use store::{DeadLetter, Review, ReviewRequest};

/// The stages a worker's acting actions belong to: one lifecycle stage (hire, termination,
/// leave of absence, rehire) with whatever comes with it, or the changes of an active account
/// (attributes, teams, or both).
pub fn stages_of(actions: &[&Action]) -> Vec<Stage> {
    let has = |k: Kind| actions.iter().any(|a| a.kind == k);
    if has(Kind::Create) || has(Kind::Adopt) {
        vec![Stage::Hire]
    } else if actions.iter().any(|a| a.kind == Kind::Deactivate && a.on_leave) {
        vec![Stage::LeaveOfAbsence]
    } else if has(Kind::Deactivate) || has(Kind::Delete) {
        vec![Stage::Termination]
    } else if has(Kind::Reactivate) {
        vec![Stage::Rehire]
    } else {
        let mut v = vec![];
        if has(Kind::Update) {
            v.push(Stage::AttributeChange);
        }
        if has(Kind::TeamAdd) || has(Kind::TeamRemove) {
            v.push(Stage::TeamChange);
        }
        if v.is_empty() {
            v.push(Stage::AttributeChange);
        }
        v
    }
}

/// The stage a worker's acting actions are known by: the first of `stages_of`.
pub fn stage_of(actions: &[&Action]) -> Stage {
    stages_of(actions)[0]
}

/// What would be done, without the why: the same actions give the same text.
pub fn describe(actions: &[&Action]) -> Value {
    Value::Array(
        actions
            .iter()
            .map(|a| {
                let mut d = json!({"kind": a.kind, "target_id": a.target_id, "user_name": a.user_name, "team": a.team,
                       "changes": a.changes, "body": a.body});
                // Only when present: the fingerprints of reviews opened before stay the same.
                if let Some(r) = &a.review {
                    d["review"] = json!(r);
                }
                if let Some(m) = &a.moved_from {
                    d["moved_from"] = json!(m);
                }
                d
            })
            .collect(),
    )
}

pub fn fingerprint(actions: &[&Action]) -> String {
    let d = Sha256::digest(describe(actions).to_string().as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// What `hold` did to a plan.
#[derive(Debug, Default)]
pub struct Held {
    /// Every supervised worker's actions, for `Store::sync_reviews` (decided ones included, so
    /// their decisions stay in force).
    pub requests: Vec<ReviewRequest>,
    /// Approved reviews whose actions stay in the plan: (worker, review id).
    pub approved: Vec<(String, i64)>,
    /// Workers held as waiting for a decision.
    pub waiting: Vec<String>,
    /// Workers held as dead letters.
    pub dead: Vec<String>,
}

/// Replaces the acting actions of dead-lettered workers and of supervised stages awaiting (or
/// refused) a decision by one skip each, saying why.
pub fn hold(plan: &mut Plan, supervised: &[Stage], reviews: &[Review], dead: &[DeadLetter]) -> Held {
    let mut held = Held::default();
    let must_review = plan.actions.iter().any(|a| a.review.is_some());
    if supervised.is_empty() && !must_review && !dead.iter().any(|d| d.state == store::LetterState::Dead) {
        return held;
    }
    let mut by_worker: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, a) in plan.actions.iter().enumerate() {
        if a.kind.acts() {
            by_worker.entry(a.worker.clone()).or_default().push(i);
        }
    }
    let mut replace: HashMap<String, Action> = HashMap::new();
    let mut order: Vec<&String> = by_worker.keys().collect();
    order.sort();
    for w in order {
        let idx = &by_worker[w];
        let acts: Vec<&Action> = idx.iter().map(|i| &plan.actions[*i]).collect();
        let f = fingerprint(&acts);
        let stages = stages_of(&acts);
        // Known by the first stage supervised (a mover's team change, when only that is).
        let stage = stages.iter().copied().find(|s| supervised.contains(s)).unwrap_or(stages[0]);
        let skip = |hold: Hold, reason: String| Action {
            target_id: acts[0].target_id.clone(),
            user_name: acts[0].user_name.clone(),
            role: acts[0].role.clone(),
            hold: Some(hold),
            ..Action::new(w, Kind::Skip, reason)
        };
        if let Some(d) =
            dead.iter().find(|d| d.worker_id == *w && d.state == store::LetterState::Dead && d.fingerprint == f)
        {
            replace.insert(
                w.clone(),
                skip(
                    Hold::Dead,
                    format!(
                    "dead letter: failed {} run(s) in a row, last: {}; `tenure dead-letters retry {w}` to try again",
                    d.attempts, d.last_error
                ),
                ),
            );
            held.dead.push(w.clone());
            continue;
        }
        // Some actions need a reviewer on autopilot too (adopting an admin account).
        let why = acts.iter().find_map(|a| a.review.as_deref());
        if !stages.iter().any(|s| supervised.contains(s)) && why.is_none() {
            continue;
        }
        let stage_why = match why {
            Some(w) => format!("{}: {w}", stage.as_str()),
            None => stage.as_str().to_string(),
        };
        held.requests.push((w.clone(), stage.as_str().into(), f.clone(), describe(&acts).to_string()));
        match reviews.iter().find(|r| r.worker_id == *w && r.fingerprint == f) {
            Some(r) if r.state == store::ReviewState::Approved => held.approved.push((w.clone(), r.id)),
            Some(r) if r.state == store::ReviewState::Rejected => {
                let by = r.decided_by.clone().unwrap_or_default();
                let note = r.note.as_deref().map(|n| format!(": {n}")).unwrap_or_default();
                replace.insert(
                    w.clone(),
                    skip(Hold::Rejected, format!("{} rejected by {by} (review #{}){note}", stage.as_str(), r.id)),
                );
            }
            Some(r) => {
                replace.insert(
                    w.clone(),
                    skip(Hold::Waiting, format!("waiting for approval: {stage_why} (review #{})", r.id)),
                );
                held.waiting.push(w.clone());
            }
            None => {
                replace.insert(w.clone(), skip(Hold::Waiting, format!("waiting for approval: {stage_why}")));
                held.waiting.push(w.clone());
            }
        }
    }
    if replace.is_empty() {
        return held;
    }
    let held_workers: std::collections::HashSet<String> = replace.keys().cloned().collect();
    let mut out = Vec::with_capacity(plan.actions.len());
    for a in plan.actions.drain(..) {
        if a.kind.acts() && held_workers.contains(&a.worker) {
            // The first acting action becomes the worker's one skip; the rest go.
            if let Some(skip) = replace.remove(&a.worker) {
                out.push(skip);
            }
        } else {
            out.push(a);
        }
    }
    plan.actions = out;
    // Teams only held workers needed are not made.
    let still: std::collections::HashSet<&str> =
        plan.actions.iter().filter(|a| a.kind == Kind::TeamAdd).filter_map(|a| a.team.as_deref()).collect();
    plan.missing_teams.retain(|t| still.contains(t.as_str()));
    held
}

/// The (fingerprint, description) of these workers' acting actions, for the dead-letter count.
pub fn units(plan: &Plan, workers: &std::collections::HashSet<&str>) -> HashMap<String, (String, String)> {
    let mut by_worker: HashMap<&str, Vec<&Action>> = HashMap::new();
    for a in plan.actions.iter().filter(|a| a.kind.acts() && workers.contains(a.worker.as_str())) {
        by_worker.entry(a.worker.as_str()).or_default().push(a);
    }
    by_worker.into_iter().map(|(w, acts)| (w.to_string(), (fingerprint(&acts), describe(&acts).to_string()))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaver_plan() -> Plan {
        Plan {
            connection: "c".into(),
            actions: vec![
                Action { target_id: Some("u1".into()), ..Action::new("1", Kind::Deactivate, "terminated") },
                Action::new("2", Kind::Update, "title changed"),
            ],
            ..Plan::default()
        }
    }

    fn review(state: store::ReviewState, fingerprint: &str) -> Review {
        Review {
            id: 7,
            connection: "c".into(),
            worker_id: "1".into(),
            stage: "leave".into(),
            fingerprint: fingerprint.into(),
            actions: "[]".into(),
            state,
            requested_at: "2026-12-01T00:00:00Z".into(),
            decided_at: None,
            decided_by: Some("rita".into()),
            note: None,
            proposed_by: None,
            uploaded_by: None,
            started_by: None,
        }
    }

    #[test]
    fn each_stage_is_supervised_on_its_own() {
        let team = |w: &str, k: Kind| Action { team: Some("Sales".into()), ..Action::new(w, k, "moved") };
        let plan = || Plan {
            connection: "c".into(),
            actions: vec![
                Action::new("1", Kind::Deactivate, "leaver: terminated"),
                Action { on_leave: true, ..Action::new("2", Kind::Deactivate, "leave: suspended until the return") },
                Action::new("3", Kind::Update, "title changed"),
                team("4", Kind::TeamAdd),
                team("4", Kind::TeamRemove),
                // A mover whose title changed too: both kinds of change.
                Action::new("5", Kind::Update, "title changed"),
                team("5", Kind::TeamAdd),
                Action::new("6", Kind::Reactivate, "back"),
                Action::new("7", Kind::Create, "hire"),
                team("7", Kind::TeamAdd),
            ],
            ..Plan::default()
        };
        let held = |supervised: &[Stage]| {
            let mut p = plan();
            let mut h: Vec<(String, String)> =
                hold(&mut p, supervised, &[], &[]).requests.into_iter().map(|r| (r.0, r.1)).collect();
            h.sort();
            h
        };
        let w = |w: &str, s: &str| (w.to_string(), s.to_string());
        assert_eq!(held(&[Stage::Termination]), [w("1", "termination")], "a leave of absence is not a termination");
        assert_eq!(held(&[Stage::LeaveOfAbsence]), [w("2", "leave_of_absence")]);
        assert_eq!(held(&[Stage::TeamChange]), [w("4", "team_change"), w("5", "team_change")], "the mover too");
        assert_eq!(held(&[Stage::AttributeChange]), [w("3", "attribute_change"), w("5", "attribute_change")]);
        assert_eq!(held(&[Stage::Hire]), [w("7", "hire")], "a hire's team joins are part of the hire");
        assert_eq!(held(&[Stage::Rehire]), [w("6", "rehire")]);
        // The names of before cover what they covered.
        let old = rules::expand_stages(&[Stage::Leave, Stage::Change]);
        let ids: Vec<String> = held(&old).into_iter().map(|(w, _)| w).collect();
        assert_eq!(ids, ["1", "2", "3", "4", "5"]);
    }

    fn hold_of(plan: &Plan, worker: &str) -> Option<Hold> {
        plan.actions.iter().find(|a| a.worker == worker).and_then(|a| a.hold)
    }

    #[test]
    fn a_held_worker_says_why_as_a_kind_not_only_in_words() {
        let f = fingerprint(&[&leaver_plan().actions[0]]);
        // Supervised leavers wait for a reviewer; other workers go ahead, unheld.
        let mut p = leaver_plan();
        // "leave", the name of before, is read as it was meant: every deactivation.
        let leave = rules::expand_stages(&[Stage::Leave]);
        let held = hold(&mut p, &leave, &[], &[]);
        assert_eq!(held.waiting, vec!["1".to_string()]);
        assert_eq!((hold_of(&p, "1"), hold_of(&p, "2")), (Some(Hold::Waiting), None));
        assert_eq!(p.actions.iter().find(|a| a.worker == "1").map(|a| a.kind), Some(Kind::Skip));
        // Rejected by a reviewer.
        let mut p = leaver_plan();
        hold(&mut p, &leave, &[review(store::ReviewState::Rejected, &f)], &[]);
        assert_eq!(hold_of(&p, "1"), Some(Hold::Rejected));
        // Approved: acts, unheld.
        let mut p = leaver_plan();
        let held = hold(&mut p, &leave, &[review(store::ReviewState::Approved, &f)], &[]);
        assert_eq!((hold_of(&p, "1"), held.approved), (None, vec![("1".to_string(), 7)]));
        // A dead letter is set aside whatever the supervision.
        let dead = DeadLetter {
            connection: "c".into(),
            worker_id: "1".into(),
            fingerprint: f,
            actions: "[]".into(),
            attempts: 3,
            last_error: "500".into(),
            state: store::LetterState::Dead,
            first_at: String::new(),
            last_at: String::new(),
        };
        let mut p = leaver_plan();
        hold(&mut p, &[], &[], &[dead]);
        assert_eq!(hold_of(&p, "1"), Some(Hold::Dead));
    }
}
