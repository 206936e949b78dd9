//! Ports: the small traits the handlers are written against. Adapters live in
//! [`crate::aws`] (SQS, Secrets Manager) and [`crate::embedded`] (SQLite queue, secrets file).
//! [`limits`] holds what SQS refuses, checked by both queue adapters.

pub mod limits;

pub use limits::{MAX_BATCH, MAX_MESSAGE_BYTES};

use crate::secrets::Secret;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutgoingMessage {
    pub body: String,
    pub attributes: BTreeMap<String, String>,
    pub delay: Duration,
    /// FIFO only: its message group (no message of a group is received while an earlier
    /// one is in flight or waiting).
    pub group: Option<String>,
    /// FIFO only: a message sent again with the same id within 5 minutes is dropped.
    pub dedup_id: Option<String>,
    /// Grouped messages, embedded queue only: the most messages its group may hold with
    /// it; a send that would go past it takes none of its messages
    /// ([`QueueError::GroupFull`]). SQS cannot count a group's messages and ignores it.
    pub group_cap: Option<u32>,
}

/// A message as received: its receipt handle is valid for this receive only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub attributes: BTreeMap<String, String>,
    /// 1 on the first receive.
    pub receive_count: u32,
    /// Unix milliseconds when the message was first sent.
    pub sent_at_ms: i64,
    /// Its message group, on a FIFO queue.
    pub group: Option<String>,
}

/// A batch split as Lambda's FIFO rule wants it: the messages without a group (each its
/// own unit of work), and each group's messages together, in their order.
pub fn by_group(
    messages: Vec<ReceivedMessage>,
) -> (Vec<ReceivedMessage>, Vec<Vec<ReceivedMessage>>) {
    let mut singles = Vec::new();
    let mut groups: Vec<Vec<ReceivedMessage>> = Vec::new();
    for m in messages {
        if m.group.is_none() {
            singles.push(m);
            continue;
        }
        match groups.iter_mut().find(|g| g[0].group == m.group) {
            Some(g) => g.push(m),
            None => groups.push(vec![m]),
        }
    }
    (singles, groups)
}

/// What a receive returns.
pub type Received = Result<Vec<ReceivedMessage>, QueueError>;

/// One failed entry of a batch call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFailure {
    /// The entry's position in the batch.
    pub index: usize,
    pub reason: String,
    /// The queue will never take this entry as it is (SQS's `SenderFault`).
    pub permanent: bool,
}

impl EntryFailure {
    /// The failure as a queue error.
    pub fn into_error(self) -> QueueError {
        if self.permanent {
            QueueError::BadRequest(self.reason)
        } else {
            QueueError::Unavailable(self.reason)
        }
    }
}

/// How [`Queue::release_batch`] put a message back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// The same message, this receive uncounted: it stays (the host must not delete it).
    InPlace,
    /// The same message, but this receive still counts (SQS FIFO cannot uncount one): it
    /// stays, and its next receive's count is one higher than its attempts.
    Counted,
    /// A copy carrying the attempt count was sent: the host deletes the original.
    Copied,
}

impl Released {
    /// Whether the received message itself stays on the queue.
    pub fn stays(self) -> bool {
        !matches!(self, Released::Copied)
    }
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
    /// The queue will never accept the request as it is (a limit of [`limits`]): retrying
    /// it cannot help.
    #[error("the queue refuses it: {0}")]
    BadRequest(String),
    /// A message's group holds its [`OutgoingMessage::group_cap`] already: none of the
    /// send's messages were taken. It may be taken once the group's head is delivered.
    #[error("message group {group} holds {queued} messages, its cap is {cap}")]
    GroupFull {
        group: String,
        queued: u64,
        cap: u32,
        /// Until the group's head is next received (zero: it is visible now).
        head_due_in: Duration,
    },
}

impl QueueError {
    /// Whether retrying the same request can never help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::BadRequest(_))
    }
}

/// A queue with SQS semantics: at-least-once delivery, visibility timeout, receive count,
/// and (configured on the queue) redrive to a dead-letter queue at a max receive count.
#[async_trait]
pub trait Queue: Send + Sync + Debug {
    /// Sends one call's worth of messages (1 to [`MAX_BATCH`], checked with
    /// [`limits::check_send`]). `Ok` lists the entries that failed; `Err` means none can be
    /// assumed sent. Callers with any number of messages use [`Queue::send`].
    async fn send_batch(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<EntryFailure>, QueueError>;

    /// Sends any number of messages in as few calls as SQS allows ([`limits::chunks`]);
    /// one result per message, in order.
    async fn send(&self, messages: &[OutgoingMessage]) -> Vec<Result<(), QueueError>> {
        let mut results: Vec<Result<(), QueueError>> = vec![Ok(()); messages.len()];
        for range in limits::chunks(messages) {
            match self.send_batch(&messages[range.clone()]).await {
                Ok(failures) => {
                    for f in failures {
                        if let Some(slot) = results.get_mut(range.start + f.index) {
                            *slot = Err(f.into_error());
                        }
                    }
                }
                Err(e) => {
                    for slot in &mut results[range] {
                        *slot = Err(e.clone());
                    }
                }
            }
        }
        results
    }

    /// Receives up to `max` (at most [`MAX_BATCH`]) messages, waiting up to `wait` for
    /// the first. `visibility` overrides the queue's default visibility timeout.
    async fn receive(&self, max: usize, wait: Duration, visibility: Option<Duration>) -> Received;

    async fn depth(&self) -> Result<QueueDepth, QueueError>;

    /// Deletes messages; one result per handle, in order. Deleting an already deleted
    /// message is not an error (as in SQS).
    async fn delete_batch(&self, receipt_handles: &[String]) -> Vec<Result<(), QueueError>>;

    /// Makes in-flight messages visible again after their timeout (counted from now); one
    /// result per entry, in order. A stale handle is [`QueueError::ReceiptInvalid`].
    async fn change_visibility_batch(
        &self,
        entries: &[(String, Duration)],
    ) -> Vec<Result<(), QueueError>>;

    /// Puts received messages back, each visible again after its delay, *without* this
    /// receive counting as an attempt: the delivery keeps its attempt number (a refusal by
    /// an open circuit, a deferral before a deadline). One result per entry, in order,
    /// saying how it was done. This default can only change the visibility, so the receive
    /// still counts ([`Released::Counted`], what SQS FIFO can do); the embedded queue
    /// uncounts it in place, SQS standard queues send a copy that carries the count.
    async fn release_batch(
        &self,
        entries: &[(&ReceivedMessage, Duration)],
    ) -> Vec<Result<Released, QueueError>> {
        let changes: Vec<(String, Duration)> = entries
            .iter()
            .map(|(m, delay)| (m.receipt_handle.clone(), *delay))
            .collect();
        self.change_visibility_batch(&changes)
            .await
            .into_iter()
            .map(|r| r.map(|()| Released::Counted))
            .collect()
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        first(self.delete_batch(&[receipt_handle.to_owned()]).await)
    }

    async fn change_visibility(
        &self,
        receipt_handle: &str,
        timeout: Duration,
    ) -> Result<(), QueueError> {
        first(
            self.change_visibility_batch(&[(receipt_handle.to_owned(), timeout)])
                .await,
        )
    }
}

/// The one result of a batch call of one entry.
fn first(results: Vec<Result<(), QueueError>>) -> Result<(), QueueError> {
    results.into_iter().next().unwrap_or_else(|| {
        Err(QueueError::Unavailable(
            "no result for the entry".to_owned(),
        ))
    })
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

    /// Replaces the secret's value with what `decide` makes of the current one (`None`
    /// from `decide`: leave it as it is); `Ok(true)` when it wrote. A store that can lock
    /// (the secrets file) reads and writes under one lock, so concurrent updaters never
    /// undo each other; this default reads, then writes (Secrets Manager has no
    /// compare-and-swap: on AWS one writer runs at a time, see docs/DECISIONS.md).
    async fn update(&self, id: &str, decide: &SecretUpdate<'_>) -> Result<bool, SecretError> {
        let current = match self.get(id).await {
            Ok(s) => Some(s),
            Err(SecretError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        match decide(current.as_ref()) {
            Some(value) => self.put(id, &value).await.map(|()| true),
            None => Ok(false),
        }
    }
}

/// What [`SecretStore::update`] does with a secret's current value (absent: `None`).
pub type SecretUpdate<'a> = dyn Fn(Option<&Secret>) -> Option<Secret> + Send + Sync + 'a;

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str, group: Option<&str>) -> ReceivedMessage {
        ReceivedMessage {
            message_id: id.into(),
            group: group.map(str::to_owned),
            ..Default::default()
        }
    }

    #[test]
    fn a_batch_splits_into_singles_and_groups_each_in_its_order() {
        let (singles, groups) = by_group(vec![
            m("a1", Some("a")),
            m("s1", None),
            m("b1", Some("b")),
            m("a2", Some("a")),
            m("s2", None),
            m("a3", Some("a")),
        ]);
        let ids =
            |v: &[ReceivedMessage]| v.iter().map(|m| m.message_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&singles), ["s1", "s2"]);
        assert_eq!(
            groups.iter().map(|g| ids(g)).collect::<Vec<_>>(),
            [vec!["a1", "a2", "a3"], vec!["b1"]]
        );
    }
}
