//! The pace of a connection's requests: every clone of a client shares one limiter, so all
//! tasks using a connection together hold just under what the target allows.
//!
//! The allowed rate is learned as the requests go. A target that tells its quota
//! (`RateLimit-Policy: 100;w=1`, or a limit and its window in `RateLimit-*`/`X-RateLimit-*`)
//! is paced at 95% of it from its first answer on. Otherwise the first 429 tells that the
//! limit lies near what the target accepted in the second before it: requests are then paced
//! at 95% of that, and the pace creeps up while no 429 comes (quickly far below the last
//! limit seen, slowly near it), so a raised limit is found again. A `Retry-After` pauses every
//! request of the connection, not only the refused one; so does a quota said to be spent. An
//! admin's `max_rate` is a ceiling the pace never passes.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// The share of a learned limit the pace holds.
const MARGIN: f64 = 0.95;
/// The short view of what the target accepted: a target counting by the second shows its
/// limit there.
const WINDOW: Duration = Duration::from_secs(1);
/// The long view: a target counting over a longer window shows its limit there, once the
/// client has sent for at least `LONG_MIN`.
const LONG: Duration = Duration::from_secs(10);
const LONG_MIN: Duration = Duration::from_secs(3);
/// Accepted answers are counted in slots this long.
const SLOT: Duration = Duration::from_millis(50);
/// The longest pause a target can ask for (a request waiting longer gives up on its own).
pub const MAX_PAUSE: Duration = Duration::from_secs(120);
/// The slowest pace: one request in a thousand seconds.
const MIN_PACE: f64 = 0.001;
/// After this long without a refusal, the pace climbs quickly again (a limit learned while the
/// work asked little, or a target that raised its limit).
const QUIET: Duration = Duration::from_secs(120);

/// A number of seconds a header gave, as a wait no longer than `MAX_PAUSE`.
fn capped_secs(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(MAX_PAUSE).min(MAX_PAUSE)
}

/// What one answer said about the limit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Signals {
    /// A 429.
    pub refused: bool,
    pub retry_after: Option<Duration>,
    /// Requests per second the target says it allows (its quota over its window).
    pub quota: Option<f64>,
    /// Requests left in the current window, and when it is whole again.
    pub remaining: Option<u64>,
    pub reset: Option<Duration>,
}

impl Signals {
    /// Reads the rate headers an answer carries; `header` gives a header's value by its
    /// lower-case name.
    pub fn from_headers<'a>(status: u16, header: impl Fn(&str) -> Option<&'a str>) -> Signals {
        let number = |names: &[&str]| names.iter().find_map(|n| header(n).and_then(first_number));
        let limit = number(&["ratelimit-limit", "x-ratelimit-limit"]);
        let window = number(&["x-ratelimit-window", "ratelimit-window"]);
        let policy = header("ratelimit-policy").and_then(policy_rate);
        let quota = policy
            .or_else(|| match (limit, window) {
                (Some(l), Some(w)) if l > 0.0 && w > 0.0 => Some(l / w),
                _ => None,
            })
            .filter(|q| q.is_finite())
            .map(|q| q.max(MIN_PACE));
        let reset = number(&["ratelimit-reset", "x-ratelimit-reset"]).map(|r| {
            // Some targets give the reset as a Unix time rather than a number of seconds.
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            capped_secs(if r > 1.0e9 { r - now.as_secs_f64() } else { r })
        });
        Signals {
            refused: status == 429,
            retry_after: header("retry-after").and_then(crate::retry::parse_retry_after).map(|d| d.min(MAX_PAUSE)),
            quota,
            remaining: number(&["ratelimit-remaining", "x-ratelimit-remaining"]).map(|r| r.max(0.0) as u64),
            reset,
        }
    }
}

/// The limit the first refusal points at: what the target accepted in the last second, less
/// the burst it allowed at the start when the first request went less than a second ago (a
/// token bucket usually holds a second's worth: n = rate * (1 + t)).
fn first_estimate(s: &State, now: Instant) -> f64 {
    let t = s.started.map_or(WINDOW, |t| now.duration_since(t)).min(WINDOW).as_secs_f64();
    let t = if t >= WINDOW.as_secs_f64() { 0.0 } else { t };
    count_since(s, now, WINDOW) as f64 / (1.0 + t)
}

/// Accepted answers counted in the last `window`.
fn count_since(s: &State, now: Instant, window: Duration) -> u64 {
    s.accepted.iter().filter(|(t, _)| now.duration_since(*t) <= window).map(|(_, n)| u64::from(*n)).sum()
}

/// Accepted answers per second of the last `window` in which requests could go (since the
/// first, pauses left out); None when that time is shorter than `least`.
fn sending_rate(s: &State, now: Instant, window: Duration, least: Duration) -> Option<f64> {
    let from = s.started.map_or(now, |t| t.max(now.checked_sub(window).unwrap_or(t)));
    let paused: Duration = s.pauses.iter().map(|(a, b)| (*b).min(now).saturating_duration_since((*a).max(from))).sum();
    let span = now.saturating_duration_since(from).saturating_sub(paused);
    (span >= least).then(|| count_since(s, now, window) as f64 / span.as_secs_f64())
}

/// The first number in a header value (`100`, `100;w=60`, `100, 1000;w=3600`).
fn first_number(v: &str) -> Option<f64> {
    let n: String = v.trim().chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    n.parse().ok().filter(|x: &f64| x.is_finite())
}

/// `RateLimit-Policy`: the strictest `quota;w=seconds` item, as requests per second.
fn policy_rate(v: &str) -> Option<f64> {
    v.split(',')
        .filter_map(|item| {
            let mut parts = item.split(';');
            let quota = first_number(parts.next()?)?;
            let window = parts.find_map(|p| p.trim().strip_prefix("w=").and_then(first_number))?;
            (quota > 0.0 && window > 0.0).then_some(quota / window)
        })
        .min_by(f64::total_cmp)
}

#[derive(Debug)]
struct State {
    /// The pace learned from refusals; None until the first.
    learned: Option<f64>,
    /// The target's own quota, when its headers tell it.
    quota: Option<f64>,
    /// The limit the last refusal pointed at.
    limit_seen: Option<f64>,
    next: Instant,
    /// The pauses of the last `LONG`: no request went from the start of each to its end.
    pauses: VecDeque<(Instant, Instant)>,
    paused_until: Option<Instant>,
    /// When the first request went.
    started: Option<Instant>,
    /// When the pace was last cut: refusals of requests sent before it do not cut again.
    last_cut: Option<Instant>,
    /// The last cut was the first limit seen (no pace before): answers still in flight then
    /// may show the target accepted more than was counted at the cut.
    first_cut: bool,
    last_raise: Instant,
    /// A caller waited for its slot since the last raise: the pace, not the work, is what
    /// holds the connection back, so raising it is worth trying.
    pressed: bool,
    /// Accepted answers of the last `LONG`, by slot (its start, its count).
    accepted: VecDeque<(Instant, u32)>,
}

#[derive(Debug)]
pub struct RateLimiter {
    ceiling: Option<f64>,
    state: Mutex<State>,
}

impl RateLimiter {
    /// A limiter that learns the target's limit, never passing `ceiling` requests a second.
    pub fn adaptive(ceiling: Option<f64>) -> Self {
        let ceiling = ceiling.filter(|r| r.is_finite() && *r > 0.0);
        let now = Instant::now();
        RateLimiter {
            ceiling,
            state: Mutex::new(State {
                learned: None,
                quota: None,
                limit_seen: None,
                next: now,
                pauses: VecDeque::new(),
                paused_until: None,
                started: None,
                last_cut: None,
                first_cut: false,
                last_raise: now,
                pressed: false,
                accepted: VecDeque::new(),
            }),
        }
    }

    /// A limiter held at `rate` requests a second at most (and under what it learns).
    pub fn per_second(rate: f64) -> Self {
        let rate = if rate.is_finite() && rate > 0.0 { rate } else { 1.0 };
        RateLimiter::adaptive(Some(rate))
    }

    fn pace(&self, s: &State) -> Option<f64> {
        [s.learned, s.quota.map(|q| q * MARGIN), self.ceiling]
            .into_iter()
            .flatten()
            .min_by(f64::total_cmp)
            .map(|p| p.max(MIN_PACE))
    }

    /// The state; a panic elsewhere while it was held leaves it as it was, still usable.
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts from a pace learned before (an earlier run's), as if a refusal had just set it:
    /// the pace creeps up from there, slowly.
    pub fn start_at(&self, pace: f64) {
        if !(pace.is_finite() && pace > 0.0) {
            return;
        }
        let mut s = self.state();
        let pace = self.ceiling.map_or(pace, |c| c.min(pace)).max(MIN_PACE);
        s.learned = Some(pace);
        s.limit_seen = Some(pace / MARGIN);
        s.last_cut = Some(Instant::now());
    }

    /// The pace learned from the target's refusals, if any (not the quota it tells, which it
    /// tells again, nor the ceiling): what the next run may start from.
    pub fn learned(&self) -> Option<f64> {
        self.state().learned
    }

    /// The admin's ceiling, requests per second.
    pub fn ceiling(&self) -> Option<f64> {
        self.ceiling
    }

    /// The pace in force, requests per second: None while the target has shown no limit and
    /// no ceiling is set.
    pub fn rate(&self) -> Option<f64> {
        let s = self.state();
        self.pace(&s)
    }

    /// Takes this caller's slot: after any pause, and one interval after the slot before.
    /// The caller waits for it, then asks `paused_after` whether a pause began meanwhile.
    pub fn reserve(&self) -> Instant {
        let mut s = self.state();
        let now = Instant::now();
        s.started.get_or_insert(now);
        let mut slot = now.max(s.paused_until.unwrap_or(now));
        if let Some(rate) = self.pace(&s) {
            slot = slot.max(s.next);
            s.next = slot + Duration::from_secs_f64(1.0 / rate);
        }
        if slot > now {
            s.pressed = true;
        }
        slot
    }

    /// Whether the connection is paused past `slot` (a Retry-After came after it was given):
    /// the caller takes a new slot.
    pub fn paused_after(&self, slot: Instant) -> bool {
        self.state().paused_until.is_some_and(|p| p > slot)
    }

    /// Waits for this caller's slot, a pause that began meanwhile included. Returns when the
    /// request goes.
    pub async fn acquire(&self) -> Instant {
        match self.acquire_unless(|| None::<std::convert::Infallible>).await {
            Ok(slot) => slot,
            Err(never) => match never {},
        }
    }

    /// As `acquire`, asking `stop` every second of a long wait (a Retry-After) and once the
    /// slot comes: what it answers ends the wait, and no request goes.
    pub async fn acquire_unless<E>(&self, stop: impl Fn() -> Option<E>) -> Result<Instant, E> {
        loop {
            let slot = self.reserve();
            // Not asleep when the slot is now: the timer rounds a wait up to its next tick (a
            // millisecond), which every unpaced request would pay.
            while slot > Instant::now() {
                tokio::time::sleep_until(slot.min(Instant::now() + Duration::from_secs(1))).await;
                if let Some(e) = stop() {
                    return Err(e);
                }
            }
            if !self.paused_after(slot) {
                return Ok(slot);
            }
        }
    }

    /// Learns from an answer to a request sent at `sent`.
    pub fn answered(&self, sent: Instant, signals: &Signals) {
        let mut s = self.state();
        let now = Instant::now();
        if let Some(q) = signals.quota {
            s.quota = Some(q);
        }
        while s.accepted.front().is_some_and(|(t, _)| now.duration_since(*t) > LONG + SLOT) {
            s.accepted.pop_front();
        }
        while s.pauses.front().is_some_and(|(_, until)| now.saturating_duration_since(*until) > LONG) {
            s.pauses.pop_front();
        }
        let pause_until = |s: &mut State, d: Duration| {
            let until = now + d.min(MAX_PAUSE);
            match s.pauses.back_mut() {
                Some(last) if last.1 >= now => last.1 = last.1.max(until),
                _ => s.pauses.push_back((now, until)),
            }
            s.paused_until = Some(s.paused_until.map_or(until, |p| p.max(until)));
        };
        if !signals.refused {
            match s.accepted.back_mut() {
                Some((t, n)) if now.duration_since(*t) < SLOT => *n += 1,
                _ => s.accepted.push_back((now, 1)),
            }
            if s.first_cut && s.last_cut.is_some_and(|c| sent < c) {
                // Sent before the first cut and accepted after it: the target's limit is at
                // least all it accepted over that second.
                let accepted = first_estimate(&s, now);
                if s.learned.is_some_and(|l| accepted * MARGIN > l) {
                    s.learned = Some(self.ceiling.map_or(accepted * MARGIN, |c| c.min(accepted * MARGIN)));
                    s.limit_seen = Some(accepted);
                }
            }
            // A quota said to be spent: wait for it rather than be refused, unless the pace
            // already keeps under a quota the target told.
            if let (Some(0), Some(reset), None) = (signals.remaining, signals.reset, s.quota) {
                pause_until(&mut s, reset);
            }
            self.maybe_raise(&mut s, now);
            return;
        }
        if s.last_cut.is_some_and(|c| sent < c) {
            // Sent before the pace was cut: this refusal is already accounted for.
            if let Some(ra) = signals.retry_after {
                pause_until(&mut s, ra);
            }
            return;
        }
        let before = self.pace(&s);
        // What the target accepted per second: at the first refusal, from all it took in the
        // last second (answers still in flight correct it up, later refusals down). After,
        // over the time requests went (pauses left out), in the last second and, once known,
        // the last ten: the lower tells the limit.
        let accepted = match before {
            None => Some(first_estimate(&s, now)),
            Some(_) => {
                let short = sending_rate(&s, now, WINDOW, Duration::from_millis(250));
                let long = sending_rate(&s, now, LONG, LONG_MIN);
                short.map(|r| long.map_or(r, |l| l.min(r)))
            }
        };
        if let Some(ra) = signals.retry_after {
            pause_until(&mut s, ra);
        }
        s.first_cut = before.is_none();
        // Never below half the pace (the target may be shared with others, and the pace was
        // not the work's bottleneck); too short a span to tell (just after a pause): half.
        let accepted = accepted.map(|a| a.max(0.5));
        let pace = match (before, accepted) {
            (Some(c), Some(a)) => (a * MARGIN).max(c / 2.0),
            (Some(c), None) => c / 2.0,
            (None, a) => a.unwrap_or(1.0) * MARGIN,
        }
        .max(MIN_PACE);
        s.limit_seen = Some(accepted.unwrap_or(pace / MARGIN).max(pace));
        s.learned = Some(pace);
        s.last_cut = Some(now);
        s.last_raise = now;
        s.pressed = false;
        // The next request no sooner than one new interval from now.
        s.next = s.next.max(now + Duration::from_secs_f64(1.0 / pace));
        tracing::debug!(accepted, pace, "rate limited: pace cut");
    }

    /// Raises the learned pace once a second while callers wait on it and no refusal came:
    /// by 5% up to 97% of the last limit seen, then by 0.2%, and by 5% again after `QUIET`
    /// without a refusal (a limit learned while the work asked little, or raised since).
    fn maybe_raise(&self, s: &mut State, now: Instant) {
        let Some(learned) = s.learned else { return };
        if !s.pressed || now.duration_since(s.last_raise) < Duration::from_secs(1) {
            return;
        }
        let quiet = s.last_cut.is_none_or(|c| now.duration_since(c) > QUIET);
        let near = if quiet { f64::INFINITY } else { s.limit_seen.map_or(f64::INFINITY, |l| 0.97 * l) };
        let raised = if learned < near * 0.999 { (learned * 1.05).min(near) } else { learned * 1.002 };
        s.learned = Some(match self.ceiling {
            Some(c) => raised.min(c),
            None => raised,
        });
        s.last_raise = now;
        s.pressed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn slots_are_one_interval_apart() {
        let l = Arc::new(RateLimiter::per_second(10.0));
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

    fn headers<'a>(pairs: &'a [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<&'static str> + 'a {
        move |n| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| *v)
    }

    #[test]
    fn rate_headers_are_read_in_their_usual_forms() {
        let s = Signals::from_headers(200, headers(&[("ratelimit-policy", "1000;w=3600, 100;w=1")]));
        assert_eq!(s.quota, Some(1000.0 / 3600.0), "the item allowing the least over time");
        let s = Signals::from_headers(200, headers(&[("x-ratelimit-limit", "600"), ("x-ratelimit-window", "60")]));
        assert_eq!(s.quota, Some(10.0));
        let s = Signals::from_headers(
            429,
            headers(&[
                ("ratelimit-limit", "100"),
                ("ratelimit-remaining", "0"),
                ("ratelimit-reset", "3"),
                ("retry-after", "2"),
            ]),
        );
        assert_eq!((s.refused, s.quota, s.remaining), (true, None, Some(0)), "a limit alone says no window");
        assert_eq!((s.reset, s.retry_after), (Some(Duration::from_secs(3)), Some(Duration::from_secs(2))));
        let far = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 30;
        let far = far.to_string();
        let s = Signals::from_headers(200, |n| (n == "x-ratelimit-reset").then_some(far.as_str()));
        let reset = s.reset.unwrap();
        assert!(reset > Duration::from_secs(25) && reset <= Duration::from_secs(30), "a Unix time: {reset:?}");
        assert_eq!(Signals::from_headers(200, headers(&[])), Signals::default());
    }

    #[tokio::test(start_paused = true)]
    async fn a_told_quota_paces_at_once_and_a_ceiling_caps_it() {
        let l = RateLimiter::adaptive(None);
        assert_eq!(l.rate(), None, "nothing known: no pace");
        let sent = l.acquire().await;
        l.answered(sent, &Signals { quota: Some(100.0), ..Signals::default() });
        assert_eq!(l.rate(), Some(95.0));
        let capped = RateLimiter::adaptive(Some(40.0));
        capped.answered(Instant::now(), &Signals { quota: Some(100.0), ..Signals::default() });
        assert_eq!(capped.rate(), Some(40.0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_cuts_the_pace_to_what_was_accepted_and_pauses_as_told() {
        let l = RateLimiter::adaptive(None);
        for _ in 0..100 {
            let sent = l.acquire().await;
            l.answered(sent, &Signals::default());
        }
        let before_cut = Instant::now();
        tokio::time::advance(Duration::from_millis(10)).await;
        let refused = Signals { refused: true, retry_after: Some(Duration::from_secs(2)), ..Signals::default() };
        l.answered(before_cut, &refused);
        // 100 accepted in the first 10 ms: a burst of about a second's worth and the rate.
        let cut = l.rate().unwrap();
        assert!((cut - 0.95 * 100.0 / 1.01).abs() < 1e-9, "{cut}");
        // Refusals of requests sent before the cut do not cut again.
        l.answered(before_cut, &refused);
        assert_eq!(l.rate(), Some(cut));
        let t = Instant::now();
        let sent = l.acquire().await;
        assert!(sent - t >= Duration::from_secs(2), "Retry-After pauses every request: {:?}", sent - t);
    }

    #[tokio::test(start_paused = true)]
    async fn the_pace_creeps_up_only_while_callers_wait_on_it() {
        let l = RateLimiter::adaptive(None);
        for _ in 0..50 {
            let sent = l.acquire().await;
            l.answered(sent, &Signals::default());
        }
        l.answered(Instant::now(), &Signals { refused: true, ..Signals::default() });
        let cut = l.rate().unwrap();
        assert!((cut - 47.5).abs() < 1e-9, "{cut}");
        // Idle: no raise however long.
        tokio::time::advance(Duration::from_secs(5)).await;
        l.answered(Instant::now(), &Signals::default());
        assert_eq!(l.rate(), Some(cut));
        // Busy for 30 s without refusal: up, slowly near the limit seen.
        for _ in 0..(30 * 48) {
            let sent = l.acquire().await;
            l.answered(sent, &Signals::default());
        }
        let raised = l.rate().unwrap();
        assert!(raised > cut && raised < 55.0, "{cut} -> {raised}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_quota_waits_for_its_reset_when_no_pace_is_known() {
        let l = RateLimiter::adaptive(None);
        let sent = l.acquire().await;
        l.answered(sent, &Signals { remaining: Some(0), reset: Some(Duration::from_secs(4)), ..Signals::default() });
        let t = Instant::now();
        let next = l.acquire().await;
        assert_eq!(next - t, Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn what_a_target_says_cannot_break_the_pace() {
        let huge = Signals::from_headers(
            429,
            headers(&[
                ("retry-after", "10000000000000000000"),
                ("ratelimit-reset", "1e300"),
                ("ratelimit-policy", "1;w=100000000000000000000000"),
            ]),
        );
        assert_eq!(huge.retry_after, Some(MAX_PAUSE), "a wait is capped");
        assert!(huge.reset.is_some_and(|r| r <= MAX_PAUSE), "{huge:?}");
        assert_eq!(huge.quota, Some(MIN_PACE), "a quota has a floor");
        let l = RateLimiter::adaptive(None);
        let sent = l.acquire().await;
        l.answered(sent, &huge);
        assert_eq!(l.rate(), Some(MIN_PACE));
        let t = Instant::now();
        let next = l.acquire().await;
        assert!(next - t <= MAX_PAUSE + Duration::from_secs(1000), "{:?}", next - t);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_that_begins_after_a_slot_was_given_holds_that_slot_back() {
        let l = RateLimiter::adaptive(None);
        let slot = l.reserve();
        assert!(!l.paused_after(slot));
        l.answered(slot, &Signals { refused: true, retry_after: Some(Duration::from_secs(5)), ..Signals::default() });
        assert!(l.paused_after(slot), "the slot given before the Retry-After waits for its end");
        let t = Instant::now();
        let went = l.acquire().await;
        assert!(went - t >= Duration::from_secs(5), "{:?}", went - t);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_right_after_a_pause_still_halves_the_pace() {
        let l = RateLimiter::adaptive(Some(1000.0));
        let sent = l.acquire().await;
        l.answered(sent, &Signals { refused: true, retry_after: Some(Duration::from_secs(1)), ..Signals::default() });
        let first = l.rate().unwrap();
        tokio::time::advance(Duration::from_millis(1100)).await;
        let sent = l.acquire().await;
        l.answered(sent, &Signals { refused: true, retry_after: Some(Duration::from_secs(1)), ..Signals::default() });
        let second = l.rate().unwrap();
        assert!((second - first / 2.0).abs() < 1e-9, "{first} -> {second}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pace_learned_low_climbs_quickly_after_a_quiet_spell() {
        let l = RateLimiter::adaptive(None);
        l.start_at(2.0);
        // Busy at the pace for three minutes without a refusal.
        let t = Instant::now();
        while Instant::now() - t < Duration::from_secs(180) {
            let sent = l.acquire().await;
            l.answered(sent, &Signals::default());
        }
        let after = l.learned().unwrap();
        assert!(after > 8.0, "climbed by 5% a second after two quiet minutes: {after}");
    }
}
