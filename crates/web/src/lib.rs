//! tenure's HTTP doors over the service layer: the admin API (`api/`), the HR push endpoint
//! (`push`), the probes and the listener with its TLS (`serve`). Handlers only translate: a
//! request into a service call, its answer or error into JSON or an RFC 9457 problem.

pub mod api;
pub mod problem;
pub mod push;
pub mod serve;

// The use cases, under the names the handlers call them by.
use service::{
    audit, config, connections, decisions, intake, metrics, names, notify, preview, reviews, run_lock, runs, status,
    users,
};
