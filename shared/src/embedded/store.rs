//! The SQLite database behind the embedded queues and the one writer thread every
//! operation goes through. The writer commits every operation waiting at that moment in
//! one transaction (group commit) with `synchronous=FULL`: a send answered `Ok` is on disk
//! (the WAL fsynced), so it survives a power loss, not only a crash of the process. Between
//! commits the writer keeps the files bounded: a WAL over [`WAL_LIMIT_BYTES`] is
//! checkpointed to completion (the next commit starts it over, and the file is cut back to
//! that size), an idle WAL is truncated, freed pages are given back to the file system
//! (incremental vacuum), expired deduplication ids and dead letters past their queue's
//! retention are deleted. A second thread copies WAL pages into the database in the
//! background, so the writer's own checkpoints are short. Several processes may open the
//! same file (`routerctl dlq` beside `routerctl serve`).
//!
//! Each request carries its own typed answer ([`Operation::Output`]): a receive is answered
//! with messages, a delete with one result per handle, the settings with the settings.

pub use super::db::{StoreSettings, WAL_LIMIT_BYTES};

use super::db::{self, SMALL_CACHE_KIB, WRITER_CACHE_KIB, unavailable};
use super::ops::{self, Operation};
use super::upkeep::{Upkeep, checkpoints};
use crate::ports::{QueueDepth, QueueError};
use crate::sync::lock;
use crate::time_fmt::now_ms;
use rusqlite::{Connection, TransactionBehavior};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, oneshot};

/// Most operations one group commit takes.
const GROUP_COMMIT_MAX: usize = 1024;

/// One SQLite database holding any number of queues.
#[derive(Debug)]
pub struct EmbeddedStore {
    path: PathBuf,
    writer: Sender<Box<dyn Queued>>,
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

/// A request in the writer's queue, whatever its operation: run inside a group commit's
/// transaction, answered once that transaction is committed (or has failed).
trait Queued: Send + std::fmt::Debug {
    /// Runs the operation; its output is kept for [`Queued::answer`].
    fn run(&mut self, conn: &Connection, now: i64) -> rusqlite::Result<()>;
    /// The queue on which, once committed, it may have made a message receivable.
    fn wakes(&self) -> Option<&str>;
    /// Sends the kept output, or `failed` when its transaction did not commit.
    fn answer(self: Box<Self>, failed: Option<QueueError>);
}

/// An operation and where its own answer goes.
#[derive(Debug)]
struct Pending<O: Operation> {
    op: O,
    /// What the last run produced (a run in a transaction rolled back is run again).
    output: Result<O::Output, QueueError>,
    reply: oneshot::Sender<Result<O::Output, QueueError>>,
}

impl<O: Operation> Queued for Pending<O> {
    fn run(&mut self, conn: &Connection, now: i64) -> rusqlite::Result<()> {
        self.output = Ok(self.op.apply(conn, now)?);
        Ok(())
    }

    fn wakes(&self) -> Option<&str> {
        self.op.wakes()
    }

    fn answer(self: Box<Self>, failed: Option<QueueError>) {
        let _ = self.reply.send(match failed {
            Some(e) => Err(e),
            None => self.output,
        });
    }
}

/// Reads the writer connection's settings (through the writer, so it is that connection).
#[derive(Debug)]
struct ReadSettings;

impl Operation for ReadSettings {
    type Output = StoreSettings;

    fn apply(&self, conn: &Connection, _now: i64) -> rusqlite::Result<StoreSettings> {
        db::settings(conn)
    }
}

/// The writer thread: group commits, and the files' upkeep between them.
fn writer(
    mut conn: Connection,
    path: PathBuf,
    wakers: Wakers,
    retention: Arc<Mutex<BTreeMap<String, Duration>>>,
    restart: Arc<AtomicBool>,
    requests: Receiver<Box<dyn Queued>>,
) {
    let mut upkeep = Upkeep::new(&path, retention);
    loop {
        let first = match requests.recv_timeout(upkeep.wait()) {
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
fn commit_group(
    conn: &mut Connection,
    path: &Path,
    mut group: Vec<Box<dyn Queued>>,
    wake: &dyn Fn(&str),
) {
    let now = now_ms();
    let together = (|| -> rusqlite::Result<()> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for r in group.iter_mut() {
            r.run(&tx, now)?;
        }
        tx.commit()
    })();
    match together {
        Ok(()) => {
            // Each queue once, however many of the group's operations were on it.
            let mut woken: Vec<&str> = Vec::new();
            for queue in group.iter().filter_map(|r| r.wakes()) {
                if !woken.contains(&queue) {
                    woken.push(queue);
                    wake(queue);
                }
            }
            for request in group {
                request.answer(None);
            }
        }
        Err(_) if group.len() > 1 => {
            for mut request in group {
                let alone = (|| {
                    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    request.run(&tx, now)?;
                    tx.commit()
                })();
                if let (Ok(()), Some(queue)) = (&alone, request.wakes()) {
                    wake(queue);
                }
                request.answer(alone.err().map(|e| unavailable(path, e)));
            }
        }
        Err(e) => {
            let e = unavailable(path, e);
            for request in group {
                request.answer(Some(e.clone()));
            }
        }
    }
}

impl EmbeddedStore {
    /// Opens (creating if needed) `dir/queue.db`.
    pub fn open(dir: &Path) -> Result<Arc<Self>, QueueError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            QueueError::Unavailable(format!("cannot create data dir {}: {e}", dir.display()))
        })?;
        let path = dir.join("queue.db");
        let conn = db::connect(&path, WRITER_CACHE_KIB)
            .and_then(|c| db::migrate(&c).map(|()| c))
            .map_err(|e| unavailable(&path, e))?;
        let reader = db::connect(&path, SMALL_CACHE_KIB).map_err(|e| unavailable(&path, e))?;
        let checkpoint_conn =
            db::connect(&path, SMALL_CACHE_KIB).map_err(|e| unavailable(&path, e))?;
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

    /// Makes `name` known to the writer: its messages expire after `retention` (dead
    /// letters: that long after they reached it), and the returned wake-up is notified
    /// whenever a commit may have made one of its messages receivable.
    pub(super) fn register(&self, name: &str, retention: Option<Duration>) -> Arc<Notify> {
        if let Some(keep) = retention {
            lock(&self.retention).insert(name.to_owned(), keep);
        }
        Arc::clone(lock(&self.wakers).entry(name.to_owned()).or_default())
    }

    /// The settings the writer's connection runs with.
    pub async fn settings(&self) -> Result<StoreSettings, QueueError> {
        self.run(ReadSettings).await
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

    /// Runs one operation in the writer's next group commit; answers with its output.
    pub(super) async fn run<O: Operation>(&self, op: O) -> Result<O::Output, QueueError> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            op,
            output: Err(QueueError::Unavailable("not run".to_owned())),
            reply,
        };
        self.writer.send(Box::new(pending)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    pub(super) async fn depth(self: &Arc<Self>, queue: &str) -> Result<QueueDepth, QueueError> {
        let (store, queue) = (Arc::clone(self), queue.to_owned());
        tokio::task::spawn_blocking(move || {
            ops::depth(&lock(&store.reader), &queue, now_ms())
                .map_err(|e| unavailable(&store.path, e))
        })
        .await
        .map_err(|e| QueueError::Unavailable(format!("queue task failed: {e}")))?
    }
}

fn stopped() -> QueueError {
    QueueError::Unavailable("the queue writer stopped".to_owned())
}
