//! The embedded queue's database, the leaf its other modules build on: the schema and its
//! migrations, how a connection is opened, the constants the writer and its upkeep share,
//! and how times and errors are expressed. Nothing here knows about queues or requests.

use crate::ports::QueueError;
use rusqlite::Connection;
use std::path::Path;
use std::time::Duration;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    queue         TEXT    NOT NULL,
    message_id    TEXT    NOT NULL,
    body          TEXT    NOT NULL,
    attributes    TEXT    NOT NULL,
    sent_at       INTEGER NOT NULL,
    visible_at    INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt       TEXT
);
CREATE TABLE IF NOT EXISTS dedup (
    queue TEXT    NOT NULL,
    id    TEXT    NOT NULL,
    at    INTEGER NOT NULL,
    PRIMARY KEY (queue, id)
);
CREATE INDEX IF NOT EXISTS dedup_at ON dedup (at);
";

/// Added after the first release: a data dir from before it gets the column on open.
const GROUPS: &str = "
ALTER TABLE messages ADD COLUMN grp TEXT;
";
const GROUP_INDEX: &str = "CREATE INDEX IF NOT EXISTS messages_group ON messages (queue, grp, seq) WHERE grp IS NOT NULL;";

/// Only a group's head (its oldest message) can be received, so the others are `blocked`
/// and left out of the index receives read: a receive's cost does not grow with how many
/// messages wait behind a head, however long that head is retried. The triggers keep the
/// rule in the database itself (so every connection, and any process, keeps it): when a
/// head leaves its group (deleted, or moved to the dead-letter queue), the group's next
/// message is unblocked. A send computes its own `blocked` ([`super::ops`]).
const HEADS: &str = "
ALTER TABLE messages ADD COLUMN blocked INTEGER NOT NULL DEFAULT 0;
UPDATE messages SET blocked = 1 WHERE grp IS NOT NULL AND EXISTS (
    SELECT 1 FROM messages AS e WHERE e.queue = messages.queue AND e.grp = messages.grp AND e.seq < messages.seq);
";
const HEAD_INDEX: &str = "
DROP INDEX IF EXISTS messages_ready;
CREATE INDEX IF NOT EXISTS messages_heads ON messages (queue, visible_at, seq) WHERE blocked = 0;
CREATE TRIGGER IF NOT EXISTS messages_head_deleted AFTER DELETE ON messages
WHEN OLD.grp IS NOT NULL AND OLD.blocked = 0
BEGIN
    UPDATE messages SET blocked = 0 WHERE blocked = 1 AND seq = (
        SELECT MIN(seq) FROM messages WHERE queue = OLD.queue AND grp = OLD.grp);
END;
CREATE TRIGGER IF NOT EXISTS messages_head_moved AFTER UPDATE OF queue, grp ON messages
WHEN OLD.grp IS NOT NULL AND OLD.blocked = 0
    AND (NEW.queue IS NOT OLD.queue OR NEW.grp IS NOT OLD.grp)
BEGIN
    UPDATE messages SET blocked = 0 WHERE blocked = 1 AND seq = (
        SELECT MIN(seq) FROM messages WHERE queue = OLD.queue AND grp = OLD.grp);
END;
";

/// How often the writer looks after the files (between two commits, or when idle).
pub(super) const TICK: Duration = Duration::from_millis(250);

/// The WAL's size limit: a WAL larger than this is checkpointed to completion by the
/// writer, and cut back to this size when it starts over. An idle WAL is emptied.
pub const WAL_LIMIT_BYTES: u64 = 64 << 20;

/// The writer's page cache, in KiB: the pages a queue works on are the ends of its
/// indexes (new messages at one, the next to receive at the other), so a small cache holds
/// them however deep the queue is.
pub(super) const WRITER_CACHE_KIB: u32 = 512;
/// The page cache of the other connections (depth, checkpoints), in KiB.
pub(super) const SMALL_CACHE_KIB: u32 = 128;

pub(super) const BUSY_WAIT: Duration = Duration::from_secs(10);

/// The durability and space settings the writer's connection runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// `PRAGMA synchronous`: 2 is FULL (every commit fsyncs the WAL).
    pub synchronous: i64,
    pub journal_mode: String,
    /// `PRAGMA auto_vacuum`: 2 is INCREMENTAL (freed pages can be given back).
    pub auto_vacuum: i64,
    /// `PRAGMA journal_size_limit` in bytes.
    pub journal_size_limit: i64,
}

/// How long a FIFO message's deduplication id is remembered (as SQS does).
pub(super) const DEDUP_WINDOW: Duration = Duration::from_secs(300);

/// Opens a connection with the store's settings: WAL, FULL, the WAL size limit, no
/// automatic checkpoints (the writer and the background thread do them).
pub(super) fn connect(path: &Path, cache_kib: u32) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_WAIT)?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA wal_autocheckpoint=0;
         PRAGMA journal_size_limit={WAL_LIMIT_BYTES}; PRAGMA cache_size=-{cache_kib};"
    ))?;
    Ok(conn)
}

/// Creates the schema, or brings an older one up to date: the `grp` and `blocked` columns
/// (with the heads' index and triggers), and incremental auto-vacuum (a database made
/// before it is rewritten once with VACUUM).
pub(super) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let auto_vacuum: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if auto_vacuum != 2 {
        // Takes effect on a file already written (even only its header, as switching to
        // WAL does) only through a VACUUM; cheap for a new file.
        conn.execute_batch("PRAGMA auto_vacuum=INCREMENTAL; VACUUM;")?;
    }
    conn.execute_batch(SCHEMA)?;
    let has_column = |name: &str| -> rusqlite::Result<bool> {
        conn.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('messages') WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
    };
    if !has_column("grp")? {
        conn.execute_batch(GROUPS)?;
    }
    conn.execute_batch(GROUP_INDEX)?;
    if !has_column("blocked")? {
        conn.execute_batch(&format!("BEGIN; {HEADS} COMMIT;"))?;
    }
    conn.execute_batch(HEAD_INDEX)?;
    // Receipt handles name their row since; the index on them only cost writes.
    conn.execute_batch("DROP INDEX IF EXISTS messages_receipt;")
}

pub(super) fn settings(conn: &Connection) -> rusqlite::Result<StoreSettings> {
    let get =
        |pragma: &str| conn.query_row(&format!("PRAGMA {pragma}"), [], |r| r.get::<_, i64>(0));
    Ok(StoreSettings {
        synchronous: get("synchronous")?,
        journal_mode: conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?,
        auto_vacuum: get("auto_vacuum")?,
        journal_size_limit: get("journal_size_limit")?,
    })
}

pub(super) fn unavailable(path: &Path, e: rusqlite::Error) -> QueueError {
    QueueError::Unavailable(format!("embedded queue {}: {e}", path.display()))
}

/// Milliseconds of a duration, as the schema stores times.
pub(super) fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}
