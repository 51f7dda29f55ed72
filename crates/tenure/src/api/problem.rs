//! RFC 9457 problem documents, and the JSON body reader that turns bad input into one that
//! says where (line and column) and what (an unknown field by name).

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Where the problem types live: `type` is this followed by a stable slug.
pub const TYPE_BASE: &str = "https://tenure.dev/problems/";

/// An error as the API answers it (`application/problem+json`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A stable URI per kind of error, e.g. `https://tenure.dev/problems/forbidden`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    /// What went wrong and what to do, for a person.
    pub detail: String,
    /// More about it (for a bulk request: what was refused and why).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<serde_json::Value>)]
    pub errors: Option<Box<serde_json::Value>>,
    #[serde(skip)]
    retry_after: Option<u32>,
}

impl Problem {
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("{TYPE_BASE}{slug}"),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            errors: None,
            retry_after: None,
        }
    }
    pub fn bad_request(slug: &str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, slug, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", detail)
    }
    pub fn conflict(slug: &str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::CONFLICT, slug, detail)
    }
    pub fn forbidden(slug: &str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, slug, detail)
    }
    /// The store or a target could not be reached: try again later.
    pub fn unavailable(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }
    /// A use case said no: its message is for the person who asked.
    pub fn refused(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "refused", detail)
    }
    pub fn with_errors(mut self, errors: serde_json::Value) -> Problem {
        self.errors = Some(Box::new(errors));
        self
    }
    pub fn retry_after(mut self, seconds: u64) -> Problem {
        self.retry_after = Some(seconds.min(u32::MAX as u64) as u32);
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry = self.retry_after;
        let www = status == StatusCode::UNAUTHORIZED;
        let mut r = (status, serde_json::to_string(&self).unwrap_or_default()).into_response();
        let h = r.headers_mut();
        h.insert("content-type", HeaderValue::from_static("application/problem+json"));
        if let Some(s) = retry {
            h.insert("retry-after", HeaderValue::from(s));
        }
        if www {
            h.insert("www-authenticate", HeaderValue::from_static("Bearer realm=\"tenure\""));
        }
        r
    }
}

impl From<store::StoreError> for Problem {
    fn from(e: store::StoreError) -> Problem {
        match e {
            store::StoreError::Duplicate(m) => Problem::conflict("duplicate", m),
            store::StoreError::Invalid(m) => Problem::refused(m),
            other => Problem::unavailable(other.to_string()),
        }
    }
}

/// A JSON request body. Malformed JSON is a 400 naming line and column; an unknown or
/// missing field is named; past the size cap, 413.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = Problem;
    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let bytes = read_bytes(req, state).await?;
        parse_json(&bytes).map(Body)
    }
}

/// The raw body, with the size cap's refusal as a problem document.
pub async fn read_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<axum::body::Bytes, Problem> {
    axum::body::Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                format!("the request body is over {} MiB", super::MAX_BODY >> 20),
            )
        } else {
            Problem::bad_request("unreadable-body", format!("the request body could not be read: {e}"))
        }
    })
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::bad_request("malformed-json", "the request needs a JSON body"));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let slug = if e.is_data() { "invalid-body" } else { "malformed-json" };
        // serde_json's message names the unknown or missing field and says where.
        Problem::bad_request(slug, format!("request body: {e}"))
            .with_errors(serde_json::json!({"line": e.line(), "column": e.column()}))
    })
}

/// Maps a use case's refusal (a message for a person) onto a problem.
pub fn refused(e: String) -> Problem {
    Problem::refused(e)
}

/// Query parameters; a bad one is a 400 problem document naming it.
pub struct Q<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for Q<T> {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Q(q.0))
            .map_err(|e| Problem::bad_request("invalid-query", e.body_text()))
    }
}
