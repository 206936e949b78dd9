//! Measures sends/s into the embedded queue from 32 concurrent tasks (one message each).
//! `cargo run --release -p router-core --example queue_send_rate`
use router_core::embedded::{EmbeddedQueue, EmbeddedStore, QueueSettings};
use router_core::ports::{OutgoingMessage, Queue};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = EmbeddedStore::open(dir.path()).expect("open");
    let q = Arc::new(EmbeddedQueue::open(
        &store,
        "deliveries",
        QueueSettings::default(),
    ));
    let body = "x".repeat(400);
    let n = 40_000usize;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..32 {
        let (q, body) = (q.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..n / 32 {
                let m = OutgoingMessage {
                    body: format!("{t}-{i}-{body}"),
                    attributes: Default::default(),
                    delay: Duration::ZERO,
                    ..Default::default()
                };
                q.send_batch(&[m]).await.expect("send");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let dt = start.elapsed();
    println!("{:.0} sends/s", n as f64 / dt.as_secs_f64());
}
