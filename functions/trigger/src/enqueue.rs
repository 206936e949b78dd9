//! One queue message per delivery job, sent in batches of 10. Entries that fail are sent
//! once more; if any still fails the caller gets 503 and must retry the whole trigger
//! (which may enqueue some deliveries twice: receivers drop those by `webhook-id`).

use router_core::domain::DeliveryJob;
use router_core::ports::{MAX_BATCH, OutgoingMessage, Queue};
use std::collections::BTreeMap;
use std::time::Duration;

/// SQS's limit for one message body.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{failed} of {total} messages were not accepted: {reason}")]
pub struct EnqueueError {
    pub failed: usize,
    pub total: usize,
    pub reason: String,
}

/// The queue message for one job: its JSON body and the `route` and `delivery_id` attributes.
pub fn message(index: usize, job: &DeliveryJob) -> OutgoingMessage {
    let mut attributes = BTreeMap::new();
    attributes.insert("route".to_owned(), job.route.clone());
    attributes.insert("delivery_id".to_owned(), job.delivery_id.clone());
    OutgoingMessage {
        id: index.to_string(),
        body: job.to_json(),
        attributes,
        delay: Duration::ZERO,
    }
}

/// Sends every message, retrying failed entries once. `Ok` only when all were accepted.
pub async fn send_all(
    queue: &dyn Queue,
    messages: Vec<OutgoingMessage>,
) -> Result<(), EnqueueError> {
    let total = messages.len();
    let mut failed = 0;
    let mut last_reason = String::new();
    for chunk in messages.chunks(MAX_BATCH) {
        let mut pending: Vec<OutgoingMessage> = chunk.to_vec();
        for _try in 0..2 {
            match queue.send_batch(&pending).await {
                Ok(failures) if failures.is_empty() => {
                    pending.clear();
                    break;
                }
                Ok(failures) => {
                    last_reason = failures[0].reason.clone();
                    pending.retain(|m| failures.iter().any(|f| f.id == m.id));
                }
                Err(e) => last_reason = e.to_string(),
            }
        }
        failed += pending.len();
    }
    if failed == 0 {
        Ok(())
    } else {
        Err(EnqueueError {
            failed,
            total,
            reason: last_reason,
        })
    }
}
