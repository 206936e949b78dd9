//! Test helper: sends numbered messages to an embedded queue, printing `acked N` after each
//! send returned, until killed. The durability test kills it with SIGKILL mid-stream.

use router_core::embedded::{EmbeddedQueue, EmbeddedStore, QueueSettings};
use router_core::ports::{OutgoingMessage, Queue};
use std::io::Write;

#[tokio::main]
async fn main() {
    let dir = std::env::args()
        .nth(1)
        .expect("usage: queue-writer DATA_DIR");
    let store = EmbeddedStore::open(std::path::Path::new(&dir)).expect("open the store");
    let q = EmbeddedQueue::open(&store, "deliveries", QueueSettings::default());
    let mut out = std::io::stdout();
    for n in 0u64.. {
        let m = OutgoingMessage {
            body: n.to_string(),
            attributes: Default::default(),
            delay: std::time::Duration::ZERO,
            ..Default::default()
        };
        q.send_batch(&[m]).await.expect("send");
        writeln!(out, "acked {n}").expect("stdout");
        out.flush().expect("stdout");
    }
}
