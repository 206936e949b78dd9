//! A durable in-process queue with SQS semantics, stored in SQLite (WAL) by
//! [`EmbeddedStore`](super::EmbeddedStore).
//!
//! Several named queues share one database file; a queue may redrive to another at a
//! max receive count, as an SQS redrive policy does. Several processes may open the same
//! file (`routerctl dlq` beside `routerctl serve`).

use super::store::{EmbeddedStore, Rows, SendRequest, ms};
use crate::ports::{
    EntryFailure, OutgoingMessage, Queue, QueueDepth, QueueError, Received, ReceivedMessage, limits,
};
use crate::time_fmt::now_ms;
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::sync::Arc;
use std::time::Duration;

/// Longest pause between polls while a receive waits (other processes may send).
const POLL: Duration = Duration::from_millis(100);

/// A queue's settings, as SQS keeps them on the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    pub visibility_timeout: Duration,
    /// Move a message to this queue when it is received after `max_receive_count` receives.
    pub redrive: Option<Redrive>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redrive {
    pub dead_letter_queue: String,
    pub max_receive_count: u32,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            visibility_timeout: Duration::from_secs(30),
            redrive: None,
        }
    }
}

/// One named queue of an [`EmbeddedStore`].
#[derive(Debug, Clone)]
pub struct EmbeddedQueue {
    pub(super) store: Arc<EmbeddedStore>,
    pub(super) name: String,
    pub(super) settings: QueueSettings,
}

impl EmbeddedQueue {
    pub fn name(&self) -> &str {
        &self.name
    }

    fn receive_now(
        &self,
        max: usize,
        visibility: Duration,
    ) -> impl FnOnce(&mut Connection) -> rusqlite::Result<Vec<ReceivedMessage>> + Send + 'static
    {
        let name = self.name.clone();
        let redrive = self.settings.redrive.clone();
        move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_ms();
            let mut out = Vec::new();
            {
                // A grouped message only when no earlier one of its group is left (in
                // flight, waiting, or visible): FIFO order per group.
                let mut select = tx.prepare_cached(
                    "SELECT seq, message_id, body, attributes, sent_at, receive_count, grp FROM messages AS m
                     WHERE queue = ?1 AND visible_at <= ?2
                       AND (grp IS NULL OR NOT EXISTS (
                            SELECT 1 FROM messages AS e WHERE e.queue = m.queue AND e.grp = m.grp AND e.seq < m.seq))
                     ORDER BY seq LIMIT ?3",
                )?;
                let mut take = tx.prepare_cached(
                    "UPDATE messages SET receive_count = receive_count + 1, visible_at = ?2, receipt = ?3 WHERE seq = ?1",
                )?;
                let mut move_dead = tx.prepare_cached(
                    "UPDATE messages SET queue = ?2, receive_count = 0, visible_at = ?3, receipt = NULL, grp = NULL WHERE seq = ?1",
                )?;
                loop {
                    type Found = (i64, String, String, String, i64, u32, Option<String>);
                    let rows: Vec<Found> = select
                        .query_map(params![name, now, (max - out.len()) as i64], |r| {
                            Ok((
                                r.get(0)?,
                                r.get(1)?,
                                r.get(2)?,
                                r.get(3)?,
                                r.get(4)?,
                                r.get(5)?,
                                r.get(6)?,
                            ))
                        })?
                        .collect::<rusqlite::Result<_>>()?;
                    if rows.is_empty() {
                        break;
                    }
                    for (seq, message_id, body, attrs, sent_at, count, group) in rows {
                        if let Some(r) = redrive.as_ref().filter(|r| count >= r.max_receive_count) {
                            move_dead.execute(params![seq, r.dead_letter_queue, now])?;
                            continue;
                        }
                        let receipt = format!("{}:{}", message_id, uuid::Uuid::new_v4().simple());
                        take.execute(params![seq, now + ms(visibility), receipt])?;
                        out.push(ReceivedMessage {
                            message_id,
                            receipt_handle: receipt,
                            body,
                            attributes: serde_json::from_str(&attrs).unwrap_or_default(),
                            receive_count: count + 1,
                            sent_at_ms: sent_at,
                            group,
                        });
                    }
                    if out.len() >= max {
                        break;
                    }
                }
            }
            tx.commit()?;
            Ok(out)
        }
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
        let rows: Rows = messages
            .iter()
            .map(|m| {
                let attrs = serde_json::to_string(&m.attributes).unwrap_or_else(|_| "{}".into());
                (
                    uuid::Uuid::new_v4().to_string(),
                    m.body.clone(),
                    attrs,
                    m.delay,
                    m.group.clone(),
                    m.dedup_id.clone(),
                )
            })
            .collect();
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = SendRequest {
            queue: self.name.clone(),
            rows,
            reply,
        };
        self.store
            .writer
            .send(request)
            .map_err(|_| QueueError::Unavailable("the queue writer stopped".to_owned()))?;
        answer
            .await
            .map_err(|_| QueueError::Unavailable("the queue writer stopped".to_owned()))??;
        Ok(Vec::new())
    }

    async fn receive(&self, max: usize, wait: Duration, visibility: Option<Duration>) -> Received {
        limits::check_count(max)?;
        let visibility = visibility.unwrap_or(self.settings.visibility_timeout);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.store.sent.notified();
            let got = self
                .store
                .with_conn(self.receive_now(max, visibility))
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
        let (name, handles) = (self.name.clone(), receipt_handles.to_vec());
        let n = handles.len();
        let done = self
            .store
            .with_conn(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let mut out = Vec::with_capacity(handles.len());
                {
                    let mut delete = tx
                        .prepare_cached("DELETE FROM messages WHERE queue = ?1 AND receipt = ?2")?;
                    for h in &handles {
                        if !h.contains(':') {
                            out.push(Err(QueueError::ReceiptInvalid(
                                "not a receipt handle of this queue".to_owned(),
                            )));
                            continue;
                        }
                        // Like SQS, deleting an already deleted message (or through a handle
                        // made stale by a later receive, which leaves the message to that
                        // receive) is not an error.
                        delete.execute(params![name, h])?;
                        out.push(Ok(()));
                    }
                }
                tx.commit()?;
                Ok(out)
            })
            .await;
        done.unwrap_or_else(|e| vec![Err(e); n])
    }

    async fn change_visibility_batch(
        &self,
        entries: &[(String, Duration)],
    ) -> Vec<Result<(), QueueError>> {
        let (name, entries) = (self.name.clone(), entries.to_vec());
        let n = entries.len();
        let released = entries.iter().any(|(_, t)| t.is_zero());
        let done = self
            .store
            .with_conn(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let now = now_ms();
                let mut out = Vec::with_capacity(entries.len());
                {
                    let mut change = tx.prepare_cached(
                        "UPDATE messages SET visible_at = ?3 WHERE queue = ?1 AND receipt = ?2 AND visible_at > ?4",
                    )?;
                    for (h, timeout) in &entries {
                        if *timeout > crate::retry::MAX_DELAY {
                            out.push(Err(QueueError::BadRequest(
                                "visibility timeout over 12h".to_owned(),
                            )));
                            continue;
                        }
                        let changed = change.execute(params![name, h, now + ms(*timeout), now])?;
                        out.push(if changed == 0 {
                            Err(QueueError::ReceiptInvalid(
                                "the message is not in flight".to_owned(),
                            ))
                        } else {
                            Ok(())
                        });
                    }
                }
                tx.commit()?;
                Ok(out)
            })
            .await;
        if released {
            self.store.sent.notify_waiters();
        }
        done.unwrap_or_else(|e| vec![Err(e); n])
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let name = self.name.clone();
        self.store
            .with_conn(move |conn| {
                let now = now_ms();
                let (visible, in_flight): (i64, i64) = conn
                    .prepare_cached(
                        "SELECT COALESCE(SUM(visible_at <= ?2), 0), COALESCE(SUM(visible_at > ?2), 0)
                         FROM messages WHERE queue = ?1",
                    )?
                    .query_row(params![name, now], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?
                    .unwrap_or((0, 0));
                Ok(QueueDepth {
                    visible: visible as u64,
                    in_flight: in_flight as u64,
                })
            })
            .await
    }
}
