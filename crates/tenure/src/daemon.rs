//! `tenure run`: the daemon. Reconciles every configured connection on a schedule, at once
//! after a pushed HR change, and at the moment a future-dated event (a termination at the end
//! of someone's last day) takes effect. SIGTERM or Ctrl-C lets the run in progress finish
//! (its actions are journaled either way) and then stops.

use crate::cli::run::Output;
use crate::config;
use crate::secrets;
use service::schedule;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use store::MasterKey;
use tokio::sync::Notify;
use web::{api, push, serve};

pub async fn run(
    data_dir: &Path,
    database_url: Option<&str>,
    interval: Duration,
    listen_hr: Option<SocketAddr>,
    rehearse_from: Option<jiff::Timestamp>,
    confirm_production: Vec<String>,
    serve: Option<(serve::Listen, serve::Options)>,
) -> Result<u8, String> {
    // A daemon outlives whoever reads its output, and each of its lines says when.
    crate::cli::output::keep_going_when_closed();
    crate::cli::output::stamp_lines();
    crate::long_running();
    // A rehearsal runs the daemon's clock from another moment, in real time from there.
    let offset = rehearse_from.map(|t| t.duration_since(jiff::Timestamp::now())).unwrap_or_default();
    if let Some(t) = rehearse_from {
        outln!("tenure run: rehearsal: the clock starts at {t}");
    }
    let store = config::open(data_dir, database_url).await?;
    let key = Arc::new(MasterKey::load(data_dir)?);
    // A rotation's loose ends: its key put in force, stragglers re-sealed, the old key removed.
    let who = if serve.is_some() { "tenure serve" } else { "tenure run" };
    match service::keys::settle(&store, &key).await {
        Ok(s) => {
            if s.promoted {
                outln!("{who}: master key {} put in force (its rotation had re-sealed every secret)", key.id());
            }
            if s.resealed > 0 {
                outln!("{who}: re-sealed {} secret(s) under master key {}", s.resealed, key.id());
            }
            if s.forgot_old {
                outln!("{who}: every secret is under master key {}: the old key file is removed", key.id());
            }
            if s.unfinished {
                outln!("{who}: a master key rotation was begun and not finished: run `tenure key rotate` again");
            }
        }
        // The secrets still open with the keys held: the service can start.
        Err(e) => tracing::warn!("the master key rotation could not be settled: {e}"),
    }
    // One node among those working on the store (refused beside another on SQLite).
    let presence = service::nodes::join(&store, None, !interval.is_zero()).await?;
    // The service starts before any configuration (it arrives through the API); the daemon
    // needs one.
    let rules = match serve {
        Some(_) => config::current_if_any(&store).await?,
        None => Some(config::current(&store).await?),
    };
    let config_now = rules.as_ref().map(|r| r.config.clone()).unwrap_or_default();
    let wake = Arc::new(Notify::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut server = None;
    // `tenure run --listen-hr ADDR` (plain http, push only) or `tenure serve` (one address:
    // push, probes, TLS when given).
    let (serve, options) = serve.unzip();
    let listen = match (serve, listen_hr) {
        (Some(l), _) => Some((l, true)),
        (None, Some(addr)) => Some((serve::Listen { addr, tls: None, insecure_http: true }, false)),
        (None, None) => None,
    };
    let health = schedule::Health::new(store.clone());
    // Every run of this process, the scheduler's and the API's, live in one registry.
    let registry = Arc::new(service::registry::Registry::default());
    if let Some((listen, full)) = listen {
        listen.check()?;
        let push_store = config::open(data_dir, database_url).await?;
        if !full {
            // `tenure run --listen-hr` exists to take pushes: say at once when it cannot.
            secrets::load_secret(&push_store, &key).await?;
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
            app = app.merge(serve::health_router(health.clone()));
            // The API's reads go side by side: a few connections of its own.
            let api_store = config::open_for_readers(data_dir, database_url).await?;
            let mut api =
                api::Api::new(api_store, key.clone(), data_dir.to_path_buf(), wake.clone(), listen.tls.is_some());
            api.interval = interval;
            api.runs = registry.clone();
            if let Some(o) = &options {
                api.sessions = o.sessions;
                api.metrics_allow = o.metrics_allow.clone();
                api.trusted_proxies = o.trusted_proxies.clone();
            }
            let api = Arc::new(api);
            let warming = api.clone();
            tokio::spawn(async move {
                api::warm(&warming).await;
                crate::give_back_memory();
            });
            app = app.merge(web::doors(api));
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
        let app = web::finish(app);
        let (bound, task) = serve::serve(&listen, app, stop_rx.clone()).await?;
        let scheme = if listen.tls.is_some() { "https" } else { "http" };
        presence.serving(format!("{scheme}://{bound}")).await?;
        if full {
            outln!("tenure serve: listening on {scheme}://{bound} (POST /hr/v1/push, GET /healthz, GET /readyz)");
        } else {
            outln!("tenure run: HR push endpoint on {scheme}://{bound}/hr/v1/push");
        }
        server = Some(task);
    }
    // What the scheduler and the watcher say, stamped, as the daemon's own lines.
    let say: schedule::Say = Arc::new(|line: &str| {
        outln!("tenure run: {line}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
    });
    let scheduler = schedule::Scheduler {
        store: store.clone(),
        key: key.clone(),
        data_dir: data_dir.to_path_buf(),
        interval,
        rehearsal: rehearse_from.map(|_| offset),
        confirm_production,
        wake: wake.clone(),
        registry: registry.clone(),
        turned: Arc::default(),
        working: Arc::default(),
    };
    let watcher = schedule::watch_sources(&scheduler, &config_now, stop_rx.clone(), health.clone(), say.clone())?;
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
    let stopper = presence.stopper();
    let stopping = tokio::spawn(async move {
        crate::signal::shutdown().await;
        let _ = stop_tx.send(true);
        // Listed as stopping while it finishes its runs.
        stopper.mark().await;
    });
    let watch = crate::cli::run::Terminal::new(Output::Quiet, true);
    let ran = |name: &str, r: &Result<service::run_report::Applied, service::error::Error>| match r {
        Ok(a) => {
            // A run of a large population freed hundreds of MiB: back to the system now.
            crate::give_back_memory();
            let _ = crate::cli::run::report(a, Output::Quiet);
        }
        Err(e) => outln!("tenure run: {name:?}: {e}"),
    };
    // The scheduler's runs go on threads of their own at a lower CPU priority: a reconcile of
    // 100,000 workers takes every core for seconds, and the API's answers must not queue
    // behind it. When nothing else asks for the CPU the runs have all of it.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let (dir, url) = (data_dir.to_path_buf(), database_url.map(str::to_string));
    std::thread::Builder::new()
        .name("tenure-scheduler".into())
        // It drives the scheduler as the main thread did before, with the main thread's stack.
        .stack_size(schedule::STACK)
        .spawn(move || {
            // This thread drives the runtime below and opens the runs' store.
            schedule::background_priority();
            let drive = move || match schedule::runtime() {
                Ok(rt) => rt.block_on(async move {
                    // The runs' own store, opened from a low-priority thread: SQLite works on a
                    // thread per connection, which inherits the priority of the one opening it.
                    let mut scheduler = scheduler;
                    scheduler.store = config::open(&dir, url.as_deref()).await?;
                    let r = schedule::run(&scheduler, &watch, &ran, &*say, stop_rx).await;
                    scheduler.store.close().await;
                    r.map_err(|e| e.to_string())
                }),
                Err(e) => Err(format!("cannot start the scheduler's runtime: {e}")),
            };
            // A panic is said with its message rather than lost with the thread.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(drive)).unwrap_or_else(|p| {
                let why =
                    p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
                Err(format!("the scheduler failed: {}", why.unwrap_or_else(|| "a panic without a message".into())))
            });
            let _ = done_tx.send(r);
        })
        .map_err(|e| format!("cannot start the scheduler: {e}"))?;
    done_rx.await.map_err(|_| "the scheduler stopped without a word".to_string())??;
    outln!("tenure run: stopped");
    stopping.abort();
    let _ = watcher.await;
    if let Some(s) = server {
        let _ = s.await;
    }
    presence.leave().await;
    store.close().await;
    Ok(0)
}
