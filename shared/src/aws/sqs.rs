//! The queue port on Amazon SQS.

use super::describe;
use crate::ports::{
    EntryFailure, MAX_BATCH, OutgoingMessage, Queue, QueueDepth, QueueError, Received,
    ReceivedMessage, Released, limits,
};
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    BatchResultErrorEntry, ChangeMessageVisibilityBatchRequestEntry,
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName, SendMessageBatchRequestEntry,
};
use std::collections::HashMap;
use std::time::Duration;

/// One SQS queue, addressed by URL.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A FIFO queue (its name ends in `.fifo`, as SQS requires).
    pub fn is_fifo(&self) -> bool {
        self.url.ends_with(".fifo")
    }
}

/// The longest delay SQS takes on a message it is sent (15 minutes).
const MAX_SEND_DELAY: Duration = Duration::from_secs(900);

fn secs(d: Duration) -> i32 {
    d.as_secs().min(i32::MAX as u64) as i32
}

/// Error codes (as SQS names them, with or without its `AWS.SimpleQueueService.` prefix)
/// that say the request itself is at fault: sending it again cannot succeed.
const SENDER_FAULT_CODES: [&str; 10] = [
    "InvalidMessageContents",
    "BatchRequestTooLong",
    "BatchEntryIdsNotDistinct",
    "TooManyEntriesInBatchRequest",
    "EmptyBatchRequest",
    "InvalidBatchEntryId",
    "InvalidParameterValue",
    "MessageTooLong",
    "InvalidAttributeName",
    "InvalidAttributeValue",
];

/// Receipt-handle problems are expected after a slow attempt; a request SQS will never
/// take is permanent; anything else is the queue.
fn classify<E, R>(e: SdkError<E, R>) -> QueueError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    let code = e
        .as_service_error()
        .and_then(|s| s.code())
        .unwrap_or_default();
    if is_receipt_code(code) {
        QueueError::ReceiptInvalid(code.to_owned())
    } else if SENDER_FAULT_CODES.iter().any(|c| code.ends_with(c)) {
        QueueError::BadRequest(describe(&e))
    } else {
        QueueError::Unavailable(describe(&e))
    }
}

fn is_receipt_code(code: &str) -> bool {
    code.contains("ReceiptHandleIsInvalid")
        || code.contains("MessageNotInflight")
        || code.contains("InvalidReceiptHandle")
}

/// The failed entries of a batch call, by entry id.
fn failures(failed: &[BatchResultErrorEntry]) -> Vec<(String, QueueError)> {
    failed
        .iter()
        .map(|f| {
            let text = format!("{}: {}", f.code(), f.message().unwrap_or(""));
            let e = if is_receipt_code(f.code()) {
                QueueError::ReceiptInvalid(text)
            } else {
                QueueError::Unavailable(text)
            };
            (f.id().to_owned(), e)
        })
        .collect()
}

/// One result per entry of a batch call over `n` entries (delete, change visibility):
/// sent in calls of [`MAX_BATCH`]; an entry's id is its position in the input, so a
/// failure maps straight back; an entry that could not even be built is reported, never
/// dropped. `call` answers the failed entries' ids with their errors.
async fn in_batches<E, Fut>(
    n: usize,
    build: impl Fn(usize) -> Result<E, QueueError>,
    call: impl Fn(Vec<E>) -> Fut,
) -> Vec<Result<(), QueueError>>
where
    Fut: std::future::Future<Output = Result<Vec<(String, QueueError)>, QueueError>>,
{
    let mut results: Vec<Result<(), QueueError>> = vec![Ok(()); n];
    let mut start = 0;
    while start < n {
        let end = (start + MAX_BATCH).min(n);
        let mut entries = Vec::with_capacity(end - start);
        let mut sent = Vec::with_capacity(end - start);
        for (i, slot) in results.iter_mut().enumerate().take(end).skip(start) {
            match build(i) {
                Ok(e) => {
                    entries.push(e);
                    sent.push(i);
                }
                Err(e) => *slot = Err(e),
            }
        }
        if !entries.is_empty() {
            match call(entries).await {
                Ok(failed) => {
                    for (id, e) in failed {
                        if let Some(r) = id.parse::<usize>().ok().and_then(|i| results.get_mut(i)) {
                            *r = Err(e);
                        }
                    }
                }
                Err(e) => {
                    for i in sent {
                        results[i] = Err(e.clone());
                    }
                }
            }
        }
        start = end;
    }
    results
}

fn unbuildable(e: impl std::fmt::Display) -> QueueError {
    QueueError::BadRequest(format!("cannot build the request entry: {e}"))
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send_batch(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<EntryFailure>, QueueError> {
        limits::check_send(messages)?;
        let mut entries = Vec::with_capacity(messages.len());
        for (i, m) in messages.iter().enumerate() {
            let mut attrs = HashMap::new();
            for (k, v) in &m.attributes {
                let value = MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(v)
                    .build()
                    .map_err(unbuildable)?;
                attrs.insert(k.clone(), value);
            }
            let entry = SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(&m.body)
                .delay_seconds(secs(m.delay))
                .set_message_group_id(m.group.clone())
                .set_message_deduplication_id(m.dedup_id.clone())
                .set_message_attributes(Some(attrs))
                .build()
                .map_err(unbuildable)?;
            entries.push(entry);
        }
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .failed()
            .iter()
            .map(|f| EntryFailure {
                index: f.id().parse().unwrap_or(usize::MAX),
                reason: format!("{}: {}", f.code(), f.message().unwrap_or("")),
                permanent: f.sender_fault(),
            })
            .collect())
    }

    async fn receive(&self, max: usize, wait: Duration, visibility: Option<Duration>) -> Received {
        limits::check_count(max)?;
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max as i32)
            .wait_time_seconds(secs(wait).min(20))
            .set_visibility_timeout(visibility.map(secs))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .messages()
            .iter()
            .map(|m| {
                let system = m.attributes();
                let sys = |k: MessageSystemAttributeName| {
                    system.and_then(|a| a.get(&k)).and_then(|v| v.parse().ok())
                };
                ReceivedMessage {
                    message_id: m.message_id().unwrap_or_default().to_owned(),
                    receipt_handle: m.receipt_handle().unwrap_or_default().to_owned(),
                    body: m.body().unwrap_or_default().to_owned(),
                    attributes: m
                        .message_attributes()
                        .map(|a| {
                            a.iter()
                                .filter_map(|(k, v)| {
                                    v.string_value().map(|s| (k.clone(), s.to_owned()))
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    receive_count: sys(MessageSystemAttributeName::ApproximateReceiveCount)
                        .unwrap_or(1) as u32,
                    sent_at_ms: sys(MessageSystemAttributeName::SentTimestamp).unwrap_or(0),
                    group: system
                        .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                        .cloned(),
                }
            })
            .collect())
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(classify)?;
        let get = |k: QueueAttributeName| -> u64 {
            out.attributes()
                .and_then(|a| a.get(&k))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(QueueDepth {
            visible: get(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                + get(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        })
    }

    async fn delete_batch(&self, receipt_handles: &[String]) -> Vec<Result<(), QueueError>> {
        in_batches(
            receipt_handles.len(),
            |i| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&receipt_handles[i])
                    .build()
                    .map_err(unbuildable)
            },
            |entries| {
                let call = self
                    .client
                    .delete_message_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(entries));
                async move { Ok(failures(call.send().await.map_err(classify)?.failed())) }
            },
        )
        .await
    }

    /// SQS cannot uncount a receive. On a standard queue each message is replaced by a
    /// copy carrying its attempt count ([`crate::wire::queue::released_copy`]; delay up to
    /// SQS's 15 minutes, after which it is put back again); where the copy is not taken,
    /// and on a FIFO queue (a copy would go behind the rest of its group), the visibility
    /// is changed and the receive counts.
    async fn release_batch(
        &self,
        entries: &[(&ReceivedMessage, Duration)],
    ) -> Vec<Result<Released, QueueError>> {
        let mut results: Vec<Option<Result<Released, QueueError>>> = vec![None; entries.len()];
        if !self.is_fifo() {
            let copies: Vec<OutgoingMessage> = entries
                .iter()
                .map(|(m, delay)| {
                    crate::wire::queue::released_copy(m, (*delay).min(MAX_SEND_DELAY))
                })
                .collect();
            for (slot, sent) in results.iter_mut().zip(self.send(&copies).await) {
                if sent.is_ok() {
                    *slot = Some(Ok(Released::Copied));
                }
            }
        }
        let left: Vec<usize> = (0..entries.len())
            .filter(|i| results[*i].is_none())
            .collect();
        if !left.is_empty() {
            let changes: Vec<(String, Duration)> = left
                .iter()
                .map(|&i| (entries[i].0.receipt_handle.clone(), entries[i].1))
                .collect();
            for (&i, r) in left
                .iter()
                .zip(self.change_visibility_batch(&changes).await)
            {
                results[i] = Some(r.map(|()| Released::Counted));
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(QueueError::Unavailable("no result".to_owned()))))
            .collect()
    }

    async fn change_visibility_batch(
        &self,
        entries: &[(String, Duration)],
    ) -> Vec<Result<(), QueueError>> {
        in_batches(
            entries.len(),
            |i| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&entries[i].0)
                    .visibility_timeout(secs(entries[i].1))
                    .build()
                    .map_err(unbuildable)
            },
            |batch| {
                let call = self
                    .client
                    .change_message_visibility_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(batch));
                async move { Ok(failures(call.send().await.map_err(classify)?.failed())) }
            },
        )
        .await
    }
}
