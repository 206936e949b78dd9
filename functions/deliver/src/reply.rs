//! Reply routes: after a route's delivery succeeds, its answer becomes a reply job (its
//! own queue message, its own delivery id derived from the parent's); when the delivery is
//! dead-lettered and the route has `on_failure`, that template goes instead. The reply job
//! is queued before the parent is settled: if it cannot be, the parent is not settled
//! either (it comes back and is tried again, with the same `webhook-id`). A reply job
//! never makes a reply of its own, so loops cannot happen; but when a reply fails for good
//! (its text too long for Cognigy, an answer that is not JSON or lacks what the template
//! reads), the route's `on_failure` goes into the session instead, as when the parent
//! fails. An `on_failure` that fails is only dead-lettered.

use crate::prepare::Ready;
use crate::stage::{Captured, Processed};
use router_core::domain::{Answer, DeliveryJob};
use router_core::ports::{OutgoingMessage, Queue};
use router_core::retry::Disposition;
use router_core::wire::queue::{MAX_JOB_BYTES, job_message};
use std::time::Duration;

/// How soon a parent whose reply could not be queued comes back.
const REQUEUE_DELAY: Duration = Duration::from_secs(5);

/// The reply job a processed message calls for, if any.
pub fn follow_up(
    ready: &Ready<'_>,
    disposition: &Disposition,
    response: Option<Captured>,
) -> Option<OutgoingMessage> {
    let reply = ready.route.reply.as_ref()?;
    let now = time::OffsetDateTime::now_utc();
    let failure = |d: &router_core::wire::dead_letter::DeadLetter, prefix: &str| Answer::Failure {
        failure: d.failure.as_str().to_owned(),
        attempts: d.attempts,
        last_status: d.last_status,
        last_error: format!("{prefix}{}", d.last_error),
    };
    if ready.job.reply.is_some() {
        // A reply never replies; but one that fails for good still answers the
        // conversation: the route's `on_failure` goes instead, once.
        return match disposition {
            Disposition::DeadLetter(d) if reply.on_failure => ready
                .job
                .failed_reply(
                    failure(d, "the answer could not go into the session: "),
                    now,
                )
                .map(|job| job_message(&job)),
            _ => None,
        };
    }
    match disposition {
        Disposition::Delivered { status } => {
            let captured = response.unwrap_or(Captured {
                status: *status,
                body: Vec::new(),
                truncated: false,
            });
            Some(fitting(&ready.job, captured, now))
        }
        Disposition::DeadLetter(d) if reply.on_failure => {
            Some(job_message(&ready.job.reply_job(failure(d, ""), now)))
        }
        _ => None,
    }
}

/// The reply job for an answer, as much of the answer as fits a queue message: the JSON and
/// the text, or without the text, or the status alone.
fn fitting(parent: &DeliveryJob, c: Captured, now: time::OffsetDateTime) -> OutgoingMessage {
    // An answer nesting deeper than an event's data may is not kept as JSON (its reply
    // job must parse again): a template reading it fails, and `on_failure` goes instead.
    let max = router_core::wire::queue::MAX_DATA_DEPTH;
    let json = if c.truncated {
        None
    } else {
        serde_json::from_slice::<serde_json::Value>(&c.body)
            .ok()
            .filter(|v| router_core::wire::queue::json_depth(v, max) <= max)
    };
    let text = Some(String::from_utf8_lossy(&c.body).into_owned());
    let tries = [(json.clone(), text), (json, None), (None, None)];
    let mut last = None;
    for (json, text) in tries {
        let answer = Answer::Response {
            status: c.status,
            json,
            text,
        };
        let m = job_message(&parent.reply_job(answer, now));
        if router_core::ports::limits::message_size(&m) <= MAX_JOB_BYTES {
            return m;
        }
        last = Some(m);
    }
    last.expect("three tries")
}

/// Queues the reply jobs of a batch (each once: it is taken out of its message); a parent
/// whose reply the queue did not take is not settled: it is retried shortly instead.
pub async fn queue_follow_ups(queue: &dyn Queue, processed: &mut [Processed]) {
    let (who, messages): (Vec<usize>, Vec<OutgoingMessage>) = processed
        .iter_mut()
        .enumerate()
        .filter_map(|(i, p)| p.follow_up.take().map(|m| (i, m)))
        .unzip();
    if messages.is_empty() {
        return;
    }
    for (i, result) in who.into_iter().zip(queue.send(&messages).await) {
        let p = &mut processed[i];
        match result {
            Ok(()) => tracing::info!(
                delivery_id = %p.delivery_id,
                route = %p.route,
                "reply queued for the Cognigy session"
            ),
            Err(e) => {
                tracing::error!(
                    delivery_id = %p.delivery_id,
                    route = %p.route,
                    error = %e,
                    "could not queue the reply; the delivery stays on the queue and is tried again"
                );
                p.disposition = Disposition::Retry {
                    delay: REQUEUE_DELAY,
                    reason: router_core::retry::RetryReason::ReplyNotQueued,
                    status: None,
                    error: format!("the reply could not be queued: {e}"),
                };
            }
        }
    }
}
