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
/// ... this many a tick (1 MiB at 4 KiB pages: 4 MiB a second), so one tick holds the
/// writer, and the triggers waiting on it, for a small commit only (2,048 pages a tick
/// was a commit of 8 MiB of WAL).
const VACUUM_STEP: i64 = 256;

/// How often messages past their queue's retention are looked for (more often for a
/// retention shorter than twice this), and how many one tick deletes at most.
const RETENTION_EVERY: Duration = Duration::from_secs(60);
const RETENTION_BATCH: i64 = 2_000;

/// How many expired deduplication ids one step deletes: the ids of a burst on an ordered
/// route (its FIFO sends) all expire together five minutes later, and one statement
/// deleting them all would hold the writer for a time that grows with the burst. While
/// more are left, a step runs between every two group commits.
const DEDUP_BATCH: i64 = 1_000;

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
    /// Whether expired deduplication ids are left after the last step.
    dedup_behind: bool,
}

impl Upkeep {
    pub(super) fn new(db: &Path, retention: Arc<Mutex<BTreeMap<String, Duration>>>) -> Self {
        Self {
            wal: wal_path(db),
            retention,
            last: Instant::now(),
            last_retention: None,
            wrote: false,
            dedup_behind: false,
        }
    }

    /// Whether [`Self::tick`] has work now: a tick is due, or expired deduplication ids
    /// are left.
    pub(super) fn due(&self) -> bool {
        self.dedup_behind || self.last.elapsed() >= TICK
    }

    /// How long the writer may wait for a request before it looks after the files again.
    pub(super) fn wait(&self) -> Duration {
        if self.dedup_behind {
            Duration::ZERO
        } else {
            TICK.saturating_sub(self.last.elapsed())
        }
    }

    /// One step of upkeep: a batch of expired deduplication ids, and the files' upkeep
    /// once a tick.
    pub(super) fn tick(&mut self, conn: &Connection) {
        let expired = conn
            .execute(
                "DELETE FROM dedup WHERE rowid IN (
                    SELECT rowid FROM dedup WHERE at < ?1 ORDER BY at LIMIT ?2)",
                params![now_ms() - ms(DEDUP_WINDOW), DEDUP_BATCH],
            )
            .unwrap_or(0);
        self.dedup_behind = expired as i64 == DEDUP_BATCH;
        if self.last.elapsed() >= TICK {
            self.files(conn);
        }
    }

    /// The files' upkeep: the WAL, free pages, retention.
    fn files(&mut self, conn: &Connection) {
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

#[cfg(test)]
mod tests {
    use super::super::db;
    use super::*;

    fn store() -> (tempfile::TempDir, Connection, Upkeep) {
        store_keeping(BTreeMap::new())
    }

    /// A fresh database and its upkeep, with `retention` per queue.
    fn store_keeping(
        retention: BTreeMap<String, Duration>,
    ) -> (tempfile::TempDir, Connection, Upkeep) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.db");
        let conn = db::connect(&path, 512).unwrap();
        db::migrate(&conn).unwrap();
        let upkeep = Upkeep::new(&path, Arc::new(Mutex::new(retention)));
        (dir, conn, upkeep)
    }

    fn dedup_ids(conn: &Connection) -> i64 {
        conn.query_row("SELECT COUNT(*) FROM dedup", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn expired_deduplication_ids_go_in_batches_one_between_two_commits() {
        let (_dir, conn, mut upkeep) = store();
        let expired = now_ms() - ms(DEDUP_WINDOW) - 1_000;
        let insert = |n: i64, at: i64, prefix: &str| {
            for i in 0..n {
                conn.execute(
                    "INSERT INTO dedup (queue, id, at) VALUES ('q', ?1, ?2)",
                    params![format!("{prefix}{i}"), at],
                )
                .unwrap();
            }
        };
        insert(DEDUP_BATCH * 2 + 500, expired, "old");
        insert(10, now_ms(), "new");
        upkeep.last = Instant::now();
        assert!(!upkeep.due());

        // A tick's step deletes one batch; while expired ids are left, the writer steps
        // again at once instead of a tick later.
        upkeep.tick(&conn);
        assert_eq!(dedup_ids(&conn), DEDUP_BATCH + 510);
        assert!(upkeep.due());
        assert_eq!(upkeep.wait(), Duration::ZERO);
        upkeep.tick(&conn);
        upkeep.tick(&conn);
        assert_eq!(
            dedup_ids(&conn),
            10,
            "only the ids inside the window are left"
        );
        assert!(!upkeep.due());
        assert!(upkeep.wait() > Duration::ZERO);
    }

    #[test]
    fn free_pages_are_given_back_a_bounded_step_a_tick() {
        let (_dir, conn, mut upkeep) = store();
        let pad = "x".repeat(4000);
        conn.execute_batch("BEGIN").unwrap();
        for i in 0..3_000 {
            conn.execute(
                "INSERT INTO messages (queue, message_id, body, attributes, sent_at, visible_at)
                 VALUES ('q', ?1, ?2, '{}', 0, 0)",
                params![i.to_string(), pad],
            )
            .unwrap();
        }
        conn.execute_batch("COMMIT; DELETE FROM messages;").unwrap();
        let pages = |pragma: &str| -> i64 {
            conn.query_row(&format!("PRAGMA {pragma}"), [], |r| r.get(0))
                .unwrap()
        };
        let free = pages("freelist_count");
        assert!(free > VACUUM_STEP * 4, "{free} free pages");
        let mut ticks = 0;
        while pages("freelist_count") > FREE_PAGES_MIN {
            let before = pages("freelist_count");
            upkeep.last = Instant::now() - TICK;
            upkeep.tick(&conn);
            let given_back = before - pages("freelist_count");
            assert!(
                given_back > 0 && given_back <= VACUUM_STEP,
                "{given_back} pages in one tick"
            );
            ticks += 1;
            assert!(ticks < 100);
        }
        assert!(ticks >= 4, "{ticks} ticks");
    }

    #[test]
    fn messages_past_their_retention_go_a_bounded_batch_a_tick() {
        let (_dir, conn, mut upkeep) = store_keeping(BTreeMap::from([(
            "dlq".to_owned(),
            Duration::from_secs(3600),
        )]));
        let insert = |queue: &str, n: i64, sent_at: i64| {
            for i in 0..n {
                conn.execute(
                    "INSERT INTO messages (queue, message_id, body, attributes, sent_at, visible_at)
                     VALUES (?1, ?2, '{}', '{}', ?3, 0)",
                    params![queue, format!("{queue}{sent_at}-{i}"), sent_at],
                )
                .unwrap();
            }
        };
        insert("dlq", RETENTION_BATCH + 500, 0);
        insert("dlq", 5, now_ms());
        insert("work", 5, 0);
        let count = |queue: &str| -> i64 {
            conn.query_row(
                "SELECT COUNT(*) FROM messages WHERE queue = ?1",
                params![queue],
                |r| r.get(0),
            )
            .unwrap()
        };
        upkeep.last = Instant::now() - TICK;
        upkeep.tick(&conn);
        assert_eq!(count("dlq"), 505, "one batch a tick");
        // A full batch: the rest goes at the next tick, not a minute later.
        upkeep.last = Instant::now() - TICK;
        upkeep.tick(&conn);
        assert_eq!(count("dlq"), 5, "only those inside the retention are left");
        assert_eq!(
            count("work"),
            5,
            "a queue without a retention keeps its messages"
        );
    }
}
