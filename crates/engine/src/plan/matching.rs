//! The plan's third step, matching: which account is whose. A worker's link comes first; then
//! a free account with the worker's userName, e-mail or externalId is adopted. Before any
//! account is given out, the conflicts are found: an account linked to a worker who left moves
//! to the worker who now matches it (a conversion, a rehire under a new id); an account linked
//! to someone still there holds the worker; an address that only looks like another (confusable
//! characters) holds the worker too.

use super::actual::Target;
use super::desired::Wanted;
use super::Context;
use crate::{confusable, fold, s, sv, Actual, Life};
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// What the matching must not do on its own, found before any account is given out.
#[derive(Default)]
pub(crate) struct Conflicts<'v> {
    /// Account id -> the worker whose link moves there (the old worker has left).
    pub moves: HashMap<&'v str, String>,
    /// New worker -> (the account, the worker who left it).
    pub moved_to: HashMap<String, (&'v Value, String)>,
    /// Workers held, with why.
    pub conflict: HashMap<String, String>,
}

/// A worker's account on the target.
#[derive(Clone, Copy)]
pub(crate) struct Account<'v> {
    pub user: &'v Value,
    /// Through the worker's link (else it is adopted now).
    pub linked: bool,
}

pub(crate) struct Matched<'v> {
    /// In the order of the wanted workers.
    pub accounts: Vec<Option<Account<'v>>>,
    pub held: Conflicts<'v>,
    /// Accounts tenure did not make and cannot link (their userNames).
    pub unmanaged: Vec<String>,
}

/// The addresses a worker is matched or made by: the wanted userName and the work e-mail.
fn addresses<'w>(w: &'w Wanted) -> Vec<&'w str> {
    w.text("userName").into_iter().chain(w.email()).filter(|a| !a.is_empty()).collect()
}

/// Look-alike keys of addresses, built only when some address is not plain ASCII.
struct Looks<'v, 'w> {
    /// The target's userNames and e-mails, by look-alike key.
    target: HashMap<String, Vec<&'v str>>,
    /// Unlinked workers' addresses (worker id, address), by look-alike key: two new hires whose
    /// addresses look alike, as the target might take one for the other.
    new: HashMap<String, Vec<(&'w str, &'w str)>>,
}

impl<'v, 'w> Looks<'v, 'w> {
    fn build(wanted: &'w [Wanted], actual: &'v Actual, t: &Target) -> Option<Looks<'v, 'w>> {
        let any_wide = wanted.iter().any(|w| w.text("userName").into_iter().chain(w.email()).any(|a| !a.is_ascii()))
            || t.by_user_name.keys().chain(t.by_email.keys()).any(|k| !k.is_ascii());
        if !any_wide {
            return None;
        }
        let mut target: HashMap<String, Vec<&str>> = HashMap::new();
        for u in &actual.users {
            let mut names = vec![sv(u, "userName")];
            names.extend(u.get("emails").and_then(Value::as_array).into_iter().flatten().map(|e| sv(e, "value")));
            for n in names.into_iter().filter(|n| !n.is_empty()) {
                target.entry(confusable(n)).or_default().push(n);
            }
        }
        let mut new: HashMap<String, Vec<(&str, &str)>> = HashMap::new();
        for w in wanted.iter().filter(|w| w.life != Life::Gone && !t.linked_here(w.id())) {
            for a in addresses(w) {
                new.entry(confusable(a)).or_default().push((w.id(), a));
            }
        }
        Some(Looks { target, new })
    }

    /// Why a worker is held for an address that only looks like another, if it is.
    fn hold(&self, w: &Wanted) -> Option<String> {
        let mine = addresses(w);
        let existing = mine.iter().find_map(|a| {
            let f = fold(a);
            self.target
                .get(&confusable(a))?
                .iter()
                .find(|n| fold(n) != f && !(a.is_ascii() && n.is_ascii()))
                .map(|n| (a, n))
        });
        if let Some((a, n)) = existing {
            return Some(format!(
                "held: {a:?} only looks like the existing account {n:?} (confusable characters, e.g. a Kelvin sign \
                 for k): not matched and not created; correct the address in HR"
            ));
        }
        // Of two new addresses that look alike, the one that is not plain ASCII waits (both
        // when neither is): the plain one is the address a person types.
        let new = mine.iter().filter(|a| !a.is_ascii()).find_map(|a| {
            let f = fold(a);
            self.new
                .get(&confusable(a))?
                .iter()
                .find(|(other, n)| *other != w.id() && fold(n) != f)
                .map(|(o, n)| (a, o, n))
        });
        new.map(|(a, other, n)| {
            format!(
                "held: {a:?} only looks like {n:?}, the address of worker {other} (confusable characters, e.g. a \
                 Kelvin sign for k): not created, as the target could take one for the other; correct the address in HR"
            )
        })
    }
}

/// Finds unlinked workers whose account is linked to another worker, and look-alikes.
pub(crate) fn conflicts<'v>(ctx: &Context, wanted: &[Wanted], actual: &'v Actual, t: &Target<'v>) -> Conflicts<'v> {
    let mut c = Conflicts::default();
    let life_of: HashMap<&str, Life> = wanted.iter().map(|w| (w.id(), w.life)).collect();
    let looks = Looks::build(wanted, actual, t);
    for w in wanted {
        let id = w.id();
        if t.linked_here(id) {
            continue;
        }
        if let Some(why) = looks.as_ref().and_then(|l| l.hold(w)) {
            c.conflict.insert(id.to_string(), why);
            continue;
        }
        // A unique userName is numbered when taken (two people, one name): only an e-mail, or
        // a userName that is not numbered, says it is the same account.
        let by_name = w.text("userName").filter(|_| !ctx.user_name_unique).and_then(|n| t.by_user_name.get(&fold(n)));
        let by_mail = w.email().and_then(|e| t.by_email.get(&fold(e)));
        let Some(u) = by_name.or(by_mail).copied() else { continue };
        let uid = sv(u, "id");
        let Some(&other) = t.linked_by.get(uid) else { continue };
        if other == id {
            continue;
        }
        let who = sv(u, "userName");
        if let Some(first) = c.moves.get(uid) {
            let why = format!(
                "held: the account {who:?} of worker {other}, who left, goes to worker {first}, who also matches it"
            );
            c.conflict.insert(id.to_string(), why);
            continue;
        }
        let state = match life_of.get(other) {
            Some(Life::Gone) => {
                c.moves.insert(uid, id.to_string());
                c.moved_to.insert(id.to_string(), (u, other.to_string()));
                continue;
            }
            None => "not in the HR snapshot",
            Some(Life::Active) => "active in HR",
            Some(Life::OnLeave) => "on leave",
            Some(Life::NotYet) => "not yet started",
        };
        c.conflict.insert(
            id.to_string(),
            format!(
                "held: the account {who:?} that matches this worker is linked to worker {other}, who is {state}; if \
                 they are one person, end worker {other} in HR (the link then moves), otherwise correct the address"
            ),
        );
    }
    c
}

/// Gives each wanted worker its account, if any: its link's, a moved link's, or a free one
/// found by userName, then e-mail, then externalId (an account goes to one worker only).
pub(crate) fn assign<'v>(ctx: &Context, wanted: &[Wanted], actual: &'v Actual, t: &Target<'v>) -> Matched<'v> {
    let held = conflicts(ctx, wanted, actual, t);
    let mut claimed: HashSet<&str> = HashSet::new();
    let mut accounts = Vec::with_capacity(wanted.len());
    for w in wanted {
        let id = w.id();
        if let Some(u) = t.link_of.get(id).and_then(|l| t.by_id.get(l.target_id.as_str())) {
            let uid = sv(u, "id");
            // A leaver whose account another worker takes over: no account of theirs now.
            if held.moves.contains_key(uid) {
                accounts.push(None);
            } else {
                claimed.insert(uid);
                accounts.push(Some(Account { user: u, linked: true }));
            }
            continue;
        }
        if held.conflict.contains_key(id) {
            accounts.push(None);
            continue;
        }
        if let Some((u, _)) = held.moved_to.get(id) {
            claimed.insert(sv(u, "id"));
            accounts.push(Some(Account { user: u, linked: false }));
            continue;
        }
        let free = |u: &&Value| {
            let uid = sv(u, "id");
            !t.linked_by.contains_key(uid) && !claimed.contains(uid)
        };
        let found = w
            .text("userName")
            .and_then(|n| t.by_user_name.get(&fold(n)).copied())
            .filter(free)
            .or_else(|| w.email().and_then(|e| t.by_email.get(&fold(e)).copied()).filter(free))
            .or_else(|| w.text("externalId").and_then(|x| t.by_external.get(x).copied()).filter(free));
        if let Some(u) = found {
            claimed.insert(sv(u, "id"));
        }
        accounts.push(found.map(|user| Account { user, linked: false }));
    }
    let unmanaged = actual
        .users
        .iter()
        .filter(|u| !claimed.contains(sv(u, "id")) && !t.linked_by.contains_key(sv(u, "id")))
        .map(|u| s(u, "userName"))
        .collect();
    Matched { accounts, held, unmanaged }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testkit::*;
    use crate::plan::{actual, desired};
    use serde_json::json;
    use store::Link;

    /// Each worker's account (its id, and whether through a link), the unmanaged accounts, the holds.
    type Got = (Vec<(String, Option<(String, bool)>)>, Vec<String>, HashMap<String, String>);

    /// Runs desired, actual and matching on hand-made inputs.
    fn matched(workers: &[hr::Worker], users: Vec<Value>, links: &[Link]) -> Got {
        let rules = rules();
        let ctx = context(&rules);
        let wanted = desired::evaluate(&ctx, workers);
        let actual = Actual { users, groups: vec![] };
        let t = actual::index(&actual, links);
        let m = assign(&ctx, &wanted, &actual, &t);
        let got = wanted
            .iter()
            .zip(&m.accounts)
            .map(|(w, a)| (w.id().to_string(), a.map(|a| (sv(a.user, "id").to_string(), a.linked))))
            .collect();
        (got, m.unmanaged, m.held.conflict)
    }

    fn some(id: &str, linked: bool) -> Option<(String, bool)> {
        Some((id.to_string(), linked))
    }

    #[test]
    fn a_link_first_then_user_name_then_e_mail_then_external_id() {
        let workers = [
            worker("1", "ann@x.example", json!({})),
            worker("2", "bob@x.example", json!({})),
            worker("3", "cy@x.example", json!({})),
            worker("4", "dee@x.example", json!({})),
            worker("5", "eve@x.example", json!({})),
        ];
        let users = vec![
            account("u1", "someone.else@x.example", json!({})),
            account("u2", "BOB@x.example", json!({})),
            account("u3", "carl@x.example", json!({"emails": [{"value": "Cy@X.example"}]})),
            account("u4", "d@x.example", json!({"emails": [], "externalId": "4"})),
            account("u9", "stray@x.example", json!({})),
        ];
        let (got, unmanaged, held) = matched(&workers, users, &[link("1", "u1")]);
        assert_eq!(
            got,
            vec![
                ("1".into(), some("u1", true)),
                ("2".into(), some("u2", false)),
                ("3".into(), some("u3", false)),
                ("4".into(), some("u4", false)),
                ("5".into(), None),
            ]
        );
        assert_eq!(unmanaged, ["stray@x.example"]);
        assert!(held.is_empty());
    }

    #[test]
    fn an_account_goes_to_one_worker_only_the_earlier_hire() {
        let workers = [
            worker("7", "pat@x.example", json!({"hire_date": "2022-01-01"})),
            worker("8", "pat@x.example", json!({"hire_date": "2021-01-01"})),
        ];
        let (got, _, _) = matched(&workers, vec![account("u1", "pat@x.example", json!({}))], &[]);
        assert_eq!(got, vec![("8".into(), some("u1", false)), ("7".into(), None)]);
    }

    #[test]
    fn a_leavers_account_moves_to_the_worker_who_now_matches_it() {
        let gone = json!({"status": {"state": "terminated"}, "termination_date": "2026-02-27"});
        let workers = [
            worker("100", "sam@x.example", gone),
            worker("200", "sam@x.example", json!({"employment_type": "contractor"})),
        ];
        let (got, unmanaged, held) =
            matched(&workers, vec![account("u1", "sam@x.example", json!({}))], &[link("100", "u1")]);
        assert_eq!(got, vec![("100".into(), None), ("200".into(), some("u1", false))]);
        assert!(unmanaged.is_empty() && held.is_empty());
    }

    #[test]
    fn an_account_linked_to_someone_still_there_holds_the_worker() {
        let workers = [worker("100", "sam@x.example", json!({})), worker("200", "sam@x.example", json!({}))];
        let (got, _, held) = matched(&workers, vec![account("u1", "sam@x.example", json!({}))], &[link("100", "u1")]);
        assert_eq!(got, vec![("100".into(), some("u1", true)), ("200".into(), None)]);
        assert!(held["200"].contains("is linked to worker 100, who is active in HR"), "{}", held["200"]);
    }

    #[test]
    fn an_address_that_only_looks_like_an_account_is_held_not_matched() {
        // A Kelvin sign for the k.
        let workers = [worker("1", "\u{212A}im@x.example", json!({}))];
        let (got, unmanaged, held) = matched(&workers, vec![account("u1", "kim@x.example", json!({}))], &[]);
        assert_eq!(got, vec![("1".into(), None)]);
        assert_eq!(unmanaged, ["kim@x.example"], "the real account is nobody's");
        assert!(held["1"].contains("only looks like the existing account \"kim@x.example\""), "{}", held["1"]);
    }

    #[test]
    fn of_two_new_look_alikes_the_one_in_plain_ascii_goes_on() {
        let workers = [worker("1", "kim@x.example", json!({})), worker("2", "\u{212A}im@x.example", json!({}))];
        let (_, _, held) = matched(&workers, vec![], &[]);
        assert!(!held.contains_key("1"));
        assert!(held["2"].contains("the address of worker 1"), "{}", held["2"]);
    }
}
