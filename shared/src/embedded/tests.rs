//! The embedded queue's message groups at scale: only heads are read, the next of a group
//! is unblocked whichever way its head leaves, an older data dir is migrated, and a
//! group's cap refuses a send whole. The operations run on a connection of their own
//! (no writer thread), so every step is deterministic.

use super::db;
use super::ops::{Delete, GroupFull, Insert, Operation, RECEIVE, Receive, Redrive, Row};
use crate::ports::ReceivedMessage;
use rusqlite::{Connection, StatementStatus, params};
use std::time::Duration;

const Q: &str = "deliveries";
const DLQ: &str = "dead-letters";

fn open() -> (Connection, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let conn = db::connect(&dir.path().join("queue.db"), 512).unwrap();
    db::migrate(&conn).unwrap();
    (conn, dir)
}

fn row(n: usize, group: Option<&str>) -> Row {
    Row {
        message_id: format!("m{n}"),
        body: format!("{{\"n\":{n}}}"),
        attributes: "{}".into(),
        delay: Duration::ZERO,
        group: group.map(str::to_owned),
        dedup_id: group.map(|_| format!("d{n}")),
        group_cap: None,
    }
}

fn insert(conn: &Connection, rows: Vec<Row>, now: i64) -> Result<(), GroupFull> {
    let op = Insert {
        queue: Q.into(),
        rows,
    };
    op.apply(conn, now).unwrap()
}

fn receive(conn: &Connection, max: usize, now: i64) -> Vec<ReceivedMessage> {
    let op = Receive {
        queue: Q.into(),
        max,
        visibility: Duration::from_secs(30),
        redrive: Some(Redrive {
            dead_letter_queue: DLQ.into(),
            max_receive_count: 2,
        }),
    };
    op.apply(conn, now).unwrap()
}

fn delete(conn: &Connection, m: &ReceivedMessage) {
    let op = Delete {
        queue: Q.into(),
        handles: vec![m.receipt_handle.clone()],
    };
    assert!(op.apply(conn, 0).unwrap()[0].is_ok());
}

fn n(m: &ReceivedMessage) -> usize {
    let v: serde_json::Value = serde_json::from_str(&m.body).unwrap();
    v["n"].as_u64().unwrap() as usize
}

/// The receivable (unblocked) messages of each group: never more than its head.
fn unblocked_per_group(conn: &Connection) -> Vec<(String, i64)> {
    let mut stmt = conn
        .prepare(
            "SELECT grp, COUNT(*) FROM messages WHERE grp IS NOT NULL AND blocked = 0
             GROUP BY queue, grp ORDER BY grp",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// The virtual machine steps of the last receive: what it read, whatever the machine's
/// speed.
fn receive_steps(conn: &Connection) -> i32 {
    conn.prepare_cached(RECEIVE)
        .unwrap()
        .get_status(StatementStatus::VmStep)
}

/// A group whose head is in flight with `behind` messages queued after it, and another
/// group's one message: what the receive that finds that message reads.
fn steps_with_backlog(behind: usize) -> i32 {
    let (conn, _dir) = open();
    let mut rows = vec![row(0, Some("stuck"))];
    rows.extend((1..=behind).map(|i| row(i, Some("stuck"))));
    insert(&conn, rows, 1_000).unwrap();
    let head = receive(&conn, 10, 1_000);
    assert_eq!(head.iter().map(n).collect::<Vec<_>>(), [0], "only the head");
    insert(&conn, vec![row(999_999, Some("other"))], 2_000).unwrap();
    // Reset the counter, then the one receive measured.
    conn.prepare_cached(RECEIVE)
        .unwrap()
        .reset_status(StatementStatus::VmStep);
    let got = receive(&conn, 10, 3_000);
    assert_eq!(
        got.iter().map(n).collect::<Vec<_>>(),
        [999_999],
        "the other session's message, nothing of the stuck one"
    );
    receive_steps(&conn)
}

#[test]
fn a_receive_reads_the_same_however_many_messages_wait_behind_a_stuck_head() {
    let small = steps_with_backlog(10);
    let large = steps_with_backlog(5_000);
    // Reading the 5,000 blocked rows (as a receive did before heads were indexed) takes
    // tens of thousands of steps; reading heads only takes the same few either way.
    assert!(
        large <= small + 20,
        "{large} steps with 5,000 behind the head against {small} with 10"
    );
}

#[test]
fn the_next_of_a_group_is_unblocked_when_its_head_is_deleted() {
    let (conn, _dir) = open();
    insert(&conn, (0..3).map(|i| row(i, Some("a"))).collect(), 1_000).unwrap();
    assert_eq!(unblocked_per_group(&conn), [("a".to_owned(), 1)]);
    for expected in 0..3 {
        let got = receive(&conn, 10, 1_000);
        assert_eq!(got.iter().map(n).collect::<Vec<_>>(), [expected]);
        assert!(receive(&conn, 10, 1_000).is_empty(), "held while in flight");
        delete(&conn, &got[0]);
    }
    assert!(unblocked_per_group(&conn).is_empty());
}

#[test]
fn the_next_of_a_group_is_unblocked_when_its_head_is_dead_lettered() {
    let (conn, _dir) = open();
    insert(&conn, (0..2).map(|i| row(i, Some("a"))).collect(), 0).unwrap();
    // Two receives of the head (its visibility runs out each time), then the third moves
    // it to the dead-letter queue and hands out the next.
    for t in [0, 40_000] {
        assert_eq!(receive(&conn, 10, t).iter().map(n).collect::<Vec<_>>(), [0]);
    }
    let got = receive(&conn, 10, 80_000);
    assert_eq!(got.iter().map(n).collect::<Vec<_>>(), [1], "the next one");
    let dead: (String, Option<String>, i64) = conn
        .query_row(
            "SELECT queue, grp, blocked FROM messages WHERE message_id = 'm0'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(dead, (DLQ.to_owned(), None, 0));
}

#[test]
fn a_head_deleted_by_any_statement_unblocks_the_next() {
    // Retention, `routerctl dlq discard` in another process: the database's triggers keep
    // the rule, not the code that deletes.
    let (conn, _dir) = open();
    insert(&conn, (0..3).map(|i| row(i, Some("a"))).collect(), 0).unwrap();
    conn.execute("DELETE FROM messages WHERE message_id = 'm0'", [])
        .unwrap();
    assert_eq!(receive(&conn, 10, 0).iter().map(n).collect::<Vec<_>>(), [1]);
    // A blocked message deleted leaves the head as it is.
    conn.execute("DELETE FROM messages WHERE message_id = 'm2'", [])
        .unwrap();
    assert_eq!(unblocked_per_group(&conn), [("a".to_owned(), 1)]);
}

#[test]
fn a_data_dir_from_before_blocked_heads_is_migrated_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    {
        // The schema as the previous release left it, with a group of three queued.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE messages (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL,
                message_id TEXT NOT NULL, body TEXT NOT NULL, attributes TEXT NOT NULL,
                sent_at INTEGER NOT NULL, visible_at INTEGER NOT NULL,
                receive_count INTEGER NOT NULL DEFAULT 0, receipt TEXT, grp TEXT);
             CREATE INDEX messages_ready ON messages (queue, visible_at, seq);
             CREATE INDEX messages_group ON messages (queue, grp, seq) WHERE grp IS NOT NULL;",
        )
        .unwrap();
        for (i, grp) in [(0, Some("a")), (1, Some("a")), (2, None), (3, Some("a"))] {
            conn.execute(
                "INSERT INTO messages (queue, message_id, body, attributes, sent_at, visible_at, grp)
                 VALUES (?1, ?2, ?3, '{}', 0, 0, ?4)",
                params![Q, format!("m{i}"), format!("{{\"n\":{i}}}"), grp],
            )
            .unwrap();
        }
    }
    let conn = db::connect(&path, 512).unwrap();
    db::migrate(&conn).unwrap();
    let blocked: Vec<i64> = conn
        .prepare("SELECT blocked FROM messages ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(blocked, [0, 1, 0, 1]);
    let old_index: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'messages_ready'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(old_index, 0, "the index of every row is gone");
    let mut order = Vec::new();
    for _ in 0..4 {
        for m in receive(&conn, 10, 0) {
            order.push(n(&m));
            delete(&conn, &m);
        }
    }
    assert_eq!(order, [0, 2, 1, 3]);
    // Opening it again changes nothing.
    db::migrate(&conn).unwrap();
}

#[test]
fn depth_counts_the_messages_behind_a_head_as_visible() {
    let (conn, _dir) = open();
    insert(&conn, (0..4).map(|i| row(i, Some("a"))).collect(), 0).unwrap();
    insert(&conn, vec![row(9, None)], 0).unwrap();
    receive(&conn, 1, 0);
    let d = super::ops::depth(&conn, Q, 0).unwrap();
    assert_eq!((d.visible, d.in_flight), (4, 1));
}

fn capped(n: usize, group: &str, cap: u32) -> Row {
    Row {
        group_cap: Some(cap),
        ..row(n, Some(group))
    }
}

#[test]
fn a_group_at_its_cap_refuses_the_whole_send() {
    let (conn, _dir) = open();
    insert(&conn, (0..3).map(|i| capped(i, "a", 3)).collect(), 0).unwrap();
    // The head is in flight until 30 s.
    receive(&conn, 1, 0);
    let full = insert(&conn, vec![capped(10, "b", 3), capped(3, "a", 3)], 10_000).unwrap_err();
    assert_eq!(
        full,
        GroupFull {
            group: "a".into(),
            queued: 3,
            cap: 3,
            head_due_in: Duration::from_secs(20),
        }
    );
    let count: i64 = conn
        .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 3, "nothing of the refused send, not even group b's");

    // One send that would take a group past its cap with its own rows is refused too.
    let full = insert(&conn, (20..24).map(|i| capped(i, "c", 3)).collect(), 10_000).unwrap_err();
    assert_eq!((full.group.as_str(), full.queued), ("c", 0));

    // A repeat of a queued message (its deduplication id seen) is accepted at the cap: it
    // is not queued again.
    insert(&conn, vec![capped(2, "a", 3)], 10_000).unwrap();

    // Once the head is delivered there is room for one.
    let head: String = conn
        .query_row(
            "SELECT receipt FROM messages WHERE message_id = 'm0'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let op = Delete {
        queue: Q.into(),
        handles: vec![head],
    };
    op.apply(&conn, 0).unwrap();
    insert(&conn, vec![capped(3, "a", 3)], 10_000).unwrap();
    assert!(insert(&conn, vec![capped(4, "a", 3)], 10_000).is_err());
}

#[test]
fn rows_without_a_cap_are_never_refused() {
    let (conn, _dir) = open();
    insert(&conn, (0..50).map(|i| row(i, Some("a"))).collect(), 0).unwrap();
    insert(&conn, (50..60).map(|i| row(i, None)).collect(), 0).unwrap();
    let count: i64 = conn
        .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 60);
}
