//! The plan's second step, actual: the target's accounts and teams and the link table,
//! indexed for the matching and the diff. Keys are borrowed where they can be: 100,000 accounts
//! and their team memberships are indexed without copying them.

use crate::{fold, s, sv, Actual};
use serde_json::Value;
use std::collections::HashMap;
use store::Link;

/// The target as the plan looks things up in it.
pub(crate) struct Target<'a> {
    /// Account id -> account.
    pub by_id: HashMap<&'a str, &'a Value>,
    /// Folded userName -> account (see `fold`).
    pub by_user_name: HashMap<String, &'a Value>,
    /// Folded e-mail address -> account.
    pub by_email: HashMap<String, &'a Value>,
    pub by_external: HashMap<String, &'a Value>,
    /// Lowercase team name -> team id.
    pub team_ids: HashMap<String, String>,
    /// Account id -> names of the teams the account is in.
    pub members: HashMap<&'a str, Vec<&'a str>>,
    /// Worker id -> its link.
    pub link_of: HashMap<&'a str, &'a Link>,
    /// Account id -> the worker linked to it.
    pub linked_by: HashMap<&'a str, &'a str>,
}

impl Target<'_> {
    /// Whether a worker's link names an account the target still has.
    pub fn linked_here(&self, worker: &str) -> bool {
        self.link_of.get(worker).is_some_and(|l| self.by_id.contains_key(l.target_id.as_str()))
    }
}

pub(crate) fn index<'a>(actual: &'a Actual, links: &'a [Link]) -> Target<'a> {
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
    let linked_by: HashMap<&str, &str> = links.iter().map(|l| (l.target_id.as_str(), l.worker_id.as_str())).collect();
    Target { by_id, by_user_name, by_email, by_external, team_ids, members, link_of, linked_by }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testkit::link;
    use serde_json::json;

    #[test]
    fn accounts_are_found_by_any_case_of_their_addresses_and_teams_by_member() {
        let actual = Actual {
            users: vec![
                json!({"id": "u1", "userName": "Ann.Lee@X.example", "emails": [{"value": "ANN@x.example"}], "externalId": "1001"}),
                json!({"id": "u2", "userName": "bob@x.example"}),
            ],
            groups: vec![
                json!({"id": "g1", "displayName": "Sales", "members": [{"value": "u1"}, {"value": "u2"}, {"value": "u1"}]}),
                json!({"id": "g2", "displayName": "Everyone", "members": [{"value": "u1"}]}),
            ],
        };
        let links = [link("1001", "u1"), link("1002", "gone")];
        let t = index(&actual, &links);
        assert_eq!(sv(t.by_user_name[&fold("ann.lee@x.example")], "id"), "u1");
        assert_eq!(sv(t.by_email[&fold("ann@X.EXAMPLE")], "id"), "u1");
        assert_eq!(sv(t.by_external["1001"], "id"), "u1");
        assert!(!t.by_external.contains_key("1002"));
        assert_eq!(t.team_ids["sales"], "g1");
        // A member listed twice is in the team once.
        assert_eq!(t.members["u1"], vec!["Sales", "Everyone"]);
        assert_eq!(t.members["u2"], vec!["Sales"]);
        assert!(t.linked_here("1001"));
        assert!(!t.linked_here("1002"), "its account is gone from the target");
        assert_eq!(t.linked_by["gone"], "1002");
        assert_eq!(t.linked_by.len(), 2);
    }
}
