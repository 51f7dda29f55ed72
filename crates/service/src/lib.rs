//! tenure's use cases, each in one module named in its users' words. Every door (the CLI, the
//! scheduler, the HR endpoints, the admin API and the console) calls down into this crate and
//! only translates: nothing here parses arguments, prints, prompts or knows HTTP.

pub mod accounts;
pub mod alerts;
pub mod audit;
pub mod backup;
pub mod config;
pub mod connections;
pub mod decisions;
pub mod drafts;
/// Lengths of time as tenure writes them (kept with the configuration, which takes some).
pub use rules::duration;
pub mod error;
pub mod guards;
pub mod inbox;
pub mod infer;
pub mod intake;
pub mod kept;
pub mod keys;
pub mod local;
pub mod metrics;
pub mod names;
pub mod nodes;
pub mod notify;
pub mod oidc;
pub mod preview;
pub mod pull;
pub mod registry;
pub mod reviews;
pub mod run_lock;
pub mod run_report;
pub mod runs;
pub mod schedule;
pub mod second_factor;
pub mod secrets;
pub mod status;
pub mod users;
pub mod workers;
