//! The Lambda side of the handler: SQS event records as queue messages, and the failed
//! message ids as the `ReportBatchItemFailures` response.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use router_core::ports::ReceivedMessage;

/// The records of an SQS event, as the queue port's messages.
pub fn received_messages(event: SqsEvent) -> Vec<ReceivedMessage> {
    event.records.into_iter().map(received_message).collect()
}

fn received_message(m: SqsMessage) -> ReceivedMessage {
    let system = |k: &str| {
        m.attributes
            .get(k)
            .and_then(|v| v.trim().parse::<i64>().ok())
    };
    let receive_count = system("ApproximateReceiveCount")
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(1)
        .max(1);
    let sent_at_ms = system("SentTimestamp").unwrap_or(0);
    ReceivedMessage {
        attributes: m
            .message_attributes
            .iter()
            .filter_map(|(k, v)| v.string_value.clone().map(|s| (k.clone(), s)))
            .collect(),
        message_id: m.message_id.unwrap_or_default(),
        receipt_handle: m.receipt_handle.unwrap_or_default(),
        body: m.body.unwrap_or_default(),
        receive_count,
        sent_at_ms,
        group: m.attributes.get("MessageGroupId").cloned(),
    }
}

/// The batch response naming the messages Lambda must not delete.
pub fn batch_response(failed: Vec<String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    response.set_failures(failed);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../tests/fixtures/sqs_event.json");

    #[test]
    fn records_become_queue_messages() {
        let event: SqsEvent = serde_json::from_str(FIXTURE).unwrap();
        let msgs = received_messages(event);
        assert_eq!(msgs.len(), 2);
        let m = &msgs[0];
        assert_eq!(m.message_id, "059f36b4-87a3-44ab-83d2-661975830a7d");
        assert_eq!(m.receipt_handle, "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a...");
        assert_eq!(m.body, r#"{"v":1,"delivery_id":"dlv_1"}"#);
        assert_eq!(m.receive_count, 3);
        assert_eq!(m.sent_at_ms, 1_764_237_600_000);
        assert_eq!(m.attributes.len(), 2, "binary attributes are left out");
        assert_eq!(m.attributes["route"], "crm-handoff");
        assert_eq!(m.attributes["delivery_id"], "dlv_1");

        let bare = &msgs[1];
        assert_eq!((bare.receive_count, bare.sent_at_ms), (1, 0));
        assert!(bare.attributes.is_empty());
    }

    #[test]
    fn failures_are_reported_by_message_id() {
        let response = batch_response(vec!["a".into(), "b".into()]);
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            serde_json::json!({"batchItemFailures": [
                {"itemIdentifier": "a"}, {"itemIdentifier": "b"}
            ]})
        );
        assert_eq!(
            serde_json::to_value(batch_response(Vec::new())).unwrap(),
            serde_json::json!({"batchItemFailures": []})
        );
    }
}
