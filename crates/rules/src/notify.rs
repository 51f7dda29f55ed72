//! Notification settings: where notices go (a signed webhook, or e-mail over SMTP), on which
//! events, and the templates they are written from. Checked whole at save time like the rest.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a notice is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    Hire,
    Change,
    Leave,
    Rehire,
    /// A worker's actions failed this run.
    Failure,
    /// A worker's actions were set aside after failing run after run.
    DeadLetter,
    /// A worker's actions wait for a reviewer.
    Review,
    /// A worker is held until the HR data changes (a quarantined row, a look-alike address,
    /// an account another worker holds).
    Held,
    /// Someone decided from the command line on a store whose people sign in, with
    /// `--break-glass` and a reason.
    BreakGlass,
    /// A guard held part of a run: its numbers and the command that confirms it.
    GuardRefused,
    /// An HR load had rows quarantined (not taken).
    HrQuarantined,
    /// An HR file or push was refused whole (its header, the population check).
    HrRefused,
    /// No HR data arrived for longer than `[hr] alert_after`.
    HrQuiet,
    /// A scheduler turn took longer than its interval.
    SchedulerBehind,
    /// The scheduler has not turned for three intervals, and no run of its own is going.
    SchedulerStopped,
    /// A notifier could not deliver its notices (told through the others).
    NoticeUndeliverable,
}

impl NoticeKind {
    pub const ALL: [NoticeKind; 16] = [
        NoticeKind::Hire,
        NoticeKind::Change,
        NoticeKind::Leave,
        NoticeKind::Rehire,
        NoticeKind::Failure,
        NoticeKind::DeadLetter,
        NoticeKind::Review,
        NoticeKind::Held,
        NoticeKind::BreakGlass,
        NoticeKind::GuardRefused,
        NoticeKind::HrQuarantined,
        NoticeKind::HrRefused,
        NoticeKind::HrQuiet,
        NoticeKind::SchedulerBehind,
        NoticeKind::SchedulerStopped,
        NoticeKind::NoticeUndeliverable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Hire => "hire",
            NoticeKind::Change => "change",
            NoticeKind::Leave => "leave",
            NoticeKind::Rehire => "rehire",
            NoticeKind::Failure => "failure",
            NoticeKind::DeadLetter => "dead_letter",
            NoticeKind::Review => "review",
            NoticeKind::Held => "held",
            NoticeKind::BreakGlass => "break_glass",
            NoticeKind::GuardRefused => "guard_refused",
            NoticeKind::HrQuarantined => "hr_quarantined",
            NoticeKind::HrRefused => "hr_refused",
            NoticeKind::HrQuiet => "hr_quiet",
            NoticeKind::SchedulerBehind => "scheduler_behind",
            NoticeKind::SchedulerStopped => "scheduler_stopped",
            NoticeKind::NoticeUndeliverable => "notice_undeliverable",
        }
    }

    /// The built-in subject and body.
    pub fn default_template(self) -> (&'static str, &'static str) {
        match self {
            NoticeKind::Hire => ("{connection}: account for {worker_name}", "{user_name} is ready on {connection} ({role}). {reason}"),
            NoticeKind::Change => ("{connection}: {worker_name} changed", "{user_name} on {connection} was updated: {changes}. {reason}"),
            NoticeKind::Leave => ("{connection}: {worker_name} deactivated", "{user_name} on {connection} was deactivated: {reason}"),
            NoticeKind::Rehire => ("{connection}: {worker_name} reactivated", "{user_name} on {connection} was reactivated: {reason}"),
            NoticeKind::Failure => ("{connection}: could not update {worker_name}", "Worker {worker} on {connection} failed: {error}. It is tried again next run."),
            NoticeKind::DeadLetter => ("{connection}: {worker_name} set aside", "Worker {worker} on {connection} failed run after run and is set aside: {error}. See `tenure dead-letters list`."),
            NoticeKind::Review => ("{connection}: {worker_name} waits for approval", "{stage} of worker {worker} on {connection} waits for a reviewer: {reason}. See `tenure reviews`."),
            NoticeKind::Held => ("{connection}: worker {worker} held", "Worker {worker} {worker_name} on {connection} is held until the HR data changes: {reason}. See `tenure reviews`."),
            NoticeKind::BreakGlass => ("tenure: break-glass {stage} by {actor}", "{actor} used --break-glass on the local store to {stage}: {reason}. See `tenure audit --action break_glass`."),
            NoticeKind::GuardRefused => ("{connection}: the {stage} held {count} {holds}", "The {stage} held {count} {holds} of a run on {connection}: {reason}. The rest of the run went on; these wait until a person confirms the number {count}, if it is right: {confirm}"),
            NoticeKind::HrQuarantined => ("tenure: {count} HR row(s) quarantined", "{count} row(s) of {stage} were quarantined, not taken: {reason}. Their workers are held until the HR data is fixed: see `tenure hr loads` and `tenure reviews`."),
            NoticeKind::HrRefused => ("tenure: HR data refused", "{stage} was refused whole and nothing of it was taken: {reason}"),
            NoticeKind::HrQuiet => ("tenure: no HR data for {count} hour(s)", "No HR data has arrived for {count} hour(s): {reason}. Hires, changes and leavers wait until it does; check the HR system's export and its schedule."),
            NoticeKind::SchedulerBehind => ("tenure: the scheduler is behind", "{reason}: scheduled runs come later than planned."),
            NoticeKind::SchedulerStopped => ("tenure: the scheduler has stopped", "{reason}: no scheduled run happens until it turns again. Look at the `tenure serve` process and its log."),
            NoticeKind::NoticeUndeliverable => ("tenure: notices to {stage} were not delivered", "{count} notice(s) to the notifier {stage} could not be delivered: {error}. Until it is mended, its people hear nothing from tenure."),
        }
    }
}

/// The placeholders a template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "event",
    "connection",
    "worker",
    "worker_name",
    "user_name",
    "role",
    "reason",
    "stage",
    "changes",
    "error",
    "run_id",
    "at",
    "actor",
    "count",
    "holds",
    "confirm",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// `smtp://host:port` (STARTTLS when offered is not assumed: add `?tls=required`), or
    /// `smtps://host:port`; lettre's URL form.
    pub smtp: String,
    pub from: String,
    pub to: Vec<String>,
    /// SMTP login; the password is set with `tenure notify secret NAME --file F`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    pub name: String,
    /// POSTed JSON, signed with the secret from `tenure notify secret NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailSettings>,
    /// Events to send; every kind when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on: Vec<NoticeKind>,
    /// Connections to report on; every one when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<String>,
    /// At most this many notices per run; past it, one notice counts the rest.
    #[serde(default = "max_per_run")]
    pub max_per_run: usize,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub templates: BTreeMap<NoticeKind, Template>,
    /// The webhook or SMTP relay may be on a private address (an internal receiver); by
    /// default only public addresses and this machine are called.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_private: bool,
}

impl NotifySettings {
    /// The address policy of this notifier's outbound calls.
    pub fn policy(&self) -> scim_client::UrlPolicy {
        scim_client::UrlPolicy { allow_insecure_http: false, allow_private: self.allow_private }
    }
}

fn max_per_run() -> usize {
    100
}

impl NotifySettings {
    /// Whether it sends this kind about this connection; a notice about no connection (HR
    /// data, the scheduler, another notifier) goes to every notifier that wants its kind.
    pub fn wants(&self, kind: NoticeKind, connection: &str) -> bool {
        (self.on.is_empty() || self.on.contains(&kind))
            && (connection.is_empty()
                || self.connections.is_empty()
                || self.connections.iter().any(|c| c == connection))
    }

    /// The subject and body templates for a kind: the configured ones over the built-in.
    pub fn template(&self, kind: NoticeKind) -> (String, String) {
        let (s, b) = kind.default_template();
        let t = self.templates.get(&kind);
        (
            t.and_then(|t| t.subject.clone()).unwrap_or_else(|| s.to_string()),
            t.and_then(|t| t.body.clone()).unwrap_or_else(|| b.to_string()),
        )
    }
}

/// Checks a template: `{name}` placeholders must be known, `{{` and `}}` are literal braces.
pub fn check_template(text: &str) -> Result<(), String> {
    // Columns count characters, as an editor shows them.
    let col = |i: usize| text[..i].chars().count() + 1;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|p| p.1) == Some('{') => {
                chars.next();
            }
            '}' if chars.peek().map(|p| p.1) == Some('}') => {
                chars.next();
            }
            '{' => {
                let rest = &text[i + 1..];
                let end = rest.find('}').ok_or_else(|| format!("column {}: a {{ without its }}", col(i)))?;
                let name = &rest[..end];
                if !PLACEHOLDERS.contains(&name) {
                    return Err(format!(
                        "column {}: unknown placeholder {{{name}}}; the placeholders are: {}",
                        col(i),
                        PLACEHOLDERS.join(", ")
                    ));
                }
                for _ in 0..name.chars().count() + 1 {
                    chars.next();
                }
            }
            '}' => return Err(format!("column {}: a }} without its {{ (write }}}} for a brace)", col(i))),
            _ => {}
        }
    }
    Ok(())
}

/// Fills a checked template.
pub fn render(text: &str, value: &dyn Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let c = rest.as_bytes()[i];
        let after = &rest[i + 1..];
        if after.as_bytes().first() == Some(&c) {
            out.push(c as char);
            rest = &after[1..];
        } else if c == b'{' {
            let end = after.find('}').unwrap_or(after.len());
            out.push_str(&value(&after[..end]));
            rest = after.get(end + 1..).unwrap_or("");
        } else {
            out.push('}');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Every problem of the notification settings, each saying where.
pub fn check(settings: &[NotifySettings], connections: &[String]) -> Vec<String> {
    let mut errors = vec![];
    let mut names = std::collections::HashSet::new();
    for (i, n) in settings.iter().enumerate() {
        let at = format!("notify[{i}] ({:?})", n.name);
        if n.name.trim().is_empty() {
            errors.push(format!("{at}: the name is empty"));
        }
        if !names.insert(n.name.clone()) {
            errors.push(format!("{at}: a second notifier named {:?}", n.name));
        }
        match (&n.webhook, &n.email) {
            (None, None) | (Some(_), Some(_)) => errors.push(format!("{at}: give either webhook or email")),
            (Some(u), None) => match webhook_url(u, n.policy()) {
                Ok(()) => {}
                Err(e) => errors.push(format!("{at}.webhook: {e}")),
            },
            (None, Some(e)) => {
                if let Err(why) = smtp_url(e, n.policy()) {
                    errors.push(format!("{at}.email.smtp: {why}"));
                }
                for a in std::iter::once(&e.from).chain(&e.to) {
                    if !plausible_address(a) {
                        errors.push(format!("{at}.email: {a:?} is not an e-mail address"));
                    }
                }
                if e.to.is_empty() {
                    errors.push(format!("{at}.email.to: no recipient"));
                }
            }
        }
        for c in &n.connections {
            if !connections.contains(c) {
                errors.push(format!("{at}.connections: no connection named {c:?}"));
            }
        }
        if n.max_per_run == 0 {
            errors.push(format!("{at}.max_per_run: at least 1"));
        }
        for (kind, t) in &n.templates {
            for (part, text) in [("subject", &t.subject), ("body", &t.body)] {
                if let Some(text) = text {
                    if let Err(e) = check_template(text) {
                        errors.push(format!("{at}.templates.{}.{part}: {e}", kind.as_str()));
                    }
                }
            }
        }
    }
    errors
}

/// A webhook URL under the notifier's address policy (the one every outbound call uses).
pub fn webhook_url(u: &str, policy: scim_client::UrlPolicy) -> Result<(), String> {
    let url = scim_client::outbound::parse_url(u)?;
    scim_client::outbound::check_url(&url, policy).map_err(|e| format!("{u:?}: {e}"))
}

/// An SMTP relay URL: smtp:// or smtps://, a host under the address policy, and a login only
/// over TLS (smtps://, or smtp:// with `?tls=required` for STARTTLS).
pub fn smtp_url(e: &EmailSettings, policy: scim_client::UrlPolicy) -> Result<(), String> {
    let u = &e.smtp;
    let url = scim_client::outbound::parse_url(u)?;
    // One `tls` at most: the mail library reads the first, so `?tls=opportunistic&tls=required`
    // must not pass for required.
    let tls_values: Vec<String> = url.query_pairs().filter(|(k, _)| k == "tls").map(|(_, v)| v.into_owned()).collect();
    if tls_values.len() > 1 {
        return Err(format!("{u:?}: `tls` is given {} times; give it once", tls_values.len()));
    }
    let tls = match url.scheme() {
        "smtps" => true,
        "smtp" => tls_values.first().is_some_and(|v| v == "required"),
        _ => return Err(format!("smtp://host:port or smtps://host:port, not {u:?}")),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{u:?}: the login goes in `username` and `tenure notify secret`, not in the URL"));
    }
    if e.username.is_some() && !tls {
        return Err(format!(
            "{u:?}: an SMTP password is sent only over TLS: use smtps://, or smtp://...?tls=required for STARTTLS"
        ));
    }
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        scim_client::outbound::check_address(ip, policy).map_err(|why| format!("{u:?} points at {why}"))?;
    }
    Ok(())
}

fn plausible_address(a: &str) -> bool {
    let Some((local, domain)) = a.rsplit_once('@') else { return false };
    !local.is_empty() && !domain.is_empty() && !a.contains(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_checked_and_filled() {
        assert!(check_template("Hello {worker_name} {{literal}}").is_ok());
        let e = check_template("Hi {wroker}").unwrap_err();
        assert!(e.contains("column 4") && e.contains("{wroker}") && e.contains("worker_name"), "{e}");
        assert!(check_template("open {worker").unwrap_err().contains("without its }"));
        assert!(check_template("stray } here").unwrap_err().contains("column 7"));
        assert!(check_template("Zoë {x}").unwrap_err().contains("column 5"), "characters, not bytes");
        let v = |k: &str| if k == "worker_name" { "Zoë Ñúñez".to_string() } else { format!("<{k}>") };
        assert_eq!(render("Hi {worker_name} {{x}} on {connection}", &v), "Hi Zoë Ñúñez {x} on <connection>");
        for k in NoticeKind::ALL {
            let (s, b) = k.default_template();
            check_template(s).unwrap();
            check_template(b).unwrap();
        }
    }

    #[test]
    fn an_smtp_login_goes_only_over_tls() {
        let e = |smtp: &str| EmailSettings {
            smtp: smtp.into(),
            from: "t@acme.example".into(),
            to: vec!["it@acme.example".into()],
            username: Some("relay-user".into()),
        };
        let p = scim_client::UrlPolicy::default();
        assert!(smtp_url(&e("smtps://mail.acme.example:465"), p).is_ok());
        assert!(smtp_url(&e("smtp://mail.acme.example:587?tls=required"), p).is_ok());
        assert!(smtp_url(&e("smtp://mail.acme.example:587"), p).is_err());
        // The mail library reads the first `tls`: a second cannot make it look required.
        let twice = smtp_url(&e("smtp://mail.acme.example:587?tls=opportunistic&tls=required"), p).unwrap_err();
        assert!(twice.contains("given 2 times"), "{twice}");
    }
}
