//! The embedded queue's operations as SQL. Every one but [`depth`] runs on the writer's
//! connection inside the transaction of its group commit ([`super::store`]), each an
//! [`Operation`] with its own answer.

use super::db::{DEDUP_WINDOW, ms};
use crate::ports::{QueueDepth, QueueError, ReceivedMessage};
use rusqlite::{Connection, OptionalExtension, params};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Random once per process: message ids and receipt handles of different processes (and
/// runs) never meet.
fn salt() -> (u64, u64) {
    static SALT: OnceLock<(u64, u64)> = OnceLock::new();
    *SALT.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair())
}

/// A new message id: UUID-shaped, unique without a system call per message.
pub(super) fn message_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let (hi, lo) = salt();
    uuid::Uuid::from_u64_pair(hi, lo ^ NEXT.fetch_add(1, Ordering::Relaxed)).to_string()
}

/// A receipt handle: the row, a number no other receive of this process had, and this
/// process's salt. Deletes and visibility changes find the row by its key and match the
/// whole handle, so a handle of an earlier receive matches nothing (even when a receive
/// was uncounted and the next has the same receive count).
fn receipt(seq: i64) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{seq}:{}:{:x}",
        NEXT.fetch_add(1, Ordering::Relaxed),
        salt().0
    )
}

/// The row a receipt handle names, if it is one of ours.
fn receipt_row(handle: &str) -> Option<i64> {
    handle.split_once(':')?.0.parse().ok()
}

/// One message to insert.
#[derive(Debug)]
pub(super) struct Row {
    pub message_id: String,
    pub body: String,
    /// The attributes as JSON.
    pub attributes: String,
    pub delay: Duration,
    pub group: Option<String>,
    pub dedup_id: Option<String>,
    /// The most messages its group may hold once it is in ([`OutgoingMessage::group_cap`]).
    ///
    /// [`OutgoingMessage::group_cap`]: crate::ports::OutgoingMessage::group_cap
    pub group_cap: Option<u32>,
}

/// A queue's redrive policy, as SQS keeps it on the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redrive {
    pub dead_letter_queue: String,
    pub max_receive_count: u32,
}

/// What the writer runs inside a group commit's transaction, with the answer it gives.
pub(super) trait Operation: Send + std::fmt::Debug + 'static {
    type Output: Send + std::fmt::Debug + 'static;

    fn apply(&self, conn: &Connection, now: i64) -> rusqlite::Result<Self::Output>;

    /// The queue on which, once committed, it may have made a message receivable (its
    /// waiting receives are woken), if any.
    fn wakes(&self) -> Option<&str> {
        None
    }
}

/// Messages into a queue.
#[derive(Debug)]
pub(super) struct Insert {
    pub queue: String,
    pub rows: Vec<Row>,
}

/// Up to `max` visible messages out of a queue, invisible for `visibility`; one past its
/// redrive's receive count moves to the dead-letter queue instead.
#[derive(Debug)]
pub(super) struct Receive {
    pub queue: String,
    pub max: usize,
    pub visibility: Duration,
    pub redrive: Option<Redrive>,
}

/// Messages deleted by receipt handle; one result a handle.
#[derive(Debug)]
pub(super) struct Delete {
    pub queue: String,
    pub handles: Vec<String>,
}

/// Visibility changes by receipt handle; one result an entry.
#[derive(Debug)]
pub(super) struct ChangeVisibility {
    pub queue: String,
    pub entries: Vec<(String, Duration)>,
    pub receive: ReceiveCount,
}

/// What a visibility change does to the receive it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReceiveCount {
    /// It counts (a retry's delay: `ChangeMessageVisibility`).
    Counted,
    /// It does not (a release: its handle is spent, the next receive has this one's count).
    Uncounted,
}

impl Operation for Insert {
    /// `Err` when a row's group is full: then no row was inserted.
    type Output = Result<(), GroupFull>;

    fn apply(&self, conn: &Connection, now: i64) -> rusqlite::Result<Self::Output> {
        if let Some(full) = full_group(conn, &self.queue, &self.rows, now)? {
            return Ok(Err(full));
        }
        send(conn, &self.queue, &self.rows, now).map(Ok)
    }

    fn wakes(&self) -> Option<&str> {
        Some(&self.queue)
    }
}

impl Operation for Receive {
    type Output = Vec<ReceivedMessage>;

    fn apply(&self, conn: &Connection, now: i64) -> rusqlite::Result<Vec<ReceivedMessage>> {
        receive(
            conn,
            &self.queue,
            self.max,
            self.visibility,
            self.redrive.as_ref(),
            now,
        )
    }
}

impl Operation for Delete {
    type Output = Vec<Result<(), QueueError>>;

    fn apply(&self, conn: &Connection, _now: i64) -> rusqlite::Result<Self::Output> {
        delete(conn, &self.queue, &self.handles)
    }
}

impl Operation for ChangeVisibility {
    type Output = Vec<Result<(), QueueError>>;

    fn apply(&self, conn: &Connection, now: i64) -> rusqlite::Result<Self::Output> {
        change_visibility(conn, &self.queue, &self.entries, self.receive, now)
    }

    /// A message made visible at once can be received at once.
    fn wakes(&self) -> Option<&str> {
        self.entries
            .iter()
            .any(|(_, t)| t.is_zero())
            .then_some(self.queue.as_str())
    }
}

/// A message group at its cap, and when its head is due to be received again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GroupFull {
    pub group: String,
    pub queued: u64,
    pub cap: u32,
    /// Until the group's head is visible again (zero when it is visible now).
    pub head_due_in: Duration,
}

/// The first row whose group would hold more than its cap with the rows before it in
/// this send; rows whose deduplication id was seen within the window do not count (they
/// are accepted without being queued again). Counting reads the group's entries of the
/// group index only up to the cap.
fn full_group(
    conn: &Connection,
    queue: &str,
    rows: &[Row],
    now: i64,
) -> rusqlite::Result<Option<GroupFull>> {
    let mut count = conn.prepare_cached(
        "SELECT COUNT(*) FROM (SELECT 1 FROM messages WHERE queue = ?1 AND grp = ?2 LIMIT ?3)",
    )?;
    let mut seen =
        conn.prepare_cached("SELECT 1 FROM dedup WHERE queue = ?1 AND id = ?2 AND at >= ?3")?;
    let mut head = conn.prepare_cached(
        "SELECT visible_at FROM messages WHERE queue = ?1 AND grp = ?2 ORDER BY seq LIMIT 1",
    )?;
    let window_start = now - ms(DEDUP_WINDOW);
    let mut adding: Vec<(&str, u64)> = Vec::new();
    for row in rows {
        let (Some(group), Some(cap)) = (&row.group, row.group_cap) else {
            continue;
        };
        if let Some(d) = &row.dedup_id
            && seen.exists(params![queue, d, window_start])?
        {
            continue;
        }
        let before = match adding.iter_mut().find(|(g, _)| *g == group.as_str()) {
            Some((_, n)) => n,
            None => {
                adding.push((group.as_str(), 0));
                &mut adding.last_mut().expect("just pushed").1
            }
        };
        let queued: u64 =
            count.query_row(params![queue, group, i64::from(cap) + 1], |r| r.get(0))?;
        if queued + *before + 1 > u64::from(cap) {
            // In flight or waiting for its retry, the head is visible again (received, or
            // its retry due) at `visible_at`.
            let visible_at: i64 = head
                .query_row(params![queue, group], |r| r.get(0))
                .optional()?
                .unwrap_or(now);
            let due = (visible_at - now).max(0);
            return Ok(Some(GroupFull {
                group: group.clone(),
                queued,
                cap,
                head_due_in: Duration::from_millis(due as u64),
            }));
        }
        *before += 1;
    }
    Ok(None)
}

/// Inserts the rows. A grouped row is `blocked` when its group already has a message:
/// only a group's head is ever in the index receives read ([`super::db`]).
fn send(conn: &Connection, queue: &str, rows: &[Row], now: i64) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO messages (queue, message_id, body, attributes, sent_at, visible_at, grp, blocked)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,
                 ?7 IS NOT NULL AND EXISTS (SELECT 1 FROM messages WHERE queue = ?1 AND grp = ?7))",
    )?;
    let mut seen = conn.prepare_cached(
        "INSERT INTO dedup (queue, id, at) VALUES (?1, ?2, ?3)
         ON CONFLICT (queue, id) DO UPDATE SET at = excluded.at WHERE dedup.at < ?4",
    )?;
    let window_start = now - ms(DEDUP_WINDOW);
    for row in rows {
        // A deduplication id seen within the window: accepted, not queued again.
        if let Some(d) = &row.dedup_id
            && seen.execute(params![queue, d, now, window_start])? == 0
        {
            continue;
        }
        insert.execute(params![
            queue,
            row.message_id,
            row.body,
            row.attributes,
            now,
            now + ms(row.delay),
            row.group
        ])?;
    }
    Ok(())
}

/// The receive's query: a queue's visible heads in the order of the heads' index.
pub(super) const RECEIVE: &str = "SELECT seq, message_id, body, attributes, sent_at, receive_count, grp FROM messages AS m
         WHERE queue = ?1 AND blocked = 0 AND visible_at <= ?2
           AND (grp IS NULL OR NOT EXISTS (
                SELECT 1 FROM messages AS e WHERE e.queue = m.queue AND e.grp = m.grp AND e.seq < m.seq))
         ORDER BY visible_at, seq LIMIT ?3";

/// Up to `max` receivable messages, the earliest visible first; a grouped message only
/// when no earlier one of its group is left (in flight, waiting, or visible): FIFO order per
/// group. Only heads are read: the messages behind them are `blocked`, outside the index,
/// so a long group costs a receive nothing. A message at its max receive count moves to
/// the dead-letter queue instead (which unblocks the next of its group).
fn receive(
    conn: &Connection,
    queue: &str,
    max: usize,
    visibility: Duration,
    redrive: Option<&Redrive>,
    now: i64,
) -> rusqlite::Result<Vec<ReceivedMessage>> {
    // In the order of the heads' (queue, visible_at, seq) index: the first `max` visible
    // rows are the first ones it reads, however many messages wait behind them or are in
    // flight. The NOT EXISTS is the order's guard should a row be unblocked out of turn.
    let mut select = conn.prepare_cached(RECEIVE)?;
    let mut take = conn.prepare_cached(
        "UPDATE messages SET receive_count = receive_count + 1, visible_at = ?2, receipt = ?3 WHERE seq = ?1",
    )?;
    // A dead letter's retention counts from its arrival in the dead-letter queue.
    let mut move_dead = conn.prepare_cached(
        "UPDATE messages SET queue = ?2, receive_count = 0, visible_at = ?3, sent_at = ?3, receipt = NULL, grp = NULL WHERE seq = ?1",
    )?;
    let mut out = Vec::new();
    loop {
        type Found = (i64, String, String, String, i64, u32, Option<String>);
        let rows: Vec<Found> = select
            .query_map(params![queue, now, (max - out.len()) as i64], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        if rows.is_empty() {
            break;
        }
        for (seq, message_id, body, attrs, sent_at, count, group) in rows {
            if let Some(r) = redrive.filter(|r| count >= r.max_receive_count) {
                move_dead.execute(params![seq, r.dead_letter_queue, now])?;
                continue;
            }
            let receipt = receipt(seq);
            take.execute(params![seq, now + ms(visibility), receipt])?;
            out.push(ReceivedMessage {
                message_id,
                receipt_handle: receipt,
                body,
                attributes: serde_json::from_str(&attrs).unwrap_or_default(),
                receive_count: count + 1,
                sent_at_ms: sent_at,
                group,
            });
        }
        if out.len() >= max {
            break;
        }
    }
    Ok(out)
}

fn delete(
    conn: &Connection,
    queue: &str,
    handles: &[String],
) -> rusqlite::Result<Vec<Result<(), QueueError>>> {
    let mut delete =
        conn.prepare_cached("DELETE FROM messages WHERE seq = ?1 AND queue = ?2 AND receipt = ?3")?;
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        let Some(seq) = receipt_row(h) else {
            out.push(Err(QueueError::ReceiptInvalid(
                "not a receipt handle of this queue".to_owned(),
            )));
            continue;
        };
        // Like SQS, deleting an already deleted message (or through a handle made stale by
        // a later receive, which leaves the message to that receive) is not an error.
        delete.execute(params![seq, queue, h])?;
        out.push(Ok(()));
    }
    Ok(out)
}

fn change_visibility(
    conn: &Connection,
    queue: &str,
    entries: &[(String, Duration)],
    receive: ReceiveCount,
    now: i64,
) -> rusqlite::Result<Vec<Result<(), QueueError>>> {
    let mut change = conn.prepare_cached(if receive == ReceiveCount::Uncounted {
        "UPDATE messages SET visible_at = ?4, receive_count = MAX(receive_count - 1, 0), receipt = NULL
         WHERE seq = ?1 AND queue = ?2 AND receipt = ?3 AND visible_at > ?5"
    } else {
        "UPDATE messages SET visible_at = ?4 WHERE seq = ?1 AND queue = ?2 AND receipt = ?3 AND visible_at > ?5"
    })?;
    let mut out = Vec::with_capacity(entries.len());
    for (h, timeout) in entries {
        if *timeout > crate::retry::MAX_DELAY {
            out.push(Err(QueueError::BadRequest(
                "visibility timeout over 12h".to_owned(),
            )));
            continue;
        }
        let Some(seq) = receipt_row(h) else {
            out.push(Err(QueueError::ReceiptInvalid(
                "not a receipt handle of this queue".to_owned(),
            )));
            continue;
        };
        let changed = change.execute(params![seq, queue, h, now + ms(*timeout), now])?;
        out.push(if changed == 0 {
            Err(QueueError::ReceiptInvalid(
                "the message is not in flight".to_owned(),
            ))
        } else {
            Ok(())
        });
    }
    Ok(out)
}

/// Visible and in-flight messages of a queue (read on the store's reading connection). A
/// message waiting behind its group's head counts as visible, as SQS counts it.
pub(super) fn depth(conn: &Connection, queue: &str, now: i64) -> rusqlite::Result<QueueDepth> {
    let (visible, in_flight): (i64, i64) = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(visible_at <= ?2), 0), COALESCE(SUM(visible_at > ?2), 0)
             FROM messages WHERE queue = ?1 AND blocked = 0",
        )?
        .query_row(params![queue, now], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((0, 0));
    let blocked: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM messages WHERE queue = ?1 AND grp IS NOT NULL AND blocked = 1",
        )?
        .query_row(params![queue], |r| r.get(0))?;
    Ok(QueueDepth {
        visible: (visible + blocked) as u64,
        in_flight: in_flight as u64,
    })
}
