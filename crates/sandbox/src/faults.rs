//! Knobs that make the sandbox misbehave the way SaaS APIs do, so clients can be tested
//! against them: a rate limit (a fixed window, or a token bucket per second, with or without
//! Retry-After and rate headers), added latency, 500/503 answers and dropped connections.
//! Every random choice comes from one seeded generator, so a run can be repeated.

use rand::{rngs::StdRng, Rng, SeedableRng};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Requests allowed per window (a minute unless `rate_limit_window` says otherwise);
    /// past that, 429 with Retry-After until the window ends.
    pub rate_limit_per_minute: Option<u32>,
    /// The rate limit's window; None for a minute. Short windows keep client tests quick.
    pub rate_limit_window: Option<Duration>,
    /// Requests allowed per second, as a token bucket (refilled evenly, holding at most
    /// `rate_burst` requests, one second's worth unless set); past it, 429.
    pub rate_per_second: Option<f64>,
    pub rate_burst: Option<f64>,
    /// A 429 says nothing of when to come back (no Retry-After), as some APIs answer.
    pub no_retry_after: bool,
    /// Every answer tells the limit: `RateLimit-Policy`, `RateLimit-Limit`/`-Remaining`/
    /// `-Reset` and their `X-RateLimit-*` forms.
    pub rate_headers: bool,
    pub latency_ms: u64,
    /// Up to this much more latency, drawn per request.
    pub latency_jitter_ms: u64,
    /// Share of requests (0..1) answered 500 or 503 without being processed.
    pub error_rate: f64,
    /// Share of requests (0..1) whose connection is dropped without an answer, half of them
    /// before the request is processed and half after (the change is made, the answer lost).
    pub drop_rate: f64,
    pub seed: u64,
}

impl Faults {
    /// The token bucket's size: `rate_burst`, else one second's worth (at least one).
    fn burst(&self) -> f64 {
        let rate = self.rate_per_second.unwrap_or(1.0);
        self.rate_burst.filter(|b| *b >= 1.0).unwrap_or(rate).max(1.0)
    }

    pub fn any(&self) -> bool {
        self.rate_limit_per_minute.is_some()
            || self.rate_per_second.is_some()
            || self.latency_ms > 0
            || self.latency_jitter_ms > 0
            || self.error_rate > 0.0
            || self.drop_rate > 0.0
    }
}

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Serve,
    /// 429, retry after this many seconds (None: the answer does not say).
    RateLimited(Option<u64>),
    Fail(u16),
    DropBefore,
    DropAfter,
}

/// What the limit stands at after a request, for the rate headers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    /// Requests allowed per window.
    pub limit: u64,
    pub window_secs: f64,
    pub remaining: u64,
    /// Seconds until the quota is whole again.
    pub reset_secs: u64,
}

/// Counters a test can read from `/_sandbox/stats`.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub rate_limited: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
    /// Requests between arrival and answer (latency included), now and at most.
    pub in_flight: AtomicI64,
    pub max_in_flight: AtomicI64,
}

/// Counts a request in flight until dropped (also when its connection is cut).
pub struct InFlight<'a>(&'a Counters);

impl<'a> InFlight<'a> {
    pub fn enter(c: &'a Counters) -> Self {
        let now = c.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        c.max_in_flight.fetch_max(now, Ordering::Relaxed);
        InFlight(c)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A token bucket: `tokens` as of `at`.
struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct FaultState {
    pub cfg: Faults,
    rng: Mutex<StdRng>,
    window: Mutex<(Instant, u32)>,
    bucket: Mutex<Bucket>,
    pub counters: Counters,
}

impl FaultState {
    pub fn new(cfg: Faults) -> Self {
        FaultState {
            rng: Mutex::new(StdRng::seed_from_u64(cfg.seed)),
            window: Mutex::new((Instant::now(), 0)),
            bucket: Mutex::new(Bucket { tokens: cfg.burst(), at: Instant::now() }),
            cfg,
            counters: Counters::default(),
        }
    }

    /// Draws the same four numbers for every request, so the sequence of verdicts depends
    /// only on the seed and the order of requests.
    pub fn judge(&self) -> (Duration, Verdict) {
        let (delay, verdict, _) = self.judge_with_quota();
        (delay, verdict)
    }

    /// As `judge`, with where the rate limit stands after this request (None without one).
    pub fn judge_with_quota(&self) -> (Duration, Verdict, Option<Quota>) {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let (jitter, err_roll, err_kind, drop_roll, drop_after) = {
            let mut rng = self.rng.lock().expect("rng lock");
            (
                rng.gen_range(0..=self.cfg.latency_jitter_ms),
                rng.gen::<f64>(),
                rng.gen::<bool>(),
                rng.gen::<f64>(),
                rng.gen::<bool>(),
            )
        };
        let delay = Duration::from_millis(self.cfg.latency_ms + jitter);
        let (quota, refused_for) = self.take_quota();
        if let Some(wait) = refused_for {
            self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            // Whole seconds, as Retry-After is; never 0, which would invite a retry at once.
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            return (delay, Verdict::RateLimited((!self.cfg.no_retry_after).then_some(secs)), quota);
        }
        if err_roll < self.cfg.error_rate {
            self.counters.failed.fetch_add(1, Ordering::Relaxed);
            return (delay, Verdict::Fail(if err_kind { 503 } else { 500 }), quota);
        }
        if drop_roll < self.cfg.drop_rate {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return (delay, if drop_after { Verdict::DropAfter } else { Verdict::DropBefore }, quota);
        }
        (delay, Verdict::Serve, quota)
    }

    /// Takes one request from the rate limit: where it stands after, and, when refused, how
    /// long until a request would be allowed.
    fn take_quota(&self) -> (Option<Quota>, Option<Duration>) {
        if let Some(rate) = self.cfg.rate_per_second.filter(|r| *r > 0.0) {
            let burst = self.cfg.burst();
            let mut b = self.bucket.lock().expect("bucket lock");
            let now = Instant::now();
            b.tokens = (b.tokens + rate * now.duration_since(b.at).as_secs_f64()).min(burst);
            b.at = now;
            let refused = if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                None
            } else {
                Some(Duration::from_secs_f64((1.0 - b.tokens) / rate))
            };
            let quota = Quota {
                limit: burst.round() as u64,
                window_secs: burst / rate,
                remaining: b.tokens.floor() as u64,
                reset_secs: ((burst - b.tokens) / rate).ceil() as u64,
            };
            return (Some(quota), refused);
        }
        let Some(limit) = self.cfg.rate_limit_per_minute else { return (None, None) };
        let window = self.cfg.rate_limit_window.unwrap_or(Duration::from_secs(60));
        let mut w = self.window.lock().expect("window lock");
        if w.0.elapsed() >= window {
            *w = (Instant::now(), 0);
        }
        let refused = if w.1 >= limit {
            Some(window.saturating_sub(w.0.elapsed()))
        } else {
            w.1 += 1;
            None
        };
        let quota = Quota {
            limit: u64::from(limit),
            window_secs: window.as_secs_f64(),
            remaining: u64::from(limit - w.1.min(limit)),
            reset_secs: window.saturating_sub(w.0.elapsed()).as_secs_f64().ceil() as u64,
        };
        (Some(quota), refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdicts(cfg: &Faults, n: usize) -> Vec<Verdict> {
        let s = FaultState::new(cfg.clone());
        (0..n).map(|_| s.judge().1).collect()
    }

    #[test]
    fn same_seed_same_verdicts_and_rates_roughly_hold() {
        let cfg = Faults { error_rate: 0.2, drop_rate: 0.1, seed: 7, ..Faults::default() };
        let a = verdicts(&cfg, 2000);
        assert_eq!(a, verdicts(&cfg, 2000));
        let other = verdicts(&Faults { seed: 8, ..cfg.clone() }, 2000);
        assert_ne!(a, other);
        let fails = a.iter().filter(|v| matches!(v, Verdict::Fail(_))).count();
        let drops = a.iter().filter(|v| matches!(v, Verdict::DropBefore | Verdict::DropAfter)).count();
        assert!((300..500).contains(&fails), "{fails}");
        assert!((100..220).contains(&drops), "{drops}");
        assert!(a.contains(&Verdict::Fail(500)) && a.contains(&Verdict::Fail(503)));
        assert!(a.contains(&Verdict::DropBefore) && a.contains(&Verdict::DropAfter));
    }

    #[test]
    fn rate_limit_counts_within_the_minute() {
        let s = FaultState::new(Faults { rate_limit_per_minute: Some(3), ..Faults::default() });
        let v: Vec<_> = (0..5).map(|_| s.judge().1).collect();
        assert_eq!(&v[..3], &[Verdict::Serve; 3]);
        assert!(matches!(v[3], Verdict::RateLimited(Some(secs)) if (1..=60).contains(&secs)));
        assert_eq!(s.counters.rate_limited.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn the_token_bucket_allows_its_burst_then_refills_at_the_rate() {
        let cfg = Faults { rate_per_second: Some(100.0), rate_burst: Some(5.0), ..Faults::default() };
        let s = FaultState::new(cfg.clone());
        let v: Vec<_> = (0..7).map(|_| s.judge_with_quota()).collect();
        assert!(v[..5].iter().all(|(_, v, _)| *v == Verdict::Serve), "{v:?}");
        assert_eq!(v[5].1, Verdict::RateLimited(Some(1)), "a wait under a second is said as 1 s");
        let q = v[4].2.unwrap();
        assert_eq!((q.limit, q.remaining), (5, 0));
        assert!((q.window_secs - 0.05).abs() < 1e-9, "{q:?}");
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(s.judge().1, Verdict::Serve, "about three tokens came back in 30 ms");
        let quiet = FaultState::new(Faults { no_retry_after: true, ..cfg });
        let last = (0..6).map(|_| quiet.judge().1).last().unwrap();
        assert_eq!(last, Verdict::RateLimited(None), "no Retry-After when told not to");
    }
}
