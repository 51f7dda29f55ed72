//! RFC 9457 problem documents for every answer of the listener (the API, the HR push endpoint,
//! the probes), the one mapping of the service's errors onto them, and the JSON body reader that
//! turns bad input into one that says where (line and column) and what (an unknown field by name).

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
                "the request body is over this route's limit (64 MiB for uploads, 10 MiB for a push, 16 KiB to log in)",
            )
        } else {
            Problem::bad_request("unreadable-body", format!("the request body could not be read: {e}"))
        }
    })
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let Some(first) = bytes.iter().find(|b| !b.is_ascii_whitespace()) else {
        return Err(Problem::bad_request("malformed-json", "the request needs a JSON body"));
    };
    // Every body is an object with named fields: serde would also take its fields as a
    // positional array, which no client means.
    if *first != b'{' {
        return Err(Problem::bad_request("invalid-body", "the request body must be a JSON object ({...})"));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let slug = if e.is_data() { "invalid-body" } else { "malformed-json" };
        // serde_json's message names the unknown or missing field and says where.
        Problem::bad_request(slug, format!("request body: {e}"))
            .with_errors(serde_json::json!({"line": e.line(), "column": e.column()}))
    })
}

/// A use case's answer of no, as a problem: the one mapping of the service's error type
/// onto HTTP, for the API and the push endpoint alike.
impl From<service::error::Error> for Problem {
    fn from(e: service::error::Error) -> Problem {
        use service::error::Error;
        let detail = e.to_string();
        match e {
            Error::NotFound(_) => Problem::not_found(detail),
            Error::Invalid { what, .. } if !what.is_empty() => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", detail)
                    .with_errors(serde_json::json!({"at": what}))
            }
            Error::Invalid { .. } => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", detail),
            Error::Conflict(_) => Problem::conflict("duplicate", detail),
            Error::Busy(_) => Problem::conflict("run-in-progress", detail),
            Error::Forbidden(_) => Problem::forbidden("forbidden", detail),
            Error::Refused(_) => Problem::refused(detail),
            Error::Unavailable(_) => Problem::unavailable(detail),
        }
    }
}

/// `map_err` spelling of the mapping, where `?` cannot infer it.
pub fn refused(e: service::error::Error) -> Problem {
    e.into()
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

/// The longest request target taken, in bytes: past it, 414.
pub const MAX_URI: usize = 8 * 1024;
/// The most header bytes taken, names and values: past it, 431.
pub const MAX_HEADERS: usize = 32 * 1024;

/// Refuses, as problem documents, a request whose target or headers are too large, before it
/// reaches any route. (Past the HTTP server's own limits, about 64 KiB of target or 100
/// headers, the server answers by itself, without a body.)
pub async fn limits(req: Request, next: axum::middleware::Next) -> Response {
    let uri = req.uri().to_string().len();
    if uri > MAX_URI {
        return Problem::new(
            StatusCode::URI_TOO_LONG,
            "uri-too-long",
            format!("the request target is {uri} bytes, over the {MAX_URI} taken"),
        )
        .into_response();
    }
    let headers: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    if headers > MAX_HEADERS {
        return Problem::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers-too-large",
            format!("the request's headers are {headers} bytes, over the {MAX_HEADERS} taken"),
        )
        .into_response();
    }
    next.run(req).await
}

/// Any error answer that is not a JSON document already (a method a route does not take,
/// a body an extractor refused, a route outside the API) becomes one, with its status kept.
pub async fn as_problem(r: Response) -> Response {
    let status = r.status();
    let typed = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        // A JSON answer says what it means already (the readiness probe's 503).
        .is_some_and(|v| {
            // A console page says what it means already, in HTML.
            v.starts_with("application/problem+json") || v.starts_with("application/json") || v.starts_with("text/html")
        });
    if !(status.is_client_error() || status.is_server_error()) || typed {
        return r;
    }
    let (parts, body) = r.into_parts();
    let said = axum::body::to_bytes(body, 4096).await.ok().and_then(|b| String::from_utf8(b.to_vec()).ok());
    let (slug, default) = match status {
        StatusCode::METHOD_NOT_ALLOWED => ("method-not-allowed", "this route does not take that method"),
        StatusCode::PAYLOAD_TOO_LARGE => ("body-too-large", "the request body is over this route's limit"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported-media-type", "this content type is not taken here"),
        StatusCode::NOT_FOUND => ("not-found", "nothing here"),
        s if s.is_server_error() => ("unavailable", "the service could not answer"),
        _ => ("bad-request", "the request was refused"),
    };
    let detail = said.filter(|s| !s.trim().is_empty() && !s.trim_start().starts_with('{')).unwrap_or(default.into());
    let mut out = Problem::new(status, slug, detail).into_response();
    // Headers the answer carried (Allow on a 405, Retry-After) stay.
    for (k, v) in parts.headers.iter().filter(|(k, _)| *k != "content-type" && *k != "content-length") {
        out.headers_mut().insert(k.clone(), v.clone());
    }
    out
}
