//! `serve`'s delivery side: messages, not batches. Up to `concurrency` deliveries are in
//! flight at once and a new message is received as soon as one finishes, so a slow
//! delivery never holds back ready ones. A message in flight longer than half its
//! visibility timeout has it extended, so no second consumer ever gets it while it is
//! being delivered. What the handler leaves on the queue (retries, unwritten dead
//! letters) is not deleted; everything else is.
//!
//! A handler that panics deletes nothing: its message comes back after its visibility
//! timeout (and reaches the DLQ at the max receive count), as on Lambda.

use router_core::ports::{MAX_BATCH, Queue, ReceivedMessage};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
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
            let (queue, handler) = (queue.clone(), handler.clone());
            in_flight.spawn(async move {
                deliver(queue, handler, unit, visibility).await;
                drop(held);
            });
        }
        // Reap finished deliveries so the set does not grow.
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
}

/// One unit (a message, or a group's messages): handled in its own task, so a panic is
/// contained, while its visibility is extended every half timeout; each message deleted
/// unless the handler left it on the queue.
async fn deliver<H: MessageHandler>(
    queue: Arc<dyn Queue>,
    handler: Arc<H>,
    unit: Vec<ReceivedMessage>,
    visibility: Duration,
) {
    let receipts: Vec<(String, String)> = unit
        .iter()
        .map(|m| (m.message_id.clone(), m.receipt_handle.clone()))
        .collect();
    let mut work = tokio::spawn(async move { handler.handle(unit).await });
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
        Err(e) => {
            tracing::error!(
                error = %e,
                messages = receipts.len(),
                "a delivery crashed; its messages return after their visibility timeout"
            );
            return;
        }
    };
    let done: Vec<String> = receipts
        .iter()
        .filter(|(id, _)| !left.contains(id))
        .map(|(_, r)| r.clone())
        .collect();
    if done.is_empty() {
        return;
    }
    for (result, receipt) in queue.delete_batch(&done).await.into_iter().zip(&done) {
        if let Err(e) = result {
            tracing::warn!(error = %e, receipt = receipt.as_str(), "could not delete a finished message; it may be delivered again");
        }
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
            });
            let handler = Arc::new(Counts(AtomicUsize::new(0)));
            let (stop_tx, stop_rx) = watch::channel(false);
            let runner = tokio::spawn(run(
                queue.clone(),
                handler.clone(),
                16,
                per_receive,
                Duration::from_secs(30),
                stop_rx,
            ));
            let started = std::time::Instant::now();
            while handler.0.load(Ordering::SeqCst) < 10
                && started.elapsed() < Duration::from_secs(10)
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            stop_tx.send(true).unwrap();
            runner.await.unwrap();
            assert_eq!(handler.0.load(Ordering::SeqCst), 10);
            let asked = queue.asked.lock().unwrap().clone();
            assert_eq!(
                asked.iter().max(),
                Some(&most),
                "per_receive {per_receive}: {asked:?}"
            );
        }
    }
}
