//! `tenure run`: the daemon. Reconciles every configured connection on a schedule, at once
//! after a pushed HR change, and at the moment a future-dated event (a termination at the end
//! of someone's last day) takes effect. SIGTERM or Ctrl-C lets the run in progress finish
//! (its actions are journaled either way) and then stops.

use crate::config_cmd;
use crate::intake::{IntakeConfig, MissingPolicy};
use crate::{push, sync};
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
    // A daemon outlives whoever reads its output.

    let store = config_cmd::open(data_dir, database_url).await?;
    let key = MasterKey::load(data_dir)?;
    let rules = config_cmd::current(&store).await?;
    let wake = Arc::new(Notify::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut server = None;
    if let Some(addr) = listen_hr {
        let push_store = config_cmd::open(data_dir, database_url).await?;
        let secret = push::load_secret(&push_store, &key).await?;
        let def =
            rules.config.hr.custom_fields.iter().fold(hr::HeaderDefinition::default(), |d, c| d.with_custom(c, false));
        let state = Arc::new(push::PushState {
            store: push_store,
            secret,
            def,
            cfg: IntakeConfig { lifecycle: rules.config.hr.lifecycle()?, missing: MissingPolicy::Report },
            data_dir: data_dir.to_path_buf(),
            gate: tokio::sync::Mutex::new(()),
            wake: Some(wake.clone()),
        });
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let bound = listener.local_addr().map_err(|e| e.to_string())?;
        outln!("tenure run: HR push endpoint on http://{bound}/hr/v1/push");
        let mut rx = stop_rx.clone();
        server = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, push::router(state))
                .with_graceful_shutdown(async move {
                    let _ = rx.changed().await;
                })
                .await;
        }));
    }
    outln!("tenure run: reconciling {} connection(s) every {} s", rules.connections.len(), interval.as_secs());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let stopping = tokio::spawn(async move {
        stop_signal().await;
        let _ = stop_tx.send(true);
    });
    let mut stop = stop_rx;
    loop {
        for c in &rules.connections {
            // A refusal (the guard) or a failure is reported and retried next time; the daemon goes on.
            let as_of = rehearse_from.map(|_| clock());
            let opts = sync::ApplyOptions {
                as_of,
                output: sync::Output::Quiet,
                yes: true,
                confirm_production: confirm_production.contains(&c.name).then(|| c.name.clone()),
                wait: Some(&mut stop),
                ..sync::ApplyOptions::new(Some(c.name.clone()))
            };
            match sync::apply_cmd(&store, &key, opts).await {
                Ok(3) => outln!(
                    "tenure run: {:?}: the mass-deprovision guard stopped this run; confirm with `tenure apply`",
                    c.name
                ),
                Ok(_) => {}
                Err(e) => outln!("tenure run: {:?}: {e}", c.name),
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
    if let Some(s) = server {
        let _ = s.await;
    }
    store.close().await;
    Ok(0)
}
