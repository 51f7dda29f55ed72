//! `tenure hr validate | load | events | loads | push-secret | listen | generate`: HR data in,
//! checked, archived, compared with the last snapshot, and turned into lifecycle events.

use crate::intake::{self, IntakeConfig, LoadKind, MissingPolicy};
use crate::push;
use clap::{Args, Subcommand};
use hr::{Encoding, HeaderDefinition, LifecycleConfig, LoadReport};
use jiff::Timestamp;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use store::{EventQuery, MasterKey, Secret};

/// How a file is read.
#[derive(Args, Clone)]
pub struct ParseArgs {
    /// utf-8 (default, with or without BOM) or windows-1252.
    #[arg(long, default_value = "utf-8")]
    encoding: String,
    /// The field separator.
    #[arg(long, default_value = ",")]
    delimiter: char,
    /// Date formats to accept, in order (strftime style); default %m/%d/%Y and %Y-%m-%d.
    #[arg(long = "date-format")]
    date_formats: Vec<String>,
    /// csv or json (JSON or JSON Lines); default: by the file's extension, CSV otherwise.
    /// Archived copies have no extension: say it when replaying a JSON file.
    #[arg(long)]
    format: Option<Format>,
    /// The longest value a field may hold, in bytes; a longer one quarantines its row.
    #[arg(long, default_value_t = hr::MAX_FIELD_BYTES)]
    max_field_bytes: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Json,
}

/// How loads become events.
#[derive(Args, Clone)]
pub struct LifecycleArgs {
    /// Days before the hire date when the account is made.
    #[arg(long, default_value_t = 0)]
    pre_hire_days: i64,
    /// Hour (0-23, worker's time zone) at which a dated termination takes effect; default: the
    /// end of the termination date.
    #[arg(long, value_parser = clap::value_parser!(i8).range(0..=23))]
    termination_hour: Option<i8>,
    /// Time zone for workers without one.
    #[arg(long, default_value = "UTC")]
    default_time_zone: String,
    /// What to do with a worker a full load no longer holds (never terminated unless told).
    #[arg(long, value_enum, default_value_t = MissingPolicy::Report)]
    missing: MissingPolicy,
}

impl LifecycleArgs {
    fn config(&self) -> Result<IntakeConfig, String> {
        let tz = hr::TimeZoneName::parse(&self.default_time_zone)?;
        Ok(IntakeConfig {
            lifecycle: LifecycleConfig {
                pre_hire_lead_days: self.pre_hire_days.max(0),
                termination_hour: self.termination_hour,
                default_time_zone: tz.zone(),
            },
            missing: self.missing,
        })
    }
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
    /// line is `rows: N, accepted: A, quarantined: Q, events: E`. Exit code as for validate.
    Load {
        /// The HR export: CSV, or JSON / JSON Lines by its extension.
        file: PathBuf,
        /// full: the file is the whole population; delta: only changed workers.
        #[arg(long, value_enum, default_value_t = LoadKind::Full)]
        kind: LoadKind,
        /// Compare as of this moment (RFC 3339) instead of now, to replay an archived file.
        #[arg(long)]
        as_of: Option<Timestamp>,
        /// One JSON document on stdout, nothing else.
        #[arg(long)]
        json: bool,
        /// A full load whose population falls by more than this share (and by 3 or more)
        /// against the last snapshot is refused (a truncated export would make leavers of
        /// everyone missing).
        #[arg(long, default_value_t = 0.1, value_parser = crate::share)]
        max_drop: f64,
        /// Take such a load anyway: the exact population of the file (accepted rows and held
        /// workers), as the refusal states it.
        #[arg(long)]
        confirm_population: Option<usize>,
        #[command(flatten)]
        parse: ParseArgs,
        #[command(flatten)]
        lifecycle: LifecycleArgs,
    },
    /// List lifecycle events, oldest moment first.
    Events {
        /// pending, done, superseded or reported.
        #[arg(long)]
        state: Option<String>,
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
    /// List accepted loads with their checksums and archived copies.
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

/// Runs the command; the exit code says how the file fared.
pub async fn run(cmd: HrCommand, data_dir: &Path, database_url: Option<&str>) -> Result<u8, String> {
    match cmd {
        HrCommand::Validate { file, json, parse } => validate(file, json, &parse),
        HrCommand::Load { file, kind, as_of, json, max_drop, confirm_population, parse, lifecycle } => {
            let cfg = lifecycle.config()?;
            let busy = crate::output::spinner(format!("reading {}", file.display()));
            let read = read_as(&file, &parse, json);
            busy.finish_and_clear();
            let (report, bytes) = match read? {
                Ok(r) => r,
                Err(code) => return Ok(code),
            };
            let store = crate::config_cmd::open(data_dir, database_url).await?;
            if kind == LoadKind::Full {
                if let Err(why) = population_check(&store, &report, max_drop, confirm_population).await {
                    store.close().await;
                    if json {
                        outln!("{}", serde_json::json!({"refused": why}));
                    } else {
                        outln!("{why}");
                    }
                    return Ok(1);
                }
            }
            let busy = crate::output::spinner(format!("storing {} worker(s) and their events", report.accepted.len()));
            // The very bytes that were checked, so the archive always matches its checksum.
            intake::archive(data_dir, &report.checksum, &bytes)?;
            let now = as_of.unwrap_or_else(Timestamp::now);
            let result = intake::apply(&store, &report, kind, &cfg, now, vec![]).await;
            store.close().await;
            busy.finish_and_clear();
            let outcome = result.map_err(|e| e.to_string())?;
            print_problems(&report, json);
            if json {
                outln!("{}", serde_json::to_string_pretty(&outcome).map_err(|e| e.to_string())?);
            } else {
                if let Some(at) = &outcome.loaded_before {
                    outln!("note: this exact file (sha256 {}) was loaded before, at {at}", outcome.checksum);
                }
                for e in &outcome.events {
                    outln!("{}", describe(e, now));
                }
                for id in &outcome.held {
                    outln!("held: worker {id} is absent from the accepted rows because its row was quarantined");
                }
                outln!("archived: {}", intake::archive_path(data_dir, &outcome.checksum).display());
            }
            if !json {
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
            }
            Ok(if outcome.quarantined == 0 { 0 } else { 2 })
        }
        HrCommand::Events { state, worker, due, as_of, json } => {
            let store = crate::config_cmd::open(data_dir, database_url).await?;
            let now = as_of.unwrap_or_else(Timestamp::now);
            let q = EventQuery {
                state: if due { Some("pending".into()) } else { state },
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
            let store = crate::config_cmd::open(data_dir, database_url).await?;
            let loads = store.loads().await.map_err(|e| e.to_string());
            store.close().await;
            let loads = loads?;
            if json {
                let v: Vec<_> = loads
                    .iter()
                    .map(|l| {
                        serde_json::json!({"id": l.id, "source": l.source, "checksum": l.checksum, "kind": l.kind,
                            "loaded_at": l.loaded_at, "rows": l.rows, "accepted": l.accepted,
                            "quarantined": l.quarantined, "events": l.events,
                            "archived": intake::archive_path(data_dir, &l.checksum)})
                    })
                    .collect();
                outln!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
            } else {
                for l in &loads {
                    outln!(
                        "{}  {}  {} ({})  rows {}, accepted {}, quarantined {}, events {}  sha256 {}  {}",
                        l.loaded_at,
                        l.id,
                        l.source,
                        l.kind,
                        l.rows,
                        l.accepted,
                        l.quarantined,
                        l.events,
                        l.checksum,
                        intake::archive_path(data_dir, &l.checksum).display()
                    );
                }
                outln!("loads: {}", loads.len());
            }
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
                None => (push::generate_secret(), true),
            };
            let store = crate::config_cmd::open(data_dir, database_url).await?;
            let key = MasterKey::load(data_dir)?;
            let r = push::save_secret(&store, &key, &secret).await;
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
            crate::output::keep_going_when_closed();
            let cfg = lifecycle.config()?;
            let store = crate::config_cmd::open(data_dir, database_url).await?;
            let key = MasterKey::load(data_dir)?;
            let secret = push::load_secret(&store, &key).await?;
            let listener =
                tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            let state = Arc::new(push::PushState {
                store,
                secret,
                def: HeaderDefinition::default(),
                cfg,
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

/// Fewer workers than this missing from a full load never trip the population check.
const MIN_DROP: usize = 3;

/// A full load that is empty, or whose population falls by more than `max_drop` against the
/// last snapshot, is refused with the numbers unless the exact population is confirmed.
async fn population_check(
    store: &store::Store,
    report: &LoadReport,
    max_drop: f64,
    confirm: Option<usize>,
) -> Result<(), String> {
    let before = store.population().await.map_err(|e| e.to_string())? as usize;
    let now = report.accepted.len() + report.held().len();
    if confirm == Some(now) {
        return Ok(());
    }
    if now == 0 {
        return Err(format!(
            "refused: {} is a full load with no workers (the last snapshot has {before}); nothing was loaded. If the \
             population really is empty, load it with --confirm-population 0",
            report.file
        ));
    }
    let floor = (before as f64 * (1.0 - max_drop)).ceil() as usize;
    // As the deprovision guard: a drop of one or two in a small team is ordinary.
    if before > 0 && now < floor && before - now >= MIN_DROP {
        return Err(format!(
            "refused: {} has {now} workers where the last snapshot has {before}: {:.0}% fewer, more than the {:.0}% a \
             full load may drop (--max-drop). Nothing was loaded. If this is right, load it with --confirm-population {now}",
            report.file,
            100.0 * (before - now) as f64 / before as f64,
            100.0 * max_drop
        ));
    }
    Ok(())
}

fn definition(parse: &ParseArgs) -> Result<HeaderDefinition, String> {
    let encoding = match parse.encoding.to_ascii_lowercase().replace('_', "-").as_str() {
        "utf-8" | "utf8" => Encoding::Utf8,
        "windows-1252" | "cp1252" | "latin1" => Encoding::Windows1252,
        other => return Err(format!("unknown encoding {other:?}: use utf-8 or windows-1252")),
    };
    let delimiter =
        u8::try_from(parse.delimiter).ok().filter(u8::is_ascii).ok_or("the delimiter must be one ASCII character")?;
    let mut def = HeaderDefinition {
        encoding,
        delimiter,
        max_field_bytes: parse.max_field_bytes.max(1),
        ..HeaderDefinition::default()
    };
    if !parse.date_formats.is_empty() {
        def.date_formats = parse.date_formats.clone();
    }
    Ok(def)
}

/// Reads and checks a file (with its bytes); a rejected file is reported here and gives exit
/// code 1.
fn read_as(file: &Path, parse: &ParseArgs, json: bool) -> Result<Result<(LoadReport, Vec<u8>), u8>, String> {
    let def = definition(parse)?;
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let name = file.display().to_string();
    // JSON and JSON Lines by their extension; CSV otherwise.
    let is_json = parse.format.map(|f| f == Format::Json).unwrap_or_else(|| {
        file.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "json" | "jsonl" | "ndjson"))
    });
    let parsed = if is_json { hr::parse_json(&name, &bytes, &def) } else { hr::parse_csv(&name, &bytes, &def) };
    match parsed {
        Ok(r) => Ok(Ok((r, bytes))),
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
    for q in &report.quarantined {
        for p in &q.problems {
            outln!(
                "{}: row {} (line {}), column {}, value {:?}: {}",
                report.file,
                q.row,
                q.line,
                p.column,
                p.value,
                p.reason
            );
        }
    }
    for f in &report.flagged {
        outln!(
            "{}: row {}, column {}, value {:?}: begins as a spreadsheet formula would; carried as data, neutralised \
             in CSV exports",
            report.file,
            f.row,
            f.column,
            f.value
        );
    }
}

/// One event on one line: when, what, who, and whether it waits.
fn describe(e: &intake::Listed, now: Timestamp) -> String {
    let when = if e.state == "pending" && !e.event.is_due(now) {
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

fn validate(file: PathBuf, json: bool, parse: &ParseArgs) -> Result<u8, String> {
    let (report, _) = match read_as(&file, parse, json)? {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    if json {
        outln!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    } else {
        print_problems(&report, json);
        outln!("rows: {}, accepted: {}, quarantined: {}", report.rows, report.accepted.len(), report.quarantined.len());
    }
    Ok(if report.quarantined.is_empty() { 0 } else { 2 })
}
