//! Small hand-made inputs for the plan steps' unit tests.

use super::Context;
use hr::Worker;
use jiff::Timestamp;
use rules::Rules;
use serde_json::{json, Value};
use store::Link;

/// One connection "c" on the monday dialect: Staff (employees) are members in Sales,
/// Contractors are guests; everyone granted is in Everyone too.
pub(crate) const RULES: &str = r#"
[[connection]]
name = "c"
dialect = "monday"
mode = "roles"
default_teams = ["Everyone"]

[connection.mappings]
userName = { formula = "=work_email", unique = true }
displayName = '=first_name & " " & last_name'
title = "=title"
externalId = "=employee_id"

[[role]]
name = "Staff"
when = { field = "employment_type", op = "equals", value = "employee" }
[role.grants."c"]
user_type = "member"
teams = ["Sales"]

[[role]]
name = "Contractors"
when = { field = "employment_type", op = "equals", value = "contractor" }
[role.grants."c"]
user_type = "guest"
"#;

pub(crate) fn rules_with(extra_connection_settings: &str) -> Rules {
    let text = RULES.replacen("mode = \"roles\"\n", &format!("mode = \"roles\"\n{extra_connection_settings}\n"), 1);
    let config = rules::Config::from_toml("test.toml", &text).expect("test rules parse");
    Rules::compile(&config).expect("test rules compile")
}

pub(crate) fn rules() -> Rules {
    rules_with("")
}

pub(crate) fn now() -> Timestamp {
    "2026-03-02T09:00:00Z".parse().unwrap()
}

pub(crate) fn context(rules: &Rules) -> Context<'_> {
    Context::new(rules, 0, now()).expect("context")
}

/// An active employee hired in 2020, changed by `more` (any of the worker's fields).
pub(crate) fn worker(id: &str, email: &str, more: Value) -> Worker {
    let mut w = json!({
        "id": id, "first_name": "Ann", "last_name": format!("Worker{id}"), "work_email": email,
        "title": "Analyst", "employment_type": "employee", "status": {"state": "active"},
        "hire_date": "2020-01-01", "custom": {},
    });
    if let (Some(w), Value::Object(m)) = (w.as_object_mut(), more) {
        w.extend(m);
    }
    serde_json::from_value(w).expect("a valid test worker")
}

pub(crate) fn link(worker: &str, target: &str) -> Link {
    Link {
        connection: "c".into(),
        worker_id: worker.into(),
        target_id: target.into(),
        user_name: String::new(),
        origin: String::new(),
        linked_at: String::new(),
    }
}

/// An account as the target has it.
pub(crate) fn account(id: &str, user_name: &str, more: Value) -> Value {
    let mut u = json!({"id": id, "userName": user_name, "active": true, "userType": "member",
        "emails": [{"value": user_name, "type": "work", "primary": true}]});
    if let (Some(u), Value::Object(m)) = (u.as_object_mut(), more) {
        u.extend(m);
    }
    u
}
