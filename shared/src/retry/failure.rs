//! What a delivery that is given up comes to: its [`Failure`] (the dead letter's `failure`
//! attribute, CONTRACT section 5) and the [`DeadLetter`] record the queue copy is made from
//! ([`crate::wire::dead_letter`] writes it as attributes).

use std::fmt;

/// Why a delivery was dead-lettered (the `failure` attribute).
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
    /// Refused by an open circuit until its route would have given up anyway.
    CircuitOpen,
}

impl Failure {
    pub const ALL: [Failure; 11] = [
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
        Self::CircuitOpen,
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
            Self::CircuitOpen => "circuit_open",
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

/// Why a message goes to the DLQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub failure: Failure,
    /// Attempts made (a message ended before its attempt on this receive counts one less).
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: String,
}
