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
        group: None,
        dedup_id: None,
    }
}

/// The queue message for one job of an ordered route (the FIFO queue): its group is the
/// route and the event's session key, so one session's deliveries go out in order; its
/// deduplication id is `dedup` (the delivery id when the trigger sends it, so a retried
/// trigger is not queued twice within SQS's 5 minutes).
pub fn ordered_job_message(job: &DeliveryJob, dedup: &str) -> OutgoingMessage {
    OutgoingMessage {
        group: Some(message_group(job)),
        dedup_id: Some(dedup.to_owned()),
        ..job_message(job)
    }
}

/// The message group of a job: its route (up to 64 characters) and a hash of the route and
/// the event's session key (`session_id`, else `user_id`), within SQS's 128 characters.
pub fn message_group(job: &DeliveryJob) -> String {
    use sha2::{Digest, Sha256};
    let key = job.event.session_key().unwrap_or_default();
    let mut h = Sha256::new();
    h.update(job.route.as_str().as_bytes());
    h.update([0u8]);
    h.update(key.as_bytes());
    format!(
        "{}:{}",
        crate::text::bounded(job.route.as_str(), 64),
        hex::encode(&h.finalize()[..16])
    )
}
