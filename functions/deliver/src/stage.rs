//! The types the stages of a delivery hand each other (the leaf every stage may import):
//! what one attempt came to ([`Attempt`], with the answer kept for a reply, [`Captured`]),
//! and a message after its decision ([`Processed`]), which reply, settle and report take.

use router_core::ports::{OutgoingMessage, ReceivedMessage};
use router_core::retry::{Attempted, Disposition};
use std::time::Duration;

/// The most of an answer kept as a reply's `response.text`.
pub const MAX_RESPONSE_TEXT: usize = 256 * 1024;

/// What one attempt came to.
#[derive(Debug)]
pub struct Attempt {
    pub attempted: Attempted,
    /// The request's latency, when one was made.
    pub latency: Option<Duration>,
    /// The 2xx answer, kept when the route has a `reply`.
    pub response: Option<Captured>,
}

impl Attempt {
    /// Ended before a request was made.
    pub fn ended(attempted: Attempted) -> Self {
        Self {
            attempted,
            latency: None,
            response: None,
        }
    }
}

/// A target's answer, kept for the reply.
#[derive(Debug)]
pub struct Captured {
    pub status: u16,
    /// At most [`MAX_RESPONSE_TEXT`] bytes.
    pub body: Vec<u8>,
    pub truncated: bool,
}

/// One message after its decision: the message, its labels, what happens to it.
#[derive(Debug)]
pub struct Processed {
    pub msg: ReceivedMessage,
    pub route: String,
    pub delivery_id: String,
    /// The trigger event's id (`-` when the message is not a delivery job): every log
    /// line of a delivery names it, which joins it to the trigger's audit line.
    pub event_id: String,
    pub attempt: u32,
    /// The delivery request's latency, when one was made.
    pub latency: Option<Duration>,
    pub disposition: Disposition,
    /// A reply job to queue before this message is settled (the route's `reply`).
    pub follow_up: Option<OutgoingMessage>,
}
