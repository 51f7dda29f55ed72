//! An async SCIM 2.0 client for tenure's connections: bearer authentication, a pace learned
//! from the target's 429s and rate headers and shared by every task using the connection
//! (under an admin's ceiling), retries with backoff and full jitter
//! (honouring Retry-After), paging that survives servers that ignore `count` or change their
//! totals, and a dialect for what targets do differently (monday.com first). Creates are never
//! blindly retried: a POST that got no answer is looked up before it is sent again, and a 409
//! leads to adopting the existing account.

mod error;
mod limiter;
pub mod outbound;
mod retry;
pub mod target;

pub use error::{ClientError, TransportKind};
pub use limiter::{RateLimiter, Signals};
pub use retry::{parse_retry_after, RetryPolicy};
pub use target::{InstanceUrl, UrlPolicy};

use scim::patch::{OpKind, Operation};
use scim::{Dialect, PatchPath};
use serde_json::{json, Value};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A bearer token. It never shows itself: `Debug` and `Display` print only its last four
/// characters.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    pub fn new(secret: impl Into<String>) -> Self {
        Token(secret.into().trim().to_string())
    }
    pub fn masked(&self) -> String {
        let tail: String = self.0.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
        format!("****{tail}")
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({})", self.masked())
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The SCIM base URL, e.g. `https://acme.monday.com/scim/v2/`.
    pub base_url: String,
    pub dialect: Dialect,
    /// Requests per second this client (and every clone of it) may send at most, whatever it
    /// learns of the target's limit; None for no ceiling.
    pub requests_per_second: Option<f64>,
    /// The pace to share with other clients of the same connection (so a run starts at what
    /// the runs before it learned); None for a limiter of this client's own.
    pub limiter: Option<Arc<RateLimiter>>,
    pub retry: RetryPolicy,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub page_size: usize,
    /// Pages of a list read at once once the first page has told the total (1: one by one).
    pub page_concurrency: usize,
    /// Send DELETE for users; off by default (monday.com deprovisions by deactivation).
    pub allow_delete: bool,
    /// Which addresses the target's host may resolve to when a connection is made.
    pub address_policy: UrlPolicy,
}

impl ClientConfig {
    pub fn new(base_url: &str, dialect: Dialect) -> Self {
        ClientConfig {
            base_url: base_url.to_string(),
            dialect,
            requests_per_second: None,
            limiter: None,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            page_size: 100,
            page_concurrency: 4,
            allow_delete: false,
            address_policy: UrlPolicy::default(),
        }
    }
}

/// Counts of what the client had to do; read them with `ScimClient::stats`.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub rate_limited: AtomicU64,
    pub lookups_before_retry: AtomicU64,
    pub recovered_creates: AtomicU64,
    pub adopted: AtomicU64,
    /// Answers by class: 2xx, 3xx, 4xx, 5xx, and no answer at all (transport).
    pub by_status: [AtomicU64; 5],
}

/// The classes `Stats::by_status` counts, in order.
pub const STATUS_CLASSES: [&str; 5] = ["2xx", "3xx", "4xx", "5xx", "transport"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    pub requests: u64,
    pub retries: u64,
    pub rate_limited: u64,
    pub lookups_before_retry: u64,
    pub recovered_creates: u64,
    pub adopted: u64,
    pub by_status: [u64; 5],
}

/// A target's own description of its User resource, as served (kept raw so it can be stored
/// and read again the same way).
#[derive(Debug, Clone)]
pub struct Discovery {
    pub user_type: Option<Value>,
    pub schemas: Vec<Value>,
}

impl Discovery {
    pub fn to_json(&self) -> Value {
        serde_json::json!({ "user_type": self.user_type, "schemas": self.schemas })
    }

    pub fn from_json(v: &Value) -> Discovery {
        Discovery {
            user_type: v.get("user_type").filter(|t| !t.is_null()).cloned(),
            schemas: v.get("schemas").and_then(Value::as_array).cloned().unwrap_or_default(),
        }
    }

    pub fn user_schema(&self) -> Result<scim::ResourceSchema, String> {
        scim::ResourceSchema::user_from_discovery(self.user_type.as_ref(), &self.schemas)
    }
}

/// What a connection test found the target to support.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// Where the answers came from: the discovery document, or a plain list call.
    pub source: &'static str,
    pub filter: bool,
    pub max_results: Option<u64>,
    pub patch: bool,
    pub etag: bool,
    pub bulk: bool,
    pub sort: bool,
    /// Users the token can see, when the target says.
    pub users: Option<u64>,
}

/// What a create ended as.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// The target answered 201.
    New(Value),
    /// The POST got no answer, and the user was found on the target: it had been created.
    Recovered(Value),
    /// The target already had an account with this userName (409): it is taken over.
    Adopted(Value),
}

impl Created {
    pub fn resource(&self) -> &Value {
        match self {
            Created::New(v) | Created::Recovered(v) | Created::Adopted(v) => v,
        }
    }
    pub fn id(&self) -> &str {
        self.resource()["id"].as_str().unwrap_or_default()
    }
}

/// One answer, read whole.
#[derive(Debug)]
struct Reply {
    body: Value,
}

#[derive(Clone)]
pub struct ScimClient {
    http: reqwest::Client,
    cfg: Arc<ClientConfig>,
    base: String,
    token: Token,
    limiter: Arc<RateLimiter>,
    stats: Arc<Stats>,
    /// The run this client works for, when one: no request starts without its leave, and
    /// each says which node and lease epoch sent it.
    run: Option<Arc<RunTag>>,
}

/// Which run a client's requests belong to.
pub struct RunTag {
    /// The process incarnation (`X-Tenure-Node`).
    pub node: String,
    /// The lease's epoch (`X-Tenure-Epoch`).
    pub epoch: i64,
    /// Asked before every request: None to go, Some(why) to send nothing.
    pub gate: Box<dyn Fn() -> Option<String> + Send + Sync>,
}

impl fmt::Debug for ScimClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScimClient").field("base", &self.base).field("token", &self.token).finish()
    }
}

enum Idempotence {
    /// Safe to send again (GET, PUT, PATCH, DELETE).
    Safe,
    /// A POST /Users: before sending again, look for the user it would have made.
    CreateUser { user_name: String, external_id: Option<String> },
    /// A POST /Groups: look for the group by displayName.
    CreateGroup { display_name: String },
}

impl ScimClient {
    pub fn new(cfg: ClientConfig, token: Token) -> Result<Self, ClientError> {
        let mut base = cfg.base_url.trim().to_string();
        if !base.ends_with('/') {
            base.push('/');
        }
        // No redirect is followed and every resolved address is checked (outbound.rs).
        let http = outbound::client_builder(cfg.address_policy)
            .timeout(cfg.timeout)
            .connect_timeout(cfg.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("tenure/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Config(format!("cannot build the HTTP client: {e}")))?;
        let limiter = cfg.limiter.clone().unwrap_or_else(|| Arc::new(RateLimiter::adaptive(cfg.requests_per_second)));
        Ok(ScimClient { http, cfg: Arc::new(cfg), base, token, limiter, stats: Arc::new(Stats::default()), run: None })
    }

    pub fn dialect(&self) -> Dialect {
        self.cfg.dialect
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn stats(&self) -> StatsSnapshot {
        let s = &self.stats;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            requests: l(&s.requests),
            retries: l(&s.retries),
            rate_limited: l(&s.rate_limited),
            lookups_before_retry: l(&s.lookups_before_retry),
            recovered_creates: l(&s.recovered_creates),
            adopted: l(&s.adopted),
            by_status: std::array::from_fn(|i| l(&s.by_status[i])),
        }
    }

    /// The pace in force towards the target, requests per second: learned from its answers,
    /// under the ceiling; None while the target has shown no limit and none is set.
    pub fn rate(&self) -> Option<f64> {
        self.limiter.rate()
    }

    /// The pace learned from the target's refusals, if any (see `RateLimiter::learned`).
    pub fn learned_rate(&self) -> Option<f64> {
        self.limiter.learned()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path.trim_start_matches('/'))
    }

    /// The same client, its requests belonging to a run: gated and tagged (see [`RunTag`]).
    pub fn for_run(&self, tag: RunTag) -> ScimClient {
        ScimClient { run: Some(Arc::new(tag)), ..self.clone() }
    }

    /// One attempt: waits for the rate limiter, sends, tells the limiter what the answer said
    /// of the limit, reads the whole answer.
    async fn attempt(&self, method: &reqwest::Method, url: &str, body: Option<&Value>) -> Result<Reply, ClientError> {
        let gate = || self.run.as_ref().and_then(|r| (r.gate)()).map(ClientError::Stopped);
        // A long wait (a Retry-After) asks the run's gate every second: a run stopped or that
        // lost its lease meanwhile sends nothing.
        let sent = self.limiter.acquire_unless(gate).await?;
        // Asked last, just before sending: the limiter may have made it wait.
        if let Some(e) = gate() {
            return Err(e);
        }
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let mut req = self
            .http
            .request(method.clone(), url)
            .bearer_auth(self.token.expose())
            .header("Accept", "application/scim+json, application/json");
        if let Some(r) = &self.run {
            req = req.header("X-Tenure-Node", &r.node).header("X-Tenure-Epoch", r.epoch.to_string());
        }
        if let Some(b) = body {
            req = req.header("Content-Type", "application/scim+json; charset=utf-8").body(b.to_string());
        }
        let resp = req.send().await.map_err(|e| {
            self.stats.by_status[4].fetch_add(1, Ordering::Relaxed);
            ClientError::transport(&e, url)
        })?;
        let status = resp.status().as_u16();
        let signals = Signals::from_headers(status, |n| resp.headers().get(n).and_then(|h| h.to_str().ok()));
        self.limiter.answered(sent, &signals);
        let class = usize::from((status / 100).clamp(2, 5)) - 2;
        self.stats.by_status[class].fetch_add(1, Ordering::Relaxed);
        let retry_after = resp.headers().get("retry-after").and_then(|h| h.to_str().ok()).map(str::to_string);
        let location = resp.headers().get("location").and_then(|h| h.to_str().ok()).map(str::to_string);
        let text = resp.text().await.map_err(|e| ClientError::transport(&e, url))?;
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.chars().take(2000).collect()))
        };
        if (200..300).contains(&status) || status == 304 {
            return Ok(Reply { body });
        }
        if (300..400).contains(&status) {
            // Not followed, and its body is not shown: it is whatever the redirect leads to.
            // Named without its query: a redirect may carry a code or token there.
            let location = location
                .map(|l| match reqwest::Url::parse(url).and_then(|base| base.join(&l)) {
                    Ok(mut u) => {
                        u.set_query(None);
                        u.set_fragment(None);
                        u.to_string()
                    }
                    Err(_) => l.split(['?', '#']).next().unwrap_or_default().to_string(),
                })
                .unwrap_or_default();
            return Err(ClientError::Redirect { status, url: url.to_string(), location });
        }
        Err(ClientError::from_status(status, &body, url, retry_after.as_deref()))
    }

    /// Sends with retries. Creates are looked up before they are sent again, so a retry never
    /// makes a duplicate.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        idempotence: Idempotence,
    ) -> Result<(Reply, bool), ClientError> {
        let url = self.url(path);
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            let err = match self.attempt(&method, &url, body).await {
                Ok(r) => return Ok((r, false)),
                Err(e) => e,
            };
            if let ClientError::Http { status: 429, .. } = err {
                self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            }
            if !err.is_retryable() {
                return Err(err);
            }
            let Some(wait) = self.cfg.retry.next_wait(attempt, started.elapsed(), err.retry_after()) else {
                return Err(ClientError::RetriesExhausted { attempts: attempt + 1, last: Box::new(err) });
            };
            // Said as it happens: an operator waiting on a silent target sees why.
            tracing::warn!(
                "no good answer from {url}: {err}; retry {} of {} in {:.1} s",
                attempt + 1,
                self.cfg.retry.max_attempts.saturating_sub(1),
                wait.as_secs_f64()
            );
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
            attempt += 1;
            // The create may have happened although its answer was lost (or the server failed
            // after acting): find it before sending it again.
            if err.outcome_unknown() {
                match &idempotence {
                    Idempotence::Safe => {}
                    Idempotence::CreateUser { user_name, external_id } => {
                        self.stats.lookups_before_retry.fetch_add(1, Ordering::Relaxed);
                        // Boxed: a lookup is itself a call.
                        let mut found = Box::pin(self.find_user_by_user_name(user_name)).await?;
                        if found.is_none() {
                            if let Some(x) = external_id {
                                found = Box::pin(self.find_user_by_external_id(x)).await?;
                            }
                        }
                        if let Some(u) = found {
                            self.stats.recovered_creates.fetch_add(1, Ordering::Relaxed);
                            return Ok((Reply { body: u }, true));
                        }
                    }
                    Idempotence::CreateGroup { display_name } => {
                        self.stats.lookups_before_retry.fetch_add(1, Ordering::Relaxed);
                        if let Some(g) = Box::pin(self.find_group_by_name(display_name)).await? {
                            self.stats.recovered_creates.fetch_add(1, Ordering::Relaxed);
                            return Ok((Reply { body: g }, true));
                        }
                    }
                }
            }
        }
    }

    async fn get(&self, path: &str) -> Result<Value, ClientError> {
        Ok(self.call(reqwest::Method::GET, path, None, Idempotence::Safe).await?.0.body)
    }

    /// `/ServiceProviderConfig`, or None when the target does not serve it (monday.com may not).
    pub async fn service_provider_config(&self) -> Result<Option<scim::messages::ServiceProviderConfig>, ClientError> {
        match self.get("ServiceProviderConfig").await {
            Ok(v) => Ok(serde_json::from_value(v).ok()),
            Err(ClientError::Http { status: 404 | 405 | 501, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// What the target publishes of its User resource: the `/ResourceTypes` User entry (when
    /// served) and every `/Schemas` document. None when the target publishes no schemas
    /// (monday.com's discovery is unconfirmed).
    pub async fn discover_user_schema(&self) -> Result<Option<Discovery>, ClientError> {
        let resources = |v: Value| match v {
            Value::Array(items) => items,
            mut v => match v.get_mut("Resources").map(Value::take) {
                Some(Value::Array(items)) => items,
                _ => vec![],
            },
        };
        let schemas = match self.get("Schemas").await {
            Ok(v) => resources(v),
            Err(ClientError::Http { status: 404 | 405 | 501, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let user_type = match self.get("ResourceTypes").await {
            Ok(v) => resources(v).into_iter().find(|r| {
                r.get("name")
                    .or_else(|| r.get("id"))
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case("User"))
            }),
            Err(ClientError::Http { status: 404 | 405 | 501, .. }) => None,
            Err(e) => return Err(e),
        };
        Ok(Some(Discovery { user_type, schemas }))
    }

    /// Proves the connection works and says what the target supports. Reads
    /// `/ServiceProviderConfig` where it exists, and lists one user either way, since discovery
    /// may be served without authentication.
    pub async fn test_connection(&self) -> Result<Capabilities, ClientError> {
        let spc = self.service_provider_config().await?;
        match self.get(&format!("Users?{}", self.list_query(None, 1, 1))).await {
            Ok(page) => {
                let users = page.get("totalResults").and_then(Value::as_u64);
                Ok(match spc {
                    Some(c) => Capabilities {
                        source: "ServiceProviderConfig",
                        filter: c.filter.supported,
                        max_results: (c.filter.max_results > 0).then_some(c.filter.max_results),
                        patch: c.patch.supported,
                        etag: c.etag.supported,
                        bulk: c.bulk.supported,
                        sort: c.sort.supported,
                        users,
                    },
                    // monday.com may not publish discovery: what its API is known to do.
                    None => Capabilities {
                        source: "GET /Users?count=1",
                        filter: true,
                        max_results: None,
                        patch: true,
                        etag: false,
                        bulk: false,
                        sort: false,
                        users,
                    },
                })
            }
            Err(ClientError::Http { status: 404, .. }) => Err(ClientError::Invalid(format!(
                "this is not a SCIM URL: {0}ServiceProviderConfig and {0}Users both answered 404; monday.com's is https://<account>.monday.com/scim/v2/",
                self.base
            ))),
            Err(e) => Err(e),
        }
    }

    fn list_query(&self, filter: Option<&str>, start: usize, count: usize) -> String {
        let mut q = format!("startIndex={start}&count={count}");
        if let Some(f) = filter {
            q.push_str("&filter=");
            q.push_str(&encode(f));
        }
        // monday.com hides users and teams not created through SCIM unless asked.
        if self.cfg.dialect == Dialect::Monday {
            q.push_str("&scim_provisioned_only=false");
        }
        q
    }

    /// Every resource of a list, page by page (1-based startIndex). Survives servers that
    /// return more or fewer than asked, and totals that change between pages; a resource seen
    /// twice is kept once. Once the first page has told the total, the following pages are
    /// asked for `page_concurrency` at a time (a long list is mostly waiting on the server),
    /// and taken in order; any page that does not start where the previous one ended (a short
    /// page, a total that moved) sends the rest back to one page at a time from there.
    pub async fn list_all(&self, endpoint: &str, filter: Option<&str>) -> Result<Vec<Value>, ClientError> {
        self.list_all_excluding(endpoint, filter, None).await
    }

    /// `list_all`, asking the server to leave out the `excluded` attributes (comma-separated).
    pub async fn list_all_excluding(
        &self,
        endpoint: &str,
        filter: Option<&str>,
        excluded: Option<&str>,
    ) -> Result<Vec<Value>, ClientError> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut keep = |resources: Vec<Value>| {
            for r in resources {
                let fresh = match r.get("id").and_then(Value::as_str) {
                    Some(id) => seen.insert(id.to_string()),
                    None => true,
                };
                if fresh {
                    out.push(r);
                }
            }
        };
        let count = self.cfg.page_size.max(1);
        let (resources, total) = self.page(endpoint, filter, excluded, 1, count).await?;
        let step = resources.len();
        let mut start = 1 + step;
        keep(resources);
        if step == 0 || start > total {
            return Ok(out);
        }
        if self.cfg.page_concurrency > 1 {
            let starts: Vec<usize> = (start..=total).step_by(step).collect();
            let pages = self.pages_at(endpoint, filter, excluded, &starts, count).await?;
            for (s, (resources, total)) in starts.iter().zip(pages) {
                if *s != start || resources.is_empty() {
                    break;
                }
                start += resources.len();
                keep(resources);
                if start > total {
                    return Ok(out);
                }
            }
        }
        loop {
            let (resources, total) = self.page(endpoint, filter, excluded, start, count).await?;
            let got = resources.len();
            keep(resources);
            start += got;
            if got == 0 || start > total {
                return Ok(out);
            }
        }
    }

    /// One page of a list: its resources (taken, not copied) and the total the server gave.
    async fn page(
        &self,
        endpoint: &str,
        filter: Option<&str>,
        excluded: Option<&str>,
        start: usize,
        count: usize,
    ) -> Result<(Vec<Value>, usize), ClientError> {
        let mut query = self.list_query(filter, start, count);
        if let Some(x) = excluded {
            query.push_str("&excludedAttributes=");
            query.push_str(&encode(x));
        }
        let mut page = self.get(&format!("{endpoint}?{query}")).await?;
        let total = page.get("totalResults").and_then(Value::as_u64).unwrap_or(0) as usize;
        let resources = match page.get_mut("Resources").map(Value::take) {
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        };
        Ok((resources, total))
    }

    /// The pages at `starts`, at most `page_concurrency` in flight, returned in order.
    async fn pages_at(
        &self,
        endpoint: &str,
        filter: Option<&str>,
        excluded: Option<&str>,
        starts: &[usize],
        count: usize,
    ) -> Result<Vec<(Vec<Value>, usize)>, ClientError> {
        let mut results: Vec<Option<(Vec<Value>, usize)>> = (0..starts.len()).map(|_| None).collect();
        let mut set = tokio::task::JoinSet::new();
        let mut next = 0;
        loop {
            while next < starts.len() && set.len() < self.cfg.page_concurrency {
                let (c, e, s) = (self.clone(), endpoint.to_string(), starts[next]);
                let (f, x) = (filter.map(str::to_string), excluded.map(str::to_string));
                let i = next;
                set.spawn(async move { (i, c.page(&e, f.as_deref(), x.as_deref(), s, count).await) });
                next += 1;
            }
            let Some(done) = set.join_next().await else { break };
            // Dropping the set on an error cancels the pages still in flight.
            let (i, page) = done.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            results[i] = Some(page?);
        }
        Ok(results.into_iter().flatten().collect())
    }

    async fn find_one(&self, endpoint: &str, filter: &str) -> Result<Option<Value>, ClientError> {
        let page = self.get(&format!("{endpoint}?{}", self.list_query(Some(filter), 1, 2))).await?;
        Ok(page.get("Resources").and_then(Value::as_array).and_then(|r| r.first()).cloned())
    }

    pub async fn find_user_by_user_name(&self, user_name: &str) -> Result<Option<Value>, ClientError> {
        self.find_one("Users", &format!("userName eq {}", Value::String(user_name.to_string()))).await
    }

    pub async fn find_user_by_external_id(&self, external_id: &str) -> Result<Option<Value>, ClientError> {
        self.find_one("Users", &format!("externalId eq {}", Value::String(external_id.to_string()))).await
    }

    pub async fn find_user_by_email(&self, email: &str) -> Result<Option<Value>, ClientError> {
        self.find_one("Users", &format!("emails.value eq {}", Value::String(email.to_string()))).await
    }

    pub async fn find_group_by_name(&self, name: &str) -> Result<Option<Value>, ClientError> {
        self.find_one("Groups", &format!("displayName eq {}", Value::String(name.to_string()))).await
    }

    pub async fn get_user(&self, id: &str) -> Result<Option<Value>, ClientError> {
        match self.get(&format!("Users/{}", encode(id))).await {
            Ok(v) => Ok(Some(v)),
            Err(ClientError::Http { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn list_users(&self, filter: Option<&str>) -> Result<Vec<Value>, ClientError> {
        self.list_all("Users", filter).await
    }

    /// Every user, without what a reconcile does not read: `groups` (teams are read from
    /// their member lists) and `meta`; about half of each user's bytes on the wire. A target
    /// that refuses `excludedAttributes` (RFC 7644 §3.4.2.5) is asked again without it.
    pub async fn list_users_lean(&self) -> Result<Vec<Value>, ClientError> {
        match self.list_all_excluding("Users", None, Some("groups,meta")).await {
            Err(ClientError::Http { status: 400 | 501, .. }) => self.list_all("Users", None).await,
            r => r,
        }
    }

    pub async fn list_groups(&self, filter: Option<&str>) -> Result<Vec<Value>, ClientError> {
        self.list_all("Groups", filter).await
    }

    /// Creates a user. A lost answer is resolved by looking the user up; a 409 adopts the
    /// existing account (monday.com users invited by hand included).
    pub async fn create_user(&self, user: &Value) -> Result<Created, ClientError> {
        if self.cfg.dialect == Dialect::Monday {
            if let Some(t) = user.get("userType").and_then(Value::as_str) {
                if !scim::dialect::MONDAY_USER_TYPES.contains(&t) {
                    return Err(ClientError::Invalid(format!(
                        "userType {t:?} is not a monday.com user type (admin, member, viewer, guest)"
                    )));
                }
            }
        }
        let user_name = user.get("userName").and_then(Value::as_str).unwrap_or_default().to_string();
        let external_id = user.get("externalId").and_then(Value::as_str).map(str::to_string);
        let idem = Idempotence::CreateUser { user_name: user_name.clone(), external_id };
        match self.call(reqwest::Method::POST, "Users", Some(user), idem).await {
            Ok((r, false)) => Ok(Created::New(r.body)),
            Ok((r, true)) => Ok(Created::Recovered(r.body)),
            Err(ClientError::Http { status: 409, .. }) => match self.find_user_by_user_name(&user_name).await? {
                // Taken over only when it is the same address (ASCII case aside): a server
                // that folds more than that (Unicode case, look-alike letters) would otherwise
                // hand over another person's account.
                Some(existing)
                    if existing
                        .get("userName")
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.eq_ignore_ascii_case(&user_name)) =>
                {
                    self.stats.adopted.fetch_add(1, Ordering::Relaxed);
                    Ok(Created::Adopted(existing))
                }
                Some(existing) => Err(ClientError::Invalid(format!(
                    "the target refused {user_name:?} as a duplicate of the existing account {:?}, which is another \
                     address (the target folds case or look-alike letters): not taken over; correct the address",
                    existing.get("userName").and_then(Value::as_str).unwrap_or_default()
                ))),
                None => Err(ClientError::Invalid(format!(
                    "the target refused {user_name:?} as a duplicate but no user with that userName can be found"
                ))),
            },
            Err(e) => Err(e),
        }
    }

    /// PATCH in the target's dialect: monday.com takes attribute replacements as one
    /// path-less replace; other targets get one operation per path.
    pub async fn patch_user(&self, id: &str, ops: &[Operation]) -> Result<Value, ClientError> {
        self.patch("Users", id, ops).await
    }

    async fn patch(&self, endpoint: &str, id: &str, ops: &[Operation]) -> Result<Value, ClientError> {
        let body = scim::patch::to_message(&self.dialect_ops(ops));
        let path = format!("{endpoint}/{}", encode(id));
        let reply = self.call(reqwest::Method::PATCH, &path, Some(&body), Idempotence::Safe).await?.0.body;
        // 204 No Content is legal: read the resource back.
        match reply {
            Value::Null => self.get(&path).await,
            v => Ok(v),
        }
    }

    /// monday.com: plain `replace` operations on simple paths become one path-less replace.
    fn dialect_ops(&self, ops: &[Operation]) -> Vec<Operation> {
        if self.cfg.dialect != Dialect::Monday {
            return ops.to_vec();
        }
        let mut merged = serde_json::Map::new();
        let mut rest = Vec::new();
        for op in ops {
            match (&op.op, &op.path, &op.value) {
                (OpKind::Replace, Some(p), Some(v)) if p.filter.is_none() && p.attr.uri.is_none() => {
                    merged.insert(p.attr.to_string(), v.clone());
                }
                _ => rest.push(op.clone()),
            }
        }
        let mut out = Vec::new();
        if !merged.is_empty() {
            out.push(Operation { op: OpKind::Replace, path: None, value: Some(Value::Object(merged)) });
        }
        out.extend(rest);
        out
    }

    /// Deprovisioning: `active` false.
    pub async fn deactivate_user(&self, id: &str) -> Result<Value, ClientError> {
        self.patch_user(id, &[replace("active", json!(false))]).await
    }

    pub async fn reactivate_user(&self, id: &str) -> Result<Value, ClientError> {
        self.patch_user(id, &[replace("active", json!(true))]).await
    }

    /// Hard delete, refused unless the configuration allows it.
    pub async fn delete_user(&self, id: &str) -> Result<(), ClientError> {
        if !self.cfg.allow_delete {
            return Err(ClientError::Invalid(
                "deleting users is off for this connection: deprovision by deactivating, or allow delete explicitly"
                    .into(),
            ));
        }
        match self.call(reqwest::Method::DELETE, &format!("Users/{}", encode(id)), None, Idempotence::Safe).await {
            Ok(_) | Err(ClientError::Http { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn create_group(&self, display_name: &str, member_ids: &[&str]) -> Result<Created, ClientError> {
        let body = json!({"schemas": [scim::schema::GROUP], "displayName": display_name,
            "members": member_ids.iter().map(|m| json!({"value": m})).collect::<Vec<_>>()});
        let idem = Idempotence::CreateGroup { display_name: display_name.to_string() };
        match self.call(reqwest::Method::POST, "Groups", Some(&body), idem).await {
            Ok((r, false)) => Ok(Created::New(r.body)),
            Ok((r, true)) => Ok(Created::Recovered(r.body)),
            Err(ClientError::Http { status: 409, .. }) => match self.find_group_by_name(display_name).await? {
                Some(g) => {
                    self.stats.adopted.fetch_add(1, Ordering::Relaxed);
                    Ok(Created::Adopted(g))
                }
                None => Err(ClientError::Invalid(format!("group {display_name:?} conflicts but cannot be found"))),
            },
            Err(e) => Err(e),
        }
    }

    /// Adds members. The answer leaves the member list out (`excludedAttributes`, RFC 7644
    /// §3.9): a large team would otherwise come back whole on every call.
    pub async fn add_members(&self, group_id: &str, user_ids: &[&str]) -> Result<Value, ClientError> {
        let value = Value::Array(user_ids.iter().map(|u| json!({"value": u})).collect());
        let op = Operation { op: OpKind::Add, path: Some(path("members")), value: Some(value) };
        self.patch_members(group_id, &[op]).await
    }

    async fn patch_members(&self, group_id: &str, ops: &[Operation]) -> Result<Value, ClientError> {
        let body = scim::patch::to_message(&self.dialect_ops(ops));
        let path = format!("Groups/{}?excludedAttributes=members", encode(group_id));
        Ok(self.call(reqwest::Method::PATCH, &path, Some(&body), Idempotence::Safe).await?.0.body)
    }

    pub async fn remove_members(&self, group_id: &str, user_ids: &[&str]) -> Result<Value, ClientError> {
        let ops: Vec<Operation> = user_ids
            .iter()
            .map(|u| Operation {
                op: OpKind::Remove,
                path: Some(
                    PatchPath::parse(&format!("members[value eq {}]", Value::String(u.to_string())))
                        .expect("a value filter on members parses"),
                ),
                value: None,
            })
            .collect();
        self.patch_members(group_id, &ops).await
    }

    pub async fn rename_group(&self, group_id: &str, name: &str) -> Result<Value, ClientError> {
        self.patch("Groups", group_id, &[replace("displayName", json!(name))]).await
    }

    pub async fn delete_group(&self, group_id: &str) -> Result<(), ClientError> {
        match self.call(reqwest::Method::DELETE, &format!("Groups/{}", encode(group_id)), None, Idempotence::Safe).await
        {
            Ok(_) | Err(ClientError::Http { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn path(p: &str) -> PatchPath {
    PatchPath::parse(p).expect("a constant path parses")
}

/// A `replace` of one attribute.
pub fn replace(attr: &str, value: Value) -> Operation {
    Operation { op: OpKind::Replace, path: Some(path(attr)), value: Some(value) }
}

/// Percent-encodes a query or path component.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
