//! `tenure sandbox`: the SCIM 2.0 service provider that behaves as monday.com, on the command line.

use clap::Args;
use sandbox::{Config, Faults, Limits};
use scim::Dialect;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Args)]
pub struct SandboxArgs {
    /// Address to listen on; port 0 picks a free port (the chosen one is printed).
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    /// SQLite file to keep resources in (default: sandbox.db in the data folder).
    #[arg(long, conflicts_with = "memory")]
    db: Option<PathBuf>,
    /// Keep everything in memory, gone at exit.
    #[arg(long)]
    memory: bool,
    /// monday (monday.com's SCIM API) or generic (plain RFC 7643/7644).
    #[arg(long, default_value = "monday")]
    dialect: Dialect,
    /// JSON file of users (and teams) to preload as if invited by hand: hidden from SCIM lists
    /// unless scim_provisioned_only=false.
    #[arg(long)]
    seed: Option<PathBuf>,
    /// JSON file holding a User schema extension as /Schemas publishes it (RFC 7643 §7), to
    /// store and publish as a target with custom attributes does; may be given more than once.
    #[arg(long = "user-extension")]
    user_extensions: Vec<PathBuf>,
    /// File holding the bearer token to accept (else TENURE_SANDBOX_TOKEN, else the stored one,
    /// else a new one printed once).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Requests allowed per minute (a fixed window); past that, 429 with Retry-After.
    #[arg(long, conflicts_with = "rate_per_second")]
    rate_limit: Option<u32>,
    /// The rate limit's window in seconds, when not a minute.
    #[arg(long, requires = "rate_limit")]
    rate_limit_window_secs: Option<u64>,
    /// Requests allowed per second, as a token bucket refilled evenly; past it, 429.
    #[arg(long, value_parser = positive_rate)]
    rate_per_second: Option<f64>,
    /// Most requests the token bucket lets through at once (default: one second's worth).
    #[arg(long, requires = "rate_per_second", value_parser = positive_rate)]
    rate_burst: Option<f64>,
    /// Answer 429 without Retry-After, as some APIs do.
    #[arg(long)]
    no_retry_after: bool,
    /// Tell the limit on every answer: RateLimit-Policy, RateLimit-Limit/-Remaining/-Reset
    /// and X-RateLimit-Limit/-Remaining/-Reset.
    #[arg(long)]
    rate_headers: bool,
    /// Latency added to every request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Up to this many more milliseconds, drawn per request.
    #[arg(long, default_value_t = 0)]
    latency_jitter_ms: u64,
    /// Share of requests (0 to 1) answered 500 or 503 unprocessed.
    #[arg(long, default_value_t = 0.0, value_parser = super::share)]
    error_rate: f64,
    /// Share of requests (0 to 1) whose connection is dropped without an answer.
    #[arg(long, default_value_t = 0.0, value_parser = super::share)]
    drop_rate: f64,
    /// Seed of the fault knobs' random choices.
    #[arg(long, default_value_t = 1)]
    fault_seed: u64,
    /// Largest request body accepted, in bytes (413 past it).
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// Most resources in one page (a larger count is lowered to it).
    #[arg(long, default_value_t = 1000)]
    max_results: usize,
    /// Deepest nesting a filter may have.
    #[arg(long, default_value_t = 16)]
    max_filter_depth: usize,
    /// Most comparisons one filter may hold (invalidFilter past it).
    #[arg(long, default_value_t = scim::filter::DEFAULT_MAX_TERMS)]
    max_filter_terms: usize,
    /// Longest filter accepted, in bytes (invalidFilter past it).
    #[arg(long, default_value_t = scim::filter::DEFAULT_MAX_BYTES)]
    max_filter_bytes: usize,
    /// Most operations one PATCH may carry (tooMany past it).
    #[arg(long, default_value_t = 1000)]
    max_patch_operations: usize,
    /// Keep every request (method, path, answer, times, and the node and lease epoch tenure
    /// tagged it with) for GET /_sandbox/history: what a test of several nodes checks.
    #[arg(long)]
    record_history: bool,
    /// Serve this many more accounts from this process, each with its own base URL
    /// (`/a/1/scim/v2` ... `/a/N/scim/v2`), store (in memory), fault knobs and the same
    /// token; more can be added with POST /_sandbox/accounts {"name": "..."}.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    accounts: u32,
    /// Answer as a production service would: no sandbox marker in /ServiceProviderConfig, so
    /// tenure refuses to rehearse against it (to try that refusal).
    #[arg(long)]
    as_production: bool,
}

fn positive_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.001 => Ok(r),
        _ => Err(format!("{s:?} is not a number of requests of at least 0.001")),
    }
}

fn read_extensions(files: &[PathBuf]) -> Result<Vec<scim::schema::Schema>, String> {
    files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            let doc: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| format!("{}: line {}, column {}: {e}", p.display(), e.line(), e.column()))?;
            scim::schema::Schema::from_json(&doc).map_err(|e| format!("{}: {e}", p.display()))
        })
        .collect()
}

async fn run_sandbox(cfg: Config, banner: bool, accounts: u32) -> Result<(), String> {
    super::output::keep_going_when_closed();
    let prepared = sandbox::prepare(&cfg).await?;
    for i in 1..=accounts {
        prepared.app.add_account(&i.to_string())?;
    }
    let listener =
        tokio::net::TcpListener::bind(cfg.listen).await.map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let url = format!("http://{addr}/scim/v2");
    let storage = match &cfg.db {
        Some(p) => p.display().to_string(),
        None => "memory".into(),
    };
    if prepared.seeded > 0 {
        outln!("seeded {} hand-invited resources", prepared.seeded);
    }
    if accounts > 0 {
        outln!("also serving {accounts} accounts: http://{addr}/a/1/scim/v2 ... http://{addr}/a/{accounts}/scim/v2");
    }
    if let Some(t) = &prepared.new_token {
        outln!("bearer token (shown once; only its hash is kept): {t}");
    }
    // Last of the start-up lines, so a script can read up to it to learn the port.
    outln!("tenure sandbox listening on {url} (dialect {}, storage {storage})", cfg.dialect);
    if banner {
        let t = prepared.new_token.as_deref().unwrap_or("<your token>");
        outln!("\nTry it:\n  curl -s -H 'Authorization: Bearer {t}' '{url}/Users?count=5'");
        outln!("Stop it with Ctrl-C.");
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    sandbox::serve(listener, prepared.app, crate::signal::shutdown()).await.map_err(|e| e.to_string())?;
    tracing::info!("sandbox stopped");
    Ok(())
}

fn read_token(path: Option<&PathBuf>) -> Result<Option<String>, String> {
    if let Some(p) = path {
        let t = std::fs::read_to_string(p).map_err(|e| format!("cannot read token file {}: {e}", p.display()))?;
        let t = t.trim().to_string();
        if t.is_empty() {
            return Err(format!("token file {} is empty", p.display()));
        }
        return Ok(Some(t));
    }
    Ok(std::env::var("TENURE_SANDBOX_TOKEN").ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()))
}

/// `tenure sandbox`: serves until Ctrl-C.
pub async fn run(a: SandboxArgs, dir: &std::path::Path) -> Result<(), String> {
    let db = if a.memory {
        None
    } else {
        Some(match a.db {
            Some(p) => p,
            None => {
                store::secrets::private_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                dir.join("sandbox.db")
            }
        })
    };
    let cfg = Config {
        listen: a.listen,
        db,
        dialect: a.dialect,
        seed: a.seed,
        user_extensions: read_extensions(&a.user_extensions)?,
        token: read_token(a.token_file.as_ref())?,
        faults: Faults {
            rate_limit_per_minute: a.rate_limit,
            rate_limit_window: a.rate_limit_window_secs.map(std::time::Duration::from_secs),
            rate_per_second: a.rate_per_second,
            rate_burst: a.rate_burst,
            no_retry_after: a.no_retry_after,
            rate_headers: a.rate_headers,
            latency_ms: a.latency_ms,
            latency_jitter_ms: a.latency_jitter_ms,
            error_rate: a.error_rate,
            drop_rate: a.drop_rate,
            seed: a.fault_seed,
        },
        limits: Limits {
            max_body_bytes: a.max_body_bytes,
            max_results: a.max_results.max(1),
            max_filter_depth: a.max_filter_depth.max(1),
            max_filter_terms: a.max_filter_terms.max(1),
            max_filter_bytes: a.max_filter_bytes.max(1),
            max_patch_operations: a.max_patch_operations.max(1),
            sandbox_marker: !a.as_production,
            record_history: a.record_history,
            ..Limits::default()
        },
    };
    run_sandbox(cfg, false, a.accounts).await
}
