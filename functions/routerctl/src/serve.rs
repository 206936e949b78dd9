//! `routerctl serve`: the trigger API on a local port, consumers that poll the queue as
//! Lambda's SQS event source would (batches of up to 10, partial-batch failures honoured,
//! bounded concurrency), and the token refresh on its schedule, in one process.
//!
//! SIGTERM or Ctrl-C: stop accepting triggers, stop polling, let in-flight batches finish
//! (up to `--grace`), exit. Whatever is not finished reappears after the visibility
//! timeout, so nothing acknowledged is lost, even on kill -9.

use crate::cli::{Global, ServeArgs};
use crate::error::{CliError, CliResult};
use crate::setup;
use deliver::Deliverer;
use router_core::ports::{MAX_BATCH, Queue, ReceivedMessage};
use router_core::routes::Routes;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long one poll waits for messages.
const POLL_WAIT: Duration = Duration::from_secs(1);

pub async fn run(global: &Global, args: &ServeArgs) -> CliResult {
    let config = setup::config()?;
    let routes = setup::load_routes(&global.routes)?;
    let backends = setup::backends(
        &config,
        global,
        &routes,
        Duration::from_secs(args.visibility_timeout.max(1)),
    )
    .await?;
    let state = trigger::State::new(
        routes.clone(),
        backends.clone(),
        config.dlq_degraded_threshold,
    )
    .await
    .map_err(|e| CliError::setup(format!("Cannot start the trigger API: {e}")))?;
    let deliverer = Deliverer::new(
        routes.clone(),
        backends.clone(),
        config.allow_private_targets,
    )
    .map_err(|e| CliError::setup(format!("Cannot start the deliveries: {e}")))?;
    // Locally the per-batch metric documents (CloudWatch EMF on Lambda) are debug logs.
    let deliverer = Arc::new(deliverer.with_metrics(Arc::new(MetricsAsDebugLog)));

    let addr = format!("{}:{}", args.host, args.port);
    let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|e| {
        CliError::setup(format!(
            "Cannot listen on {addr}: {e}. Is another serve running? Try --port."
        ))
    })?;
    let local = listener
        .local_addr()
        .map_err(|e| CliError::setup(e.to_string()))?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut consumers = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        consumers.push(tokio::spawn(consume(
            backends.queue.clone(),
            deliverer.clone(),
            stop_rx.clone(),
        )));
    }
    let token_http = token_refresh::http_client().map_err(|e| CliError::setup(e.to_string()))?;
    let refresher = tokio::spawn(refresh_tokens(
        routes.clone(),
        backends.secrets.clone(),
        token_http,
        Duration::from_secs(args.token_interval.max(1)),
        stop_rx.clone(),
    ));

    let mut app = trigger::router(Arc::new(state));
    if args.demo_echo {
        app = app.merge(crate::echo::router());
    }
    let mut http_stop = stop_rx.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            })
            .await
    });

    println!(
        "routerctl serve: ready on http://{local} (POST /api/v2/webhooks/trigger, GET /api/v2/health; queue: {}; {} routes)",
        setup::queue_description(&config, global),
        routes.routes().len()
    );
    let _ = std::io::stdout().flush();

    shutdown_signal().await;
    tracing::info!("shutting down: no new triggers, finishing in-flight deliveries");
    let _ = stop_tx.send(true);
    let grace = Duration::from_secs(args.grace);
    let all = async {
        let _ = server.await;
        for c in consumers {
            let _ = c.await;
        }
        let _ = refresher.await;
    };
    if tokio::time::timeout(grace, all).await.is_err() {
        tracing::warn!(
            "in-flight deliveries did not finish within {grace:?}; they will be retried after their visibility timeout"
        );
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Sends the deliver handler's metric lines to the debug log instead of stdout.
#[derive(Debug)]
struct MetricsAsDebugLog;

impl deliver::metrics::MetricsSink for MetricsAsDebugLog {
    fn emit(&self, line: &str) {
        tracing::debug!(target: "metrics", "{line}");
    }
}

/// What a consumer hands each batch to: the deliver handler, or a test's stand-in.
pub trait BatchHandler: Send + Sync + 'static {
    /// The message ids to leave on the queue (retries, unwritten dead letters).
    fn handle(&self, batch: Vec<ReceivedMessage>) -> impl Future<Output = Vec<String>> + Send;
}

impl BatchHandler for Deliverer {
    async fn handle(&self, batch: Vec<ReceivedMessage>) -> Vec<String> {
        self.handle_batch(batch).await
    }
}

/// One consumer: poll, deliver the batch, delete what the handler did not report failed.
/// A handler that panics deletes nothing: its messages come back after their visibility
/// timeout (and reach the DLQ at the max receive count), as on Lambda.
pub async fn consume<H: BatchHandler>(
    queue: Arc<dyn Queue>,
    handler: Arc<H>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let received = tokio::select! {
            r = queue.receive(MAX_BATCH, POLL_WAIT, None) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        let batch = match received {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot poll the delivery queue; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if batch.is_empty() {
            continue;
        }
        // A batch once received is finished even during shutdown (bounded by --grace).
        let h = handler.clone();
        let records = batch.clone();
        let failed = match tokio::spawn(async move { h.handle(records).await }).await {
            Ok(failed) => failed,
            Err(e) => {
                tracing::error!(error = %e, messages = batch.len(), "a delivery batch crashed; its messages return after their visibility timeout");
                continue;
            }
        };
        let done: Vec<String> = batch
            .iter()
            .filter(|m| !failed.contains(&m.message_id))
            .map(|m| m.receipt_handle.clone())
            .collect();
        if done.is_empty() {
            continue;
        }
        for (result, handle) in queue.delete_batch(&done).await.into_iter().zip(&done) {
            if let Err(e) = result {
                tracing::warn!(error = %e, receipt = handle.as_str(), "could not delete a finished message; it may be delivered again");
            }
        }
    }
}

/// Refreshes tokens now and then every `interval`, as the scheduled function does on AWS.
async fn refresh_tokens(
    routes: Arc<Routes>,
    secrets: Arc<dyn router_core::ports::SecretStore>,
    http: reqwest::Client,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    if routes.oauth2_profiles().next().is_none() {
        return;
    }
    loop {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        tokio::select! {
            _ = token_refresh::refresh(&routes, secrets.as_ref(), &http, deadline, None, false) => {},
            _ = stop.wait_for(|s| *s) => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {},
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use router_core::backends::embedded_queues;
    use router_core::ports::OutgoingMessage;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Panics(AtomicUsize);

    impl BatchHandler for Panics {
        async fn handle(&self, _batch: Vec<ReceivedMessage>) -> Vec<String> {
            self.0.fetch_add(1, Ordering::SeqCst);
            panic!("a bug in the handler");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_batch_loses_no_message() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, dead_letters) = embedded_queues(dir.path(), Duration::from_secs(1), 2).unwrap();
        let message = OutgoingMessage {
            body: "{}".into(),
            attributes: Default::default(),
            delay: Duration::ZERO,
        };
        queue.send_batch(&[message]).await.unwrap();
        let handler = Arc::new(Panics(AtomicUsize::new(0)));
        let (stop_tx, stop_rx) = watch::channel(false);
        let consumer = tokio::spawn(consume(queue.clone(), handler.clone(), stop_rx));
        // Received twice (visibility 1 s), then redriven to the DLQ at the max receive count.
        let mut dead = Vec::new();
        for _ in 0..50 {
            dead = dead_letters
                .receive(1, Duration::from_millis(100), None)
                .await
                .unwrap();
            if !dead.is_empty() {
                break;
            }
        }
        stop_tx.send(true).unwrap();
        consumer.await.unwrap();
        assert_eq!(
            dead.len(),
            1,
            "the message reached the DLQ instead of vanishing"
        );
        assert_eq!(
            handler.0.load(Ordering::SeqCst),
            2,
            "the consumer survived the first panic"
        );
    }
}
