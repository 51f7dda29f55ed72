//! The command line acting on the store itself rather than through a server: who it is (the
//! operating-system user running it, never a name typed on the line), and the break-glass rule
//! on a store whose people sign in as platform users.

use crate::error::{Error, Result};
use store::{MasterKey, Store};

/// The operating-system user running this process, from the process's own user id: its name
/// in /etc/passwd, else `uid:N` (a container's arbitrary uid). Never the environment's USER,
/// which anyone sets: only where the process's id cannot be read (not Linux) does USER or
/// LOGNAME stand in.
pub fn os_user() -> String {
    let Some(uid) = own_uid() else {
        return std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| "unknown".into());
    };
    name_of(&uid).unwrap_or_else(|| format!("uid:{uid}"))
}

fn own_uid() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    Some(status.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().next()?.to_string())
}

fn name_of(uid: &str) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[2] == uid && !f[0].is_empty()).then(|| f[0].to_string())
    })
}

/// The command line's actor as the audit and the history name it: `os:NAME`.
pub fn actor() -> String {
    format!("os:{}", os_user())
}

/// Who decides from the local command line, once the break-glass rule has let them.
#[derive(Debug, Clone)]
pub struct LocalActor {
    /// As the audit names it: `os:NAME`, with "(break-glass)" when it was used.
    pub actor: String,
    /// The person maker-checker compares with who set a review in motion: the OS user on a
    /// store with platform users; none on a store without (anyone who can open it is its
    /// administrator, so four eyes cannot hold there: `note` says so).
    pub person: Option<String>,
    /// Problems delivering the break-glass notice (the decision stands; they are said).
    pub warnings: Vec<String>,
    /// What the person should know.
    pub note: Option<String>,
}

/// The rule for a decision (`what`: "approve reviews", "confirm the guard", ...) taken from the
/// command line on the store itself. On a store with platform users it is refused unless
/// `break_glass` gives a reason; then it is audited as such and sent as a notice.
pub async fn decide(
    store: &Store,
    key: Option<&MasterKey>,
    what: &str,
    break_glass: Option<&str>,
) -> Result<LocalActor> {
    let reason = match break_glass.map(str::trim) {
        Some("") => return Err(Error::input("--break-glass needs a reason: why this cannot wait for a platform user")),
        r => r,
    };
    let has_users = !store.users().await?.is_empty();
    let me = actor();
    if !has_users {
        return Ok(LocalActor {
            actor: me.clone(),
            person: None,
            warnings: vec![],
            note: Some(format!(
                "this store has no platform users: {me} decides, and the four-eyes rule holds between platform \
                 users only (tenure user add)"
            )),
        });
    }
    let Some(reason) = reason else {
        return Err(Error::refused(format!(
            "refused: to {what} from the command line on the store itself, this store's platform users act as \
             themselves: use the console, the API, or the command line with --server URL and TENURE_TOKEN. In an \
             emergency, --break-glass \"reason\" lets {me} do it; it is audited and sent as a notice"
        )));
    };
    let actor = format!("{me} (break-glass)");
    let detail = serde_json::json!({"what": what, "reason": reason, "os_user": os_user()});
    crate::decisions::record_one(store, "break_glass", "", &actor, detail).await?;
    let mut warnings = vec![];
    match (crate::config::current(store).await, key) {
        (Ok(rules), Some(key)) if !rules.config.notify.is_empty() => {
            let n = crate::notify::Notice {
                kind: Some(rules::notify::NoticeKind::BreakGlass),
                stage: what.to_string(),
                reason: reason.to_string(),
                actor: me.clone(),
                at: jiff::Timestamp::now().to_string(),
                ..Default::default()
            };
            warnings = crate::notify::deliver(store, key, &rules.config.notify, &[n]).await;
        }
        (Ok(rules), None) if !rules.config.notify.is_empty() => {
            warnings.push("the break-glass notice was not sent: no master key to read the notifiers' secrets".into())
        }
        _ => {}
    }
    Ok(LocalActor { actor, person: Some(me), warnings, note: None })
}

/// Whether two recorded identities are one person: `user:ed` who signed in and `os:ed` at the
/// command line are taken as the same (refusing a self-approval wrongly is the safe mistake).
pub fn same_person(a: &str, b: &str) -> bool {
    fn bare(s: &str) -> &str {
        let s = s.trim();
        let s = s.strip_suffix(" (break-glass)").unwrap_or(s);
        s.strip_prefix("user:").or_else(|| s.strip_prefix("os:")).unwrap_or(s)
    }
    !bare(a).is_empty() && bare(a).eq_ignore_ascii_case(bare(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_platform_user_and_the_os_user_of_one_name_are_one_person() {
        assert!(same_person("user:ed", "os:ed"));
        assert!(same_person("os:Ed (break-glass)", "user:ed"));
        assert!(!same_person("user:ed", "user:edna"));
        assert!(!same_person("", ""));
        assert!(!same_person("hr inbox", "user:inbox"));
    }

    #[test]
    fn the_os_user_is_read_from_the_process_not_typed() {
        assert!(actor().starts_with("os:"));
        assert!(!os_user().is_empty());
    }
}
