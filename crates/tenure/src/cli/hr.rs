//! `tenure hr validate | load | events | loads | push-secret | listen | generate`: HR data in,
//! checked, archived, compared with the last snapshot, and turned into lifecycle events.

use crate::intake::{self, Delivery, Intake, LoadKind, Taken};
use crate::secrets;
use clap::{Args, Subcommand};
use hr::LoadReport;
use jiff::Timestamp;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use store::{EventQuery, MasterKey, Secret};
use web::push;

/// `hr load`'s exit code when the population check refuses a full load.
pub const POPULATION_REFUSED: u8 = 7;

/// How a file is read: `[hr.definition]` of the saved configuration; these flags override it
/// for one command (and say so).
#[derive(Args, Clone, Default)]
pub struct ParseArgs {
    /// utf-8 (with or without BOM) or windows-1252.
    #[arg(long)]
    encoding: Option<String>,
    /// The field separator (one character, or "tab").
    #[arg(long)]
    delimiter: Option<String>,
    /// Date formats to accept, in order (strftime style, e.g. %d.%m.%Y); default: found per
    /// column, and a column whose dates could be month-first or day-first is refused.
    #[arg(long = "date-format")]
    date_formats: Vec<String>,
    /// csv or json (JSON or JSON Lines); default: by the file's extension, CSV otherwise.
    /// Archived copies have no extension: say it when replaying a JSON file.
    #[arg(long)]
    format: Option<Format>,
    /// The longest value a field may hold, in bytes; a longer one quarantines its row.
    #[arg(long)]
    max_field_bytes: Option<usize>,
    /// Read [hr] from this configuration file instead of the saved one (to try a definition
    /// before `tenure config import`).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Json,
}

/// How loads become events: `[hr]` of the saved configuration; these flags override it for
/// one command (and say so).
#[derive(Args, Clone, Default, PartialEq)]
pub struct LifecycleArgs {
    /// Days before the hire date when the account is made.
    #[arg(long)]
    pre_hire_days: Option<i64>,
    /// Hour (0-23, worker's time zone) at which a dated termination takes effect.
    #[arg(long, value_parser = clap::value_parser!(i8).range(0..=23))]
    termination_hour: Option<i8>,
    /// Time zone for workers without one.
    #[arg(long)]
    default_time_zone: Option<String>,
    /// What to do with a worker a full load no longer holds (never terminated unless told).
    #[arg(long, value_enum)]
    missing: Option<MissingArg>,
}

/// What to do with a worker a full load no longer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MissingArg {
    /// Report it once (an event in state `reported`); the account is left alone.
    Report,
    /// Treat it as terminated now.
    Terminate,
    /// Say nothing.
    Ignore,
}

/// Whether a file is the whole population.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KindArg {
    /// The whole population: workers absent from it are handled by the missing policy.
    Full,
    /// Only changed workers: absence means nothing.
    Delta,
}

impl From<KindArg> for LoadKind {
    fn from(k: KindArg) -> LoadKind {
        match k {
            KindArg::Full => LoadKind::Full,
            KindArg::Delta => LoadKind::Delta,
        }
    }
}

/// Says on stderr that a flag replaced a saved setting, so that no one wonders later why a
/// load did not do what the configuration says.
fn overrides(flag: &str, key: &str, given: &str, saved: &str) {
    if given != saved {
        eprintln!("note: {flag} {given} overrides [hr] {key} = {saved} of the configuration, for this command only");
    }
}

/// The intake settings: `[hr]` with this command's flags over it.
pub fn intake_with(
    config: &rules::Config,
    parse: &ParseArgs,
    life: &LifecycleArgs,
    max_drop: Option<f64>,
) -> Result<Intake, String> {
    let mut hr = config.hr.clone();
    if let Some(v) = life.pre_hire_days {
        overrides("--pre-hire-days", "pre_hire_days", &v.to_string(), &hr.pre_hire_days.to_string());
        hr.pre_hire_days = v;
    }
    if let Some(v) = life.termination_hour {
        let saved = hr.termination_hour.map_or("(end of day)".into(), |h| h.to_string());
        overrides("--termination-hour", "termination_hour", &v.to_string(), &saved);
        hr.termination_hour = Some(v);
    }
    if let Some(v) = &life.default_time_zone {
        overrides("--default-time-zone", "default_time_zone", v, &hr.default_time_zone);
        hr.default_time_zone = v.clone();
    }
    if let Some(v) = life.missing {
        let name = |m: rules::MissingSetting| format!("{m:?}").to_lowercase();
        let m = match v {
            MissingArg::Report => rules::MissingSetting::Report,
            MissingArg::Terminate => rules::MissingSetting::Terminate,
            MissingArg::Ignore => rules::MissingSetting::Ignore,
        };
        overrides("--missing", "missing", &name(m), &name(hr.missing));
        hr.missing = m;
    }
    if let Some(v) = max_drop {
        overrides("--max-drop", "max_population_drop", &v.to_string(), &hr.max_population_drop.to_string());
        hr.max_population_drop = v;
    }
    let mut intake = Intake::from_settings(&hr)?;
    intake.summary = rules::summary::SummaryRules::of(config);
    let def = &mut intake.def;
    if let Some(e) = &parse.encoding {
        def.encoding = rules::hr_source::parse_encoding(e)?;
        eprintln!("note: --encoding {e} overrides [hr.definition] for this command");
    }
    if let Some(d) = &parse.delimiter {
        def.delimiter = rules::hr_source::parse_delimiter(d)?;
        eprintln!("note: --delimiter {d:?} overrides [hr.definition] for this command");
    }
    if !parse.date_formats.is_empty() {
        for f in &parse.date_formats {
            rules::hr_source::check_date_format(f).map_err(|e| format!("--date-format: {e}"))?;
        }
        def.date_formats = parse.date_formats.clone();
        eprintln!("note: --date-format {} overrides [hr.definition] for this command", parse.date_formats.join(" "));
    }
    if let Some(m) = parse.max_field_bytes {
        def.max_field_bytes = m.max(1);
    }
    Ok(intake)
}

/// JSON and JSON Lines by their extension (or --format); CSV otherwise.
fn is_json(file: &Path, format: Option<Format>) -> bool {
    format.map(|f| f == Format::Json).unwrap_or_else(|| intake::json_by_name(file))
}

#[derive(Subcommand)]
pub enum HrCommand {
    /// Check a CSV file (or JSON / JSON Lines, by extension); the last line is
    /// `rows: N, accepted: A, quarantined: Q`. Exit code 0
    /// when every row is accepted, 2 when rows were quarantined, 1 when the file is rejected.
    Validate {
        /// The HR export: CSV, or JSON / JSON Lines by its extension.
        file: PathBuf,
        /// The full report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        parse: ParseArgs,
    },
    /// Load a file: validate it, archive it under its SHA-256, compare it with the last
    /// snapshot and record the lifecycle events (future ones wait for their moment). The last
    /// line is `rows: N, accepted: A, quarantined: Q, events: E`. Exit code as for validate,
    /// and 7 when the population check refuses a full load.
    Load {
        /// The HR export: CSV, or JSON / JSON Lines by its extension.
        #[arg(required_unless_present = "back_to")]
        file: Option<PathBuf>,
        /// full: the file is the whole population; delta: only changed workers (a row may
        /// carry only the columns that changed).
        #[arg(long, value_enum, default_value_t = KindArg::Full)]
        kind: KindArg,
        /// Compare as of this moment (RFC 3339) instead of now, to replay an archived file.
        #[arg(long)]
        as_of: Option<Timestamp>,
        /// One JSON document on stdout, nothing else.
        #[arg(long)]
        json: bool,
        /// A full load whose population falls by more than this share (and by 3 or more)
        /// against the last snapshot is refused; default [hr] max_population_drop (0.1).
        #[arg(long, value_parser = super::share)]
        max_drop: Option<f64>,
        /// Take such a load anyway: the exact population of the file (accepted rows and held
        /// workers), as the refusal states it.
        #[arg(long)]
        confirm_population: Option<usize>,
        /// Take an earlier load (its id, from `tenure hr loads`) again as a new full load:
        /// the pending events of every load after it are cancelled, and workers those loads
        /// changed only on paper go back without events.
        #[arg(long, conflicts_with = "file")]
        back_to: Option<String>,
        #[command(flatten)]
        parse: ParseArgs,
        #[command(flatten)]
        lifecycle: LifecycleArgs,
    },
    /// List lifecycle events, oldest moment first.
    Events {
        /// pending, done, superseded or reported.
        #[arg(long, value_parser = event_state)]
        state: Option<store::EventState>,
        /// Only this worker's events (employee id).
        #[arg(long)]
        worker: Option<String>,
        /// Only pending events whose moment has come.
        #[arg(long)]
        due: bool,
        /// The moment for --due and for "waits until" (RFC 3339); default now.
        #[arg(long)]
        as_of: Option<Timestamp>,
        /// One JSON document on stdout, nothing else.
        #[arg(long)]
        json: bool,
    },
    /// The history of loads, rejected files included (with their reason), with checksums and
    /// archived copies.
    Loads {
        /// One JSON document on stdout, nothing else.
        #[arg(long)]
        json: bool,
    },
    /// Set the secret that signs pushed changes: from a file, or a new one printed once.
    PushSecret {
        /// Read the secret from this file instead of making a new one.
        #[arg(long)]
        secret_file: Option<PathBuf>,
    },
    /// Serve the HR push endpoint (POST /hr/v1/push, HMAC-SHA256 signed) until stopped.
    Listen {
        /// Port 0 picks a free port (the chosen one is printed).
        #[arg(long, default_value = "127.0.0.1:8788")]
        listen: std::net::SocketAddr,
        #[command(flatten)]
        lifecycle: LifecycleArgs,
    },
    /// The header definition: the one in force, or one proposed from a sample export.
    Definition {
        #[command(subcommand)]
        cmd: DefinitionCommand,
    },
    /// Set the password, bearer token or OAuth 2.0 client secret of [hr.pull], kept sealed
    /// in the store: read from a file, or from standard input.
    PullSecret {
        /// Read it from this file (default: standard input).
        #[arg(long)]
        secret_file: Option<PathBuf>,
    },
    /// Pull [hr.pull]'s report URL now, once, and load what it gives.
    Pull {
        /// One JSON document on stdout, nothing else.
        #[arg(long)]
        json: bool,
    },
    /// Write a realistic data set (accented names, namesakes, leaves, future hires and
    /// terminations); `--next-day` writes the following day's file too.
    Generate {
        /// How many workers.
        #[arg(long, default_value_t = 100)]
        count: usize,
        /// The random seed: the same seed gives the same file.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where to write (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also write the next day's file (movers, leavers, rehires, hires) here.
        #[arg(long)]
        next_day: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum DefinitionCommand {
    /// Propose a definition from a sample export: each column's likely field and date
    /// format, and what could not be placed. Edit it, paste it into the configuration, check
    /// it with `tenure hr validate FILE --config tenure.toml`, then `tenure config import`.
    Infer {
        /// A sample export (CSV).
        file: PathBuf,
        /// utf-8 or windows-1252 (default: utf-8, or windows-1252 when the bytes are not UTF-8).
        #[arg(long)]
        encoding: Option<String>,
        /// The field separator (default: found from the header line).
        #[arg(long)]
        delimiter: Option<String>,
    },
    /// The definition in force (from the saved configuration, or --config), as TOML.
    Show {
        /// Read [hr] from this configuration file instead of the saved one.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// Runs the command; the exit code says how the file fared.
pub async fn run(cmd: HrCommand, data_dir: &Path, database_url: Option<&str>) -> Result<u8, String> {
    match cmd {
        HrCommand::Validate { file, json, parse } => {
            let config = crate::config::config_for_hr(data_dir, database_url, parse.config.as_deref()).await?;
            let intake = intake_with(&config, &parse, &LifecycleArgs::default(), None)?;
            validate(file, json, &parse, &intake)
        }
        HrCommand::Load { file, kind, as_of, json, max_drop, confirm_population, back_to, parse, lifecycle } => {
            let config = crate::config::config_for_hr(data_dir, database_url, parse.config.as_deref()).await?;
            let intake = intake_with(&config, &parse, &lifecycle, max_drop)?;
            let store = crate::config::open(data_dir, database_url).await?;
            let r =
                load(&store, data_dir, &intake, file, kind.into(), as_of, json, confirm_population, back_to, &parse)
                    .await;
            store.close().await;
            r
        }
        HrCommand::Events { state, worker, due, as_of, json } => {
            let store = crate::config::open(data_dir, database_url).await?;
            let now = as_of.unwrap_or_else(Timestamp::now);
            let q = EventQuery {
                state: if due { Some(store::EventState::Pending) } else { state },
                worker_id: worker,
                due_by: due.then(|| now.as_second()),
                limit: None,
            };
            let rows = store.events(&q).await.map_err(|e| e.to_string());
            store.close().await;
            let listed = rows?.iter().map(intake::listed).collect::<Result<Vec<_>, _>>()?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&listed).map_err(|e| e.to_string())?);
            } else {
                for e in &listed {
                    outln!("{}", describe(e, now));
                }
                outln!("events: {}", listed.len());
            }
            Ok(0)
        }
        HrCommand::Loads { json } => {
            let store = crate::config::open(data_dir, database_url).await?;
            let loads = store.loads().await.map_err(|e| e.to_string());
            // Where the loads' bytes are kept: named by the kind of store.
            let kept = |checksum: &str| intake::kept_where(&store, data_dir, checksum);
            let loads = loads?;
            if json {
                let v: Vec<_> = loads
                    .iter()
                    .map(|l| {
                        let archived = (l.outcome == "accepted").then(|| kept(&l.checksum));
                        let mut v = intake::load_view(l);
                        v["archived"] = serde_json::json!(archived);
                        v
                    })
                    .collect();
                outln!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
            } else {
                for l in loads.iter().filter(|l| l.outcome != "accepted") {
                    outln!(
                        "{}  {}  {} ({})  REJECTED: {}  sha256 {}",
                        l.loaded_at,
                        l.id,
                        l.source,
                        l.kind,
                        l.reason.as_deref().unwrap_or("(no reason kept)"),
                        l.checksum
                    );
                }
                for l in loads.iter().filter(|l| l.outcome == "accepted") {
                    outln!(
                        "{}  {}  {} ({}, by {})  rows {}, accepted {}, quarantined {}, events {}  sha256 {}  {}",
                        l.loaded_at,
                        l.id,
                        l.source,
                        l.kind,
                        l.uploaded_by.as_deref().unwrap_or("(not recorded)"),
                        l.rows,
                        l.accepted,
                        l.quarantined,
                        l.events,
                        l.checksum,
                        kept(&l.checksum)
                    );
                }
                let rejected = loads.iter().filter(|l| l.outcome != "accepted").count();
                outln!("loads: {}, rejected: {rejected}", loads.len() - rejected);
            }
            store.close().await;
            Ok(0)
        }
        HrCommand::PushSecret { secret_file } => {
            let (secret, generated) = match secret_file {
                Some(p) => {
                    let t = std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                    let t = t.trim().to_string();
                    if t.len() < 16 {
                        return Err(format!("{}: a push secret needs at least 16 characters", p.display()));
                    }
                    (Secret::new(t), false)
                }
                None => (secrets::generate_secret(), true),
            };
            let store = crate::config::open(data_dir, database_url).await?;
            let key = MasterKey::load(data_dir)?;
            let r = secrets::save_secret(&store, &key, &secret).await;
            store.close().await;
            r?;
            if generated {
                outln!("HR push secret (shown once; give it to the HR system): {}", secret.expose());
            } else {
                outln!("HR push secret set (ending in {})", secret.hint());
            }
            Ok(0)
        }
        HrCommand::Listen { listen, lifecycle } => {
            crate::cli::output::keep_going_when_closed();
            let config = crate::config::config_for_hr(data_dir, database_url, None).await?;
            let intake = intake_with(&config, &ParseArgs::default(), &lifecycle, None)?;
            let store = crate::config::open(data_dir, database_url).await?;
            let key = MasterKey::load(data_dir)?;
            // Said at once when missing; read again at each push (a rotation takes effect).
            secrets::load_secret(&store, &key).await?;
            let listener =
                tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            let state = Arc::new(push::PushState {
                store,
                key: Arc::new(key),
                fixed: Some(intake),
                data_dir: data_dir.to_path_buf(),
                gate: tokio::sync::Mutex::new(()),
                wake: None,
            });
            outln!("tenure: HR push endpoint listening on http://{addr}/hr/v1/push");
            axum::serve(listener, push::router(state))
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await
                .map_err(|e| e.to_string())?;
            Ok(0)
        }
        HrCommand::Definition { cmd: DefinitionCommand::Infer { file, encoding, delimiter } } => {
            let bytes = std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let encoding = encoding.as_deref().map(rules::hr_source::parse_encoding).transpose()?;
            let delimiter = delimiter.as_deref().map(rules::hr_source::parse_delimiter).transpose()?;
            outln!("{}", crate::infer::infer(&file.display().to_string(), &bytes, encoding, delimiter)?);
            Ok(0)
        }
        HrCommand::Definition { cmd: DefinitionCommand::Show { config } } => {
            let hr = crate::config::hr_settings(data_dir, database_url, config.as_deref()).await?;
            let def = hr.header_definition().map_err(|e| e.join("\n"))?;
            outln!("{}", crate::infer::describe(&def, hr.definition.is_some()));
            Ok(0)
        }
        HrCommand::PullSecret { secret_file } => {
            let secret = super::read_secret(secret_file.as_deref(), "pull secret")?;
            // Bound to where the configuration in force pulls from: sent nowhere else.
            let hr = crate::config::hr_settings(data_dir, database_url, None).await?;
            let pull = hr.pull.as_ref().ok_or(
                "no [hr.pull] in the configuration in force: import it first (the secret is bound to its address)",
            )?;
            let to = crate::pull::destination(pull);
            let store = crate::config::open(data_dir, database_url).await?;
            let key = MasterKey::load(data_dir)?;
            let r =
                secrets::save_named_secret(&store, &key, crate::pull::SECRET, crate::pull::SECRET, &to, &secret).await;
            store.close().await;
            r?;
            outln!("HR pull secret set (ending in {}), for {to} only", secret.hint());
            Ok(0)
        }
        HrCommand::Pull { json } => {
            let config = crate::config::config_for_hr(data_dir, database_url, None).await?;
            let intake = crate::intake::Intake::for_config(&config)?;
            let store = crate::config::open(data_dir, database_url).await?;
            let key = MasterKey::load(data_dir)?;
            let r = crate::pull::pull_once(&store, &key, data_dir, &config.hr, &intake).await;
            store.close().await;
            let said = r?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&said).map_err(|e| e.to_string())?);
            } else {
                for w in &said.warnings {
                    outln!("warning: {w}");
                }
                outln!("{}", said.summary);
            }
            Ok(if said.rejected { 1 } else { 0 })
        }
        HrCommand::Generate { count, seed, out, next_day } => {
            let rows = hr::generate::generate(count, seed);
            let write = |path: Option<&PathBuf>, bytes: Vec<u8>| match path {
                Some(p) => std::fs::write(p, bytes).map_err(|e| format!("cannot write {}: {e}", p.display())),
                None => {
                    use std::io::Write;
                    std::io::stdout().write_all(&bytes).map_err(|e| e.to_string())
                }
            };
            write(out.as_ref(), hr::generate::to_csv(&rows))?;
            if let Some(p) = next_day {
                write(Some(&p), hr::generate::to_csv(&hr::generate::next_day(&rows, seed)))?;
            }
            Ok(0)
        }
    }
}

/// `hr load --server URL`: the file uploaded to the server, taken there as the token's user
/// under the server's [hr] settings.
pub async fn load_through(remote: &super::remote::Remote, cmd: HrCommand) -> Result<u8, String> {
    let HrCommand::Load { file, kind, as_of, json, max_drop, confirm_population, back_to, parse, lifecycle } = cmd
    else {
        return Err("with --server, of the hr commands only hr load goes through the server".into());
    };
    let local_only = [
        (as_of.is_some(), "--as-of"),
        (max_drop.is_some(), "--max-drop"),
        (back_to.is_some(), "--back-to"),
        (parse.config.is_some(), "--config"),
        (parse.encoding.is_some() || parse.delimiter.is_some() || !parse.date_formats.is_empty(), "reading flags"),
        (parse.max_field_bytes.is_some(), "--max-field-bytes"),
        (lifecycle != LifecycleArgs::default(), "lifecycle flags"),
    ];
    if let Some((_, flag)) = local_only.iter().find(|(given, _)| *given) {
        return Err(format!(
            "{flag}: with --server the server's [hr] settings apply; load on the store itself to override them"
        ));
    }
    let file = file.ok_or("give a file to load")?;
    let v = remote.upload(&file, is_json(&file, parse.format), kind == KindArg::Delta, confirm_population).await?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
    } else {
        for w in v["fields"]["unnamed"].as_array().into_iter().flatten() {
            outln!(
                "warning: field {}: {} value(s) no role condition names",
                w["field"].as_str().unwrap_or("?"),
                w["distinct"]
            );
        }
        outln!(
            "load {} taken by the server: rows: {}, accepted: {}, quarantined: {}, events: {}",
            v["load_id"].as_str().unwrap_or("?"),
            v["rows"],
            v["accepted"],
            v["quarantined"],
            v["events"].as_array().map_or(0, Vec::len)
        );
    }
    Ok(if v["quarantined"].as_u64().unwrap_or(0) == 0 { 0 } else { 2 })
}

/// `hr load`: one file (or an earlier load again) through the one intake use case.
#[allow(clippy::too_many_arguments)]
async fn load(
    store: &store::Store,
    data_dir: &Path,
    intake: &Intake,
    file: Option<PathBuf>,
    kind: LoadKind,
    as_of: Option<Timestamp>,
    json: bool,
    confirm_population: Option<usize>,
    back_to: Option<String>,
    parse: &ParseArgs,
) -> Result<u8, String> {
    let delivery = match (&file, &back_to) {
        (Some(file), _) => {
            let busy = crate::cli::output::spinner(format!("reading {}", file.display()));
            let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()));
            busy.finish_and_clear();
            Delivery {
                source: file.display().to_string(),
                bytes: bytes?,
                json: is_json(file, parse.format),
                kind,
                confirm_population,
                supersede_loads: vec![],
                uploaded_by: None,
            }
        }
        (None, Some(id)) => {
            let json = parse.format.map(|f| f == Format::Json);
            intake::back_to(store, data_dir, id, json, confirm_population).await?
        }
        (None, None) => return Err("give a file to load, or --back-to LOAD_ID".into()),
    };
    // Who loaded it: the OS user running the command (maker-checker keeps them from approving
    // what it opens, as a platform user who uploads).
    let mut delivery = delivery;
    delivery.uploaded_by = Some(crate::local::actor());
    let busy = crate::cli::output::spinner(format!("checking and storing {}", delivery.source));
    let now = as_of.unwrap_or_else(Timestamp::now);
    let taken = intake::take(store, data_dir, intake, delivery, now).await;
    busy.finish_and_clear();
    let (outcome, report) = match taken? {
        Taken::Loaded { outcome, report } => (outcome, report),
        Taken::Rejected { load_id, reason, rejected } => {
            let population = rejected.is_none();
            if json {
                match rejected {
                    Some(r) => outln!("{}", serde_json::json!({"rejected": r, "load_id": load_id})),
                    None => outln!("{}", serde_json::json!({"refused": reason, "load_id": load_id})),
                }
            } else {
                outln!("{reason}");
                outln!("recorded in the history as rejected load {load_id} (tenure hr loads)");
                outln!("rows: 0, accepted: 0, quarantined: 0 (file rejected)");
            }
            // A file that does not read is bad input (1); a population that fell too far has
            // a code of its own, so a script can tell "confirm it" from "fix it".
            return Ok(if population { POPULATION_REFUSED } else { 1 });
        }
    };
    print_problems(&report, json);
    if json {
        outln!("{}", serde_json::to_string_pretty(&outcome).map_err(|e| e.to_string())?);
        return Ok(if outcome.quarantined == 0 && outcome.named.is_empty() { 0 } else { 2 });
    }
    print_reading(&report);
    if let Some(at) = &outcome.loaded_before {
        outln!("note: this exact file (sha256 {}) was loaded before, at {at}", outcome.checksum);
    }
    for e in &outcome.events {
        outln!("{}", describe(e, now));
    }
    for id in outcome.held.iter().filter(|id| !outcome.named.contains(id)) {
        outln!("held: worker {id} is absent from the accepted rows because its row was quarantined");
    }
    for id in &outcome.named {
        outln!(
            "held: worker {id} has no row tenure could read, yet the file names its id (a damaged quote may have \
             merged its row into another): not taken as missing"
        );
    }
    for id in &outcome.terminations_taken {
        outln!(
            "taken: worker {id} is on several quarantined rows that all say it left: its termination was taken (the \
             earliest date), the rest of its record stays as it was"
        );
    }
    if let Some(f) = &outcome.fields {
        print_fields(f);
    }
    outln!("archived: {}", intake::kept_where(store, data_dir, &outcome.checksum));
    let counts = outcome.counts();
    let detail = counts.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ");
    outln!(
        "rows: {}, accepted: {}, quarantined: {}, events: {}{}, waiting: {}",
        outcome.rows,
        outcome.accepted,
        outcome.quarantined,
        outcome.events.len(),
        if detail.is_empty() { String::new() } else { format!(" ({detail})") },
        outcome.waiting(now)
    );
    Ok(if outcome.quarantined == 0 && outcome.named.is_empty() { 0 } else { 2 })
}

/// How the file was read: the columns left aside and each date column's format.
fn print_reading(report: &LoadReport) {
    if !report.ignored_columns.is_empty() {
        outln!(
            "{}: {} column(s) not in the definition, ignored: {}",
            report.file,
            report.ignored_columns.len(),
            report.ignored_columns.join(", ")
        );
    }
    // One line per format, not per column: most exports write every date one way.
    let mut by: std::collections::BTreeMap<&str, Vec<&str>> = std::collections::BTreeMap::new();
    for (column, how) in &report.date_formats {
        by.entry(how.as_str()).or_default().push(column.as_str());
    }
    for (how, columns) in by {
        outln!("{}: dates read as {how}: {}", report.file, columns.join(", "));
    }
}

/// The accepted workers' values field by field, then the values no rule names.
fn print_fields(f: &rules::summary::Summary) {
    if f.workers == 0 {
        return;
    }
    outln!("values of {} accepted worker(s), by field (most frequent first):", f.workers);
    for line in f.lines() {
        outln!("  {line}");
    }
    for w in f.warnings() {
        outln!("warning: {w}");
    }
}

/// Reads and checks a file by the definition; a rejected file is reported here and gives exit
/// code 1.
fn read_as(
    file: &Path,
    parse: &ParseArgs,
    def: &hr::HeaderDefinition,
    json: bool,
) -> Result<Result<LoadReport, u8>, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let name = file.display().to_string();
    let parsed = if is_json(file, parse.format) {
        hr::parse_json(&name, &bytes, def)
    } else {
        hr::parse_csv(&name, &bytes, def)
    };
    match parsed {
        Ok(r) => Ok(Ok(r)),
        Err(rejected) => {
            if json {
                outln!("{}", serde_json::json!({"rejected": rejected}));
            } else {
                outln!("{rejected}");
                outln!("rows: 0, accepted: 0, quarantined: 0 (file rejected)");
            }
            Ok(Err(1))
        }
    }
}

fn print_problems(report: &LoadReport, json: bool) {
    if json {
        return;
    }
    // Each row named by its employee id too: what a person looks up in the HR system.
    let who = |id: Option<&str>| id.map(|i| format!(", employee {i}")).unwrap_or_default();
    for q in &report.quarantined {
        for p in &q.problems {
            outln!(
                "{}: row {} (line {}{}), column {}, value {:?}: {}",
                report.file,
                q.row,
                q.line,
                who(q.worker_id.as_ref().map(|w| w.as_str())),
                p.column,
                p.value,
                p.reason
            );
        }
    }
    for f in &report.flagged {
        outln!(
            "{}: row {}{}, column {}, value {:?}: begins as a spreadsheet formula would; carried as data, neutralised \
             in CSV exports",
            report.file,
            f.row,
            who(f.worker_id.as_deref()),
            f.column,
            f.value
        );
    }
}

fn event_state(s: &str) -> Result<store::EventState, String> {
    store::EventState::parse(s).ok_or_else(|| format!("{s:?}: pending, done, superseded or reported"))
}

/// One event on one line: when, what, who, and whether it waits.
fn describe(e: &intake::Listed, now: Timestamp) -> String {
    let when = if e.state == store::EventState::Pending && !e.event.is_due(now) {
        format!("waits until {}", e.event.effective)
    } else {
        format!("at {}", e.event.effective)
    };
    let changes = e
        .event
        .changes
        .iter()
        .map(|c| format!("{}: {:?} -> {:?}", c.field, c.before, c.after))
        .collect::<Vec<_>>()
        .join("; ");
    format!(
        "{:<22} worker {:<12} {:<10} {when}{}",
        e.event.kind.as_str(),
        e.event.worker,
        e.state,
        if changes.is_empty() { String::new() } else { format!("  [{changes}]") }
    )
}

fn validate(file: PathBuf, json: bool, parse: &ParseArgs, intake: &Intake) -> Result<u8, String> {
    let report = match read_as(&file, parse, &intake.def, json)? {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    let fields = intake::summarize(&report.accepted, &intake.summary, Timestamp::now());
    if json {
        let mut v = serde_json::to_value(&report).map_err(|e| e.to_string())?;
        v["fields"] = serde_json::to_value(&fields).map_err(|e| e.to_string())?;
        outln!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
    } else {
        print_problems(&report, json);
        print_reading(&report);
        print_fields(&fields);
        outln!("rows: {}, accepted: {}, quarantined: {}", report.rows, report.accepted.len(), report.quarantined.len());
    }
    Ok(if report.quarantined.is_empty() { 0 } else { 2 })
}
