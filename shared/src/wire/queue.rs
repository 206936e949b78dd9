//! A delivery-queue message (CONTRACT section 5): the job as its JSON body, and the
//! `route` and `delivery_id` attributes. Written by trigger and `routerctl dlq redrive`,
//! read by deliver and `routerctl dlq`.

use crate::domain::DeliveryJob;
use crate::ports::{MAX_MESSAGE_BYTES, OutgoingMessage, ReceivedMessage};
use std::collections::BTreeMap;
use std::time::Duration;

/// The message attribute naming the job's route.
pub const ATTR_ROUTE: &str = "route";
/// The message attribute holding the job's delivery id.
pub const ATTR_DELIVERY_ID: &str = "delivery_id";

/// On a copy a queue sent instead of uncounting a receive ([`released_copy`]): the
/// attempts made before the copy, so its first receive keeps the attempt number.
pub const ATTR_ATTEMPTS_BEFORE: &str = "attempts_before";
/// On such a copy: when the original was first sent (unix ms), so `max_age` keeps
/// counting from there.
pub const ATTR_FIRST_SENT: &str = "first_sent_ms";

/// The most attempts a copy may claim (far over any schedule; a bad value counts 0).
const MAX_ATTEMPTS_BEFORE: u32 = 10_000;

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

/// The attempt a receive of `m` is: its receive count, plus the attempts made before it
/// when it is a copy sent by [`Queue::release_batch`](crate::ports::Queue::release_batch).
pub fn attempt(m: &ReceivedMessage) -> u32 {
    let before = m
        .attributes
        .get(ATTR_ATTEMPTS_BEFORE)
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|n| *n <= MAX_ATTEMPTS_BEFORE)
        .unwrap_or(0);
    before.saturating_add(m.receive_count.max(1))
}

/// When `m` was first sent to the delivery queue (unix ms): a copy's original's.
pub fn first_sent_ms(m: &ReceivedMessage) -> i64 {
    m.attributes
        .get(ATTR_FIRST_SENT)
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|t| (0..=m.sent_at_ms).contains(t))
        .unwrap_or(m.sent_at_ms)
}

/// The copy of `m` that takes its place, visible after `delay`, when a receive cannot be
/// uncounted in place: the same body, group and attributes, plus the attempts made so far
/// (this receive's is not one) and when the original was first sent.
pub fn released_copy(m: &ReceivedMessage, delay: Duration) -> OutgoingMessage {
    let mut attributes = m.attributes.clone();
    attributes.insert(
        ATTR_ATTEMPTS_BEFORE.to_owned(),
        attempt(m).saturating_sub(1).to_string(),
    );
    attributes.insert(ATTR_FIRST_SENT.to_owned(), first_sent_ms(m).to_string());
    OutgoingMessage {
        body: m.body.clone(),
        attributes,
        delay,
        group: None,
        dedup_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(receive_count: u32, attrs: &[(&str, &str)]) -> ReceivedMessage {
        ReceivedMessage {
            message_id: "m".into(),
            receipt_handle: "r".into(),
            body: "{}".into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            receive_count,
            sent_at_ms: 5_000,
            group: None,
        }
    }

    #[test]
    fn a_copy_keeps_the_attempt_number_and_the_first_send() {
        // Refused on its third receive (two attempts made): the copy's first receive is
        // attempt 3 again, and it still counts its age from the original's send.
        let original = received(3, &[("route", "crm")]);
        let copy = released_copy(&original, Duration::from_secs(30));
        assert_eq!(copy.delay, Duration::from_secs(30));
        assert_eq!(copy.body, original.body);
        assert_eq!(copy.attributes["route"], "crm");
        let back = ReceivedMessage {
            attributes: copy.attributes.clone(),
            receive_count: 1,
            sent_at_ms: 90_000,
            ..original.clone()
        };
        assert_eq!(attempt(&back), 3);
        assert_eq!(first_sent_ms(&back), 5_000);
        // Refused again: still attempt 3.
        let again = released_copy(&back, Duration::ZERO);
        let back = ReceivedMessage {
            attributes: again.attributes,
            receive_count: 1,
            sent_at_ms: 120_000,
            ..original
        };
        assert_eq!((attempt(&back), first_sent_ms(&back)), (3, 5_000));
    }

    #[test]
    fn bad_copy_attributes_count_for_nothing() {
        for (k, v) in [
            (ATTR_ATTEMPTS_BEFORE, "x"),
            (ATTR_ATTEMPTS_BEFORE, "-1"),
            (ATTR_ATTEMPTS_BEFORE, "99999999"),
        ] {
            assert_eq!(attempt(&received(2, &[(k, v)])), 2, "{k}={v}");
        }
        for v in ["x", "-5", "9000"] {
            assert_eq!(
                first_sent_ms(&received(1, &[(ATTR_FIRST_SENT, v)])),
                5_000,
                "{v}"
            );
        }
        assert_eq!(attempt(&received(0, &[])), 1);
    }
}
