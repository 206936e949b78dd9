//! The trigger router on 127.0.0.1:PORT over the embedded durable queue (in a temporary
//! directory), for load tests: `cargo run --release -p trigger --example bench_server -- PORT`.
//! Prints `ready` when it accepts connections; writes the audit log (JSON with LOG_FORMAT=json). The routes file has one route matching the
//! load's event and requires the `X-API-Key: bench-key` header.

use router_core::backends::{Backends, embedded_queues};
use router_core::routes::Routes;
use router_core::testing::MemorySecrets;
use std::sync::Arc;
use std::time::Duration;

const ROUTES: &str = r#"
[ingest]
auth = "flows"

[auth.flows]
type = "api_key"
secret = "ingest-key"

[[route]]
name = "crm-handoff"
target_url = "https://crm.example.com/hooks"
template = '{"user": {{ event.user_id | tojson }}}'
triggers = [{ event_type = "intent", name = "handover", threshold = 0.8 }, { event_type = "intent", name = "smalltalk", negate = true }]

[[route]]
name = "flow-audit"
target_url = "https://audit.example.com/hooks"
template = '{}'
triggers = [{ event_type = "flow_end" }]
"#;

fn main() {
    // The audit log is on, as on Lambda (JSON lines on stdout).
    router_core::telemetry::init();
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(3900);
    let threads: usize = std::env::var("BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let dir = tempfile::tempdir().expect("temp dir");
        let routes =
            Arc::new(Routes::parse(ROUTES, std::path::Path::new("routes.toml")).expect("routes"));
        let (mut queue, dead_letters) =
            embedded_queues(dir.path(), Duration::from_secs(60), 20).expect("queue");
        if std::env::var("BENCH_QUEUE").as_deref() == Ok("memory") {
            queue = Arc::new(router_core::testing::FakeQueue::new());
        }
        let backends = Backends {
            queue,
            dead_letters,
            secrets: Arc::new(MemorySecrets::with(&[("ingest-key", "bench-key")])),
            ordered: None,
        };
        let state = trigger::State::new(routes, backends, 10)
            .await
            .expect("state");
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        println!("ready");
        axum::serve(listener, trigger::router(Arc::new(state)))
            .await
            .expect("serve");
    });
}
