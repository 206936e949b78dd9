//! What the embedded queue acknowledged survives a kill -9 of the process.

use router_core::embedded::{EmbeddedQueue, EmbeddedStore, QueueSettings};
use router_core::ports::Queue;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test]
async fn every_acknowledged_message_survives_sigkill_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_queue-writer"))
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start queue-writer");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = BTreeSet::new();
    while acked.len() < 300 {
        let line = lines.next().expect("writer still running").unwrap();
        acked.insert(line.trim_start_matches("acked ").parse::<u64>().unwrap());
    }
    // SIGKILL: no destructor, no flush, no checkpoint.
    let rc = unsafe_free_kill(child.id());
    assert_eq!(rc, 0, "kill -9 sent");
    let _ = child.wait();
    // Acks printed after we stopped reading still count.
    for line in lines.map_while(Result::ok) {
        if let Some(n) = line.strip_prefix("acked ") {
            acked.insert(n.parse().unwrap());
        }
    }

    let store = EmbeddedStore::open(dir.path()).expect("reopen after the crash");
    let q = EmbeddedQueue::open(&store, "deliveries", QueueSettings::default());
    let mut stored = BTreeSet::new();
    loop {
        let got = q.receive(10, Duration::ZERO, None).await.unwrap();
        if got.is_empty() {
            break;
        }
        stored.extend(got.iter().map(|m| m.body.parse::<u64>().unwrap()));
    }
    let missing: Vec<_> = acked.difference(&stored).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    assert!(stored.len() >= 300);
}

fn unsafe_free_kill(pid: u32) -> i32 {
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .map(|s| s.code().unwrap_or(-1))
        .unwrap_or(-1)
}
