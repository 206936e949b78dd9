//! Wiring the ports to adapters, once per cold start: SQS + Secrets Manager on AWS, or the
//! embedded queues locally (routerctl picks the secret store).

use crate::aws::{SecretsManagerStore, SqsQueue, sdk_config};
use crate::config::{Config, ConfigError};
use crate::embedded::{EmbeddedQueue, EmbeddedStore, QueueSettings, Redrive};
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

/// Name of the ordered routes' FIFO queue inside an embedded store.
pub const EMBEDDED_ORDERED: &str = "ordered";
/// Name of its dead-letter queue inside an embedded store.
pub const EMBEDDED_ORDERED_DEAD_LETTERS: &str = "ordered-dead-letters";

/// A delivery queue and its dead-letter queue.
#[derive(Debug, Clone)]
pub struct QueuePair {
    pub queue: Arc<dyn Queue>,
    pub dead_letters: Arc<dyn Queue>,
}

/// The queue, its dead-letter queue, and the secret store a handler works against; and
/// the FIFO pair of ordered routes, when there is one.
#[derive(Debug, Clone)]
pub struct Backends {
    pub queue: Arc<dyn Queue>,
    pub dead_letters: Arc<dyn Queue>,
    pub secrets: Arc<dyn SecretStore>,
    /// Ordered routes' FIFO queues (`ORDERED_QUEUE_URL` on AWS; always there locally).
    pub ordered: Option<QueuePair>,
}

/// Which queue pair: the standard one, or the ordered routes' FIFO pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pair {
    Standard,
    /// Messages with a group: an ordered route's (the standard pair when there is no FIFO
    /// pair).
    Ordered,
}

impl Pair {
    /// The pair a received message came from: the FIFO one when it has a group.
    pub fn of(m: &crate::ports::ReceivedMessage) -> Self {
        if m.group.is_some() {
            Pair::Ordered
        } else {
            Pair::Standard
        }
    }
}

impl Backends {
    /// The dead-letter queue of `pair`.
    pub fn dead_letters_for(&self, pair: Pair) -> &Arc<dyn Queue> {
        match (&self.ordered, pair) {
            (Some(o), Pair::Ordered) => &o.dead_letters,
            _ => &self.dead_letters,
        }
    }

    /// The delivery queue of `pair`.
    pub fn queue_for(&self, pair: Pair) -> &Arc<dyn Queue> {
        match (&self.ordered, pair) {
            (Some(o), Pair::Ordered) => &o.queue,
            _ => &self.queue,
        }
    }
}

impl Backends {
    /// SQS queues from `QUEUE_URL` / `DEAD_LETTER_QUEUE_URL`, Secrets Manager for secrets,
    /// one SDK configuration for both.
    pub async fn aws(config: &Config) -> Result<Self, ConfigError> {
        let queue_url = config.require_queue_url()?.to_owned();
        let dlq_url = config.require_dead_letter_queue_url()?.to_owned();
        let ordered = config
            .ordered_queue_urls()?
            .map(|(q, d)| (q.to_owned(), d.to_owned()));
        let sdk = sdk_config().await;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        Ok(Self {
            queue: Arc::new(SqsQueue::new(sqs.clone(), queue_url)),
            dead_letters: Arc::new(SqsQueue::new(sqs.clone(), dlq_url)),
            ordered: ordered.map(|(q, d)| QueuePair {
                queue: Arc::new(SqsQueue::new(sqs.clone(), q)),
                dead_letters: Arc::new(SqsQueue::new(sqs.clone(), d)),
            }),
            secrets: Arc::new(SecretsManagerStore::configured(&sdk, config)),
        })
    }
}

/// The embedded delivery queue and its dead-letter queue.
pub fn embedded_queues(
    data_dir: &Path,
    visibility_timeout: Duration,
    max_receive_count: u32,
) -> Result<(SharedQueue, SharedQueue), QueueError> {
    let pairs = embedded_queue_pairs(data_dir, visibility_timeout, max_receive_count, None)?;
    Ok((pairs.0.queue, pairs.0.dead_letters))
}

/// The embedded queue pairs: the standard one and the ordered routes' FIFO one (grouped
/// messages keep their order in any embedded queue; the pair mirrors SQS's two queues).
/// With a `dead_letter_retention`, this process deletes dead letters that much older
/// (`routerctl serve` does; the `dlq` commands beside it do not).
pub fn embedded_queue_pairs(
    data_dir: &Path,
    visibility_timeout: Duration,
    max_receive_count: u32,
    dead_letter_retention: Option<Duration>,
) -> Result<(QueuePair, QueuePair), QueueError> {
    let store = EmbeddedStore::open(data_dir)?;
    let pair = |queue: &str, dlq: &str| QueuePair {
        queue: Arc::new(EmbeddedQueue::open(
            &store,
            queue,
            QueueSettings {
                visibility_timeout,
                redrive: Some(Redrive {
                    dead_letter_queue: dlq.to_owned(),
                    max_receive_count,
                }),
                retention: None,
            },
        )),
        dead_letters: Arc::new(EmbeddedQueue::open(
            &store,
            dlq,
            QueueSettings {
                retention: dead_letter_retention,
                ..QueueSettings::default()
            },
        )),
    };
    Ok((
        pair(EMBEDDED_QUEUE, EMBEDDED_DEAD_LETTERS),
        pair(EMBEDDED_ORDERED, EMBEDDED_ORDERED_DEAD_LETTERS),
    ))
}
