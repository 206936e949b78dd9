//! `serve`'s delivery side: messages, not batches. Up to `concurrency` deliveries are in
//! flight at once and a new message is received as soon as one finishes, so a slow
//! delivery never holds back ready ones. A message in flight longer than half its
//! visibility timeout has it extended, so no second consumer ever gets it while it is
//! being delivered. What the handler leaves on the queue (retries, unwritten dead
//! letters) is not deleted; everything else is, by batches: finished messages go to one
//! deleting task, which deletes whatever has finished meanwhile in one call (up to a
//! batch), so the queue sees one delete per batch rather than one per message.
//!
//! A handler that panics deletes nothing: its message comes back after its visibility
//! timeout (and reaches the DLQ at the max receive count), as on Lambda.

use futures_util::FutureExt;
use router_core::ports::{MAX_BATCH, Queue, ReceivedMessage};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

/// How long one poll waits for messages.
const POLL_WAIT: Duration = Duration::from_secs(1);

/// What a runner hands messages to: the deliver handler, or a test's stand-in. It gets one
/// message, or the messages of one FIFO group received together (in order: the handler
/// keeps their order, as Lambda's FIFO batches do).
pub trait MessageHandler: Send + Sync + 'static {
    /// The ids of the messages that stay on the queue (retries, unwritten dead letters).
    fn handle(&self, msgs: Vec<ReceivedMessage>) -> impl Future<Output = Vec<String>> + Send;
}

impl MessageHandler for deliver::Deliverer {
    async fn handle(&self, msgs: Vec<ReceivedMessage>) -> Vec<String> {
        self.handle_batch(msgs).await
    }
}

/// A receive's messages as units of work: each message alone, except the messages of one
/// FIFO group, which stay together in their order.
fn units(messages: Vec<ReceivedMessage>) -> Vec<Vec<ReceivedMessage>> {
    let (singles, groups) = router_core::ports::by_group(messages);
    singles.into_iter().map(|m| vec![m]).chain(groups).collect()
}

/// Receives (at most `per_receive` messages a call, 1..=10) and delivers until `stop`, then
/// lets the deliveries in flight finish.
///
/// An SQS FIFO queue is polled one message a call: a receive of several hands out as many
/// of one group as it can, and the ones behind a failing head would be received again
/// with it, each time counting as a receive (and so as an attempt) they never had. The
/// embedded queue hands out only each group's head, so it may be polled by batches.
pub async fn run<H: MessageHandler>(
    queue: Arc<dyn Queue>,
    handler: Arc<H>,
    concurrency: usize,
    per_receive: usize,
    visibility: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let per_receive = per_receive.clamp(1, MAX_BATCH);
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut in_flight = JoinSet::new();
    let (finished, to_delete) = mpsc::unbounded_channel();
    let deleter = tokio::spawn(delete_finished(queue.clone(), to_delete));
    loop {
        // One free slot to start with, then as many more as are free now (up to a batch).
        let first = tokio::select! {
            p = slots.clone().acquire_owned() => p,
            _ = stop.wait_for(|s| *s) => break,
        };
        let Ok(first) = first else { break };
        let mut permits = vec![first];
        while permits.len() < per_receive {
            match slots.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        let received = tokio::select! {
            r = queue.receive(permits.len(), POLL_WAIT, Some(visibility)) => r,
            _ = stop.wait_for(|s| *s) => break,
        };
        let messages = match received {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "cannot poll the delivery queue; retrying in 1 s");
                drop(permits);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        for unit in units(messages) {
            let held: Vec<_> = permits.drain(..unit.len().min(permits.len())).collect();
            let (queue, handler, finished) = (queue.clone(), handler.clone(), finished.clone());
            in_flight.spawn(async move {
                deliver(queue, handler, unit, visibility, finished).await;
                drop(held);
            });
        }
        // Reap finished deliveries so the set does not grow.
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
    // Every delivery has handed over its finished messages: the deleter ends once it has
    // deleted them.
    drop(finished);
    let _ = deleter.await;
}

/// A finished message to delete: its id (for the log) and receipt handle.
type Finished = (String, String);

/// Deletes finished messages: whatever has finished by the time it looks, up to a batch a
/// call, each batch in a task of its own (a queue far away, such as SQS, takes many
/// batches at once). Ends when every sender is gone and all is deleted.
async fn delete_finished(queue: Arc<dyn Queue>, mut finished: mpsc::UnboundedReceiver<Finished>) {
    let mut deleting = JoinSet::new();
    while let Some(first) = finished.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match finished.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let queue = queue.clone();
        deleting.spawn(async move {
            let (message_ids, receipts): (Vec<String>, Vec<String>) = batch.into_iter().unzip();
            let results = queue.delete_batch(&receipts).await;
            for (result, message_id) in results.into_iter().zip(&message_ids) {
                if let Err(e) = result {
                    tracing::warn!(message_id, error = %e, "could not delete a finished message; it may be delivered again");
                }
            }
        });
        while deleting.try_join_next().is_some() {}
    }
    while deleting.join_next().await.is_some() {}
}

/// One unit (a message, or a group's messages): handled with a panic contained, while its
/// visibility is extended every half timeout; each message handed to the deleter unless
/// the handler left it on the queue.
async fn deliver<H: MessageHandler>(
    queue: Arc<dyn Queue>,
    handler: Arc<H>,
    unit: Vec<ReceivedMessage>,
    visibility: Duration,
    finished: mpsc::UnboundedSender<Finished>,
) {
    let receipts: Vec<(String, String)> = unit
        .iter()
        .map(|m| (m.message_id.clone(), m.receipt_handle.clone()))
        .collect();
    let work = AssertUnwindSafe(handler.handle(unit)).catch_unwind();
    tokio::pin!(work);
    let mut heartbeat = tokio::time::interval_at(
        tokio::time::Instant::now() + visibility / 2,
        (visibility / 2).max(Duration::from_millis(100)),
    );
    let leave = loop {
        tokio::select! {
            done = &mut work => break done,
            _ = heartbeat.tick() => {
                let entries: Vec<(String, Duration)> =
                    receipts.iter().map(|(_, r)| (r.clone(), visibility)).collect();
                for ((message_id, _), r) in receipts.iter().zip(queue.change_visibility_batch(&entries).await) {
                    if let Err(e) = r {
                        tracing::warn!(message_id, error = %e, "could not extend a delivery's visibility; another consumer may get it");
                    }
                }
            }
        }
    };
    let left = match leave {
        Ok(left) => left,
        Err(panic) => {
            let e = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            tracing::error!(
                error = %e,
                messages = receipts.len(),
                "a delivery crashed; its messages return after their visibility timeout"
            );
            return;
        }
    };
    for done in receipts.into_iter().filter(|(id, _)| !left.contains(id)) {
        // The deleter outlives every delivery (`run` waits for them first).
        let _ = finished.send(done);
    }
}

#[cfg(test)]
mod tests;
