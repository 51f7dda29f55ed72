//! What a use case answers when it cannot do what it was asked: one type for every door, so
//! the API maps it once onto a problem document and the CLI once onto a line and an exit code,
//! and no door reads a message's wording to tell a conflict from bad input.

use store::StoreError;

/// Every message is written for the person who asked: what, where, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The thing named does not exist (a connection, a user, a review, a load).
    #[error("{0}")]
    NotFound(String),
    /// Bad input: `what` names where (a file, a field, a flag) for a door that shows it apart;
    /// `why` is the whole message, which says where too.
    #[error("{why}")]
    Invalid { what: String, why: String },
    /// It exists already, or changed meanwhile.
    #[error("{0}")]
    Conflict(String),
    /// Another run holds the connection: try again when it ends.
    #[error("{0}")]
    Busy(String),
    /// The asker may not do this (maker-checker, a role, a token's scope).
    #[error("{0}")]
    Forbidden(String),
    /// A rule of tenure's said no (the guard, a rehearsal on a real target, a population drop,
    /// a stored secret bound to another address): the message says what would let it go on.
    #[error("{0}")]
    Refused(String),
    /// The store, a target or the HR source could not be reached or refused to keep a write:
    /// nothing was done, and it may be tried again.
    #[error("{0}")]
    Unavailable(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(what: impl Into<String>, why: impl std::fmt::Display) -> Error {
        Error::Invalid { what: what.into(), why: why.to_string() }
    }
    /// Bad input whose message says where.
    pub fn input(why: impl Into<String>) -> Error {
        Error::Invalid { what: String::new(), why: why.into() }
    }
    pub fn refused(why: impl Into<String>) -> Error {
        Error::Refused(why.into())
    }
    pub fn unavailable(why: impl Into<String>) -> Error {
        Error::Unavailable(why.into())
    }
    pub fn not_found(why: impl Into<String>) -> Error {
        Error::NotFound(why.into())
    }
    pub fn conflict(why: impl Into<String>) -> Error {
        Error::Conflict(why.into())
    }
    /// The same kind of error with more said in front (which store, which file).
    pub fn context(self, before: impl std::fmt::Display) -> Error {
        match self {
            Error::NotFound(m) => Error::NotFound(format!("{before}: {m}")),
            Error::Invalid { what, why } => Error::Invalid { what, why: format!("{before}: {why}") },
            Error::Conflict(m) => Error::Conflict(format!("{before}: {m}")),
            Error::Busy(m) => Error::Busy(format!("{before}: {m}")),
            Error::Forbidden(m) => Error::Forbidden(format!("{before}: {m}")),
            Error::Refused(m) => Error::Refused(format!("{before}: {m}")),
            Error::Unavailable(m) => Error::Unavailable(format!("{before}: {m}")),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        match e {
            StoreError::NameTaken(_) | StoreError::Duplicate(_) => Error::Conflict(e.to_string()),
            StoreError::NotFound(_) => Error::NotFound(e.to_string()),
            StoreError::Invalid(_) => Error::Refused(e.to_string()),
            StoreError::Database(_) | StoreError::Migration(_) | StoreError::Full(_) | StoreError::Fenced { .. } => {
                Error::Unavailable(e.to_string())
            }
        }
    }
}

/// The target's answer decides: it refused (a token rejected, a request it will not take) or
/// could not be reached (down, slow, rate-limited past the retries).
impl From<scim_client::ClientError> for Error {
    fn from(e: scim_client::ClientError) -> Error {
        use scim_client::ClientError as C;
        let refused = match &e {
            C::Http { status, .. } => (400..500).contains(status) && *status != 408 && *status != 429,
            C::RetriesExhausted { .. } | C::Transport { .. } | C::Stopped(_) => false,
            C::Redirect { .. } | C::Invalid(_) => true,
            C::Config(_) => return Error::input(e.to_string()),
        };
        if refused {
            Error::Refused(e.to_string())
        } else {
            Error::Unavailable(e.to_string())
        }
    }
}

/// For the doors that still speak in lines (the CLI prints `tenure: <message>`).
impl From<Error> for String {
    fn from(e: Error) -> String {
        e.to_string()
    }
}
