//! A delivery-queue message (CONTRACT section 5): the job as its JSON body, and the
//! `route` and `delivery_id` attributes. Written by trigger and `routerctl dlq redrive`,
//! read by deliver and `routerctl dlq`.

use crate::domain::DeliveryJob;
use crate::ports::{MAX_MESSAGE_BYTES, OutgoingMessage};
use std::collections::BTreeMap;
use std::time::Duration;

/// The message attribute naming the job's route.
pub const ATTR_ROUTE: &str = "route";
/// The message attribute holding the job's delivery id.
pub const ATTR_DELIVERY_ID: &str = "delivery_id";

/// Room kept free in every queued message for the attributes a dead-letter copy adds
/// (`failure`, `attempts`, `last_status`, `last_error` of up to 256 characters), so a job
/// the queue took can always be dead-lettered too.
pub const DEAD_LETTER_HEADROOM: usize = 2048;
/// The largest job message (body and attributes) the trigger queues.
pub const MAX_JOB_BYTES: usize = MAX_MESSAGE_BYTES - DEAD_LETTER_HEADROOM;

/// The queue message for one job.
pub fn job_message(job: &DeliveryJob) -> OutgoingMessage {
    let mut attributes = BTreeMap::new();
    attributes.insert(ATTR_ROUTE.to_owned(), job.route.as_str().to_owned());
    attributes.insert(ATTR_DELIVERY_ID.to_owned(), job.delivery_id.clone());
    OutgoingMessage {
        body: job.to_json(),
        attributes,
        delay: Duration::ZERO,
    }
}
