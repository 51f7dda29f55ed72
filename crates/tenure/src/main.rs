//! The `tenure` command: keeps accounts in step with the HR system of record over SCIM 2.0.
//! This binary is thin: the command line (`cli/`) and the wiring of the long-running service
//! (`daemon.rs`) over the use cases of the `service` crate and the HTTP doors of `web`.

/// `println!` that never panics on a closed pipe (see cli/output.rs).
macro_rules! outln {
    () => {
        $crate::cli::output::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::line(format_args!($($arg)*))
    };
}

mod cli;
mod daemon;
mod signal;

// The use cases, under the names the command line calls them by.
use service::{
    audit, config, connections, decisions, duration, infer, intake, notify, pull, reviews, run_lock, runs, secrets,
    users,
};

// glibc's allocator spent a third of a 100,000-account reconcile (and of the sandbox's list
// pages) in malloc/free and page faults on its large, short-lived JSON trees.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's collect, from the library the allocator above links (the crate exposes it only
// with a feature that brings another crate): a long-running service gives the memory a run or
// an index build freed back to the system at once, not after the allocator's own delay.
unsafe extern "C" {
    fn mi_collect(force: bool);
}

/// Gives freed memory back to the system (after a large run, in the long-running service).
pub fn give_back_memory() {
    // SAFETY: mi_collect takes no pointer and may be called from any thread at any time.
    unsafe { mi_collect(true) }
}

fn main() -> std::process::ExitCode {
    cli::main()
}
