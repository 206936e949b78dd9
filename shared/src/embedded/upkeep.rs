//! The embedded store's files kept bounded: the writer's upkeep between commits (WAL
//! truncation when idle, incremental vacuum, expired deduplication ids, retention) and
//! the background thread that copies the WAL into the database.

use super::db::{BUSY_WAIT, DEDUP_WINDOW, TICK, WAL_LIMIT_BYTES, ms};
use crate::sync::lock;
use crate::time_fmt::now_ms;
use rusqlite::{Connection, params};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the background thread copies WAL pages into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(20);

/// Once the WAL holds this much (and the background thread has copied it into the
/// database), the writer starts it over from its beginning. Under a steady load the file
/// then stays at about this size and commits overwrite its blocks: a commit that grows the
/// file (or one after the file was cut back) waits for the file system's metadata, one that
/// overwrites does not.
const WAL_RESTART_BYTES: u64 = 8 << 20;

/// Free pages are given back once there are more than this many and they are more than a
/// quarter of the file ...
const FREE_PAGES_MIN: i64 = 256;
/// ... this many a tick (8 MiB at 4 KiB pages), so one tick never holds the writer long.
const VACUUM_STEP: i64 = 2048;

/// How often messages past their queue's retention are looked for (more often for a
/// retention shorter than twice this), and how many one tick deletes at most.
const RETENTION_EVERY: Duration = Duration::from_secs(60);
const RETENTION_BATCH: i64 = 10_000;

/// How long the writer waits for readers of other processes before it gives up a
/// truncating checkpoint (it tries again next tick).
const TRUNCATE_WAIT: Duration = Duration::from_millis(50);
/// The files' upkeep, between commits.
pub(super) struct Upkeep {
    wal: PathBuf,
    retention: Arc<Mutex<BTreeMap<String, Duration>>>,
    last: Instant,
    last_retention: Option<Instant>,
    /// Whether a commit changed anything since the last tick.
    pub(super) wrote: bool,
}

impl Upkeep {
    pub(super) fn new(db: &Path, retention: Arc<Mutex<BTreeMap<String, Duration>>>) -> Self {
        Self {
            wal: wal_path(db),
            retention,
            last: Instant::now(),
            last_retention: None,
            wrote: false,
        }
    }

    pub(super) fn due(&self) -> bool {
        self.last.elapsed() >= TICK
    }

    pub(super) fn tick(&mut self, conn: &Connection) {
        let idle = !std::mem::take(&mut self.wrote);
        self.last = Instant::now();
        let wal = std::fs::metadata(&self.wal).map_or(0, |m| m.len());
        if idle && wal > 0 {
            // Nothing written for a tick: empty the WAL file.
            let _ = conn.busy_timeout(TRUNCATE_WAIT);
            let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
            let _ = conn.busy_timeout(BUSY_WAIT);
        } else if wal > WAL_LIMIT_BYTES {
            // The background thread falls behind (or is stopped): copy it all here. No
            // commit runs meanwhile, so the checkpoint gets to the WAL's end, and the next
            // commit starts it over (cut back to the limit).
            let _ = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);");
        }
        let pages = |pragma: &str| {
            conn.query_row(&format!("PRAGMA {pragma}"), [], |r| r.get::<_, i64>(0))
                .unwrap_or(0)
        };
        let free = pages("freelist_count");
        if free > FREE_PAGES_MIN && free * 4 > pages("page_count") {
            let _ = incremental_vacuum(conn, VACUUM_STEP);
        }
        let now = now_ms();
        let _ = conn.execute(
            "DELETE FROM dedup WHERE at < ?1",
            params![now - ms(DEDUP_WINDOW)],
        );
        let queues = lock(&self.retention).clone();
        // A retention shorter than the usual period is looked after more often.
        let every = queues
            .values()
            .map(|keep| *keep / 2)
            .fold(RETENTION_EVERY, Duration::min);
        if self.last_retention.is_none_or(|at| at.elapsed() >= every) {
            self.last_retention = Some(Instant::now());
            for (queue, keep) in queues {
                let deleted = conn
                    .execute(
                        // Dead letters are never blocked (they have no group): the heads'
                        // index holds them all.
                        "DELETE FROM messages WHERE seq IN (
                            SELECT seq FROM messages WHERE queue = ?1 AND blocked = 0 AND sent_at < ?2 LIMIT ?3)",
                        params![queue, now - ms(keep), RETENTION_BATCH],
                    )
                    .unwrap_or(0);
                if deleted as i64 == RETENTION_BATCH {
                    // More to delete: again next tick.
                    self.last_retention = None;
                }
                if deleted > 0 {
                    tracing::info!(
                        queue,
                        deleted,
                        "deleted messages past the queue's retention"
                    );
                }
            }
        }
    }
}

/// Gives up to `pages` free pages back to the file system. The pragma frees one page per
/// step, so every row is stepped through (`execute_batch` steps once).
fn incremental_vacuum(conn: &Connection, pages: i64) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare(&format!("PRAGMA incremental_vacuum({pages})"))?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}

fn wal_path(db: &Path) -> PathBuf {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// Copies WAL pages into the database in the background (a passive checkpoint never
/// blocks a writer), until the store is dropped.
pub(super) fn checkpoints(conn: Connection, restart: Arc<AtomicBool>, stop: Receiver<()>) {
    let _ = conn.busy_timeout(Duration::from_secs(1));
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap_or(4096);
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        // (busy, frames in the WAL, frames copied into the database)
        let frames = conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1))
            .unwrap_or(0);
        if frames * page_size > WAL_RESTART_BYTES as i64 {
            // Most of the WAL is in the database now: the writer copies the rest, which
            // lets its next commit start the WAL over.
            restart.store(true, Ordering::Relaxed);
        }
    }
}
