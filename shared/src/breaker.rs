//! Circuit breakers, one per target origin (scheme, host, port), pure: after `failures`
//! consecutive answers that say "the target is unwell" (timeout, connection error, 5xx,
//! 429) the circuit opens for a cool-down; while open a request to that origin fails at
//! once; after the cool-down one probe goes through (half-open) and its outcome closes
//! the circuit or opens it again for twice the cool-down (up to `max_cool_down`).
//!
//! [`Breakers`] keeps the circuits of one process (a Lambda container, `routerctl serve`),
//! at most [`MAX_ORIGINS`] of them. The clock is passed in, so every transition is tested
//! without waiting.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most origins whose circuits one process remembers; past it, the healthiest and
/// least recently used are forgotten first.
pub const MAX_ORIGINS: usize = 4096;
/// A probe that has not reported after this long (its task ended without an answer) no
/// longer holds the circuit: the next request probes instead. Longer than any request
/// can take (enrich and delivery timeouts, the oauth2 resend).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(120);

/// A route's breaker settings (`[delivery] circuit_breaker`, per route overridable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive unwell answers that open the circuit; 0 turns the breaker off.
    pub failures: u32,
    /// How long the circuit stays open the first time.
    pub cool_down: Duration,
    /// The longest cool-down, however often it reopens.
    pub max_cool_down: Duration,
}

impl Default for BreakerSettings {
    /// 5 failures, 30 s doubling to 10 min.
    fn default() -> Self {
        Self {
            failures: 5,
            cool_down: Duration::from_secs(30),
            max_cool_down: Duration::from_secs(600),
        }
    }
}

impl BreakerSettings {
    pub fn enabled(&self) -> bool {
        self.failures > 0
    }

    /// The cool-down after the circuit opened `openings` times in a row (1 = first).
    pub fn cool_down_for(&self, openings: u32) -> Duration {
        let factor = 2u32.saturating_pow(openings.saturating_sub(1).min(30));
        self.cool_down
            .saturating_mul(factor)
            .min(self.max_cool_down.max(self.cool_down))
    }
}

/// One origin's circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    Closed {
        /// Consecutive unwell answers so far.
        failures: u32,
    },
    Open {
        until: Instant,
        /// How many times it opened without a successful probe in between.
        openings: u32,
    },
    /// The cool-down passed and one probe is out (since `since`).
    HalfOpen { openings: u32, since: Instant },
}

/// Whether a request may go out now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Go,
    /// The one request after a cool-down; its outcome decides the circuit.
    Probe,
    /// Open (or a probe is already out): fail at once; it may be tried in `retry_in`.
    Refuse {
        retry_in: Duration,
    },
}

/// A change worth a log line and a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Opened { cool_down: Duration, openings: u32 },
    Closed,
}

impl Circuit {
    /// The admission of a request at `now`, and the circuit after it.
    pub fn admit(self, now: Instant) -> (Admission, Circuit) {
        match self {
            Circuit::Closed { .. } => (Admission::Go, self),
            Circuit::Open { until, openings } if now >= until => (
                Admission::Probe,
                Circuit::HalfOpen {
                    openings,
                    since: now,
                },
            ),
            Circuit::HalfOpen { openings, since }
                if now.saturating_duration_since(since) >= PROBE_TIMEOUT =>
            {
                (
                    Admission::Probe,
                    Circuit::HalfOpen {
                        openings,
                        since: now,
                    },
                )
            }
            Circuit::Open { until, .. } => (
                Admission::Refuse {
                    retry_in: until.saturating_duration_since(now),
                },
                self,
            ),
            Circuit::HalfOpen { .. } => (
                Admission::Refuse {
                    retry_in: Duration::ZERO,
                },
                self,
            ),
        }
    }

    /// The circuit after an answer (`unwell`: timeout, connection error, 5xx, 429).
    pub fn record(
        self,
        unwell: bool,
        settings: &BreakerSettings,
        now: Instant,
    ) -> (Circuit, Option<Transition>) {
        let open = |openings: u32| {
            let cool_down = settings.cool_down_for(openings);
            (
                Circuit::Open {
                    until: now + cool_down,
                    openings,
                },
                Some(Transition::Opened {
                    cool_down,
                    openings,
                }),
            )
        };
        match (self, unwell) {
            (Circuit::Closed { .. }, false) => (Circuit::Closed { failures: 0 }, None),
            (Circuit::Closed { failures }, true) if failures + 1 >= settings.failures => open(1),
            (Circuit::Closed { failures }, true) => (
                Circuit::Closed {
                    failures: failures + 1,
                },
                None,
            ),
            (Circuit::HalfOpen { .. }, false) => {
                (Circuit::Closed { failures: 0 }, Some(Transition::Closed))
            }
            (Circuit::HalfOpen { openings, .. }, true) => open(openings + 1),
            // Answers of requests sent before it opened change nothing.
            (Circuit::Open { .. }, _) => (self, None),
        }
    }
}

/// The circuits of one process, by origin (`scheme://host:port`).
#[derive(Debug, Default)]
pub struct Breakers {
    circuits: Mutex<HashMap<String, (Circuit, Instant)>>,
    /// How far [`Breakers::now`] is ahead of the system clock (moved only by tests).
    ahead: Mutex<Duration>,
}

/// An open circuit, for the health endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenCircuit {
    pub origin: String,
    /// Seconds until a probe may go (0: a probe is out or due).
    pub retry_in_s: u64,
    pub openings: u32,
}

impl Breakers {
    /// The breakers' clock: the system's monotonic clock, plus what [`Breakers::advance`]
    /// added. Callers pass it to [`Breakers::admit`] and [`Breakers::record`].
    pub fn now(&self) -> Instant {
        Instant::now() + *self.ahead.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves the breakers' clock on by `by`: a test sees a cool-down end without waiting
    /// for it (and without a loaded machine moving the clock under its feet).
    pub fn advance(&self, by: Duration) {
        *self.ahead.lock().unwrap_or_else(|p| p.into_inner()) += by;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Circuit, Instant)>> {
        self.circuits.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a request to `origin` may go out now.
    pub fn admit(&self, origin: &str, settings: &BreakerSettings, now: Instant) -> Admission {
        if !settings.enabled() {
            return Admission::Go;
        }
        let mut map = self.lock();
        let Some((circuit, seen)) = map.get_mut(origin) else {
            return Admission::Go;
        };
        let (admission, next) = circuit.admit(now);
        *circuit = next;
        *seen = now;
        admission
    }

    /// Records an answer from `origin`; the transition it caused, if any.
    pub fn record(
        &self,
        origin: &str,
        unwell: bool,
        settings: &BreakerSettings,
        now: Instant,
    ) -> Option<Transition> {
        if !settings.enabled() {
            return None;
        }
        let mut map = self.lock();
        if !map.contains_key(origin) {
            if !unwell {
                return None; // A healthy origin needs no entry.
            }
            if map.len() >= MAX_ORIGINS {
                forget_one(&mut map);
            }
        }
        let entry = map
            .entry(origin.to_owned())
            .or_insert((Circuit::Closed { failures: 0 }, now));
        let (next, transition) = entry.0.record(unwell, settings, now);
        *entry = (next, now);
        if next == (Circuit::Closed { failures: 0 }) {
            map.remove(origin);
        }
        transition
    }

    /// The circuits open (or probing) now.
    pub fn open(&self, now: Instant) -> Vec<OpenCircuit> {
        let mut out: Vec<OpenCircuit> = self
            .lock()
            .iter()
            .filter_map(|(origin, (c, _))| match *c {
                Circuit::Open { until, openings } => Some(OpenCircuit {
                    origin: origin.clone(),
                    retry_in_s: until.saturating_duration_since(now).as_secs(),
                    openings,
                }),
                Circuit::HalfOpen { openings, .. } => Some(OpenCircuit {
                    origin: origin.clone(),
                    retry_in_s: 0,
                    openings,
                }),
                Circuit::Closed { .. } => None,
            })
            .collect();
        out.sort_by(|a, b| a.origin.cmp(&b.origin));
        out
    }

    /// How many origins are remembered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// Forgets one circuit to make room: a closed one first, else the least recently used.
fn forget_one(map: &mut HashMap<String, (Circuit, Instant)>) {
    let victim = map
        .iter()
        .min_by_key(|(_, (c, seen))| (!matches!(c, Circuit::Closed { .. }), *seen))
        .map(|(k, _)| k.clone());
    if let Some(k) = victim {
        map.remove(&k);
    }
}

#[cfg(test)]
mod tests;
