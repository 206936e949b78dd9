//! Circuit breakers, pure: they protect a target that is really down without giving up on
//! one that is only mostly fine. The clock is passed in, so every transition is tested
//! without waiting (docs/DECISIONS.md, "Target isolation", says why each rule is so).
//!
//! - **What counts.** Only outcomes that say nobody is there: a timeout, an exchange that
//!   broke off, a connection that could not be made. An HTTP answer of any status proves
//!   the target is there and answering in time; what it answers depends on the request
//!   (a body can earn a 500), so no answer ever counts: one session's events cannot shut a
//!   target off for the others.
//! - **Scope.** Timeouts and broken exchanges count for the endpoint (scheme, host, port,
//!   path); a failed connection (refused, DNS, TLS, connect timeout) for the whole host.
//!   A request is let through only when both its endpoint's and its host's circuits let it.
//! - **Tripping.** `failures` unwell outcomes in a row (no answer in between), the first
//!   of them at least `min_duration` ago. A target that fails 30 % of requests at random
//!   runs into 16 in a row about 0.003 times in a million requests; one that is down opens
//!   after 16 requests, and no sooner than 2 s into its trouble.
//! - **Half-open.** After the cool-down, up to `probes` requests go at once; the first
//!   answer closes the circuit, an unwell outcome reopens it for twice the cool-down (up to
//!   `max_cool_down`). A probe that never reports stops counting after [`PROBE_TIMEOUT`].
//!
//! [`Breakers`] keeps the circuits of one process (a Lambda container, `routerctl serve`),
//! at most [`MAX_CIRCUITS`] of them; a healthy target takes no room.

use crate::sync::lock;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most circuits one process remembers; past it, the healthiest and least recently
/// used are forgotten first.
pub const MAX_CIRCUITS: usize = 4096;
/// A probe that has not reported after this long (its task ended without an answer) no
/// longer holds its place: another may go. Longer than any request can take (enrich and
/// delivery timeouts, the oauth2 resend).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(120);
/// How soon a request refused because every probe is out may ask again.
pub const PROBE_WAIT: Duration = Duration::from_secs(2);

/// A route's breaker settings (`[delivery] circuit_breaker`, per route overridable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Unwell outcomes in a row that open the circuit; 0 turns the breaker off.
    pub failures: u32,
    /// How long the streak must have lasted (from its first unwell outcome): a burst of
    /// requests that all time out at once, after one hiccup, is not sustained trouble.
    pub min_duration: Duration,
    /// How long the circuit stays open the first time.
    pub cool_down: Duration,
    /// The longest cool-down, however often it reopens.
    pub max_cool_down: Duration,
    /// Requests let through at once when the cool-down is over.
    pub probes: u32,
}

impl Default for BreakerSettings {
    /// 16 in a row over at least 2 s; 30 s doubling to 10 min; 2 probes.
    fn default() -> Self {
        Self {
            failures: 16,
            min_duration: Duration::from_secs(2),
            cool_down: Duration::from_secs(30),
            max_cool_down: Duration::from_secs(600),
            probes: 2,
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

/// What one request's outcome says about where it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// An HTTP answer, whatever its status: the endpoint and its host are there.
    Answered,
    /// Connected, then no answer in time or the exchange broke off: this endpoint is in
    /// trouble; its host is there.
    EndpointUnwell,
    /// No connection could be made: the host is gone (says nothing of one endpoint).
    HostUnwell,
    /// Nothing was learned (no request reached the network).
    Nothing,
}

impl Signal {
    /// What it says of the endpoint: `Some(true)` unwell, `Some(false)` well, `None`
    /// nothing.
    fn endpoint(self) -> Option<bool> {
        match self {
            Signal::Answered => Some(false),
            Signal::EndpointUnwell => Some(true),
            Signal::HostUnwell | Signal::Nothing => None,
        }
    }

    /// What it says of the host.
    fn host(self) -> Option<bool> {
        match self {
            Signal::Answered | Signal::EndpointUnwell => Some(false),
            Signal::HostUnwell => Some(true),
            Signal::Nothing => None,
        }
    }
}

/// Where a request goes, as the breakers see it. Both names are display-safe (no path
/// that could carry a secret, no query, no credential): they appear in logs and the health
/// answer, with the route that last met trouble there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destination<'a> {
    /// `scheme://host:port`.
    pub host: &'a str,
    /// The endpoint: its host and (a name for) its path.
    pub endpoint: &'a str,
    pub route: &'a str,
}

/// The breakers' names for where a request to `url` goes: its origin, and its endpoint as
/// the origin and a short hash of the path (a path can carry a secret, a webhook key or a
/// Cognigy URL token, and the health answer listing open circuits is public).
pub fn circuit_names(url: &url::Url) -> (String, String) {
    use sha2::{Digest, Sha256};
    let host = url.origin().ascii_serialization();
    let path = url.path();
    let endpoint = if path.is_empty() || path == "/" {
        format!("{host}/")
    } else {
        let digest = Sha256::digest(path.as_bytes());
        format!("{host}/\u{2026}{}", hex::encode(&digest[..4]))
    };
    (host, endpoint)
}

/// Which circuit: an endpoint's, or a whole host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Endpoint,
    Host,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Endpoint => "endpoint",
            Scope::Host => "host",
        }
    }
}

/// One circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    Closed {
        /// Unwell outcomes in a row so far.
        streak: u32,
        /// When the streak's first one came.
        since: Option<Instant>,
    },
    Open {
        until: Instant,
        /// How many times it opened without an answer in between.
        openings: u32,
        /// When the trouble began (the first unwell outcome of the streak that opened it).
        unwell_since: Instant,
    },
    /// The cool-down is over and `probes` requests are out (the last sent at `since`).
    HalfOpen {
        openings: u32,
        unwell_since: Instant,
        probes: u32,
        since: Instant,
    },
}

/// A circuit with nothing to remember.
pub const CLOSED: Circuit = Circuit::Closed {
    streak: 0,
    since: None,
};

/// Whether a request may go out now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Go,
    /// A probe after a cool-down; its outcome decides the circuit.
    Probe,
    /// Refused: the request is not sent, and it is no attempt. `retry_in`: when it may ask
    /// again; `circuit`: the endpoint or host that is open; `unwell_for`: since when.
    Refuse {
        retry_in: Duration,
        circuit: String,
        unwell_for: Duration,
    },
}

/// A change worth a log line and a metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    Opened {
        circuit: String,
        scope: Scope,
        cool_down: Duration,
        openings: u32,
    },
    Closed {
        circuit: String,
        scope: Scope,
        /// How long the trouble lasted.
        unwell_for: Duration,
    },
}

/// What one circuit says of a request at `now`, and the circuit after letting it go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Go,
    Probe(Circuit),
    Refuse {
        retry_in: Duration,
        unwell_since: Instant,
    },
}

impl Circuit {
    fn judge(self, settings: &BreakerSettings, now: Instant) -> Verdict {
        match self {
            Circuit::Closed { .. } => Verdict::Go,
            Circuit::Open {
                until,
                openings,
                unwell_since,
            } if now >= until => Verdict::Probe(Circuit::HalfOpen {
                openings,
                unwell_since,
                probes: 1,
                since: now,
            }),
            Circuit::Open {
                until,
                unwell_since,
                ..
            } => Verdict::Refuse {
                retry_in: until.saturating_duration_since(now),
                unwell_since,
            },
            Circuit::HalfOpen {
                openings,
                unwell_since,
                probes,
                since,
            } => {
                let stale = now.saturating_duration_since(since) >= PROBE_TIMEOUT;
                if stale || probes < settings.probes.max(1) {
                    Verdict::Probe(Circuit::HalfOpen {
                        openings,
                        unwell_since,
                        probes: if stale { 1 } else { probes + 1 },
                        since: now,
                    })
                } else {
                    Verdict::Refuse {
                        retry_in: PROBE_WAIT,
                        unwell_since,
                    }
                }
            }
        }
    }

    /// The circuit after an outcome: `unwell` (true), well (false), or nothing learned
    /// (`None`: a probe's place is given back).
    // Long: one match over every (state, outcome) pair, the breaker's whole transition
    // table in one place; rustfmt gives each struct pattern a line per field.
    pub fn record(
        self,
        unwell: Option<bool>,
        settings: &BreakerSettings,
        now: Instant,
    ) -> (Circuit, Option<TransitionKind>) {
        let open = |openings: u32, unwell_since: Instant| {
            let cool_down = settings.cool_down_for(openings);
            (
                Circuit::Open {
                    until: now + cool_down,
                    openings,
                    unwell_since,
                },
                Some(TransitionKind::Opened {
                    cool_down,
                    openings,
                }),
            )
        };
        match (self, unwell) {
            (_, None) => match self {
                Circuit::HalfOpen {
                    openings,
                    unwell_since,
                    probes,
                    since,
                } => (
                    Circuit::HalfOpen {
                        openings,
                        unwell_since,
                        probes: probes.saturating_sub(1),
                        since,
                    },
                    None,
                ),
                _ => (self, None),
            },
            (Circuit::Closed { .. }, Some(false)) => (CLOSED, None),
            (Circuit::Closed { streak, since }, Some(true)) => {
                let since = since.unwrap_or(now);
                let streak = streak.saturating_add(1);
                if streak >= settings.failures
                    && now.saturating_duration_since(since) >= settings.min_duration
                {
                    open(1, since)
                } else {
                    (
                        Circuit::Closed {
                            streak,
                            since: Some(since),
                        },
                        None,
                    )
                }
            }
            (Circuit::HalfOpen { unwell_since, .. }, Some(false)) => (
                CLOSED,
                Some(TransitionKind::Closed {
                    unwell_for: now.saturating_duration_since(unwell_since),
                }),
            ),
            (
                Circuit::HalfOpen {
                    openings,
                    unwell_since,
                    ..
                },
                Some(true),
            ) => open(openings + 1, unwell_since),
            // Outcomes of requests sent before it opened change nothing.
            (Circuit::Open { .. }, Some(_)) => (self, None),
        }
    }
}

/// A transition of one circuit, before it is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionKind {
    Opened { cool_down: Duration, openings: u32 },
    Closed { unwell_for: Duration },
}

/// An open circuit, for the health endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenCircuit {
    /// The endpoint or host.
    pub circuit: String,
    pub scope: Scope,
    /// The route that last met its trouble.
    pub route: String,
    /// Seconds until a probe may go (0: probes are out or due).
    pub retry_in_s: u64,
    pub openings: u32,
    /// Seconds since the trouble began.
    pub unwell_for_s: u64,
}

/// One remembered circuit: its state, scope, the route that last met trouble there, and
/// when it was last used.
#[derive(Debug, Clone)]
struct Entry {
    circuit: Circuit,
    scope: Scope,
    route: String,
    seen: Instant,
}

/// The circuits of one process, by endpoint and by host.
#[derive(Debug, Default)]
pub struct Breakers {
    circuits: Mutex<HashMap<String, Entry>>,
    /// How far [`Breakers::now`] is ahead of the system clock (moved only by tests).
    ahead: Mutex<Duration>,
}

impl Breakers {
    /// The breakers' clock: the system's monotonic clock, plus what [`Breakers::advance`]
    /// added. Callers pass it to [`Breakers::admit`] and [`Breakers::record`].
    pub fn now(&self) -> Instant {
        Instant::now() + *lock(&self.ahead)
    }

    /// Moves the breakers' clock on by `by`: a test sees a cool-down end without waiting
    /// for it (and without a loaded machine moving the clock under its feet).
    pub fn advance(&self, by: Duration) {
        *lock(&self.ahead) += by;
    }

    /// Whether a request to `to` may go out now: only if its endpoint's and its host's
    /// circuits both let it (a probe's place is taken only then).
    pub fn admit(
        &self,
        to: Destination<'_>,
        settings: &BreakerSettings,
        now: Instant,
    ) -> Admission {
        if !settings.enabled() {
            return Admission::Go;
        }
        let mut map = lock(&self.circuits);
        if map.is_empty() {
            return Admission::Go;
        }
        let judge = |key: &str| {
            map.get(key)
                .map_or(Verdict::Go, |e| e.circuit.judge(settings, now))
        };
        let verdicts = [(to.endpoint, judge(to.endpoint)), (to.host, judge(to.host))];
        // Refused by the circuit that opens last (both must let it through).
        let refused = verdicts
            .iter()
            .filter_map(|(key, v)| match *v {
                Verdict::Refuse {
                    retry_in,
                    unwell_since,
                } => Some((retry_in, unwell_since, *key)),
                _ => None,
            })
            .max_by_key(|(retry_in, _, _)| *retry_in);
        if let Some((retry_in, unwell_since, key)) = refused {
            return Admission::Refuse {
                retry_in,
                circuit: key.to_owned(),
                unwell_for: now.saturating_duration_since(unwell_since),
            };
        }
        let mut admission = Admission::Go;
        for (key, v) in verdicts {
            if let Verdict::Probe(next) = v
                && let Some(entry) = map.get_mut(key)
            {
                entry.circuit = next;
                entry.seen = now;
                admission = Admission::Probe;
            }
        }
        admission
    }

    /// Records what a request to `to` came to; the transitions it caused.
    pub fn record(
        &self,
        to: Destination<'_>,
        signal: Signal,
        settings: &BreakerSettings,
        now: Instant,
    ) -> Vec<Transition> {
        if !settings.enabled() {
            return Vec::new();
        }
        let mut map = lock(&self.circuits);
        if map.is_empty() && matches!(signal, Signal::Answered | Signal::Nothing) {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (key, scope, unwell) in [
            (to.endpoint, Scope::Endpoint, signal.endpoint()),
            (to.host, Scope::Host, signal.host()),
        ] {
            let known = map.contains_key(key);
            if !known && unwell != Some(true) {
                continue; // A healthy target needs no entry.
            }
            if !known && map.len() >= MAX_CIRCUITS {
                forget_one(&mut map);
            }
            let entry = map.entry(key.to_owned()).or_insert_with(|| Entry {
                circuit: CLOSED,
                scope,
                route: to.route.to_owned(),
                seen: now,
            });
            let (next, t) = entry.circuit.record(unwell, settings, now);
            entry.circuit = next;
            entry.seen = now;
            if unwell == Some(true) && entry.route != to.route {
                to.route.clone_into(&mut entry.route);
            }
            if next == CLOSED {
                map.remove(key);
            }
            out.extend(t.map(|t| match t {
                TransitionKind::Opened {
                    cool_down,
                    openings,
                } => Transition::Opened {
                    circuit: key.to_owned(),
                    scope,
                    cool_down,
                    openings,
                },
                TransitionKind::Closed { unwell_for } => Transition::Closed {
                    circuit: key.to_owned(),
                    scope,
                    unwell_for,
                },
            }));
        }
        out
    }

    /// The circuits open (or probing) now, hosts first, by name.
    pub fn open(&self, now: Instant) -> Vec<OpenCircuit> {
        let mut out: Vec<OpenCircuit> = lock(&self.circuits)
            .iter()
            .filter_map(|(key, e)| {
                let (retry_in, openings, since) = match e.circuit {
                    Circuit::Open {
                        until,
                        openings,
                        unwell_since,
                    } => (until.saturating_duration_since(now), openings, unwell_since),
                    Circuit::HalfOpen {
                        openings,
                        unwell_since,
                        ..
                    } => (Duration::ZERO, openings, unwell_since),
                    Circuit::Closed { .. } => return None,
                };
                Some(OpenCircuit {
                    circuit: key.clone(),
                    scope: e.scope,
                    route: e.route.clone(),
                    retry_in_s: retry_in.as_secs(),
                    openings,
                    unwell_for_s: now.saturating_duration_since(since).as_secs(),
                })
            })
            .collect();
        out.sort_by(|a, b| (b.scope, &a.circuit).cmp(&(a.scope, &b.circuit)));
        out
    }

    /// How many circuits are remembered.
    pub fn len(&self) -> usize {
        lock(&self.circuits).len()
    }

    pub fn is_empty(&self) -> bool {
        lock(&self.circuits).is_empty()
    }
}

/// Forgets one circuit to make room: a closed one first, else the least recently used.
fn forget_one(map: &mut HashMap<String, Entry>) {
    let victim = map
        .iter()
        .min_by_key(|(_, e)| (!matches!(e.circuit, Circuit::Closed { .. }), e.seen))
        .map(|(k, _)| k.clone());
    if let Some(k) = victim {
        map.remove(&k);
    }
}

#[cfg(test)]
mod tests;
