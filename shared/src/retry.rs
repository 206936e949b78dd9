//! The retry decision, pure: how one attempt is classified (CONTRACT section 4) and
//! what happens next (retry after a delay, or give up with a reason).

use std::fmt;
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
}

/// Why a delivery was dead-lettered (the DLQ message's `failure` attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    HttpStatus,
    Timeout,
    Connect,
    Render,
    TooLarge,
    BlockedTarget,
    Expired,
    AttemptsExhausted,
    UnknownRoute,
    Malformed,
}

impl Failure {
    pub const ALL: [Failure; 10] = [
        Self::HttpStatus,
        Self::Timeout,
        Self::Connect,
        Self::Render,
        Self::TooLarge,
        Self::BlockedTarget,
        Self::Expired,
        Self::AttemptsExhausted,
        Self::UnknownRoute,
        Self::Malformed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::HttpStatus => "http_status",
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Render => "render",
            Self::TooLarge => "too_large",
            Self::BlockedTarget => "blocked_target",
            Self::Expired => "expired",
            Self::AttemptsExhausted => "attempts_exhausted",
            Self::UnknownRoute => "unknown_route",
            Self::Malformed => "malformed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one attempt (delivery POST or enrich GET) came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Status {
        code: u16,
        retry_after: Option<Duration>,
    },
    Timeout,
    Connect,
    Render,
    TooLarge,
    Blocked,
}

/// The classification of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Worth another attempt (if the schedule and `max_age` allow).
    Retry {
        failure: Failure,
        retry_after: Option<Duration>,
    },
    Permanent(Failure),
    /// 401/403 on an oauth2 route: re-read the token and resend now, not an attempt.
    RefreshTokenAndResend,
}

/// Classifies an attempt. `token_already_refreshed`: this was the resend after a refresh.
pub fn classify(outcome: &Outcome, oauth2_route: bool, token_already_refreshed: bool) -> Verdict {
    match *outcome {
        Outcome::Status { code, .. } if (200..300).contains(&code) => Verdict::Delivered,
        Outcome::Status { code, retry_after }
            if code == 408 || code == 425 || code == 429 || code >= 500 =>
        {
            Verdict::Retry {
                failure: Failure::HttpStatus,
                retry_after,
            }
        }
        Outcome::Status {
            code: 401 | 403, ..
        } if oauth2_route && !token_already_refreshed => Verdict::RefreshTokenAndResend,
        Outcome::Status { .. } => Verdict::Permanent(Failure::HttpStatus),
        Outcome::Timeout => Verdict::Retry {
            failure: Failure::Timeout,
            retry_after: None,
        },
        Outcome::Connect => Verdict::Retry {
            failure: Failure::Connect,
            retry_after: None,
        },
        Outcome::Render => Verdict::Permanent(Failure::Render),
        Outcome::TooLarge => Verdict::Permanent(Failure::TooLarge),
        Outcome::Blocked => Verdict::Permanent(Failure::BlockedTarget),
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
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn policy(schedule: &[u64], max_age: u64) -> RetryPolicy {
        RetryPolicy {
            schedule: schedule.iter().copied().map(S).collect(),
            max_age: S(max_age),
        }
    }

    #[test]
    fn the_default_schedule_is_the_contracts() {
        let p = RetryPolicy::default();
        assert_eq!(p.attempts(), 8);
        assert_eq!(p.schedule[0], S(5));
        assert_eq!(*p.schedule.last().unwrap(), MAX_DELAY);
        assert_eq!(p.max_age, S(86_400));
    }

    #[test]
    fn delays_follow_the_schedule_then_attempts_run_out() {
        let p = policy(&[5, 30, 300], 86_400);
        assert_eq!(next_step(&p, 1, S(0), None), NextStep::RetryIn(S(5)));
        assert_eq!(next_step(&p, 2, S(5), None), NextStep::RetryIn(S(30)));
        assert_eq!(next_step(&p, 3, S(35), None), NextStep::RetryIn(S(300)));
        assert_eq!(
            next_step(&p, 4, S(335), None),
            NextStep::GiveUp(Failure::AttemptsExhausted)
        );
        assert_eq!(
            next_step(&policy(&[], 60), 1, S(0), None),
            NextStep::GiveUp(Failure::AttemptsExhausted)
        );
    }

    #[test]
    fn retry_after_is_clamped_between_the_scheduled_delay_and_12h() {
        let p = policy(&[30], 7 * 86_400);
        assert_eq!(
            next_step(&p, 1, S(0), Some(S(120))),
            NextStep::RetryIn(S(120))
        );
        assert_eq!(next_step(&p, 1, S(0), Some(S(1))), NextStep::RetryIn(S(30)));
        assert_eq!(
            next_step(&p, 1, S(0), Some(S(86_400))),
            NextStep::RetryIn(MAX_DELAY)
        );
    }

    #[test]
    fn no_attempt_is_planned_past_max_age() {
        let p = policy(&[60, 3600], 3000);
        assert_eq!(next_step(&p, 1, S(2900), None), NextStep::RetryIn(S(60)));
        assert_eq!(
            next_step(&p, 1, S(2950), None),
            NextStep::GiveUp(Failure::Expired)
        );
        assert_eq!(
            next_step(&p, 2, S(100), None),
            NextStep::GiveUp(Failure::Expired)
        );
        assert!(is_expired(&p, S(3001)));
        assert!(!is_expired(&p, S(3000)));
    }

    #[test]
    fn outcomes_are_classified_as_the_contract_says() {
        let status = |code| Outcome::Status {
            code,
            retry_after: None,
        };
        for code in [200, 201, 204, 299] {
            assert_eq!(
                classify(&status(code), false, false),
                Verdict::Delivered,
                "{code}"
            );
        }
        for code in [408, 425, 429, 500, 502, 503, 599] {
            assert!(
                matches!(
                    classify(&status(code), false, false),
                    Verdict::Retry {
                        failure: Failure::HttpStatus,
                        ..
                    }
                ),
                "{code}"
            );
        }
        for code in [301, 400, 401, 403, 404, 410, 413, 422] {
            assert_eq!(
                classify(&status(code), false, false),
                Verdict::Permanent(Failure::HttpStatus),
                "{code}"
            );
        }
        assert_eq!(
            classify(&Outcome::Timeout, false, false),
            Verdict::Retry {
                failure: Failure::Timeout,
                retry_after: None
            }
        );
        assert_eq!(
            classify(&Outcome::Connect, false, false),
            Verdict::Retry {
                failure: Failure::Connect,
                retry_after: None
            }
        );
        assert_eq!(
            classify(&Outcome::Render, false, false),
            Verdict::Permanent(Failure::Render)
        );
        assert_eq!(
            classify(&Outcome::TooLarge, false, false),
            Verdict::Permanent(Failure::TooLarge)
        );
        assert_eq!(
            classify(&Outcome::Blocked, false, false),
            Verdict::Permanent(Failure::BlockedTarget)
        );
        let ra = Outcome::Status {
            code: 429,
            retry_after: Some(S(9)),
        };
        assert_eq!(
            classify(&ra, false, false),
            Verdict::Retry {
                failure: Failure::HttpStatus,
                retry_after: Some(S(9))
            }
        );
    }

    #[test]
    fn auth_rejections_on_oauth2_routes_get_one_token_refresh() {
        for code in [401, 403] {
            let o = Outcome::Status {
                code,
                retry_after: None,
            };
            assert_eq!(classify(&o, true, false), Verdict::RefreshTokenAndResend);
            assert_eq!(
                classify(&o, true, true),
                Verdict::Permanent(Failure::HttpStatus)
            );
        }
    }

    #[test]
    fn failures_round_trip_through_their_names() {
        for f in Failure::ALL {
            assert_eq!(Failure::parse(f.as_str()), Some(f));
        }
        assert_eq!(Failure::parse("nope"), None);
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + S(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(parse_retry_after("120", now), Some(S(120)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now),
            Some(S(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(S(0))
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
