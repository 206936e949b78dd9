//! What one outcome means (CONTRACT section 4): delivered, worth another attempt, or
//! permanent with a `failure`. Every way a message can end goes through [`classify`]: the
//! answers and errors of a request, and what ends a message before its attempt.

use super::Failure;
use crate::breaker::Signal;
use std::time::Duration;

/// What one attempt (delivery POST or enrich GET) came to, or what ended the message
/// before its attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    // Before the attempt.
    /// The body is not a delivery job.
    Malformed,
    /// The job names a route the routes file does not have.
    UnknownRoute,
    /// `max_age` passed before this attempt could start.
    Expired,
    /// Not started: it could not finish before the invocation's deadline. Not an attempt
    /// and not a failure: the message comes back shortly.
    Deferred,
    /// Not sent: its endpoint's or host's circuit is open. Not an attempt: the message
    /// waits until a request may go.
    CircuitOpen(Box<Refusal>),
    /// Not sent: a rate limit of its target has no place for it for this long. Not an
    /// attempt: the message waits for its place.
    RateLimited(Duration),
    // The attempt.
    Status {
        code: u16,
        retry_after: Option<Duration>,
    },
    Timeout,
    /// No connection could be made (refused, DNS, TLS, connect timeout).
    Connect,
    /// Connected, then the exchange broke off before an answer (reset, closed).
    Interrupted,
    Render,
    TooLarge,
    Blocked,
    /// An auth header's secret or token could not be read or used: an operator can fix it.
    Credentials,
    /// The `[signing]` key could not be read or used: an operator can fix it.
    SigningKey,
}

/// An open circuit's refusal: when a request may go again (`retry_in`), what is open
/// (`circuit`), and how long its trouble has lasted (`unwell_for`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub retry_in: Duration,
    pub circuit: String,
    pub unwell_for: Duration,
}

impl Outcome {
    /// Whether this ended the message before any attempt was made on this receive.
    pub fn before_attempt(&self) -> bool {
        matches!(
            self,
            Self::Malformed
                | Self::UnknownRoute
                | Self::Expired
                | Self::Deferred
                | Self::CircuitOpen(_)
                | Self::RateLimited(_)
        )
    }

    /// What a request's outcome says about its target, for the circuit breakers: any HTTP
    /// answer (a too large one too) proves it is there, whatever the status; a timeout or
    /// a broken exchange is the endpoint's trouble; a failed connection the host's.
    pub fn signal(&self) -> Signal {
        match self {
            Self::Status { .. } | Self::TooLarge => Signal::Answered,
            Self::Timeout | Self::Interrupted => Signal::EndpointUnwell,
            Self::Connect => Signal::HostUnwell,
            _ => Signal::Nothing,
        }
    }
}

/// The classification of one outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Worth another attempt (if the schedule and `max_age` allow); `reason` names it in logs.
    Retry {
        reason: RetryReason,
        retry_after: Option<Duration>,
    },
    Permanent(Failure),
    /// 401/403 on an oauth2 route: re-read the token and resend now, not an attempt.
    RefreshTokenAndResend,
}

/// Why a delivery is retried (the log lines' `failure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    HttpStatus,
    Timeout,
    Connect,
    /// An auth header's secret or token could not be read or used.
    Credentials,
    /// The `[signing]` key could not be read or used.
    SigningKey,
    /// The delivery went out, but its reply could not be queued: it is sent again.
    ReplyNotQueued,
    /// Only for completeness: [`super::decide`] makes these waits, never retries.
    CircuitOpen,
    RateLimited,
    Deadline,
}

impl RetryReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RetryReason::HttpStatus => Failure::HttpStatus.as_str(),
            RetryReason::Timeout => Failure::Timeout.as_str(),
            RetryReason::Connect => Failure::Connect.as_str(),
            RetryReason::Credentials => "credentials",
            RetryReason::SigningKey => "signing_key",
            RetryReason::ReplyNotQueued => "reply_not_queued",
            RetryReason::CircuitOpen => Failure::CircuitOpen.as_str(),
            RetryReason::RateLimited => "rate_limited",
            RetryReason::Deadline => "deadline",
        }
    }
}

fn retry(reason: RetryReason) -> Verdict {
    Verdict::Retry {
        reason,
        retry_after: None,
    }
}

/// Whether a 401/403 may still make the attempt re-read its token and resend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// An oauth2 route's first request: a 401/403 re-reads the token and resends once.
    Possible,
    /// Not an oauth2 route, or the resend has been made: a 401/403 is final.
    Spent,
}

/// Classifies an outcome.
pub fn classify(outcome: &Outcome, resend: Resend) -> Verdict {
    match *outcome {
        Outcome::Status { code, .. } if (200..300).contains(&code) => Verdict::Delivered,
        Outcome::Status { code, retry_after }
            if code == 408 || code == 425 || code == 429 || code >= 500 =>
        {
            Verdict::Retry {
                reason: RetryReason::HttpStatus,
                retry_after,
            }
        }
        Outcome::Status {
            code: 401 | 403, ..
        } if resend == Resend::Possible => Verdict::RefreshTokenAndResend,
        Outcome::Status { .. } => Verdict::Permanent(Failure::HttpStatus),
        Outcome::Timeout => retry(RetryReason::Timeout),
        Outcome::Connect | Outcome::Interrupted => retry(RetryReason::Connect),
        Outcome::Credentials => retry(RetryReason::Credentials),
        Outcome::SigningKey => retry(RetryReason::SigningKey),
        // Waits, not failures: [`super::decide`] puts them back without an attempt.
        Outcome::CircuitOpen(_) => retry(RetryReason::CircuitOpen),
        Outcome::RateLimited(_) => retry(RetryReason::RateLimited),
        Outcome::Deferred => retry(RetryReason::Deadline),
        Outcome::Render => Verdict::Permanent(Failure::Render),
        Outcome::TooLarge => Verdict::Permanent(Failure::TooLarge),
        Outcome::Blocked => Verdict::Permanent(Failure::BlockedTarget),
        Outcome::Malformed => Verdict::Permanent(Failure::Malformed),
        Outcome::UnknownRoute => Verdict::Permanent(Failure::UnknownRoute),
        Outcome::Expired => Verdict::Permanent(Failure::Expired),
    }
}
