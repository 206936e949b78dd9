//! A durable in-process queue with SQS semantics, stored in SQLite (WAL) by
//! [`EmbeddedStore`](super::EmbeddedStore).
//!
//! Several named queues share one database file; a queue may redrive to another at a
//! max receive count, as an SQS redrive policy does. Several processes may open the same
//! file (`routerctl dlq` beside `routerctl serve`).

pub use super::ops::Redrive;

use super::ops::{self, ChangeVisibility, Delete, Insert, Receive, ReceiveCount};
use super::store::EmbeddedStore;
use crate::ports::{
    EntryFailure, OutgoingMessage, Queue, QueueDepth, QueueError, Received, ReceivedMessage,
    Released, limits,
};
use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// Longest pause between polls while a receive waits (other processes may send).
const POLL: Duration = Duration::from_millis(100);

/// A queue's settings, as SQS keeps them on the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    pub visibility_timeout: Duration,
    /// Move a message to this queue when it is received after `max_receive_count` receives.
    pub redrive: Option<Redrive>,
    /// Delete messages this long after they were sent (dead letters: after they reached the
    /// queue); `None` keeps them until they are deleted.
    pub retention: Option<Duration>,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            visibility_timeout: Duration::from_secs(30),
            redrive: None,
            retention: None,
        }
    }
}

/// One named queue of an [`EmbeddedStore`].
#[derive(Debug, Clone)]
pub struct EmbeddedQueue {
    store: Arc<EmbeddedStore>,
    /// Woken by the writer when a commit may have made a message of this queue receivable.
    waker: Arc<Notify>,
    /// Receive operations this handle (and its clones) ran on the store.
    polls: Arc<AtomicU64>,
    name: String,
    settings: QueueSettings,
}

impl EmbeddedQueue {
    /// The queue `name` in `store`. A queue with a retention has its messages deleted that
    /// long after they were sent to it (dead letters: after they reached it) by the store's
    /// writer.
    pub fn open(store: &Arc<EmbeddedStore>, name: &str, settings: QueueSettings) -> Self {
        Self {
            waker: store.register(name, settings.retention),
            store: Arc::clone(store),
            polls: Arc::default(),
            name: name.to_owned(),
            settings,
        }
    }

    /// Visibility changes, the receive they end counted or not.
    async fn change_visibility(
        &self,
        entries: Vec<(String, Duration)>,
        receive: ReceiveCount,
    ) -> Vec<Result<(), QueueError>> {
        let n = entries.len();
        let op = ChangeVisibility {
            queue: self.name.clone(),
            entries,
            receive,
        };
        self.store.run(op).await.unwrap_or_else(|e| vec![Err(e); n])
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many receive operations this handle (and its clones) ran on the store: a
    /// waiting receive polls again when its queue may have a message, or every 100 ms.
    pub fn polls(&self) -> u64 {
        self.polls.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl Queue for EmbeddedQueue {
    async fn send_batch(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<EntryFailure>, QueueError> {
        // Exactly what SQS refuses (size, characters, attributes), so local runs meet it.
        limits::check_send(messages)?;
        let rows = messages
            .iter()
            .map(|m| ops::Row {
                message_id: ops::message_id(),
                body: m.body.clone(),
                attributes: serde_json::to_string(&m.attributes).unwrap_or_else(|_| "{}".into()),
                delay: m.delay,
                group: m.group.clone(),
                dedup_id: m.dedup_id.clone(),
                group_cap: m.group_cap,
            })
            .collect();
        self.store
            .run(Insert {
                queue: self.name.clone(),
                rows,
            })
            .await?
            .map_err(|full| QueueError::GroupFull {
                group: full.group,
                queued: full.queued,
                cap: full.cap,
                head_due_in: full.head_due_in,
            })?;
        Ok(Vec::new())
    }

    async fn receive(&self, max: usize, wait: Duration, visibility: Option<Duration>) -> Received {
        limits::check_count(max)?;
        let visibility = visibility.unwrap_or(self.settings.visibility_timeout);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.waker.notified();
            self.polls.fetch_add(1, Ordering::Relaxed);
            let got = self
                .store
                .run(Receive {
                    queue: self.name.clone(),
                    max,
                    visibility,
                    redrive: self.settings.redrive.clone(),
                })
                .await?;
            let now = tokio::time::Instant::now();
            if !got.is_empty() || now >= deadline {
                return Ok(got);
            }
            let pause = POLL.min(deadline - now);
            let _ = tokio::time::timeout(pause, notified).await;
        }
    }

    async fn delete_batch(&self, receipt_handles: &[String]) -> Vec<Result<(), QueueError>> {
        let n = receipt_handles.len();
        let op = Delete {
            queue: self.name.clone(),
            handles: receipt_handles.to_vec(),
        };
        self.store.run(op).await.unwrap_or_else(|e| vec![Err(e); n])
    }

    async fn change_visibility_batch(
        &self,
        entries: &[(String, Duration)],
    ) -> Vec<Result<(), QueueError>> {
        self.change_visibility(entries.to_vec(), ReceiveCount::Counted)
            .await
    }

    /// In place, with the receive uncounted: the message keeps its place (in its group
    /// too) and its next receive has the count this one had before.
    async fn release_batch(
        &self,
        entries: &[(&ReceivedMessage, Duration)],
    ) -> Vec<Result<Released, QueueError>> {
        let changes = entries
            .iter()
            .map(|(m, delay)| (m.receipt_handle.clone(), *delay))
            .collect();
        self.change_visibility(changes, ReceiveCount::Uncounted)
            .await
            .into_iter()
            .map(|r| r.map(|()| Released::InPlace))
            .collect()
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        self.store.depth(&self.name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> OutgoingMessage {
        OutgoingMessage {
            body: "{}".into(),
            ..Default::default()
        }
    }

    /// A receive waiting on one queue is not made to poll by sends to another (the ordered
    /// routes' queue beside the standard one), and a send to its own queue ends the wait.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_receive_is_woken_by_its_own_queue_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let a = EmbeddedQueue::open(&store, "a", QueueSettings::default());
        let b = EmbeddedQueue::open(&store, "b", QueueSettings::default());
        let waiting = tokio::spawn({
            let a = a.clone();
            async move { a.receive(1, Duration::from_millis(500), None).await }
        });
        for _ in 0..40 {
            b.send_batch(&[message()]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(waiting.await.unwrap().unwrap().is_empty());
        // 500 ms of waiting polls about every 100 ms; 40 sends to `b` would have made 40.
        assert!(a.polls() <= 10, "{} polls", a.polls());

        let before = a.polls();
        let waiting = tokio::spawn({
            let a = a.clone();
            async move { a.receive(1, Duration::from_secs(20), None).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        a.send_batch(&[message()]).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the send ended the wait")
            .unwrap()
            .unwrap();
        assert_eq!(got.len(), 1);
        assert!(a.polls() - before <= 3, "{} polls", a.polls() - before);
    }
}
