//! The SQLite database behind the embedded queues: the schema, one connection shared by
//! the calls, the group-commit writer thread that sends go through, and the checkpoint
//! thread. Every call is one transaction, so what a send returned `Ok` for survives a
//! crash of the process (kill -9). Several processes may open the same file.

use super::queue::{EmbeddedQueue, QueueSettings};
use crate::ports::QueueError;
use crate::time_fmt::now_ms;
use rusqlite::{Connection, TransactionBehavior, params};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

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
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, visible_at, seq);
CREATE UNIQUE INDEX IF NOT EXISTS messages_receipt ON messages (receipt) WHERE receipt IS NOT NULL;
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

/// How long a FIFO message's deduplication id is remembered (as SQS does).
pub(super) const DEDUP_WINDOW: Duration = Duration::from_secs(300);

/// How often the WAL is copied into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Most sends one group commit takes.
const GROUP_COMMIT_MAX: usize = 512;

/// One SQLite database holding any number of queues.
///
/// Sends go through one writer thread that commits every send waiting at that moment in
/// one transaction (group commit), answering each only after the commit.
#[derive(Debug)]
pub struct EmbeddedStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    pub(super) sent: Arc<Notify>,
    pub(super) writer: std::sync::mpsc::Sender<SendRequest>,
    /// Dropped with the store, which ends the checkpoint thread.
    _stop_checkpoints: std::sync::mpsc::Sender<()>,
}

/// Rows of one `send_batch`: (message id, body, attributes JSON, delay).
/// One row to insert: message id, body, attributes JSON, delay, group, deduplication id.
pub(super) type Row = (
    String,
    String,
    String,
    Duration,
    Option<String>,
    Option<String>,
);
pub(super) type Rows = Vec<Row>;

#[derive(Debug)]
pub(super) struct SendRequest {
    pub(super) queue: String,
    pub(super) rows: Rows,
    pub(super) reply: tokio::sync::oneshot::Sender<Result<(), QueueError>>,
}

fn lock(conn: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    conn.lock().unwrap_or_else(|p| p.into_inner())
}

/// The writer thread: drains every waiting send, commits them together, answers each.
fn group_commit(
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    sent: Arc<Notify>,
    requests: std::sync::mpsc::Receiver<SendRequest>,
) {
    while let Ok(first) = requests.recv() {
        let mut group = vec![first];
        while group.len() < GROUP_COMMIT_MAX {
            match requests.try_recv() {
                Ok(r) => group.push(r),
                Err(_) => break,
            }
        }
        let result = insert_all(&mut lock(&conn), &group).map_err(|e| unavailable(&path, e));
        for r in group {
            let _ = r.reply.send(result.clone());
        }
        sent.notify_waiters();
    }
}

/// Copies the WAL into the database every second (a passive checkpoint never blocks a
/// writer), until the store is dropped.
fn checkpoints(conn: Connection, stop: std::sync::mpsc::Receiver<()>) {
    let _ = conn.busy_timeout(Duration::from_secs(1));
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY)
    {
        let _ = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);");
    }
}

fn insert_all(conn: &mut Connection, group: &[SendRequest]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO messages (queue, message_id, body, attributes, sent_at, visible_at, grp)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut seen = tx.prepare_cached(
            "INSERT INTO dedup (queue, id, at) VALUES (?1, ?2, ?3)
             ON CONFLICT (queue, id) DO UPDATE SET at = excluded.at WHERE dedup.at < ?4",
        )?;
        let now = now_ms();
        let window_start = now - ms(DEDUP_WINDOW);
        for req in group {
            for (id, body, attrs, delay, grp, dedup) in &req.rows {
                // A deduplication id seen within the window: accepted, not queued again.
                if let Some(d) = dedup
                    && seen.execute(params![req.queue, d, now, window_start])? == 0
                {
                    continue;
                }
                insert.execute(params![
                    req.queue,
                    id,
                    body,
                    attrs,
                    now,
                    now + ms(*delay),
                    grp
                ])?;
            }
        }
        tx.execute("DELETE FROM dedup WHERE at < ?1", params![window_start])?;
    }
    tx.commit()
}

impl EmbeddedStore {
    /// Opens (creating if needed) `dir/queue.db`.
    pub fn open(dir: &Path) -> Result<Arc<Self>, QueueError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            QueueError::Unavailable(format!("cannot create data dir {}: {e}", dir.display()))
        })?;
        let path = dir.join("queue.db");
        let conn = Connection::open(&path).map_err(|e| unavailable(&path, e))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(|e| unavailable(&path, e))?;
        // WAL + NORMAL: a committed transaction survives a process crash; only an OS crash
        // or power loss can take the last commits.
        // Checkpoints run on their own thread (below), off the senders' path.
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0;",
        )
        .map_err(|e| unavailable(&path, e))?;
        conn.execute_batch(SCHEMA)
            .and_then(|()| {
                let has_groups: bool = conn.query_row(
                    "SELECT COUNT(*) > 0 FROM pragma_table_info('messages') WHERE name = 'grp'",
                    [],
                    |r| r.get(0),
                )?;
                if !has_groups {
                    conn.execute_batch(GROUPS)?;
                }
                conn.execute_batch(GROUP_INDEX)
            })
            .map_err(|e| unavailable(&path, e))?;
        let conn = Arc::new(Mutex::new(conn));
        let sent = Arc::new(Notify::new());
        let (writer, requests) = std::sync::mpsc::channel();
        let (c, p, n) = (conn.clone(), path.clone(), sent.clone());
        std::thread::Builder::new()
            .name("queue-writer".into())
            .spawn(move || group_commit(c, p, n, requests))
            .map_err(|e| QueueError::Unavailable(format!("cannot start the queue writer: {e}")))?;
        let (stop_checkpoints, stopped) = std::sync::mpsc::channel::<()>();
        let checkpoint_conn = Connection::open(&path).map_err(|e| unavailable(&path, e))?;
        std::thread::Builder::new()
            .name("queue-checkpoint".into())
            .spawn(move || checkpoints(checkpoint_conn, stopped))
            .map_err(|e| {
                QueueError::Unavailable(format!("cannot start the queue checkpointer: {e}"))
            })?;
        Ok(Arc::new(Self {
            conn,
            path,
            sent,
            writer,
            _stop_checkpoints: stop_checkpoints,
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A handle on the queue `name` in this store.
    pub fn queue(self: &Arc<Self>, name: &str, settings: QueueSettings) -> EmbeddedQueue {
        EmbeddedQueue {
            store: Arc::clone(self),
            name: name.to_owned(),
            settings,
        }
    }

    pub(super) async fn with_conn<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, QueueError> {
        let store = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            f(&mut lock(&store.conn)).map_err(|e| unavailable(&store.path, e))
        })
        .await
        .map_err(|e| QueueError::Unavailable(format!("queue task failed: {e}")))?
    }
}

fn unavailable(path: &Path, e: rusqlite::Error) -> QueueError {
    QueueError::Unavailable(format!("embedded queue {}: {e}", path.display()))
}

/// Milliseconds of a duration, as the schema stores times.
pub(super) fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}
