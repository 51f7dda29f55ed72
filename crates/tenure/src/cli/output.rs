//! Writing to standard output without panicking: `println!` panics when the reader has gone
//! (`tenure plan --json | head`). A closed pipe ends a command quietly with the shell's code
//! for it (141), as it would any Unix tool; a long-running process keeps going.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static KEEP_GOING: AtomicBool = AtomicBool::new(false);
static STAMPED: AtomicBool = AtomicBool::new(false);

/// For the daemon: every line starts with the moment it was written.
pub fn stamp_lines() {
    STAMPED.store(true, Ordering::Relaxed);
}

/// Colour only on a terminal, and never when NO_COLOR is set (no-color.org).
pub fn colour(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// For the daemon and servers: a closed standard output is not a reason to stop.
pub fn keep_going_when_closed() {
    KEEP_GOING.store(true, Ordering::Relaxed);
}

/// One line to standard output (what `outln!` expands to).
pub fn line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let written = if STAMPED.load(Ordering::Relaxed) {
        writeln!(out, "{} {args}", jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ"))
    } else {
        writeln!(out, "{args}")
    };
    if let Err(e) = written {
        closed(e);
    }
}

/// What a failed write to standard output means.
pub fn closed(e: std::io::Error) {
    if KEEP_GOING.load(Ordering::Relaxed) {
        return;
    }
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(141);
    }
    eprintln!("tenure: cannot write to standard output: {e}");
    std::process::exit(1);
}

/// A spinner with its elapsed time for long work (an HR load), drawn on a terminal only.
pub fn spinner(message: String) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.set_message(message);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}
