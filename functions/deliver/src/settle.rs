//! Stage 4 of a delivery, for the whole batch: retries parked for their delay (one
//! batched visibility change), waits put back without an attempt (one batched release:
//! in place where the queue can uncount a receive, else a copy that carries the attempt
//! count), dead letters copied to the DLQ, and the message ids to report as failed (what
//! stays on the queue: retries, waits kept in place, and dead letters the DLQ did not
//! take, so nothing is lost). Each message travels with its disposition: no index
//! bookkeeping.

use crate::stage::Processed;
use router_core::backends::{Backends, Pair};
use router_core::ports::{Queue, QueueError, ReceivedMessage};
use router_core::retry::{Disposition, MAX_DELAY};
use router_core::wire::dead_letter;
use std::collections::HashSet;
use std::time::Duration;

/// Kept free below SQS's 12 h visibility limit, which counts from the receive (made by
/// Lambda's poller shortly before this invocation).
const VISIBILITY_MARGIN: Duration = Duration::from_secs(300);

/// What settling a batch left to report.
#[derive(Debug, Default)]
pub struct Settlement {
    /// Message ids the host must not delete, in the batch's order.
    pub failed: Vec<String>,
    /// Message ids whose dead letter the DLQ did not take (they stay on the queue).
    pub unsent_dead_letters: HashSet<String>,
}

/// Settles a batch that has been `running` so far.
/// A message from the ordered routes' FIFO queue goes back to it and to its FIFO DLQ; every
/// other to the standard pair.
pub async fn settle(backends: &Backends, processed: &[Processed], running: Duration) -> Settlement {
    let cap = MAX_DELAY.saturating_sub(running + VISIBILITY_MARGIN);
    let of = |pair: Pair, kind: Kind| -> Vec<&Processed> {
        processed
            .iter()
            .filter(|p| Pair::of(&p.msg) == pair && Kind::of(&p.disposition) == Some(kind))
            .collect()
    };
    let (std, ord) = (Pair::Standard, Pair::Ordered);
    let (retries, ordered_retries) = (of(std, Kind::Retry), of(ord, Kind::Retry));
    let (waits, ordered_waits) = (of(std, Kind::Wait), of(ord, Kind::Wait));
    let (dead, ordered_dead) = (of(std, Kind::Dead), of(ord, Kind::Dead));
    let ((), (), waiting, ordered_waiting, unsent, ordered_unsent) = tokio::join!(
        park(backends.queue_for(std).as_ref(), &retries, cap),
        park(backends.queue_for(ord).as_ref(), &ordered_retries, cap),
        release(backends.queue_for(std).as_ref(), &waits, cap),
        release(backends.queue_for(ord).as_ref(), &ordered_waits, cap),
        copy_to_dlq(backends.dead_letters_for(std).as_ref(), &dead),
        copy_to_dlq(backends.dead_letters_for(ord).as_ref(), &ordered_dead),
    );
    let unsent: HashSet<String> = unsent.into_iter().chain(ordered_unsent).collect();
    let copied: HashSet<String> = waiting.into_iter().chain(ordered_waiting).collect();
    // In the batch's order: what stays on the queue.
    let failed = processed
        .iter()
        .filter(|p| match p.disposition {
            Disposition::Retry { .. } => true,
            Disposition::Wait { .. } => !copied.contains(&p.msg.message_id),
            Disposition::DeadLetter(_) => unsent.contains(&p.msg.message_id),
            Disposition::Delivered { .. } => false,
        })
        .map(|p| p.msg.message_id.clone())
        .collect();
    Settlement {
        failed,
        unsent_dead_letters: unsent,
    }
}

/// What settling does with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Retry,
    Wait,
    Dead,
}

impl Kind {
    fn of(d: &Disposition) -> Option<Kind> {
        match d {
            Disposition::Retry { .. } => Some(Kind::Retry),
            Disposition::Wait { .. } => Some(Kind::Wait),
            Disposition::DeadLetter(_) => Some(Kind::Dead),
            Disposition::Delivered { .. } => None,
        }
    }
}

/// Puts waiting messages back for their delay without an attempt; returns the ids of those
/// a copy replaced (the host deletes them). One that could not be put back returns after
/// its current visibility timeout (logged).
async fn release(queue: &dyn Queue, waiting: &[&Processed], cap: Duration) -> HashSet<String> {
    if waiting.is_empty() {
        return HashSet::new();
    }
    let entries: Vec<(&ReceivedMessage, Duration)> = waiting
        .iter()
        .map(|p| match &p.disposition {
            Disposition::Wait { delay, .. } => (&p.msg, (*delay).min(cap)),
            _ => (&p.msg, Duration::ZERO),
        })
        .collect();
    let mut copied = HashSet::new();
    for (p, result) in waiting.iter().zip(queue.release_batch(&entries).await) {
        let id = &p.msg.message_id;
        match result {
            Ok(released) if !released.stays() => {
                copied.insert(id.clone());
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(
                message_id = %id,
                error = %e,
                "could not put a waiting delivery back; it returns after its current visibility timeout"
            ),
        }
    }
    copied
}

/// Parks retried messages for their delay; a stale receipt handle is only logged.
async fn park(queue: &dyn Queue, retries: &[&Processed], cap: Duration) {
    if retries.is_empty() {
        return;
    }
    let entries: Vec<(String, Duration)> = retries
        .iter()
        .map(|p| match &p.disposition {
            Disposition::Retry { delay, .. } => (p.msg.receipt_handle.clone(), (*delay).min(cap)),
            _ => (p.msg.receipt_handle.clone(), Duration::ZERO),
        })
        .collect();
    let results = queue.change_visibility_batch(&entries).await;
    for (p, result) in retries.iter().zip(results) {
        let id = &p.msg.message_id;
        match result {
            Ok(()) => {}
            Err(QueueError::ReceiptInvalid(e)) => tracing::warn!(
                message_id = %id,
                error = %e,
                "receipt handle no longer valid; the message returns after its current visibility timeout"
            ),
            Err(e) => tracing::error!(
                message_id = %id,
                error = %e,
                "could not set the retry delay; the message returns after the queue's visibility timeout"
            ),
        }
    }
}

/// Copies dead letters to the DLQ; returns the ids of the messages whose copy it did not
/// take.
async fn copy_to_dlq(dlq: &dyn Queue, dead: &[&Processed]) -> HashSet<String> {
    let copies: Vec<_> = dead
        .iter()
        .filter_map(|p| match &p.disposition {
            Disposition::DeadLetter(d) => Some(dead_letter::message(&p.msg, d)),
            _ => None,
        })
        .collect();
    if copies.is_empty() {
        return HashSet::new();
    }
    let results = dlq.send(&copies).await;
    let mut unsent = HashSet::new();
    for (p, result) in dead.iter().zip(results) {
        if let Err(e) = result {
            tracing::error!(
                message_id = %p.msg.message_id,
                error = %e,
                "could not write to the DLQ; the message stays on the queue"
            );
            unsent.insert(p.msg.message_id.clone());
        }
    }
    unsent
}
