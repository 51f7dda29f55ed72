//! The plan's fourth step, diff: for each worker, what to do and why. A worker without an
//! account is created (with its teams) when active and granted; one with an account is adopted
//! if unlinked, deactivated, reactivated or deleted as its lifecycle says, then updated where
//! attributes differ and put in or out of teams. Everything else is said as "no change".

use super::actual::Target;
use super::desired::Wanted;
use super::matching::{Account, Conflicts, Matched};
use super::Context;
use crate::{paths, s, same, sv, Action, Actual, Change, Hold, Kind, Life, Plan};
use jiff::Timestamp;
use rules::{Apply, GrantView};
use serde_json::Value;
use std::collections::HashMap;

/// Whether an account is an administrator of the target (monday.com's user type, or a SCIM role).
fn is_admin(u: &Value) -> bool {
    sv(u, "userType").eq_ignore_ascii_case("admin")
        || u.get("roles").and_then(Value::as_array).into_iter().flatten().any(|r| {
            let v = r.get("value").and_then(Value::as_str).or_else(|| r.as_str()).unwrap_or_default();
            v.eq_ignore_ascii_case("admin") || v.eq_ignore_ascii_case("administrator")
        })
}

/// Why a worker without an account gets none, in the operator's words.
fn no_account(life: Life, why_role: &str) -> String {
    match life {
        Life::Gone => format!("terminated ({why_role})"),
        Life::OnLeave => format!("on leave ({why_role})"),
        Life::NotYet => format!("not hired yet ({why_role})"),
        Life::Active => why_role.to_string(),
    }
}

/// The role part of every reason.
fn why_role(w: &Wanted) -> String {
    match (&w.decision.role, w.decision.grant.is_some()) {
        (Some(r), true) => format!("role {r:?}"),
        (Some(r), false) => format!("role {r:?} grants nothing on this connection"),
        (None, _) => "no role matches".into(),
    }
}

/// Why a worker joins a team: the role's words for the grant's teams (as before team rules),
/// the rule's for a team rule's.
fn why_team(w: &Wanted, team: &str, why_role: &str) -> String {
    match w.decision.placements.iter().find(|p| p.team.eq_ignore_ascii_case(team)).map(|p| &p.by) {
        Some(by @ rules::PlacedBy::TeamRule(_)) => format!("{by} puts the worker in {team:?}"),
        _ => format!("{why_role} puts the worker in {team:?}"),
    }
}

/// An action for this worker (and its account, if it has one).
fn act(w: &Wanted, acc: Option<Account>, kind: Kind, reason: String) -> Action {
    let mut a = Action::new(w.id(), kind, reason);
    a.target_id = acc.map(|a| s(a.user, "id"));
    a.user_name = acc.map(|a| s(a.user, "userName"));
    a.role = w.decision.role.clone();
    a
}

struct Diff<'c, 't, 'w> {
    ctx: &'c Context<'c>,
    t: &'t Target<'t>,
    deactivated: &'t HashMap<String, String>,
    /// Unique user names are settled at create: taken are all names on the target.
    taken: rules::UniqueNames,
    /// Attribute paths, compiled once per plan (keyed by the wanted workers' own target names).
    compiled: HashMap<&'w str, paths::Compiled>,
    /// The target's teams tenure manages, as the target spells them: a member's team is
    /// looked up as it is, not lower-cased once per membership.
    managed: std::collections::HashSet<&'t str>,
    out: Plan,
}

pub(crate) fn actions(
    ctx: &Context,
    wanted: &[Wanted],
    matched: Matched,
    actual: &Actual,
    t: &Target,
    deactivated: &HashMap<String, String>,
) -> Plan {
    let Matched { accounts, held, unmanaged } = matched;
    let out = Plan { connection: ctx.conn.name.clone(), at: ctx.now.to_string(), unmanaged, ..Plan::default() };
    let taken = rules::UniqueNames::new(actual.users.iter().map(|u| s(u, "userName")));
    let managed = actual
        .groups
        .iter()
        .map(|g| sv(g, "displayName"))
        .filter(|n| ctx.managed_teams.contains(&n.to_lowercase()))
        .collect();
    let mut d = Diff { ctx, t, deactivated, taken, compiled: HashMap::new(), managed, out };
    for (w, acc) in wanted.iter().zip(accounts) {
        d.worker(w, acc, &held);
    }
    d.out
}

impl<'w> Diff<'_, '_, 'w> {
    fn push(&mut self, a: Action) {
        self.out.actions.push(a);
    }

    /// A team the plan puts someone in that the target lacks: made at apply.
    fn need_team(&mut self, team: &str) {
        if !self.t.team_ids.contains_key(&team.to_lowercase()) && !self.out.missing_teams.iter().any(|m| m == team) {
            self.out.missing_teams.push(team.to_string());
        }
    }

    fn worker(&mut self, w: &'w Wanted, acc: Option<Account>, held: &Conflicts) {
        let start = self.out.actions.len();
        let why_role = why_role(w);
        if !w.errors.is_empty() && w.life != Life::Gone {
            return self.push(act(w, acc, Kind::Skip, format!("invalid data: {}", w.errors.join("; "))));
        }
        if !w.decision.team_errors.is_empty() && w.life == Life::Active {
            // A bad name is never sent: the worker waits until HR data gives a good one.
            let mut held = act(
                w,
                acc,
                Kind::Skip,
                format!("held: a team cannot be named from the HR data: {}", w.decision.team_errors.join("; ")),
            );
            held.hold = Some(Hold::Data);
            return self.push(held);
        }
        if let Some(why) = held.conflict.get(w.id()).filter(|_| w.life != Life::Gone) {
            let mut held = act(w, acc, Kind::Skip, why.clone());
            held.hold = Some(Hold::Data);
            return self.push(held);
        }
        let Some(a) = acc else { return self.without_account(w, &why_role) };
        let active = a.user.get("active").and_then(Value::as_bool).unwrap_or(true);
        if active {
            self.out.managed_active += 1;
        } else {
            self.out.managed_inactive += 1;
        }
        if !a.linked {
            self.push(self.adopt(w, a, held));
        }
        let keep = w.decision.grant.is_none() && self.ctx.conn.keep_on_role_change && w.life == Life::Active;
        let want_active = w.life == Life::Active && (w.decision.grant.is_some() || keep);
        if !self.lifecycle(w, a, active, want_active, &why_role) {
            return;
        }
        if keep {
            return self.push(act(w, acc, Kind::NoChange, format!("kept by keep_on_role_change ({why_role})")));
        }
        let grant = w.decision.grant.as_ref().expect("wanted active and not kept: in scope");
        let changes = self.attribute_changes(w, a.user, grant);
        if !changes.is_empty() {
            let mut u = act(w, acc, Kind::Update, format!("change: {why_role}"));
            u.changes = changes;
            self.push(u);
        }
        self.team_changes(w, a, grant, &why_role);
        if self.out.actions.len() == start {
            self.push(act(w, acc, Kind::NoChange, format!("in step ({why_role})")));
        }
    }

    fn without_account(&mut self, w: &Wanted, why_role: &str) {
        let (kind, reason) = match (w.life, &w.decision.grant) {
            (Life::Active, Some(g)) => return self.create(w, g, why_role),
            (Life::NotYet, Some(_)) => (Kind::Skip, "effective date not reached: not hired yet".to_string()),
            (Life::OnLeave, Some(_)) => (Kind::Skip, "on leave: the account is made on return".to_string()),
            _ => (Kind::NoChange, format!("no account: {}", no_account(w.life, why_role))),
        };
        self.push(act(w, None, kind, reason));
    }

    /// The new account's body from the mappings (unique values claimed now), then its teams.
    fn create(&mut self, w: &Wanted, g: &GrantView, why_role: &str) {
        let mut body = serde_json::json!({"schemas": [scim::schema::USER]});
        for attr in &w.attrs {
            let mut v = attr.value.clone();
            if attr.unique {
                if let Some(text) = v.as_str() {
                    v = Value::String(self.taken.claim(text));
                }
            } else if attr.target == "userName" {
                self.taken.reserve(v.as_str().unwrap_or_default());
            }
            if !v.is_null() {
                paths::set(&mut body, &attr.target, v);
            }
        }
        if let Some(t) = &g.user_type {
            body["userType"] = Value::String(t.clone());
        }
        body["active"] = Value::Bool(true);
        let user_name = body.get("userName").and_then(Value::as_str).map(str::to_string);
        let mut a = act(w, None, Kind::Create, format!("hire: {why_role}"));
        a.user_name = user_name.clone();
        a.body = Some(body);
        self.push(a);
        for t in g.teams.iter().chain(&g.groups) {
            self.need_team(t);
            let mut a = act(w, None, Kind::TeamAdd, why_team(w, t, why_role));
            a.team = Some(t.clone());
            // The account the create makes: a reviewer sees whom the join is for.
            a.user_name = user_name.clone();
            self.push(a);
        }
    }

    /// An account found for a worker not linked to it: taken over, moved from a leaver, or
    /// (an administrator tenure did not make) put before a reviewer.
    fn adopt(&self, w: &Wanted, a: Account, held: &Conflicts) -> Action {
        let how = if sv(a.user, "userName").eq_ignore_ascii_case(w.text("userName").unwrap_or("")) {
            "userName"
        } else {
            "e-mail or externalId"
        };
        let mut adopt = act(w, Some(a), Kind::Adopt, format!("an existing account matches by {how}"));
        if let Some((_, from)) = held.moved_to.get(w.id()) {
            adopt.reason = format!(
                "{}; it was linked to worker {from}, who has left: the link moves to this worker (a conversion or a \
                 rehire under a new employee id)",
                adopt.reason
            );
            adopt.moved_from = Some(from.to_string());
        } else if is_admin(a.user) && !self.ctx.conn.adopt_admins {
            adopt.review = Some("adopts an admin account tenure did not create (adopt_admins = true allows it)".into());
        }
        adopt
    }

    /// Deactivation, reactivation and deletion; false when nothing more is planned for the worker.
    fn lifecycle(&mut self, w: &Wanted, a: Account, active: bool, want_active: bool, why_role: &str) -> bool {
        if active && !want_active {
            let reason = match w.life {
                Life::Gone => "leaver: terminated".to_string(),
                Life::OnLeave => "leave: suspended until the return".to_string(),
                Life::NotYet => "not hired yet (hire date moved)".to_string(),
                Life::Active => format!("out of scope: {why_role}"),
            };
            let mut d = act(w, Some(a), Kind::Deactivate, reason);
            d.on_leave = w.life == Life::OnLeave;
            self.push(d);
            return false;
        }
        if !active && want_active {
            self.push(act(w, Some(a), Kind::Reactivate, format!("back: {why_role}")));
        }
        if want_active {
            return true;
        }
        // Only leavers' accounts, only those tenure deactivated, only once the days are up.
        let since = self.deactivated.get(w.id()).and_then(|t| t.parse::<Timestamp>().ok());
        let (kind, reason) = match (self.ctx.conn.hard_delete_after_days, since, w.life, a.linked) {
            (Some(days), Some(since), Life::Gone, true) => {
                let due = since + jiff::SignedDuration::from_hours(24 * days as i64);
                if due <= self.ctx.now {
                    (Kind::Delete, format!("leaver: deleted {days} day(s) after deactivation on {since}"))
                } else {
                    (Kind::NoChange, format!("inactive, as wanted; deleted from {due}"))
                }
            }
            _ => (Kind::NoChange, "inactive, as wanted".to_string()),
        };
        self.push(act(w, Some(a), kind, reason));
        false
    }

    /// Attributes that differ (mappings applied always, not the unique ones settled at create),
    /// and the user type the grant gives.
    fn attribute_changes(&mut self, w: &'w Wanted, u: &Value, g: &GrantView) -> Vec<Change> {
        let mut changes = vec![];
        for attr in w.attrs.iter().filter(|a| a.apply != Apply::OnCreate && !a.unique) {
            let path = self.compiled.entry(attr.target.as_str()).or_insert_with(|| paths::compile(&attr.target));
            let cur = path.get(u).unwrap_or(&Value::Null);
            if !same(&attr.target, cur, &attr.value) {
                changes.push(Change { attribute: attr.target.clone(), before: cur.clone(), after: attr.value.clone() });
            }
        }
        if let Some(t) = &g.user_type {
            let cur = u.get("userType").cloned().unwrap_or(Value::Null);
            if cur.as_str().map(str::to_lowercase).as_deref() != Some(t.as_str()) {
                changes.push(Change { attribute: "userType".into(), before: cur, after: Value::String(t.clone()) });
            }
        }
        changes
    }

    /// Joins the grant asks for that the account lacks, and leaves of teams tenure manages
    /// that the grant no longer names (a team tenure does not manage is never touched).
    fn team_changes(&mut self, w: &Wanted, a: Account, g: &GrantView, why_role: &str) {
        let mut want: Vec<&String> = vec![];
        for t in g.teams.iter().chain(&g.groups) {
            if !want.contains(&t) {
                want.push(t);
            }
        }
        let t = self.t;
        let have: &[&str] = t.members.get(sv(a.user, "id")).map_or(&[], Vec::as_slice);
        for team in &want {
            if !have.iter().any(|h| h.eq_ignore_ascii_case(team)) {
                self.need_team(team);
                let mut join = act(w, Some(a), Kind::TeamAdd, why_team(w, team, why_role));
                join.team = Some((*team).clone());
                self.push(join);
            }
        }
        for h in have {
            let managed = self.managed.contains(h);
            if managed && !want.iter().any(|t| t.eq_ignore_ascii_case(h)) {
                let mut leave =
                    act(w, Some(a), Kind::TeamRemove, format!("{why_role} no longer puts the worker in {h:?}"));
                leave.team = Some(h.to_string());
                self.push(leave);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testkit::*;
    use crate::plan::{actual, desired, matching};
    use serde_json::json;
    use store::Link;

    struct Given {
        rules: rules::Rules,
        users: Vec<Value>,
        groups: Vec<Value>,
        links: Vec<Link>,
        deactivated: HashMap<String, String>,
    }

    fn given(users: Vec<Value>) -> Given {
        Given { rules: rules(), users, groups: vec![], links: vec![], deactivated: HashMap::new() }
    }

    impl Given {
        fn plan(&self, workers: &[hr::Worker]) -> Plan {
            let ctx = context(&self.rules);
            let wanted = desired::evaluate(&ctx, workers);
            let actual = Actual { users: self.users.clone(), groups: self.groups.clone() };
            let t = actual::index(&actual, &self.links);
            let m = matching::assign(&ctx, &wanted, &actual, &t);
            actions(&ctx, &wanted, m, &actual, &t, &self.deactivated)
        }
    }

    fn kinds(p: &Plan) -> Vec<(String, Kind, String)> {
        p.actions.iter().map(|a| (a.worker.clone(), a.kind, a.reason.clone())).collect()
    }

    /// A Staff worker's account as the rules want it, linked, in Sales.
    fn in_step(id: &str, email: &str) -> Value {
        account(
            id,
            email,
            json!({"displayName": format!("Ann Worker{}", &id[1..]), "title": "Analyst", "externalId": &id[1..]}),
        )
    }

    #[test]
    fn a_hire_is_created_with_its_body_and_teams_and_a_namesake_is_numbered() {
        let g = given(vec![account("u1", "taken@x.example", json!({}))]);
        let p = g.plan(&[
            worker("1", "taken@x.example", json!({"hire_date": "2026-03-01"})),
            worker("2", "ann@x.example", json!({})),
        ]);
        // Worker 1 would adopt the account of the same address; worker 2 is new.
        assert_eq!(p.actions[0].kind, Kind::Create);
        let body = p.actions[0].body.as_ref().unwrap();
        assert_eq!(body["userName"], "ann@x.example");
        assert_eq!(body["userType"], "member");
        assert_eq!(body["active"], true);
        assert_eq!(body["externalId"], "2");
        assert_eq!(p.actions[0].reason, "hire: role \"Staff\"");
        assert_eq!((p.actions[1].kind, p.actions[1].team.as_deref()), (Kind::TeamAdd, Some("Sales")));
        assert_eq!(p.actions[1].user_name.as_deref(), Some("ann@x.example"), "the join names the account made");
        assert_eq!(p.missing_teams, ["Sales"]);
        assert_eq!(p.actions[2].kind, Kind::Adopt);

        // Two new people with one address: the earlier hire keeps it, the other is numbered.
        let p = given(vec![]).plan(&[worker("1", "jo@x.example", json!({})), worker("2", "jo@x.example", json!({}))]);
        let names: Vec<&str> =
            p.actions.iter().filter_map(|a| a.body.as_ref()).map(|b| b["userName"].as_str().unwrap()).collect();
        assert_eq!(names, ["jo@x.example", "jo2@x.example"]);
    }

    #[test]
    fn without_an_account_not_yet_hired_on_leave_or_out_of_scope_get_none() {
        let p = given(vec![]).plan(&[
            worker("1", "a@x.example", json!({"hire_date": "2026-04-01"})),
            worker(
                "2",
                "b@x.example",
                json!({"status": {"state": "leave", "kind": "long_term"}, "leave_start": "2026-01-01"}),
            ),
            worker("3", "c@x.example", json!({"employment_type": "intern"})),
        ]);
        let got = kinds(&p);
        assert!(got.contains(&("2".into(), Kind::Skip, "on leave: the account is made on return".into())), "{got:?}");
        assert!(got.contains(&("3".into(), Kind::NoChange, "no account: no role matches".into())), "{got:?}");
        assert!(got.contains(&("1".into(), Kind::Skip, "effective date not reached: not hired yet".into())), "{got:?}");
    }

    #[test]
    fn an_account_that_differs_is_updated_and_its_teams_follow_the_grant() {
        let mut g = given(vec![account(
            "u1",
            "a@x.example",
            json!({"title": "Intern", "userType": "guest", "displayName": "Ann Worker1", "externalId": "1"}),
        )]);
        g.links = vec![link("1", "u1")];
        g.groups = vec![
            json!({"id": "g1", "displayName": "Everyone", "members": [{"value": "u1"}]}),
            json!({"id": "g2", "displayName": "Board", "members": [{"value": "u1"}]}),
        ];
        let p = g.plan(&[worker("1", "a@x.example", json!({}))]);
        assert_eq!(p.actions.len(), 3, "{:?}", kinds(&p));
        let update = &p.actions[0];
        assert_eq!(update.kind, Kind::Update);
        let changed: Vec<(&str, &Value, &Value)> =
            update.changes.iter().map(|c| (c.attribute.as_str(), &c.before, &c.after)).collect();
        assert_eq!(
            changed,
            [("title", &json!("Intern"), &json!("Analyst")), ("userType", &json!("guest"), &json!("member"))]
        );
        assert_eq!((p.actions[1].kind, p.actions[1].team.as_deref()), (Kind::TeamAdd, Some("Sales")));
        // Everyone is a team tenure manages (a default team); Board is not, and is left alone.
        assert_eq!((p.actions[2].kind, p.actions[2].team.as_deref()), (Kind::TeamRemove, Some("Everyone")));
        assert_eq!(p.missing_teams, ["Sales"]);
        assert_eq!(p.managed_active, 1);
    }

    #[test]
    fn an_account_as_wanted_is_in_step_and_an_unlinked_admin_waits_for_a_reviewer() {
        let mut g =
            given(vec![in_step("u1", "a@x.example"), account("u2", "b@x.example", json!({"userType": "admin"}))]);
        g.links = vec![link("1", "u1")];
        g.groups = vec![json!({"id": "g1", "displayName": "Sales", "members": [{"value": "u1"}]})];
        let p = g.plan(&[worker("1", "a@x.example", json!({})), worker("2", "b@x.example", json!({}))]);
        assert_eq!(kinds(&p)[0], ("1".into(), Kind::NoChange, "in step (role \"Staff\")".into()));
        let adopt = p.actions.iter().find(|a| a.kind == Kind::Adopt).unwrap();
        assert_eq!(adopt.worker, "2");
        assert_eq!(adopt.reason, "an existing account matches by userName");
        assert!(adopt.review.as_deref().is_some_and(|r| r.contains("adopt_admins")));
    }

    #[test]
    fn a_leaver_is_deactivated_then_deleted_once_the_days_are_up_and_a_returner_reactivated() {
        let gone = json!({"status": {"state": "terminated"}, "termination_date": "2026-01-15"});
        let mut g =
            given(vec![in_step("u1", "a@x.example"), in_step("u2", "b@x.example"), in_step("u3", "c@x.example")]);
        g.rules = rules_with("hard_delete_after_days = 30");
        g.users[1]["active"] = json!(false);
        g.users[2]["active"] = json!(false);
        g.links = vec![link("1", "u1"), link("2", "u2"), link("3", "u3")];
        g.groups = vec![json!({"id": "g1", "displayName": "Sales", "members": [{"value": "u1"}, {"value": "u3"}]})];
        g.deactivated.insert("2".into(), "2026-01-16T00:00:00Z".into());
        let p = g.plan(&[
            worker("1", "a@x.example", gone.clone()),
            worker("2", "b@x.example", gone),
            worker("3", "c@x.example", json!({})),
        ]);
        let got = kinds(&p);
        assert!(got.contains(&("1".into(), Kind::Deactivate, "leaver: terminated".into())), "{got:?}");
        assert!(
            got.iter().any(|(w, k, r)| w == "2" && *k == Kind::Delete && r.contains("deleted 30 day(s) after")),
            "{got:?}"
        );
        assert!(got.contains(&("3".into(), Kind::Reactivate, "back: role \"Staff\"".into())), "{got:?}");
        assert_eq!(p.managed_active, 1);

        // Not yet due: said, not done.
        g.deactivated.insert("2".into(), "2026-02-20T00:00:00Z".into());
        let p = g.plan(&[worker(
            "2",
            "b@x.example",
            json!({"status": {"state": "terminated"}, "termination_date": "2026-01-15"}),
        )]);
        assert_eq!(p.actions[0].kind, Kind::NoChange);
        assert!(
            p.actions[0].reason.starts_with("inactive, as wanted; deleted from 2026-03-22"),
            "{}",
            p.actions[0].reason
        );
    }

    #[test]
    fn a_worker_held_for_a_look_alike_address_is_held_as_data_not_as_a_review() {
        let g = given(vec![account("u1", "kim@x.example", json!({}))]);
        let p = g.plan(&[worker("1", "\u{212A}im@x.example", json!({})), worker("2", "pat@x.example", json!({}))]);
        let one = p.actions.iter().find(|a| a.worker == "1").unwrap();
        assert_eq!((one.kind, one.hold), (Kind::Skip, Some(Hold::Data)), "{}", one.reason);
        assert!(p.actions.iter().filter(|a| a.worker == "2").all(|a| a.hold.is_none()));
    }
}
