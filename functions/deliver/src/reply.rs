//! Reply routes: after a route's delivery succeeds, its answer becomes a reply job (its
//! own queue message, its own delivery id derived from the parent's); when the delivery is
//! dead-lettered and the route has `on_failure`, that template goes instead. The reply job
//! is queued before the parent is settled: if it cannot be, the parent is not settled
//! either (it comes back and is tried again, with the same `webhook-id`). A reply job
//! never makes a reply of its own, so loops cannot happen.

use crate::attempt::Captured;
use crate::deliverer::Processed;
use crate::prepare::Ready;
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
    if ready.job.reply.is_some() {
        return None; // A reply never replies.
    }
    let now = time::OffsetDateTime::now_utc();
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
            let answer = Answer::Failure {
                failure: d.failure.as_str().to_owned(),
                attempts: d.attempts,
                last_status: d.last_status,
                last_error: d.last_error.clone(),
            };
            Some(job_message(&ready.job.reply_job(answer, now)))
        }
        _ => None,
    }
}

/// The reply job for an answer, as much of the answer as fits a queue message: the JSON and
/// the text, or without the text, or the status alone.
fn fitting(parent: &DeliveryJob, c: Captured, now: time::OffsetDateTime) -> OutgoingMessage {
    let json = if c.truncated {
        None
    } else {
        serde_json::from_slice(&c.body).ok()
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
                    reason: "reply_not_queued",
                    status: None,
                    error: format!("the reply could not be queued: {e}"),
                };
            }
        }
    }
}
