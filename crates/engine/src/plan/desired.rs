//! The plan's first step, desired: each worker's lifecycle at the moment planned for, the role
//! that matched (the grant) and the account attributes the mappings give, in a stable order:
//! earliest hire first, so the earlier hire keeps a contested user name.

use super::Context;
use crate::{life, to_json, Life};
use hr::Worker;
use rules::{Apply, Decision};
use serde_json::Value;

/// One account attribute as the mappings want it.
pub(crate) struct Attr {
    pub target: String,
    pub value: Value,
    pub apply: Apply,
    /// Made unique at create (a namesake gets a number).
    pub unique: bool,
}

/// One worker as the rules want it on this connection.
pub(crate) struct Wanted<'w> {
    pub worker: &'w Worker,
    pub life: Life,
    pub decision: Decision,
    pub attrs: Vec<Attr>,
    /// Mappings that could not be computed ("target: why").
    pub errors: Vec<String>,
}

impl Wanted<'_> {
    /// A wanted text attribute ("userName", "externalId").
    pub fn text(&self, target: &str) -> Option<&str> {
        self.attrs.iter().find(|a| a.target == target).and_then(|a| a.value.as_str())
    }
    pub fn id(&self) -> &str {
        self.worker.id.as_str()
    }
    pub fn email(&self) -> Option<&str> {
        self.worker.work_email.as_ref().map(|e| e.as_str())
    }
}

fn one<'w>(ctx: &Context, w: &'w Worker) -> Wanted<'w> {
    let row = rules::worker_row(w, &ctx.custom);
    let decision = ctx.rules.decide_with(ctx.index, &row, ctx.today, false);
    let mut errors = vec![];
    let attrs = decision
        .attributes
        .iter()
        .filter_map(|a| match &a.value {
            Ok(v) => Some(Attr { target: a.target.clone(), value: to_json(v), apply: a.apply, unique: a.unique }),
            Err(e) => {
                errors.push(format!("{}: {e}", a.target));
                None
            }
        })
        .collect();
    let life = life(w, &ctx.lifecycle, ctx.rules.config.hr.leave, ctx.now);
    Wanted { worker: w, life, decision, attrs, errors }
}

pub(crate) fn evaluate<'w>(ctx: &Context, workers: &'w [Worker]) -> Vec<Wanted<'w>> {
    let mut sorted: Vec<&Worker> = workers.iter().collect();
    sorted.sort_by(|a, b| a.hire_date.cmp(&b.hire_date).then_with(|| a.id.cmp(&b.id)));
    // Roles and formulas for 100,000 workers are the plan's largest part: split over the
    // cores, each slice evaluated in order, so the result is the same as one by one.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let slice = sorted.len().div_ceil(threads).max(1_000);
    std::thread::scope(|scope| {
        let parts: Vec<_> = sorted
            .chunks(slice)
            .map(|c| scope.spawn(move || c.iter().map(|w| one(ctx, w)).collect::<Vec<_>>()))
            .collect();
        parts.into_iter().flat_map(|p| p.join().expect("evaluation thread")).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testkit::*;
    use serde_json::json;

    #[test]
    fn earliest_hire_first_then_by_id_with_roles_and_attributes() {
        let rules = rules();
        let ctx = context(&rules);
        let workers = [
            worker("3", "c@x.example", json!({"hire_date": "2021-05-01"})),
            worker("2", "b@x.example", json!({"employment_type": "contractor"})),
            worker("1", "a@x.example", json!({"employment_type": "intern"})),
        ];
        let wanted = evaluate(&ctx, &workers);
        let ids: Vec<&str> = wanted.iter().map(Wanted::id).collect();
        assert_eq!(ids, ["1", "2", "3"], "same hire date: by id; the later hire last");
        assert_eq!(wanted[0].decision.role, None, "no role matches an intern here");
        assert_eq!(wanted[1].decision.role.as_deref(), Some("Contractors"));
        assert_eq!(wanted[2].decision.role.as_deref(), Some("Staff"));
        assert_eq!(wanted[2].text("userName"), Some("c@x.example"));
        assert_eq!(wanted[2].text("externalId"), Some("3"));
        assert!(wanted[2].attrs.iter().any(|a| a.target == "userName" && a.unique));
        assert!(wanted.iter().all(|w| w.life == Life::Active && w.errors.is_empty()));
    }

    #[test]
    fn lifecycle_is_read_at_the_moment_planned_for() {
        let rules = rules();
        let ctx = context(&rules);
        let workers = [
            worker("1", "a@x.example", json!({"status": {"state": "terminated"}, "termination_date": "2026-02-01"})),
            worker("2", "b@x.example", json!({"hire_date": "2026-04-01"})),
            worker("3", "c@x.example", json!({"termination_date": "2026-06-30"})),
        ];
        let life: Vec<(String, Life)> = evaluate(&ctx, &workers).iter().map(|w| (w.id().to_string(), w.life)).collect();
        assert!(life.contains(&("1".into(), Life::Gone)));
        assert!(life.contains(&("2".into(), Life::NotYet)));
        assert!(life.contains(&("3".into(), Life::Active)), "leaves later: still active today");
    }

    #[test]
    fn a_missing_work_email_leaves_the_user_name_blank_not_an_error() {
        let rules = rules();
        let ctx = context(&rules);
        let workers = [worker("1", "a@x.example", json!({})), worker("2", "", json!({"work_email": null}))];
        let wanted = evaluate(&ctx, &workers);
        assert!(wanted.iter().all(|w| w.errors.is_empty()));
        assert_eq!(wanted[1].text("userName"), None);
    }

    #[test]
    fn many_workers_come_out_in_the_same_order_as_one_by_one() {
        let rules = rules();
        let ctx = context(&rules);
        // More than one slice per thread, hire dates scattered.
        let workers: Vec<Worker> = (0..2_500)
            .map(|i| {
                let d = format!("20{:02}-0{}-1{}", 10 + i % 13, 1 + i % 9, i % 10);
                worker(&format!("{}", 10_000 + (i * 7919) % 2_500), &format!("w{i}@x.example"), json!({"hire_date": d}))
            })
            .collect();
        let wanted = evaluate(&ctx, &workers);
        let got: Vec<&str> = wanted.iter().map(Wanted::id).collect();
        let mut want: Vec<&Worker> = workers.iter().collect();
        want.sort_by(|a, b| a.hire_date.cmp(&b.hire_date).then_with(|| a.id.cmp(&b.id)));
        assert_eq!(got, want.iter().map(|w| w.id.as_str()).collect::<Vec<_>>());
    }
}
