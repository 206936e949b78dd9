//! Stage 1 of a delivery: parse the job, find its route, check its age. What comes out is
//! either a message [`Ready`] for its attempt, or one that [`Ended`] here (malformed,
//! unknown route, past `max_age`) with the outcome that says why.

use router_core::domain::DeliveryJob;
use router_core::ports::ReceivedMessage;
use router_core::retry::{Attempted, Outcome, RetryPolicy, is_expired};
use router_core::routes::{Route, Routes};
use router_core::text::bounded;
use router_core::time_fmt::{format_duration, rfc3339, unix_ms};
use router_core::wire::queue::{ATTR_DELIVERY_ID, ATTR_ROUTE};
use std::time::Duration;
use time::OffsetDateTime;

/// Labels (route, delivery id) are cut to this many characters for logs and metrics.
pub const MAX_LABEL_CHARS: usize = 128;

/// A message ready for its attempt.
#[derive(Debug)]
pub struct Ready<'r> {
    pub job: DeliveryJob,
    pub route: &'r Route,
    /// The route's retry policy, or for a reply job its Cognigy endpoint's.
    pub policy: &'r RetryPolicy,
    /// 1-based: the message's receive count (plus the attempts a copy carries), for a
    /// grouped message at most what its schedule allows by now.
    pub attempt: u32,
    /// Since the later of the event's receipt and the message's send.
    pub elapsed: Duration,
}

/// A message that ends before its attempt.
#[derive(Debug)]
pub struct Ended {
    /// The route it names, for logs and metrics (`unknown` when it names none).
    pub route: String,
    pub delivery_id: String,
    /// The event's id (`-` when the body is not a delivery job).
    pub event_id: String,
    pub attempted: Attempted,
}

/// The route label of a message that names none.
pub const NO_ROUTE: &str = "unknown";

pub fn prepare<'r>(
    routes: &'r Routes,
    msg: &ReceivedMessage,
    now: OffsetDateTime,
) -> Result<Ready<'r>, Box<Ended>> {
    let counted = router_core::wire::queue::attempt(msg);
    let job = DeliveryJob::parse(&msg.body).map_err(|e| -> Box<Ended> {
        // Named by its attributes, when it has them.
        let attr = |k: &str| msg.attributes.get(k).map(|v| bounded(v, MAX_LABEL_CHARS));
        Box::new(Ended {
            route: attr(ATTR_ROUTE).unwrap_or_else(|| NO_ROUTE.to_owned()),
            delivery_id: attr(ATTR_DELIVERY_ID).unwrap_or_default(),
            event_id: "-".to_owned(),
            attempted: Attempted::new(Outcome::Malformed, e.to_string()),
        })
    })?;
    let ended = |job: &DeliveryJob, outcome, error: String| {
        Box::new(Ended {
            route: job.route.as_str().to_owned(),
            delivery_id: job.delivery_id.clone(),
            event_id: job.event_id.as_str().to_owned(),
            attempted: Attempted::new(outcome, error),
        })
    };
    let Some(route) = routes.get(job.route.as_str()) else {
        let error = format!("route `{}` is not in the routes file", job.route);
        return Err(ended(&job, Outcome::UnknownRoute, error));
    };
    let policy = match (&job.reply, &route.reply) {
        (Some(_), Some(reply)) => routes
            .cognigy
            .get(&reply.to.endpoint)
            .map_or(&route.retry, |e| &e.retry),
        _ => &route.retry,
    };
    let elapsed = age(&job, msg, now);
    // A wait on SQS FIFO cannot be uncounted (docs/DECISIONS.md, "Target isolation"): a
    // grouped message's receive count may run ahead of its attempts, never its schedule.
    let attempt = if msg.group.is_some() {
        counted.min(policy.attempts_by(elapsed))
    } else {
        counted
    };
    if is_expired(policy, elapsed) {
        let error = format!(
            "max_age of {} had passed before attempt {attempt} (received {})",
            format_duration(policy.max_age),
            rfc3339(job.received_at)
        );
        return Err(ended(&job, Outcome::Expired, error));
    }
    Ok(Ready {
        job,
        route,
        policy,
        attempt,
        elapsed,
    })
}

/// How old the job is: since the later of `received_at` and the send to this queue, so a
/// message an operator redrives from the DLQ gets a fresh `max_age` (a copy that took a
/// waiting message's place counts from the original's send).
pub fn age(job: &DeliveryJob, msg: &ReceivedMessage, now: OffsetDateTime) -> Duration {
    let start_ms = unix_ms(job.received_at).max(router_core::wire::queue::first_sent_ms(msg));
    let now_ms = unix_ms(now);
    Duration::from_millis(now_ms.saturating_sub(start_ms).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn age_counts_from_the_later_of_received_at_and_the_send() {
        let now = time::macros::datetime!(2026-11-27 12:00:00 UTC);
        let job = DeliveryJob::parse(
            &serde_json::json!({
                "v": 1, "delivery_id": "dlv_1", "event_id": "evt_1", "route": "crm",
                "event": {"id": "evt_1", "event_type": "intent", "score": 1.0},
                "received_at": "2026-11-27T10:00:00Z"
            })
            .to_string(),
        )
        .unwrap();
        let msg = |sent_at_ms: i64| ReceivedMessage {
            message_id: "m".into(),
            receipt_handle: "r".into(),
            body: String::new(),
            attributes: BTreeMap::new(),
            receive_count: 1,
            sent_at_ms,
            group: None,
        };
        let ten = unix_ms(time::macros::datetime!(2026-11-27 10:00:00 UTC));
        let eleven = ten + 3_600_000;
        assert_eq!(age(&job, &msg(ten), now), Duration::from_secs(7200));
        assert_eq!(age(&job, &msg(0), now), Duration::from_secs(7200));
        // Redriven an hour later: counted from the redrive.
        assert_eq!(age(&job, &msg(eleven), now), Duration::from_secs(3600));
        // A clock that runs behind the send is no age at all.
        assert_eq!(age(&job, &msg(unix_ms(now) + 5000), now), Duration::ZERO);
    }
}
