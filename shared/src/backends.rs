//! Wiring the ports to adapters, once per cold start: SQS + Secrets Manager on AWS, or the
//! embedded queues locally (routerctl picks the secret store).

use crate::aws::{SecretsManagerStore, SqsQueue, sdk_config};
use crate::config::{Config, ConfigError, SqsQueueUrls};
use crate::embedded::{EmbeddedQueue, EmbeddedStore, QueueSettings, Redrive};
use crate::ports::{Queue, QueueError, SecretStore};
use crate::routes::Routes;
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
    /// SQS queues from `QUEUE_URL` / `DEAD_LETTER_QUEUE_URL` (and the FIFO pair's), Secrets
    /// Manager for secrets, one SDK configuration for both.
    pub async fn aws(config: &Config) -> Result<Self, ConfigError> {
        let urls = config.sqs_queue_urls()?;
        let sdk = sdk_config().await;
        let (standard, ordered) = sqs_queue_pairs(&aws_sdk_sqs::Client::new(&sdk), &urls);
        Ok(Self {
            queue: standard.queue,
            dead_letters: standard.dead_letters,
            ordered,
            secrets: Arc::new(SecretsManagerStore::configured(&sdk, config)),
        })
    }
}

/// The SQS queue pairs of `urls` on one client: the standard pair, and the FIFO pair when
/// its URLs are set.
pub fn sqs_queue_pairs(
    client: &aws_sdk_sqs::Client,
    urls: &SqsQueueUrls,
) -> (QueuePair, Option<QueuePair>) {
    let pair = |queue: &str, dead_letters: &str| QueuePair {
        queue: Arc::new(SqsQueue::new(client.clone(), queue)),
        dead_letters: Arc::new(SqsQueue::new(client.clone(), dead_letters)),
    };
    (
        pair(&urls.queue, &urls.dead_letters),
        urls.ordered.as_ref().map(|(q, d)| pair(q, d)),
    )
}

/// An ordered route without the FIFO queue pair to carry it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "route `{route}` is ordered (ordering = \"session\"), but there is no FIFO queue: set ORDERED_QUEUE_URL and ORDERED_DEAD_LETTER_QUEUE_URL"
)]
pub struct NoOrderedQueue {
    pub route: String,
}

/// Ordered routes need the FIFO pair: the first ordered route of `routes` when there is
/// none. The one check, for the trigger's cold start and routerctl's set-up.
pub fn check_ordered(routes: &Routes, ordered: Option<&QueuePair>) -> Result<(), NoOrderedQueue> {
    match routes.routes().iter().find(|r| r.ordered) {
        Some(r) if ordered.is_none() => Err(NoOrderedQueue {
            route: r.name.to_string(),
        }),
        _ => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(ordering: &str) -> Routes {
        let text = format!(
            "[[route]]\nname = 'plain'\ntemplate = '{{}}'\ntriggers = [{{ event_type = \"intent\" }}]\ntarget_url = \"https://example.com/\"\n\n\
             [[route]]\nname = 'timeline'\nordering = \"{ordering}\"\ntemplate = '{{}}'\ntriggers = [{{ event_type = \"intent\" }}]\ntarget_url = \"https://example.com/\"\n"
        );
        Routes::parse(&text, Path::new("routes.toml")).unwrap()
    }

    #[test]
    fn ordered_routes_need_the_fifo_pair() {
        let dir = tempfile::tempdir().unwrap();
        let (_, fifo) =
            embedded_queue_pairs(dir.path(), Duration::from_secs(30), 10, None).unwrap();
        let ordered = routes("session");
        assert_eq!(
            check_ordered(&ordered, None),
            Err(NoOrderedQueue {
                route: "timeline".into()
            })
        );
        let e = check_ordered(&ordered, None).unwrap_err().to_string();
        assert!(
            e.contains("set ORDERED_QUEUE_URL and ORDERED_DEAD_LETTER_QUEUE_URL"),
            "{e}"
        );
        assert_eq!(check_ordered(&ordered, Some(&fifo)), Ok(()));
        assert_eq!(check_ordered(&routes("none"), None), Ok(()));
    }

    #[test]
    fn sqs_pairs_follow_the_urls() {
        let client = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::Config::builder()
                .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
                .region(aws_sdk_sqs::config::Region::new("us-east-1"))
                .build(),
        );
        let mut urls = SqsQueueUrls {
            queue: "http://q".into(),
            dead_letters: "http://d".into(),
            ordered: None,
        };
        let (standard, ordered) = sqs_queue_pairs(&client, &urls);
        assert!(format!("{standard:?}").contains("http://q"), "{standard:?}");
        assert!(format!("{standard:?}").contains("http://d"), "{standard:?}");
        assert!(ordered.is_none());
        urls.ordered = Some(("http://o.fifo".into(), "http://od.fifo".into()));
        let (_, ordered) = sqs_queue_pairs(&client, &urls);
        let ordered = format!("{:?}", ordered.expect("the FIFO pair"));
        assert!(
            ordered.contains("http://o.fifo") && ordered.contains("http://od.fifo"),
            "{ordered}"
        );
    }
}
