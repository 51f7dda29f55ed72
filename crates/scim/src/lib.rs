//! SCIM 2.0 for tenure: the data model and schemas of RFC 7643, and the parts of RFC 7644 that
//! are pure computation (attribute paths, filters, PATCH, messages). No I/O: the sandbox serves
//! it over HTTP and the client speaks it to targets.

pub mod dialect;
pub mod error;
pub mod filter;
pub mod fuzzing;
pub mod messages;
pub mod patch;
pub mod resource;
pub mod schema;

/// The `documentationUri` by which tenure knows its own sandbox (in its ServiceProviderConfig):
/// here, where both the sandbox and the runs that look for it can read it.
pub const SANDBOX_MARKER: &str = "https://github.com/tenure/tenure#sandbox";

pub use dialect::Dialect;
pub use error::{Error, Result, ScimType};
pub use filter::{AttrPath, CompValue, CompareOp, Filter, PatchPath};
pub use resource::ResourceSchema;
