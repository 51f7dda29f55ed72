//! The command line: one file per command group, each translating arguments into calls on the
//! service and its answers into lines and exit codes.

pub mod audit;
pub mod backup;
pub mod config;
pub mod connection;
pub mod hr;
pub mod key;
pub mod notify;
#[macro_use]
pub mod output;
pub mod overview;
pub mod quickstart;
pub mod remote;
pub mod reviews;
pub mod run;
pub mod sandbox;
pub mod users;

use crate::{daemon, duration, runs};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use web::{api, serve};

/// One table of exit codes, for every command (README.md has the same).
const EXIT_CODES: &str = "Exit codes:
  0    done, nothing failed
  1    an error (bad input, configuration, store or target unreachable): the message says what and where
  2    HR rows were quarantined (hr validate, hr load); the rest was taken
  3    a guard held what it refused, the rest applied (apply; plan, when apply would hold some)
  4    some actions failed, or a worker was set aside as a dead letter (apply)
  5    another run holds the connection (apply): it says which, since when
  6    not confirmed at the prompt (apply before many creates; --yes skips it)
  7    a full HR load refused by the population check (hr load; --confirm-population takes it)
  64   a usage error: an unknown command or flag, a value that does not parse
  141  standard output was closed (e.g. piped into head)";

/// A usage error's exit code (sysexits' EX_USAGE): apart from 2, which says rows were quarantined.
const USAGE: u8 = 64;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// `tenure --version`: the version, the commit it was built from, and the day (build.rs).
const VERSION: &str =
    concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("TENURE_COMMIT"), ", built ", env!("TENURE_BUILD_DATE"), ")");

#[derive(Parser)]
#[command(name = "tenure", version = VERSION, about = "Hire-to-retire account provisioning over SCIM 2.0", after_help = EXIT_CODES)]
pub struct Cli {
    /// Where tenure keeps its state (default: a per-user data folder).
    #[arg(long, global = true, env = "TENURE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL for a shared setup (postgres://...); default: tenure.db in the data folder.
    #[arg(long, global = true, env = "TENURE_DATABASE_URL")]
    database_url: Option<String>,
    /// How log lines (stderr) are written: text, or json (one object a line, for collectors).
    /// What is logged: TENURE_LOG (e.g. `tenure=debug`; default `info,sqlx=warn`).
    #[arg(long, global = true, default_value = "text")]
    log_format: LogFormat,
    /// Act through this running `tenure serve` as the platform user of an API token
    /// (TENURE_TOKEN, or --token-file) rather than on the store itself: reviews, approve,
    /// reject, dead-letters, hr load and apply.
    #[arg(long, global = true, env = "TENURE_SERVER", value_name = "URL")]
    server: Option<String>,
    /// With --server: a file whose first line is the API token (when TENURE_TOKEN is not set).
    #[arg(long, global = true, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// How long a run's lease on a connection lasts unrenewed: a holder that dies (or is cut
    /// off from the database) keeps other processes and nodes off it this long. Renewed every
    /// sixth of it.
    #[arg(long, global = true, env = "TENURE_LEASE", default_value = "60s", value_parser = duration::parse)]
    lease: std::time::Duration,
    /// How long one request to a target may take. A run sends none unless its lease has at
    /// least this long left; shorter than --lease.
    #[arg(long, global = true, env = "TENURE_REQUEST_TIMEOUT", default_value = "30s", value_parser = duration::parse)]
    request_timeout: std::time::Duration,
    /// Scheduled runs of different connections at once on this node (`tenure serve` and
    /// `tenure run`): more for many small connections behind slow targets, fewer where each
    /// run holds a large population in memory.
    #[arg(long, global = true, env = "TENURE_RUNS_AT_ONCE", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    runs_at_once: u16,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the SCIM 2.0 sandbox, a service provider that behaves as monday.com's SCIM API.
    Sandbox(sandbox::SandboxArgs),
    /// HR data: validate, load (snapshot and lifecycle events), the push endpoint, generate.
    #[command(subcommand)]
    Hr(hr::HrCommand),
    /// Connections to target apps (monday.com, any SCIM 2.0 app).
    #[command(subcommand)]
    Connection(connection::ConnectionCommand),
    /// Roles, mappings and connection settings as one TOML file: check, import, export.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Show what the rules give chosen workers: role and why, grant, every attribute.
    Preview {
        /// Employee ids (repeatable).
        #[arg(long = "worker")]
        workers: Vec<String>,
        /// Otherwise this many workers spread over the population.
        #[arg(long)]
        sample: Option<usize>,
        /// Preview an unsaved configuration file instead of the one in force.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Evaluate as of this day (YYYY-MM-DD) instead of today.
        #[arg(long)]
        today: Option<jiff::civil::Date>,
        /// One JSON document on stdout, nothing else.
        #[arg(long)]
        json: bool,
    },
    /// The plan for a connection: what apply would do, and why.
    Plan {
        /// The connection (needed when several are configured).
        #[arg(long)]
        connection: Option<String>,
        /// One JSON document on stdout, nothing else.
        #[arg(long)]
        json: bool,
        /// List the workers with nothing to do too.
        #[arg(long)]
        verbose: bool,
        /// Plan as of this moment (RFC 3339) instead of now.
        #[arg(long)]
        as_of: Option<jiff::Timestamp>,
        /// Only these workers (employee ids; repeatable): what `apply --worker` would do.
        #[arg(long = "worker")]
        workers: Vec<String>,
    },
    /// Plan and apply: every action journaled; a stopped run is resolved on the next.
    /// Exit code 3: a mass-deprovision, team or reactivation guard held what it refused (the rest was
    /// applied); 4: some actions failed or a worker was set aside; 5: another run holds the connection.
    Apply {
        /// The connection (needed when several are configured).
        #[arg(long)]
        connection: Option<String>,
        /// Lets through the deactivations the mass-deprovision guard holds: their exact number.
        #[arg(long)]
        confirm_deprovision: Option<usize>,
        /// Lets through the team removals the team guard holds: their exact number.
        #[arg(long)]
        confirm_team_removals: Option<usize>,
        /// Lets through the reactivations the reactivation guard holds: their exact number.
        #[arg(long)]
        confirm_reactivation: Option<usize>,
        /// Apply as of this moment (RFC 3339) instead of now.
        #[arg(long)]
        as_of: Option<jiff::Timestamp>,
        /// Only these workers (employee ids; repeatable): the urgent leaver, the VIP hire. Same
        /// guard, journal, audit and notices as a full run.
        #[arg(long = "worker")]
        workers: Vec<String>,
        /// Print the run's summary and failures only, not the plan.
        #[arg(long, conflicts_with = "json")]
        quiet: bool,
        /// Print one JSON document: run id, counts, failures (notes go to stderr).
        #[arg(long)]
        json: bool,
        /// Do not ask before more creates than the connection's confirm_creates_over (50).
        #[arg(long)]
        yes: bool,
        /// With --as-of against a connection that is not the sandbox: the connection's name,
        /// to say in so many words that this rehearsal acts on a real target.
        #[arg(long, value_name = "CONNECTION")]
        confirm_production: Option<String>,
        /// On a store with platform users, a guard confirmation from the command line on the
        /// store itself needs a reason: audited as break-glass and sent as a notice.
        #[arg(long, value_name = "REASON")]
        break_glass: Option<String>,
    },
    /// The daemon: reconcile on a schedule, at once after a pushed HR change, and when a
    /// future-dated event takes effect; SIGTERM finishes the run in progress, then stops.
    Run {
        /// Time between scheduled reconciles: 30s, 5m, 1h (bare seconds too).
        #[arg(long, default_value = "5m", value_parser = duration::interval)]
        interval: std::time::Duration,
        /// Also serve the HR push endpoint here (POST /hr/v1/push).
        #[arg(long)]
        listen_hr: Option<SocketAddr>,
        /// Rehearse: run the clock from this moment (RFC 3339) instead of now, e.g. against the
        /// sandbox to see future-dated events fire at their moment.
        #[arg(long)]
        rehearse_from: Option<jiff::Timestamp>,
        /// A rehearsal on a connection that is not the sandbox: name it (repeatable) to say in
        /// so many words that the rehearsal acts on that real target.
        #[arg(long = "confirm-production", value_name = "CONNECTION")]
        confirm_production: Vec<String>,
    },
    /// The service: the HR push endpoint, health (/healthz) and readiness (/readyz) probes and
    /// the scheduler (as `tenure run`) in one process on one address. SIGTERM lets in-flight
    /// work finish, then stops.
    Serve {
        /// Port 0 picks a free port (the chosen one is printed).
        #[arg(long, default_value = "127.0.0.1:8790")]
        listen: SocketAddr,
        /// The TLS certificate chain (PEM); with --tls-key, the service speaks https.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<std::path::PathBuf>,
        /// The TLS private key (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<std::path::PathBuf>,
        /// Plain http on an address other than loopback (behind a proxy that terminates TLS).
        #[arg(long)]
        insecure_http: bool,
        /// Time between scheduled reconciles: 30s, 5m, 1h (bare seconds too); 0: none at all
        /// (runs start only through the API or `tenure apply`; HR data is still taken as it comes).
        #[arg(long, default_value = "5m", value_parser = duration::interval)]
        interval: std::time::Duration,
        /// A session ends after this long without a request (e.g. 30m, 2h).
        #[arg(long, default_value = "30m", env = "TENURE_SESSION_IDLE", value_parser = duration::parse)]
        session_idle: std::time::Duration,
        /// A session ends this long after its login, whatever happens (e.g. 12h).
        #[arg(long, default_value = "12h", env = "TENURE_SESSION_MAX", value_parser = duration::parse)]
        session_max: std::time::Duration,
        /// Addresses or networks that may scrape /metrics without a token (comma-separated,
        /// e.g. 127.0.0.1,10.0.0.0/8; default loopback). A token works from anywhere.
        #[arg(long, env = "TENURE_METRICS_ALLOW")]
        metrics_allow: Option<String>,
        /// Reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed
        /// (comma-separated addresses or networks; default none): behind one, the client's own
        /// address is what failed logins are counted by and what --metrics-allow checks.
        #[arg(long, env = "TENURE_TRUSTED_PROXIES")]
        trusted_proxies: Option<String>,
        /// A first start: make the store and its master key when the data folder (or
        /// database) has none. Without it, a folder without a store is refused.
        #[arg(long)]
        init: bool,
    },
    /// Make a new store and its master key in the data folder (or the database of
    /// --database-url, the key in the data folder). A store already there is left as it is.
    Init,
    /// Shell completions, from the command line's own definition, on standard output.
    Completions {
        /// The shell: bash, zsh or fish.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Manual pages (man 1), from the command line's own definition: tenure.1 and one page per
    /// command (tenure-apply.1, ...), written into a folder.
    Man {
        /// The folder to write them into (made when missing).
        #[arg(long, default_value = "man")]
        out: PathBuf,
    },
    /// A consistent copy of the store, also while `tenure serve` runs (SQLite's VACUUM INTO),
    /// with the HR archive and a manifest (version, schema, audit head, key fingerprint). The
    /// master key is left out unless --key-passphrase-file encrypts it into the backup.
    Backup {
        /// A new or empty folder.
        dest: Option<PathBuf>,
        /// Put the master key in the backup, encrypted with the passphrase in this file (at
        /// least 16 characters).
        #[arg(long)]
        key_passphrase_file: Option<PathBuf>,
        /// Verify the store instead (a PostgreSQL database after pg_restore, or any restored
        /// store): schema, audit chain, and that the key opens every secret.
        #[arg(long, conflicts_with = "dest")]
        check: bool,
    },
    /// Put a backup back, into an empty data folder only; its scheduled runs then wait until
    /// a person confirms (`tenure restore --confirm`).
    Restore {
        /// The backup folder.
        #[arg(required_unless_present = "confirm")]
        src: Option<PathBuf>,
        /// The master key kept apart from the backup.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// The passphrase of a backup that holds its key.
        #[arg(long)]
        key_passphrase_file: Option<PathBuf>,
        /// The restored store has been looked at: its scheduled runs may start.
        #[arg(long, conflicts_with_all = ["src", "key_file", "key_passphrase_file"])]
        confirm: bool,
    },
    /// Print the admin API's OpenAPI 3.1 document (as `tenure serve` serves it at
    /// /api/v1/openapi.json).
    Openapi,
    /// Platform users: who may use tenure, as Admin, Editor, Reviewer or Viewer.
    #[command(subcommand)]
    User(users::UserCommand),
    /// API tokens for scripts and monitoring: shown once, stored hashed, revocable.
    #[command(subcommand)]
    Token(users::TokenCommand),
    /// Supervised mode: the workers' actions waiting for a reviewer (--all: every decision too).
    Reviews {
        /// The connection (needed when several are configured).
        #[arg(long)]
        connection: Option<String>,
        /// Decided reviews too, not only the pending ones.
        #[arg(long)]
        all: bool,
        /// One JSON document on stdout, nothing else.
        #[arg(long)]
        json: bool,
    },
    /// Approve pending reviews: the next run carries their actions out.
    Approve(reviews::Decide),
    /// Reject pending reviews: their actions are not done (while the plan proposes the same).
    Reject(reviews::Decide),
    /// Workers whose actions failed run after run, set aside: list them, or retry.
    #[command(subcommand)]
    DeadLetters(reviews::DeadLetterCommand),
    /// Notifications: set a notifier's secret (webhook signing key or SMTP password), or send
    /// a test notice through one.
    #[command(subcommand)]
    Notify(notify::NotifyCommand),
    /// The master key that seals stored secrets: rotate it.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// The audit log: verify its hash chain, one worker's timeline, or an export.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Per connection, what the console's dashboard shows: enabled or paused, the last run and
    /// the last successful one with their counts, the next run (with --interval), reviews
    /// waiting, dead letters, held workers, the guard when it stopped a run; and the last HR
    /// data received.
    Status {
        /// The interval `tenure serve` or `tenure run` runs at (e.g. 30m): shows the next run.
        #[arg(long)]
        interval: Option<String>,
        /// One JSON document on stdout (as GET /api/v1/status gives it).
        #[arg(long)]
        json: bool,
    },
    /// The processes (`tenure serve`, `tenure run`) working on this store now: where, since
    /// when, and the connections each holds with its lease's epoch and expiry.
    Nodes {
        /// One JSON document on stdout (as the status API's `nodes`).
        #[arg(long)]
        json: bool,
    },
    /// The accounts tenure manages: each one's worker, state as tenure left it, and the last
    /// thing done to it.
    Accounts {
        /// Only this connection's accounts.
        #[arg(long)]
        connection: Option<String>,
        /// One JSON array on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Runs with their counts (Total, Skipped, No change, Processed, Failed), who or what
    /// started each, rehearsals marked and guard-refused attempts listed; `runs show ID`.
    Runs {
        #[command(subcommand)]
        cmd: Option<audit::RunsCommand>,
        /// Only this connection's runs.
        #[arg(long)]
        connection: Option<String>,
        /// The newest this many.
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// One JSON array.
        #[arg(long)]
        json: bool,
    },
    /// The whole loop on this machine: sandbox, connection, example HR data and rules, plan,
    /// apply, and the accounts that result. Run again: no change.
    Quickstart {
        /// Where the sandbox listens.
        #[arg(long, default_value = "127.0.0.1:8787")]
        listen: SocketAddr,
        /// The HR file to load (default: examples/hr/workers.csv).
        #[arg(long)]
        hr_file: Option<PathBuf>,
        /// The rules (default: examples/tenure.toml).
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Keep the sandbox up afterwards, until Ctrl-C.
        #[arg(long)]
        serve: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// `tenure man`: one page for tenure and one per command, written into `dir`.
fn man_pages(dir: &std::path::Path) -> Result<u8, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    let cmd = <Cli as clap::CommandFactory>::command();
    let write = |name: &str, c: clap::Command| -> Result<(), String> {
        let path = dir.join(format!("{name}.1"));
        let mut buf = vec![];
        clap_mangen::Man::new(c).title(name.to_uppercase()).render(&mut buf).map_err(|e| e.to_string())?;
        std::fs::write(&path, buf).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    let mut n = 1;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("tenure-{}", sub.get_name());
        write(&name, sub.clone().display_name(name.clone()).bin_name(format!("tenure {}", sub.get_name())))?;
        n += 1;
    }
    write("tenure", cmd)?;
    outln!("{n} manual pages in {}", dir.display());
    Ok(0)
}

/// `tenure init` (and `serve --init`): the store and its key, made or found; what it did.
async fn init_store(dir: &std::path::Path, database_url: Option<&str>) -> Result<String, String> {
    let c = crate::config::create(dir, database_url).await?;
    let store_is = match database_url {
        Some(u) => format!("the database at {}", crate::config::without_password(u)),
        None => dir.join("tenure.db").display().to_string(),
    };
    c.store.close().await;
    Ok(if c.made {
        format!(
            "a new tenure store in {store_is}, its secrets sealed under master key {} ({}): keep a copy of that key \
             file apart from the store's backups",
            c.key.id(),
            dir.join(store::secrets::KEY_FILE).display()
        )
    } else {
        format!("a tenure store is in {store_is} already (master key {}): nothing was made", c.key.id())
    })
}

pub(crate) fn share(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not between 0 and 1"))
    }
}

/// A command given `--server`: carried out by the server as the token's user. Only the
/// commands that decide or take data go through; the rest work on the store itself.
async fn through_server(remote: &remote::Remote, command: Command) -> Result<u8, String> {
    use reviews::Through;
    match command {
        Command::Reviews { connection, all, json } => {
            reviews::through_server(remote, Through::List { connection, all, json }).await
        }
        Command::Approve(d) => reviews::through_server(remote, Through::Decide(d, true)).await,
        Command::Reject(d) => reviews::through_server(remote, Through::Decide(d, false)).await,
        Command::DeadLetters(cmd) => reviews::through_server(remote, Through::DeadLetters(cmd)).await,
        Command::Hr(cmd) => hr::load_through(remote, cmd).await,
        Command::Apply {
            connection,
            confirm_deprovision,
            confirm_team_removals,
            confirm_reactivation,
            as_of,
            workers,
            json,
            break_glass,
            confirm_production,
            ..
        } => {
            if as_of.is_some() || confirm_production.is_some() {
                return Err("--as-of: a rehearsal runs on the store itself, not through --server".into());
            }
            if break_glass.is_some() {
                return Err(
                    "--break-glass is for the store itself: through --server you act as the token's user".into()
                );
            }
            let confirm = [confirm_deprovision, confirm_team_removals, confirm_reactivation];
            let r = remote.apply(connection.as_deref(), &workers, confirm).await?;
            let summary = &r["summary"];
            // Refused whole (nothing applied), or held in part by a guard (the rest applied).
            let refused = r["refused"].is_string() || r["state"] == "refused";
            let guards: Vec<&serde_json::Value> = [&r["guard"]["guards"], &summary["guards"]]
                .into_iter()
                .find_map(|g| g.as_array().filter(|g| !g.is_empty()))
                .map(|g| g.iter().collect())
                .unwrap_or_default();
            if json {
                outln!("{}", serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?);
            } else {
                let said = if refused {
                    format!("REFUSED, nothing applied: {}", r["refused"].as_str().unwrap_or("see the run"))
                } else {
                    summary.to_string()
                };
                outln!(
                    "run {} on {:?} by {}: {said}",
                    r["id"].as_str().unwrap_or("?"),
                    r["connection"].as_str().unwrap_or("?"),
                    r["started_by"].as_str().unwrap_or("?"),
                );
                for g in guards.iter().filter(|_| !refused) {
                    outln!(
                        "HELD by the guard: {} {} wait ({}); the rest was applied. Confirm them with {} {}",
                        g["confirm_with"],
                        g["holds"].as_str().unwrap_or_default(),
                        g["why"].as_str().unwrap_or_default().trim_end_matches('.'),
                        g["flag"].as_str().unwrap_or_default(),
                        g["confirm_with"]
                    );
                }
            }
            let dead = r["newly_dead"].as_array().is_some_and(|d| !d.is_empty());
            Ok(if dead {
                4
            } else if refused || !guards.is_empty() {
                3
            } else if summary["failed"].as_u64().unwrap_or(0) > 0 {
                4
            } else {
                0
            })
        }
        _ => {
            Err("--server is for reviews, approve, reject, dead-letters, hr load and apply; this command works on the \
             store itself (leave out --server and TENURE_SERVER)"
                .into())
        }
    }
}

fn data_dir(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| {
        let base = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("tenure")
    })
}

/// Parses the command line, sets up logging and the runtime, and runs the command.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version are answers, not errors.
            let code = if e.use_stderr() { USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if cli.request_timeout >= cli.lease {
        eprintln!(
            "tenure: --request-timeout ({} s) must be shorter than --lease ({} s): a run sends a request only while \
             its lease has that long left",
            cli.request_timeout.as_secs(),
            cli.lease.as_secs()
        );
        return ExitCode::from(USAGE);
    }
    service::run_lock::configure(service::run_lock::LeaseSettings {
        ttl: cli.lease,
        renew_every: cli.lease / 6,
        request_timeout: cli.request_timeout,
    });
    service::schedule::configure_runs_at_once(cli.runs_at_once.into());
    // One line per action for the daemon (tenure::actions); a command at a terminal prints
    // its own summary instead, and logs only the failed actions (warnings).
    let default = match cli.command {
        Command::Run { .. } | Command::Serve { .. } => "info,sqlx=warn",
        // The audit head after each commit is the service's log line; a command says it itself.
        _ => "info,sqlx=warn,tenure::actions=warn,tenure::audit=off",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TENURE_LOG").unwrap_or_else(|_| default.into());
    let log = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter);
    match cli.log_format {
        LogFormat::Json => log.json().init(),
        LogFormat::Text => {
            use std::io::IsTerminal;
            log.with_ansi(output::colour(std::io::stderr().is_terminal())).init()
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tenure: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let dir = data_dir(cli.data_dir);
    let database_url = cli.database_url;
    let coded = |result: Result<u8, String>| match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("tenure: {e}");
            ExitCode::FAILURE
        }
    };
    if let Some(server) = &cli.server {
        let remote = match remote::Remote::new(server, cli.token_file.as_deref()) {
            Ok(r) => r,
            Err(e) => return coded(Err(e)),
        };
        return coded(rt.block_on(through_server(&remote, cli.command)));
    }
    let command = match cli.command {
        Command::Hr(cmd) => return coded(rt.block_on(hr::run(cmd, &dir, database_url.as_deref()))),
        Command::Config(cmd) => return coded(rt.block_on(config::run(cmd, &dir, database_url.as_deref()))),
        Command::Preview { workers, sample, config, today, json } => {
            return coded(rt.block_on(config::preview(
                &dir,
                database_url.as_deref(),
                config,
                workers,
                sample,
                json,
                today,
            )))
        }
        Command::Plan { connection, json, verbose, as_of, workers } => {
            return coded(rt.block_on(run::plan_cmd(
                &dir,
                database_url.as_deref(),
                connection,
                json,
                verbose,
                as_of,
                workers,
            )))
        }
        Command::Apply {
            connection,
            confirm_deprovision,
            confirm_team_removals,
            confirm_reactivation,
            as_of,
            workers,
            quiet,
            json,
            yes,
            confirm_production,
            break_glass,
        } => {
            return coded(rt.block_on(async {
                let (store, key) = run::open_with_key(&dir, database_url.as_deref()).await?;
                // The command line acts as the OS user running it; a guard confirmation on a
                // store with platform users needs break-glass.
                let me = crate::local::actor();
                let mut actor = me.clone();
                if confirm_deprovision.is_some() || confirm_team_removals.is_some() || confirm_reactivation.is_some() {
                    let local =
                        match crate::local::decide(&store, Some(&key), "confirm the guard", break_glass.as_deref())
                            .await
                        {
                            Ok(l) => l,
                            Err(e) => {
                                store.close().await;
                                return Err(e.to_string());
                            }
                        };
                    for w in &local.warnings {
                        eprintln!("warning: {w}");
                    }
                    actor = local.actor;
                }
                let output = match (quiet, json) {
                    (_, true) => run::Output::Json,
                    (true, _) => run::Output::Quiet,
                    _ => run::Output::Text,
                };
                let watch = run::Terminal::new(output, yes);
                let opts = runs::ApplyOptions {
                    confirm: confirm_deprovision,
                    confirm_team_removals,
                    confirm_reactivation,
                    as_of,
                    watch: &watch,
                    workers,
                    confirm_production,
                    actor: Some(actor),
                    proposer: Some(me),
                    ..runs::ApplyOptions::new(connection)
                };
                let r = run::apply_cmd(&store, &key, opts, output).await;
                store.close().await;
                r
            }));
        }
        Command::Run { interval, listen_hr, rehearse_from, confirm_production } => {
            return coded(rt.block_on(daemon::run(
                &dir,
                database_url.as_deref(),
                interval.max(std::time::Duration::from_secs(1)),
                listen_hr,
                rehearse_from,
                confirm_production,
                None,
            )))
        }
        Command::Serve {
            listen,
            tls_cert,
            tls_key,
            insecure_http,
            interval,
            session_idle,
            session_max,
            metrics_allow,
            trusted_proxies,
            init,
        } => {
            if init {
                match rt.block_on(init_store(&dir, database_url.as_deref())) {
                    Ok(said) => outln!("tenure serve: {said}"),
                    Err(e) => return coded(Err(e)),
                }
            }
            let tls = tls_cert.zip(tls_key);
            let lists =
                metrics_allow.as_deref().map(|l| api::Allow::parse("--metrics-allow", l)).transpose().and_then(|m| {
                    Ok((m, trusted_proxies.as_deref().map(|l| api::Allow::parse("--trusted-proxies", l)).transpose()?))
                });
            let (metrics_allow, trusted_proxies) = match lists {
                Ok((m, t)) => (m.unwrap_or_else(api::Allow::loopback), t.unwrap_or_else(api::Allow::none)),
                Err(e) => return coded(Err(e)),
            };
            let options = serve::Options {
                sessions: api::SessionPolicy { idle: session_idle, max: session_max },
                metrics_allow,
                trusted_proxies,
            };
            return coded(rt.block_on(daemon::run(
                &dir,
                database_url.as_deref(),
                interval,
                None,
                None,
                vec![],
                Some((serve::Listen { addr: listen, tls, insecure_http }, options)),
            )));
        }
        Command::Backup { dest, key_passphrase_file, check } => {
            return coded(rt.block_on(backup::backup(&dir, database_url.as_deref(), dest, key_passphrase_file, check)))
        }
        Command::Restore { src, key_file, key_passphrase_file, confirm } => {
            return coded(rt.block_on(async {
                if confirm {
                    backup::confirm(&dir, database_url.as_deref()).await
                } else {
                    let src = src.ok_or("the backup folder: `tenure restore SRC`")?;
                    backup::restore(&dir, database_url.as_deref(), src, key_file, key_passphrase_file).await
                }
            }))
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut out = std::io::stdout();
            match shell {
                Shell::Bash => clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "tenure", &mut out),
                Shell::Zsh => clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, "tenure", &mut out),
                Shell::Fish => clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, "tenure", &mut out),
            }
            return ExitCode::SUCCESS;
        }
        Command::Man { out } => return coded(man_pages(&out)),
        Command::Init => {
            return coded(rt.block_on(init_store(&dir, database_url.as_deref())).map(|said| {
                outln!("{said}");
                0
            }))
        }
        Command::Openapi => {
            outln!("{}", serde_json::to_string_pretty(&api::openapi_json()).unwrap_or_default());
            return ExitCode::SUCCESS;
        }
        Command::User(cmd) => return coded(rt.block_on(users::user(cmd, &dir, database_url.as_deref()))),
        Command::Token(cmd) => return coded(rt.block_on(users::token(cmd, &dir, database_url.as_deref()))),
        Command::Key(cmd) => return coded(rt.block_on(key::run(cmd, &dir, database_url.as_deref()))),
        Command::Audit(cmd) => return coded(rt.block_on(audit::audit_cmd(&dir, database_url.as_deref(), cmd))),
        Command::Status { interval, json } => {
            return coded(rt.block_on(overview::status(&dir, database_url.as_deref(), interval, json)))
        }
        Command::Accounts { connection, json } => {
            return coded(rt.block_on(overview::accounts(&dir, database_url.as_deref(), connection, json)))
        }
        Command::Nodes { json } => return coded(rt.block_on(overview::nodes(&dir, database_url.as_deref(), json))),
        Command::Runs { cmd, connection, limit, json } => {
            return coded(rt.block_on(audit::runs_cmd(&dir, database_url.as_deref(), cmd, connection, limit, json)))
        }
        Command::Reviews { connection, all, json } => {
            return coded(rt.block_on(reviews::list(&dir, database_url.as_deref(), connection, all, json)))
        }
        Command::Approve(d) => return coded(rt.block_on(reviews::decide(&dir, database_url.as_deref(), d, true))),
        Command::Reject(d) => return coded(rt.block_on(reviews::decide(&dir, database_url.as_deref(), d, false))),
        Command::Notify(cmd) => return coded(rt.block_on(notify::run(cmd, &dir, database_url.as_deref()))),
        Command::DeadLetters(cmd) => {
            return coded(rt.block_on(reviews::dead_letters(&dir, database_url.as_deref(), cmd)))
        }
        Command::Quickstart { listen, hr_file, rules, serve } => {
            if database_url.is_some() {
                // Refused, not ignored: the quickstart keeps its own SQLite file.
                return coded(Err(
                    "quickstart keeps its own SQLite store in the data folder and cannot use --database-url (or \
                     TENURE_DATABASE_URL); unset it, or set up a shared store with `tenure connection add` and \
                     `tenure config import`"
                        .into(),
                ));
            }
            return coded(rt.block_on(quickstart::run(&dir, listen, hr_file, rules, serve)));
        }
        command => command,
    };
    let result = rt.block_on(async move {
        match command {
            Command::Sandbox(a) => sandbox::run(a, &dir).await,
            Command::Hr(_)
            | Command::Config(_)
            | Command::Preview { .. }
            | Command::Plan { .. }
            | Command::Apply { .. }
            | Command::Audit(_)
            | Command::Key(_)
            | Command::Runs { .. }
            | Command::Status { .. }
            | Command::Nodes { .. }
            | Command::Accounts { .. }
            | Command::Reviews { .. }
            | Command::Approve(_)
            | Command::Reject(_)
            | Command::DeadLetters(_)
            | Command::Notify(_)
            | Command::Run { .. }
            | Command::Serve { .. }
            | Command::Openapi
            | Command::Init
            | Command::Completions { .. }
            | Command::Man { .. }
            | Command::Backup { .. }
            | Command::Restore { .. }
            | Command::User(_)
            | Command::Token(_)
            | Command::Quickstart { .. } => {
                unreachable!("handled above, for their exit codes")
            }
            Command::Connection(cmd) => connection::run(cmd, &dir, database_url.as_deref()).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tenure: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A secret from a file, or from the first line of standard input (never a flag: it would
/// stay in the shell's history and the process list). Refused when empty.
pub(crate) fn read_secret(file: Option<&std::path::Path>, what: &str) -> Result<store::Secret, String> {
    let text = match file {
        Some(p) => std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?,
        None => {
            let mut t = String::new();
            std::io::stdin().read_line(&mut t).map_err(|e| e.to_string())?;
            t
        }
    };
    let secret = store::Secret::new(text.trim().to_string());
    if secret.expose().is_empty() {
        return Err(format!("the {what} is empty"));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every option and argument of every command says what it is for.
    #[test]
    fn every_option_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} --{id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() && sub.get_long_about().is_none() {
                    missing.push(format!("{path} {} (the command itself)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = vec![];
        walk(&Cli::command(), "tenure", &mut missing);
        assert!(missing.is_empty(), "without help text:\n{}", missing.join("\n"));
    }
}
