//! Wiring the ports to adapters, once per cold start: SQS + Secrets Manager on AWS, or the
//! embedded queues locally (routerctl picks the secret store).

use crate::aws::{SecretsManagerStore, SqsQueue, sdk_config};
use crate::config::{Config, ConfigError};
use crate::embedded::{EmbeddedStore, QueueSettings, Redrive};
use crate::ports::{Queue, QueueError, SecretStore};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A queue shared by the handlers of one process.
pub type SharedQueue = Arc<dyn Queue>;

/// Name of the delivery queue inside an embedded store.
pub const EMBEDDED_QUEUE: &str = "deliveries";
/// Name of the dead-letter queue inside an embedded store.
pub const EMBEDDED_DEAD_LETTERS: &str = "dead-letters";

/// The queue, its dead-letter queue, and the secret store a handler works against.
#[derive(Debug, Clone)]
pub struct Backends {
    pub queue: Arc<dyn Queue>,
    pub dead_letters: Arc<dyn Queue>,
    pub secrets: Arc<dyn SecretStore>,
}

impl Backends {
    /// SQS queues from `QUEUE_URL` / `DEAD_LETTER_QUEUE_URL`, Secrets Manager for secrets,
    /// one SDK configuration for both.
    pub async fn aws(config: &Config) -> Result<Self, ConfigError> {
        let queue_url = config.require_queue_url()?.to_owned();
        let dlq_url = config.require_dead_letter_queue_url()?.to_owned();
        let sdk = sdk_config().await;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        Ok(Self {
            queue: Arc::new(SqsQueue::new(sqs.clone(), queue_url)),
            dead_letters: Arc::new(SqsQueue::new(sqs, dlq_url)),
            secrets: Arc::new(SecretsManagerStore::new(
                aws_sdk_secretsmanager::Client::new(&sdk),
            )),
        })
    }
}

/// The embedded delivery queue and its dead-letter queue.
pub fn embedded_queues(
    data_dir: &Path,
    visibility_timeout: Duration,
    max_receive_count: u32,
) -> Result<(SharedQueue, SharedQueue), QueueError> {
    let store = EmbeddedStore::open(data_dir)?;
    let queue = store.queue(
        EMBEDDED_QUEUE,
        QueueSettings {
            visibility_timeout,
            redrive: Some(Redrive {
                dead_letter_queue: EMBEDDED_DEAD_LETTERS.to_owned(),
                max_receive_count,
            }),
        },
    );
    let dead_letters = store.queue(EMBEDDED_DEAD_LETTERS, QueueSettings::default());
    Ok((Arc::new(queue), Arc::new(dead_letters)))
}
