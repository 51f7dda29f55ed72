//! `tenure run`: the daemon. Reconciles every configured connection on a schedule, at once
//! after a pushed HR change, and at the moment a future-dated event (a termination at the end
//! of someone's last day) takes effect. SIGTERM or Ctrl-C lets the run in progress finish
//! (its actions are journaled either way) and then stops.

use crate::config_cmd;
use crate::intake::Intake;
use crate::{inbox, pull, push, sync};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use store::{EventQuery, MasterKey};
use tokio::sync::Notify;

async fn stop_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

pub async fn run(
    data_dir: &Path,
    database_url: Option<&str>,
    interval: Duration,
    listen_hr: Option<SocketAddr>,
    rehearse_from: Option<jiff::Timestamp>,
    confirm_production: Vec<String>,
    serve: Option<(crate::serve::Listen, crate::serve::Options)>,
) -> Result<u8, String> {
    // A daemon outlives whoever reads its output, and each of its lines says when.
    crate::output::keep_going_when_closed();
    crate::output::stamp_lines();
    // A rehearsal runs the daemon's clock from another moment, in real time from there.
    let offset = rehearse_from.map(|t| t.duration_since(jiff::Timestamp::now())).unwrap_or_default();
    let clock = move || jiff::Timestamp::now() + offset;
    if let Some(t) = rehearse_from {
        outln!("tenure run: rehearsal: the clock starts at {t}");
    }
    let store = config_cmd::open(data_dir, database_url).await?;
    let key = Arc::new(MasterKey::load(data_dir)?);
    // The service starts before any configuration (it arrives through the API); the daemon
    // needs one.
    let rules = match serve {
        Some(_) => config_cmd::current_if_any(&store).await?,
        None => Some(config_cmd::current(&store).await?),
    };
    let hr_settings = rules.as_ref().map(|r| r.config.hr.clone()).unwrap_or_default();
    let wake = Arc::new(Notify::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut server = None;
    // `tenure run --listen-hr ADDR` (plain http, push only) or `tenure serve` (one address:
    // push, probes, TLS when given).
    let (serve, options) = serve.unzip();
    let listen = match (serve, listen_hr) {
        (Some(l), _) => Some((l, true)),
        (None, Some(addr)) => Some((crate::serve::Listen { addr, tls: None, insecure_http: true }, false)),
        (None, None) => None,
    };
    let health = crate::serve::Health::new(store.clone());
    if let Some((listen, full)) = listen {
        listen.check()?;
        let push_store = config_cmd::open(data_dir, database_url).await?;
        if !full {
            // `tenure run --listen-hr` exists to take pushes: say at once when it cannot.
            push::load_secret(&push_store, &key).await?;
        }
        // The secret and the HR settings are read at each push: set or rotated while the
        // service runs, they take effect at once.
        let state = Arc::new(push::PushState {
            store: push_store,
            key: key.clone(),
            fixed: None,
            data_dir: data_dir.to_path_buf(),
            gate: tokio::sync::Mutex::new(()),
            wake: Some(wake.clone()),
        });
        let mut app = axum::Router::new().merge(push::router(state));
        if full {
            app = app.merge(crate::serve::health_router(health.clone()));
            let api_store = config_cmd::open(data_dir, database_url).await?;
            let mut api = crate::api::Api::new(
                api_store,
                key.clone(),
                data_dir.to_path_buf(),
                wake.clone(),
                listen.tls.is_some(),
            );
            api.interval = interval;
            if let Some(o) = &options {
                api.sessions = o.sessions;
                api.metrics_allow = o.metrics_allow.clone();
                api.trusted_proxies = o.trusted_proxies.clone();
            }
            app = app.merge(crate::api::router(Arc::new(api)));
            // The first start: an Admin to log in with, its one-time password said once.
            if let Some(p) = crate::users::first_admin(&store).await? {
                let detail = serde_json::json!({"user": "admin", "role": "admin", "one_time_password": true});
                crate::decisions::record_one(&store, "first_admin", "", "tenure serve (first start)", detail).await?;
                outln!(
                    "tenure serve: first start: user \"admin\" (admin) with the one-time password {} (shown once; \
                     it must be changed at the first login, or set with `tenure user reset-password admin`)",
                    p.expose()
                );
            }
        }
        // Every error, whichever layer answers it, is a problem document; outsized requests
        // are refused before any route.
        let app = app
            .layer(axum::middleware::map_response(crate::api::problem::as_problem))
            .layer(axum::middleware::from_fn(crate::api::problem::limits));
        let (bound, task) = crate::serve::serve(&listen, app, stop_rx.clone()).await?;
        let scheme = if listen.tls.is_some() { "https" } else { "http" };
        if full {
            outln!("tenure serve: listening on {scheme}://{bound} (POST /hr/v1/push, GET /healthz, GET /readyz)");
        } else {
            outln!("tenure run: HR push endpoint on {scheme}://{bound}/hr/v1/push");
        }
        server = Some(task);
    }
    let watcher = watch_sources(
        store.clone(),
        key.clone(),
        data_dir.to_path_buf(),
        &hr_settings,
        wake.clone(),
        stop_rx.clone(),
        health.clone(),
    )?;
    match &rules {
        _ if interval.is_zero() => {
            outln!("tenure serve: no scheduled runs (--interval 0): runs start through the API or `tenure apply`")
        }
        Some(r) => {
            outln!("tenure run: reconciling {} connection(s) every {} s", r.connections.len(), interval.as_secs())
        }
        None => outln!("tenure serve: no configuration yet: the scheduler waits for one (PUT /api/v1/config)"),
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let stopping = tokio::spawn(async move {
        stop_signal().await;
        let _ = stop_tx.send(true);
    });
    let mut stop = stop_rx;
    let mut said = String::new();
    loop {
        if interval.is_zero() {
            // No schedule: the watcher still takes HR data; runs are started by people.
            let _ = stop.changed().await;
            break;
        }
        // The configuration in force at each turn: a change through the API or the CLI needs
        // no restart.
        let names: Vec<String> = match config_cmd::current_if_any(&store).await {
            Ok(r) => r.iter().flat_map(|r| &r.connections).map(|c| c.name.clone()).collect(),
            Err(e) => {
                if e != said {
                    outln!("tenure run: the configuration: {e}");
                }
                said = e;
                vec![]
            }
        };
        for name in &names {
            // A refusal (the guard) or a failure is reported and retried next time; the daemon goes on.
            let as_of = rehearse_from.map(|_| clock());
            let opts = sync::ApplyOptions {
                as_of,
                output: sync::Output::Quiet,
                yes: true,
                confirm_production: confirm_production.contains(name).then(|| name.clone()),
                wait: Some(&mut stop),
                ..sync::ApplyOptions::new(Some(name.clone()))
            };
            match sync::apply_cmd(&store, &key, opts).await {
                Ok(3) => outln!(
                    "tenure run: {:?}: the mass-deprovision guard stopped this run; confirm with `tenure apply`",
                    name
                ),
                Ok(_) => {}
                Err(e) => outln!("tenure run: {:?}: {e}", name),
            }
        }
        let _ = std::io::stdout().flush();
        if *stop.borrow() {
            break;
        }
        // Sleep until the schedule, a push, or the next future event's moment.
        let now = clock().as_second();
        let next_event = store
            .events(&EventQuery { state: Some("pending".into()), ..Default::default() })
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|e| e.effective_at)
            .filter(|t| *t > now)
            .min();
        let mut wait = interval;
        if let Some(t) = next_event {
            wait = wait.min(Duration::from_secs((t - now) as u64));
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wake.notified() => {}
            _ = stop.changed() => break,
        }
    }
    outln!("tenure run: stopped");
    stopping.abort();
    let _ = watcher.await;
    if let Some(s) = server {
        let _ = s.await;
    }
    store.close().await;
    Ok(0)
}

/// How often the watcher looks at the inbox, the pull's schedule and the loads of other
/// processes: a file dropped is taken within two looks (it must be seen whole first).
const LOOK: Duration = Duration::from_millis(250);

/// Watches where HR data arrives: the inbox folder, the pull's schedule, and loads recorded
/// by any other process (`tenure hr load`, another node's push). Any of them wakes the
/// reconcile loop at once. The `[hr]` settings are read again whenever a new configuration is
/// saved: a changed inbox, pull or header definition needs no restart.
fn watch_sources(
    store: store::Store,
    key: Arc<MasterKey>,
    data_dir: std::path::PathBuf,
    hr: &rules::HrSettings,
    wake: Arc<Notify>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    health: crate::serve::Health,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let mut intake = Intake::from_settings(hr)?;
    let mut hr = hr.clone();
    say_sources(&hr);
    Ok(tokio::spawn(async move {
        let mut inbox = inbox::Inbox::default();
        let mut mark = store.loads_mark().await.ok();
        let mut version = store.current_config().await.ok().flatten().map(|v| v.id);
        // The same failure is said once, not four times a second.
        let mut last_error: Option<String> = None;
        let mut say = |r: Result<(), String>| match r {
            Err(e) if last_error.as_ref() != Some(&e) => {
                outln!("tenure run: {e}");
                last_error = Some(e);
            }
            Err(_) => {}
            Ok(()) => last_error = None,
        };
        loop {
            health.beat();
            if let Ok(Some(v)) = store.current_config().await {
                if version.as_deref() != Some(v.id.as_str()) {
                    version = Some(v.id);
                    let fresh = config_cmd::current_if_any(&store).await.and_then(|r| {
                        let h = r.map(|r| r.config.hr).unwrap_or_default();
                        Intake::from_settings(&h).map(|i| (h, i))
                    });
                    match fresh {
                        Ok((h, i)) => {
                            if h != hr {
                                say_sources(&h);
                            }
                            (hr, intake) = (h, i);
                        }
                        Err(e) => say(Err(format!("the new configuration's [hr]: {e}; the last one stays in force"))),
                    }
                }
            }
            if let Some(settings) = &hr.inbox {
                match inbox.sweep(&store, &data_dir, settings, &intake).await {
                    Ok(taken) => {
                        for t in &taken {
                            outln!("tenure run: {}", t.line);
                        }
                        say(Ok(()));
                    }
                    Err(e) => say(Err(e)),
                }
            }
            if let Some(p) = &hr.pull {
                if pull::due(&store, p, jiff::Timestamp::now()).await {
                    match pull::pull_once(&store, &key, &data_dir, &hr).await {
                        Ok(said) => outln!("tenure run: pull: {}", said.summary),
                        Err(e) => outln!("tenure run: pull: {e}"),
                    }
                }
            }
            // Every load, whoever recorded it, is a reason to reconcile now.
            let now = store.loads_mark().await.ok();
            if now.is_some() && now != mark {
                mark = now;
                wake.notify_one();
            }
            let _ = std::io::Write::flush(&mut std::io::stdout());
            tokio::select! {
                _ = tokio::time::sleep(LOOK) => {}
                _ = stop.changed() => break,
            }
        }
    }))
}

/// Says where HR data is watched for.
fn say_sources(hr: &rules::HrSettings) {
    if let Some(i) = &hr.inbox {
        outln!("tenure run: watching the HR inbox {} for {}", i.path, i.pattern);
    }
    if let Some(p) = &hr.pull {
        outln!("tenure run: pulling the HR report every {} min", p.interval_minutes);
    }
}
