//! Writing to standard output without panicking: `println!` panics when the reader has gone
//! (`tenure plan --json | head`). A closed pipe ends a command quietly with the shell's code
//! for it (141), as it would any Unix tool; a long-running process keeps going.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static KEEP_GOING: AtomicBool = AtomicBool::new(false);

/// For the daemon and servers: a closed standard output is not a reason to stop.
pub fn keep_going_when_closed() {
    KEEP_GOING.store(true, Ordering::Relaxed);
}

/// One line to standard output (what `outln!` expands to).
pub fn line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{args}") {
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
