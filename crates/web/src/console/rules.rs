//! Roles and mapping: the configuration edited as forms. An Editor edits a draft of their own
//! (the service's `drafts`), a step at a time: roles in priority order with their conditions,
//! user type and teams, each connection's settings and mapping table (formulas checked as they
//! are typed); reads what would change for every worker if it were saved, then saves it as the
//! configuration in force, unless someone saved another version meanwhile. A Viewer reads the
//! configuration in force.

use super::{answer, render, segment, when, Chrome, Failure, Message, Page, Posted};
use crate::api::Shared;
use crate::users::Role as R;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use rules::condition::Condition;
use rules::condition::{Op, Test};
use rules::{Apply, Config, Role, Stage};
use serde::Deserialize;
use service::drafts::{self, Draft};

/// Workers named under each role on the overview.
const SAMPLES: usize = 5;
/// How long "what changes" waits for a target to plan against.
const WHAT_IF_WAIT: std::time::Duration = std::time::Duration::from_secs(8);
/// Differences listed on one page of "what changes".
const PAGE: usize = 50;
/// The user types monday.com knows, as the forms offer them.
const USER_TYPES: [&str; 4] = ["member", "viewer", "guest", "admin"];
const STAGES: [(Stage, &str); 6] = [
    (Stage::Hire, "New accounts (hires)"),
    (Stage::AttributeChange, "Attribute and user type changes of active accounts"),
    (Stage::TeamChange, "Team joins and removals of active accounts (movers)"),
    (Stage::Termination, "Deactivations of leavers (terminations, out of scope)"),
    (Stage::LeaveOfAbsence, "Deactivations for a leave of absence"),
    (Stage::Rehire, "Reactivations (rehires, returns)"),
];

/// Whose draft: the person (their actor name, as the audit names them).
fn person(page: &Page) -> String {
    page.actor().to_string()
}

/// What the person sees: their draft (an Editor), else the configuration in force.
async fn shown(api: &Shared, page: &Page) -> Result<Draft, Failure> {
    if page.may(R::Editor) {
        return Ok(drafts::open(&api.store, &person(page)).await?);
    }
    Ok(drafts::in_force(&api.store).await?)
}

/// When another version was saved since the person's draft began: who, when, which.
async fn stale(api: &Shared, draft: &Draft) -> Result<Option<String>, Failure> {
    if !draft.edited {
        return Ok(None);
    }
    let now = api.store.current_config().await?;
    Ok(match now {
        Some(v) if draft.base.as_deref() != Some(v.id.as_str()) => Some(format!(
            "{} saved version {} at {} after your draft began. Saving yours replaces it whole: read what changes \
             first, or discard your draft and start from theirs.",
            v.saved_by.as_deref().unwrap_or("Someone"),
            v.id,
            when(&v.created_at)
        )),
        _ => None,
    })
}

fn today() -> jiff::civil::Date {
    jiff::Zoned::now().date()
}

// ---- the overview ----

pub struct RoleRow {
    pub index: usize,
    pub name: String,
    pub condition: String,
    pub matches: Option<usize>,
    pub samples: Vec<(String, String)>,
    /// (connection, what it gives there)
    pub grants: Vec<(String, String)>,
}

pub struct ConnectionView {
    pub name: String,
    pub path: String,
    pub facts: Vec<(&'static str, String)>,
    /// (attribute, formula, apply, unique)
    pub mappings: Vec<(String, String, &'static str, bool)>,
}

#[derive(Template)]
#[template(path = "rules.html")]
struct RulesPage {
    chrome: Chrome,
    message: Option<Message>,
    can_edit: bool,
    edited: bool,
    stale: Option<String>,
    /// The version the page's configuration began from (None: nothing saved yet).
    base: Option<String>,
    problems: Vec<String>,
    roles: Vec<RoleRow>,
    workers: usize,
    unmatched: Option<usize>,
    /// (connection, team, what put the workers there, workers), once counted.
    teams: Vec<(String, String, String, usize)>,
    /// (connection, workers held for a team their data cannot name).
    team_errors: Vec<(String, usize)>,
    counting: bool,
    connections: Vec<ConnectionView>,
    /// Stored connections the draft has no rules for: (name, path segment).
    missing: Vec<(String, String)>,
}

#[derive(Deserialize, Default)]
pub struct Said {
    said: Option<String>,
}

/// A condition as a sentence.
pub fn describe(c: &Option<Condition>) -> String {
    fn one(c: &Condition) -> String {
        match c {
            Condition::All { all } => all.iter().map(group).collect::<Vec<_>>().join(" and "),
            Condition::Any { any } => any.iter().map(group).collect::<Vec<_>>().join(" or "),
            Condition::Not { not } => format!("not ({})", one(not)),
            Condition::Formula { formula } => format!("the formula {formula} holds"),
            Condition::Test(t) => test(t),
        }
    }
    fn group(c: &Condition) -> String {
        match c {
            Condition::All { .. } | Condition::Any { .. } => format!("({})", one(c)),
            _ => one(c),
        }
    }
    fn test(t: &Test) -> String {
        let v = |x: &serde_json::Value| match x {
            serde_json::Value::String(s) => format!("\u{201c}{s}\u{201d}"),
            other => other.to_string(),
        };
        let arg = match t.op {
            Op::IsEmpty | Op::IsNotEmpty => String::new(),
            Op::In => format!(" {}", t.values.iter().flatten().map(v).collect::<Vec<_>>().join(", ")),
            Op::WithinDays => format!(" ({} days)", t.days.unwrap_or_default()),
            _ => t.value.as_ref().map(|x| format!(" {}", v(x))).unwrap_or_default(),
        };
        format!("{} {}{arg}", t.field, t.op.words())
    }
    match c {
        None => "every worker".into(),
        Some(c) => one(c),
    }
}

fn grant_words(g: Option<&rules::Grant>, defaults: &[String]) -> String {
    let Some(g) = g else { return "no account".into() };
    let teams = if g.teams.is_empty() { defaults.to_vec() } else { g.teams.clone() };
    let mut s = g.user_type.clone().unwrap_or_else(|| "member".into());
    if !teams.is_empty() {
        s.push_str(&format!(" in {}", teams.join(", ")));
    }
    s
}

fn apply_words(a: Apply) -> &'static str {
    match a {
        Apply::Always => "always",
        Apply::OnCreate => "on create only",
    }
}

fn connection_view(c: &rules::ConnectionConfig) -> ConnectionView {
    let yes = |b: bool| if b { "yes".to_string() } else { "no".to_string() };
    let everyone = match (&c.mode, &c.default_grant) {
        (rules::Mode::AllEmployees, g) => {
            format!(
                "yes, as {} when no role gives more",
                g.as_ref().and_then(|g| g.user_type.clone()).unwrap_or_else(|| "member".into())
            )
        }
        _ => "no: only workers a role gives an account".into(),
    };
    let supervised = if c.supervised.is_empty() {
        "none: autopilot".to_string()
    } else {
        rules::expand_stages(&c.supervised).iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
    };
    let teams = if c.default_teams.is_empty() { "none".to_string() } else { c.default_teams.join(", ") };
    ConnectionView {
        name: c.name.clone(),
        path: segment(&c.name),
        facts: vec![
            ("Default teams", teams),
            ("Process all employees", everyone),
            ("Do not deprovision upon change of role", yes(c.keep_on_role_change)),
            ("Supervised stages", supervised),
        ],
        mappings: c
            .mappings
            .iter()
            .map(|(t, m)| match m {
                rules::MappingSpec::Formula(f) => (t.clone(), f.clone(), "always", false),
                rules::MappingSpec::Full { formula, apply, unique } => {
                    (t.clone(), formula.clone(), apply_words(*apply), *unique)
                }
            })
            .collect(),
    }
}

/// How many workers each role takes, kept per roles and HR data: counting 100,000 workers
/// takes about half a second, so the page is drawn at once and the counts fill in after.
static COUNTS: std::sync::LazyLock<service::kept::Kept<service::preview::RoleCounts>> =
    std::sync::LazyLock::new(|| service::kept::Kept::new(std::time::Duration::from_secs(300), 8));

/// The mark the counts of these rules are kept under: the roles, the custom fields and the HR loads.
async fn counts_mark(api: &Shared, cfg: &Config) -> Result<String, Failure> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(&(&cfg.roles, &cfg.hr.custom_fields)).unwrap_or_default().hash(&mut h);
    let (n, last) = api.store.loads_mark().await?;
    Ok(format!("{:x}|{n}|{}", h.finish(), last.unwrap_or_default()))
}

/// The roles section: its rows, with the counts when they are known (`count`: count now if
/// they are not kept).
struct RolesView {
    problems: Vec<String>,
    roles: Vec<RoleRow>,
    workers: usize,
    unmatched: Option<usize>,
    /// (connection, team, what put the workers there, workers), once counted.
    teams: Vec<(String, String, String, usize)>,
    /// (connection, workers held for a team their data cannot name).
    team_errors: Vec<(String, usize)>,
    counting: bool,
}

async fn roles_view(api: &Shared, cfg: &Config, count: bool) -> Result<RolesView, Failure> {
    let (problems, counts, counting) = match service::config::compile_saved(&api.store, cfg).await? {
        Ok(rules) => {
            let mark = counts_mark(api, cfg).await?;
            match COUNTS.peek(&mark, &mark) {
                Some(g) => (vec![], Some(g.value), false),
                None if count => {
                    let g = COUNTS
                        .get(&mark, &mark, false, || {
                            service::preview::role_counts(&api.store, &rules, today(), SAMPLES)
                        })
                        .await?;
                    (vec![], Some(g.value), false)
                }
                None => (vec![], None, true),
            }
        }
        Err(p) => (p, None, false),
    };
    let roles = cfg
        .roles
        .iter()
        .enumerate()
        .map(|(i, r)| RoleRow {
            index: i,
            name: r.name.clone(),
            condition: describe(&r.when),
            matches: counts.as_ref().and_then(|c| c.roles.get(i)).map(|c| c.0),
            samples: counts.as_ref().and_then(|c| c.roles.get(i)).map(|c| c.1.clone()).unwrap_or_default(),
            grants: cfg
                .connections
                .iter()
                .map(|c| (c.name.clone(), grant_words(r.grants.get(&c.name), &c.default_teams)))
                .collect(),
        })
        .collect();
    Ok(RolesView {
        problems,
        roles,
        workers: counts.as_ref().map(|c| c.workers).unwrap_or_default(),
        unmatched: counts.as_ref().map(|c| c.unmatched),
        teams: counts
            .as_ref()
            .map(|c| c.teams.iter().map(|t| (t.connection.clone(), t.team.clone(), t.by.clone(), t.workers)).collect())
            .unwrap_or_default(),
        team_errors: counts.as_ref().map(|c| c.team_errors.clone()).unwrap_or_default(),
        counting,
    })
}

#[derive(Template)]
#[template(path = "roles_section.html")]
struct RolesSection {
    chrome: Chrome,
    can_edit: bool,
    counting: bool,
    roles: Vec<RoleRow>,
    workers: usize,
    unmatched: Option<usize>,
    /// (connection, team, what put the workers there, workers), once counted.
    teams: Vec<(String, String, String, usize)>,
    /// (connection, workers held for a team their data cannot name).
    team_errors: Vec<(String, usize)>,
    connections: Vec<ConnectionView>,
}

/// The roles section with its counts (htmx asks for it once the page is drawn).
pub async fn roles_section(State(api): State<Shared>, page: Page) -> Response {
    answer(
        async {
            page.need(R::Viewer)?;
            let draft = shown(&api, &page).await?;
            let v = roles_view(&api, &draft.config, true).await?;
            Ok(render(&RolesSection {
                chrome: page.chrome("rules"),
                can_edit: page.may(R::Editor),
                counting: false,
                roles: v.roles,
                workers: v.workers,
                unmatched: v.unmatched,
                teams: v.teams,
                team_errors: v.team_errors,
                connections: draft.config.connections.iter().map(connection_view).collect(),
            }))
        }
        .await,
    )
}

pub async fn page(State(api): State<Shared>, page: Page, Query(q): Query<Said>) -> Response {
    answer(
        async {
            page.need(R::Viewer)?;
            let draft = shown(&api, &page).await?;
            let v = roles_view(&api, &draft.config, false).await?;
            let cfg = &draft.config;
            let stored = api.store.connections().await?;
            let missing = stored
                .iter()
                .filter(|s| !cfg.connections.iter().any(|c| c.name == s.name))
                .map(|s| (s.name.clone(), segment(&s.name)))
                .collect();
            let message = match q.said.as_deref() {
                Some("kept") => Message::ok("Kept in your draft. Nothing is in force until you save it."),
                Some("saved") => Message::ok("Saved: this is now the configuration in force. The next run follows it."),
                Some("discarded") => Message::ok("Your draft was discarded: this is the configuration in force."),
                Some("unchanged") => Message::ok("Nothing to save: your draft was the configuration in force."),
                _ => None,
            };
            Ok(render(&RulesPage {
                chrome: page.chrome("rules"),
                message,
                can_edit: page.may(R::Editor),
                edited: draft.edited,
                stale: stale(&api, &draft).await?,
                base: draft.base.clone(),
                problems: v.problems,
                roles: v.roles,
                workers: v.workers,
                unmatched: v.unmatched,
                teams: v.teams,
                team_errors: v.team_errors,
                counting: v.counting,
                connections: cfg.connections.iter().map(connection_view).collect(),
                missing,
            }))
        }
        .await,
    )
}

/// The configuration the page shows, as a file: the same TOML `tenure config export` writes.
pub async fn file(State(api): State<Shared>, page: Page) -> Response {
    answer(
        async {
            page.need(R::Viewer)?;
            let draft = shown(&api, &page).await?;
            let mut r = draft.config.to_toml().into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/toml; charset=utf-8"));
            h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"tenure.toml\""));
            Ok(r)
        }
        .await,
    )
}

/// Runs `edit` on the person's draft and keeps it.
async fn edit(
    api: &Shared,
    page: &Page,
    f: impl FnOnce(&mut Config) -> service::error::Result<()>,
) -> Result<(), Failure> {
    page.need(R::Editor)?;
    let who = person(page);
    let mut draft = drafts::open(&api.store, &who).await?;
    f(&mut draft.config)?;
    drafts::keep(&api.store, &who, &draft).await?;
    Ok(())
}

fn index(id: &str) -> Result<usize, Failure> {
    id.parse::<usize>()
        .ok()
        .and_then(|n| n.checked_sub(1))
        .ok_or_else(|| Failure::new(StatusCode::NOT_FOUND, format!("There is no role {id}.")))
}

#[derive(Deserialize)]
pub struct Empty {}

/// A form about one role: its name as the page showed it, so that a page drawn before the
/// roles moved acts on the role it shows or on none.
#[derive(Deserialize)]
pub struct Which {
    #[serde(default)]
    role: String,
}

/// Refused unless role `i` is the one named: the roles changed since the page was drawn.
fn same_role(cfg: &Config, i: usize, name: &str) -> service::error::Result<()> {
    match cfg.roles.get(i) {
        Some(r) if r.name == name => Ok(()),
        _ => Err(service::error::Error::conflict(format!(
            "The roles changed since this page was drawn (role {} is no longer {name:?}): reload it and try again.",
            i + 1
        ))),
    }
}

pub async fn up(State(api): State<Shared>, Path(id): Path<String>, posted: Posted<Which>) -> Response {
    role_step(api, id, posted, |c, i| drafts::move_role(c, i, true)).await
}

pub async fn down(State(api): State<Shared>, Path(id): Path<String>, posted: Posted<Which>) -> Response {
    role_step(api, id, posted, |c, i| drafts::move_role(c, i, false)).await
}

pub async fn remove(State(api): State<Shared>, Path(id): Path<String>, posted: Posted<Which>) -> Response {
    role_step(api, id, posted, |c, i| drafts::remove_role(c, i).map(|_| ())).await
}

/// One step on role `id` of the person's draft (moved, removed), if it is still the role the
/// page showed; back to the roles.
async fn role_step(
    api: Shared,
    id: String,
    posted: Posted<Which>,
    step: impl FnOnce(&mut Config, usize) -> service::error::Result<()>,
) -> Response {
    let Posted { page, form } = posted;
    answer(
        async {
            page.need(R::Editor)?;
            let i = index(&id)?;
            edit(&api, &page, |c| {
                same_role(c, i, &form.role)?;
                step(c, i)
            })
            .await?;
            Ok(Redirect::to("/rules?said=kept#roles").into_response())
        }
        .await,
    )
}

/// Adds the starting rules of a stored connection the draft has none for.
pub async fn add_connection(State(api): State<Shared>, Path(name): Path<String>, posted: Posted<Empty>) -> Response {
    answer(
        async {
            posted.page.need(R::Editor)?;
            let stored = api.store.connection(&name).await?.ok_or_else(|| {
                Failure::new(StatusCode::NOT_FOUND, format!("There is no connection named {name:?}."))
            })?;
            edit(&api, &posted.page, |c| {
                if !c.connections.iter().any(|k| k.name == stored.name) {
                    c.connections.push(drafts::starter(&stored.name, &stored.dialect));
                }
                Ok(())
            })
            .await?;
            Ok(Redirect::to(&format!("/rules/connections/{}", segment(&name))).into_response())
        }
        .await,
    )
}

// ---- one role ----

pub struct ConditionRow {
    pub field: String,
    pub op: String,
    pub value: String,
    /// The test tells case apart ("yes"), as the file may say; kept through the form.
    pub case: String,
}

impl ConditionRow {
    fn blank() -> ConditionRow {
        ConditionRow { field: "department".into(), op: "equals".into(), value: String::new(), case: String::new() }
    }
}

pub struct GrantRow {
    pub connection: String,
    pub gives: bool,
    pub user_type: String,
    pub teams: String,
}

#[derive(Template)]
#[template(path = "role.html")]
struct RolePage {
    chrome: Chrome,
    action: String,
    title: String,
    message: Option<Message>,
    name: String,
    /// The role's name in the draft when the page was drawn (an edit, not a new role).
    was: Option<String>,
    all: bool,
    /// The condition cannot be shown as rows: kept as it is, described here.
    kept: Option<String>,
    rows: Vec<ConditionRow>,
    fields: Vec<String>,
    ops: Vec<(&'static str, &'static str)>,
    grants: Vec<GrantRow>,
    user_types: &'static [&'static str],
    matches: String,
}

fn role_page(page: &Page, at: Option<usize>, cfg: &Config, role: &Role, message: Option<Message>) -> RolePage {
    let flat = drafts::flat(&role.when);
    let (all, tests) = flat.clone().unwrap_or((true, vec![]));
    let mut rows: Vec<ConditionRow> = tests
        .iter()
        .map(|t| ConditionRow {
            field: t.field.clone(),
            op: t.op.as_str().to_string(),
            value: match t.op {
                Op::In => t.values.iter().flatten().map(scalar).collect::<Vec<_>>().join(", "),
                Op::WithinDays => t.days.map(|d| d.to_string()).unwrap_or_default(),
                _ => t.value.as_ref().map(scalar).unwrap_or_default(),
            },
            case: if t.case_sensitive { "yes".into() } else { String::new() },
        })
        .collect();
    // A new role starts with one condition to fill in; a role saved without one (every
    // worker) shows none, so that saving it again leaves it as it is.
    if at.is_none() && rows.is_empty() && flat.is_some() {
        rows.push(ConditionRow::blank());
    }
    RolePage {
        chrome: page.chrome("rules"),
        action: match at {
            Some(i) => format!("/rules/roles/{}", i + 1),
            None => "/rules/roles/new".into(),
        },
        title: match at {
            Some(_) => format!("Role {}", role.name),
            None => "A new role".into(),
        },
        message,
        name: role.name.clone(),
        was: at.and_then(|i| cfg.roles.get(i)).map(|r| r.name.clone()),
        all,
        kept: flat.is_none().then(|| describe(&role.when)),
        rows,
        fields: rules::worker_fields(&cfg.hr.custom_fields).names().map(str::to_string).collect(),
        ops: Op::ALL.iter().map(|o| (o.as_str(), o.words())).collect(),
        grants: cfg
            .connections
            .iter()
            .map(|c| {
                let g = role.grants.get(&c.name);
                GrantRow {
                    connection: c.name.clone(),
                    gives: g.is_some(),
                    user_type: match g {
                        Some(g) => g.user_type.clone().unwrap_or_default().to_lowercase(),
                        None => "member".into(),
                    },
                    teams: g.map(|g| g.teams.join(", ")).unwrap_or_default(),
                }
            })
            .collect(),
        user_types: &USER_TYPES,
        matches: String::new(),
    }
}

fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub async fn new_role(State(api): State<Shared>, page: Page) -> Response {
    answer(
        async {
            page.need(R::Editor)?;
            let draft = drafts::open(&api.store, &person(&page)).await?;
            let role = Role { name: String::new(), when: None, grants: Default::default() };
            Ok(render(&role_page(&page, None, &draft.config, &role, None)))
        }
        .await,
    )
}

pub async fn role(State(api): State<Shared>, page: Page, Path(id): Path<String>) -> Response {
    answer(
        async {
            page.need(R::Editor)?;
            let i = index(&id)?;
            let draft = drafts::open(&api.store, &person(&page)).await?;
            let role = draft
                .config
                .roles
                .get(i)
                .cloned()
                .ok_or_else(|| Failure::new(StatusCode::NOT_FOUND, format!("There is no role {id}.")))?;
            // Counting is asked for with its button: a page drawn at once, even at 100,000 workers.
            Ok(render(&role_page(&page, Some(i), &draft.config, &role, None)))
        }
        .await,
    )
}

/// The role form's fields, in the order the browser sent them.
type Pairs = Vec<(String, String)>;

fn get<'a>(f: &'a Pairs, k: &str) -> Option<&'a str> {
    f.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

fn all_of<'a>(f: &'a Pairs, k: &str) -> Vec<&'a str> {
    f.iter().filter(|(n, _)| n == k).map(|(_, v)| v.as_str()).collect()
}

/// The role as its form describes it; the condition rows (one removed or one added, as the
/// button asked) and every problem found reading them.
fn role_of_form(f: &Pairs, before: Option<&Role>, cfg: &Config) -> (Role, Vec<ConditionRow>, Vec<String>) {
    let action = get(f, "action").unwrap_or("save");
    let cases = all_of(f, "case");
    let mut rows: Vec<ConditionRow> = all_of(f, "field")
        .into_iter()
        .zip(all_of(f, "op"))
        .zip(all_of(f, "value"))
        .enumerate()
        .map(|(n, ((field, op), value))| ConditionRow {
            field: field.into(),
            op: op.into(),
            value: value.into(),
            case: cases.get(n).copied().unwrap_or_default().into(),
        })
        .collect();
    if let Some(n) = action.strip_prefix("remove:").and_then(|n| n.parse::<usize>().ok()) {
        if n < rows.len() {
            rows.remove(n);
        }
    }
    if action == "add" {
        rows.push(ConditionRow::blank());
    }
    let mut problems = vec![];
    let mut tests = vec![];
    for (n, r) in rows.iter().enumerate() {
        let Some(op) = Op::ALL.iter().copied().find(|o| o.as_str() == r.op) else {
            problems.push(format!("condition {}: no operator {:?}", n + 1, r.op));
            continue;
        };
        let value = r.value.trim();
        let case_sensitive = r.case == "yes";
        let mut t = Test { field: r.field.clone(), op, value: None, values: None, days: None, case_sensitive };
        if value.is_empty() && !matches!(op, Op::IsEmpty | Op::IsNotEmpty) {
            problems.push(format!(
                "condition {} ({} {}) has no value: give one, or remove the condition (a role without any takes \
                 every worker)",
                n + 1,
                r.field,
                op.words()
            ));
            continue;
        }
        match op {
            Op::IsEmpty | Op::IsNotEmpty => {}
            Op::In => {
                t.values = Some(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .map(|v| serde_json::Value::String(v.into()))
                        .collect(),
                )
            }
            Op::WithinDays => match value.parse::<i64>() {
                Ok(d) => t.days = Some(d),
                Err(_) => problems.push(format!("condition {} ({}): a number of days, not {value:?}", n + 1, r.field)),
            },
            _ => t.value = Some(serde_json::Value::String(value.into())),
        }
        tests.push(t);
    }
    let when = match before.map(|b| drafts::flat(&b.when)) {
        // A condition the form cannot show stays as it was.
        Some(None) => before.and_then(|b| b.when.clone()),
        _ => drafts::joined(get(f, "join") != Some("any"), tests),
    };
    let mut grants = std::collections::BTreeMap::new();
    // What the form does not show of a grant (groups, attribute formulas, grants on a connection
    // the configuration no longer has) is kept as it was.
    if let Some(b) = before {
        for (conn, g) in &b.grants {
            if !cfg.connections.iter().any(|c| &c.name == conn) {
                grants.insert(conn.clone(), g.clone());
            }
        }
    }
    for c in &cfg.connections {
        if get(f, &format!("gives:{}", c.name)) == Some("yes") {
            let kept = before.and_then(|b| b.grants.get(&c.name)).cloned().unwrap_or_default();
            let g = drafts::grant(
                kept,
                get(f, &format!("user_type:{}", c.name)).unwrap_or_default(),
                get(f, &format!("teams:{}", c.name)).unwrap_or_default(),
            );
            grants.insert(c.name.clone(), g);
        }
    }
    let role = Role { name: get(f, "name").unwrap_or_default().trim().to_string(), when, grants };
    (role, rows, problems)
}

/// "Matches N workers now: …" for a role under the draft's fields (its place ignored: what its
/// condition alone takes).
async fn matches_line(api: &Shared, cfg: &Config, role: &Role) -> String {
    let alone = Config { roles: vec![Role { name: "this role".into(), ..role.clone() }], ..cfg.clone() };
    let rules = match service::config::compile_saved(&api.store, &alone).await {
        Ok(Ok(r)) => r,
        Ok(Err(p)) => return format!("Cannot count yet: {}", p.join("; ")),
        Err(e) => return format!("Cannot count: {e}"),
    };
    match service::preview::role_counts(&api.store, &rules, today(), SAMPLES).await {
        Ok(c) if c.workers == 0 => "No HR data loaded yet: nothing to count.".into(),
        Ok(c) => {
            let (n, s) = &c.roles[0];
            let names: Vec<String> = s.iter().map(|(id, name)| format!("{name} ({id})")).collect();
            let more = if *n > s.len() { ", …" } else { "" };
            if *n == 0 {
                format!("Its condition takes none of the {} workers now.", c.workers)
            } else {
                format!(
                    "Its condition takes {n} of the {} workers now (before any role above it): {}{more}",
                    c.workers,
                    names.join(", ")
                )
            }
        }
        Err(e) => format!("Cannot count: {e}"),
    }
}

pub async fn save_new_role(State(api): State<Shared>, posted: Posted<Pairs>) -> Response {
    save_role(api, None, posted).await
}

pub async fn save_role_at(State(api): State<Shared>, Path(id): Path<String>, posted: Posted<Pairs>) -> Response {
    answer(
        async {
            posted.page.need(R::Editor)?;
            let i = index(&id)?;
            Ok(save_role(api, Some(i), posted).await)
        }
        .await,
    )
}

async fn save_role(api: Shared, at: Option<usize>, posted: Posted<Pairs>) -> Response {
    let Posted { page, form } = posted;
    answer(
        async {
            page.need(R::Editor)?;
            let who = person(&page);
            let mut draft = drafts::open(&api.store, &who).await?;
            let before =
                match at {
                    Some(i) => {
                        Some(draft.config.roles.get(i).cloned().ok_or_else(|| {
                            Failure::new(StatusCode::NOT_FOUND, format!("There is no role {}.", i + 1))
                        })?)
                    }
                    None => None,
                };
            if let (Some(i), Some(was)) = (at, get(&form, "was")) {
                same_role(&draft.config, i, was)?;
            }
            let (role, rows, mut problems) = role_of_form(&form, before.as_ref(), &draft.config);
            let action = get(&form, "action").unwrap_or("save");
            let redraw = |message: Option<Message>, rows: Vec<ConditionRow>| {
                let mut p = role_page(&page, at, &draft.config, &role, message);
                p.rows = rows;
                p.all = get(&form, "join") != Some("any");
                p
            };
            if action != "save" {
                let mut p = redraw(None, rows);
                p.matches = matches_line(&api, &draft.config, &role).await;
                return Ok(render(&p));
            }
            // The role is checked as the whole configuration would check it, in its place.
            let mut trial = draft.config.clone();
            if let Err(e) = drafts::put_role(&mut trial, at, role.clone()) {
                problems.push(e.to_string());
            } else if problems.is_empty() {
                let place = at.unwrap_or(trial.roles.len() - 1);
                if let Err(all) = service::config::compile_saved(&api.store, &trial).await? {
                    let mine = format!("role[{place}]");
                    problems.extend(all.into_iter().filter(|p| p.starts_with(&mine)));
                }
            }
            if !problems.is_empty() {
                let text = format!("Not kept: {}", problems.join("; "));
                let mut p = redraw(Message::bad(text), rows);
                p.matches = matches_line(&api, &draft.config, &role).await;
                return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&p)).into_response());
            }
            draft.config = trial;
            drafts::keep(&api.store, &who, &draft).await?;
            Ok(Redirect::to("/rules?said=kept#roles").into_response())
        }
        .await,
    )
}

// ---- one connection's settings and mapping ----

pub struct MappingRow {
    pub n: usize,
    pub target: String,
    pub formula: String,
    pub on_create: bool,
    pub unique: bool,
    /// The formula's check: (is it an error, the text shown, the caret line under it)
    pub check: Option<Check>,
}

pub struct Check {
    pub bad: bool,
    pub text: String,
    /// The formula with a caret under the column at fault.
    pub at: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "mapping.html")]
struct MappingPage {
    chrome: Chrome,
    name: String,
    path: String,
    message: Option<Message>,
    default_teams: String,
    all_employees: bool,
    everyone_type: String,
    keep_on_role_change: bool,
    stages: Vec<(&'static str, &'static str, bool)>,
    user_types: &'static [&'static str],
    rows: Vec<MappingRow>,
    targets: Vec<String>,
    whence: String,
    worker: String,
}

async fn mapping_page(
    api: &Shared,
    page: &Page,
    cfg: &Config,
    name: &str,
    message: Option<Message>,
) -> Result<MappingPage, Failure> {
    let c = cfg.connections.iter().find(|c| c.name == name).ok_or_else(|| {
        Failure::new(StatusCode::NOT_FOUND, format!("The draft has no rules for a connection named {name:?}."))
    })?;
    let (targets, whence) = service::config::mappable(&api.store, cfg, name).await?;
    let rows = c
        .mappings
        .iter()
        .enumerate()
        .map(|(n, (t, m))| {
            let (formula, apply, unique) = match m {
                rules::MappingSpec::Formula(f) => (f.clone(), Apply::Always, false),
                rules::MappingSpec::Full { formula, apply, unique } => (formula.clone(), *apply, *unique),
            };
            MappingRow { n, target: t.clone(), formula, on_create: apply == Apply::OnCreate, unique, check: None }
        })
        .collect();
    let mut targets = targets;
    for t in c.mappings.keys() {
        if !targets.contains(t) {
            targets.push(t.clone());
        }
    }
    Ok(MappingPage {
        chrome: page.chrome("rules"),
        name: name.to_string(),
        path: segment(name),
        message,
        default_teams: c.default_teams.join(", "),
        all_employees: c.mode == rules::Mode::AllEmployees,
        everyone_type: c
            .default_grant
            .as_ref()
            .and_then(|g| g.user_type.clone())
            .unwrap_or_else(|| "member".into())
            .to_lowercase(),
        keep_on_role_change: c.keep_on_role_change,
        stages: STAGES
            .iter()
            .map(|(s, words)| (s.as_str(), *words, rules::expand_stages(&c.supervised).contains(s)))
            .collect(),
        user_types: &USER_TYPES,
        rows,
        targets,
        whence,
        worker: String::new(),
    })
}

pub async fn mapping(State(api): State<Shared>, page: Page, Path(name): Path<String>) -> Response {
    answer(
        async {
            page.need(R::Editor)?;
            let draft = drafts::open(&api.store, &person(&page)).await?;
            Ok(render(&mapping_page(&api, &page, &draft.config, &name, None).await?))
        }
        .await,
    )
}

/// A formula's check as the mapping form shows it under the formula.
async fn check_of(api: &Shared, custom: &[String], formula: &str, worker: Option<&str>) -> Check {
    if formula.trim().is_empty() {
        return Check { bad: false, text: String::new(), at: None };
    }
    match service::preview::check_formula(&api.store, custom, formula, worker, today()).await {
        Ok(service::preview::FormulaCheck::Wrong(e)) => {
            let line = formula.lines().nth(e.line.saturating_sub(1)).unwrap_or(formula).to_string();
            let caret = format!("{}^", " ".repeat(e.column.saturating_sub(1)));
            Check {
                bad: true,
                text: format!("Line {}, column {}: {}", e.line, e.column, e.message),
                at: Some((line, caret)),
            }
        }
        Ok(service::preview::FormulaCheck::Reads { worker: None, .. }) => Check {
            bad: false,
            text: "The formula reads. Load HR data to see its value for a worker.".into(),
            at: None,
        },
        Ok(service::preview::FormulaCheck::Reads { worker: Some((id, name)), value }) => match value {
            Some(Ok(v)) if v.is_empty() => Check { bad: false, text: format!("For {name} ({id}): empty"), at: None },
            Some(Ok(v)) => Check { bad: false, text: format!("For {name} ({id}): {v}"), at: None },
            Some(Err(e)) => Check { bad: true, text: format!("For {name} ({id}) it fails: {e}"), at: None },
            None => Check { bad: false, text: String::new(), at: None },
        },
        Err(e) => Check { bad: true, text: e.to_string(), at: None },
    }
}

#[derive(Template)]
#[template(path = "formula_check.html")]
struct CheckFragment {
    check: Check,
}

/// The check of one formula as it is typed (htmx): its error at its position, or its value for
/// the chosen worker. A GET, so that htmx sends this formula alone rather than the whole form.
pub async fn check_formula(State(api): State<Shared>, page: Page, Query(form): Query<Pairs>) -> Response {
    answer(
        async {
            page.need(R::Editor)?;
            let draft = drafts::open(&api.store, &person(&page)).await?;
            let formula = get(&form, "formula").unwrap_or_default();
            let check = check_of(&api, &draft.config.hr.custom_fields, formula, get(&form, "worker")).await;
            Ok(render(&CheckFragment { check }))
        }
        .await,
    )
}

pub async fn save_mapping(State(api): State<Shared>, Path(name): Path<String>, posted: Posted<Pairs>) -> Response {
    let Posted { page, form } = posted;
    answer(
        async {
            page.need(R::Editor)?;
            let who = person(&page);
            let mut draft = drafts::open(&api.store, &who).await?;
            let action = get(&form, "action").unwrap_or("save");
            let worker = get(&form, "worker").unwrap_or_default().to_string();
            let targets = all_of(&form, "target");
            let formulas = all_of(&form, "formula");
            let create_only = all_of(&form, "on_create");
            let unique = all_of(&form, "unique");
            let mut rows: Vec<MappingRow> = targets
                .iter()
                .zip(&formulas)
                .enumerate()
                .map(|(n, (t, f))| MappingRow {
                    n,
                    target: t.to_string(),
                    formula: f.to_string(),
                    on_create: create_only.contains(&n.to_string().as_str()),
                    unique: unique.contains(&n.to_string().as_str()),
                    check: None,
                })
                .collect();
            if let Some(n) = action.strip_prefix("remove:").and_then(|n| n.parse::<usize>().ok()) {
                if n < rows.len() {
                    rows.remove(n);
                }
            }
            if action == "add" {
                rows.push(MappingRow {
                    n: 0,
                    target: String::new(),
                    formula: String::new(),
                    on_create: false,
                    unique: false,
                    check: None,
                });
            }
            for (n, r) in rows.iter_mut().enumerate() {
                r.n = n;
            }
            let settings = drafts::Settings {
                default_teams: get(&form, "default_teams").unwrap_or_default().split(',').map(str::to_string).collect(),
                all_employees: (get(&form, "all_employees") == Some("yes"))
                    .then(|| get(&form, "everyone_type").unwrap_or("member").to_string()),
                keep_on_role_change: get(&form, "keep_on_role_change") == Some("yes"),
                supervised: STAGES
                    .iter()
                    .filter(|(s, _)| all_of(&form, "supervised").contains(&s.as_str()))
                    .map(|(s, _)| *s)
                    .collect(),
            };
            let custom = draft.config.hr.custom_fields.clone();
            let mut bad = 0;
            for r in rows.iter_mut() {
                let c = check_of(&api, &custom, &r.formula, Some(worker.as_str()).filter(|w| !w.is_empty())).await;
                bad += usize::from(c.bad && c.at.is_some());
                r.check = Some(c);
            }
            let mut trial = draft.config.clone();
            let mapped = rows
                .iter()
                .map(|r| drafts::Mapping {
                    target: r.target.clone(),
                    formula: r.formula.clone(),
                    apply: if r.on_create { Apply::OnCreate } else { Apply::Always },
                    unique: r.unique,
                })
                .collect();
            let mut problems = vec![];
            if let Err(e) = drafts::set_mappings(&mut trial, &name, mapped) {
                problems.push(e.to_string());
            }
            if let Err(e) = drafts::set_settings(&mut trial, &name, settings.clone()) {
                problems.push(e.to_string());
            }
            if bad > 0 {
                problems.push(format!("{bad} formula(s) do not read: see the message under each"));
            } else if problems.is_empty() {
                if let Err(all) = service::config::compile_saved(&api.store, &trial).await? {
                    let at = trial.connections.iter().position(|c| c.name == name).unwrap_or_default();
                    let mine = format!("connection[{at}]");
                    problems.extend(all.into_iter().filter(|p| p.starts_with(&mine)));
                }
            }
            if action != "save" || !problems.is_empty() {
                // Redrawn as sent (a row added or removed, or problems to fix): nothing kept yet.
                let message = (!problems.is_empty())
                    .then(|| Message { tone: "bad", text: format!("Not kept: {}", problems.join("; ")) });
                let mut p = mapping_page(&api, &page, &draft.config, &name, message).await?;
                for r in &rows {
                    if !r.target.is_empty() && !p.targets.contains(&r.target) {
                        p.targets.push(r.target.clone());
                    }
                }
                p.rows = rows;
                p.worker = worker;
                p.default_teams = settings.default_teams.join(", ");
                p.all_employees = settings.all_employees.is_some();
                p.keep_on_role_change = settings.keep_on_role_change;
                for s in p.stages.iter_mut() {
                    s.2 = settings.supervised.iter().any(|x| x.as_str() == s.0);
                }
                let status = if problems.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
                return Ok((status, render(&p)).into_response());
            }
            draft.config = trial;
            drafts::keep(&api.store, &who, &draft).await?;
            Ok(Redirect::to("/rules?said=kept#connections").into_response())
        }
        .await,
    )
}

// ---- what changes if I save; saving ----

#[derive(Clone)]
pub struct PlanSummary {
    pub connection: String,
    pub kinds: Vec<(String, usize)>,
    pub guard: Option<String>,
    pub deactivations: u64,
    pub note: Option<String>,
}

#[derive(Clone)]
pub struct DifferenceRow {
    pub worker: String,
    pub connection: String,
    /// One of `preview::DIFFERENCE_KINDS`' keys, for the filter.
    pub kind_key: String,
    pub kind: String,
    pub role: String,
    pub access: String,
    pub attributes: Vec<(String, String, String)>,
}

/// The part of "what changes" that takes the work: differences and plans.
pub struct WhatIfView {
    plans: Vec<PlanSummary>,
    workers: usize,
    changed: usize,
    kinds: Vec<(&'static str, &'static str, usize)>,
    kind: String,
    rows: Vec<DifferenceRow>,
    shown_line: String,
    previous: Option<String>,
    next: Option<String>,
    /// Being worked out: htmx asks `query` for it.
    pending: bool,
    query: String,
}

#[derive(Template)]
#[template(path = "changes.html")]
struct ChangesPage {
    chrome: Chrome,
    message: Option<Message>,
    problems: Vec<String>,
    what: WhatIfView,
    removals: Vec<String>,
    toml: String,
    edited: bool,
    stale: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct ChangesQuery {
    kind: Option<String>,
    page: Option<usize>,
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "–".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// "before → after", or the one value when it did not change.
fn change(before: String, after: String) -> String {
    if before == after {
        before
    } else {
        format!("{before} → {after}")
    }
}

fn access_words(g: &serde_json::Value) -> String {
    if g.is_null() {
        return "no account".into();
    }
    let mut s = g["user_type"].as_str().unwrap_or("member").to_string();
    let teams: Vec<&str> = g["teams"].as_array().into_iter().flatten().filter_map(|t| t.as_str()).collect();
    if !teams.is_empty() {
        s.push_str(&format!(" in {}", teams.join(", ")));
    }
    s
}

/// The page of what changes; `compute`: work the differences out now when they are not kept
/// (else the page says it is working them out, and htmx asks again for that part).
async fn changes_page(
    api: &Shared,
    page: &Page,
    q: &ChangesQuery,
    message: Option<Message>,
    compute: bool,
) -> Result<ChangesPage, Failure> {
    let who = person(page);
    let draft = drafts::open(&api.store, &who).await?;
    let toml = draft.config.to_toml();
    let mut out = ChangesPage {
        chrome: page.chrome("rules"),
        message,
        problems: vec![],
        what: WhatIfView {
            plans: vec![],
            workers: 0,
            changed: 0,
            kinds: vec![],
            kind: q.kind.clone().unwrap_or_default(),
            rows: vec![],
            shown_line: String::new(),
            previous: None,
            next: None,
            pending: false,
            query: format!(
                "/rules/changes?page={}&kind={}",
                q.page.unwrap_or(1).max(1),
                segment(q.kind.as_deref().unwrap_or_default())
            ),
        },
        removals: vec![],
        toml,
        edited: draft.edited,
        stale: stale(api, &draft).await?,
    };
    let after = match service::config::compile_saved(&api.store, &draft.config).await? {
        Ok(r) => r,
        Err(p) => {
            out.problems = p;
            return Ok(out);
        }
    };
    // What saving would take away from a connection needs naming when it is saved.
    if let Some(v) = api.store.current_config().await? {
        if let Ok(before) = Config::from_toml("in force", &v.body) {
            for c in &before.connections {
                let kept = draft.config.connections.iter().any(|n| n.name == c.name);
                let roles_before =
                    before.roles.iter().any(|r| r.grants.contains_key(&c.name)) || c.default_grant.is_some();
                let roles_after = draft.config.roles.iter().any(|r| r.grants.contains_key(&c.name))
                    || draft.config.connections.iter().any(|n| n.name == c.name && n.default_grant.is_some());
                if !kept || (roles_before && !roles_after) {
                    out.removals.push(c.name.clone());
                }
            }
        }
    }
    let mark = what_if_mark(api, &out.toml, &after).await?;
    let got = match WHAT_IF.peek(&mark, &mark) {
        Some(g) => g,
        None if compute => WHAT_IF.get(&mark, &mark, false, || what_if(api, after)).await?,
        None => {
            out.what.pending = true;
            return Ok(out);
        }
    };
    let w = &got.value;
    out.what.workers = w.workers;
    out.what.changed = w.changed;
    out.what.kinds = w.kinds.clone();
    out.what.plans = w.plans.clone();
    let at = q.page.unwrap_or(1).max(1);
    let matching: Vec<&DifferenceRow> =
        w.rows.iter().filter(|r| out.what.kind.is_empty() || r.kind_key == out.what.kind).collect();
    let from = (at - 1) * PAGE;
    out.what.rows = matching.iter().skip(from).take(PAGE).map(|r| (*r).clone()).collect();
    let link = |n: usize| {
        let mut s = format!("/rules/changes?page={n}");
        if !out.what.kind.is_empty() {
            s.push_str(&format!("&kind={}", segment(&out.what.kind)));
        }
        s
    };
    let n = matching.len();
    out.what.shown_line = if n == 0 {
        "No worker's outcome changes.".into()
    } else {
        let more = if w.rows.len() < w.changed {
            format!(" (the first {} differences are listed; the counts are of all)", w.rows.len())
        } else {
            String::new()
        };
        format!("Differences {} to {} of {n}{more}.", (from + 1).min(n), (from + PAGE).min(n))
    };
    out.what.previous = (at > 1).then(|| link(at - 1));
    out.what.next = (at * PAGE < n).then(|| link(at + 1));
    Ok(out)
}

/// Differences kept for the page: a bound on what is held, the counts are of all.
const WHAT_IF_ROWS: usize = 10_000;

/// What a draft changes, as the page shows it (made once per draft and data, then paged).
pub struct WhatIf {
    workers: usize,
    changed: usize,
    kinds: Vec<(&'static str, &'static str, usize)>,
    rows: Vec<DifferenceRow>,
    plans: Vec<PlanSummary>,
}

/// Kept per draft, configuration in force, HR data and accounts: several seconds at 100,000
/// workers, made once, then paged and filtered from what is kept.
static WHAT_IF: std::sync::LazyLock<service::kept::Kept<WhatIf>> =
    std::sync::LazyLock::new(|| service::kept::Kept::new(std::time::Duration::from_secs(120), 4));

async fn what_if_mark(api: &Shared, toml: &str, after: &rules::Rules) -> Result<String, Failure> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    toml.hash(&mut h);
    let mut mark = format!("{:x}", h.finish());
    for c in &after.connections {
        mark.push('|');
        mark.push_str(&service::kept::marks(&api.store, &c.name).await?);
    }
    Ok(mark)
}

async fn what_if(api: &Shared, after: rules::Rules) -> service::error::Result<WhatIf> {
    let before = match service::config::current_if_any(&api.store).await? {
        Some(r) => r,
        None => rules::Rules::compile(&Config::default()).map_err(|e| service::error::Error::refused(e.join("; ")))?,
    };
    let listing = service::preview::Listing { kind: None, offset: 0, limit: WHAT_IF_ROWS };
    let d = service::preview::differences(&api.store, &before, &after, today(), &listing).await?;
    let kinds = service::preview::DIFFERENCE_KINDS
        .iter()
        .map(|(k, words)| (*k, *words, d["by_kind"][k].as_u64().unwrap_or_default() as usize))
        .collect();
    let rows = d["differences"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| {
            let (key, words) =
                service::preview::DIFFERENCE_KINDS.iter().find(|(k, _)| x["kind"] == *k).copied().unwrap_or(("", ""));
            DifferenceRow {
                worker: text(&x["worker"]),
                connection: text(&x["connection"]),
                kind_key: key.to_string(),
                kind: words.to_string(),
                role: change(text(&x["role"]["before"]), text(&x["role"]["after"])),
                access: change(access_words(&x["grant"]["before"]), access_words(&x["grant"]["after"])),
                attributes: x["attributes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| (text(&a["attribute"]), text(&a["before"]), text(&a["after"])))
                    .collect(),
            }
        })
        .collect();
    let mut plans = vec![];
    // The plan of each connection under the draft, with the guard's verdict.
    for c in &after.connections {
        let mut s =
            PlanSummary { connection: c.name.clone(), kinds: vec![], guard: None, deactivations: 0, note: None };
        if api.store.connection(&c.name).await?.is_none() {
            s.note =
                Some("No stored connection of this name: add it (Connections) to plan against its accounts.".into());
            plans.push(s);
            continue;
        }
        // Planned on a task of its own, so that a target that is down does not hold the page;
        // without the run lock and without recovering anything: a what-if must never keep a
        // run waiting or act for the draft.
        let (store, key, rules, name) = (api.store.clone(), api.key.clone(), after.clone(), c.name.clone());
        let planned = tokio::spawn(async move {
            let now = jiff::Timestamp::now();
            let p = service::runs::prepare_with(&store, &key, rules, Some(&name), now, None, &[]).await?;
            let v = service::runs::plan_document(&p);
            service::runs::release(p);
            v
        });
        let Ok(planned) = tokio::time::timeout(WHAT_IF_WAIT, planned).await else {
            s.note = Some(format!(
                "The target did not answer within {} s, so the next run's plan is not shown; the differences below \
                 stand without it.",
                WHAT_IF_WAIT.as_secs()
            ));
            plans.push(s);
            continue;
        };
        match planned {
            Ok(Ok(v)) => {
                s.kinds = super::plan::kind_counts(&v);
                s.guard = v["guard"]["why"].as_str().map(str::to_string);
                s.deactivations = v["guard"]["deactivations"].as_u64().unwrap_or_default();
            }
            Ok(Err(e)) => s.note = Some(format!("The plan could not be made: {e}")),
            Err(e) => s.note = Some(format!("The plan could not be made: {e}")),
        }
        plans.push(s);
    }
    Ok(WhatIf {
        workers: d["workers"].as_u64().unwrap_or_default() as usize,
        changed: d["changed"].as_u64().unwrap_or_default() as usize,
        kinds,
        rows,
        plans,
    })
}

#[derive(Template)]
#[template(path = "what_if.html")]
struct WhatIfPart {
    w: WhatIfView,
}

pub async fn changes(
    State(api): State<Shared>,
    page: Page,
    Query(q): Query<ChangesQuery>,
    headers: axum::http::HeaderMap,
) -> Response {
    answer(
        async {
            page.need(R::Editor)?;
            if super::from_htmx(&headers) {
                // The part htmx asked for once the page was drawn: worked out now.
                let p = changes_page(&api, &page, &q, None, true).await?;
                return Ok(render(&WhatIfPart { w: p.what }));
            }
            Ok(render(&changes_page(&api, &page, &q, None, false).await?))
        }
        .await,
    )
}

#[derive(Template)]
#[template(path = "conflict.html")]
struct ConflictPage {
    chrome: Chrome,
    by: String,
    at: String,
    version: String,
    theirs: Vec<String>,
    mine: Vec<String>,
}

pub async fn save(State(api): State<Shared>, posted: Posted<Pairs>) -> Response {
    let Posted { page, form } = posted;
    answer(
        async {
            page.need(R::Editor)?;
            let removal: Vec<String> = all_of(&form, "confirm_removal").into_iter().map(str::to_string).collect();
            match drafts::save(&api.store, &api.data_dir, &person(&page), page.actor(), removal).await? {
                drafts::Saved::Saved(_) => {
                    api.wake.notify_one();
                    Ok(Redirect::to("/rules?said=saved").into_response())
                }
                drafts::Saved::Unchanged => Ok(Redirect::to("/rules?said=unchanged").into_response()),
                drafts::Saved::Refused(problems) => {
                    let text = format!("Nothing was saved. {problems}");
                    let p = changes_page(&api, &page, &ChangesQuery::default(), Message::bad(text), false).await?;
                    Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&p)).into_response())
                }
                drafts::Saved::Conflict(c) => {
                    let p = ConflictPage {
                        chrome: page.chrome("rules"),
                        by: c.theirs.saved_by.clone().unwrap_or_else(|| "someone".into()),
                        at: when(&c.theirs.created_at),
                        version: c.theirs.id.clone(),
                        theirs: service::config::line_diff(&c.base, &c.theirs.body),
                        mine: service::config::line_diff(&c.base, &c.mine),
                    };
                    Ok((StatusCode::CONFLICT, render(&p)).into_response())
                }
            }
        }
        .await,
    )
}

#[derive(Deserialize)]
pub struct RebaseForm {
    #[serde(default)]
    version: String,
}

/// After a conflict: keep my draft, now as a change to the version I was shown (read again
/// before saving).
pub async fn rebase(State(api): State<Shared>, posted: Posted<RebaseForm>) -> Response {
    answer(
        async {
            posted.page.need(R::Editor)?;
            drafts::rebase(&api.store, &person(&posted.page), &posted.form.version).await?;
            Ok(Redirect::to("/rules/changes").into_response())
        }
        .await,
    )
}

pub async fn discard(State(api): State<Shared>, posted: Posted<Empty>) -> Response {
    answer(
        async {
            posted.page.need(R::Editor)?;
            drafts::discard(&api.store, &person(&posted.page)).await?;
            Ok(Redirect::to("/rules?said=discarded").into_response())
        }
        .await,
    )
}
