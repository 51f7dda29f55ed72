//! A client-side rate limit: requests are spaced evenly, and every clone of a client shares
//! one limiter, so all tasks using a connection together stay under its limit.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    next: Mutex<Instant>,
}

impl RateLimiter {
    pub fn per_second(rate: f64) -> Self {
        let rate = if rate.is_finite() && rate > 0.0 { rate } else { 1.0 };
        RateLimiter { interval: Duration::from_secs_f64(1.0 / rate), next: Mutex::new(Instant::now()) }
    }

    /// Waits for this caller's slot. Slots are handed out in order, one interval apart.
    pub async fn acquire(&self) {
        let slot = {
            let mut next = self.next.lock().expect("limiter lock");
            let now = Instant::now();
            let slot = if *next > now { *next } else { now };
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slots_are_one_interval_apart() {
        let l = std::sync::Arc::new(RateLimiter::per_second(10.0));
        let t0 = Instant::now();
        let mut tasks = vec![];
        for _ in 0..20 {
            let l = l.clone();
            tasks.push(tokio::spawn(async move {
                l.acquire().await;
                Instant::now()
            }));
        }
        let mut times = vec![];
        for t in tasks {
            times.push(t.await.unwrap() - t0);
        }
        times.sort();
        // 20 requests at 10/s: the last may go only after 1.9 s of (paused, exact) time.
        assert_eq!(times[0], Duration::ZERO);
        assert!(times[19] >= Duration::from_millis(1900), "{:?}", times[19]);
        assert!(times.windows(2).all(|w| w[1] - w[0] >= Duration::from_millis(99)));
    }
}
