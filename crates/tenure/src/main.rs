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
    accounts, audit, config, connections, decisions, duration, infer, intake, local, notify, pull, reviews, run_lock,
    runs, second_factor, secrets, status, users,
};

// glibc's allocator spent a third of a 100,000-account reconcile (and of the sandbox's list
// pages) in malloc/free and page faults on its large, short-lived JSON trees.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's collect and option setter, from the library the allocator above links (the crate
// exposes them only with a feature that brings another crate): a long-running service gives
// the memory a run or an index build freed back to the system at once.
unsafe extern "C" {
    fn mi_collect(force: bool);
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_t` (libmimalloc-sys 0.1.49, pinned in
/// Cargo.lock; a unit test checks the place holds the option's default).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;
/// `mi_option_arena_eager_commit`, in the same enum.
const MI_OPTION_ARENA_EAGER_COMMIT: std::ffi::c_int = 4;

// glibc's trim: SQLite allocates through the C library, not through mimalloc.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
unsafe extern "C" {
    fn malloc_trim(pad: usize) -> std::ffi::c_int;
}

/// For a process that stays up: memory freed is given back to the system at once, not after
/// the allocator's delay (a second), which a thread gone idle never reaches (an idle `tenure
/// serve` kept 30 MiB it had freed). A 100,000-worker run takes as long either way (BENCHMARKS.md).
pub fn long_running() {
    // SAFETY: setting an option takes no pointer and is allowed at any time.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
}

/// The allocator's arenas are committed as they are used rather than all at once: memory an
/// eagerly committed arena gives back stayed counted as the process's own (an idle `serve` at
/// 100,000 workers: 53-59 MiB resident, against 39). A 100,000-worker plan takes as long
/// (BENCHMARKS.md). The option is read when an arena is made, and the first is made at the
/// first allocation, before `main`: hence set from the program's initialisers, which run
/// before the Rust runtime allocates.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static ARENAS_COMMITTED_AS_USED: extern "C" fn() = {
    extern "C" fn set() {
        // SAFETY: setting an option takes no pointer and is allowed at any time.
        unsafe { mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) }
    }
    set
};

/// Gives freed memory back to the system (after a large run, in the long-running service).
pub fn give_back_memory() {
    // SAFETY: mi_collect takes no pointer and may be called from any thread at any time.
    unsafe { mi_collect(true) }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer and is thread-safe.
    unsafe {
        malloc_trim(0);
    }
}

fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(test)]
mod tests {
    unsafe extern "C" {
        fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    }

    #[test]
    fn the_purge_delay_option_is_where_it_is_looked_for() {
        // Its neighbours' defaults too, so that a shifted enum does not pass by chance.
        // SAFETY: reading options takes no pointer.
        let got = unsafe { [14, super::MI_OPTION_PURGE_DELAY, 16].map(|o| mi_option_get(o)) };
        assert_eq!(got, [1, 1000, 0], "eager_commit_delay, purge_delay (ms), use_numa_nodes at their defaults");
        // SAFETY: as above. The arena option is set before `main` (the test harness's too):
        // its neighbours are at their defaults and it is off.
        let got = unsafe { [3, super::MI_OPTION_ARENA_EAGER_COMMIT, 5].map(|o| mi_option_get(o)) };
        assert_eq!(got, [1, 0, 1], "deprecated eager_commit, arena_eager_commit (set off), purge_decommits");
    }
}
