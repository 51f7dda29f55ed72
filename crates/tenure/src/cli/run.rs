//! `tenure plan` and `tenure apply`: a run asked for on the command line, its plan, prompt,
//! progress and summary printed.

use crate::{config, run_lock, runs};
use engine::{Kind, Plan};
use jiff::Timestamp;
use runs::{ApplyOptions, Watch};
use service::run_report::{Applied, RunOutcome};
use std::io::{IsTerminal, Write};
use std::path::Path;
use store::{MasterKey, Store};

/// How a command reports: in full, the summary and failures only, or JSON alone on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Text,
    Quiet,
    Json,
}

impl Output {
    /// A note for the person at the terminal: on stderr when stdout is for JSON.
    pub fn note(self, msg: &str) {
        match self {
            Output::Json => eprintln!("{msg}"),
            Output::Text | Output::Quiet => outln!("{msg}"),
        }
    }
}

const ORDER: [Kind; 10] = [
    Kind::Create,
    Kind::Adopt,
    Kind::Reactivate,
    Kind::Update,
    Kind::TeamAdd,
    Kind::TeamRemove,
    Kind::Deactivate,
    Kind::Delete,
    Kind::Skip,
    Kind::NoChange,
];

/// The plan for a person: grouped by kind, coloured on a terminal.
pub fn print_plan(plan: &Plan, verbose: bool) {
    use std::io::Write;
    let color = crate::cli::output::colour(std::io::stdout().is_terminal());
    let paint = |code: &str, s: &str| if color { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() };
    // One buffer for the whole plan: stdout flushes every line, a system call per action.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = (|| -> std::io::Result<()> {
        writeln!(out, "plan for {:?}:", plan.connection)?;
        for k in ORDER {
            let acts: Vec<_> = plan.actions.iter().filter(|a| a.kind == k).collect();
            if acts.is_empty() || (k == Kind::NoChange && !verbose) {
                continue;
            }
            let code = match k {
                Kind::Create | Kind::Reactivate | Kind::Adopt => "32",
                Kind::Update | Kind::TeamAdd | Kind::TeamRemove => "33",
                Kind::Deactivate | Kind::Delete => "31",
                _ => "2",
            };
            writeln!(out, "{}", paint(code, &format!("  {} ({})", k.as_str(), acts.len())))?;
            for a in acts {
                let who = a.user_name.as_deref().unwrap_or_default();
                write!(out, "    worker {:<10} {who:<36} {}", a.worker, a.reason)?;
                if let Some(t) = &a.team {
                    write!(out, " [team {t}]")?;
                }
                writeln!(out)?;
                for c in &a.changes {
                    writeln!(out, "        {}: {} -> {}", c.attribute, c.before, c.after)?;
                }
            }
        }
        if !plan.unmanaged.is_empty() {
            writeln!(
                out,
                "  not managed by tenure, left alone ({}): {}",
                plan.unmanaged.len(),
                plan.unmanaged.join(", ")
            )?;
        }
        let counts: Vec<String> = ORDER.iter().map(|k| format!("{} {}", k.as_str(), plan.count(*k))).collect();
        writeln!(out, "plan: {}", counts.join(", "))?;
        out.flush()
    })();
    if let Err(e) = written {
        crate::cli::output::closed(e);
    }
}

pub async fn open_with_key(data_dir: &Path, database_url: Option<&str>) -> Result<(Store, MasterKey), String> {
    let store = config::open(data_dir, database_url).await?;
    let key = MasterKey::load(data_dir)?;
    Ok((store, key))
}

/// `tenure plan`: exit code 0, or 3 (the guard's) when apply would be refused.
#[allow(clippy::too_many_arguments)] // one per command-line option
pub async fn plan_cmd(
    data_dir: &Path,
    database_url: Option<&str>,
    connection: Option<String>,
    json: bool,
    verbose: bool,
    as_of: Option<Timestamp>,
    only: Vec<String>,
) -> Result<u8, String> {
    let (store, key) = open_with_key(data_dir, database_url).await?;
    let now = as_of.unwrap_or_else(Timestamp::now);
    let output = if json { Output::Json } else { Output::Text };
    let p = async {
        let rules = config::current(&store).await?;
        let name = rules.connections[runs::pick(&rules, connection.as_deref())?].name.clone();
        let (p, busy) = runs::plan(&store, &key, rules, &name, now, &only, "tenure plan").await?;
        if let Some(h) = busy {
            eprintln!(
                "note: a run is in progress on {name:?} ({} since {}): this plan does not count its actions in flight",
                h.info,
                run_lock::moment(h.since_ms)
            );
        }
        let restored = service::backup::unconfirmed_restore(&store).await?;
        Ok::<_, String>((p, restored))
    }
    .await;
    store.close().await;
    let (p, restored) = p?;
    // A store that went back in time: what it plans may undo what happened since its backup.
    if let Some(r) = &restored {
        let said = format!(
            "this store was restored at {} from the backup of {}: what happened after that moment is not in it, so \
             this plan may undo it (reactivations of leavers above all); scheduled runs wait for `tenure restore \
             --confirm`",
            r["restored_at"].as_str().unwrap_or("?"),
            r["taken_at"].as_str().unwrap_or("?")
        );
        if !json {
            outln!("RESTORED: {said}");
        }
    }
    if p.recovered > 0 {
        output.note(&format!("resolved {} action(s) left in flight by an earlier run", p.recovered));
    }
    let verdict = runs::guard_verdict(&p);
    if json {
        let mut v = runs::plan_document(&p)?;
        if let Some(r) = restored {
            v["restored"] = r;
        }
        outln!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
    } else {
        print_plan(&p.plan, verbose);
        for g in verdict["guards"].as_array().into_iter().flatten() {
            outln!(
                "{}: {}; apply holds these {} {} and applies the rest, until confirmed with {} {}",
                g["name"].as_str().unwrap_or_default(),
                g["why"].as_str().unwrap_or_default().trim_end_matches('.'),
                g["confirm_with"],
                g["holds"].as_str().unwrap_or_default(),
                g["flag"].as_str().unwrap_or_default(),
                g["confirm_with"]
            );
        }
    }
    runs::release(p);
    Ok(if verdict["refused"] == true { GUARD_REFUSED } else { 0 })
}

/// Exit codes of a run's outcomes (README's table).
pub const GUARD_REFUSED: u8 = 3;

pub fn exit_code(outcome: RunOutcome) -> u8 {
    match outcome {
        RunOutcome::Done | RunOutcome::Stopped => 0,
        RunOutcome::GuardRefused | RunOutcome::GuardHeld => GUARD_REFUSED,
        RunOutcome::Failures => 4,
        RunOutcome::Busy => 5,
        RunOutcome::NotConfirmed => 6,
    }
}

/// A run watched from a terminal (or a log): notes by the output mode, the plan in full in text
/// mode, a question before many creates, and a progress bar on a terminal.
pub struct Terminal {
    pub output: Output,
    /// Do not ask before many creates (`--yes`, the daemon).
    pub yes: bool,
    bar: indicatif::ProgressBar,
}

impl Terminal {
    pub fn new(output: Output, yes: bool) -> Terminal {
        // Progress in workers, with rate and time left, on a terminal only.
        let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        if !std::io::stderr().is_terminal() || output == Output::Json {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} workers, {per_sec}, {eta} left")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Terminal { output, yes, bar }
    }
}

impl Watch for Terminal {
    fn note(&self, line: &str) {
        self.output.note(line);
    }

    fn plan(&self, plan: &Plan) {
        if self.output == Output::Text {
            print_plan(plan, false);
        }
    }

    fn confirm_creates(&self, creates: usize, over: usize, connection: &str) -> bool {
        let asks = matches!(self.output, Output::Text | Output::Quiet);
        if self.yes || !asks || !std::io::stdin().is_terminal() {
            return true;
        }
        // Seats cost money: a person at a terminal says so before many accounts are made.
        eprint!(
            "{creates} new account(s) will be created on {connection:?}, more than the {over} that go without asking \
             (each may be a paid seat). Go on? [y/N] "
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        let yes = matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes");
        if !yes {
            outln!("not confirmed: nothing was applied (use --yes to skip this question)");
        }
        yes
    }

    fn progress(&self, done: usize, total: usize) {
        self.bar.set_length(total as u64);
        self.bar.set_position(done as u64);
        if done == total {
            self.bar.finish_and_clear();
        }
    }

    fn waiting(&self, connection: &str, h: &store::Holder) {
        outln!("{connection:?}: waiting for the run of {} (since {}) to end", h.info, run_lock::moment(h.since_ms));
    }
}

/// Applies under the connection's run lock; exit code 0 when every action succeeded, 3 when
/// the guard refused, 4 on failures, 5 when another run holds the connection, 6 when the
/// person asked before many creates said no.
pub async fn apply_cmd(store: &Store, key: &MasterKey, opts: ApplyOptions<'_>, output: Output) -> Result<u8, String> {
    let a = runs::run_apply(store, key, opts).await?;
    report(&a, output)?;
    // A worker set aside in this run is said by its own code, whatever else the run met.
    Ok(if a.newly_dead.is_empty() { exit_code(a.outcome) } else { exit_code(RunOutcome::Failures) })
}

/// What a run came to, as lines (or JSON) for the person or the log.
pub fn report(a: &Applied, output: Output) -> Result<(), String> {
    if let Some(busy) = &a.busy {
        output.note(busy);
        if output == Output::Json {
            outln!("{}", serde_json::json!({"connection": a.connection, "busy": busy}));
        }
    }
    match (&a.guard, &a.summary) {
        (Some(verdict), None) if output == Output::Json => {
            outln!("{}", serde_json::json!({"connection": a.connection, "guard": verdict, "applied": false}));
        }
        (_, Some(summary)) => print_summary(summary, a, output)?,
        _ => {}
    }
    Ok(())
}

fn print_summary(summary: &engine::apply::Summary, a: &Applied, output: Output) -> Result<(), String> {
    match output {
        Output::Json => {
            let mut v = serde_json::to_value(summary).map_err(|e| e.to_string())?;
            v["connection"] = serde_json::json!(a.connection);
            v["newly_dead"] = serde_json::json!(a.newly_dead);
            if let Some(verdict) = &a.guard {
                // What a guard held; the rest was applied.
                v["guard"] = verdict.clone();
            }
            outln!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
        }
        Output::Text | Output::Quiet => {
            let kinds: Vec<String> = summary.by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
            outln!(
                "run {}: total {}, skipped {}, no change {}, processed {}, failed {}{}",
                summary.run_id,
                summary.total,
                summary.skipped,
                summary.no_change,
                summary.processed,
                summary.failed,
                if kinds.is_empty() { String::new() } else { format!(" ({})", kinds.join(", ")) }
            );
            // Each failure where it happened: worker, action, and the target's answer.
            for f in &summary.failed_actions {
                let who = f.user_name.as_deref().map(|u| format!(" ({u})")).unwrap_or_default();
                let team = f.team.as_deref().map(|t| format!(" [team {t}]")).unwrap_or_default();
                outln!("failed: worker {}{who} {}{team}: {}", f.worker, f.action, f.error);
            }
            for g in a.guard.iter().flat_map(|v| v["guards"].as_array().into_iter().flatten()) {
                outln!(
                    "HELD by the guard: {} {} wait ({}); the rest was applied. Confirm them with --connection {:?} {} {}",
                    g["confirm_with"],
                    g["holds"].as_str().unwrap_or_default(),
                    g["why"].as_str().unwrap_or_default().trim_end_matches('.'),
                    a.connection,
                    g["flag"].as_str().unwrap_or_default(),
                    g["confirm_with"]
                );
            }
        }
    }
    Ok(())
}
