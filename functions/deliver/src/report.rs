//! What a batch reports once it is settled: a log line per message (naming its delivery
//! and event ids) and, when the sink wants them, the batch's metric documents.

use crate::metrics::{BatchMetrics, MetricsSink};
use crate::settle::Settlement;
use crate::stage::Processed;
use router_core::retry::{Disposition, WaitReason};
use std::time::Duration;

/// The batch's metric documents into `sink` (when it wants them).
pub(crate) fn emit_metrics(
    sink: &dyn MetricsSink,
    processed: &[Processed],
    settlement: &Settlement,
) {
    if !sink.enabled() {
        return;
    }
    let mut metrics = BatchMetrics::default();
    let now_ms = router_core::time_fmt::now_ms();
    for p in processed {
        if let Disposition::Retry { .. } | Disposition::Wait { .. } = p.disposition {
            let sent = router_core::wire::queue::first_sent_ms(&p.msg);
            let in_queue = now_ms.saturating_sub(sent).max(0);
            metrics.put_back(Duration::from_millis(in_queue as u64));
        }
        if let Some(latency) = p.latency {
            metrics.latency(&p.route, latency);
        }
        match &p.disposition {
            Disposition::Delivered { .. } => metrics.delivered(&p.route),
            // Waits are no attempts: only a circuit's refusals are counted.
            Disposition::Wait {
                reason: WaitReason::CircuitOpen,
                ..
            } => metrics.circuit_open(&p.route),
            Disposition::Wait { .. } => {}
            Disposition::Retry { .. } => metrics.retried(&p.route),
            Disposition::DeadLetter(d)
                if !settlement.unsent_dead_letters.contains(&p.msg.message_id) =>
            {
                metrics.dead_lettered(&p.route, d.failure)
            }
            Disposition::DeadLetter(_) => {}
        }
    }
    for line in metrics.lines(now_ms) {
        sink.emit(&line);
    }
}

pub(crate) fn log(p: &Processed) {
    let latency_ms = p.latency.map(|l| l.as_secs_f64() * 1e3);
    match &p.disposition {
        Disposition::Delivered { status } => tracing::info!(
            delivery_id = %p.delivery_id,
            event_id = %p.event_id,
            route = %p.route,
            attempt = p.attempt,
            status,
            latency_ms,
            "delivered"
        ),
        Disposition::Wait {
            delay,
            reason,
            error,
        } => tracing::info!(
            delivery_id = %p.delivery_id,
            event_id = %p.event_id,
            route = %p.route,
            attempt = p.attempt,
            reason = reason.as_str(),
            retry_in_s = delay.as_secs(),
            error = %error,
            "waiting; no attempt spent"
        ),
        Disposition::Retry {
            delay,
            reason,
            status,
            error,
        } => tracing::warn!(
            delivery_id = %p.delivery_id,
            event_id = %p.event_id,
            route = %p.route,
            attempt = p.attempt,
            status,
            latency_ms,
            failure = reason.as_str(),
            retry_in_s = delay.as_secs(),
            error = %error,
            "attempt failed; retrying"
        ),
        Disposition::DeadLetter(d) => tracing::warn!(
            delivery_id = %p.delivery_id,
            event_id = %p.event_id,
            route = %p.route,
            attempt = p.attempt,
            status = d.last_status,
            latency_ms,
            failure = d.failure.as_str(),
            error = %d.last_error,
            "giving up; copying to the dead-letter queue"
        ),
    }
}
