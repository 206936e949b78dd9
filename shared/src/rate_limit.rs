//! Rate limits per target (`rate_limit = { requests, per }`): the target never sees more
//! than `requests` requests in any window of length `per`.
//!
//! A plain token bucket allows twice its size across a refill (a full bucket spent at the
//! end of one window, refilled and spent again at the start of the next). This is a sliding
//! log instead: a request may go at `t` only if the request `requests` places before it
//! went at or before `t - per - margin`, so any window of length `per` holds at most
//! `requests` of them. The margin (a twentieth of `per`, 10 ms to 1 s) covers the few
//! milliseconds between a request leaving and reaching the target, which vary. The log
//! keeps the last `requests` send times of each limit, no more.
//!
//! A request that would have to wait longer than its caller can hold it is told when to
//! come back instead, and takes no place; one that may wait a little (`max_wait`) takes its
//! place now and sleeps until it. A 429 with `Retry-After` from the target pauses the limit
//! until then.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `requests` per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub per: Duration,
}

/// The most a limit may allow per window (its log is that long).
pub const MAX_REQUESTS: u32 = 100_000;

impl RateLimit {
    /// This process's part when `share` processes that share no memory split the limit
    /// (Lambda containers, at most the event source's maximum concurrency): `requests /
    /// share` (rounded down) per `per`, so together they never exceed the limit in any
    /// window. `None` when the limit is smaller than `share`: its parts would be less than
    /// one request, and any part of one request lets `share` of them go at once.
    pub fn share(self, share: u32) -> Option<RateLimit> {
        let share = share.max(1);
        (self.requests >= share).then_some(RateLimit {
            requests: self.requests / share,
            per: self.per,
        })
    }

    /// The gap between a request and the one `requests` places after it.
    fn spacing(self) -> Duration {
        self.per + (self.per / 20).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }
}

/// What a limit says about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Send at this instant (now, or after a short sleep): its place is taken.
    At(Instant),
    /// Come back after this long; no place was taken.
    Later(Duration),
}

#[derive(Debug, Default)]
struct Window {
    /// Send times, oldest first (never more than the limit's `requests`).
    sent: VecDeque<Instant>,
    paused_until: Option<Instant>,
}

impl Window {
    /// The earliest a request may go under `limit`, at `now` or later.
    fn earliest(&mut self, limit: RateLimit, now: Instant) -> Instant {
        let spacing = limit.spacing();
        let keep = limit.requests.max(1) as usize;
        while self.sent.len() > keep || self.sent.front().is_some_and(|&t| t + spacing <= now) {
            self.sent.pop_front();
        }
        let mut at = now;
        if let Some(p) = self.paused_until {
            at = at.max(p);
        }
        // In order: a place is never before one already taken.
        if let Some(&last) = self.sent.back() {
            at = at.max(last);
        }
        if self.sent.len() >= keep {
            at = at.max(self.sent[self.sent.len() - keep] + spacing);
        }
        at
    }
}

/// Every limit of a process, by name (`route:<name>`, `cognigy:<endpoint>`).
#[derive(Debug, Default)]
pub struct Limiters {
    windows: Mutex<HashMap<String, Window>>,
}

impl Limiters {
    /// A place for one request under every limit in `limits` (all of them, or none): at
    /// the earliest instant all allow, if that is within `max_wait` of `now`.
    pub fn admit(
        &self,
        limits: &[(&str, RateLimit)],
        now: Instant,
        max_wait: Duration,
    ) -> Admission {
        if limits.is_empty() {
            return Admission::At(now);
        }
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let mut at = now;
        for (name, limit) in limits {
            let w = windows.entry((*name).to_owned()).or_default();
            at = at.max(w.earliest(*limit, now));
        }
        let wait = at.saturating_duration_since(now);
        if wait > max_wait {
            return Admission::Later(wait);
        }
        for (name, _) in limits {
            if let Some(w) = windows.get_mut(*name) {
                w.sent.push_back(at);
            }
        }
        Admission::At(at)
    }

    /// The target answered 429 with `Retry-After`: nothing goes under `name` before `until`.
    pub fn pause(&self, name: &str, until: Instant) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let w = windows.entry(name.to_owned()).or_default();
        w.paused_until = Some(w.paused_until.map_or(until, |p| p.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(requests: u32, per_ms: u64) -> RateLimit {
        RateLimit {
            requests,
            per: Duration::from_millis(per_ms),
        }
    }

    /// The most send times in any window of length `per` (closed at both ends: stricter
    /// than a target counting in half-open windows).
    fn most_in_any_window(times: &[Instant], per: Duration) -> usize {
        times
            .iter()
            .map(|&start| {
                times
                    .iter()
                    .filter(|&&t| t >= start && t <= start + per)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn a_burst_is_spread_so_no_window_holds_more_than_the_limit() {
        let l = Limiters::default();
        let lim = limit(20, 1000);
        let t0 = Instant::now();
        let mut times = Vec::new();
        // 500 requests arriving at once, each told to come back when it may go (simulated
        // time: a request that must wait comes back exactly then).
        let mut pending: Vec<Instant> = vec![t0; 500];
        while let Some(now) = pending.pop() {
            match l.admit(&[("route:crm", lim)], now, Duration::ZERO) {
                Admission::At(at) => {
                    assert_eq!(at, now, "no wait allowed, none taken");
                    times.push(at);
                }
                Admission::Later(d) => {
                    assert!(d > Duration::ZERO);
                    pending.push(now + d);
                    pending.sort_by(|a, b| b.cmp(a));
                }
            }
        }
        assert_eq!(times.len(), 500, "all admitted in the end");
        assert!(most_in_any_window(&times, lim.per) <= 20);
        // And not much slower than the limit: 500 at 20 per 1.05 s.
        let span = *times.last().unwrap() - t0;
        assert!(span <= Duration::from_millis(26_300), "{span:?}");
        assert!(span >= Duration::from_millis(24_000), "{span:?}");
    }

    #[test]
    fn a_short_wait_takes_its_place_now_and_a_long_one_takes_none() {
        let l = Limiters::default();
        let lim = limit(2, 1000);
        let t0 = Instant::now();
        let k = [("route:a", lim)];
        assert_eq!(l.admit(&k, t0, Duration::ZERO), Admission::At(t0));
        assert_eq!(l.admit(&k, t0, Duration::ZERO), Admission::At(t0));
        let spacing = lim.spacing();
        assert_eq!(l.admit(&k, t0, Duration::ZERO), Admission::Later(spacing));
        // Told to wait took no place: the next may still have the same slot.
        assert_eq!(l.admit(&k, t0, spacing), Admission::At(t0 + spacing));
        // Two places a window: a second at the same instant, then the window after.
        assert_eq!(l.admit(&k, t0, spacing), Admission::At(t0 + spacing));
        assert_eq!(l.admit(&k, t0, spacing), Admission::Later(2 * spacing));
        assert_eq!(
            l.admit(&k, t0 + spacing, spacing),
            Admission::At(t0 + 2 * spacing)
        );
    }

    #[test]
    fn a_request_under_two_limits_takes_a_place_in_both_or_neither() {
        let l = Limiters::default();
        let t0 = Instant::now();
        let route = ("route:a", limit(10, 1000));
        let endpoint = ("cognigy:prod", limit(1, 1000));
        assert!(matches!(
            l.admit(&[route, endpoint], t0, Duration::ZERO),
            Admission::At(_)
        ));
        // The endpoint is full: the request waits and the route keeps its 9 places.
        assert!(matches!(
            l.admit(&[route, endpoint], t0, Duration::ZERO),
            Admission::Later(_)
        ));
        for _ in 0..9 {
            assert_eq!(l.admit(&[route], t0, Duration::ZERO), Admission::At(t0));
        }
        assert!(matches!(
            l.admit(&[route], t0, Duration::ZERO),
            Admission::Later(_)
        ));
    }

    #[test]
    fn a_pause_holds_every_request_until_it_ends() {
        let l = Limiters::default();
        let t0 = Instant::now();
        let k = [("route:a", limit(100, 1000))];
        l.pause("route:a", t0 + Duration::from_secs(5));
        assert_eq!(
            l.admit(&k, t0, Duration::ZERO),
            Admission::Later(Duration::from_secs(5))
        );
        // A shorter pause does not shorten it.
        l.pause("route:a", t0 + Duration::from_secs(1));
        let at = t0 + Duration::from_secs(5);
        assert_eq!(l.admit(&k, at, Duration::ZERO), Admission::At(at));
    }

    #[test]
    fn shares_never_add_up_to_more_than_the_limit() {
        for (requests, share) in [(100, 4), (20, 3), (7, 7), (1000, 1)] {
            let part = limit(requests, 1000).share(share).unwrap();
            assert_eq!(part.per, Duration::from_secs(1));
            assert!(share * part.requests <= requests, "{requests} by {share}");
            assert!(share * (part.requests + 1) > requests, "as much as fits");
        }
        assert_eq!(limit(100, 10_000).share(1), Some(limit(100, 10_000)));
        assert_eq!(
            limit(5, 10_000).share(10),
            None,
            "less than one request each"
        );
    }
}
