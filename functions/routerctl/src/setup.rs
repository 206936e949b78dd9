//! Wiring a command to its routes, queue and secrets: the embedded queue in `--data-dir`
//! unless `QUEUE_URL` and `DEAD_LETTER_QUEUE_URL` are set; the `--secrets` file, or
//! Secrets Manager without it.

use crate::cli::Global;
use crate::error::{CliResult, SetupContext};
use router_core::aws::{SecretsManagerStore, sdk_config};
use router_core::backends::{
    Backends, QueuePair, check_ordered, embedded_queue_pairs, sqs_queue_pairs,
};
use router_core::config::{Config, QueueLocation};
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
    Ok(Arc::new(Routes::load(path)?))
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
    Ok(Config::from_env()?)
}

/// SQS or the embedded queue (both URLs, or neither; half a pair is an error).
pub fn queue_location(config: &Config) -> CliResult<QueueLocation> {
    Ok(config.queue_location()?)
}

/// Where the queue lives, for the ready line and errors.
pub fn queue_description(location: &QueueLocation, global: &Global) -> String {
    match location {
        QueueLocation::Sqs(urls) => format!("SQS {}", urls.queue),
        QueueLocation::Embedded => {
            format!("embedded {}", global.data_dir.join("queue.db").display())
        }
    }
}

/// The `--secrets` file, or Secrets Manager with the ids under `SECRET_PREFIX`.
pub async fn secrets(global: &Global, config: &Config) -> CliResult<Arc<dyn SecretStore>> {
    match &global.secrets {
        Some(path) => Ok(Arc::new(FileSecrets::open(path)?)),
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
    let (standard, ordered) = match queue_location(config)? {
        QueueLocation::Sqs(urls) => {
            sqs_queue_pairs(&aws_sdk_sqs::Client::new(&sdk_config().await), &urls)
        }
        QueueLocation::Embedded => embedded_queue_pairs(
            &global.data_dir,
            visibility,
            routes.map_or(DEFAULT_MAX_RECEIVE_COUNT, max_receive_count),
            dead_letter_retention,
        )
        .map(|(standard, ordered)| (standard, Some(ordered)))
        .or_setup(|| "Cannot open the embedded queue".into())?,
    };
    if let Some(routes) = routes {
        check_ordered(routes, ordered.as_ref())?;
    }
    Ok((standard, ordered))
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
