//! Shared helpers of the integration tests: moto_server endpoints, queue pairs on SQS and
//! on the embedded store, and the one queue contract both adapters must meet.

pub mod chaos;
pub mod queue_contract;
pub mod targets;
pub mod token_server;

use router_core::aws::SqsQueue;
use router_core::embedded::{EmbeddedQueue, EmbeddedStore, QueueSettings, Redrive};
use std::time::Duration;

/// The moto_server `make test` started. Tests that need it fail (not skip) without it.
pub fn moto_endpoint() -> String {
    match std::env::var("MOTO_ENDPOINT") {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "MOTO_ENDPOINT is not set: this test needs moto_server. Run the tests with `make test`, \
             which installs moto into .venv and starts it on a free 127.0.0.1 port."
        ),
    }
}

/// An SDK configuration pointing at moto with dummy credentials.
pub async fn moto_sdk_config() -> aws_config::SdkConfig {
    let endpoint = moto_endpoint();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "moto",
        ))
        .load()
        .await
}

/// A fresh, uniquely named queue and its dead-letter queue on moto.
pub async fn moto_queue_pair(visibility: Duration, max_receive_count: u32) -> (SqsQueue, SqsQueue) {
    let client = aws_sdk_sqs::Client::new(&moto_sdk_config().await);
    let (main_url, dlq_url) = create_moto_queues(&client, visibility, max_receive_count).await;
    (
        SqsQueue::new(client.clone(), main_url),
        SqsQueue::new(client, dlq_url),
    )
}

/// A fresh FIFO queue and its FIFO dead-letter queue on moto (content-based
/// deduplication off, as the template makes them).
pub async fn moto_fifo_queue_pair(
    visibility: Duration,
    max_receive_count: u32,
) -> (SqsQueue, SqsQueue) {
    let client = aws_sdk_sqs::Client::new(&moto_sdk_config().await);
    let (main_url, dlq_url) =
        create_moto_queue_pair(&client, visibility, max_receive_count, true).await;
    (
        SqsQueue::new(client.clone(), main_url),
        SqsQueue::new(client, dlq_url),
    )
}

/// Creates a queue with a redrive policy and its DLQ; returns (queue URL, DLQ URL).
pub async fn create_moto_queues(
    client: &aws_sdk_sqs::Client,
    visibility: Duration,
    max_receive_count: u32,
) -> (String, String) {
    create_moto_queue_pair(client, visibility, max_receive_count, false).await
}

/// As [`create_moto_queues`]; `fifo`: both are FIFO queues (`.fifo` names).
pub async fn create_moto_queue_pair(
    client: &aws_sdk_sqs::Client,
    visibility: Duration,
    max_receive_count: u32,
    fifo: bool,
) -> (String, String) {
    use aws_sdk_sqs::types::QueueAttributeName;
    let name = format!("t-{}", uuid::Uuid::new_v4().simple());
    let suffix = if fifo { ".fifo" } else { "" };
    let fifo_attrs =
        |b: aws_sdk_sqs::operation::create_queue::builders::CreateQueueFluentBuilder| {
            if fifo {
                b.attributes(QueueAttributeName::FifoQueue, "true")
                    .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
            } else {
                b
            }
        };
    let dlq = fifo_attrs(
        client
            .create_queue()
            .queue_name(format!("{name}-dlq{suffix}")),
    )
    .send()
    .await
    .expect("create the DLQ on moto");
    let dlq_url = dlq.queue_url().expect("a DLQ URL").to_owned();
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("read the DLQ's ARN")
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("the DLQ has an ARN");
    let redrive =
        format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{max_receive_count}"}}"#);
    let main = fifo_attrs(client.create_queue().queue_name(format!("{name}{suffix}")))
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility.as_secs().to_string(),
        )
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await
        .expect("create the queue on moto");
    (main.queue_url().expect("a queue URL").to_owned(), dlq_url)
}

/// A fresh queue pair on an embedded store in its own temporary directory (grouped
/// messages keep FIFO order on any embedded queue).
pub fn embedded_queue_pair(
    visibility: Duration,
    max_receive_count: u32,
) -> (EmbeddedQueue, EmbeddedQueue, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = EmbeddedStore::open(dir.path()).expect("open the embedded store");
    let main = EmbeddedQueue::open(
        &store,
        "deliveries",
        QueueSettings {
            visibility_timeout: visibility,
            redrive: Some(Redrive {
                dead_letter_queue: "dead-letters".into(),
                max_receive_count,
            }),
            retention: None,
        },
    );
    let dlq = EmbeddedQueue::open(&store, "dead-letters", QueueSettings::default());
    (main, dlq, dir)
}
