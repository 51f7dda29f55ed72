//! Notices of a run: lifecycle events done, failures, dead letters and reviews opened, sent to
//! signed webhooks and by e-mail (SMTP, through lettre) from editable templates. Delivery
//! never fails a run: a notice that cannot be sent is reported and the run goes on.

use crate::error::{Error, Result};
use crate::secrets;
use engine::{Action, Plan};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rules::notify::{render, NoticeKind, NotifySettings};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use store::{MasterKey, Secret, Store};

pub const SECRET_CONTEXT: &str = "notify-secret";

/// How long each notice may take to deliver, retries included.
const DELIVERY_TIME_PER_NOTICE: Duration = Duration::from_secs(15);

pub fn secret_setting(name: &str) -> String {
    format!("notify_secret:{name}")
}

/// A notice about nobody, marked as a test in every field a template may show.
fn test_notice(kind: NoticeKind, connection: &str) -> Notice {
    let failing = matches!(kind, NoticeKind::Failure | NoticeKind::DeadLetter);
    Notice {
        kind: Some(kind),
        connection: connection.to_string(),
        worker: "test".into(),
        worker_name: "Test Worker".into(),
        user_name: "test.worker@example.invalid".into(),
        role: "(test)".into(),
        reason: "a test notice from `tenure notify test`; no account was touched".into(),
        stage: kind.as_str().into(),
        changes: String::new(),
        error: if failing { "(test) nothing failed: this is a test notice".into() } else { String::new() },
        run_id: "test".into(),
        at: jiff::Timestamp::now().to_string(),
        actor: "(test)".into(),
        count: if matches!(
            kind,
            NoticeKind::GuardRefused
                | NoticeKind::HrQuarantined
                | NoticeKind::HrQuiet
                | NoticeKind::NoticeUndeliverable
        ) {
            "0".into()
        } else {
            String::new()
        },
        holds: if kind == NoticeKind::GuardRefused { "deactivations".into() } else { String::new() },
        confirm: if kind == NoticeKind::GuardRefused { "(test) nothing to confirm".into() } else { String::new() },
    }
}

/// One thing to tell.
#[derive(Debug, Clone, Default)]
pub struct Notice {
    pub kind: Option<NoticeKind>,
    pub connection: String,
    pub worker: String,
    pub worker_name: String,
    pub user_name: String,
    pub role: String,
    pub reason: String,
    pub stage: String,
    pub changes: String,
    pub error: String,
    pub run_id: String,
    pub at: String,
    /// Who acted, for a notice about a person's act (break-glass).
    pub actor: String,
    /// How many a guard held, of what, and the command that confirms them.
    pub count: String,
    pub holds: String,
    pub confirm: String,
}

impl Notice {
    fn value(&self, key: &str) -> String {
        match key {
            "event" => self.kind.map(|k| k.as_str().to_string()).unwrap_or_default(),
            "connection" => self.connection.clone(),
            "count" => self.count.clone(),
            "confirm" => self.confirm.clone(),
            "holds" => self.holds.clone(),
            "worker" => self.worker.clone(),
            "worker_name" => self.worker_name.clone(),
            "user_name" => self.user_name.clone(),
            "role" => self.role.clone(),
            "reason" => self.reason.clone(),
            "stage" => self.stage.clone(),
            "changes" => self.changes.clone(),
            "error" => self.error.clone(),
            "run_id" => self.run_id.clone(),
            "at" => self.at.clone(),
            "actor" => self.actor.clone(),
            _ => String::new(),
        }
    }
}

fn changes_text(acts: &[&Action]) -> String {
    let mut parts = vec![];
    for a in acts {
        for c in &a.changes {
            parts.push(format!("{}: {} -> {}", c.attribute, c.before, c.after));
        }
        if let Some(t) = &a.team {
            let sign = if a.kind == engine::Kind::TeamRemove { "-" } else { "+" };
            parts.push(format!("team {sign}{t}"));
        }
    }
    parts.join("; ")
}

/// The notices of an applied run.
pub struct RunFacts<'a> {
    pub plan: &'a Plan,
    pub names: &'a HashMap<String, String>,
    pub failures: &'a std::collections::BTreeMap<String, String>,
    pub newly_dead: &'a [String],
    /// (worker, stage, reason) of reviews opened by this run.
    pub opened: Vec<(String, String, String)>,
    /// (worker, why) of workers this run found held that were not held before.
    pub newly_held: Vec<(String, String)>,
    pub run_id: &'a str,
}

pub fn notices(f: &RunFacts) -> Vec<Notice> {
    let at = jiff::Timestamp::now().to_string();
    let mut by_worker: Vec<(&str, Vec<&Action>)> = vec![];
    let mut index: HashMap<&str, usize> = HashMap::new();
    for a in f.plan.actions.iter().filter(|a| a.kind.acts()) {
        let i = *index.entry(a.worker.as_str()).or_insert_with(|| {
            by_worker.push((a.worker.as_str(), vec![]));
            by_worker.len() - 1
        });
        by_worker[i].1.push(a);
    }
    let base = |worker: &str, first: Option<&Action>| Notice {
        connection: f.plan.connection.clone(),
        worker: worker.to_string(),
        worker_name: f.names.get(worker).cloned().unwrap_or_default(),
        user_name: first.and_then(|a| a.user_name.clone()).unwrap_or_default(),
        role: first.and_then(|a| a.role.clone()).unwrap_or_default(),
        reason: first.map(|a| a.reason.clone()).unwrap_or_default(),
        run_id: f.run_id.to_string(),
        at: at.clone(),
        ..Notice::default()
    };
    let mut out = vec![];
    for (w, acts) in &by_worker {
        let stage = engine::review::stage_of(acts);
        let mut n = base(w, acts.first().copied());
        n.stage = stage.as_str().into();
        n.changes = changes_text(acts);
        match f.failures.get(*w) {
            Some(e) => {
                n.error = e.clone();
                out.push(Notice { kind: Some(NoticeKind::Failure), ..n.clone() });
                if f.newly_dead.iter().any(|d| d == w) {
                    out.push(Notice { kind: Some(NoticeKind::DeadLetter), ..n });
                }
            }
            None => {
                let kind = match stage {
                    rules::Stage::Hire => NoticeKind::Hire,
                    rules::Stage::Change | rules::Stage::AttributeChange | rules::Stage::TeamChange => {
                        NoticeKind::Change
                    }
                    rules::Stage::Leave | rules::Stage::Termination | rules::Stage::LeaveOfAbsence => NoticeKind::Leave,
                    rules::Stage::Rehire => NoticeKind::Rehire,
                };
                out.push(Notice { kind: Some(kind), ..n });
            }
        }
    }
    for (w, stage, reason) in &f.opened {
        let mut n = base(w, None);
        n.kind = Some(NoticeKind::Review);
        n.stage = stage.clone();
        n.reason = reason.clone();
        out.push(n);
    }
    for (w, reason) in &f.newly_held {
        let mut n = base(w, None);
        n.kind = Some(NoticeKind::Held);
        n.reason = reason.strip_prefix("held: ").unwrap_or(reason).to_string();
        out.push(n);
    }
    out
}

/// Where a notifier's secret may go: its webhook's server or its SMTP relay.
pub fn destination(n: &NotifySettings) -> String {
    match (&n.webhook, &n.email) {
        (Some(url), _) => secrets::destination(&[url]),
        (None, Some(e)) => secrets::destination(&[&e.smtp]),
        (None, None) => String::new(),
    }
}

/// Sends the notices each notifier wants; returns one line per problem. A notifier that
/// could not deliver is told through the others (`notice_undeliverable`), once: what they
/// cannot deliver of that is only logged and counted.
pub async fn deliver(store: &Store, key: &MasterKey, settings: &[NotifySettings], notices: &[Notice]) -> Vec<String> {
    let (mut problems, failed) = deliver_once(store, key, settings, notices).await;
    let others: Vec<NotifySettings> =
        settings.iter().filter(|n| !failed.iter().any(|f| f.0 == n.name)).cloned().collect();
    if !failed.is_empty() && !others.is_empty() {
        let at = jiff::Timestamp::now().to_string();
        let told: Vec<Notice> = failed
            .into_iter()
            .map(|(name, error, count)| Notice {
                kind: Some(NoticeKind::NoticeUndeliverable),
                stage: name,
                error: without_addresses(&error),
                count: count.to_string(),
                at: at.clone(),
                ..Default::default()
            })
            .collect();
        problems.extend(deliver_once(store, key, &others, &told).await.0);
    }
    problems
}

/// An error as told to other notifiers: any address in it (a webhook's URL may carry a token
/// in its path) is left out; the whole error is in tenure's log.
fn without_addresses(error: &str) -> String {
    error.split_whitespace().map(|w| if w.contains("://") { "<address>" } else { w }).collect::<Vec<_>>().join(" ")
}

/// One delivery: the problems in words, and each notifier that failed with why and how many
/// notices it held.
async fn deliver_once(
    store: &Store,
    key: &MasterKey,
    settings: &[NotifySettings],
    notices: &[Notice],
) -> (Vec<String>, Vec<(String, String, usize)>) {
    let mut problems = vec![];
    let mut failed = vec![];
    // Every notice carries the audit chain's head as it stands: kept by whoever receives it,
    // it proves later that nothing was cut off the end of the chain.
    let head = match store.audit_head().await {
        Ok(h) => h.map(|(seq, hash)| json!({"seq": seq, "hash": hash})),
        Err(e) => {
            problems.push(format!("the audit head: {e}"));
            None
        }
    };
    for n in settings {
        let wanted: Vec<&Notice> =
            notices.iter().filter(|x| x.kind.is_some_and(|k| n.wants(k, &x.connection))).collect();
        if wanted.is_empty() {
            continue;
        }
        let secret =
            match secrets::load_named_secret(store, key, &secret_setting(&n.name), SECRET_CONTEXT, &destination(n))
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    crate::metrics::add("tenure_notices_failed_total", &[("notifier", &n.name)], wanted.len() as f64);
                    problems.push(format!("notify {:?}: {e}", n.name));
                    failed.push((n.name.clone(), e.to_string(), wanted.len()));
                    continue;
                }
            };
        let (send, more) = wanted.split_at(wanted.len().min(n.max_per_run));
        let mut messages: Vec<(Value, String, String)> = send
            .iter()
            .map(|x| {
                let kind = x.kind.expect("filtered");
                let (s, b) = n.template(kind);
                let (subject, text) = (render(&s, &|k| x.value(k)), render(&b, &|k| x.value(k)));
                let doc = json!({"event": kind.as_str(), "connection": x.connection, "worker": x.worker,
                    "worker_name": x.worker_name, "user_name": x.user_name, "role": x.role, "reason": x.reason,
                    "stage": x.stage, "changes": x.changes, "error": x.error, "run_id": x.run_id, "at": x.at,
                    "subject": subject, "text": text, "audit_head": head});
                let mut doc = doc;
                if !x.count.is_empty() {
                    doc["count"] = json!(x.count.parse::<u64>().ok());
                }
                if !x.confirm.is_empty() {
                    doc["confirm"] = json!(x.confirm);
                    doc["holds"] = json!(x.holds);
                }
                (doc, subject, text)
            })
            .collect();
        if !more.is_empty() {
            let subject = format!("tenure: {} more notices in this run", more.len());
            let text = format!(
                "{} more notices than the {} this notifier sends per run; see `tenure audit` for all of them.",
                more.len(),
                n.max_per_run
            );
            messages.push((
                json!({"event": "more", "count": more.len(), "subject": subject, "text": text, "audit_head": head}),
                subject,
                text,
            ));
        }
        let send = async {
            match (&n.webhook, &n.email) {
                (Some(url), _) => match &secret {
                    None => Err(Error::refused(format!("no signing secret yet: `tenure notify secret {}`", n.name))),
                    Some(s) => webhook(url, n.policy(), s, &messages).await,
                },
                (None, Some(e)) => email(e, n.policy(), secret.as_ref(), &messages).await,
                (None, None) => Ok(()),
            }
        };
        // A receiver that accepts and then says nothing must not hold the run (or the daemon).
        let limit = DELIVERY_TIME_PER_NOTICE * messages.len() as u32;
        let r = tokio::time::timeout(limit, send)
            .await
            .unwrap_or_else(|_| Err(Error::refused(format!("gave up after {} s without an answer", limit.as_secs()))));
        if let Err(e) = r {
            // Never in silence: counted for the monitoring, and said as a warning.
            crate::metrics::add("tenure_notices_failed_total", &[("notifier", &n.name)], messages.len() as f64);
            tracing::warn!(notifier = %n.name, notices = messages.len(), "notices not delivered: {e}");
            problems.push(format!("notify {:?}: {e}", n.name));
            failed.push((n.name.clone(), e.to_string(), messages.len()));
        }
    }
    (problems, failed)
}

async fn webhook(
    url: &str,
    policy: scim_client::UrlPolicy,
    secret: &Secret,
    messages: &[(Value, String, String)],
) -> Result<()> {
    // Checked again here (a configuration saved before the check existed), and the client
    // follows no redirect and connects only to addresses the policy allows.
    rules::notify::webhook_url(url, policy).map_err(Error::refused)?;
    let client = scim_client::outbound::client_builder(policy)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| Error::refused(format!("cannot make an HTTP client: {e}")))?;
    let mut failed = 0;
    let mut last = String::new();
    for (doc, _, _) in messages {
        let body = doc.to_string();
        let mut delay = Duration::from_millis(250);
        for attempt in 1..=3 {
            let ts = jiff::Timestamp::now().as_second();
            let r = client
                .post(url)
                .header("content-type", "application/json")
                .header("x-tenure-event", doc["event"].as_str().unwrap_or_default())
                .header("x-tenure-timestamp", ts.to_string())
                .header("x-tenure-signature", secrets::signature(secret, ts, body.as_bytes()))
                .body(body.clone())
                .send()
                .await;
            let retry = match r {
                Ok(a) if a.status().is_success() => break,
                Ok(a) if a.status().is_redirection() => {
                    let to = a.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or_default();
                    let to = to.split(['?', '#']).next().unwrap_or_default();
                    last = format!(
                        "the webhook answered {}, redirecting to {to:?}: redirects are not followed",
                        a.status()
                    );
                    false
                }
                Ok(a) => {
                    last = format!("the webhook answered {}", a.status());
                    a.status().is_server_error() || a.status().as_u16() == 429
                }
                Err(e) => {
                    last = format!("the webhook cannot be reached: {}", without_url(&e));
                    true
                }
            };
            if !retry || attempt == 3 {
                failed += 1;
                break;
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
    if failed > 0 {
        return Err(Error::refused(format!("{failed} of {} notice(s) not delivered; last: {last}", messages.len())));
    }
    Ok(())
}

/// reqwest's errors name the URL, which may carry a token in its query: leave it out.
fn without_url(e: &reqwest::Error) -> String {
    let mut e = e.to_string();
    if let Some(i) = e.find(" for url") {
        e.truncate(i);
    }
    e
}

async fn email(
    e: &rules::notify::EmailSettings,
    policy: scim_client::UrlPolicy,
    password: Option<&Secret>,
    messages: &[(Value, String, String)],
) -> Result<()> {
    rules::notify::smtp_url(e, policy).map_err(Error::refused)?;
    // The relay's name is resolved and checked as a webhook's is (lettre connects by name).
    if let Some(host) = scim_client::outbound::parse_url(&e.smtp)
        .map_err(Error::input)?
        .host_str()
        .filter(|h| h.parse::<std::net::IpAddr>().is_err())
    {
        let addrs = tokio::net::lookup_host((host, 25))
            .await
            .map_err(|x| Error::unavailable(format!("smtp host {host}: {x}")))?;
        for a in addrs {
            scim_client::outbound::check_address(a.ip(), policy)
                .map_err(|why| Error::refused(format!("smtp host {host} resolves to {why}")))?;
        }
    }
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&e.smtp)
        .map_err(|x| Error::input(format!("smtp {:?}: {x}", e.smtp)))?
        .timeout(Some(Duration::from_secs(20)));
    if let Some(user) = &e.username {
        let pw = password.ok_or_else(|| {
            Error::refused("an SMTP username without a password: `tenure notify secret NAME --file F`")
        })?;
        builder = builder.credentials(Credentials::new(user.clone(), pw.expose().to_string()));
    }
    let transport = builder.build();
    let from: Mailbox = e.from.parse().map_err(|x| Error::input(format!("from {:?}: {x}", e.from)))?;
    let to: Vec<Mailbox> =
        e.to.iter().map(|t| t.parse().map_err(|x| Error::input(format!("to {t:?}: {x}")))).collect::<Result<_>>()?;
    let mut failed = 0;
    let mut last = String::new();
    for (_, subject, text) in messages {
        let mut m = Message::builder().from(from.clone()).subject(subject.clone());
        for t in &to {
            m = m.to(t.clone());
        }
        let msg = m.body(text.clone()).map_err(|x| Error::input(format!("cannot write the message: {x}")))?;
        if let Err(x) = transport.send(msg).await {
            failed += 1;
            last = x.to_string();
        }
    }
    if failed > 0 {
        return Err(Error::refused(format!("{failed} of {} e-mail(s) not sent; last: {last}", messages.len())));
    }
    Ok(())
}

/// Sets a notifier's secret (a webhook's signing secret, an SMTP password), sealed and bound
/// to the notifier's address in the configuration in force, so it is sent nowhere else.
pub async fn set_secret(store: &Store, key: &MasterKey, name: &str, secret: &store::Secret) -> Result<()> {
    let rules = crate::config::current(store).await?;
    let n = rules.config.notify.iter().find(|n| n.name == name).ok_or_else(|| {
        Error::not_found(format!(
            "no notifier {name:?} in the configuration in force: import it first (the secret is bound to its address)"
        ))
    })?;
    secrets::save_named_secret(store, key, &secret_setting(name), SECRET_CONTEXT, &destination(n), secret).await
}

/// The end of a notifier's secret (its last characters), or None when none is set: enough to
/// tell which one is in force, never the secret.
pub async fn secret_hint(store: &Store, key: &MasterKey, n: &NotifySettings) -> Result<Option<String>> {
    let s = secrets::load_named_secret(store, key, &secret_setting(&n.name), SECRET_CONTEXT, &destination(n)).await?;
    Ok(s.map(|s| s.hint()))
}

/// Sends a test notice through a notifier: `Ok(Ok(what was sent))`, or `Ok(Err(why not))`.
pub async fn send_test(
    store: &Store,
    key: &MasterKey,
    name: &str,
    event: Option<&str>,
) -> Result<Result<String, String>> {
    let rules = crate::config::current(store).await?;
    let all = &rules.config.notify;
    let Some(n) = all.iter().find(|n| n.name == name) else {
        let known: Vec<&str> = all.iter().map(|n| n.name.as_str()).collect();
        return Err(if known.is_empty() {
            Error::not_found(format!("no notifier {name:?}: the configuration has no [[notify]] section"))
        } else {
            Error::not_found(format!("no notifier {name:?}; the configuration has: {}", known.join(", ")))
        });
    };
    let kind = match event {
        Some(e) => *NoticeKind::ALL.iter().find(|k| k.as_str() == e).ok_or_else(|| {
            let names: Vec<&str> = NoticeKind::ALL.iter().map(|k| k.as_str()).collect();
            Error::input(format!("unknown event {e:?}; one of: {}", names.join(", ")))
        })?,
        None => n.on.first().copied().unwrap_or(NoticeKind::Hire),
    };
    let connection = n
        .connections
        .first()
        .or_else(|| rules.connections.first().map(|c| &c.name))
        .cloned()
        .unwrap_or_else(|| "(test)".into());
    // Sent whatever the notifier listens to: the test is asked for by name.
    let mut settings = n.clone();
    settings.on.clear();
    settings.connections.clear();
    settings.max_per_run = settings.max_per_run.max(1);
    let how = if n.webhook.is_some() { "webhook" } else { "e-mail" };
    Ok(match deliver(store, key, &[settings], &[test_notice(kind, &connection)]).await.first() {
        None => Ok(format!("sent a test {} notice through {name:?} ({how})", kind.as_str())),
        Some(problem) => Err(problem.clone()),
    })
}
