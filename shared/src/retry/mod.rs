//! The retry decision, pure. [`classify`] says what one attempt's outcome means (CONTRACT
//! section 4), [`decide`] what happens to the message (delivered, retry after a delay, or
//! dead letter with a reason); this module holds the schedule they follow.

mod classify;
mod decide;
mod failure;

pub use classify::{Outcome, Refusal, Resend, RetryReason, Verdict, classify};
pub use decide::{Attempted, DEFER_DELAY, Disposition, MIN_CIRCUIT_WAIT, WaitReason, decide};
pub use failure::{DeadLetter, Failure};

use std::time::{Duration, SystemTime};

/// The longest delay SQS can hold a message invisible (and our cap for `Retry-After`).
pub const MAX_DELAY: Duration = Duration::from_secs(12 * 3600);

/// A route's retry settings: the delays before attempts 2, 3, ... and the maximum age.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub schedule: Vec<Duration>,
    pub max_age: Duration,
}

impl Default for RetryPolicy {
    /// `["5s", "30s", "5m", "30m", "2h", "6h", "12h"]`, `max_age = "24h"`.
    fn default() -> Self {
        let secs = [5, 30, 300, 1800, 7200, 21_600, 43_200];
        Self {
            schedule: secs.into_iter().map(Duration::from_secs).collect(),
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

impl RetryPolicy {
    /// How many attempts the schedule allows: its length plus the first attempt.
    pub fn attempts(&self) -> u32 {
        self.schedule.len() as u32 + 1
    }

    /// The most attempts its schedule allows by `elapsed` after the first (each retry
    /// waits at least its delay): a bound on a receive count that may have run ahead of
    /// the attempts made.
    pub fn attempts_by(&self, elapsed: Duration) -> u32 {
        let mut at = Duration::ZERO;
        let mut n = 1;
        for d in &self.schedule {
            at = at.saturating_add((*d).min(MAX_DELAY));
            if at > elapsed {
                break;
            }
            n += 1;
        }
        n
    }

    /// The time its schedule spans: how long after the first attempt the route gives up
    /// when every attempt fails at once (each delay as SQS can hold it).
    pub fn span(&self) -> Duration {
        self.schedule
            .iter()
            .map(|d| (*d).min(MAX_DELAY))
            .fold(Duration::ZERO, Duration::saturating_add)
    }
}

/// After a retryable failure: wait, or give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    RetryIn(Duration),
    GiveUp(Failure),
}

/// The next step after attempt `attempt` (1-based) failed retryably, `elapsed` after the
/// event was received. The delay is the schedule's next step; a `Retry-After` is
/// honoured, clamped to [scheduled delay, 12 h]. No attempt is planned past `max_age`.
pub fn next_step(
    policy: &RetryPolicy,
    attempt: u32,
    elapsed: Duration,
    retry_after: Option<Duration>,
) -> NextStep {
    let Some(&scheduled) = policy.schedule.get(attempt.saturating_sub(1) as usize) else {
        return NextStep::GiveUp(Failure::AttemptsExhausted);
    };
    let scheduled = scheduled.min(MAX_DELAY);
    let delay = retry_after.map_or(scheduled, |ra| ra.clamp(scheduled, MAX_DELAY));
    if elapsed.saturating_add(delay) > policy.max_age {
        return NextStep::GiveUp(Failure::Expired);
    }
    NextStep::RetryIn(delay)
}

/// Whether an event this old may get no attempt at all.
pub fn is_expired(policy: &RetryPolicy, elapsed: Duration) -> bool {
    elapsed > policy.max_age
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP date (a date in the past is 0).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests;
