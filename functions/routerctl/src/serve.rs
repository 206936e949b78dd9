//! `routerctl serve`: the trigger API on a local port, the deliveries ([`crate::runner`]:
//! up to `--concurrency` messages in flight, visibility extended while they run), and the
//! token refresh on its schedule, in one process. Its health answer lists open circuits.
//!
//! SIGTERM or Ctrl-C: stop accepting triggers, stop polling, let in-flight batches finish
//! (up to `--grace`), exit. Whatever is not finished reappears after the visibility
//! timeout, so nothing acknowledged is lost, even on kill -9.

use crate::cli::{Global, ServeArgs};
use crate::error::{CliError, CliResult, SetupContext};
use crate::setup;
use deliver::Deliverer;
use router_core::backends::Backends;
use router_core::config::{Config, QueueLocation};
use router_core::ports::{MAX_BATCH, Queue};
use router_core::routes::Routes;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub async fn run(global: &Global, args: &ServeArgs) -> CliResult {
    let config = setup::config()?;
    let location = setup::queue_location(&config)?;
    let routes = setup::load_routes(&global.routes)?;
    let backends = setup::backends(
        &config,
        global,
        &routes,
        args.visibility_timeout,
        Some(args.dead_letter_retention),
    )
    .await?;
    let (state, deliverer) = handlers(&config, &routes, &backends, args).await?;
    let listener = listen(args).await?;
    let local = listener
        .local_addr()
        .or_setup(|| "Cannot read the address listened on".into())?;
    // Routes whose target_url is a path deliver to this process (ROUTER_BASE_URL wins).
    let own = config.router_base_url.clone().unwrap_or(own_base(local));
    let deliverer = Arc::new(deliverer.with_router_base(Some(own))?);

    let (stop_tx, stop_rx) = watch::channel(false);
    let deliveries = spawn_deliveries(runners(&location, &backends, &deliverer, args, &stop_rx))
        .or_setup(|| "Cannot start the deliveries".into())?;
    let refresher = tokio::spawn(refresh_tokens(
        routes.clone(),
        backends.secrets.clone(),
        token_refresh::http_client()?,
        args.token_interval,
        stop_rx.clone(),
    ));
    let state = state.with_circuits(deliverer.breakers());
    let server = tokio::spawn(serve_api(listener, state, args.demo_echo, stop_rx.clone()));

    println!(
        "routerctl serve: ready on http://{local} (POST /api/v2/webhooks/trigger, GET /api/v2/health; queue: {}; {} routes)",
        setup::queue_description(&location, global),
        routes.routes().len()
    );
    let _ = std::io::stdout().flush();

    shutdown_signal().await;
    tracing::info!("shutting down: no new triggers, finishing in-flight deliveries");
    let _ = stop_tx.send(true);
    let all = async {
        let _ = server.await;
        let _ = deliveries.await;
        let _ = refresher.await;
    };
    if tokio::time::timeout(args.grace, all).await.is_err() {
        tracing::warn!(
            "in-flight deliveries did not finish within {:?}; they will be retried after their visibility timeout",
            args.grace
        );
    }
    Ok(())
}

/// The trigger API's state and the deliverer, sharing the queues and the secrets' re-read
/// period. Locally the per-batch metric documents (CloudWatch EMF on Lambda) are debug logs.
async fn handlers(
    config: &Config,
    routes: &Arc<Routes>,
    backends: &Backends,
    args: &ServeArgs,
) -> CliResult<(trigger::State, Deliverer)> {
    let state = trigger::State::with_secret_reread(
        routes.clone(),
        backends.clone(),
        config.dlq_degraded_threshold,
        args.secret_reread,
    )
    .await
    .or_setup(|| "Cannot start the trigger API".into())?;
    let deliverer = Deliverer::new(
        routes.clone(),
        backends.clone(),
        config.allow_private_targets,
    )
    .or_setup(|| "Cannot start the deliveries".into())?
    .with_metrics(Arc::new(MetricsAsDebugLog))
    .with_secret_reread(args.secret_reread);
    Ok((state, deliverer))
}

/// The trigger API (and the demo echo target) until `stop` turns true.
async fn serve_api(
    listener: tokio::net::TcpListener,
    state: trigger::State,
    demo_echo: bool,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut app = trigger::router(Arc::new(state));
    if demo_echo {
        app = app.merge(crate::echo::router());
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
}

async fn listen(args: &ServeArgs) -> CliResult<tokio::net::TcpListener> {
    let addr = format!("{}:{}", args.host, args.port);
    tokio::net::TcpListener::bind(&addr).await.map_err(|e| {
        CliError::setup(format!(
            "Cannot listen on {addr}: {e}. Is another serve running? Try --port."
        ))
    })
}

/// The delivery runners: the standard queue's, and the ordered routes' FIFO queue's (a
/// group's next message is only handed out once the one before it is settled; SQS FIFO
/// one message a receive, see `runner::run`).
fn runners(
    location: &QueueLocation,
    backends: &Backends,
    deliverer: &Arc<Deliverer>,
    args: &ServeArgs,
    stop: &watch::Receiver<bool>,
) -> Vec<Runner> {
    let runner = |queue: &Arc<dyn Queue>, per_receive: usize| -> Runner {
        Box::pin(crate::runner::run(
            queue.clone(),
            deliverer.clone(),
            args.concurrency,
            per_receive,
            args.visibility_timeout,
            stop.clone(),
        ))
    };
    let mut runners = vec![runner(&backends.queue, MAX_BATCH)];
    if let Some(ordered) = &backends.ordered {
        let per_receive = match location {
            QueueLocation::Sqs(_) => 1,
            QueueLocation::Embedded => MAX_BATCH,
        };
        runners.push(runner(&ordered.queue, per_receive));
    }
    runners
}

type Runner = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Runs the delivery runners on a thread of their own (and its own runtime), at a lower
/// scheduling priority: when the CPU is busy, the trigger API (whose callers wait for the
/// answer, Cognigy at most 8 s) goes first and deliveries catch up from the queue as soon
/// as there is CPU to spare. Ends when every runner has.
fn spawn_deliveries(
    runners: Vec<Runner>,
) -> std::io::Result<tokio::task::JoinHandle<std::thread::Result<()>>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let thread = std::thread::Builder::new()
        .name("deliveries".into())
        .spawn(move || {
            lower_priority();
            runtime.block_on(futures_util::future::join_all(runners));
        })?;
    Ok(tokio::task::spawn_blocking(move || thread.join()))
}

/// Nice 19, the lowest priority, for the calling thread (and the threads it starts): a
/// busy CPU gives it about 1.5 % of a CPU's time against each thread at the default
/// priority (CFS weights 15 and 1024), enough to keep in-flight deliveries' visibility
/// extended; everything beyond that it gets when the trigger API leaves the CPU idle.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19) {
        tracing::debug!(error = %e, "cannot lower the deliveries' scheduling priority");
    }
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

    /// Only with `RUST_LOG=metrics=debug` (or wider): otherwise every delivery would build
    /// JSON documents that are thrown away.
    fn enabled(&self) -> bool {
        tracing::enabled!(target: "metrics", tracing::Level::DEBUG)
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
            _ = token_refresh::refresh(&routes, secrets.as_ref(), &http, deadline, None, token_refresh::Renew::IfDue) => {},
            _ = stop.wait_for(|s| *s) => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {},
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// This process's own base URL: its listening address, on loopback when it listens on
/// every address.
fn own_base(local: std::net::SocketAddr) -> url::Url {
    let ip = match local.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    let addr = std::net::SocketAddr::new(ip, local.port());
    url::Url::parse(&format!("http://{addr}")).expect("a socket address makes a URL")
}
