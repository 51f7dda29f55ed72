//! HR sources for tenure: the worker record (valid by construction), header definitions, and
//! the CSV feed with its row-level quarantine. Knows nothing of SCIM.

pub mod csv_source;
pub mod dates;
pub mod definition;
pub mod generate;
pub mod lifecycle;
pub mod worker;

pub use csv_source::{
    csv_safe, json_worker_id, looks_like_formula, parse_csv, parse_csv_with, parse_json, parse_json_with,
    worker_from_json, FileRejected, Flagged, LoadReport, QuarantinedRow, RowProblem,
};
pub use definition::{header_key, value_key, Column, Encoding, Field, HeaderDefinition, BUILTIN, MAX_FIELD_BYTES};
pub use lifecycle::{detect, Event, EventKind, FieldChange, LifecycleConfig};
pub use worker::{Email, EmploymentType, LeaveKind, Name, Status, TimeZoneName, Worker, WorkerId};
