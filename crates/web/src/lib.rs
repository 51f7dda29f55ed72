//! tenure's HTTP doors over the service layer: the admin API (`api/`), the web console
//! (`console/`), the HR push endpoint (`push`), the probes and the listener with its TLS
//! (`serve`). Handlers only translate: a
//! request into a service call, its answer or error into JSON or an RFC 9457 problem.

pub mod api;
pub mod console;
pub mod problem;
pub mod push;
pub mod serve;

// The use cases, under the names the handlers call them by.
use service::{
    audit, config, connections, decisions, intake, metrics, names, notify, preview, reviews, runs, second_factor,
    status, users,
};

/// The console and the admin API on one router (the listener adds the push endpoint and the
/// probes).
pub fn doors(api: api::Shared) -> axum::Router {
    console::router(api.clone()).merge(api::router(api))
}

/// What every answer of the listener goes through: outsized requests refused before any
/// route, every error a problem document (a console page excepted), and the security headers
/// (Content-Security-Policy and the rest) on everything.
pub fn finish(app: axum::Router) -> axum::Router {
    app.layer(axum::middleware::map_response(console::security_headers))
        .layer(axum::middleware::map_response(problem::as_problem))
        .layer(axum::middleware::from_fn(problem::limits))
}
