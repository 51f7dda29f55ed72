//! When to try again: exponential backoff with full jitter, never sooner than the server's
//! Retry-After, bounded in attempts and in total time.

use rand::Rng;
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// No retry starts after this much time since the first attempt.
    pub max_elapsed: Duration,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            max_elapsed: Duration::from_secs(120),
            base: Duration::from_millis(100),
            cap: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (0-based), or None to give up.
    pub fn next_wait(&self, attempt: u32, elapsed: Duration, retry_after: Option<Duration>) -> Option<Duration> {
        if attempt + 1 >= self.max_attempts {
            return None;
        }
        let ceiling = self.base.saturating_mul(1u32 << attempt.min(20)).min(self.cap);
        let jitter = Duration::from_secs_f64(rand::thread_rng().gen_range(0.0..=ceiling.as_secs_f64()));
        let wait = retry_after.map_or(jitter, |ra| ra.max(jitter));
        (elapsed + wait <= self.max_elapsed).then_some(wait)
    }
}

/// Retry-After as seconds or as an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        let in_a_minute = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(60));
        let d = parse_retry_after(&in_a_minute).unwrap();
        assert!(d > Duration::from_secs(55) && d <= Duration::from_secs(60), "{d:?}");
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO), "a past date: now");
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn backoff_grows_is_jittered_honours_retry_after_and_gives_up() {
        let p = RetryPolicy::default();
        for attempt in 0..6 {
            let ceiling = p.base * (1 << attempt);
            for _ in 0..50 {
                let w = p.next_wait(attempt, Duration::ZERO, None).unwrap();
                assert!(w <= ceiling, "attempt {attempt}: {w:?} > {ceiling:?}");
            }
        }
        let waits: Vec<_> = (0..50).map(|_| p.next_wait(5, Duration::ZERO, None).unwrap()).collect();
        assert!(waits.iter().any(|w| *w != waits[0]), "full jitter varies");
        let w = p.next_wait(0, Duration::ZERO, Some(Duration::from_secs(3))).unwrap();
        assert!(w >= Duration::from_secs(3));
        assert_eq!(p.next_wait(p.max_attempts - 1, Duration::ZERO, None), None, "bounded in count");
        assert_eq!(p.next_wait(0, p.max_elapsed, Some(Duration::from_secs(1))), None, "bounded in time");
    }
}
