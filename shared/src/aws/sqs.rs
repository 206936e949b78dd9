//! The queue port on Amazon SQS.

use super::describe;
use crate::ports::{
    EntryFailure, MAX_BATCH, OutgoingMessage, Queue, QueueDepth, QueueError, ReceivedMessage,
};
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
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
}

fn secs(d: Duration) -> i32 {
    d.as_secs().min(i32::MAX as u64) as i32
}

/// Receipt-handle problems are expected after a slow attempt; anything else is the queue.
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
    } else {
        QueueError::Unavailable(describe(&e))
    }
}

fn is_receipt_code(code: &str) -> bool {
    code.contains("ReceiptHandleIsInvalid")
        || code.contains("MessageNotInflight")
        || code.contains("InvalidReceiptHandle")
}

fn batch_error(code: &str, message: Option<&str>) -> QueueError {
    let text = format!("{code}: {}", message.unwrap_or(""));
    if is_receipt_code(code) {
        QueueError::ReceiptInvalid(text)
    } else {
        QueueError::Unavailable(text)
    }
}

fn check_batch(n: usize) -> Result<(), QueueError> {
    if n == 0 || n > MAX_BATCH {
        return Err(QueueError::BadRequest(format!(
            "a batch holds 1 to {MAX_BATCH} entries, got {n}"
        )));
    }
    Ok(())
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send_batch(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<EntryFailure>, QueueError> {
        check_batch(messages.len())?;
        let mut entries = Vec::with_capacity(messages.len());
        for m in messages {
            let mut attrs = HashMap::new();
            for (k, v) in &m.attributes {
                let value = MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(v)
                    .build()
                    .map_err(|e| QueueError::BadRequest(e.to_string()))?;
                attrs.insert(k.clone(), value);
            }
            let entry = SendMessageBatchRequestEntry::builder()
                .id(&m.id)
                .message_body(&m.body)
                .delay_seconds(secs(m.delay))
                .set_message_attributes(Some(attrs))
                .build()
                .map_err(|e| QueueError::BadRequest(e.to_string()))?;
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
                id: f.id().to_owned(),
                reason: format!("{}: {}", f.code(), f.message().unwrap_or("")),
            })
            .collect())
    }

    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Option<Duration>,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        check_batch(max)?;
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max as i32)
            .wait_time_seconds(secs(wait).min(20))
            .set_visibility_timeout(visibility.map(secs))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
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
                }
            })
            .collect())
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn change_visibility(
        &self,
        receipt_handle: &str,
        timeout: Duration,
    ) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(secs(timeout))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
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
        let mut results = Vec::with_capacity(receipt_handles.len());
        for chunk in receipt_handles.chunks(MAX_BATCH) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, h)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(h)
                        .build()
                        .ok()
                })
                .collect();
            let call = self
                .client
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await;
            match call {
                Ok(out) => {
                    let failed: HashMap<&str, QueueError> = out
                        .failed()
                        .iter()
                        .map(|f| (f.id(), batch_error(f.code(), f.message())))
                        .collect();
                    for i in 0..chunk.len() {
                        results.push(
                            failed
                                .get(i.to_string().as_str())
                                .cloned()
                                .map_or(Ok(()), Err),
                        );
                    }
                }
                Err(e) => {
                    let err = classify(e);
                    results.extend(chunk.iter().map(|_| Err(err.clone())));
                }
            }
        }
        results
    }

    async fn change_visibility_batch(
        &self,
        entries: &[(String, Duration)],
    ) -> Vec<Result<(), QueueError>> {
        let mut results = Vec::with_capacity(entries.len());
        for chunk in entries.chunks(MAX_BATCH) {
            let batch: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, (h, t))| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(h)
                        .visibility_timeout(secs(*t))
                        .build()
                        .ok()
                })
                .collect();
            let call = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.url)
                .set_entries(Some(batch))
                .send()
                .await;
            match call {
                Ok(out) => {
                    let failed: HashMap<&str, QueueError> = out
                        .failed()
                        .iter()
                        .map(|f| (f.id(), batch_error(f.code(), f.message())))
                        .collect();
                    for i in 0..chunk.len() {
                        results.push(
                            failed
                                .get(i.to_string().as_str())
                                .cloned()
                                .map_or(Ok(()), Err),
                        );
                    }
                }
                Err(e) => {
                    let err = classify(e);
                    results.extend(chunk.iter().map(|_| Err(err.clone())));
                }
            }
        }
        results
    }
}
