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
        reason: &'static str,
        retry_after: Option<Duration>,
    },
    Permanent(Failure),
    /// 401/403 on an oauth2 route: re-read the token and resend now, not an attempt.
    RefreshTokenAndResend,
}

fn retry(reason: &'static str) -> Verdict {
    Verdict::Retry {
        reason,
        retry_after: None,
    }
}

/// Classifies an outcome. `token_already_refreshed`: this was the resend after a refresh.
pub fn classify(outcome: &Outcome, oauth2_route: bool, token_already_refreshed: bool) -> Verdict {
    match *outcome {
        Outcome::Status { code, .. } if (200..300).contains(&code) => Verdict::Delivered,
        Outcome::Status { code, retry_after }
            if code == 408 || code == 425 || code == 429 || code >= 500 =>
        {
            Verdict::Retry {
                reason: Failure::HttpStatus.as_str(),
                retry_after,
            }
        }
        Outcome::Status {
            code: 401 | 403, ..
        } if oauth2_route && !token_already_refreshed => Verdict::RefreshTokenAndResend,
        Outcome::Status { .. } => Verdict::Permanent(Failure::HttpStatus),
        Outcome::Timeout => retry(Failure::Timeout.as_str()),
        Outcome::Connect | Outcome::Interrupted => retry(Failure::Connect.as_str()),
        Outcome::Credentials => retry("credentials"),
        Outcome::SigningKey => retry("signing_key"),
        // Waits, not failures: [`super::decide`] puts them back without an attempt.
        Outcome::CircuitOpen(_) => retry(Failure::CircuitOpen.as_str()),
        Outcome::Deferred => retry("deadline"),
        Outcome::Render => Verdict::Permanent(Failure::Render),
        Outcome::TooLarge => Verdict::Permanent(Failure::TooLarge),
        Outcome::Blocked => Verdict::Permanent(Failure::BlockedTarget),
        Outcome::Malformed => Verdict::Permanent(Failure::Malformed),
        Outcome::UnknownRoute => Verdict::Permanent(Failure::UnknownRoute),
        Outcome::Expired => Verdict::Permanent(Failure::Expired),
    }
}
