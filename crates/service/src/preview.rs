//! What the rules would do, before they act: one worker's decision, attributes and plan
//! (`tenure preview`, the API's preview), and what changes for everyone if a configuration is saved.

use crate::error::{Error, Result};
use rules::formula::Value;
use rules::Rules;
use std::collections::HashSet;
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
}

/// The role counts of the workers of the last HR load under `rules`.
pub async fn role_counts(store: &Store, rules: &Rules, today: jiff::civil::Date, samples: usize) -> Result<RoleCounts> {
    let workers = crate::intake::workers(store).await?;
    let custom = rules.custom_fields().to_vec();
    let mut out =
        RoleCounts { workers: workers.len(), roles: vec![(0, vec![]); rules.config.roles.len()], unmatched: 0 };
    for w in &workers {
        match rules.role_of(&rules::worker_row(w, &custom), today) {
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
            .map(|g| serde_json::json!({"user_type": g.user_type, "teams": g.teams, "groups": g.groups}));
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

/// `tenure preview`: for each chosen worker and each connection, the role and why, the grant,
/// and every attribute with its formula.
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

/// The preview use case (`tenure preview`, the API's worker "why"): for the chosen workers
/// (else `sample` of them spread over the population), on every connection.
pub async fn preview_of(
    store: &Store,
    key: Option<&store::MasterKey>,
    rules: &Rules,
    workers: &[String],
    sample: Option<usize>,
    today: Option<jiff::civil::Date>,
) -> Result<Vec<Previewed>> {
    let snapshot = store.snapshot().await.map_err(Error::from);
    // What the plan will do for the chosen workers, connection by connection: the same
    // planner, against the target as it is (unique names claimed as apply claims them).
    // Chosen workers are planned against their own accounts, each read alone, not the whole
    // target: a worker's "why" asked a hundred times a second is a hundred reads at most.
    let mut planned: Vec<Result<(engine::Plan, Vec<crate::runs::AccountRead>)>> = vec![];
    if let Some(key) = key {
        let now = match today {
            Some(d) => {
                d.to_zoned(jiff::tz::TimeZone::UTC).map(|z| z.timestamp()).unwrap_or_else(|_| jiff::Timestamp::now())
            }
            None => jiff::Timestamp::now(),
        };
        for c in &rules.connections {
            let reading = crate::runs::Reading::Accounts;
            let p =
                crate::runs::prepare_reading(store, key, rules.clone(), Some(&c.name), now, false, workers, reading)
                    .await;
            planned.push(p.map(|p| (p.plan, p.reads)));
        }
    }
    let mut all: Vec<hr::Worker> = snapshot?
        .iter()
        .map(|r| serde_json::from_str(&r.body).map_err(|e| Error::refused(format!("worker {}: {e}", r.worker_id))))
        .collect::<Result<_, _>>()?;
    if all.is_empty() {
        return Err(Error::refused("no workers yet: load an HR file with `tenure hr load FILE`"));
    }
    // Unique values go to the earliest hire first, then by id: the same order every time.
    all.sort_by(|a, b| a.hire_date.cmp(&b.hire_date).then_with(|| a.id.cmp(&b.id)));
    let today = today.unwrap_or_else(|| jiff::Zoned::now().date());
    let custom = rules.custom_fields().to_vec();
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
            let idx: Vec<(usize, usize)> = decisions
                .iter()
                .enumerate()
                .filter_map(|(i, d)| {
                    d.attributes.iter().position(|a| a.target == m.target && a.value.is_ok()).map(|p| (i, p))
                })
                .collect();
            let values: Vec<String> =
                idx.iter().map(|(i, p)| decisions[*i].attributes[*p].value.as_ref().expect("ok").to_text()).collect();
            for ((i, p), v) in idx.iter().zip(rules::make_unique(&values, &HashSet::new())) {
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
