//! Roles and mappings: who gets an account on which connection, as what, in which teams, and
//! which worker fields feed which account attributes. Configuration is one TOML file with one
//! canonical form; it is checked whole at save time (every error with where it is) and
//! compiled once, so evaluating 100,000 workers never parses anything again.

pub mod condition;
pub mod duration;
pub mod formula;
pub mod hr_source;
pub mod notify;
pub mod summary;

use condition::{Compiled, Condition};
use formula::{Context, Fields, Formula, Type, Value};
use hr::{Status, Worker};
use jiff::civil::Date;
use scim::{Dialect, ResourceSchema};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// The configuration file, as written and as exported (the canonical form).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub hr: HrSettings,
    /// How people sign in to tenure itself.
    #[serde(default, skip_serializing_if = "AuthSettings::is_default")]
    pub auth: AuthSettings,
    #[serde(default, rename = "connection")]
    pub connections: Vec<ConnectionConfig>,
    /// In priority order: the first role whose condition holds is the worker's role.
    #[serde(default, rename = "role")]
    pub roles: Vec<Role>,
    /// Teams added by condition whatever a worker's role (all that match apply, in order).
    #[serde(default, rename = "team_rule", skip_serializing_if = "Vec::is_empty")]
    pub team_rules: Vec<TeamRule>,
    /// Where notices of lifecycle events, failures and dead letters go.
    #[serde(default, rename = "notify", skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<notify::NotifySettings>,
}

/// How people sign in to tenure: `[auth]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Local accounts sign in with their password. false: only the `break_glass_accounts` do
    /// (for when the company's identity provider is down); everyone else signs in through it.
    #[serde(default = "yes")]
    pub password_sign_in: bool,
    /// Local accounts that keep their password sign-in when it is off for everyone else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub break_glass_accounts: Vec<String>,
    /// Sign-in through the company's identity provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcSettings>,
}

/// Sign-in through the company's identity provider, by OpenID Connect: `[auth.oidc]`. The
/// client secret is not here: it is sealed in the store (`tenure auth oidc-secret`), bound to
/// this issuer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// The provider as people know it: the sign-in page says "Sign in with <name>".
    pub name: String,
    /// The issuer URL (https); its settings are read from `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// Scopes asked for besides `openid`.
    #[serde(default = "oidc_scopes")]
    pub scopes: Vec<String>,
    /// The ID token claim that lists a person's groups (a list of strings, or one string).
    #[serde(default = "oidc_groups_claim")]
    pub groups_claim: String,
    /// Which groups give which role; the highest role any of a person's groups gives wins.
    #[serde(default)]
    pub roles: OidcRoles,
    /// E-mail domains whose people may sign in (the ID token's verified `email`); empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_domains: Vec<String>,
    /// tenure's callback as registered at the provider (`https://tenure.example.com/sign-in/oidc/callback`);
    /// none: this console's own address as the browser reaches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_url: Option<String>,
    /// A PEM file of a certificate authority to trust besides the usual ones (an internal provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// The provider is on a private network address (10.x, 192.168.x, ...).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_private: bool,
}

/// `[auth.oidc.roles]`: role = [groups]; the group `"*"` is everyone the provider signs in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcRoles {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admin: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reviewer: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub editor: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub viewer: Vec<String>,
}

fn oidc_scopes() -> Vec<String> {
    vec!["email".into(), "profile".into()]
}

fn oidc_groups_claim() -> String {
    "groups".into()
}

impl OidcRoles {
    /// The roles (`admin`, `reviewer`, `editor`, `viewer`, highest first) with their groups.
    pub fn by_rank(&self) -> [(&'static str, &[String]); 4] {
        [("admin", &self.admin), ("reviewer", &self.reviewer), ("editor", &self.editor), ("viewer", &self.viewer)]
    }
}

impl OidcSettings {
    /// Problems with the settings, each starting with its key under `auth.oidc`.
    pub fn check(&self) -> Vec<String> {
        let mut e = vec![];
        if self.name.trim().is_empty() {
            e.push("auth.oidc.name: the provider's name, as the sign-in page shows it".into());
        }
        let policy = scim_client::UrlPolicy { allow_insecure_http: false, allow_private: self.allow_private };
        match scim_client::outbound::parse_url(&self.issuer) {
            Err(why) => e.push(format!("auth.oidc.issuer: {why}")),
            Ok(u) if u.scheme() != "https" => e.push("auth.oidc.issuer: an issuer is an https URL".into()),
            Ok(u) if u.query().is_some() || u.fragment().is_some() => {
                e.push("auth.oidc.issuer: an issuer has no query or fragment".into())
            }
            Ok(u) => {
                if let Err(why) = scim_client::outbound::check_url(&u, policy) {
                    e.push(format!("auth.oidc.issuer: {why}"));
                }
            }
        }
        if self.client_id.trim().is_empty() {
            e.push("auth.oidc.client_id: the client id tenure has at the provider".into());
        }
        if self.groups_claim.trim().is_empty() {
            e.push("auth.oidc.groups_claim: the name of the claim that lists groups".into());
        }
        if self.roles.by_rank().iter().all(|(_, g)| g.is_empty()) {
            e.push(
                "auth.oidc.roles: no group gives any role, so nobody could sign in: e.g. reviewer = [\"tenure-reviewers\"]"
                    .into(),
            );
        }
        for (role, groups) in self.roles.by_rank() {
            if groups.iter().any(|g| g.trim().is_empty()) {
                e.push(format!("auth.oidc.roles.{role}: an empty group name"));
            }
            // Everyone a provider signs in may be anyone with an account there (a public one).
            if role != "viewer" && groups.iter().any(|g| g.trim() == "*") && self.allowed_domains.is_empty() {
                e.push(format!(
                    "auth.oidc.roles.{role}: \"*\" gives {role} to everyone the provider signs in: name the \
                     allowed_domains too, or a group"
                ));
            }
        }
        for d in &self.allowed_domains {
            let d = d.trim();
            if d.is_empty() || d.contains('@') || !d.contains('.') || d.chars().any(char::is_whitespace) {
                e.push(format!("auth.oidc.allowed_domains: {d:?} is not a domain (e.g. \"example.com\")"));
            }
        }
        if let Some(r) = &self.redirect_url {
            match scim_client::outbound::parse_url(r) {
                Err(why) => e.push(format!("auth.oidc.redirect_url: {why}")),
                Ok(u) if !u.path().ends_with("/sign-in/oidc/callback") => {
                    e.push("auth.oidc.redirect_url: it ends in /sign-in/oidc/callback, tenure's callback".into())
                }
                Ok(u)
                    if u.scheme() != "https" && !matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")) =>
                {
                    e.push("auth.oidc.redirect_url: https, unless tenure is on this machine".into())
                }
                Ok(_) => {}
            }
        }
        e
    }
}

fn yes() -> bool {
    true
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings { password_sign_in: true, break_glass_accounts: vec![], oidc: None }
    }
}

impl AuthSettings {
    pub fn is_default(&self) -> bool {
        *self == AuthSettings::default()
    }

    /// Whether a local account may sign in with its password (names compare without case).
    pub fn password_allowed(&self, user: &str) -> bool {
        self.password_sign_in || self.break_glass_accounts.iter().any(|a| a.trim().eq_ignore_ascii_case(user.trim()))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HrSettings {
    /// Free columns of the HR feed, usable as `custom.<name>`.
    #[serde(default)]
    pub custom_fields: Vec<String>,
    /// Accounts are made this many days before the hire date.
    #[serde(default)]
    pub pre_hire_days: i64,
    /// The hour (worker's time zone) a dated termination takes effect; none: the day's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_hour: Option<i8>,
    /// For workers without a time zone.
    #[serde(default = "utc")]
    pub default_time_zone: String,
    /// What a leave does to the account: suspend (deactivate until the return) or keep.
    #[serde(default)]
    pub leave: LeavePolicy,
    /// What a full load does with a worker it no longer holds: report (the default),
    /// terminate, or ignore.
    #[serde(default)]
    pub missing: MissingSetting,
    /// A full load whose population falls by more than this share (and by 3 or more) against
    /// the last snapshot is refused unless confirmed with the exact count.
    #[serde(default = "max_drop")]
    pub max_population_drop: f64,
    /// How the export is written; none: tenure's own header (see `tenure hr definition infer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<hr_source::DefinitionSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbox: Option<hr_source::InboxSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<hr_source::PullSettings>,
    /// No HR data (a load, a push, a pull) for this long is an `hr_quiet` notice, once per
    /// quiet spell: `26h` for a daily export. None: no such notice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_after: Option<String>,
}

impl HrSettings {
    /// `alert_after` read, when set and well written.
    pub fn alert_after(&self) -> Option<std::time::Duration> {
        self.alert_after.as_deref().and_then(|d| duration::parse(d).ok())
    }
}

fn max_drop() -> f64 {
    0.1
}

/// What a full load does with a worker it no longer holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingSetting {
    /// Report it once; the account is left alone.
    #[default]
    Report,
    /// Treat it as terminated now.
    Terminate,
    Ignore,
}

impl Default for HrSettings {
    fn default() -> Self {
        HrSettings {
            custom_fields: vec![],
            pre_hire_days: 0,
            termination_hour: None,
            default_time_zone: utc(),
            leave: LeavePolicy::Suspend,
            missing: MissingSetting::Report,
            max_population_drop: max_drop(),
            definition: None,
            inbox: None,
            pull: None,
            alert_after: None,
        }
    }
}

fn utc() -> String {
    "UTC".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeavePolicy {
    #[default]
    Suspend,
    Keep,
}

/// Refuses a run that would deactivate too many accounts at once (a truncated HR file).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeprovisionGuard {
    /// Largest share of the connection's active accounts one run may deactivate.
    pub max_share: f64,
    /// Largest number one run may deactivate.
    pub max_count: u64,
    /// Below this many, the share is not checked (small teams).
    pub min_count: u64,
}

/// Refuses a run that would take too many of one team's members out at once (a
/// reorganisation typed wrong, a department field emptied by an export).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamGuard {
    /// Largest share of a team's members one run may take out of it.
    pub max_share: f64,
    /// Below this many removals from one team, the share is not checked (everyday moves).
    pub min_count: u64,
}

impl Default for TeamGuard {
    fn default() -> Self {
        TeamGuard { max_share: 0.3, min_count: 5 }
    }
}

fn is_default_team_guard(g: &TeamGuard) -> bool {
    *g == TeamGuard::default()
}

/// Refuses a run that would give back access to many managed accounts at once: a store that
/// went back in time would otherwise reactivate every leaver since its backup.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReactivationGuard {
    /// Largest share of the accounts tenure manages one run may reactivate.
    pub max_share: f64,
    /// Largest number one run may reactivate.
    pub max_count: u64,
    /// Below this many, the share is not checked (a few people back from leave).
    pub min_count: u64,
}

impl Default for ReactivationGuard {
    fn default() -> Self {
        ReactivationGuard { max_share: 0.1, max_count: 25, min_count: 3 }
    }
}

fn is_default_reactivation_guard(g: &ReactivationGuard) -> bool {
    *g == ReactivationGuard::default()
}

/// Teams that follow from a condition, whatever role took the worker: "everyone joins their
/// department's team" is one rule, not one role per department.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamRule {
    pub name: String,
    /// No condition: every worker with an account on the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
    /// Names or formulas (`"=department"`), as in a grant.
    pub teams: Vec<String>,
    /// The connections it applies to; none: every connection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<String>,
}

impl Default for DeprovisionGuard {
    fn default() -> Self {
        DeprovisionGuard { max_share: 0.2, max_count: 500, min_count: 3 }
    }
}

impl HrSettings {
    /// The export's header definition: `[hr.definition]`, or tenure's own header with the
    /// custom fields.
    pub fn header_definition(&self) -> Result<hr::HeaderDefinition, Vec<String>> {
        self.definition.clone().unwrap_or_default().compile(&self.custom_fields)
    }

    pub fn lifecycle(&self) -> Result<hr::LifecycleConfig, String> {
        let tz = hr::TimeZoneName::parse(&self.default_time_zone)?;
        Ok(hr::LifecycleConfig {
            pre_hire_lead_days: self.pre_hire_days.max(0),
            termination_hour: self.termination_hour,
            default_time_zone: tz.zone(),
        })
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Only workers whose role grants something here get an account.
    #[default]
    Roles,
    /// Every worker gets an account: their role's grant, or the default grant.
    AllEmployees,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default = "monday")]
    pub dialect: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<f64>,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_grant: Option<Grant>,
    /// Teams for workers whose role names none (names, or formulas such as `"=department"`).
    #[serde(default)]
    pub default_teams: Vec<String>,
    /// A team tenure made and that its last member left is deleted; by default it is kept.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remove_empty_teams: bool,
    /// A worker who stops matching any role keeps the account (reported as such).
    #[serde(default)]
    pub keep_on_role_change: bool,
    /// Adopt an unlinked admin account tenure did not create without a reviewer; by default
    /// such an adoption waits for one (a look-alike match must never hand over an admin).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt_admins: bool,
    /// `tenure apply` on a terminal asks before more creates than this (seats cost money).
    #[serde(default = "confirm_creates_over", skip_serializing_if = "is_default_confirm")]
    pub confirm_creates_over: usize,
    #[serde(default)]
    pub deprovision_guard: DeprovisionGuard,
    #[serde(default, skip_serializing_if = "is_default_team_guard")]
    pub team_guard: TeamGuard,
    /// Refuses a run that would reactivate too many of the accounts tenure manages at once (a
    /// store restored from before a batch of leavers, an HR file from the past).
    #[serde(default, skip_serializing_if = "is_default_reactivation_guard")]
    pub reactivation_guard: ReactivationGuard,
    /// Calls in flight at once towards this target, at most (`max_in_flight` is another name
    /// for it).
    #[serde(default = "concurrency", alias = "max_in_flight")]
    pub concurrency: usize,
    /// Lifecycle stages whose actions wait for a reviewer; none: autopilot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supervised: Vec<Stage>,
    /// A review waiting longer than this many hours stands out in the queue.
    #[serde(default = "review_reminder_hours", skip_serializing_if = "is_default_reminder")]
    pub review_reminder_hours: u32,
    /// Runs in a row a worker's actions may fail before they go to the dead-letter list.
    #[serde(default = "dead_letter_after")]
    pub dead_letter_after: u32,
    /// Delete a leaver's account (SCIM DELETE) this many days after tenure deactivated it;
    /// none: never delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_delete_after_days: Option<u32>,
    #[serde(default)]
    pub mappings: BTreeMap<String, MappingSpec>,
}

/// A worker's lifecycle stage on a connection, as a reviewer sees it. `change` and `leave` are
/// the names of before, when a stage covered more: each is read as the stages it covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// A new account (made or adopted), with its teams.
    Hire,
    /// Attribute or user type changes of an active account.
    AttributeChange,
    /// Team joins and removals of an active account.
    TeamChange,
    /// Deactivation of a leaver, or of a worker out of scope.
    Termination,
    /// Deactivation during a leave of absence.
    LeaveOfAbsence,
    /// Reactivation: rehire, return from leave, back in scope.
    Rehire,
    /// Before: any change of an active account; read as attribute_change and team_change.
    Change,
    /// Before: every deactivation; read as termination and leave_of_absence.
    Leave,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Hire => "hire",
            Stage::AttributeChange => "attribute_change",
            Stage::TeamChange => "team_change",
            Stage::Termination => "termination",
            Stage::LeaveOfAbsence => "leave_of_absence",
            Stage::Rehire => "rehire",
            Stage::Change => "change",
            Stage::Leave => "leave",
        }
    }

    /// The stages a name covers: itself, or for a name of before, the stages it stood for.
    pub fn covers(self) -> &'static [Stage] {
        match self {
            Stage::Change => &[Stage::AttributeChange, Stage::TeamChange],
            Stage::Leave => &[Stage::Termination, Stage::LeaveOfAbsence],
            Stage::Hire => &[Stage::Hire],
            Stage::AttributeChange => &[Stage::AttributeChange],
            Stage::TeamChange => &[Stage::TeamChange],
            Stage::Termination => &[Stage::Termination],
            Stage::LeaveOfAbsence => &[Stage::LeaveOfAbsence],
            Stage::Rehire => &[Stage::Rehire],
        }
    }

    /// Every stage a run can hold, in the order a reviewer meets them.
    pub const ALL: [Stage; 6] = [
        Stage::Hire,
        Stage::AttributeChange,
        Stage::TeamChange,
        Stage::Termination,
        Stage::LeaveOfAbsence,
        Stage::Rehire,
    ];
}

/// Supervised stages as named, with the names of before read as what they covered.
pub fn expand_stages(named: &[Stage]) -> Vec<Stage> {
    let mut v: Vec<Stage> = named.iter().flat_map(|s| s.covers().iter().copied()).collect();
    v.sort();
    v.dedup();
    v
}

fn concurrency() -> usize {
    16
}

fn confirm_creates_over() -> usize {
    50
}

fn is_default_confirm(n: &usize) -> bool {
    *n == confirm_creates_over()
}

fn dead_letter_after() -> u32 {
    5
}

fn review_reminder_hours() -> u32 {
    24
}

fn is_default_reminder(h: &u32) -> bool {
    *h == review_reminder_hours()
}

fn monday() -> String {
    "monday".into()
}

/// A mapping: just a formula, or a formula with options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MappingSpec {
    Formula(String),
    Full {
        formula: String,
        #[serde(default)]
        apply: Apply,
        /// Append 2, 3... to keep the value unique among accounts (before any @).
        #[serde(default)]
        unique: bool,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Apply {
    #[default]
    Always,
    OnCreate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub name: String,
    /// No condition: every worker (a catch-all, last in order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
    /// Per connection name.
    #[serde(default)]
    pub grants: BTreeMap<String, Grant>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// monday.com: admin, member, viewer or guest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_type: Option<String>,
    /// monday.com teams: names, or formulas evaluated per worker (`"=department"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teams: Vec<String>,
    /// Groups, for a generic SCIM app (names or formulas, as teams).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Attribute formulas that replace the connection's mapping for this role.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl Config {
    /// Reads TOML; syntax errors say line and column.
    pub fn from_toml(file: &str, text: &str) -> Result<Config, Vec<String>> {
        toml::from_str(text).map_err(|e| {
            let at = e.span().map(|s| {
                let before = &text[..s.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!(":{line}:{col}")
            });
            vec![format!("{file}{}: {}", at.unwrap_or_default(), e.message())]
        })
    }

    /// The canonical form: mappings always as tables, stable order.
    pub fn canonical(&self) -> Config {
        let mut c = self.clone();
        for conn in &mut c.connections {
            // The names of before are saved as the stages they cover: the meaning is kept, and
            // said in today's words.
            conn.supervised = expand_stages(&conn.supervised);
            for m in conn.mappings.values_mut() {
                if let MappingSpec::Formula(f) = m {
                    *m = MappingSpec::Full { formula: f.clone(), apply: Apply::Always, unique: false };
                }
            }
        }
        c
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(&self.canonical()).expect("the configuration serialises")
    }
}

/// The worker fields formulas and conditions may use, in row order.
pub fn worker_fields(custom: &[String]) -> Fields {
    let t = Type::Text;
    let d = Type::Date;
    let mut v: Vec<(String, Type)> = [
        ("employee_id", t),
        ("first_name", t),
        ("last_name", t),
        ("preferred_name", t),
        ("work_email", t),
        ("title", t),
        ("department", t),
        ("division", t),
        ("location", t),
        ("cost_center", t),
        ("manager_id", t),
        ("employment_type", t),
        ("status", t),
        ("leave_type", t),
        ("hire_date", d),
        ("termination_date", d),
        ("leave_start", d),
        ("leave_end", d),
        ("time_zone", t),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), t))
    .collect();
    v.extend(custom.iter().map(|c| (format!("custom.{c}"), Type::Text)));
    Fields::new(v)
}

fn opt(s: Option<&str>) -> Value {
    s.map(|s| Value::Text(s.to_string())).unwrap_or(Value::Blank)
}

fn date(d: Option<Date>) -> Value {
    d.map(Value::Date).unwrap_or(Value::Blank)
}

/// One worker as a row of values, in `worker_fields` order.
pub fn worker_row(w: &Worker, custom: &[String]) -> Vec<Value> {
    let (status, leave) = match &w.status {
        Status::Active => ("active", None),
        Status::Leave { kind } => ("leave", Some(enum_text(kind))),
        Status::Terminated => ("terminated", None),
    };
    let mut row = vec![
        Value::Text(w.id.to_string()),
        Value::Text(w.first_name.as_str().into()),
        Value::Text(w.last_name.as_str().into()),
        opt(w.preferred_name.as_ref().map(|n| n.as_str())),
        opt(w.work_email.as_ref().map(|e| e.as_str())),
        opt(w.title.as_deref()),
        opt(w.department.as_deref()),
        opt(w.division.as_deref()),
        opt(w.location.as_deref()),
        opt(w.cost_center.as_deref()),
        opt(w.manager_id.as_ref().map(|m| m.as_str())),
        Value::Text(enum_text(&w.employment_type)),
        Value::Text(status.into()),
        opt(leave.as_deref()),
        Value::Date(w.hire_date),
        date(w.termination_date),
        date(w.leave_start),
        date(w.leave_end),
        opt(w.time_zone.as_ref().map(|z| z.as_str())),
    ];
    row.extend(custom.iter().map(|c| opt(w.custom.get(c).map(String::as_str))));
    row
}

/// The snake_case name of a field enum, or the HR system's own word for `Other`.
fn enum_text<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Object(o)) => o.values().next().and_then(|v| v.as_str()).unwrap_or_default().to_string(),
        _ => String::new(),
    }
}

/// A checked, compiled configuration.
#[derive(Debug, Clone)]
pub struct Rules {
    pub config: Config,
    custom: Vec<String>,
    roles: Vec<CompiledRole>,
    team_rules: Vec<CompiledTeamRule>,
    pub connections: Vec<CompiledConnection>,
    /// What a person should know though nothing is wrong (a name of before, read as it was meant).
    pub notes: Vec<String>,
}

impl CompiledConnection {
    /// The team (or group) names this connection's configuration writes out: the teams tenure
    /// manages from the start. A formula's teams are known per worker; the plan adds them.
    pub fn managed_teams(&self, rules: &Rules) -> Vec<String> {
        let mut specs: Vec<&TeamSpec> = self.default_teams.iter().collect();
        if let Some(g) = &self.default_grant {
            specs.extend(g.teams.iter().chain(&g.groups));
        }
        for r in &rules.roles {
            if let Some(g) = r.grants.get(&self.name) {
                specs.extend(g.teams.iter().chain(&g.groups));
            }
        }
        for r in rules.team_rules.iter().filter(|r| r.applies_to(&self.name)) {
            specs.extend(&r.teams);
        }
        let mut t: Vec<String> = specs.into_iter().filter_map(TeamSpec::name).map(str::to_string).collect();
        t.sort();
        t.dedup();
        t
    }
}

/// The longest team name tenure sends (monday.com publishes no limit; a longer name from HR
/// data is a mistake in the data far more often than a team's real name).
pub const MAX_TEAM_NAME: usize = 255;

/// What is wrong with a team name, if anything: targets refuse empty names and control
/// characters, and a name beyond `MAX_TEAM_NAME` is held rather than sent.
pub fn team_name_problem(name: &str) -> Option<String> {
    if name.trim().is_empty() {
        return Some("is empty".into());
    }
    let n = name.chars().count();
    if n > MAX_TEAM_NAME {
        return Some(format!("is {n} characters long, over the {MAX_TEAM_NAME} a team name may have"));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Some(format!("holds a control character (U+{:04X}), which targets refuse", c as u32));
    }
    None
}

/// One entry of a grant's teams, a connection's default teams or a team rule: a name as
/// written, or a formula giving a name per worker.
#[derive(Debug, Clone)]
pub enum TeamSpec {
    Name(String),
    Formula(Formula),
}

impl TeamSpec {
    /// The name, when it is written out.
    pub fn name(&self) -> Option<&str> {
        match self {
            TeamSpec::Name(n) => Some(n),
            TeamSpec::Formula(_) => None,
        }
    }

    /// The team's name for one worker; a formula's result is trimmed and checked.
    fn eval(&self, row: &[Value], ctx: &Context) -> Result<String, String> {
        let f = match self {
            TeamSpec::Name(n) => return Ok(n.clone()),
            TeamSpec::Formula(f) => f,
        };
        let text = match f.eval(row, ctx).map_err(|e| format!("the team formula {:?} failed: {e}", f.text()))? {
            Value::Text(t) => t,
            v => v.to_text(),
        };
        let name = text.trim();
        match team_name_problem(name) {
            // Most names come trimmed: kept as they are, not copied again.
            None if name.len() == text.len() => Ok(text),
            None => Ok(name.to_string()),
            Some(p) if name.is_empty() => Err(format!("the team formula {:?} gives a name that {p}", f.text())),
            Some(p) => Err(format!("the team formula {:?} gives {name:?}, which {p}", f.text())),
        }
    }
}

/// What put a worker in a team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlacedBy {
    /// The grant of the role that took the worker (names shared, not copied per worker).
    Role(Arc<str>),
    /// The connection's default grant (all employees, the role granting nothing here).
    DefaultGrant,
    /// The connection's default teams (the grant names none).
    DefaultTeams,
    /// An additive team rule.
    TeamRule(Arc<str>),
}

impl std::fmt::Display for PlacedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlacedBy::Role(r) => write!(f, "role {r:?}"),
            PlacedBy::DefaultGrant => f.write_str("the default grant"),
            PlacedBy::DefaultTeams => f.write_str("the connection's default teams"),
            PlacedBy::TeamRule(r) => write!(f, "team rule {r:?}"),
        }
    }
}

impl Serialize for PlacedBy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One team a worker is put in, and what put them there.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Placement {
    pub team: String,
    pub by: PlacedBy,
}

/// One worker's teams on one connection, as `Rules::place` finds them.
#[derive(Debug, Default)]
struct Teams {
    view: GrantView,
    placements: Vec<Placement>,
    errors: Vec<String>,
    /// Each team rule's verdict, when explaining.
    why: Vec<String>,
}

#[derive(Debug, Clone)]
struct CompiledTeamRule {
    name: String,
    /// What its placements say put the worker there.
    by: PlacedBy,
    when: Option<Compiled>,
    teams: Vec<TeamSpec>,
    /// None: every connection.
    connections: Vec<String>,
}

impl CompiledTeamRule {
    fn applies_to(&self, connection: &str) -> bool {
        self.connections.is_empty() || self.connections.iter().any(|c| c == connection)
    }
}

/// Compiles a list of team names and formulas; a literal that starts with `=` is a formula,
/// so one that does not compile is an error here, never a team named `=department`.
fn compile_teams(list: &[String], fields: &Fields, at: &str, errors: &mut Vec<String>) -> Vec<TeamSpec> {
    let mut out = vec![];
    for (i, t) in list.iter().enumerate() {
        let at = format!("{at}[{i}]");
        if t.trim_start().starts_with('=') {
            match Formula::compile(t, fields) {
                Ok(f) if matches!(f.result_type(), Type::Bool | Type::List) => {
                    errors.push(format!("{at}: the team formula {t:?} gives {}, not a team name", f.result_type()))
                }
                Ok(f) => {
                    if let Some(p) = f.constant().and_then(|c| team_name_problem(c.to_text().trim())) {
                        errors.push(format!("{at}: the team formula {t:?} always gives a name that {p}"));
                    }
                    out.push(TeamSpec::Formula(f));
                }
                Err(e) => errors.push(format!(
                    "{at}: {t:?} starts with \"=\", so it is read as a formula, and it is not one: {e} (a team's \
                     name cannot start with \"=\")"
                )),
            }
        } else if let Some(p) = team_name_problem(t) {
            errors.push(format!("{at}: the team name {t:?} {p}"));
        } else if t.trim() != t {
            errors.push(format!("{at}: the team name {t:?} starts or ends with a space"));
        } else {
            out.push(TeamSpec::Name(t.clone()));
        }
    }
    out
}

#[derive(Debug, Clone)]
struct CompiledRole {
    name: String,
    /// What its grant's placements say put the worker there.
    by: PlacedBy,
    when: Option<Compiled>,
    grants: HashMap<String, CompiledGrant>,
}

/// What a worker is granted on one connection, their teams' names evaluated.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GrantView {
    pub user_type: Option<String>,
    pub teams: Vec<String>,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone)]
struct CompiledGrant {
    user_type: Option<String>,
    teams: Vec<TeamSpec>,
    groups: Vec<TeamSpec>,
    attributes: Vec<CompiledMapping>,
}

#[derive(Debug, Clone)]
pub struct CompiledMapping {
    pub target: String,
    pub formula: Formula,
    pub apply: Apply,
    pub unique: bool,
}

#[derive(Debug, Clone)]
pub struct CompiledConnection {
    pub name: String,
    pub guard: DeprovisionGuard,
    pub reactivation_guard: ReactivationGuard,
    pub concurrency: usize,
    pub dialect: Dialect,
    pub mode: Mode,
    pub keep_on_role_change: bool,
    pub adopt_admins: bool,
    pub confirm_creates_over: usize,
    default_grant: Option<CompiledGrant>,
    default_teams: Vec<TeamSpec>,
    pub remove_empty_teams: bool,
    pub team_guard: TeamGuard,
    pub mappings: Vec<CompiledMapping>,
    pub supervised: Vec<Stage>,
    pub dead_letter_after: u32,
    pub hard_delete_after_days: Option<u32>,
    /// The User schema mappings were checked against, and whether the target published it.
    pub schema: ResourceSchema,
    pub published: bool,
}

/// Attributes that follow from elsewhere and may not be mapped.
fn reserved(target: &str) -> Option<&'static str> {
    match target {
        "id" | "meta" | "schemas" | "groups" => Some("it is the target's own"),
        "password" => Some("tenure never sets passwords"),
        _ => None,
    }
}

/// The target a connection's mappings are checked against: its dialect and its User schema,
/// either the one it published at /Schemas or what tenure knows of the dialect.
#[derive(Clone, Copy)]
struct Target<'a> {
    dialect: Dialect,
    schema: &'a ResourceSchema,
    published: bool,
}

fn check_target(target: &str, t: Target) -> Result<(), String> {
    if let Some(why) = reserved(target.split(['.', '[']).next().unwrap_or(target)) {
        return Err(format!("{target} cannot be mapped: {why}"));
    }
    let path = scim::filter::PatchPath::parse(target).map_err(|e| e.detail)?;
    let schema = t.schema;
    let missing = || {
        let whose = if t.published { "published by the target at /Schemas" } else { "known for the dialect" };
        format!(
            "the {} target has no attribute {target:?}; the attributes {whose} are: {}",
            t.dialect.as_str(),
            schema.writable_paths().join(", ")
        )
    };
    let r = schema.resolve(&path.attr).ok_or_else(missing)?;
    if path.attr.sub.is_some() && schema.leaf(&path.attr).is_none() {
        return Err(missing());
    }
    if let (Some(urn), None) = (r.extension, &path.attr.uri) {
        // The engine writes where the path says: an extension attribute needs its schema URN.
        return Err(format!("{target} is in the extension {urn}: write it as \"{urn}:{target}\""));
    }
    if let Some(sub) = &path.sub_after_filter {
        if !r.attr.sub_attributes.iter().any(|s| s.name.eq_ignore_ascii_case(sub)) {
            return Err(format!("{} has no sub-attribute {sub:?}", r.attr.name));
        }
    }
    if r.attr.mutability == scim::schema::Mutability::ReadOnly {
        return Err(format!("{target} is read-only on the target"));
    }
    Ok(())
}

fn compile_mapping(
    target: &str,
    spec: &MappingSpec,
    fields: &Fields,
    t: Target,
    at: &str,
) -> Result<CompiledMapping, String> {
    let dialect = t.dialect;
    let (text, apply, unique) = match spec {
        MappingSpec::Formula(f) => (f.as_str(), Apply::Always, false),
        MappingSpec::Full { formula, apply, unique } => (formula.as_str(), *apply, *unique),
    };
    check_target(target, t).map_err(|e| format!("{at}: {e}"))?;
    let formula = Formula::compile(text, fields).map_err(|e| format!("{at}: formula {text:?}: {e}"))?;
    if target == "active" && !matches!(formula.result_type(), Type::Bool | Type::Any) {
        return Err(format!("{at}: active takes TRUE or FALSE, this formula gives {}", formula.result_type()));
    }
    if target == "userType" && dialect == Dialect::Monday {
        if let Some(v) = formula.constant() {
            let v = v.to_text().to_lowercase();
            if !scim::dialect::MONDAY_USER_TYPES.contains(&v.as_str()) {
                return Err(format!(
                    "{at}: monday.com user types are {}, not {v:?}",
                    scim::dialect::MONDAY_USER_TYPES.join(", ")
                ));
            }
        }
    }
    Ok(CompiledMapping { target: target.to_string(), formula, apply, unique })
}

fn compile_grant(g: &Grant, fields: &Fields, t: Target, at: &str, errors: &mut Vec<String>) -> CompiledGrant {
    let dialect = t.dialect;
    if let Some(t) = &g.user_type {
        if dialect == Dialect::Monday && !scim::dialect::MONDAY_USER_TYPES.contains(&t.to_lowercase().as_str()) {
            errors.push(format!(
                "{at}.user_type: monday.com user types are {}, not {t:?}",
                scim::dialect::MONDAY_USER_TYPES.join(", ")
            ));
        }
    }
    if dialect == Dialect::Monday && !g.groups.is_empty() {
        errors.push(format!("{at}.groups: monday.com has teams; write teams = [...]"));
    }
    let mut attributes = vec![];
    for (target, f) in &g.attributes {
        match compile_mapping(target, &MappingSpec::Formula(f.clone()), fields, t, &format!("{at}.attributes.{target}"))
        {
            Ok(m) => attributes.push(m),
            Err(e) => errors.push(e),
        }
    }
    CompiledGrant {
        user_type: g.user_type.as_ref().map(|t| t.to_lowercase()),
        teams: compile_teams(&g.teams, fields, &format!("{at}.teams"), errors),
        groups: compile_teams(&g.groups, fields, &format!("{at}.groups"), errors),
        attributes,
    }
}

/// What the supervised names of before now cover, said per connection.
fn stage_notes(config: &Config) -> Vec<String> {
    let mut out = vec![];
    for (i, c) in config.connections.iter().enumerate() {
        for old in c.supervised.iter().filter(|s| matches!(s, Stage::Change | Stage::Leave)) {
            let (covers, what) = match old {
                Stage::Leave => ("\"termination\" and \"leave_of_absence\"", "every deactivation"),
                _ => ("\"attribute_change\" and \"team_change\"", "every change of an active account"),
            };
            out.push(format!(
                "connection[{i}] ({:?}).supervised: {:?} is read as {covers}, {what}, as before; name one of them to \
                 supervise it alone (the saved configuration names both)",
                c.name,
                old.as_str()
            ));
        }
    }
    out
}

fn compile_team_rules(
    rules: &[TeamRule],
    fields: &Fields,
    connections: &[CompiledConnection],
    errors: &mut Vec<String>,
) -> Vec<CompiledTeamRule> {
    let mut names = HashSet::new();
    let mut out = vec![];
    for (i, r) in rules.iter().enumerate() {
        let at = format!("team_rule[{i}] ({:?})", r.name);
        if r.name.trim().is_empty() {
            errors.push(format!("{at}: the name is empty (it is what the plan says put a worker in a team)"));
        }
        if !names.insert(r.name.to_lowercase()) {
            errors.push(format!("{at}: a second team rule named {:?}", r.name));
        }
        if r.teams.is_empty() {
            errors.push(format!("{at}.teams: names no team"));
        }
        for c in &r.connections {
            if !connections.iter().any(|k| &k.name == c) {
                errors.push(format!(
                    "{at}.connections: no connection named {c:?}; the connections are: {}",
                    connections.iter().map(|c| format!("{:?}", c.name)).collect::<Vec<_>>().join(", ")
                ));
            }
        }
        let when = match &r.when {
            None => None,
            Some(c) => match condition::compile(c, fields, &format!("{at}.when")) {
                Ok(c) => {
                    if let Some(why) = condition::never(&c) {
                        errors.push(format!("{at}: can never match: {why}"));
                    }
                    Some(c)
                }
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
        };
        let teams = compile_teams(&r.teams, fields, &format!("{at}.teams"), errors);
        out.push(CompiledTeamRule {
            name: r.name.clone(),
            by: PlacedBy::TeamRule(r.name.as_str().into()),
            when,
            teams,
            connections: r.connections.clone(),
        });
    }
    out
}

impl Rules {
    /// Checks and compiles a configuration against what tenure knows of each dialect; every
    /// problem is listed, none is left for run time.
    pub fn compile(config: &Config) -> Result<Rules, Vec<String>> {
        Self::compile_with(config, &HashMap::new())
    }

    /// As `compile`, with the User schema some targets published (by connection name): their
    /// mappings are checked against it, custom extension attributes included.
    pub fn compile_with(config: &Config, published: &HashMap<String, ResourceSchema>) -> Result<Rules, Vec<String>> {
        let mut errors = vec![];
        if !config.auth.password_sign_in && config.auth.break_glass_accounts.iter().all(|a| a.trim().is_empty()) {
            // Nobody could sign in the day the identity provider is down.
            errors.push(
                "auth.break_glass_accounts: with password_sign_in = false, name at least one local account that keeps \
                 its password sign-in"
                    .to_string(),
            );
        }
        if let Some(o) = &config.auth.oidc {
            errors.extend(o.check());
        }
        let custom = config.hr.custom_fields.clone();
        if let Err(e) = config.hr.lifecycle() {
            errors.push(format!("hr.default_time_zone: {e}"));
        }
        if config.hr.termination_hour.is_some_and(|h| !(0..=23).contains(&h)) {
            errors.push("hr.termination_hour: an hour from 0 to 23".to_string());
        }
        if !(0.0..=1.0).contains(&config.hr.max_population_drop) {
            errors.push("hr.max_population_drop: a share from 0 to 1 (0.1 is 10%)".to_string());
        }
        if let Some(Err(e)) = config.hr.alert_after.as_deref().map(duration::parse) {
            errors.push(format!("hr.alert_after: {e}"));
        }
        if let Err(e) = config.hr.header_definition() {
            errors.extend(e);
        }
        if let Some(i) = &config.hr.inbox {
            if i.path.trim().is_empty() {
                errors.push("hr.inbox.path: the folder is empty".into());
            }
            if i.pattern.contains('/') {
                errors.push("hr.inbox.pattern: a file name pattern, without folders".into());
            }
        }
        if let Some(p) = &config.hr.pull {
            errors.extend(p.check().into_iter().map(|e| format!("hr.pull.{e}")));
        }
        let fields = worker_fields(&custom);
        let mut names = HashSet::new();
        let mut connections = vec![];
        for (i, c) in config.connections.iter().enumerate() {
            let at = format!("connection[{i}] ({:?})", c.name);
            if c.name.trim().is_empty() {
                errors.push(format!("{at}: the name is empty"));
            }
            if !names.insert(c.name.clone()) {
                errors.push(format!("{at}: a second connection named {:?}", c.name));
            }
            let dialect: Dialect = match c.dialect.parse() {
                Ok(d) => d,
                Err(e) => {
                    errors.push(format!("{at}.dialect: {e}"));
                    Dialect::Generic
                }
            };
            if let Some(u) = &c.url {
                // The form only: reachability and address policy are checked when the connection is added.
                let lax = scim_client::UrlPolicy { allow_insecure_http: true, allow_private: true };
                if let Err(e) = scim_client::InstanceUrl::parse(u, lax) {
                    errors.push(format!("{at}.url: {e}"));
                }
            }
            let g = c.deprovision_guard;
            if !(0.0..=1.0).contains(&g.max_share) {
                errors.push(format!("{at}.deprovision_guard.max_share: a share from 0 to 1, not {}", g.max_share));
            }
            if !(0.0..=1.0).contains(&c.reactivation_guard.max_share) {
                errors.push(format!(
                    "{at}.reactivation_guard.max_share: a share from 0 to 1, not {}",
                    c.reactivation_guard.max_share
                ));
            }
            if !(0.0..=1.0).contains(&c.team_guard.max_share) {
                errors.push(format!("{at}.team_guard.max_share: a share from 0 to 1, not {}", c.team_guard.max_share));
            }
            let default_teams = compile_teams(&c.default_teams, &fields, &format!("{at}.default_teams"), &mut errors);
            if c.concurrency == 0 || c.concurrency > 256 {
                errors.push(format!("{at}.concurrency: from 1 to 256, not {}", c.concurrency));
            }
            if c.hard_delete_after_days.is_some_and(|d| d == 0 || d > 3650) {
                errors.push(format!(
                    "{at}.hard_delete_after_days: from 1 to 3650 days, not {}",
                    c.hard_delete_after_days.unwrap_or_default()
                ));
            }
            if !(1..=24 * 90).contains(&c.review_reminder_hours) {
                errors
                    .push(format!("{at}.review_reminder_hours: from 1 to 2160 hours, not {}", c.review_reminder_hours));
            }
            if !(1..=1000).contains(&c.dead_letter_after) {
                errors.push(format!("{at}.dead_letter_after: from 1 to 1000 runs, not {}", c.dead_letter_after));
            }
            if c.mode == Mode::AllEmployees && c.default_grant.is_none() {
                errors.push(format!("{at}: mode all_employees needs a default_grant"));
            }
            let schema = published.get(&c.name).cloned().unwrap_or_else(|| dialect.user_schema());
            let t = Target { dialect, schema: &schema, published: published.contains_key(&c.name) };
            let default_grant = c
                .default_grant
                .as_ref()
                .map(|g| compile_grant(g, &fields, t, &format!("{at}.default_grant"), &mut errors));
            let mut mappings = vec![];
            for (target, spec) in &c.mappings {
                match compile_mapping(target, spec, &fields, t, &format!("{at}.mappings.{target}")) {
                    Ok(m) => mappings.push(m),
                    Err(e) => errors.push(e),
                }
            }
            if !c.mappings.keys().any(|k| k == "userName") {
                errors.push(format!("{at}.mappings: userName must be mapped (it identifies the account)"));
            }
            if dialect == Dialect::Monday && !c.mappings.keys().any(|k| k == "displayName") {
                errors.push(format!("{at}.mappings: monday.com requires displayName"));
            }
            connections.push(CompiledConnection {
                name: c.name.clone(),
                guard: c.deprovision_guard,
                reactivation_guard: c.reactivation_guard,
                concurrency: c.concurrency,
                dialect,
                mode: c.mode,
                keep_on_role_change: c.keep_on_role_change,
                adopt_admins: c.adopt_admins,
                confirm_creates_over: c.confirm_creates_over,
                default_grant,
                default_teams,
                remove_empty_teams: c.remove_empty_teams,
                team_guard: c.team_guard,
                mappings,
                supervised: expand_stages(&c.supervised),
                dead_letter_after: c.dead_letter_after,
                hard_delete_after_days: c.hard_delete_after_days,
                published: t.published,
                schema,
            });
        }
        let names: Vec<String> = config.connections.iter().map(|c| c.name.clone()).collect();
        errors.extend(notify::check(&config.notify, &names));
        let mut roles = vec![];
        let mut role_names = HashSet::new();
        let mut catch_all: Option<String> = None;
        for (i, r) in config.roles.iter().enumerate() {
            let at = format!("role[{i}] ({:?})", r.name);
            if !role_names.insert(r.name.to_lowercase()) {
                errors.push(format!("{at}: a second role named {:?}", r.name));
            }
            if let Some(first) = &catch_all {
                errors.push(format!("{at}: can never match: role {first:?} above it matches every worker"));
            }
            let when = match &r.when {
                None => {
                    catch_all = Some(r.name.clone());
                    None
                }
                Some(c) => match condition::compile(c, &fields, &format!("{at}.when")) {
                    Ok(c) => {
                        if let Some(why) = condition::never(&c) {
                            errors.push(format!("{at}: can never match: {why}"));
                        }
                        Some(c)
                    }
                    Err(e) => {
                        errors.push(e);
                        None
                    }
                },
            };
            let mut grants = HashMap::new();
            for (conn, g) in &r.grants {
                let Some(cc) = connections.iter().find(|c| &c.name == conn) else {
                    errors.push(format!(
                        "{at}.grants: no connection named {conn:?}; the connections are: {}",
                        connections.iter().map(|c| format!("{:?}", c.name)).collect::<Vec<_>>().join(", ")
                    ));
                    continue;
                };
                let t = Target { dialect: cc.dialect, schema: &cc.schema, published: cc.published };
                let g = compile_grant(g, &fields, t, &format!("{at}.grants.{conn:?}"), &mut errors);
                grants.insert(conn.clone(), g);
            }
            roles.push(CompiledRole { name: r.name.clone(), by: PlacedBy::Role(r.name.as_str().into()), when, grants });
        }
        let team_rules = compile_team_rules(&config.team_rules, &fields, &connections, &mut errors);
        let notes = stage_notes(config);
        if errors.is_empty() {
            Ok(Rules { config: config.clone(), custom, roles, team_rules, connections, notes })
        } else {
            Err(errors)
        }
    }

    /// The index of the role a worker's row falls in (the first whose condition holds), if any:
    /// what the console counts per role, without the attributes a decision evaluates.
    pub fn role_of(&self, row: &[Value], today: Date) -> Option<usize> {
        self.roles.iter().position(|r| r.when.as_ref().is_none_or(|c| condition::holds(c, row, today)))
    }

    pub fn custom_fields(&self) -> &[String] {
        &self.custom
    }

    pub fn fields(&self) -> Fields {
        worker_fields(&self.custom)
    }

    /// What one worker gets on one connection, with the reasons spelled out.
    /// The roles in order up to the one that takes this worker (the first whose condition
    /// holds), each with every test of its condition: why the earlier ones did not.
    pub fn explain(&self, row: &[Value], today: Date) -> Vec<RoleCheck> {
        let mut out = vec![];
        for r in &self.roles {
            let mut checks = vec![];
            let matched = match &r.when {
                None => true,
                Some(c) => condition::explain(c, row, today, 0, &mut checks),
            };
            out.push(RoleCheck { role: r.name.clone(), matched, checks });
            if matched {
                break;
            }
        }
        out
    }

    /// A granted worker's teams on one connection: the grant's (or the connection's default
    /// teams), then every team rule that applies, each with what put the worker there.
    fn place(
        &self,
        conn: &CompiledConnection,
        role: Option<&CompiledRole>,
        g: &CompiledGrant,
        row: &[Value],
        today: Date,
        explain: bool,
    ) -> Teams {
        let ctx = Context { today };
        let mut out = Teams::default();
        let place = |specs: &[TeamSpec], by: &PlacedBy, groups: bool, out: &mut Teams| {
            for spec in specs {
                match spec.eval(row, &ctx) {
                    Ok(team) if out.placements.iter().any(|p| p.team.eq_ignore_ascii_case(&team)) => {}
                    Ok(team) => {
                        if groups { &mut out.view.groups } else { &mut out.view.teams }.push(team.clone());
                        out.placements.push(Placement { team, by: by.clone() });
                    }
                    Err(e) => out.errors.push(format!("{by}: {e}")),
                }
            }
        };
        let by = role.map_or(PlacedBy::DefaultGrant, |r| r.by.clone());
        if g.teams.is_empty() && conn.dialect == Dialect::Monday {
            place(&conn.default_teams, &PlacedBy::DefaultTeams, false, &mut out);
        } else {
            place(&g.teams, &by, false, &mut out);
        }
        place(&g.groups, &by, true, &mut out);
        for r in self.team_rules.iter().filter(|r| r.applies_to(&conn.name)) {
            let mut tests = vec![];
            let hit = match &r.when {
                None => true,
                Some(c) if explain => condition::eval(c, row, today, &mut tests),
                Some(c) => condition::holds(c, row, today),
            };
            if explain {
                let tests = if tests.is_empty() { "no condition: every worker".into() } else { tests.join(", ") };
                let verdict = if hit { "applies" } else { "does not apply" };
                out.why.push(format!("team rule {:?} {verdict}: {tests}", r.name));
            }
            if hit {
                place(&r.teams, &r.by, false, &mut out);
            }
        }
        out.view.user_type = match &g.user_type {
            None if conn.dialect == Dialect::Monday => Some("member".into()),
            t => t.clone(),
        };
        out
    }

    /// The teams a worker is put in on one connection and by what (none without an account),
    /// and the teams their data cannot name; without the attributes a decision evaluates.
    pub fn teams_of(&self, connection: usize, row: &[Value], today: Date) -> (Vec<Placement>, Vec<String>) {
        let conn = &self.connections[connection];
        let matched = self.roles.iter().find(|r| r.when.as_ref().is_none_or(|c| condition::holds(c, row, today)));
        let role_grant = matched.and_then(|r| r.grants.get(&conn.name));
        let grant = match (role_grant, conn.mode) {
            (Some(g), _) => Some(g),
            (None, Mode::AllEmployees) => conn.default_grant.as_ref(),
            (None, Mode::Roles) => None,
        };
        match grant {
            Some(g) => {
                let t = self.place(conn, matched.filter(|_| role_grant.is_some()), g, row, today, false);
                (t.placements, t.errors)
            }
            None => (vec![], vec![]),
        }
    }

    pub fn decide(&self, connection: usize, row: &[Value], today: Date) -> Decision {
        self.decide_with(connection, row, today, true)
    }

    /// As `decide`; without `explain` the reasons are not written (planning 100,000 workers
    /// needs the outcome, not the prose).
    pub fn decide_with(&self, connection: usize, row: &[Value], today: Date, explain: bool) -> Decision {
        let conn = &self.connections[connection];
        let mut why = vec![];
        let mut matched = None;
        for r in &self.roles {
            let mut tests = vec![];
            let hit = match &r.when {
                None => {
                    tests.push("no condition: every worker".to_string());
                    true
                }
                Some(c) if explain => condition::eval(c, row, today, &mut tests),
                Some(c) => condition::holds(c, row, today),
            };
            if hit {
                why.extend(tests);
                matched = Some(r);
                break;
            }
            if explain {
                why.push(format!("role {:?} did not match: {}", r.name, tests.join(", ")));
            }
        }
        let role_grant = matched.and_then(|r| r.grants.get(&conn.name));
        let grant = match (role_grant, conn.mode) {
            (Some(g), _) => Some(g),
            (None, Mode::AllEmployees) => conn.default_grant.as_ref(),
            (None, Mode::Roles) => None,
        };
        let ctx = Context { today };
        let attributes = grant
            .map(|g| {
                let mut out: Vec<Attribute> = conn
                    .mappings
                    .iter()
                    .map(|m| {
                        let m = g.attributes.iter().find(|o| o.target == m.target).unwrap_or(m);
                        Attribute {
                            target: m.target.clone(),
                            value: m.formula.eval(row, &ctx),
                            formula: m.formula.text().to_string(),
                            apply: m.apply,
                            unique: m.unique,
                        }
                    })
                    .collect();
                for o in &g.attributes {
                    if !out.iter().any(|a| a.target == o.target) {
                        out.push(Attribute {
                            target: o.target.clone(),
                            value: o.formula.eval(row, &ctx),
                            formula: o.formula.text().to_string(),
                            apply: o.apply,
                            unique: o.unique,
                        });
                    }
                }
                out
            })
            .unwrap_or_default();
        let teams = grant.map(|g| self.place(conn, matched.filter(|_| role_grant.is_some()), g, row, today, explain));
        let (view, placements, team_errors) = match teams {
            Some(t) => {
                why.extend(t.why);
                (Some(t.view), t.placements, t.errors)
            }
            None => (None, vec![], vec![]),
        };
        Decision {
            connection: conn.name.clone(),
            role: matched.map(|r| r.name.clone()),
            why,
            by_default: role_grant.is_none() && view.is_some(),
            grant: view,
            placements,
            team_errors,
            attributes,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Attribute {
    pub target: String,
    #[serde(serialize_with = "ser_result")]
    pub value: Result<Value, String>,
    pub formula: String,
    pub apply: Apply,
    pub unique: bool,
}

fn ser_result<S: serde::Serializer>(v: &Result<Value, String>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(1))?;
    match v {
        Ok(Value::Bool(b)) => m.serialize_entry("value", b)?,
        Ok(Value::Number(n)) => m.serialize_entry("value", n)?,
        Ok(Value::Blank) => m.serialize_entry("value", &serde_json::Value::Null)?,
        Ok(v) => m.serialize_entry("value", &v.to_text())?,
        Err(e) => m.serialize_entry("error", e)?,
    }
    m.end()
}

/// One worker on one connection: the role that matched and why, the grant, the attributes.
/// A role as tried for one worker: whether it took them, and each test of its condition
/// (none: the role has no condition and takes everyone it is asked about).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleCheck {
    pub role: String,
    pub matched: bool,
    pub checks: Vec<condition::Check>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub connection: String,
    pub role: Option<String>,
    pub why: Vec<String>,
    /// The grant came from the connection's default (all employees), not the role.
    pub by_default: bool,
    /// None: no account on this connection.
    pub grant: Option<GrantView>,
    pub attributes: Vec<Attribute>,
    /// The grant's teams (and groups) and what put the worker in each, in order.
    pub placements: Vec<Placement>,
    /// Teams that could not be named from this worker's data: the worker is held.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub team_errors: Vec<String>,
}

/// Makes values unique, deterministically: the first claimant (in the order given) keeps a
/// value, later ones get 2, 3... appended (before the @ of an address). `taken` holds values
/// already in use elsewhere; comparison ignores case.
pub fn make_unique(values: &[String], taken: &HashSet<String>) -> Vec<String> {
    let mut names = UniqueNames::new(taken.iter().cloned());
    values.iter().map(|v| names.claim(v)).collect()
}

/// Unique values handed out one at a time (a plan claims user names as it goes).
#[derive(Debug, Default)]
pub struct UniqueNames {
    used: HashSet<String>,
    // The next number to try per value, so a thousand namesakes cost a thousand lookups, not
    // half a million.
    next: HashMap<String, usize>,
}

impl UniqueNames {
    pub fn new(taken: impl IntoIterator<Item = String>) -> Self {
        UniqueNames { used: taken.into_iter().map(|t| t.to_lowercase()).collect(), next: HashMap::new() }
    }

    /// Marks a value as in use, as it is.
    pub fn reserve(&mut self, v: &str) {
        self.used.insert(v.to_lowercase());
    }

    /// The value itself if free, else the first free numbered variant; it is then in use.
    pub fn claim(&mut self, v: &str) -> String {
        let key = v.to_lowercase();
        if self.used.insert(key.clone()) {
            return v.to_string();
        }
        let n = self.next.entry(key).or_insert(2);
        loop {
            let candidate = match v.split_once('@') {
                Some((local, domain)) => format!("{local}{n}@{domain}"),
                None => format!("{v}{n}"),
            };
            *n += 1;
            if self.used.insert(candidate.to_lowercase()) {
                return candidate;
            }
        }
    }
}
