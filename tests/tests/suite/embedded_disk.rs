//! The embedded store's durability settings, and its files following the queue's depth
//! rather than its history: reclaiming after a drain, retention, migration of an older file.

use router_core::embedded::{EmbeddedQueue, EmbeddedStore, QueueSettings, WAL_LIMIT_BYTES};
use router_core::ports::{OutgoingMessage, Queue};
use router_core::testing::eventually;
use std::time::{Duration, Instant};

fn message(body: String) -> OutgoingMessage {
    OutgoingMessage {
        body,
        ..Default::default()
    }
}

fn sent(r: Result<Vec<router_core::ports::EntryFailure>, router_core::ports::QueueError>) {
    assert_eq!(r.unwrap(), vec![], "every entry sent");
}

#[tokio::test]
async fn commits_are_durable_on_power_loss_and_the_files_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let s = store.settings().await.unwrap();
    assert_eq!(
        s.synchronous, 2,
        "synchronous=FULL: every commit fsyncs the WAL"
    );
    assert_eq!(s.journal_mode, "wal");
    assert_eq!(
        s.auto_vacuum, 2,
        "incremental auto-vacuum: freed pages can be given back"
    );
    assert_eq!(s.journal_size_limit, WAL_LIMIT_BYTES as i64);
}

#[tokio::test]
async fn draining_gives_the_disk_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let q = EmbeddedQueue::open(&store, "deliveries", QueueSettings::default());
    let pad = "x".repeat(1024);
    for chunk in 0..2_000 {
        let batch: Vec<_> = (0..10)
            .map(|i| message(format!("{chunk}-{i}-{pad}")))
            .collect();
        sent(q.send_batch(&batch).await);
    }
    let full = store.disk_bytes();
    assert!(
        full > 20 << 20,
        "20,000 messages of 1 KiB take room: {full} bytes"
    );
    let mut drained = 0;
    loop {
        let got = q.receive(10, Duration::ZERO, None).await.unwrap();
        if got.is_empty() {
            break;
        }
        let receipts: Vec<_> = got.iter().map(|m| m.receipt_handle.clone()).collect();
        for r in q.delete_batch(&receipts).await {
            r.unwrap();
        }
        drained += got.len();
    }
    assert_eq!(drained, 20_000);
    // Freed pages are given back and the idle WAL emptied while the store stays open.
    let small = eventually(|| store.disk_bytes() < 2 << 20).await;
    assert!(
        small,
        "files still {} bytes after the drain (were {full})",
        store.disk_bytes()
    );
    // And the store still works.
    sent(q.send_batch(&[message("after".into())]).await);
    assert_eq!(
        q.receive(1, Duration::ZERO, None).await.unwrap()[0].body,
        "after"
    );
}

#[tokio::test]
async fn messages_past_their_queues_retention_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let with_retention = |name, retention| {
        EmbeddedQueue::open(
            &store,
            name,
            QueueSettings {
                retention: Some(retention),
                ..Default::default()
            },
        )
    };
    let short = with_retention("dead-letters", Duration::from_millis(600));
    // Younger than its retention however slow the machine: kept.
    let long = with_retention("other-dead-letters", Duration::from_secs(3600));
    let kept = EmbeddedQueue::open(&store, "deliveries", QueueSettings::default());
    sent(short.send_batch(&[message("old".into())]).await);
    sent(long.send_batch(&[message("young".into())]).await);
    sent(kept.send_batch(&[message("kept".into())]).await);
    let mut gone = false;
    let end = Instant::now() + router_core::testing::PATIENCE;
    while Instant::now() < end && !gone {
        let d = short.depth().await.unwrap();
        gone = d.visible + d.in_flight == 0;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "a message past the retention is deleted");
    // Upkeep ran (it deleted the old one); the young one and the one without a retention
    // stay, however old.
    assert_eq!(long.depth().await.unwrap().visible, 1);
    assert_eq!(kept.depth().await.unwrap().visible, 1);
}

#[tokio::test]
async fn a_database_from_before_incremental_vacuum_is_migrated_with_its_messages() {
    let dir = tempfile::tempdir().unwrap();
    {
        // The first release's schema: no auto-vacuum, no group column, a receipt index.
        let conn = rusqlite::Connection::open(dir.path().join("queue.db")).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE messages (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL,
                message_id TEXT NOT NULL, body TEXT NOT NULL, attributes TEXT NOT NULL,
                sent_at INTEGER NOT NULL, visible_at INTEGER NOT NULL,
                receive_count INTEGER NOT NULL DEFAULT 0, receipt TEXT);
             CREATE INDEX messages_receipt ON messages (receipt);
             INSERT INTO messages (queue, message_id, body, attributes, sent_at, visible_at)
                VALUES ('deliveries', 'm-1', 'from the old file', '{}', 0, 0);",
        )
        .unwrap();
        let auto_vacuum: i64 = conn
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .unwrap();
        assert_eq!(auto_vacuum, 0);
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.settings().await.unwrap().auto_vacuum, 2);
    let q = EmbeddedQueue::open(&store, "deliveries", QueueSettings::default());
    let got = q.receive(10, Duration::ZERO, None).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, "from the old file");
    q.delete(&got[0].receipt_handle).await.unwrap();
    assert_eq!(q.depth().await.unwrap().visible, 0);
}
