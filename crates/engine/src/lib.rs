//! tenure's provisioning engine: the desired accounts (workers x roles x mappings), the actual
//! ones (the target read page by page, and the link table), the plan between them, and its
//! application with every action journaled before and after its call.

pub mod apply;
pub mod paths;
pub mod review;

use hr::{Status, Worker};
use jiff::Timestamp;
use rules::formula::Value as FValue;
use rules::{Apply, Decision, LeavePolicy, Rules};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use store::Link;

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
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub connection: String,
    pub actions: Vec<Action>,
    /// Accounts tenure did not make and cannot link: reported, never touched.
    pub unmanaged: Vec<String>,
    /// Active accounts tenure manages on the target (the guard's base).
    pub managed_active: usize,
    /// Teams the plan needs that the target lacks (made at apply).
    pub missing_teams: Vec<String>,
    /// The moment planned for (deactivations done are dated to it).
    pub at: String,
}

impl Plan {
    pub fn count(&self, k: Kind) -> usize {
        self.actions.iter().filter(|a| a.kind == k).count()
    }
    /// The guard: Some(why) when this plan deactivates too much to apply unconfirmed.
    pub fn guard(&self, g: &rules::DeprovisionGuard) -> Option<String> {
        let n = (self.count(Kind::Deactivate) + self.count(Kind::Delete)) as u64;
        let base = self.managed_active.max(1) as f64;
        let share = n as f64 / base;
        if n > g.max_count {
            return Some(format!("{n} deactivations exceed the limit of {}", g.max_count));
        }
        if n >= g.min_count && share > g.max_share {
            return Some(format!(
                "{n} deactivations are {:.0}% of the {} active accounts, over the limit of {:.0}%",
                share * 100.0,
                self.managed_active,
                g.max_share * 100.0
            ));
        }
        None
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

struct Wanted<'a> {
    worker: &'a Worker,
    life: Life,
    decision: Decision,
    attrs: Vec<(String, Value, Apply, bool)>,
    errors: Vec<String>,
}

/// Computes the plan for one connection. `deactivated` says when tenure deactivated accounts
/// (worker id to RFC 3339 moment), so a leaver's account can be deleted once
/// `hard_delete_after_days` have passed.
pub fn plan<'a>(
    rules: &Rules,
    connection: usize,
    workers: &'a [Worker],
    actual: &Actual,
    links: &[Link],
    deactivated: &HashMap<String, String>,
    now: Timestamp,
) -> Result<Plan, String> {
    let t0 = std::time::Instant::now();
    let conn = &rules.connections[connection];
    let lc = rules.config.hr.lifecycle()?;
    let today = now.to_zoned(lc.default_time_zone.clone()).date();
    let custom = rules.custom_fields().to_vec();
    let managed_teams: HashSet<String> = conn.managed_teams(rules).into_iter().collect();

    let by_id: HashMap<&str, &Value> = actual.users.iter().map(|u| (sv(u, "id"), u)).collect();
    let mut by_user_name: HashMap<String, &Value> = HashMap::new();
    let mut by_email: HashMap<String, &Value> = HashMap::new();
    let mut by_external: HashMap<String, &Value> = HashMap::new();
    for u in &actual.users {
        by_user_name.insert(fold(sv(u, "userName")), u);
        for e in u.get("emails").and_then(Value::as_array).into_iter().flatten() {
            by_email.insert(fold(sv(e, "value")), u);
        }
        if let Some(x) = u.get("externalId").and_then(Value::as_str) {
            by_external.insert(x.to_string(), u);
        }
    }
    let mut team_ids: HashMap<String, String> = HashMap::new();
    // user id -> names of the teams the user is in (borrowed: 100,000 members are common).
    let mut members: HashMap<&str, Vec<&str>> = HashMap::new();
    for g in &actual.groups {
        let name = sv(g, "displayName");
        team_ids.insert(name.to_lowercase(), s(g, "id"));
        for m in g.get("members").and_then(Value::as_array).into_iter().flatten() {
            let teams = members.entry(sv(m, "value")).or_default();
            if !teams.contains(&name) {
                teams.push(name);
            }
        }
    }
    let link_of: HashMap<&str, &Link> = links.iter().map(|l| (l.worker_id.as_str(), l)).collect();
    // account id -> the worker linked to it
    let linked_by: HashMap<&str, &str> = links.iter().map(|l| (l.target_id.as_str(), l.worker_id.as_str())).collect();
    let linked_targets: HashSet<&str> = linked_by.keys().copied().collect();
    let user_name_unique = conn.mappings.iter().any(|m| m.target == "userName" && m.unique);

    tracing::debug!(ms = t0.elapsed().as_millis() as u64, "plan: target indexed");
    // Desired state, in a stable order: earliest hire first (they keep a contested user name).
    let mut sorted: Vec<&Worker> = workers.iter().collect();
    sorted.sort_by(|a, b| a.hire_date.cmp(&b.hire_date).then_with(|| a.id.cmp(&b.id)));
    let evaluate = |w: &&'a Worker| {
        let row = rules::worker_row(w, &custom);
        let decision = rules.decide_with(connection, &row, today, false);
        let mut errors = vec![];
        let attrs = decision
            .attributes
            .iter()
            .filter_map(|a| match &a.value {
                Ok(v) => Some((a.target.clone(), to_json(v), a.apply, a.unique)),
                Err(e) => {
                    errors.push(format!("{}: {e}", a.target));
                    None
                }
            })
            .collect();
        Wanted { worker: w, life: life(w, &lc, rules.config.hr.leave, now), decision, attrs, errors }
    };
    // Roles and formulas for 100,000 workers are the plan's largest part: split over the
    // cores, each slice evaluated in order, so the result is the same as one by one.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let slice = sorted.len().div_ceil(threads).max(1_000);
    let mut wanted: Vec<Wanted> = std::thread::scope(|scope| {
        let parts: Vec<_> =
            sorted.chunks(slice).map(|c| scope.spawn(move || c.iter().map(evaluate).collect::<Vec<_>>())).collect();
        parts.into_iter().flat_map(|p| p.join().expect("evaluation thread")).collect()
    });
    tracing::debug!(ms = t0.elapsed().as_millis() as u64, "plan: roles and mappings evaluated");
    let mut out = Plan { connection: conn.name.clone(), at: now.to_string(), ..Plan::default() };
    let held = conflicts(&wanted, actual, &by_id, &by_user_name, &by_email, &link_of, &linked_by, user_name_unique);
    let mut claimed: HashSet<&str> = HashSet::new();
    // First pass: which account is whose (links, then userName, e-mail, externalId).
    let mut account: Vec<Option<(&Value, bool)>> = Vec::with_capacity(wanted.len());
    for w in &wanted {
        let id = w.worker.id.as_str();
        if let Some(l) = link_of.get(id) {
            if let Some(u) = by_id.get(l.target_id.as_str()) {
                if held.moves.contains_key(l.target_id.as_str()) {
                    // A leaver whose account another worker takes over: no account of theirs now.
                    account.push(None);
                    continue;
                }
                claimed.insert(l.target_id.as_str());
                account.push(Some((u, true)));
                continue;
            }
        }
        if held.conflict.contains_key(id) {
            account.push(None);
            continue;
        }
        if let Some((u, _)) = held.moved_to.get(id) {
            claimed.insert(sv(u, "id"));
            account.push(Some((u, false)));
            continue;
        }
        let attr = |name: &str| w.attrs.iter().find(|a| a.0 == name).and_then(|a| a.1.as_str()).map(str::to_string);
        let free = |u: &&Value| {
            let uid = sv(u, "id");
            !linked_targets.contains(uid) && !claimed.contains(uid)
        };
        let found = attr("userName")
            .and_then(|n| by_user_name.get(&fold(&n)).copied())
            .filter(free)
            .or_else(|| {
                w.worker.work_email.as_ref().and_then(|e| by_email.get(&fold(e.as_str())).copied()).filter(free)
            })
            .or_else(|| attr("externalId").and_then(|x| by_external.get(&x).copied()).filter(free));
        if let Some(u) = found {
            claimed.insert(sv(u, "id"));
        }
        account.push(found.map(|u| (u, false)));
    }
    for u in &actual.users {
        let id = sv(u, "id");
        if !claimed.contains(id) && !linked_targets.contains(id) {
            out.unmanaged.push(s(u, "userName"));
        }
    }
    tracing::debug!(ms = t0.elapsed().as_millis() as u64, "plan: accounts matched");
    // Unique user names are settled at create: taken are all names on the target.
    let mut taken = rules::UniqueNames::new(actual.users.iter().map(|u| s(u, "userName")));
    let mut compiled: HashMap<&str, paths::Compiled> = HashMap::new();

    for (w, acc) in wanted.iter_mut().zip(&account) {
        let wid = w.worker.id.to_string();
        let role = w.decision.role.clone();
        let act = |kind: Kind, reason: String| Action {
            worker: wid.clone(),
            kind,
            target_id: acc.map(|(u, _)| s(u, "id")),
            user_name: acc.map(|(u, _)| s(u, "userName")),
            role: role.clone(),
            reason,
            changes: vec![],
            body: None,
            team: None,
            moved_from: None,
            review: None,
        };
        let grant = w.decision.grant.as_ref();
        let in_scope = grant.is_some();
        let why_role = match &role {
            Some(r) if in_scope => format!("role {r:?}"),
            Some(r) => format!("role {r:?} grants nothing on this connection"),
            None => "no role matches".into(),
        };
        if !w.errors.is_empty() && w.life != Life::Gone {
            out.actions.push(act(Kind::Skip, format!("invalid data: {}", w.errors.join("; "))));
            continue;
        }
        if let Some(why) = held.conflict.get(wid.as_str()) {
            if w.life != Life::Gone {
                out.actions.push(act(Kind::Skip, why.clone()));
                continue;
            }
        }
        let Some((u, linked)) = acc else {
            match (w.life, in_scope) {
                (Life::Active, true) => {
                    let mut body = serde_json::json!({"schemas": [scim::schema::USER]});
                    for (target, v, _, unique) in &w.attrs {
                        let mut v = v.clone();
                        if *unique {
                            if let Some(text) = v.as_str() {
                                v = Value::String(taken.claim(text));
                            }
                        } else if target == "userName" {
                            taken.reserve(v.as_str().unwrap_or_default());
                        }
                        if !v.is_null() {
                            paths::set(&mut body, target, v);
                        }
                    }
                    let g = grant.as_ref().expect("in scope");
                    if let Some(t) = &g.user_type {
                        body["userType"] = Value::String(t.clone());
                    }
                    body["active"] = Value::Bool(true);
                    let mut a = act(Kind::Create, format!("hire: {why_role}"));
                    let user_name = body.get("userName").and_then(Value::as_str).map(str::to_string);
                    a.user_name = user_name.clone();
                    a.body = Some(body);
                    out.actions.push(a);
                    for t in g.teams.iter().chain(&g.groups) {
                        if !team_ids.contains_key(&t.to_lowercase()) && !out.missing_teams.contains(t) {
                            out.missing_teams.push(t.clone());
                        }
                        let mut a = act(Kind::TeamAdd, format!("{why_role} puts the worker in {t:?}"));
                        a.team = Some(t.clone());
                        // The account the create makes: a reviewer sees whom the join is for.
                        a.user_name = user_name.clone();
                        out.actions.push(a);
                    }
                }
                (Life::NotYet, true) => {
                    out.actions.push(act(Kind::Skip, "effective date not reached: not hired yet".into()))
                }
                (Life::OnLeave, true) => {
                    out.actions.push(act(Kind::Skip, "on leave: the account is made on return".into()))
                }
                _ => out.actions.push(act(Kind::NoChange, format!("no account: {}", no_account(w.life, &why_role)))),
            }
            continue;
        };
        let uid = s(u, "id");
        let active = u.get("active").and_then(Value::as_bool).unwrap_or(true);
        if active {
            out.managed_active += 1;
        }
        if !linked {
            let how = if s(u, "userName").eq_ignore_ascii_case(
                w.attrs.iter().find(|a| a.0 == "userName").and_then(|a| a.1.as_str()).unwrap_or(""),
            ) {
                "userName"
            } else {
                "e-mail or externalId"
            };
            let mut a = act(Kind::Adopt, format!("an existing account matches by {how}"));
            if let Some((_, from)) = held.moved_to.get(wid.as_str()) {
                a.reason = format!(
                    "{}; it was linked to worker {from}, who has left: the link moves to this worker (a conversion \
                     or a rehire under a new employee id)",
                    a.reason
                );
                a.moved_from = Some(from.to_string());
            } else if is_admin(u) && !conn.adopt_admins {
                a.review = Some("adopts an admin account tenure did not create (adopt_admins = true allows it)".into());
            }
            out.actions.push(a);
        }
        let keep = !in_scope && conn.keep_on_role_change && w.life == Life::Active;
        let want_active = match w.life {
            Life::Active => in_scope || keep,
            _ => false,
        };
        if active && !want_active {
            let reason = match w.life {
                Life::Gone => "leaver: terminated".to_string(),
                Life::OnLeave => "leave: suspended until the return".to_string(),
                Life::NotYet => "not hired yet (hire date moved)".to_string(),
                Life::Active => format!("out of scope: {why_role}"),
            };
            out.actions.push(act(Kind::Deactivate, reason));
            continue;
        }
        if !active && want_active {
            out.actions.push(act(Kind::Reactivate, format!("back: {why_role}")));
        }
        if !want_active {
            // Only leavers' accounts, only those tenure deactivated, only once the days are up.
            let since = deactivated.get(&wid).and_then(|t| t.parse::<Timestamp>().ok());
            match (conn.hard_delete_after_days, since, w.life, linked) {
                (Some(days), Some(since), Life::Gone, true) => {
                    let due = since + jiff::SignedDuration::from_hours(24 * days as i64);
                    if due <= now {
                        out.actions.push(act(
                            Kind::Delete,
                            format!("leaver: deleted {days} day(s) after deactivation on {since}"),
                        ));
                    } else {
                        out.actions.push(act(Kind::NoChange, format!("inactive, as wanted; deleted from {due}")));
                    }
                }
                _ => out.actions.push(act(Kind::NoChange, "inactive, as wanted".into())),
            }
            continue;
        }
        if keep {
            out.actions.push(act(Kind::NoChange, format!("kept by keep_on_role_change ({why_role})")));
            continue;
        }
        // Attributes that differ (mappings applied always).
        let mut changes = vec![];
        for (target, v, apply, unique) in &w.attrs {
            if *apply == Apply::OnCreate || *unique {
                continue;
            }
            let path = compiled.entry(target.as_str()).or_insert_with(|| paths::compile(target));
            let cur = path.get(u).unwrap_or(&Value::Null);
            if !same(target, cur, v) {
                changes.push(Change { attribute: target.clone(), before: cur.clone(), after: v.clone() });
            }
        }
        let g = grant.as_ref().expect("in scope");
        if let Some(t) = &g.user_type {
            let cur = u.get("userType").cloned().unwrap_or(Value::Null);
            if cur.as_str().map(str::to_lowercase).as_deref() != Some(t.as_str()) {
                changes.push(Change { attribute: "userType".into(), before: cur, after: Value::String(t.clone()) });
            }
        }
        if !changes.is_empty() {
            let mut a = act(Kind::Update, format!("change: {why_role}"));
            a.changes = changes;
            out.actions.push(a);
        }
        let want_teams: HashSet<&String> = g.teams.iter().chain(&g.groups).collect();
        let have: &[&str] = members.get(uid.as_str()).map_or(&[], Vec::as_slice);
        for t in &want_teams {
            if !have.iter().any(|h| h.eq_ignore_ascii_case(t)) {
                if !team_ids.contains_key(&t.to_lowercase()) && !out.missing_teams.contains(t) {
                    out.missing_teams.push((*t).clone());
                }
                let mut a = act(Kind::TeamAdd, format!("{why_role} puts the worker in {t:?}"));
                a.team = Some((*t).clone());
                out.actions.push(a);
            }
        }
        for h in have {
            if managed_teams.iter().any(|m| m.eq_ignore_ascii_case(h))
                && !want_teams.iter().any(|t| t.eq_ignore_ascii_case(h))
            {
                let mut a = act(Kind::TeamRemove, format!("{why_role} no longer puts the worker in {h:?}"));
                a.team = Some(h.to_string());
                out.actions.push(a);
            }
        }
        if !out.actions.last().is_some_and(|a| a.worker == wid && a.kind.acts()) {
            out.actions.push(act(Kind::NoChange, format!("in step ({why_role})")));
        }
    }
    tracing::debug!(ms = t0.elapsed().as_millis() as u64, "plan: actions decided");
    Ok(out)
}

/// What the matching of accounts must not do on its own, found before any account is given out.
#[derive(Default)]
struct Conflicts<'v> {
    /// Account id -> the worker whose link moves there (the old worker has left).
    moves: HashMap<&'v str, String>,
    /// New worker -> (the account, the worker who left it).
    moved_to: HashMap<String, (&'v Value, String)>,
    /// Workers held, with why.
    conflict: HashMap<String, String>,
}

/// Finds unlinked workers whose account is linked to another worker (a contractor converted
/// to an employee under a new id with the same e-mail, a rehire under a new id): the link
/// moves when the other worker has left, else the worker is held with who holds the account.
/// Also holds workers whose userName or e-mail only looks like an existing account's
/// (confusable characters): such a worker is neither matched nor given a look-alike account.
#[allow(clippy::too_many_arguments)] // the plan's indexes, borrowed rather than rebuilt
fn conflicts<'v>(
    wanted: &[Wanted<'_>],
    actual: &'v Actual,
    by_id: &HashMap<&'v str, &'v Value>,
    by_user_name: &HashMap<String, &'v Value>,
    by_email: &HashMap<String, &'v Value>,
    link_of: &HashMap<&str, &Link>,
    linked_by: &HashMap<&'v str, &'v str>,
    user_name_unique: bool,
) -> Conflicts<'v> {
    let mut c = Conflicts::default();
    let life_of: HashMap<&str, Life> = wanted.iter().map(|w| (w.worker.id.as_str(), w.life)).collect();
    fn user_name_of<'w>(w: &'w Wanted<'_>) -> Option<&'w str> {
        w.attrs.iter().find(|a| a.0 == "userName").and_then(|a| a.1.as_str())
    }
    // Look-alike keys of the target's addresses, built only when some address is not ASCII.
    let any_wide = wanted.iter().any(|w| {
        !user_name_of(w).unwrap_or_default().is_ascii()
            || w.worker.work_email.as_ref().is_some_and(|e| !e.as_str().is_ascii())
    }) || by_user_name.keys().chain(by_email.keys()).any(|k| !k.is_ascii());
    let mut looks: HashMap<String, Vec<&'v str>> = HashMap::new();
    if any_wide {
        for u in &actual.users {
            let mut names = vec![sv(u, "userName")];
            names.extend(u.get("emails").and_then(Value::as_array).into_iter().flatten().map(|e| sv(e, "value")));
            for n in names.into_iter().filter(|n| !n.is_empty()) {
                looks.entry(confusable(n)).or_default().push(n);
            }
        }
    }
    // The same for the addresses of workers not yet linked (hired the same day as the address
    // they look like: the target would take one for the other, SCIM servers fold more than
    // ASCII case). Worker ids kept, so a worker is not compared with itself.
    let mut new_looks: HashMap<String, Vec<(&str, &str)>> = HashMap::new();
    if any_wide {
        for w in wanted.iter().filter(|w| w.life != Life::Gone) {
            let id = w.worker.id.as_str();
            if link_of.get(id).is_some_and(|l| by_id.contains_key(l.target_id.as_str())) {
                continue;
            }
            let email = w.worker.work_email.as_ref().map(|e| e.as_str());
            for a in user_name_of(w).into_iter().chain(email).filter(|a| !a.is_empty()) {
                new_looks.entry(confusable(a)).or_default().push((id, a));
            }
        }
    }
    for w in wanted {
        let id = w.worker.id.as_str();
        if link_of.get(id).is_some_and(|l| by_id.contains_key(l.target_id.as_str())) {
            continue;
        }
        let email = w.worker.work_email.as_ref().map(|e| e.as_str());
        // The addresses this worker would be matched or made by.
        let mine: Vec<&str> = user_name_of(w).into_iter().chain(email).filter(|a| !a.is_empty()).collect();
        if any_wide {
            let look_alike = mine.iter().find_map(|a| {
                let f = fold(a);
                looks
                    .get(&confusable(a))?
                    .iter()
                    .find(|n| fold(n) != f && !(a.is_ascii() && n.is_ascii()))
                    .map(|n| (a.to_string(), n.to_string()))
            });
            if let Some((a, n)) = look_alike {
                c.conflict.insert(
                    id.to_string(),
                    format!(
                        "held: {a:?} only looks like the existing account {n:?} (confusable characters, e.g. a \
                         Kelvin sign for k): not matched and not created; correct the address in HR"
                    ),
                );
                continue;
            }
            // Of two new addresses that look alike, the one that is not plain ASCII waits (both
            // when neither is): the plain one is the address a person types.
            let new_alike = mine.iter().filter(|a| !a.is_ascii()).find_map(|a| {
                let f = fold(a);
                new_looks
                    .get(&confusable(a))?
                    .iter()
                    .find(|(other, n)| *other != id && fold(n) != f)
                    .map(|(other, n)| (a.to_string(), other.to_string(), n.to_string()))
            });
            if let Some((a, other, n)) = new_alike {
                c.conflict.insert(
                    id.to_string(),
                    format!(
                        "held: {a:?} only looks like {n:?}, the address of worker {other} (confusable characters, \
                         e.g. a Kelvin sign for k): not created, as the target could take one for the other; \
                         correct the address in HR"
                    ),
                );
                continue;
            }
        }
        // A unique userName is numbered when taken (two people, one name): only an e-mail, or
        // a userName that is not numbered, says it is the same account.
        let by_name = user_name_of(w).filter(|_| !user_name_unique).and_then(|n| by_user_name.get(&fold(n)));
        let by_mail = email.and_then(|e| by_email.get(&fold(e)));
        let Some(u) = by_name.or(by_mail).copied() else { continue };
        let uid = sv(u, "id");
        let Some(&other) = linked_by.get(uid) else { continue };
        if other == id {
            continue;
        }
        let who = sv(u, "userName");
        if let Some(first) = c.moves.get(uid) {
            c.conflict.insert(
                id.to_string(),
                format!("held: the account {who:?} of worker {other}, who left, goes to worker {first}, who also matches it"),
            );
            continue;
        }
        match life_of.get(other) {
            Some(Life::Gone) => {
                c.moves.insert(uid, id.to_string());
                c.moved_to.insert(id.to_string(), (u, other.to_string()));
            }
            life => {
                let state = match life {
                    None => "not in the HR snapshot".to_string(),
                    Some(Life::Active) => "active in HR".to_string(),
                    Some(Life::OnLeave) => "on leave".to_string(),
                    Some(Life::NotYet) => "not yet started".to_string(),
                    Some(Life::Gone) => unreachable!("handled above"),
                };
                c.conflict.insert(
                    id.to_string(),
                    format!(
                        "held: the account {who:?} that matches this worker is linked to worker {other}, who is \
                         {state}; if they are one person, end worker {other} in HR (the link then moves), otherwise \
                         correct the address"
                    ),
                );
            }
        }
    }
    c
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
