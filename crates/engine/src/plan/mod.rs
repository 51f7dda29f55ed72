//! The plan in named steps, each a module with its own tests on small hand-made inputs:
//! desired (HR x rules at a moment), actual (the target and the links, indexed), matching
//! (which account is whose: links, adoption, conversions, look-alikes), diff (the actions and
//! why), guard (whether the plan may apply unconfirmed).

mod actual;
mod desired;
mod diff;
pub mod guard;
mod matching;
#[cfg(test)]
mod testkit;

use crate::{Actual, Plan};
use hr::Worker;
use jiff::Timestamp;
use rules::{CompiledConnection, Rules};
use std::collections::{HashMap, HashSet};
use store::Link;

pub use guard::{guard, Verdict};

/// What one connection's plan is computed from.
pub struct Inputs<'a> {
    pub rules: &'a Rules,
    /// The connection's place in `rules.connections`.
    pub connection: usize,
    pub workers: &'a [Worker],
    pub actual: &'a Actual,
    pub links: &'a [Link],
    /// When tenure deactivated accounts (worker id to RFC 3339 moment), so a leaver's account
    /// is deleted once `hard_delete_after_days` have passed.
    pub deactivated: &'a HashMap<String, String>,
    /// The teams tenure made or put someone in on this connection (`store::TenureTeam`).
    pub tenure_teams: &'a [store::TenureTeam],
    pub now: Timestamp,
}

/// The settings a plan reads for every worker, resolved once.
pub(crate) struct Context<'a> {
    pub rules: &'a Rules,
    pub index: usize,
    pub conn: &'a CompiledConnection,
    pub lifecycle: hr::LifecycleConfig,
    /// Today in the default time zone: formulas' TODAY().
    pub today: jiff::civil::Date,
    pub now: Timestamp,
    pub custom: Vec<String>,
    /// The teams tenure removes people from (lower case): those the configuration names, those
    /// its formulas and team rules give anyone in this plan, and those tenure made or joined
    /// people to before. Any other team is never touched.
    pub managed_teams: HashSet<String>,
    /// userName is made unique at create (a namesake gets a number).
    pub user_name_unique: bool,
}

impl<'a> Context<'a> {
    pub fn new(rules: &'a Rules, index: usize, now: Timestamp) -> Result<Context<'a>, String> {
        let conn = &rules.connections[index];
        let lifecycle = rules.config.hr.lifecycle()?;
        let today = now.to_zoned(lifecycle.default_time_zone.clone()).date();
        Ok(Context {
            rules,
            index,
            conn,
            today,
            now,
            custom: rules.custom_fields().to_vec(),
            managed_teams: conn.managed_teams(rules).iter().map(|t| t.to_lowercase()).collect(),
            user_name_unique: conn.mappings.iter().any(|m| m.target == "userName" && m.unique),
            lifecycle,
        })
    }
}

/// Computes the plan for one connection, step by step.
pub fn plan(i: &Inputs) -> Result<Plan, String> {
    let t0 = std::time::Instant::now();
    let ms = || t0.elapsed().as_millis() as u64;
    let mut ctx = Context::new(i.rules, i.connection, i.now)?;
    let target = actual::index(i.actual, i.links);
    tracing::debug!(ms = ms(), "plan: target indexed");
    let wanted = desired::evaluate(&ctx, i.workers);
    tracing::debug!(ms = ms(), "plan: roles and mappings evaluated");
    ctx.managed_teams.extend(i.tenure_teams.iter().map(|t| t.name.to_lowercase()));
    // Each distinct name lower-cased once, not once per worker.
    let mut seen: HashSet<&str> = HashSet::new();
    for p in wanted.iter().flat_map(|w| &w.decision.placements) {
        if seen.insert(p.team.as_str()) {
            ctx.managed_teams.insert(p.team.to_lowercase());
        }
    }
    let matched = matching::assign(&ctx, &wanted, i.actual, &target);
    tracing::debug!(ms = ms(), "plan: accounts matched");
    let mut plan = diff::actions(&ctx, &wanted, matched, i.actual, &target, i.deactivated);
    tracing::debug!(ms = ms(), "plan: actions decided");
    teams_after(&mut plan, i.actual, i.tenure_teams, ctx.conn.remove_empty_teams);
    Ok(plan)
}

/// The members of each team the plan takes someone out of (the team guard's base) and, when
/// asked, the teams tenure made that the plan leaves with nobody in them.
fn teams_after(plan: &mut Plan, actual: &Actual, tenure_teams: &[store::TenureTeam], remove_empty: bool) {
    let mut change: HashMap<String, i64> = HashMap::new();
    for a in &plan.actions {
        let d = match a.kind {
            crate::Kind::TeamAdd => 1,
            crate::Kind::TeamRemove => -1,
            _ => continue,
        };
        *change.entry(a.team.as_deref().unwrap_or_default().to_lowercase()).or_default() += d;
    }
    let removing: HashSet<String> = plan
        .actions
        .iter()
        .filter(|a| a.kind == crate::Kind::TeamRemove)
        .filter_map(|a| a.team.as_deref().map(str::to_lowercase))
        .collect();
    let made: HashSet<String> = tenure_teams.iter().filter(|t| t.made).map(|t| t.name.to_lowercase()).collect();
    for g in &actual.groups {
        let name = crate::sv(g, "displayName");
        let key = name.to_lowercase();
        let members = g.get("members").and_then(serde_json::Value::as_array).map_or(0, Vec::len);
        if removing.contains(&key) {
            plan.team_members.insert(key.clone(), members);
        }
        if remove_empty && made.contains(&key) && members as i64 + change.get(&key).copied().unwrap_or(0) <= 0 {
            plan.empty_teams.push(name.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::*;
    use super::*;
    use crate::{Hold, Kind};
    use serde_json::json;

    /// The test rules with a team per department, added by a team rule whatever the role.
    fn rules_with_departments(settings: &str) -> Rules {
        let text = RULES.replacen("mode = \"roles\"\n", &format!("mode = \"roles\"\n{settings}\n"), 1)
            + "\n[[team_rule]]\nname = \"Departments\"\nteams = [\"=department\"]\n";
        Rules::compile(&rules::Config::from_toml("t.toml", &text).unwrap()).unwrap()
    }

    fn group(id: &str, name: &str, members: &[&str]) -> serde_json::Value {
        json!({"id": id, "displayName": name, "members": members.iter().map(|m| json!({"value": m})).collect::<Vec<_>>()})
    }

    fn plan_of(rules: &Rules, tenure_teams: &[store::TenureTeam]) -> Plan {
        let workers = [
            worker("1", "a@x.example", json!({"department": "Ops"})),
            worker("2", "b@x.example", json!({"department": "Ops", "employment_type": "contractor"})),
            worker("3", "c@x.example", json!({"department": null})),
        ];
        let actual = Actual {
            users: vec![
                account(
                    "u1",
                    "a@x.example",
                    json!({"displayName": "Ann Worker1", "title": "Analyst", "externalId": "1"}),
                ),
                account(
                    "u3",
                    "c@x.example",
                    json!({"displayName": "Ann Worker3", "title": "Analyst", "externalId": "3"}),
                ),
            ],
            groups: vec![
                group("g1", "Everyone", &["u1", "u3"]),
                group("g2", "Sales", &["u1", "u3"]),
                group("g3", "Finance", &["u1"]),
                group("g4", "Board", &["u1"]),
            ],
        };
        let links = [link("1", "u1"), link("3", "u3")];
        let i = Inputs {
            rules,
            connection: 0,
            workers: &workers,
            actual: &actual,
            links: &links,
            deactivated: &HashMap::new(),
            tenure_teams,
            now: now(),
        };
        plan(&i).unwrap()
    }

    fn of(p: &Plan, worker: &str) -> Vec<(Kind, Option<String>, String)> {
        p.actions.iter().filter(|a| a.worker == worker).map(|a| (a.kind, a.team.clone(), a.reason.clone())).collect()
    }

    #[test]
    fn a_mover_joins_the_department_team_a_rule_gives_and_leaves_the_one_tenure_put_them_in() {
        let finance = store::TenureTeam { name: "Finance".into(), made: true };
        let rules = rules_with_departments("remove_empty_teams = true");
        let p = plan_of(&rules, std::slice::from_ref(&finance));
        let t = |s: &str| Some(s.to_string());
        assert_eq!(
            of(&p, "1"),
            [
                (Kind::TeamAdd, t("Ops"), "team rule \"Departments\" puts the worker in \"Ops\"".into()),
                // Staff name their own team, so the default one is not theirs.
                (Kind::TeamRemove, t("Everyone"), "role \"Staff\" no longer puts the worker in \"Everyone\"".into()),
                (Kind::TeamRemove, t("Finance"), "role \"Staff\" no longer puts the worker in \"Finance\"".into()),
            ],
            "Board is not tenure's: left alone"
        );
        // A contractor's role names no team: the default team, and the department's by the rule.
        let hire: Vec<_> = of(&p, "2").into_iter().map(|(k, t, _)| (k, t)).collect();
        assert_eq!(hire, [(Kind::Create, None), (Kind::TeamAdd, t("Everyone")), (Kind::TeamAdd, t("Ops"))]);
        assert_eq!(p.missing_teams, ["Ops"], "made once, on first need");
        // A blank department cannot name a team: that worker is held, nothing sent for them.
        let held: Vec<_> = p.actions.iter().filter(|a| a.worker == "3").collect();
        assert_eq!(held.len(), 1);
        assert_eq!((held[0].kind, held[0].hold), (Kind::Skip, Some(Hold::Data)));
        assert!(held[0].reason.contains("\"=department\" gives a name that is empty"), "{}", held[0].reason);
        // Finance, which tenure made, is left empty: deleted at apply; its size is the guard's base.
        assert_eq!(p.empty_teams, ["Finance"]);
        assert_eq!(p.team_members.get("finance"), Some(&1));

        // Kept when the connection does not ask for removal.
        assert!(plan_of(&rules_with_departments(""), std::slice::from_ref(&finance)).empty_teams.is_empty());
        // A team tenure only joined people to is never deleted.
        let joined = store::TenureTeam { name: "Finance".into(), made: false };
        let p = plan_of(&rules, &[joined]);
        assert!(p.empty_teams.is_empty());
        assert_eq!(of(&p, "1").len(), 3, "but its members are tenure's to set");
        // A team no rule names and tenure never touched is not tenure's: nobody leaves it.
        let p = plan_of(&rules, &[]);
        assert!(!of(&p, "1").iter().any(|a| a.1.as_deref() == Some("Finance")), "{:?}", of(&p, "1"));
    }
}
