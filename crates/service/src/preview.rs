//! What the rules would do, before they act: one worker's decision, attributes and plan
//! (`tenure preview`, the API's preview), and what changes for everyone if a configuration is saved.

use crate::error::{Error, Result};
use rules::formula::Value;
use rules::Rules;
use std::collections::{HashMap, HashSet};
use store::Store;

/// The kinds of difference a configuration makes to a worker on a connection, most telling
/// first: a difference is counted under the first that applies.
pub const DIFFERENCE_KINDS: [(&str, &str); 5] = [
    ("given", "account given"),
    ("taken_away", "account taken away"),
    ("access", "user type or teams"),
    ("role", "role only"),
    ("attributes", "attributes"),
];

/// Which pages of the differences to list.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Only differences of this kind (one of `DIFFERENCE_KINDS`).
    pub kind: Option<String>,
    pub offset: usize,
    pub limit: usize,
}

/// What a configuration would change, worker by worker, against the one in force: role,
/// account (given or taken away), user type, teams and every attribute. The counts (in all
/// and by kind) are of every worker; the list holds the page `listing` asks for.
pub async fn differences(
    store: &Store,
    before: &Rules,
    after: &Rules,
    today: jiff::civil::Date,
    listing: &Listing,
) -> Result<serde_json::Value> {
    let workers = crate::intake::workers(store).await?;
    let (cb, ca) = (before.custom_fields().to_vec(), after.custom_fields().to_vec());
    let mut names: Vec<&str> = before.connections.iter().chain(&after.connections).map(|c| c.name.as_str()).collect();
    names.sort();
    names.dedup();
    // Each connection's index under each configuration (None: not in it).
    let at = |r: &Rules, conn: &str| r.connections.iter().position(|c| c.name == conn);
    let slots: Vec<(&str, Option<usize>, Option<usize>)> =
        names.iter().map(|n| (*n, at(before, n), at(after, n))).collect();
    let mut listed = vec![];
    let mut changed = 0usize;
    let mut matching = 0usize;
    let mut kinds = [0usize; DIFFERENCE_KINDS.len()];
    for w in &workers {
        // A worker's row once per configuration, whatever the number of connections.
        let (rb, ra) = (rules::worker_row(w, &cb), rules::worker_row(w, &ca));
        for &(conn, ib, ia) in &slots {
            let b = Outcome::of(ib.map(|i| before.decide(i, &rb, today)));
            let a = Outcome::of(ia.map(|i| after.decide(i, &ra, today)));
            let mut changes = vec![];
            for k in b.attributes.keys().chain(a.attributes.keys().filter(|k| !b.attributes.contains_key(*k))) {
                let (x, y) = (b.attributes.get(k), a.attributes.get(k));
                if x != y {
                    changes.push(serde_json::json!({"attribute": k, "before": x, "after": y}));
                }
            }
            if b.role == a.role && b.grant == a.grant && changes.is_empty() {
                continue;
            }
            changed += 1;
            let (account, kind) = match (b.grant.is_some(), a.grant.is_some()) {
                (false, true) => (Some("given"), 0),
                (true, false) => (Some("taken away"), 1),
                _ if b.grant != a.grant => (None, 2),
                _ if b.role != a.role => (None, 3),
                _ => (None, 4),
            };
            kinds[kind] += 1;
            if listing.kind.as_deref().is_some_and(|k| k != DIFFERENCE_KINDS[kind].0) {
                continue;
            }
            matching += 1;
            if matching > listing.offset && listed.len() < listing.limit {
                listed.push(serde_json::json!({"worker": w.id.as_str(), "connection": conn,
                    "kind": DIFFERENCE_KINDS[kind].0,
                    "role": {"before": b.role, "after": a.role}, "account": account,
                    "grant": {"before": b.grant, "after": a.grant}, "attributes": changes}));
            }
        }
    }
    let by_kind: serde_json::Map<String, serde_json::Value> =
        DIFFERENCE_KINDS.iter().zip(kinds).map(|((k, _), n)| (k.to_string(), n.into())).collect();
    Ok(serde_json::json!({"workers": workers.len(), "changed": changed, "by_kind": by_kind,
        "matching": matching, "offset": listing.offset, "listed": listed.len(), "differences": listed}))
}

/// How many workers each role takes now (the first role whose condition holds), with a few of
/// them by name; and how many no role takes.
#[derive(Debug, Clone, Default)]
pub struct RoleCounts {
    pub workers: usize,
    /// Per role, in the rules' order: the count and up to `samples` (id, name).
    pub roles: Vec<(usize, Vec<(String, String)>)>,
    pub unmatched: usize,
    /// Workers per (connection, team, what put them there), in that order.
    pub teams: Vec<TeamCount>,
    /// Workers held because a team cannot be named from their data, per connection.
    pub team_errors: Vec<(String, usize)>,
}

/// How many workers one rule puts in one team on one connection.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TeamCount {
    pub connection: String,
    pub team: String,
    /// The role, the defaults or the team rule, as the plan says it.
    pub by: String,
    pub workers: usize,
}

/// The role counts of the workers of the last HR load under `rules`.
pub async fn role_counts(store: &Store, rules: &Rules, today: jiff::civil::Date, samples: usize) -> Result<RoleCounts> {
    let workers = crate::intake::workers(store).await?;
    let custom = rules.custom_fields().to_vec();
    let mut out = RoleCounts {
        workers: workers.len(),
        roles: vec![(0, vec![]); rules.config.roles.len()],
        ..RoleCounts::default()
    };
    let mut teams: HashMap<(usize, String, String), usize> = HashMap::new();
    let mut errors = vec![0; rules.connections.len()];
    for w in &workers {
        let row = rules::worker_row(w, &custom);
        for (c, held) in errors.iter_mut().enumerate() {
            let (placed, bad) = rules.teams_of(c, &row, today);
            for p in placed {
                *teams.entry((c, p.team, p.by.to_string())).or_default() += 1;
            }
            *held += usize::from(!bad.is_empty());
        }
        match rules.role_of(&row, today) {
            Some(i) => {
                let (n, s) = &mut out.roles[i];
                *n += 1;
                if s.len() < samples {
                    let name = format!(
                        "{} {}",
                        w.preferred_name.as_ref().unwrap_or(&w.first_name).as_str(),
                        w.last_name.as_str()
                    );
                    s.push((w.id.as_str().to_string(), name));
                }
            }
            None => out.unmatched += 1,
        }
    }
    let name = |c: usize| rules.connections[c].name.clone();
    out.teams = teams
        .into_iter()
        .map(|((c, team, by), workers)| TeamCount { connection: name(c), team, by, workers })
        .collect();
    out.teams.sort();
    out.team_errors = errors.into_iter().enumerate().filter(|(_, n)| *n > 0).map(|(c, n)| (name(c), n)).collect();
    Ok(out)
}

/// A formula as it is being typed: its error and where, or its value for one worker.
#[derive(Debug, Clone)]
pub enum FormulaCheck {
    /// Line, column (1-based, in characters) and what is wrong there.
    Wrong(rules::formula::FormulaError),
    /// It reads; with the worker asked for (or the first of the last load) and its value or
    /// the error evaluating it gave; None when there is no worker yet.
    Reads { worker: Option<(String, String)>, value: Option<Result<String, String>> },
}

/// Checks a formula against the HR fields (the custom ones of `custom` too) and evaluates it
/// for `worker` (else the first worker of the last load).
pub async fn check_formula(
    store: &Store,
    custom: &[String],
    text: &str,
    worker: Option<&str>,
    today: jiff::civil::Date,
) -> Result<FormulaCheck> {
    let fields = rules::worker_fields(custom);
    let f = match rules::formula::Formula::compile(text, &fields) {
        Ok(f) => f,
        Err(e) => return Ok(FormulaCheck::Wrong(e)),
    };
    let row = match worker.map(str::trim).filter(|w| !w.is_empty()) {
        Some(id) => Some(
            store
                .snapshot_of(&[id.to_string()])
                .await?
                .pop()
                .ok_or_else(|| Error::not_found(format!("no worker {id:?} in the last HR load")))?,
        ),
        None => store.snapshot_first().await?,
    };
    let Some(row) = row else { return Ok(FormulaCheck::Reads { worker: None, value: None }) };
    let w: hr::Worker =
        serde_json::from_str(&row.body).map_err(|e| Error::refused(format!("worker {}: {e}", row.worker_id)))?;
    let value = f.eval(&rules::worker_row(&w, custom), &rules::formula::Context { today }).map(|v| v.to_text());
    let name = format!("{} {}", w.preferred_name.as_ref().unwrap_or(&w.first_name).as_str(), w.last_name.as_str());
    Ok(FormulaCheck::Reads { worker: Some((w.id.as_str().to_string(), name)), value: Some(value) })
}

/// What one decision gives a worker on one connection, as `differences` compares it.
struct Outcome {
    role: Option<String>,
    /// User type, teams and groups; None: no account.
    grant: Option<serde_json::Value>,
    /// Every attribute's value (or its error), when there is an account.
    attributes: std::collections::BTreeMap<String, String>,
}

impl Outcome {
    fn of(d: Option<rules::Decision>) -> Outcome {
        let Some(d) = d else { return Outcome { role: None, grant: None, attributes: Default::default() } };
        let grant = d
            .grant
            .as_ref()
            .map(|g| serde_json::json!({"user_type": g.user_type, "teams": g.teams, "groups": g.groups,
                "placed_by": d.placements.iter().map(|p| serde_json::json!({"team": p.team, "by": p.by})).collect::<Vec<_>>(),
                "team_errors": d.team_errors}));
        let attributes = match grant {
            None => Default::default(),
            Some(_) => d
                .attributes
                .iter()
                .map(|a| {
                    let v = match &a.value {
                        Ok(v) => v.to_text(),
                        Err(e) => format!("error: {e}"),
                    };
                    (a.target.clone(), v)
                })
                .collect(),
        };
        Outcome { role: d.role, grant, attributes }
    }
}

/// One worker on one connection, as the rules and the plan see them: the worker's record,
/// the role decision (each condition with its value), every attribute with its formula, and
/// the planned actions.
pub struct Previewed {
    pub worker: hr::Worker,
    pub decision: rules::Decision,
    /// The roles tried, in order, each with every test of its condition.
    pub roles: Vec<rules::RoleCheck>,
    pub plan: Vec<engine::Action>,
    pub note: Option<String>,
    /// For chosen workers: which account of the target the plan saw, and when it was read.
    pub read: Option<crate::runs::AccountRead>,
}

/// The text a unique value claims, as the planner claims it: blanks, numbers and yes/no are
/// sent as they are and never numbered.
fn claimed(v: &Value) -> Option<String> {
    match v {
        Value::Blank | Value::Bool(_) | Value::Number(_) => None,
        other => Some(other.to_text()),
    }
}

/// A value as unique claims number it: its family (lower-cased, without the digits its name
/// ends with, before the @ of an address) and those digits. Every numbered variant of a value
/// is in its family, so two claims can only meet when their families are the same.
fn family(v: &str) -> (String, String) {
    let v = v.to_lowercase();
    let digits = |c: char| c.is_ascii_digit();
    let (local, domain) = match v.split_once('@') {
        Some((l, d)) => (l, Some(d)),
        None => (v.as_str(), None),
    };
    let stem = local.trim_end_matches(digits);
    let tail = local[stem.len()..].to_string();
    (domain.map_or_else(|| stem.to_string(), |d| format!("{stem}@{d}")), tail)
}

/// Whether two values of one family (by the digits their names end with) can be handed the
/// same value: a claim appends a number (2, 3, ... never with a leading zero) to the name, so
/// they can when one's digits start with the other's and the rest does not start with 0.
fn may_meet(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    long.strip_prefix(short).is_some_and(|rest| !rest.starts_with('0'))
}

/// The values a worker claims or reserves on a connection (its unique attributes and its
/// userName), each as its family and digits.
fn families(rules: &Rules, connection: usize, row: &[Value], today: jiff::civil::Date) -> Vec<(String, String)> {
    let d = rules.decide_with(connection, row, today, false);
    let mut out: Vec<(String, String)> = d
        .attributes
        .iter()
        .filter(|a| a.unique || a.target == "userName")
        .filter_map(|a| a.value.as_ref().ok().and_then(claimed))
        .map(|v| family(&v))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The workers whose unique values could meet, connection by connection: a worker's unique
/// values depend only on the values claimed before that could be numbered into the same
/// (the same address, or "jsmith" and "jsmith2"), so one worker's "why" needs those workers,
/// not all 100,000. Only groups of two or more workers are kept: a few, where most people
/// have an address of their own.
#[derive(Debug, Default)]
pub struct Namesakes {
    by_connection: Vec<Groups>,
}

#[derive(Debug, Default)]
struct Groups {
    /// A value (its digits, then its family) to its group.
    of: std::collections::HashMap<(String, String), usize>,
    groups: Vec<Vec<String>>,
}

impl Groups {
    /// Groups the workers of one family (its digits and worker, sorted): those whose values may
    /// meet, directly or through another's.
    fn add_family(&mut self, family: &str, members: &[(&str, &str)]) {
        let mut tails: Vec<&str> = members.iter().map(|m| m.0).collect();
        tails.dedup();
        // Union-find over the family's distinct digits; a value meets those whose digits are
        // a start of its own.
        let mut parent: Vec<usize> = (0..tails.len()).collect();
        fn root(p: &mut [usize], mut i: usize) -> usize {
            while p[i] != i {
                p[i] = p[p[i]];
                i = p[i];
            }
            i
        }
        let at: std::collections::HashMap<&str, usize> = tails.iter().enumerate().map(|(i, t)| (*t, i)).collect();
        for (i, t) in tails.iter().enumerate() {
            for k in 0..t.len() {
                if let Some(&j) = at.get(&t[..k]) {
                    if may_meet(&t[..k], t) {
                        let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                        parent[a] = b;
                    }
                }
            }
        }
        let mut by_root: std::collections::BTreeMap<usize, (Vec<&str>, Vec<String>)> = Default::default();
        for (tail, id) in members {
            let r = root(&mut parent, at[tail]);
            let g = by_root.entry(r).or_default();
            if g.0.last() != Some(tail) {
                g.0.push(tail);
            }
            g.1.push(id.to_string());
        }
        for (_, (tails, mut ids)) in by_root {
            ids.sort();
            ids.dedup();
            if ids.len() < 2 {
                continue;
            }
            for t in tails {
                self.of.insert((t.to_string(), family.to_string()), self.groups.len());
            }
            self.groups.push(ids);
        }
    }
}

impl Namesakes {
    /// One pass over the last snapshot with `rules` as they decide on `today`.
    pub async fn build(store: &Store, rules: &Rules, today: jiff::civil::Date) -> Result<Namesakes> {
        let custom = rules.custom_fields().to_vec();
        let mut seen: Vec<Vec<(String, String, String)>> = vec![vec![]; rules.connections.len()];
        store
            .snapshot_each::<hr::Worker>(2_000, |id, w| {
                let row = rules::worker_row(&w, &custom);
                for (ci, out) in seen.iter_mut().enumerate() {
                    out.extend(families(rules, ci, &row, today).into_iter().map(|(f, t)| (f, t, id.clone())));
                }
            })
            .await?;
        let by_connection = seen
            .into_iter()
            .map(|mut v| {
                v.sort_unstable();
                let mut groups = Groups::default();
                for family in v.chunk_by(|a, b| a.0 == b.0).filter(|run| run.len() > 1) {
                    let members: Vec<(&str, &str)> =
                        family.iter().map(|(_, t, id)| (t.as_str(), id.as_str())).collect();
                    groups.add_family(&family[0].0, &members);
                }
                groups.of.shrink_to_fit();
                groups
            })
            .collect();
        Ok(Namesakes { by_connection })
    }

    /// The workers whose values may meet `values` (families and digits) on connection
    /// `connection`.
    fn of<'a>(&'a self, connection: usize, values: &'a [(String, String)]) -> impl Iterator<Item = &'a String> + 'a {
        let groups = self.by_connection.get(connection);
        values
            .iter()
            .filter_map(move |(f, t)| groups.and_then(|g| g.of.get(&(t.clone(), f.clone())).map(|&i| &g.groups[i])))
            .flatten()
    }
}

/// The preview use case (`tenure preview`): for the chosen workers (else `sample` of them
/// spread over the population), on every connection.
pub async fn preview_of(
    store: &Store,
    key: Option<&store::MasterKey>,
    rules: &Rules,
    workers: &[String],
    sample: Option<usize>,
    today: Option<jiff::civil::Date>,
) -> Result<Vec<Previewed>> {
    let namesakes = match workers.is_empty() {
        true => None,
        false => Some(Namesakes::build(store, rules, today.unwrap_or_else(|| jiff::Zoned::now().date())).await?),
    };
    preview_with(store, key, rules, workers, sample, today, namesakes.as_ref()).await
}

/// As `preview_of`, with the namesakes of the snapshot as it stands (kept by a long-running
/// service between askings). With chosen workers, only they and their namesakes are read and
/// decided; the unique values shown are those the whole population would give them.
pub async fn preview_with(
    store: &Store,
    key: Option<&store::MasterKey>,
    rules: &Rules,
    workers: &[String],
    sample: Option<usize>,
    today: Option<jiff::civil::Date>,
    namesakes: Option<&Namesakes>,
) -> Result<Vec<Previewed>> {
    let now = match today {
        Some(d) => {
            d.to_zoned(jiff::tz::TimeZone::UTC).map(|z| z.timestamp()).unwrap_or_else(|_| jiff::Timestamp::now())
        }
        None => jiff::Timestamp::now(),
    };
    let today = today.unwrap_or_else(|| jiff::Zoned::now().date());
    let custom = rules.custom_fields().to_vec();
    let decode = |rows: Vec<store::SnapshotRow>| rows.iter().map(crate::intake::decode).collect::<Result<Vec<_>>>();
    // The workers decided: everyone for a sample; the chosen and their namesakes otherwise.
    let (mut all, population): (Vec<hr::Worker>, Option<Vec<String>>) = match namesakes {
        Some(names) if !workers.is_empty() => {
            let mine = decode(store.snapshot_of(workers).await?)?;
            if let Some(id) = workers.iter().find(|id| !mine.iter().any(|w| w.id.as_str() == id.as_str())) {
                return Err(Error::not_found(format!("no worker {id:?} in the last load")));
            }
            let mut others: Vec<String> = vec![];
            for w in &mine {
                let row = rules::worker_row(w, &custom);
                for ci in 0..rules.connections.len() {
                    let fams = families(rules, ci, &row, today);
                    others.extend(names.of(ci, &fams).filter(|id| !workers.contains(id)).cloned());
                }
            }
            others.sort();
            others.dedup();
            let mut all = mine;
            all.extend(decode(store.snapshot_of(&others).await?)?);
            let population = all.iter().map(|w| w.id.as_str().to_string()).collect();
            (all, Some(population))
        }
        _ => (decode(store.snapshot().await?)?, None),
    };
    if all.is_empty() {
        return Err(Error::refused("no workers yet: load an HR file with `tenure hr load FILE`"));
    }
    // What the plan will do for the chosen workers, connection by connection: the same
    // planner, against the target as it is (unique names claimed as apply claims them).
    // Chosen workers are planned against their own accounts, each read alone, not the whole
    // target: a worker's "why" asked a hundred times a second is a hundred reads at most.
    let mut planned: Vec<Result<(engine::Plan, Vec<crate::runs::AccountRead>)>> = vec![];
    if let Some(key) = key {
        for c in &rules.connections {
            let reading = crate::runs::Reading::Accounts { among: population.as_deref() };
            let p = crate::runs::prepare_reading(store, key, rules.clone(), Some(&c.name), now, None, workers, reading)
                .await;
            planned.push(p.map(|p| (p.plan, p.reads)));
        }
    }
    // Unique values go to the earliest hire first, then by id: the same order every time.
    all.sort_by(|a, b| a.hire_date.cmp(&b.hire_date).then_with(|| a.id.cmp(&b.id)));
    let chosen: Vec<usize> = if !workers.is_empty() {
        let mut v = vec![];
        for id in workers {
            v.push(
                all.iter()
                    .position(|w| w.id.as_str() == id)
                    .ok_or_else(|| Error::not_found(format!("no worker {id:?} in the last load")))?,
            );
        }
        v
    } else {
        let n = sample.unwrap_or(5).min(all.len());
        // Spread over the population rather than the first few.
        (0..n).map(|i| i * all.len() / n).collect()
    };
    let mut out = vec![];
    for (ci, conn) in rules.connections.iter().enumerate() {
        let mut decisions: Vec<rules::Decision> =
            all.iter().map(|w| rules.decide(ci, &rules::worker_row(w, &custom), today)).collect();
        for m in conn.mappings.iter().filter(|m| m.unique) {
            let idx: Vec<(usize, usize, String)> = decisions
                .iter()
                .enumerate()
                .filter_map(|(i, d)| {
                    let p = d.attributes.iter().position(|a| a.target == m.target)?;
                    Some((i, p, claimed(d.attributes[p].value.as_ref().ok()?)?))
                })
                .collect();
            let values: Vec<String> = idx.iter().map(|(_, _, v)| v.clone()).collect();
            for ((i, p, _), v) in idx.iter().zip(rules::make_unique(&values, &HashSet::new())) {
                decisions[*i].attributes[*p].value = Ok(Value::Text(v));
            }
        }
        let plan = planned.get(ci);
        for &i in &chosen {
            let mut d = decisions[i].clone();
            let mine: Vec<engine::Action> = match plan {
                Some(Ok((p, _))) => p.actions.iter().filter(|a| a.worker == all[i].id.as_str()).cloned().collect(),
                _ => vec![],
            };
            let read = match plan {
                Some(Ok((_, reads))) => reads.iter().find(|r| r.worker == all[i].id.as_str()).cloned(),
                _ => None,
            };
            // The unique values the plan claims (a create's body; an account keeps its own).
            if let Some(body) = mine.iter().find(|a| a.kind == engine::Kind::Create).and_then(|a| a.body.as_ref()) {
                for a in d.attributes.iter_mut().filter(|a| a.unique) {
                    if let Some(v) = engine::paths::get(body, &a.target).as_str() {
                        a.value = Ok(Value::Text(v.to_string()));
                    }
                }
            }
            let note = match plan {
                Some(Err(e)) => Some(format!(
                    "the target could not be read ({e}): unique values claimed within the HR snapshot only"
                )),
                None => Some(
                    "no stored connection to plan against: unique values claimed within the HR snapshot only".into(),
                ),
                _ => None,
            };
            let roles = rules.explain(&rules::worker_row(&all[i], &custom), today);
            out.push(Previewed { worker: all[i].clone(), decision: d, roles, plan: mine, note, read });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_and_every_numbered_variant_of_it_are_one_family() {
        for (v, f, t) in [
            ("JSmith@Acme.example", "jsmith@acme.example", ""),
            ("jsmith2@acme.example", "jsmith@acme.example", "2"),
            ("js12@acme.example", "js@acme.example", "12"),
            ("js1", "js", "1"),
            ("a@b@c", "a@b@c", ""),
            ("2024", "", "2024"),
        ] {
            assert_eq!(family(v), (f.to_string(), t.to_string()), "{v}");
        }
        // What a claim hands out stays in the family of what was asked for.
        let mut names = rules::UniqueNames::new(["js1@x".to_string(), "js12@x".to_string()]);
        for _ in 0..3 {
            assert_eq!(family(&names.claim("js1@x")).0, family("js1@x").0);
        }
        assert_eq!(claimed(&Value::Blank), None);
        assert_eq!(claimed(&Value::Number(3.0)), None);
        assert_eq!(claimed(&Value::Text("a".into())).as_deref(), Some("a"));
    }

    #[test]
    fn only_values_a_claim_could_number_into_one_another_are_grouped() {
        // "js1" may become "js12", which "js" may too; "js05" is never a number added to "js".
        assert!(may_meet("", "1") && may_meet("1", "12") && may_meet("7", "7") && may_meet("0", "05"));
        assert!(!may_meet("", "05") && !may_meet("100000", "100001"));
        let mut g = Groups::default();
        let members =
            [("", "a"), ("", "b"), ("05", "c"), ("1", "d"), ("100000", "e"), ("100001", "f"), ("12", "g"), ("3", "h")];
        g.add_family("js@x", &members);
        let group = |t: &str| g.of.get(&(t.to_string(), "js@x".to_string())).map(|&i| g.groups[i].clone());
        assert_eq!(
            group(""),
            Some(vec!["a".into(), "b".into(), "d".into(), "e".into(), "f".into(), "g".into(), "h".into()])
        );
        // "js100000" and "js100001" are numbers "js" could be given; "js05" meets nobody and a
        // group of one is not kept.
        assert_eq!(group("100001"), group(""));
        assert_eq!(group("05"), None);
        let mut alone = Groups::default();
        alone.add_family("x.y.@x", &[("100000", "e"), ("100001", "f"), ("100002", "g")]);
        assert!(alone.groups.is_empty(), "addresses numbered by HR, none a start of another: {alone:?}");
    }
}
