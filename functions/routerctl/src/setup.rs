//! Wiring a command to its routes, queue and secrets: the embedded queue in `--data-dir`
//! unless `QUEUE_URL` and `DEAD_LETTER_QUEUE_URL` are set; the `--secrets` file, or
//! Secrets Manager without it.

use crate::cli::Global;
use crate::error::{CliError, CliResult};
use router_core::aws::{SecretsManagerStore, SqsQueue, sdk_config};
use router_core::backends::{Backends, QueuePair, embedded_queue_pairs};
use router_core::config::Config;
use router_core::embedded::FileSecrets;
use router_core::ports::SecretStore;
use router_core::routes::Routes;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The embedded queue's redrive count without a routes file (what a routes file of default
/// schedules gives).
const DEFAULT_MAX_RECEIVE_COUNT: u32 = 10;

/// Receives over this many are left to the dead-letter queue by the embedded queue, as an
/// SQS redrive policy would: the longest schedule's attempts plus headroom.
pub fn max_receive_count(routes: &Routes) -> u32 {
    let longest = routes
        .routes()
        .iter()
        .map(|r| r.retry.attempts())
        .max()
        .unwrap_or(1);
    (longest + 5).max(DEFAULT_MAX_RECEIVE_COUNT)
}

pub fn load_routes(path: &Path) -> CliResult<Arc<Routes>> {
    Routes::load(path)
        .map(Arc::new)
        .map_err(|e| CliError::setup(e.to_string()))
}

/// The routes file when the commands that can do without one find it: `None` when the
/// file does not exist; an error when it exists and does not load.
pub fn load_routes_if_present(path: &Path) -> CliResult<Option<Arc<Routes>>> {
    if !path.exists() {
        return Ok(None);
    }
    load_routes(path).map(Some)
}

pub fn config() -> CliResult<Config> {
    Config::from_env().map_err(|e| CliError::setup(e.to_string()))
}

/// Where the queue lives, for the ready line and errors.
pub fn queue_description(config: &Config, global: &Global) -> String {
    match &config.queue_url {
        Some(url) => format!("SQS {url}"),
        None => format!("embedded {}", global.data_dir.join("queue.db").display()),
    }
}

/// The `--secrets` file, or Secrets Manager with the ids under `SECRET_PREFIX`.
pub async fn secrets(global: &Global, config: &Config) -> CliResult<Arc<dyn SecretStore>> {
    match &global.secrets {
        Some(path) => {
            let store = FileSecrets::open(path).map_err(|e| CliError::setup(e.to_string()))?;
            Ok(Arc::new(store))
        }
        None => {
            let sdk = sdk_config().await;
            Ok(Arc::new(SecretsManagerStore::configured(&sdk, config)))
        }
    }
}

/// The standard queue pair, and the ordered routes' FIFO pair (always there on the
/// embedded queue; on SQS when `ORDERED_QUEUE_URL` and `ORDERED_DEAD_LETTER_QUEUE_URL`
/// are set, and required when the routes file has an ordered route).
/// `dead_letter_retention`: on the embedded queue, this process deletes dead letters that
/// much older (`serve` does; the `dlq` commands beside it do not). `routes` sets the
/// embedded queue's redrive count and checks that ordered routes have their FIFO pair on
/// SQS; the `dlq` commands pass none when there is no routes file (the default count).
pub async fn queues(
    config: &Config,
    global: &Global,
    routes: Option<&Routes>,
    visibility: Duration,
    dead_letter_retention: Option<Duration>,
) -> CliResult<(QueuePair, Option<QueuePair>)> {
    match (&config.queue_url, &config.dead_letter_queue_url) {
        (Some(q), Some(d)) => {
            let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
            let pair = |q: &str, d: &str| QueuePair {
                queue: Arc::new(SqsQueue::new(sqs.clone(), q)),
                dead_letters: Arc::new(SqsQueue::new(sqs.clone(), d)),
            };
            let ordered = config
                .ordered_queue_urls()
                .map_err(|e| CliError::setup(e.to_string()))?
                .map(|(q, d)| pair(q, d));
            if ordered.is_none() && routes.is_some_and(|r| r.routes().iter().any(|r| r.ordered)) {
                return Err(CliError::setup(
                    "The routes file has ordered routes: set ORDERED_QUEUE_URL and ORDERED_DEAD_LETTER_QUEUE_URL (the FIFO queues) too.",
                ));
            }
            Ok((pair(q, d), ordered))
        }
        (Some(_), None) | (None, Some(_)) => Err(CliError::setup(
            "Set both QUEUE_URL and DEAD_LETTER_QUEUE_URL to use SQS, or neither for the embedded queue.",
        )),
        (None, None) => embedded_queue_pairs(
            &global.data_dir,
            visibility,
            routes.map_or(DEFAULT_MAX_RECEIVE_COUNT, max_receive_count),
            dead_letter_retention,
        )
        .map(|(std, ordered)| (std, Some(ordered)))
        .map_err(|e| CliError::setup(format!("Cannot open the embedded queue: {e}"))),
    }
}

pub async fn backends(
    config: &Config,
    global: &Global,
    routes: &Routes,
    visibility: Duration,
    dead_letter_retention: Option<Duration>,
) -> CliResult<Backends> {
    let (standard, ordered) = queues(
        config,
        global,
        Some(routes),
        visibility,
        dead_letter_retention,
    )
    .await?;
    Ok(Backends {
        queue: standard.queue,
        dead_letters: standard.dead_letters,
        secrets: secrets(global, config).await?,
        ordered,
    })
}
