//! The decision for one message, pure: from what its attempt came to, the route's retry
//! policy, the attempt number and the message's age, to what happens to it.

use super::{NextStep, Outcome, RetryPolicy, Verdict, classify, next_step};
use crate::wire::dead_letter::DeadLetter;
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

/// What happens to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    Delivered {
        status: u16,
    },
    /// Back on the queue, visible again after `delay`.
    Retry {
        delay: Duration,
        reason: &'static str,
        status: Option<u16>,
        error: String,
    },
    DeadLetter(DeadLetter),
}

/// How soon a deferred message (not started before the deadline) comes back.
pub const DEFER_DELAY: Duration = Duration::from_secs(1);

/// Decides a message's fate after attempt `attempt` (1-based), `elapsed` after its event
/// was received. A 401/403 here is final: the oauth2 resend happened inside the attempt.
/// A deferred message comes back after [`DEFER_DELAY`], whatever its schedule says.
pub fn decide(a: &Attempted, policy: &RetryPolicy, attempt: u32, elapsed: Duration) -> Disposition {
    if a.outcome == Outcome::Deferred {
        return Disposition::Retry {
            delay: DEFER_DELAY,
            reason: "deadline",
            status: None,
            error: a.error.clone(),
        };
    }
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
    match classify(&a.outcome, false, true) {
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
