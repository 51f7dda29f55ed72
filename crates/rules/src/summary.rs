//! What a load's values look like, field by field, and which of them no role names: the
//! check that catches "Full-Time" in a file whose roles say "full_time" before a run does.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use hr::{Status, Worker};
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::formula::Value;
use crate::{worker_fields, worker_row, Config, Rules};

/// The fields every summary shows, beside custom fields and any field a condition names.
const SHOWN: [&str; 8] =
    ["department", "division", "location", "cost_center", "employment_type", "status", "leave_type", "time_zone"];

/// How many of a field's values are shown by name.
const TOP: usize = 5;

/// How many unnamed values a warning lists by name.
const LISTED: usize = 10;

/// A value and how many workers carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    pub value: String,
    pub workers: usize,
}

/// One field across a load's accepted workers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldSummary {
    pub field: String,
    /// Distinct non-empty values.
    pub distinct: usize,
    /// The most frequent values, most frequent first.
    pub top: Vec<Count>,
    /// Workers whose value is not among `top`.
    pub other: usize,
    /// Workers with no value.
    pub empty: usize,
}

/// A field roles test against named values, and the values in the data none of them names,
/// counted on the workers no role takes (a value a role need not name, because another role
/// takes its workers anyway, is not a warning).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unnamed {
    pub field: String,
    /// The values no condition names, most frequent first (at most ten).
    pub values: Vec<Count>,
    /// How many such values there are in all.
    pub distinct: usize,
    /// How many workers no role takes carry one of them.
    pub workers: usize,
}

impl Unnamed {
    pub fn message(&self) -> String {
        let listed = self.values.iter().map(|c| format!("{:?} ({})", c.value, c.workers)).collect::<Vec<_>>();
        let more = self.distinct.saturating_sub(self.values.len());
        format!(
            "field {}: {} value(s) that no role condition names, on {} worker(s) no role takes: {}{}",
            self.field,
            self.distinct,
            self.workers,
            listed.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() }
        )
    }
}

/// A load's values, field by field, with the warnings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub workers: usize,
    pub fields: Vec<FieldSummary>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unnamed: Vec<Unnamed>,
}

impl Summary {
    /// The fields as lines: `department: 25 values; Sales 120, ...; other 800; empty 3`; the
    /// fields no worker has a value in, on one line of their own.
    pub fn lines(&self) -> Vec<String> {
        let (blank, given): (Vec<&FieldSummary>, Vec<&FieldSummary>) =
            self.fields.iter().partition(|f| f.distinct == 0 && self.workers > 0);
        let mut lines: Vec<String> = given
            .into_iter()
            .map(|f| {
                let top = f.top.iter().map(|c| format!("{} {}", c.value, c.workers)).collect::<Vec<_>>().join(", ");
                let mut line = format!("{}: {} value(s)", f.field, f.distinct);
                if !top.is_empty() {
                    line.push_str(&format!(": {top}"));
                }
                if f.other > 0 {
                    line.push_str(&format!("; other {}", f.other));
                }
                if f.empty > 0 {
                    line.push_str(&format!("; empty {}", f.empty));
                }
                line
            })
            .collect();
        if !blank.is_empty() {
            let names: Vec<&str> = blank.iter().map(|f| f.field.as_str()).collect();
            lines.push(format!("empty in every row: {}", names.join(", ")));
        }
        lines
    }

    pub fn warnings(&self) -> Vec<String> {
        self.unnamed.iter().map(Unnamed::message).collect()
    }
}

/// What a summary needs from the configuration: the custom fields, the fields conditions
/// read, the values role conditions name, and the roles to tell who no role takes.
#[derive(Clone, Default)]
pub struct SummaryRules {
    pub custom: Vec<String>,
    /// Fields any role or team rule condition reads (lower case): summarised too.
    pub read: Vec<String>,
    /// Field (lower case) to the values role conditions name (`None`: read in a way that
    /// matches values nobody can list, such as `contains`).
    pub named: BTreeMap<String, Option<Vec<String>>>,
    /// The compiled roles; none (a configuration that does not compile, or none yet): no
    /// warnings.
    pub rules: Option<Arc<Rules>>,
}

impl std::fmt::Debug for SummaryRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SummaryRules").field("custom", &self.custom).field("named", &self.named).finish()
    }
}

impl SummaryRules {
    /// Only the custom fields: a summary with no warnings.
    pub fn plain(custom: &[String]) -> SummaryRules {
        SummaryRules { custom: custom.to_vec(), ..Default::default() }
    }

    pub fn of(config: &Config) -> SummaryRules {
        let roles = config.roles.iter().filter_map(|r| r.when.as_ref());
        let teams = config.team_rules.iter().filter_map(|t| t.when.as_ref());
        let named = crate::condition::named_values(roles.clone());
        let read = crate::condition::named_values(roles.chain(teams)).into_keys().collect();
        let rules = Rules::compile(config).ok().map(Arc::new);
        SummaryRules { custom: config.hr.custom_fields.clone(), read, named, rules }
    }
}

/// Summarises the workers' values. Text compares without regard to case, as conditions do
/// unless told otherwise; `today` is the day roles are decided on.
pub fn summarize(workers: &[Worker], rules: &SummaryRules, today: Date) -> Summary {
    let fields = worker_fields(&rules.custom);
    let mut shown: Vec<String> = SHOWN.iter().map(|s| s.to_string()).collect();
    shown.extend(rules.custom.iter().map(|c| format!("custom.{c}")));
    for f in &rules.read {
        if !shown.iter().any(|s| s.eq_ignore_ascii_case(f)) {
            shown.push(f.clone());
        }
    }
    let at: Vec<(String, usize)> =
        shown.into_iter().filter_map(|name| fields.index(&name).map(|(i, _)| (name, i))).collect();
    // Per shown field: the role conditions' values, when they can be listed.
    let named: Vec<Option<HashSet<String>>> = at
        .iter()
        .map(|(name, _)| match rules.named.get(&name.to_ascii_lowercase()) {
            Some(Some(v)) if rules.rules.is_some() => Some(v.iter().map(|v| v.to_lowercase()).collect()),
            _ => None,
        })
        .collect();
    let warn = named.iter().any(Option::is_some);
    let mut counts: Vec<HashMap<String, usize>> = vec![HashMap::new(); at.len()];
    let mut missed: Vec<HashMap<String, usize>> = vec![HashMap::new(); at.len()];
    let mut empty = vec![0usize; at.len()];
    for w in workers {
        let row = worker_row(w, &rules.custom);
        // A leaver's account goes whatever role it had: only the others need a role.
        let roleless = warn
            && w.status != Status::Terminated
            && rules.rules.as_ref().is_some_and(|r| r.role_of(&row, today).is_none());
        for (k, (_, i)) in at.iter().enumerate() {
            let text = match &row[*i] {
                Value::Blank => None,
                Value::Text(t) if t.trim().is_empty() => None,
                Value::Text(t) => Some(t.clone()),
                v => Some(v.to_text()),
            };
            let Some(text) = text else {
                empty[k] += 1;
                continue;
            };
            if roleless && named[k].as_ref().is_some_and(|n| !n.contains(&text.to_lowercase())) {
                *missed[k].entry(text.clone()).or_default() += 1;
            }
            *counts[k].entry(text).or_default() += 1;
        }
    }
    let ranked = |m: &mut HashMap<String, usize>| {
        let mut by: Vec<Count> = m.drain().map(|(value, workers)| Count { value, workers }).collect();
        by.sort_by(|a, b| b.workers.cmp(&a.workers).then_with(|| a.value.cmp(&b.value)));
        by
    };
    let mut out = Summary { workers: workers.len(), ..Default::default() };
    for (k, (name, _)) in at.iter().enumerate() {
        let by = ranked(&mut counts[k]);
        let miss = ranked(&mut missed[k]);
        if !miss.is_empty() {
            out.unnamed.push(Unnamed {
                field: name.clone(),
                distinct: miss.len(),
                workers: miss.iter().map(|c| c.workers).sum(),
                values: miss.into_iter().take(LISTED).collect(),
            });
        }
        let top: Vec<Count> = by.iter().take(TOP).cloned().collect();
        let in_top: usize = top.iter().map(|c| c.workers).sum();
        let all: usize = by.iter().map(|c| c.workers).sum();
        out.fields.push(FieldSummary {
            field: name.clone(),
            distinct: by.len(),
            top,
            other: all - in_top,
            empty: empty[k],
        });
    }
    out
}
