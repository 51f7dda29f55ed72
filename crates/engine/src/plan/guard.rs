//! The plan's last step, guard: whether a plan deactivates (or deletes) so much of what tenure
//! manages that it must not apply without a person confirming it: an HR export cut short
//! would otherwise switch off half the company.

use crate::{Kind, Plan};
use rules::{DeprovisionGuard, ReactivationGuard, TeamGuard};
use std::collections::BTreeMap;

/// The guard's verdict on one plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Deactivations and deletions the plan holds.
    pub deactivations: usize,
    /// Active accounts tenure manages on the target (the share's base).
    pub managed_active: usize,
    /// Why the plan may not apply unconfirmed; None when it may.
    pub refused: Option<String>,
}

pub fn guard(plan: &Plan, g: &DeprovisionGuard) -> Verdict {
    let n = plan.count(Kind::Deactivate) + plan.count(Kind::Delete);
    let share = n as f64 / plan.managed_active.max(1) as f64;
    let refused = if n as u64 > g.max_count {
        Some(format!("{n} deactivations exceed the limit of {}", g.max_count))
    } else if n as u64 >= g.min_count && share > g.max_share {
        Some(format!(
            "{n} deactivations are {:.0}% of the {} active accounts, over the limit of {:.0}%",
            share * 100.0,
            plan.managed_active,
            g.max_share * 100.0
        ))
    } else {
        None
    };
    Verdict { deactivations: n, managed_active: plan.managed_active, refused }
}

/// The reactivation guard: why the plan may not apply unconfirmed, when it gives back access
/// to more of the accounts tenure manages than allowed at once. A store restored from before a
/// batch of leavers knows nothing of their deactivations: their accounts, inactive on the
/// target while its HR data still says they work here, would all come back in one run.
pub fn reactivations(plan: &Plan, g: &ReactivationGuard) -> Option<String> {
    let n = plan.count(Kind::Reactivate);
    let managed = plan.managed_active + plan.managed_inactive;
    let share = n as f64 / managed.max(1) as f64;
    if n as u64 > g.max_count {
        Some(format!("{n} reactivations exceed the limit of {}", g.max_count))
    } else if n as u64 >= g.min_count && share > g.max_share {
        Some(format!(
            "{n} reactivations are {:.0}% of the {managed} accounts tenure manages, over the limit of {:.0}%",
            share * 100.0,
            g.max_share * 100.0
        ))
    } else {
        None
    }
}

/// The team guard: why the plan may not apply unconfirmed, when it takes more than the
/// allowed share of some team's members out of it (from the minimum count), naming the teams.
pub fn teams(plan: &Plan, g: &TeamGuard) -> Option<String> {
    // By lower-cased name, in name order: the same plan gives the same words.
    let mut out: BTreeMap<String, (&str, usize)> = BTreeMap::new();
    for a in plan.actions.iter().filter(|a| a.kind == Kind::TeamRemove) {
        let team = a.team.as_deref().unwrap_or_default();
        out.entry(team.to_lowercase()).or_insert((team, 0)).1 += 1;
    }
    let over: Vec<String> = out
        .iter()
        .filter_map(|(key, (team, n))| {
            let members = plan.team_members.get(key).copied().unwrap_or(0).max(*n).max(1);
            let share = *n as f64 / members as f64;
            (*n as u64 >= g.min_count && share > g.max_share)
                .then(|| format!("{n} of the {members} members of {team:?} ({:.0}%)", share * 100.0))
        })
        .collect();
    (!over.is_empty()).then(|| {
        format!(
            "the run takes {} out of their team, over the limit of {:.0}% of a team",
            over.join(", "),
            g.max_share * 100.0
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Action;

    fn plan(deactivate: usize, delete: usize, managed_active: usize) -> Plan {
        let mut actions: Vec<Action> =
            (0..deactivate).map(|i| Action::new(&i.to_string(), Kind::Deactivate, "leaver")).collect();
        actions.extend((0..delete).map(|i| Action::new(&format!("d{i}"), Kind::Delete, "leaver")));
        actions.push(Action::new("x", Kind::Update, "change"));
        Plan { actions, managed_active, ..Plan::default() }
    }

    #[test]
    fn many_reactivations_at_once_wait_for_a_person() {
        let back = |n: usize, managed: usize| {
            let actions = (0..n).map(|i| Action::new(&i.to_string(), Kind::Reactivate, "back")).collect();
            Plan { actions, managed_active: managed - n, managed_inactive: n, ..Plan::default() }
        };
        let g = ReactivationGuard::default();
        assert_eq!(reactivations(&back(2, 10), &g), None, "under the minimum count");
        let why = reactivations(&back(10, 100), &g);
        assert_eq!(why, None, "10% is the limit, not over it");
        let why = reactivations(&back(10, 50), &g).unwrap();
        assert!(why.contains("10 reactivations are 20% of the 50 accounts"), "{why}");
        assert!(reactivations(&back(26, 10_000), &g).unwrap().contains("exceed the limit of 25"));
    }

    fn removals(teams: &[(&str, usize, usize)]) -> Plan {
        let mut p = Plan::default();
        for (team, out, members) in teams {
            for i in 0..*out {
                let mut a = Action::new(&format!("{team}{i}"), Kind::TeamRemove, "moved");
                a.team = Some(team.to_string());
                p.actions.push(a);
            }
            p.team_members.insert(team.to_lowercase(), *members);
        }
        p
    }

    #[test]
    fn a_team_losing_more_than_its_share_is_named_and_refused() {
        let g = TeamGuard { max_share: 0.3, min_count: 5 };
        let p = removals(&[("Sales", 6, 10), ("Support", 5, 40)]);
        assert_eq!(
            teams(&p, &g).as_deref(),
            Some("the run takes 6 of the 10 members of \"Sales\" (60%) out of their team, over the limit of 30% of a team")
        );
        // Many teams each losing a few: everyday moves, not a reorganisation.
        assert_eq!(teams(&removals(&[("A", 4, 5), ("B", 4, 5), ("C", 3, 3)]), &g), None);
        // Exactly the share is allowed; one more is not.
        assert_eq!(teams(&removals(&[("A", 6, 20)]), &g), None);
        assert!(teams(&removals(&[("A", 7, 20)]), &g).is_some());
        // A team's name in another case is the same team.
        let mut p = removals(&[("Ops", 3, 8)]);
        p.actions.extend(removals(&[("ops", 3, 8)]).actions);
        assert!(teams(&p, &g).unwrap().contains("6 of the 8 members"), "{:?}", teams(&p, &g));
    }

    fn limits(max_count: u64, min_count: u64, max_share: f64) -> DeprovisionGuard {
        DeprovisionGuard { max_count, min_count, max_share }
    }

    #[test]
    fn a_plan_over_the_count_is_refused_whatever_the_share() {
        let v = guard(&plan(8, 3, 10_000), &limits(10, 5, 0.5));
        assert_eq!(v.deactivations, 11, "deletions count as deactivations");
        assert_eq!(v.refused.as_deref(), Some("11 deactivations exceed the limit of 10"));
        assert_eq!(guard(&plan(10, 0, 10_000), &limits(10, 5, 0.5)).refused, None, "the limit itself is allowed");
    }

    #[test]
    fn a_plan_over_the_share_is_refused_only_from_the_minimum_count() {
        let g = limits(1_000, 5, 0.10);
        let v = guard(&plan(6, 0, 40), &g);
        assert_eq!(
            v.refused.as_deref(),
            Some("6 deactivations are 15% of the 40 active accounts, over the limit of 10%")
        );
        assert_eq!(guard(&plan(4, 0, 10), &g).refused, None, "40% but under the minimum count");
        assert_eq!(guard(&plan(6, 0, 60), &g).refused, None, "exactly 10% is allowed");
        // No account managed yet: the share's base is one, not zero.
        assert!(guard(&plan(5, 0, 0), &g).refused.is_some());
    }
}
