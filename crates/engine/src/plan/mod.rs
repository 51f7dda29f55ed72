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
    /// Every team the connection's configuration names: the only ones tenure removes anyone from.
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
            managed_teams: conn.managed_teams(rules).into_iter().collect(),
            user_name_unique: conn.mappings.iter().any(|m| m.target == "userName" && m.unique),
            lifecycle,
        })
    }
}

/// Computes the plan for one connection, step by step.
pub fn plan(i: &Inputs) -> Result<Plan, String> {
    let t0 = std::time::Instant::now();
    let ms = || t0.elapsed().as_millis() as u64;
    let ctx = Context::new(i.rules, i.connection, i.now)?;
    let target = actual::index(i.actual, i.links);
    tracing::debug!(ms = ms(), "plan: target indexed");
    let wanted = desired::evaluate(&ctx, i.workers);
    tracing::debug!(ms = ms(), "plan: roles and mappings evaluated");
    let matched = matching::assign(&ctx, &wanted, i.actual, &target);
    tracing::debug!(ms = ms(), "plan: accounts matched");
    let plan = diff::actions(&ctx, &wanted, matched, i.actual, &target, i.deactivated);
    tracing::debug!(ms = ms(), "plan: actions decided");
    Ok(plan)
}
