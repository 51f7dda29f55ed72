//! `tenure quickstart`: the whole loop on this machine. Starts the sandbox (a monday.com-like
//! SCIM service, kept in `<data dir>/quickstart`), connects "Connection-Bearer Token-1" to it,
//! loads the example HR file and rules, prints the plan, applies it and shows the accounts.
//! Run it again: no change. Edit the HR file (a leaver, a mover, a rehire) and run it again:
//! exactly those actions.

use crate::intake::{self, Delivery, Intake, LoadKind, Taken};
use crate::runs;
use rules::Config as RulesConfig;
use service::connections::Pointed;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use store::{MasterKey, Secret, Store};

const CONNECTION: &str = "Connection-Bearer Token-1";
const EXAMPLE_HR: &str = include_str!("../../../../examples/hr/workers.csv");
const EXAMPLE_RULES: &str = include_str!("../../../../examples/tenure.toml");

/// A file given, else the repository's example when run from the checkout, else the copy
/// built into the binary.
fn read_or_example(given: Option<&Path>, default: &str, builtin: &str) -> Result<(String, Vec<u8>), String> {
    match given {
        Some(p) => std::fs::read(p)
            .map(|b| (p.display().to_string(), b))
            .map_err(|e| format!("cannot read {}: {e}", p.display())),
        None if Path::new(default).exists() => {
            std::fs::read(default).map(|b| (default.to_string(), b)).map_err(|e| format!("cannot read {default}: {e}"))
        }
        None => Ok((format!("{default} (built in)"), builtin.as_bytes().to_vec())),
    }
}

pub async fn run(
    data_dir: &Path,
    listen: SocketAddr,
    hr_file: Option<PathBuf>,
    rules_file: Option<PathBuf>,
    serve: bool,
) -> Result<u8, String> {
    let dir = data_dir.join("quickstart");
    store::secrets::private_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // Its own store and key, made the first time.
    let crate::config::Created { store, key, .. } = crate::config::create(&dir, None).await?;
    let r = run_in(&store, &key, &dir, listen, hr_file, rules_file, serve).await;
    store.close().await;
    r
}

async fn run_in(
    store: &Store,
    key: &MasterKey,
    dir: &Path,
    listen: SocketAddr,
    hr_file: Option<PathBuf>,
    rules_file: Option<PathBuf>,
    serve: bool,
) -> Result<u8, String> {
    outln!("== tenure quickstart (state in {})", dir.display());
    // 1. The sandbox, with the token the connection holds (a new one the first time).
    let existing = store.connection(CONNECTION).await.map_err(|e| e.to_string())?;
    let token = match &existing {
        Some(c) => key.open(&c.token, &c.id)?,
        None => Secret::new(sandbox::generate_token()),
    };
    let cfg = sandbox::Config {
        listen,
        db: Some(dir.join("sandbox.db")),
        dialect: scim::Dialect::Monday,
        seed: None,
        token: Some(token.expose().to_string()),
        faults: sandbox::Faults::default(),
        limits: sandbox::Limits::default(),
        user_extensions: vec![],
    };
    let prepared = sandbox::prepare(&cfg).await?;
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let url = format!("http://{addr}/scim/v2/");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sandbox::serve(listener, prepared.app, async {
        let _ = stopped.await;
    }));
    outln!("== sandbox (monday.com dialect) at {url}");

    // 2. The connection.
    match crate::connections::point_at_sandbox(store, key, CONNECTION, &url, &token).await? {
        Pointed::Added => outln!("== connection {CONNECTION:?} added (token ending in {})", token.hint()),
        Pointed::Moved => outln!("== connection {CONNECTION:?} now points at {url}"),
        Pointed::Same => outln!("== connection {CONNECTION:?}"),
    }

    // 3. Rules: saved when they differ from the ones in force.
    let (rules_name, rules_bytes) = read_or_example(rules_file.as_deref(), "examples/tenure.toml", EXAMPLE_RULES)?;
    let text = String::from_utf8(rules_bytes).map_err(|_| format!("{rules_name} is not UTF-8"))?;
    let cfg = RulesConfig::from_toml(&rules_name, &text).map_err(|e| e.join("\n"))?;
    let rules = rules::Rules::compile(&cfg).map_err(|e| format!("{rules_name}:\n{}", e.join("\n")))?;
    let saved = crate::config::save_if_changed(store, &rules).await?;
    outln!("== rules from {rules_name} {}", if saved { "saved" } else { "(unchanged)" });

    // 4. HR data: a full load.
    let (hr_name, hr_bytes) = read_or_example(hr_file.as_deref(), "examples/hr/workers.csv", EXAMPLE_HR)?;
    // Through the one intake use case, with the definition and lifecycle settings of [hr].
    let intake_settings = Intake::for_config(&rules.config)?;
    let delivery = Delivery {
        source: hr_name.clone(),
        bytes: hr_bytes,
        json: false,
        kind: LoadKind::Full,
        confirm_population: None,
        supersede_loads: vec![],
        uploaded_by: Some(crate::local::actor()),
    };
    let (outcome, report) = match intake::take(store, dir, &intake_settings, delivery, jiff::Timestamp::now()).await? {
        Taken::Loaded { outcome, report } => (outcome, report),
        Taken::Rejected { reason, .. } => return Err(reason),
    };
    for q in &report.quarantined {
        for p in &q.problems {
            outln!(
                "   {hr_name}: row {} (line {}), column {}, value {:?}: {}",
                q.row,
                q.line,
                p.column,
                p.value,
                p.reason
            );
        }
    }
    let counts: Vec<String> = outcome.counts().iter().map(|(k, n)| format!("{k} {n}")).collect();
    outln!(
        "== HR file {hr_name}: rows {}, accepted {}, quarantined {}; events: {}",
        outcome.rows,
        outcome.accepted,
        outcome.quarantined,
        if counts.is_empty() { "none".into() } else { counts.join(", ") }
    );

    // 5. Plan and apply.
    outln!("== plan and apply");
    let watch = crate::cli::run::Terminal::new(crate::cli::run::Output::Text, true);
    let opts = runs::ApplyOptions { watch: &watch, ..runs::ApplyOptions::new(None) };
    let code = crate::cli::run::apply_cmd(store, key, opts, crate::cli::run::Output::Text).await?;

    // 6. What the sandbox holds now.
    let accounts = runs::accounts(store, key, CONNECTION).await?;
    outln!("== accounts in the sandbox ({})", accounts.len());
    for a in &accounts {
        let state = if a.active { "active" } else { "inactive" };
        let kind = a.user_type.as_deref().unwrap_or("-");
        outln!("   {:<36} {state:<8} {kind:<7} teams [{}]", a.user_name, a.teams.join(", "));
    }
    outln!(
        "\nThe quickstart's data folder: {d}\n  tenure --data-dir {d} plan      (and apply, audit, runs, reviews...)",
        d = dir.display()
    );
    if serve {
        // This machine's own sandbox: its token is shown here, on the terminal only (as
        // `tenure sandbox` shows its own), never written anywhere in plain text.
        outln!("\nThe sandbox stays up at {url}; its bearer token: {}", token.expose());
        outln!("  curl -s -H 'Authorization: Bearer {}' '{url}Users?count=5'", token.expose());
        outln!("(`tenure sandbox --db {}` serves the same data later)", dir.join("sandbox.db").display());
        outln!("Stop it with Ctrl-C.");
        let _ = tokio::signal::ctrl_c().await;
    } else {
        outln!("\nRun it again: nothing changes. Edit the HR file (a leaver, a mover, a rehire) and run it again with");
        outln!("  tenure quickstart --hr-file my-workers.csv");
        outln!("to see exactly those actions. `tenure quickstart --serve` keeps the sandbox up afterwards.");
    }
    let _ = stop.send(());
    let _ = server.await;
    Ok(code)
}
