//! What can go wrong talking to a SCIM target, said so a person can act on it. Nothing here
//! ever holds the token: URLs carry none, and bodies are the server's.

use serde_json::Value;
use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    Dns,
    Tls,
    Connect,
    Timeout,
    /// The connection broke while the answer was read.
    Body,
    Other,
}

#[derive(Debug, Clone)]
pub enum ClientError {
    Transport {
        kind: TransportKind,
        url: String,
        message: String,
    },
    Http {
        status: u16,
        scim_type: Option<String>,
        detail: String,
        url: String,
        retry_after: Option<Duration>,
    },
    RetriesExhausted {
        attempts: u32,
        last: Box<ClientError>,
    },
    /// A 3xx: never followed (it could lead where the connection's URL may not).
    Redirect {
        status: u16,
        url: String,
        location: String,
    },
    Invalid(String),
    Config(String),
    /// Not sent: the run this client works for may no longer act on the connection (its
    /// lease was lost, or has less time left than a request may take).
    Stopped(String),
}

impl ClientError {
    pub(crate) fn transport(e: &reqwest::Error, url: &str) -> Self {
        // The whole chain of causes, to tell DNS from TLS from a refused connection.
        let mut chain = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            src = s.source();
        }
        let lower = chain.to_lowercase();
        let kind = if e.is_timeout() || lower.contains("timed out") {
            TransportKind::Timeout
        } else if lower.contains("dns error") || lower.contains("failed to lookup address") {
            TransportKind::Dns
        } else if ["certificate", "tls", "handshake", "corrupt message", "alert", "peer is incompatible"]
            .iter()
            .any(|w| lower.contains(w))
        {
            // rustls' own words: a plain-http port answering https reads as a corrupt message.
            TransportKind::Tls
        } else if e.is_connect() {
            TransportKind::Connect
        } else if e.is_body() || e.is_decode() || lower.contains("incomplete") || lower.contains("closed") {
            TransportKind::Body
        } else {
            TransportKind::Other
        };
        ClientError::Transport { kind, url: url.to_string(), message: chain }
    }

    pub(crate) fn from_status(status: u16, body: &Value, url: &str, retry_after: Option<&str>) -> Self {
        let detail = match body.get("detail").and_then(Value::as_str) {
            Some(d) => d.to_string(),
            None => match body {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            },
        };
        ClientError::Http {
            status,
            scim_type: body.get("scimType").and_then(Value::as_str).map(str::to_string),
            detail,
            url: url.to_string(),
            retry_after: retry_after.and_then(crate::retry::parse_retry_after),
        }
    }

    /// Worth sending again: rate limits, gateway and server trouble, broken connections.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Transport { kind, .. } => !matches!(kind, TransportKind::Dns | TransportKind::Tls),
            ClientError::Http { status, .. } => matches!(status, 429 | 500 | 502 | 503 | 504),
            _ => false,
        }
    }

    /// The request may have been carried out although no success came back.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            ClientError::Transport { kind, .. } => {
                !matches!(kind, TransportKind::Dns | TransportKind::Tls | TransportKind::Connect)
            }
            ClientError::Http { status, .. } => matches!(status, 500 | 502 | 504),
            _ => false,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ClientError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Http { status, .. } => Some(*status),
            ClientError::RetriesExhausted { last, .. } => last.status(),
            _ => None,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Transport { kind, url, message } => {
                let what = match kind {
                    TransportKind::Dns => "the host name could not be resolved (DNS)",
                    TransportKind::Tls => "the TLS connection failed (certificate or handshake)",
                    TransportKind::Connect => "the connection was refused or could not be made",
                    TransportKind::Timeout => "the request timed out",
                    TransportKind::Body => "the connection broke before the answer was complete",
                    TransportKind::Other => "the request failed",
                };
                write!(f, "{what}: {url} ({message})")
            }
            ClientError::Http { status: 401, url, .. } => write!(
                f,
                "the token was rejected (401 from {url}): generate a new one in monday.com Admin > Security > SCIM, then rotate it in tenure"
            ),
            ClientError::Http { status: 403, url, .. } => write!(
                f,
                "the token's account lacks the rights (403 from {url}): the token must be generated by an account admin"
            ),
            ClientError::Http { status, scim_type, detail, url, .. } => {
                write!(f, "{status} from {url}")?;
                if let Some(t) = scim_type {
                    write!(f, " ({t})")?;
                }
                if !detail.is_empty() {
                    write!(f, ": {detail}")?;
                }
                Ok(())
            }
            ClientError::RetriesExhausted { attempts, last } => write!(f, "gave up after {attempts} attempts: {last}"),
            ClientError::Redirect { status, url, location } => write!(
                f,
                "{url} answered {status}, redirecting to {location:?}: tenure does not follow redirects; if the service \
                 moved, change the connection's URL"
            ),
            ClientError::Invalid(m) | ClientError::Config(m) | ClientError::Stopped(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ClientError {}
