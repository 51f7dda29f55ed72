//! Knobs that make the sandbox misbehave the way SaaS APIs do, so clients can be tested
//! against them: a rate limit, added latency, 500/503 answers and dropped connections. Every
//! random choice comes from one seeded generator, so a run can be repeated.

use rand::{rngs::StdRng, Rng, SeedableRng};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Requests allowed per window (a minute unless `rate_limit_window` says otherwise);
    /// past that, 429 with Retry-After until the window ends.
    pub rate_limit_per_minute: Option<u32>,
    /// The rate limit's window; None for a minute. Short windows keep client tests quick.
    pub rate_limit_window: Option<Duration>,
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
    pub fn any(&self) -> bool {
        self.rate_limit_per_minute.is_some()
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
    /// 429, retry after this many seconds.
    RateLimited(u64),
    Fail(u16),
    DropBefore,
    DropAfter,
}

/// Counters a test can read from `/_sandbox/stats`.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub rate_limited: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
}

pub struct FaultState {
    pub cfg: Faults,
    rng: Mutex<StdRng>,
    window: Mutex<(Instant, u32)>,
    pub counters: Counters,
}

impl FaultState {
    pub fn new(cfg: Faults) -> Self {
        FaultState {
            rng: Mutex::new(StdRng::seed_from_u64(cfg.seed)),
            window: Mutex::new((Instant::now(), 0)),
            cfg,
            counters: Counters::default(),
        }
    }

    /// Draws the same four numbers for every request, so the sequence of verdicts depends
    /// only on the seed and the order of requests.
    pub fn judge(&self) -> (Duration, Verdict) {
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
        if let Some(limit) = self.cfg.rate_limit_per_minute {
            let window = self.cfg.rate_limit_window.unwrap_or(Duration::from_secs(60));
            let mut w = self.window.lock().expect("window lock");
            let elapsed = w.0.elapsed();
            if elapsed >= window {
                *w = (Instant::now(), 0);
            }
            if w.1 >= limit {
                self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                let left = window.saturating_sub(w.0.elapsed());
                return (delay, Verdict::RateLimited(left.as_secs_f64().ceil().max(1.0) as u64));
            }
            w.1 += 1;
        }
        if err_roll < self.cfg.error_rate {
            self.counters.failed.fetch_add(1, Ordering::Relaxed);
            return (delay, Verdict::Fail(if err_kind { 503 } else { 500 }));
        }
        if drop_roll < self.cfg.drop_rate {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return (delay, if drop_after { Verdict::DropAfter } else { Verdict::DropBefore });
        }
        (delay, Verdict::Serve)
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
        assert!(matches!(v[3], Verdict::RateLimited(secs) if (1..=60).contains(&secs)));
        assert_eq!(s.counters.rate_limited.load(Ordering::Relaxed), 2);
    }
}
