//! A delivery-queue message (CONTRACT section 5): the job as its JSON body, and the
//! `route` and `delivery_id` attributes. Written by trigger and `routerctl dlq redrive`,
//! read by deliver and `routerctl dlq`.

pub use crate::ports::limits::{MAX_DATA_DEPTH, json_depth};

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
        group_cap: None,
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
/// the event's session key with the field it came from (`session_id`, else `user_id`: an
/// event with only `user_id` "x" never waits behind one with `session_id` "x"), within
/// SQS's 128 characters.
pub fn message_group(job: &DeliveryJob) -> String {
    use sha2::{Digest, Sha256};
    let (field, key) = job.event.session().unwrap_or(("", ""));
    let mut h = Sha256::new();
    h.update(job.route.as_str().as_bytes());
    h.update([0u8]);
    h.update(field.as_bytes());
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
        group_cap: None,
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

    fn nested(levels: usize) -> serde_json::Value {
        let mut v = serde_json::json!({"leaf": 1});
        for i in 1..levels {
            v = if i % 2 == 0 {
                serde_json::json!({ "k": v })
            } else {
                serde_json::json!([v])
            };
        }
        v
    }

    #[test]
    fn a_session_id_and_a_user_id_of_the_same_value_are_different_groups() {
        use crate::domain::{EventId, EventType, RouteName, TriggerEvent};
        let job = |session: Option<&str>, user: Option<&str>| {
            let event = TriggerEvent {
                id: EventId::parse("evt_1").unwrap(),
                event_type: EventType::Intent,
                name: None,
                score: 1.0,
                user_id: user.map(str::to_owned),
                session_id: session.map(str::to_owned),
                data: None,
            };
            DeliveryJob::new(
                &event,
                &RouteName::parse("timeline").unwrap(),
                time::OffsetDateTime::now_utc(),
            )
        };
        let by_session = message_group(&job(Some("victim"), None));
        assert_ne!(by_session, message_group(&job(None, Some("victim"))));
        // The session id decides when both are there; an empty one counts as absent.
        assert_eq!(
            by_session,
            message_group(&job(Some("victim"), Some("other")))
        );
        assert_eq!(
            message_group(&job(Some(""), Some("victim"))),
            message_group(&job(None, Some("victim")))
        );
        assert!(by_session.starts_with("timeline:") && by_session.len() <= 128);
    }

    #[test]
    fn depth_counts_levels_of_objects_and_arrays() {
        assert_eq!(json_depth(&serde_json::json!(1), 64), 0);
        assert_eq!(json_depth(&serde_json::json!({}), 64), 1);
        assert_eq!(json_depth(&serde_json::json!({"a": [1, {"b": []}]}), 64), 4);
        for n in [1, 63, 64, 65, 127] {
            assert_eq!(json_depth(&nested(n), 200), n, "{n}");
        }
        assert_eq!(json_depth(&nested(500), 64), 65, "stops past the limit");
    }

    #[test]
    fn a_job_with_data_at_the_limit_parses_again_and_so_does_its_reply() {
        use crate::domain::{Answer, EventId, EventType, RouteName, TriggerEvent};
        let data = serde_json::json!({ "d": nested(MAX_DATA_DEPTH - 1) });
        let event = TriggerEvent {
            id: EventId::parse("evt_deep").unwrap(),
            event_type: EventType::Intent,
            name: None,
            score: 1.0,
            user_id: Some("u".into()),
            session_id: Some("s".into()),
            data: data.as_object().cloned(),
        };
        assert_eq!(json_depth(&data, 100), MAX_DATA_DEPTH);
        let job = DeliveryJob::new(
            &event,
            &RouteName::parse("crm").unwrap(),
            time::OffsetDateTime::now_utc(),
        );
        let body = job_message(&job).body;
        let back = DeliveryJob::parse(&body).expect("the job parses again");
        assert_eq!(back.event.data, event.data);
        let reply = job.reply_job(
            Answer::Response {
                status: 200,
                json: Some(nested(MAX_DATA_DEPTH)),
                text: None,
            },
            time::OffsetDateTime::now_utc(),
        );
        DeliveryJob::parse(&job_message(&reply).body).expect("its reply parses again");
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
