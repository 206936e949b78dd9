//! The deliver Lambda: SQS event source with `ReportBatchItemFailures`. Everything is
//! built once per cold start; a bad routes file or configuration fails init with every
//! error listed.
//!
//! One runtime thread: an invocation handles one batch at a time, its records concurrently
//! on that thread, and below 1,769 MB a function gets less than one vCPU anyway. Measured
//! (BENCHMARKS.md, "Delivery"), one thread delivers more per second than two and uses
//! less memory: no cross-thread wake-ups per request.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use deliver::{Deliverer, lambda};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use router_core::backends::Backends;
use router_core::config::Config;
use router_core::routes::Routes;
use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    router_core::telemetry::init();
    let deliverer = match init().await {
        Ok(d) => d,
        Err(e) => {
            // One readable line (every routes-file error listed), then a failed init.
            tracing::error!("deliver cannot start: {e}");
            std::process::exit(1);
        }
    };
    tracing::info!(
        version = router_core::VERSION,
        allow_private_targets = deliverer.allow_private_targets(),
        "deliver ready"
    );
    let deliverer = &deliverer;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = router_core::time_fmt::instant_at_unix_ms(event.context.deadline);
        let records = lambda::received_messages(event.payload);
        let failed = deliverer.handle_batch_until(records, Some(deadline)).await;
        Ok::<SqsBatchResponse, Error>(lambda::batch_response(failed))
    }))
    .await
}

async fn init() -> Result<Deliverer, Error> {
    let config = Config::from_env()?;
    let routes = Routes::load(&config.routes_file)?;
    let backends = Backends::aws(&config).await?;
    Ok(
        Deliverer::new(Arc::new(routes), backends, config.allow_private_targets)?
            .with_router_base(config.router_base_url.clone())?
            .with_rate_share(rate_share()?)?,
    )
}

/// How many containers may deliver at once: each of the function's two event sources
/// (standard and FIFO queue) runs up to `DELIVER_MAX_CONCURRENCY` (the template sets it to
/// the sources' `MaximumConcurrency`); each rate limit is split between them all. Unset:
/// one (a function run outside the template).
fn rate_share() -> Result<u32, String> {
    match std::env::var("DELIVER_MAX_CONCURRENCY") {
        Err(_) => Ok(1),
        Ok(v) => match v.trim().parse::<u32>() {
            Ok(n) if n >= 1 => Ok(n.saturating_mul(EVENT_SOURCES)),
            _ => Err(format!(
                "DELIVER_MAX_CONCURRENCY must be a whole number of at least 1, got `{v}`"
            )),
        },
    }
}

/// The deliver function's event sources in template.yaml.
const EVENT_SOURCES: u32 = 2;
