//! Ports: the small traits the handlers are written against. Adapters live in
//! [`crate::aws`] (SQS, Secrets Manager) and [`crate::embedded`] (SQLite queue, secrets file).

use crate::secrets::Secret;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

/// SQS's limit for one batch call; the embedded queue enforces it too.
pub const MAX_BATCH: usize = 10;

/// One message to send. `id` is its id within the batch (for reporting failures).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub id: String,
    pub body: String,
    pub attributes: BTreeMap<String, String>,
    pub delay: Duration,
}

/// A message as received: its receipt handle is valid for this receive only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub attributes: BTreeMap<String, String>,
    /// 1 on the first receive.
    pub receive_count: u32,
    /// Unix milliseconds when the message was first sent.
    pub sent_at_ms: i64,
}

/// One failed entry of a batch call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFailure {
    pub id: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepth {
    pub visible: u64,
    /// Received and not yet deleted, or delayed: not visible now.
    pub in_flight: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The queue could not be reached or refused the call as a whole.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    /// The receipt handle is stale (the message was received again, deleted, or its
    /// visibility expired). Log it; it is not a failure of the handler.
    #[error("receipt handle no longer valid: {0}")]
    ReceiptInvalid(String),
    #[error("bad queue request: {0}")]
    BadRequest(String),
}

/// A queue with SQS semantics: at-least-once delivery, visibility timeout, receive count,
/// and (configured on the queue) redrive to a dead-letter queue at a max receive count.
#[async_trait]
pub trait Queue: Send + Sync + Debug {
    /// Sends up to [`MAX_BATCH`] messages. `Ok` lists the entries that failed;
    /// `Err` means none can be assumed sent.
    async fn send_batch(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<EntryFailure>, QueueError>;

    /// Receives up to `max` (at most [`MAX_BATCH`]) messages, waiting up to `wait` for
    /// the first. `visibility` overrides the queue's default visibility timeout.
    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Option<Duration>,
    ) -> Result<Vec<ReceivedMessage>, QueueError>;

    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError>;

    /// Makes an in-flight message visible again after `timeout` (counted from now).
    async fn change_visibility(
        &self,
        receipt_handle: &str,
        timeout: Duration,
    ) -> Result<(), QueueError>;

    async fn depth(&self) -> Result<QueueDepth, QueueError>;

    /// Deletes several messages; one result per handle, in order.
    async fn delete_batch(&self, receipt_handles: &[String]) -> Vec<Result<(), QueueError>> {
        let mut out = Vec::with_capacity(receipt_handles.len());
        for h in receipt_handles {
            out.push(self.delete(h).await);
        }
        out
    }

    /// Changes the visibility of several messages; one result per entry, in order.
    async fn change_visibility_batch(
        &self,
        entries: &[(String, Duration)],
    ) -> Vec<Result<(), QueueError>> {
        let mut out = Vec::with_capacity(entries.len());
        for (h, t) in entries {
            out.push(self.change_visibility(h, *t).await);
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("secret `{0}` does not exist")]
    NotFound(String),
    #[error("secret store unavailable: {0}")]
    Unavailable(String),
}

/// Where secret values live: Secrets Manager on AWS, a file locally.
#[async_trait]
pub trait SecretStore: Send + Sync + Debug {
    async fn get(&self, id: &str) -> Result<Secret, SecretError>;
    /// Replaces the secret's value as one complete write (creating it if needed).
    async fn put(&self, id: &str, value: &Secret) -> Result<(), SecretError>;
}
