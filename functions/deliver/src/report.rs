//! What a batch reports once it is settled: a log line per message (naming its delivery
//! and event ids) and, when the sink wants them, the batch's metric documents.

use crate::deliverer::{Deliverer, HELD_BACK, Processed};
use crate::metrics::BatchMetrics;
use crate::settle::Settlement;
use router_core::retry::Disposition;
use std::time::Duration;

impl Deliverer {
    pub(crate) fn emit_metrics(&self, processed: &[Processed], settlement: &Settlement) {
        if !self.metrics.enabled() {
            return;
        }
        let mut metrics = BatchMetrics::default();
        let now_ms = router_core::time_fmt::now_ms();
        for p in processed {
            if let Disposition::Retry { .. } = p.disposition {
                let in_queue = now_ms.saturating_sub(p.msg.sent_at_ms).max(0);
                metrics.put_back(Duration::from_millis(in_queue as u64));
            }
            if let Some(latency) = p.latency {
                metrics.latency(&p.route, latency);
            }
            match &p.disposition {
                Disposition::Delivered { .. } => metrics.delivered(&p.route),
                // Held back behind an earlier delivery of its session: not an attempt.
                Disposition::Retry {
                    reason: HELD_BACK, ..
                } => {}
                Disposition::Retry { reason, .. } => {
                    metrics.retried(&p.route);
                    if *reason == "circuit_open" {
                        metrics.circuit_open(&p.route);
                    }
                }
                Disposition::DeadLetter(d)
                    if !settlement.unsent_dead_letters.contains(&p.msg.message_id) =>
                {
                    metrics.dead_lettered(&p.route, d.failure)
                }
                Disposition::DeadLetter(_) => {}
            }
        }
        for line in metrics.lines(now_ms) {
            self.metrics.emit(&line);
        }
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
            failure = reason,
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
