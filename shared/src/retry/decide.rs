//! The decision for one message, pure: from what its attempt came to, the route's retry
//! policy, the attempt number and the message's age, to what happens to it.

use super::DeadLetter;
use super::{NextStep, Outcome, Resend, RetryPolicy, RetryReason, Verdict, classify, next_step};
use std::time::Duration;

/// What one message's attempt came to (or what ended it before the attempt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempted {
    pub outcome: Outcome,
    /// The HTTP status seen, if a request got an answer.
    pub status: Option<u16>,
    /// Why it did not succeed: safe for logs and `last_error` (no URL, body or secret).
    pub error: String,
}

impl Attempted {
    pub fn new(outcome: Outcome, error: impl Into<String>) -> Self {
        Self {
            outcome,
            status: None,
            error: error.into(),
        }
    }

    /// The same outcome with `prefix` before its error (`enrich lookup: ...`).
    pub fn prefixed(mut self, prefix: &str) -> Self {
        self.error = format!("{prefix}{}", self.error);
        self
    }
}

/// Why a message waits without an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    /// Its endpoint's or host's circuit is open.
    CircuitOpen,
    /// Its attempt could not finish before the invocation's deadline.
    Deadline,
    /// An earlier delivery of its session has not succeeded yet.
    HeldBack,
    /// A rate limit of its target has no place for it yet.
    RateLimited,
}

impl WaitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            WaitReason::CircuitOpen => "circuit_open",
            WaitReason::Deadline => "deadline",
            WaitReason::HeldBack => "held_back",
            WaitReason::RateLimited => "rate_limited",
        }
    }
}

/// What happens to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    Delivered {
        status: u16,
    },
    /// Back on the queue after `delay` without an attempt: its attempt number and its place
    /// in its schedule stay as they were.
    Wait {
        delay: Duration,
        reason: WaitReason,
        error: String,
    },
    /// Back on the queue, visible again after `delay`.
    Retry {
        delay: Duration,
        reason: RetryReason,
        status: Option<u16>,
        error: String,
    },
    DeadLetter(DeadLetter),
}

/// How soon a deferred message (not started before the deadline) comes back.
pub const DEFER_DELAY: Duration = Duration::from_secs(1);
/// The shortest wait for a circuit: a refusal never comes straight back.
pub const MIN_CIRCUIT_WAIT: Duration = Duration::from_secs(1);

/// Decides a message's fate after attempt `attempt` (1-based), `elapsed` after its event
/// was received. A 401/403 here is final: the oauth2 resend happened inside the attempt.
///
/// Two outcomes are waits, not attempts: a deferred message comes back after
/// [`DEFER_DELAY`]; one refused by an open circuit when a request may go again, or when
/// its schedule would have ended if that is sooner. A refused one is dead-lettered
/// (`circuit_open`) only when its route would have given up anyway had every attempt
/// failed: once the time its schedule spans has passed, or when the wait would take it
/// past `max_age`.
pub fn decide(a: &Attempted, policy: &RetryPolicy, attempt: u32, elapsed: Duration) -> Disposition {
    if let Some(waits) = waiting(a, policy, attempt, elapsed) {
        return waits;
    }
    settled(a, policy, attempt, elapsed)
}

/// Whole seconds, rounded up (queues count visibility in seconds), within the waits' bounds.
fn whole_wait(until: Duration) -> Duration {
    let whole = Duration::from_secs(until.as_secs() + u64::from(until.subsec_nanos() > 0));
    whole.clamp(MIN_CIRCUIT_WAIT, super::MAX_DELAY)
}

/// The wait (or, for a rate limit past `max_age`, the end) of an outcome that is no
/// attempt; `None` for the others.
fn waiting(
    a: &Attempted,
    policy: &RetryPolicy,
    attempt: u32,
    elapsed: Duration,
) -> Option<Disposition> {
    let wait = |delay, reason| Disposition::Wait {
        delay,
        reason,
        error: a.error.clone(),
    };
    match &a.outcome {
        Outcome::Deferred => Some(wait(DEFER_DELAY, WaitReason::Deadline)),
        // Never given up for a limit: only `max_age` ends its wait (as `expired`).
        Outcome::RateLimited(until) => {
            let delay = whole_wait(*until);
            if elapsed.saturating_add(delay) <= policy.max_age {
                return Some(wait(delay, WaitReason::RateLimited));
            }
            Some(Disposition::DeadLetter(DeadLetter {
                failure: super::Failure::Expired,
                attempts: attempt.saturating_sub(1),
                last_status: a.status,
                last_error: format!("max_age would pass while waiting: {}", a.error),
            }))
        }
        Outcome::CircuitOpen(refusal) => {
            let span = policy.span();
            // Back once a request may go, or once its schedule would have ended (then it is
            // given up, unless the circuit closed meanwhile), whichever comes first.
            let delay = whole_wait(refusal.retry_in.min(span.saturating_sub(elapsed)));
            (elapsed < span && elapsed.saturating_add(delay) <= policy.max_age)
                .then(|| wait(delay, WaitReason::CircuitOpen))
        }
        _ => None,
    }
}

/// What an attempt (or what ended the message before one) comes to, waits aside.
fn settled(a: &Attempted, policy: &RetryPolicy, attempt: u32, elapsed: Duration) -> Disposition {
    let made = if a.outcome.before_attempt() {
        attempt.saturating_sub(1)
    } else {
        attempt
    };
    let dead = |failure| {
        Disposition::DeadLetter(DeadLetter {
            failure,
            attempts: made,
            last_status: a.status,
            last_error: a.error.clone(),
        })
    };
    if matches!(a.outcome, Outcome::CircuitOpen(_)) {
        return dead(super::Failure::CircuitOpen);
    }
    match classify(&a.outcome, Resend::Spent) {
        Verdict::Delivered => Disposition::Delivered {
            status: a.status.unwrap_or_default(),
        },
        Verdict::Permanent(failure) => dead(failure),
        Verdict::Retry {
            reason,
            retry_after,
        } => match next_step(policy, attempt, elapsed, retry_after) {
            NextStep::RetryIn(delay) => Disposition::Retry {
                delay,
                reason,
                status: a.status,
                error: a.error.clone(),
            },
            NextStep::GiveUp(failure) => dead(failure),
        },
        // Not returned for a request already resent; if it were, it is final.
        Verdict::RefreshTokenAndResend => dead(super::Failure::HttpStatus),
    }
}
