//! One queue message per delivery job ([`router_core::wire::queue`]), sent in as few
//! calls as SQS allows (split by count and size). Entries that fail for a passing reason
//! are sent once more; if any still fails the caller gets 503 and must retry the whole
//! trigger (which may enqueue some deliveries twice: receivers drop those by
//! `webhook-id`). A message the queue will never take is [`EnqueueError::Refused`]: a
//! 4xx, since retrying cannot help.

use router_core::ports::{OutgoingMessage, Queue, QueueError};
use router_core::wire::queue::MAX_JOB_BYTES;
use std::time::Duration;

impl EnqueueError {
    /// A [`EnqueueError::SessionFull`] names its route instead of its message group
    /// (`groups`: each sent message's group and route).
    pub fn naming_routes(self, groups: &[(String, String)]) -> Self {
        match self {
            Self::SessionFull {
                route,
                queued,
                cap,
                retry_after,
            } => Self::SessionFull {
                route: groups
                    .iter()
                    .find(|(g, _)| *g == route)
                    .map_or(route, |(_, r)| r.clone()),
                queued,
                cap,
                retry_after,
            },
            other => other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnqueueError {
    /// A message is larger than the queue takes (with room for its dead-letter copy).
    #[error("a delivery message is {size} bytes; the queue takes at most {limit}")]
    TooLarge { size: usize, limit: usize },
    /// The queue refuses a message for good (its content breaks a queue limit).
    #[error("the queue refuses the event: {0}")]
    Refused(String),
    /// An ordered route's session holds its cap of queued deliveries: nothing was queued.
    /// `route` is the message group until [`EnqueueError::naming_routes`] names it.
    #[error(
        "ordered route {route}: the session holds {queued} queued deliveries, its cap is {cap}"
    )]
    SessionFull {
        route: String,
        queued: u64,
        cap: u32,
        /// Until the session's oldest delivery is next attempted.
        retry_after: Duration,
    },
    /// The queue did not take every message now; a retry may succeed.
    #[error("{failed} of {total} messages were not accepted: {reason}")]
    Unavailable {
        failed: usize,
        total: usize,
        reason: String,
    },
}

/// Checks every message fits before anything is sent, so nothing is half-queued for an
/// event that can never be queued whole.
pub fn check(messages: &[OutgoingMessage]) -> Result<(), EnqueueError> {
    for m in messages {
        let size = router_core::ports::limits::message_size(m);
        if size > MAX_JOB_BYTES {
            return Err(EnqueueError::TooLarge {
                size,
                limit: MAX_JOB_BYTES,
            });
        }
        router_core::ports::limits::check_message(m).map_err(EnqueueError::Refused)?;
    }
    Ok(())
}

/// Sends every message, retrying failed entries once. `Ok` only when all were accepted.
/// The caller has [`check`]ed them (every list of an event, before any is sent).
pub async fn send_all(
    queue: &dyn Queue,
    messages: Vec<OutgoingMessage>,
) -> Result<(), EnqueueError> {
    let total = messages.len();
    let mut pending = messages;
    let mut last: Option<QueueError> = None;
    for _try in 0..2 {
        let results = queue.send(&pending).await;
        let mut still = Vec::new();
        for (m, r) in pending.into_iter().zip(results) {
            match r {
                Ok(()) => {}
                Err(QueueError::GroupFull {
                    group,
                    queued,
                    cap,
                    head_due_in,
                }) => {
                    return Err(EnqueueError::SessionFull {
                        route: group,
                        queued,
                        cap,
                        retry_after: head_due_in,
                    });
                }
                Err(e) if e.is_permanent() => return Err(EnqueueError::Refused(e.to_string())),
                Err(e) => {
                    last = Some(e);
                    still.push(m);
                }
            }
        }
        pending = still;
        if pending.is_empty() {
            return Ok(());
        }
    }
    Err(EnqueueError::Unavailable {
        failed: pending.len(),
        total,
        reason: last.map(|e| e.to_string()).unwrap_or_default(),
    })
}
