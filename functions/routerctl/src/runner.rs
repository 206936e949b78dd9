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
    let mut out: Vec<Vec<ReceivedMessage>> = Vec::new();
    for m in messages {
        let same = m
            .group
            .as_ref()
            .and_then(|g| out.iter_mut().find(|u| u[0].group.as_ref() == Some(g)));
        match same {
            Some(unit) => unit.push(m),
            None => out.push(vec![m]),
        }
    }
    out
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
            let receipts: Vec<String> = batch.iter().map(|(_, r)| r.clone()).collect();
            let results = queue.delete_batch(&receipts).await;
            for (result, (message_id, _)) in results.into_iter().zip(&batch) {
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
mod tests {
    use super::*;
    use router_core::backends::embedded_queues;
    use router_core::ports::OutgoingMessage;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn message(body: &str) -> OutgoingMessage {
        OutgoingMessage {
            body: body.into(),
            attributes: Default::default(),
            delay: Duration::ZERO,
            ..Default::default()
        }
    }

    struct Panics(AtomicUsize);

    impl MessageHandler for Panics {
        async fn handle(&self, _msgs: Vec<ReceivedMessage>) -> Vec<String> {
            self.0.fetch_add(1, Ordering::SeqCst);
            panic!("a bug in the handler");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_delivery_loses_no_message() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, dead_letters) = embedded_queues(dir.path(), Duration::from_secs(1), 2).unwrap();
        queue.send_batch(&[message("{}")]).await.unwrap();
        let handler = Arc::new(Panics(AtomicUsize::new(0)));
        let (stop_tx, stop_rx) = watch::channel(false);
        let runner = tokio::spawn(run(
            queue.clone(),
            handler.clone(),
            4,
            MAX_BATCH,
            Duration::from_secs(1),
            stop_rx,
        ));
        // Received twice (visibility 1 s), then redriven to the DLQ at the max receive count.
        let mut dead = Vec::new();
        for _ in 0..50 {
            dead = dead_letters
                .receive(1, Duration::from_millis(100), None)
                .await
                .unwrap();
            if !dead.is_empty() {
                break;
            }
        }
        stop_tx.send(true).unwrap();
        runner.await.unwrap();
        assert_eq!(
            dead.len(),
            1,
            "the message reached the DLQ instead of vanishing"
        );
        assert_eq!(
            handler.0.load(Ordering::SeqCst),
            2,
            "the runner survived the first panic"
        );
    }

    /// Takes `hold` per message, counting how many run at once.
    struct Slow {
        hold: Duration,
        now: AtomicUsize,
        peak: AtomicUsize,
        seen: AtomicUsize,
    }

    impl MessageHandler for Slow {
        async fn handle(&self, _msgs: Vec<ReceivedMessage>) -> Vec<String> {
            let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(n, Ordering::SeqCst);
            self.seen.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.hold).await;
            self.now.fetch_sub(1, Ordering::SeqCst);
            Vec::new()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_delivery_outlives_its_visibility_and_is_handled_once() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, _dlq) = embedded_queues(dir.path(), Duration::from_secs(1), 10).unwrap();
        queue.send_batch(&[message("{}")]).await.unwrap();
        let handler = Arc::new(Slow {
            hold: Duration::from_millis(3500),
            now: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            seen: AtomicUsize::new(0),
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let runner = tokio::spawn(run(
            queue.clone(),
            handler.clone(),
            8,
            MAX_BATCH,
            Duration::from_secs(1),
            stop_rx,
        ));
        tokio::time::sleep(Duration::from_millis(4500)).await;
        stop_tx.send(true).unwrap();
        runner.await.unwrap();
        assert_eq!(
            handler.seen.load(Ordering::SeqCst),
            1,
            "never handed out twice"
        );
        assert_eq!(
            queue.depth().await.unwrap().visible + queue.depth().await.unwrap().in_flight,
            0
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn up_to_concurrency_messages_are_in_flight_and_a_slow_one_holds_back_none() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, _dlq) = embedded_queues(dir.path(), Duration::from_secs(30), 10).unwrap();
        for chunk in 0..3 {
            let batch: Vec<_> = (0..10)
                .map(|i| message(&format!("{}", chunk * 10 + i)))
                .collect();
            queue.send_batch(&batch).await.unwrap();
        }
        let handler = Arc::new(Slow {
            hold: Duration::from_millis(300),
            now: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            seen: AtomicUsize::new(0),
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let started = std::time::Instant::now();
        let runner = tokio::spawn(run(
            queue.clone(),
            handler.clone(),
            16,
            MAX_BATCH,
            Duration::from_secs(30),
            stop_rx,
        ));
        while handler.seen.load(Ordering::SeqCst) < 30
            && started.elapsed() < Duration::from_secs(10)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop_tx.send(true).unwrap();
        runner.await.unwrap();
        assert_eq!(handler.seen.load(Ordering::SeqCst), 30);
        assert_eq!(
            handler.peak.load(Ordering::SeqCst),
            16,
            "never more than the concurrency"
        );
        // 30 messages of 300 ms, 16 at a time: two rounds, not ten sequential batches.
        assert!(
            started.elapsed() < Duration::from_millis(2000),
            "{:?}",
            started.elapsed()
        );
    }

    /// A queue that records how many messages each receive asked for.
    #[derive(Debug)]
    struct CountsReceives {
        inner: Arc<dyn Queue>,
        asked: std::sync::Mutex<Vec<usize>>,
        /// The size of each delete call.
        deleted: std::sync::Mutex<Vec<usize>>,
    }

    #[async_trait::async_trait]
    impl Queue for CountsReceives {
        async fn send_batch(
            &self,
            messages: &[OutgoingMessage],
        ) -> Result<Vec<router_core::ports::EntryFailure>, router_core::ports::QueueError> {
            self.inner.send_batch(messages).await
        }
        async fn receive(
            &self,
            max: usize,
            wait: Duration,
            visibility: Option<Duration>,
        ) -> router_core::ports::Received {
            self.asked.lock().unwrap().push(max);
            self.inner.receive(max, wait, visibility).await
        }
        async fn depth(
            &self,
        ) -> Result<router_core::ports::QueueDepth, router_core::ports::QueueError> {
            self.inner.depth().await
        }
        async fn delete_batch(
            &self,
            handles: &[String],
        ) -> Vec<Result<(), router_core::ports::QueueError>> {
            self.deleted.lock().unwrap().push(handles.len());
            self.inner.delete_batch(handles).await
        }
        async fn change_visibility_batch(
            &self,
            entries: &[(String, Duration)],
        ) -> Vec<Result<(), router_core::ports::QueueError>> {
            self.inner.change_visibility_batch(entries).await
        }
    }

    struct Counts(AtomicUsize);

    impl MessageHandler for Counts {
        async fn handle(&self, msgs: Vec<ReceivedMessage>) -> Vec<String> {
            self.0.fetch_add(msgs.len(), Ordering::SeqCst);
            Vec::new()
        }
    }

    /// Runs a runner (16 in flight) with a counting handler until it has handled `want`
    /// messages (or 10 s passed), then stops it and waits for it; returns the count.
    async fn run_until_handled(
        queue: Arc<CountsReceives>,
        per_receive: usize,
        want: usize,
    ) -> usize {
        let handler = Arc::new(Counts(AtomicUsize::new(0)));
        let (stop_tx, stop_rx) = watch::channel(false);
        let runner = tokio::spawn(run(
            queue,
            handler.clone(),
            16,
            per_receive,
            Duration::from_secs(30),
            stop_rx,
        ));
        let started = std::time::Instant::now();
        while handler.0.load(Ordering::SeqCst) < want && started.elapsed() < Duration::from_secs(10)
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        stop_tx.send(true).unwrap();
        runner.await.unwrap();
        handler.0.load(Ordering::SeqCst)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_runner_polls_at_most_per_receive_messages_a_call() {
        for (per_receive, most) in [(1, 1), (MAX_BATCH, MAX_BATCH), (0, 1), (99, MAX_BATCH)] {
            let dir = tempfile::tempdir().unwrap();
            let (inner, _dlq) = embedded_queues(dir.path(), Duration::from_secs(30), 10).unwrap();
            let batch: Vec<_> = (0..10).map(|i| message(&i.to_string())).collect();
            inner.send_batch(&batch).await.unwrap();
            let queue = Arc::new(CountsReceives {
                inner,
                asked: Default::default(),
                deleted: Default::default(),
            });
            assert_eq!(run_until_handled(queue.clone(), per_receive, 10).await, 10);
            let asked = queue.asked.lock().unwrap().clone();
            assert_eq!(
                asked.iter().max(),
                Some(&most),
                "per_receive {per_receive}: {asked:?}"
            );
        }
    }

    /// Finished messages are deleted by batches, and all of them before `run` returns.
    #[tokio::test]
    async fn finished_messages_are_deleted_by_batches_before_the_runner_ends() {
        let dir = tempfile::tempdir().unwrap();
        let (inner, _dlq) = embedded_queues(dir.path(), Duration::from_secs(30), 10).unwrap();
        for chunk in 0..4 {
            let batch: Vec<_> = (0..10).map(|i| message(&format!("{chunk}-{i}"))).collect();
            inner.send_batch(&batch).await.unwrap();
        }
        let queue = Arc::new(CountsReceives {
            inner: inner.clone(),
            asked: Default::default(),
            deleted: Default::default(),
        });
        // Stops at once: the runner still deletes every finished message before it returns.
        assert_eq!(run_until_handled(queue.clone(), MAX_BATCH, 40).await, 40);
        let depth = inner.depth().await.unwrap();
        assert_eq!((depth.visible, depth.in_flight), (0, 0), "all deleted");
        let deleted = queue.deleted.lock().unwrap().clone();
        assert_eq!(deleted.iter().sum::<usize>(), 40, "{deleted:?}");
        assert!(
            deleted.iter().all(|n| *n <= MAX_BATCH),
            "at most a batch a call: {deleted:?}"
        );
        assert!(
            deleted.len() <= 8,
            "deleted by batches, not one call per message: {deleted:?}"
        );
    }
}
