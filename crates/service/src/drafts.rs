//! A configuration being edited in the console: one draft per person, kept in the store until
//! it is saved or discarded, edited a step at a time (a role moved, a condition added, a
//! mapping fixed), and saved as the configuration in force only when nobody has saved another
//! version since the draft began. The draft is the same `Config` that `config export` writes.

use crate::error::{Error, Result};
use rules::condition::Condition;
use rules::{Apply, Config, ConnectionConfig, Grant, MappingSpec, Mode, Role, Stage};
use std::path::Path;
use store::{ConfigVersion, Store};

/// A person's configuration in the making.
#[derive(Debug, Clone)]
pub struct Draft {
    pub config: Config,
    /// The version in force when the draft began (None: there was none).
    pub base: Option<String>,
    /// Whether it differs from what it began from (false: it is the version in force as read).
    pub edited: bool,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Kept {
    base: Option<String>,
    toml: String,
}

fn key(person: &str) -> String {
    format!("config_draft:{person}")
}

/// The person's draft: the one they are editing, else the configuration in force, else a first
/// one with the stored connections and the mappings every account needs.
pub async fn open(store: &Store, person: &str) -> Result<Draft> {
    if let Some(text) = store.setting(&key(person)).await? {
        let kept: Kept = serde_json::from_str(&text).map_err(|e| Error::refused(format!("the saved draft: {e}")))?;
        let config = crate::config::parse("the draft", &kept.toml)?;
        return Ok(Draft { config, base: kept.base, edited: true });
    }
    in_force(store).await
}

/// The configuration in force as a draft not yet edited, else a first one with the stored
/// connections and the mappings every account needs.
pub async fn in_force(store: &Store) -> Result<Draft> {
    let connections = store.connections().await?;
    match store.current_config().await? {
        Some(v) => {
            let config = crate::config::parse("the configuration in force", &v.body)?;
            Ok(Draft { config, base: Some(v.id), edited: false })
        }
        None => {
            let mut config = Config::default();
            for c in &connections {
                config.connections.push(starter(&c.name, &c.dialect));
            }
            Ok(Draft { config, base: None, edited: false })
        }
    }
}

/// Keeps an edited draft for its person.
pub async fn keep(store: &Store, person: &str, draft: &Draft) -> Result<()> {
    let kept = Kept { base: draft.base.clone(), toml: draft.config.to_toml() };
    let text = serde_json::to_string(&kept).map_err(|e| Error::refused(e.to_string()))?;
    store.set_setting(&key(person), &text).await?;
    Ok(())
}

/// Forgets a person's draft: the configuration in force is what they see again.
pub async fn discard(store: &Store, person: &str) -> Result<()> {
    store.delete_setting(&key(person)).await?;
    Ok(())
}

/// A connection's first rules: roles decide who gets an account, and the attributes every
/// account needs are mapped from the HR fields that hold them.
pub fn starter(name: &str, dialect: &str) -> ConnectionConfig {
    let full = |f: &str, unique: bool| MappingSpec::Full { formula: f.into(), apply: Apply::Always, unique };
    let mut mappings = std::collections::BTreeMap::new();
    mappings.insert("userName".to_string(), full("=work_email", true));
    mappings
        .insert("displayName".to_string(), full("=COALESCE(preferred_name, first_name) & \" \" & last_name", false));
    mappings.insert("name.givenName".to_string(), full("=COALESCE(preferred_name, first_name)", false));
    mappings.insert("name.familyName".to_string(), full("=last_name", false));
    rules::Config::from_toml(
        "",
        &format!("[[connection]]\nname = {}\ndialect = {}\n", toml_str(name), toml_str(dialect)),
    )
    .ok()
    .and_then(|c| c.connections.into_iter().next())
    .map(|mut c| {
        c.mappings = mappings;
        c
    })
    .expect("a connection with a name and a dialect reads")
}

fn toml_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// Moves role `i` one place up (towards the first) or down; at an end it stays.
pub fn move_role(cfg: &mut Config, i: usize, up: bool) -> Result<()> {
    let n = cfg.roles.len();
    if i >= n {
        return Err(Error::not_found(format!("there is no role {} (there are {n})", i + 1)));
    }
    match up {
        true if i > 0 => cfg.roles.swap(i, i - 1),
        false if i + 1 < n => cfg.roles.swap(i, i + 1),
        _ => {}
    }
    Ok(())
}

/// A role as its form gives it: replaces role `at`, or is added last.
pub fn put_role(cfg: &mut Config, at: Option<usize>, role: Role) -> Result<()> {
    let name = role.name.trim();
    if name.is_empty() {
        return Err(Error::invalid("name", "the role needs a name"));
    }
    if cfg.roles.iter().enumerate().any(|(i, r)| Some(i) != at && r.name.eq_ignore_ascii_case(name)) {
        return Err(Error::invalid("name", format!("there is a role named {name:?} already")));
    }
    let role = Role { name: name.to_string(), ..role };
    match at {
        Some(i) if i < cfg.roles.len() => cfg.roles[i] = role,
        Some(i) => return Err(Error::not_found(format!("there is no role {}", i + 1))),
        None => cfg.roles.push(role),
    }
    Ok(())
}

pub fn remove_role(cfg: &mut Config, i: usize) -> Result<Role> {
    if i >= cfg.roles.len() {
        return Err(Error::not_found(format!("there is no role {}", i + 1)));
    }
    Ok(cfg.roles.remove(i))
}

/// What the console edits of a connection besides its mappings.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub default_teams: Vec<String>,
    /// "Process all employees": every worker gets an account, with this user type when no role
    /// gives one.
    pub all_employees: Option<String>,
    /// "Do not deprovision upon change of role".
    pub keep_on_role_change: bool,
    pub supervised: Vec<Stage>,
}

fn connection_mut<'a>(cfg: &'a mut Config, name: &str) -> Result<&'a mut ConnectionConfig> {
    cfg.connections
        .iter_mut()
        .find(|c| c.name == name)
        .ok_or_else(|| Error::not_found(format!("the draft has no connection named {name:?}")))
}

pub fn set_settings(cfg: &mut Config, connection: &str, s: Settings) -> Result<()> {
    let c = connection_mut(cfg, connection)?;
    c.default_teams = clean(s.default_teams);
    match s.all_employees {
        Some(user_type) => {
            c.mode = Mode::AllEmployees;
            let g = c.default_grant.get_or_insert_with(Grant::default);
            g.user_type = Some(user_type).filter(|t| !t.is_empty());
        }
        None => {
            c.mode = Mode::Roles;
            c.default_grant = None;
        }
    }
    c.keep_on_role_change = s.keep_on_role_change;
    c.supervised = s.supervised;
    Ok(())
}

/// One row of the mapping table.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub target: String,
    pub formula: String,
    pub apply: Apply,
    pub unique: bool,
}

/// Replaces a connection's mappings with these rows (blank rows are left out; a target named
/// twice is refused, saying which).
pub fn set_mappings(cfg: &mut Config, connection: &str, rows: Vec<Mapping>) -> Result<()> {
    let mut out = std::collections::BTreeMap::new();
    for (i, m) in rows.into_iter().enumerate() {
        let (target, formula) = (m.target.trim().to_string(), m.formula.trim().to_string());
        if target.is_empty() && formula.is_empty() {
            continue;
        }
        if target.is_empty() {
            return Err(Error::invalid(format!("row {}", i + 1), format!("row {}: choose the attribute", i + 1)));
        }
        if formula.is_empty() {
            return Err(Error::invalid(format!("row {}", i + 1), format!("row {}: {target} has no formula", i + 1)));
        }
        let spec = MappingSpec::Full { formula, apply: m.apply, unique: m.unique };
        if out.insert(target.clone(), spec).is_some() {
            return Err(Error::invalid(format!("row {}", i + 1), format!("{target} is mapped twice")));
        }
    }
    connection_mut(cfg, connection)?.mappings = out;
    Ok(())
}

/// A role's grant on one connection as the role form gives it: the user type (empty: the
/// target's default) and the teams, over what the grant held before (its groups and attribute
/// formulas, which the form does not show, stay).
pub fn grant(before: Grant, user_type: &str, teams: &str) -> Grant {
    Grant {
        user_type: Some(user_type.trim().to_string()).filter(|t| !t.is_empty()),
        teams: clean(teams.split(',').map(str::to_string).collect()),
        ..before
    }
}

fn clean(v: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for t in v.into_iter().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()) {
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// A condition as the form edits it: tests joined by AND (all) or OR (any). A condition the
/// form cannot show (nested groups, NOT, a formula) is None: edited in the file.
pub fn flat(c: &Option<Condition>) -> Option<(bool, Vec<rules::condition::Test>)> {
    let tests = |v: &[Condition]| {
        v.iter()
            .map(|c| match c {
                Condition::Test(t) => Some(t.clone()),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
    };
    match c {
        None => Some((true, vec![])),
        Some(Condition::Test(t)) => Some((true, vec![t.clone()])),
        Some(Condition::All { all }) => tests(all).map(|t| (true, t)),
        Some(Condition::Any { any }) => tests(any).map(|t| (false, t)),
        Some(_) => None,
    }
}

/// The condition of tests joined by AND (`all`) or OR; none: every worker.
pub fn joined(all: bool, mut tests: Vec<rules::condition::Test>) -> Option<Condition> {
    match tests.len() {
        0 => None,
        1 => tests.pop().map(Condition::Test),
        _ => {
            let v = tests.into_iter().map(Condition::Test).collect();
            Some(if all { Condition::All { all: v } } else { Condition::Any { any: v } })
        }
    }
}

/// What saving a draft came to.
pub enum Saved {
    Saved(Box<crate::config::Imported>),
    /// The draft is the configuration in force: nothing to save (the draft is dropped).
    Unchanged,
    /// The draft does not compile, or an import check refused it: every problem, nothing saved.
    Refused(Error),
    /// Someone saved another version since the draft began: nothing saved, both shown.
    Conflict(Box<Conflict>),
}

pub struct Conflict {
    /// The version in force now.
    pub theirs: ConfigVersion,
    /// What the draft began from ("" when there was nothing).
    pub base: String,
    pub mine: String,
}

/// Saves the person's draft as the configuration in force, through the same checks as an
/// import, unless another version was saved since it began.
pub async fn save(store: &Store, data_dir: &Path, person: &str, by: &str, removal: Vec<String>) -> Result<Saved> {
    let mut draft = open(store, person).await?;
    // The console edits roles and mappings, never how people sign in: [auth] stays as it is in
    // force, whatever the draft began from (an Admin may have changed it meanwhile).
    draft.config.auth = crate::config::auth_settings(store).await?;
    let current = store.current_config().await?;
    if current.as_ref().map(|c| c.body.as_str()) == Some(draft.config.to_toml().as_str()) {
        discard(store, person).await?;
        return Ok(Saved::Unchanged);
    }
    if let Some(c) = conflict(store, &draft, current).await? {
        return Ok(Saved::Conflict(Box::new(c)));
    }
    let confirm = crate::config::Confirm { removal, replaces: Some(draft.base.clone()), ..Default::default() };
    match crate::config::import(store, data_dir, "the draft", &draft.config, &confirm, by).await {
        Ok(Ok(imported)) => {
            discard(store, person).await?;
            Ok(Saved::Saved(Box::new(imported)))
        }
        Ok(Err(problems)) => Ok(Saved::Refused(problems)),
        // Saved by another door in the same moment.
        Err(Error::Conflict(_)) => match conflict(store, &draft, store.current_config().await?).await? {
            Some(c) => Ok(Saved::Conflict(Box::new(c))),
            None => Err(Error::conflict("the configuration changed while saving: try again")),
        },
        Err(e) => Err(e),
    }
}

async fn conflict(store: &Store, draft: &Draft, current: Option<ConfigVersion>) -> Result<Option<Conflict>> {
    let Some(theirs) = current else { return Ok(None) };
    if draft.base.as_deref() == Some(theirs.id.as_str()) {
        return Ok(None);
    }
    let base = match &draft.base {
        Some(id) => store.config_version(id).await?.map(|v| v.body).unwrap_or_default(),
        None => String::new(),
    };
    Ok(Some(Conflict { theirs, base, mine: draft.config.to_toml() }))
}

/// Takes version `seen` (the one the person was shown as saved meanwhile) as the draft's new
/// base, keeping the draft's content: the person has read the other change and chosen to put
/// theirs over it. Refused when yet another version is in force now.
pub async fn rebase(store: &Store, person: &str, seen: &str) -> Result<()> {
    let mut draft = open(store, person).await?;
    let now = store.current_config().await?;
    if now.as_ref().map(|v| v.id.as_str()) != Some(seen) {
        return Err(Error::conflict(
            "yet another version was saved since the one you were shown: try to save again to see it",
        ));
    }
    draft.base = now.map(|v| v.id);
    keep(store, person, &draft).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        let mut c = Config::default();
        c.connections.push(starter("Connection-Bearer Token-1", "monday"));
        for n in ["A", "B", "C"] {
            put_role(&mut c, None, Role { name: n.into(), when: None, grants: Default::default() }).unwrap();
        }
        c
    }

    #[test]
    fn roles_move_and_names_stay_unique() {
        let mut c = cfg();
        move_role(&mut c, 2, true).unwrap();
        assert_eq!(c.roles.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["A", "C", "B"]);
        move_role(&mut c, 0, true).unwrap();
        move_role(&mut c, 2, false).unwrap();
        assert_eq!(c.roles.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["A", "C", "B"]);
        assert!(move_role(&mut c, 3, true).is_err());
        let dup = put_role(&mut c, None, Role { name: " b ".into(), when: None, grants: Default::default() });
        assert!(dup.unwrap_err().to_string().contains("already"));
        // A role keeps its own name when edited in place.
        put_role(&mut c, Some(2), Role { name: "B".into(), when: None, grants: Default::default() }).unwrap();
        assert_eq!(remove_role(&mut c, 0).unwrap().name, "A");
    }

    #[test]
    fn the_starter_compiles_and_round_trips_as_toml() {
        let c = cfg();
        rules::Rules::compile(&Config { roles: vec![], ..c.clone() }).expect("the starter compiles");
        let again = Config::from_toml("x", &c.to_toml()).unwrap();
        assert_eq!(again.to_toml(), c.to_toml());
    }

    #[test]
    fn mappings_and_settings_from_forms() {
        let mut c = cfg();
        let row =
            |t: &str, f: &str| Mapping { target: t.into(), formula: f.into(), apply: Apply::Always, unique: false };
        let twice = set_mappings(&mut c, "Connection-Bearer Token-1", vec![row("title", "=title"), row("title", "=x")]);
        assert!(twice.unwrap_err().to_string().contains("mapped twice"));
        assert!(set_mappings(&mut c, "Connection-Bearer Token-1", vec![row("title", "")]).is_err());
        set_mappings(&mut c, "Connection-Bearer Token-1", vec![row("userName", "=work_email"), row("", "")]).unwrap();
        assert_eq!(c.connections[0].mappings.len(), 1);
        let s = Settings {
            default_teams: vec![" Everyone ".into(), "Everyone".into(), "".into()],
            all_employees: Some("viewer".into()),
            keep_on_role_change: true,
            supervised: vec![Stage::Leave],
        };
        set_settings(&mut c, "Connection-Bearer Token-1", s).unwrap();
        let k = &c.connections[0];
        assert_eq!(k.default_teams, ["Everyone"]);
        assert_eq!(k.mode, Mode::AllEmployees);
        assert_eq!(k.default_grant.as_ref().and_then(|g| g.user_type.as_deref()), Some("viewer"));
        assert!(set_settings(&mut c, "nope", Settings::default()).is_err());
    }

    #[test]
    fn conditions_as_the_form_edits_them() {
        let t = |f: &str| rules::condition::Test {
            field: f.into(),
            op: rules::condition::Op::Equals,
            value: Some("x".into()),
            values: None,
            days: None,
            case_sensitive: false,
        };
        assert_eq!(joined(false, vec![]), None);
        let one = joined(true, vec![t("a")]);
        assert_eq!(flat(&one), Some((true, vec![t("a")])));
        let any = joined(false, vec![t("a"), t("b")]);
        assert_eq!(flat(&any), Some((false, vec![t("a"), t("b")])));
        let nested = Some(Condition::Not { not: Box::new(Condition::Test(t("a"))) });
        assert_eq!(flat(&nested), None);
    }
}
