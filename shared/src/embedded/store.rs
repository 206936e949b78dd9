//! The SQLite database behind the embedded queues: the schema, and the one writer thread
//! every operation goes through. The writer commits every operation waiting at that
//! moment in one transaction (group commit) with `synchronous=FULL`: a send answered `Ok`
//! is on disk (the WAL fsynced), so it survives a power loss, not only a crash of the
//! process. Between commits the writer keeps the files bounded: a WAL over
//! [`WAL_LIMIT_BYTES`] is checkpointed to completion (the next commit starts it over, and
//! the file is cut back to that size), an idle WAL is truncated, freed pages are given back
//! to the file system (incremental vacuum), expired deduplication ids and dead letters past
//! their queue's retention are deleted. A second thread copies WAL pages into the database
//! in the background, so the writer's own checkpoints are short. Several processes may open
//! the same file (`routerctl dlq` beside `routerctl serve`).

use super::ops::{Done, Op};
use super::queue::{EmbeddedQueue, QueueSettings};
use super::upkeep::{Upkeep, checkpoints};
use crate::ports::{QueueDepth, QueueError};
use crate::time_fmt::now_ms;
use rusqlite::{Connection, TransactionBehavior};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, oneshot};

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

/// Most operations one group commit takes.
const GROUP_COMMIT_MAX: usize = 1024;

/// How often the writer looks after the files (between two commits, or when idle).
pub(super) const TICK: Duration = Duration::from_millis(250);

/// The WAL's size limit: a WAL larger than this is checkpointed to completion by the
/// writer, and cut back to this size when it starts over. An idle WAL is emptied.
pub const WAL_LIMIT_BYTES: u64 = 64 << 20;

/// The writer's page cache, in KiB: the pages a queue works on are the ends of its
/// indexes (new messages at one, the next to receive at the other), so a small cache holds
/// them however deep the queue is.
const WRITER_CACHE_KIB: u32 = 512;
/// The page cache of the other connections (depth, checkpoints), in KiB.
const SMALL_CACHE_KIB: u32 = 128;

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

/// One SQLite database holding any number of queues.
#[derive(Debug)]
pub struct EmbeddedStore {
    path: PathBuf,
    writer: Sender<Request>,
    /// Per queue: woken when a commit may have made one of its messages receivable, so a
    /// waiting receive polls only its own queue again.
    wakers: Wakers,
    /// Reads that need no transaction of the writer's (depth).
    reader: Arc<Mutex<Connection>>,
    /// Queues whose messages expire, and after how long.
    retention: Arc<Mutex<BTreeMap<String, Duration>>>,
    /// Dropped with the store, which ends the checkpoint thread.
    _stop_checkpoints: Sender<()>,
}

/// Each queue's wake-up, by queue name.
type Wakers = Arc<Mutex<BTreeMap<String, Arc<Notify>>>>;

#[derive(Debug)]
enum Request {
    Op(Op, oneshot::Sender<Result<Done, QueueError>>),
    Settings(oneshot::Sender<Result<StoreSettings, QueueError>>),
}

/// Locks `m`, also after a holder panicked: the store keeps serving rather than failing
/// every later call.
pub(super) use crate::sync::lock;

/// The writer thread: group commits, and the files' upkeep between them.
fn writer(
    mut conn: Connection,
    path: PathBuf,
    wakers: Wakers,
    retention: Arc<Mutex<BTreeMap<String, Duration>>>,
    restart: Arc<AtomicBool>,
    requests: Receiver<Request>,
) {
    let mut upkeep = Upkeep::new(&path, retention);
    loop {
        let first = match requests.recv_timeout(TICK) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => {
                upkeep.tick(&conn);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut group = vec![first];
        while group.len() < GROUP_COMMIT_MAX {
            match requests.try_recv() {
                Ok(r) => group.push(r),
                Err(_) => break,
            }
        }
        let changes = conn.total_changes();
        commit_group(&mut conn, &path, group, &|queue| {
            if let Some(waker) = lock(&wakers).get(queue) {
                waker.notify_waiters();
            }
        });
        upkeep.wrote |= conn.total_changes() != changes;
        if restart.swap(false, Ordering::Relaxed) {
            // The background thread copied most of a WAL over the limit into the database:
            // copy the few pages since (no commit runs meanwhile, so this reaches the WAL's
            // end) and the next commit starts the WAL over, cut back to the limit.
            let _ = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);");
        }
        if upkeep.due() {
            upkeep.tick(&conn);
        }
    }
}

/// Runs a group's operations in one transaction and answers each after the commit; calls
/// `wake` with the queue of each committed operation that may have made a message
/// receivable. If an operation fails, the transaction is rolled back and each operation
/// runs in a transaction of its own, so one failure is only its own.
fn commit_group(conn: &mut Connection, path: &Path, group: Vec<Request>, wake: &dyn Fn(&str)) {
    let now = now_ms();
    let together = (|| -> rusqlite::Result<Vec<Answer>> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let answers = group
            .iter()
            .map(|r| r.run(&tx, now))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        tx.commit()?;
        Ok(answers)
    })();
    match together {
        Ok(answers) => {
            // Each queue once, however many of the group's operations were on it.
            let mut woken: Vec<&str> = Vec::new();
            for queue in group.iter().filter_map(Request::wakes) {
                if !woken.contains(&queue) {
                    woken.push(queue);
                    wake(queue);
                }
            }
            for (request, answer) in group.into_iter().zip(answers) {
                request.answer(Ok(answer));
            }
        }
        Err(_) if group.len() > 1 => {
            for request in group {
                let alone = (|| {
                    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    let answer = request.run(&tx, now)?;
                    tx.commit()?;
                    Ok(answer)
                })();
                if let (Ok(_), Some(queue)) = (&alone, request.wakes()) {
                    wake(queue);
                }
                request.answer(alone.map_err(|e| unavailable(path, e)));
            }
        }
        Err(e) => {
            let e = unavailable(path, e);
            for request in group {
                request.answer(Err(e.clone()));
            }
        }
    }
}

#[derive(Debug)]
enum Answer {
    Done(Done),
    Settings(StoreSettings),
}

impl Request {
    fn run(&self, conn: &Connection, now: i64) -> rusqlite::Result<Answer> {
        match self {
            Request::Op(op, _) => op.apply(conn, now).map(Answer::Done),
            Request::Settings(_) => settings(conn).map(Answer::Settings),
        }
    }

    /// The queue this request may have made a message receivable on.
    fn wakes(&self) -> Option<&str> {
        match self {
            Request::Op(op, _) => op.wakes(),
            Request::Settings(_) => None,
        }
    }

    fn answer(self, answer: Result<Answer, QueueError>) {
        match (self, answer) {
            (Request::Op(_, reply), Ok(Answer::Done(d))) => {
                let _ = reply.send(Ok(d));
            }
            (Request::Op(_, reply), Err(e)) => {
                let _ = reply.send(Err(e));
            }
            (Request::Settings(reply), Ok(Answer::Settings(s))) => {
                let _ = reply.send(Ok(s));
            }
            (Request::Settings(reply), Err(e)) => {
                let _ = reply.send(Err(e));
            }
            // `run` answers an op with `Done` and settings with `Settings`.
            (Request::Op(_, reply), Ok(Answer::Settings(_))) => {
                let _ = reply.send(Err(QueueError::Unavailable(
                    "internal: wrong answer".into(),
                )));
            }
            (Request::Settings(reply), Ok(Answer::Done(_))) => {
                let _ = reply.send(Err(QueueError::Unavailable(
                    "internal: wrong answer".into(),
                )));
            }
        }
    }
}

fn settings(conn: &Connection) -> rusqlite::Result<StoreSettings> {
    let get =
        |pragma: &str| conn.query_row(&format!("PRAGMA {pragma}"), [], |r| r.get::<_, i64>(0));
    Ok(StoreSettings {
        synchronous: get("synchronous")?,
        journal_mode: conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?,
        auto_vacuum: get("auto_vacuum")?,
        journal_size_limit: get("journal_size_limit")?,
    })
}

/// Opens a connection with the store's settings: WAL, FULL, the WAL size limit, no
/// automatic checkpoints (the writer and the background thread do them).
fn connect(path: &Path, cache_kib: u32) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_WAIT)?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA wal_autocheckpoint=0;
         PRAGMA journal_size_limit={WAL_LIMIT_BYTES}; PRAGMA cache_size=-{cache_kib};"
    ))?;
    Ok(conn)
}

/// Creates the schema, or brings an older one up to date: the `grp` column, and
/// incremental auto-vacuum (a database made before it is rewritten once with VACUUM).
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let auto_vacuum: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if auto_vacuum != 2 {
        // Takes effect on a file already written (even only its header, as switching to
        // WAL does) only through a VACUUM; cheap for a new file.
        conn.execute_batch("PRAGMA auto_vacuum=INCREMENTAL; VACUUM;")?;
    }
    conn.execute_batch(SCHEMA)?;
    let has_groups: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('messages') WHERE name = 'grp'",
        [],
        |r| r.get(0),
    )?;
    if !has_groups {
        conn.execute_batch(GROUPS)?;
    }
    conn.execute_batch(GROUP_INDEX)?;
    // Receipt handles name their row since; the index on them only cost writes.
    conn.execute_batch("DROP INDEX IF EXISTS messages_receipt;")
}

impl EmbeddedStore {
    /// Opens (creating if needed) `dir/queue.db`.
    pub fn open(dir: &Path) -> Result<Arc<Self>, QueueError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            QueueError::Unavailable(format!("cannot create data dir {}: {e}", dir.display()))
        })?;
        let path = dir.join("queue.db");
        let conn = connect(&path, WRITER_CACHE_KIB)
            .and_then(|c| migrate(&c).map(|()| c))
            .map_err(|e| unavailable(&path, e))?;
        let reader = connect(&path, SMALL_CACHE_KIB).map_err(|e| unavailable(&path, e))?;
        let checkpoint_conn = connect(&path, SMALL_CACHE_KIB).map_err(|e| unavailable(&path, e))?;
        let wakers: Wakers = Arc::default();
        let retention = Arc::new(Mutex::new(BTreeMap::new()));
        let (writer_tx, requests) = std::sync::mpsc::channel();
        let restart = Arc::new(AtomicBool::new(false));
        let (p, n, r, w) = (
            path.clone(),
            wakers.clone(),
            retention.clone(),
            restart.clone(),
        );
        std::thread::Builder::new()
            .name("queue-writer".into())
            .spawn(move || writer(conn, p, n, r, w, requests))
            .map_err(|e| QueueError::Unavailable(format!("cannot start the queue writer: {e}")))?;
        let (stop_checkpoints, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("queue-checkpoint".into())
            .spawn(move || checkpoints(checkpoint_conn, restart, stopped))
            .map_err(|e| {
                QueueError::Unavailable(format!("cannot start the queue checkpointer: {e}"))
            })?;
        Ok(Arc::new(Self {
            path,
            writer: writer_tx,
            wakers,
            reader: Arc::new(Mutex::new(reader)),
            retention,
            _stop_checkpoints: stop_checkpoints,
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A handle on the queue `name` in this store. A queue with a retention has its
    /// messages deleted that long after they were sent to it (dead letters: after they
    /// reached it) by this store's writer.
    pub fn queue(self: &Arc<Self>, name: &str, settings: QueueSettings) -> EmbeddedQueue {
        if let Some(keep) = settings.retention {
            lock(&self.retention).insert(name.to_owned(), keep);
        }
        let waker = Arc::clone(lock(&self.wakers).entry(name.to_owned()).or_default());
        EmbeddedQueue {
            store: Arc::clone(self),
            waker,
            polls: Arc::default(),
            name: name.to_owned(),
            settings,
        }
    }

    /// The settings the writer's connection runs with.
    pub async fn settings(&self) -> Result<StoreSettings, QueueError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(Request::Settings(reply))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Bytes on disk: the database, its WAL and its shared-memory index.
    pub fn disk_bytes(&self) -> u64 {
        ["", "-wal", "-shm"]
            .iter()
            .filter_map(|suffix| {
                let mut p = self.path.as_os_str().to_owned();
                p.push(suffix);
                std::fs::metadata(PathBuf::from(p)).ok()
            })
            .map(|m| m.len())
            .sum()
    }

    /// Runs one operation in the writer's next group commit.
    pub(super) async fn run(&self, op: Op) -> Result<Done, QueueError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(Request::Op(op, reply))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    pub(super) async fn depth(self: &Arc<Self>, queue: &str) -> Result<QueueDepth, QueueError> {
        let (store, queue) = (Arc::clone(self), queue.to_owned());
        tokio::task::spawn_blocking(move || {
            super::ops::depth(&lock(&store.reader), &queue, now_ms())
                .map_err(|e| unavailable(&store.path, e))
        })
        .await
        .map_err(|e| QueueError::Unavailable(format!("queue task failed: {e}")))?
    }
}

fn stopped() -> QueueError {
    QueueError::Unavailable("the queue writer stopped".to_owned())
}

fn unavailable(path: &Path, e: rusqlite::Error) -> QueueError {
    QueueError::Unavailable(format!("embedded queue {}: {e}", path.display()))
}

/// Milliseconds of a duration, as the schema stores times.
pub(super) fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}
