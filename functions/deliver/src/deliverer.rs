//! The deliver handler: a batch of queue messages in, the ids to report as failed out.
//!
//! Each message goes through the stages (concurrently with the others of its batch):
//! [`prepare`](crate::prepare) (parse, route, age) -> [`attempt`](crate::attempt) (enrich,
//! render, sign, send) -> [`decide`] (the pure retry decision) -> logged; then the batch
//! is [`settle`](crate::settle)d (visibility changes, DLQ copies) and its metrics written.

use crate::auth::Credentials;
use crate::guard::{GuardedResolver, Lookup, SystemLookup};
use crate::http;
use crate::metrics::{MetricsSink, StdoutSink};
use crate::prepare::{self, Ended, MAX_LABEL_CHARS, Ready};
use crate::sender::Sender;
use crate::settle::settle;
use crate::stage::{Attempt, Processed};
use futures_util::future::join_all;
use router_core::backends::Backends;
use router_core::breaker::Breakers;
use router_core::ports::ReceivedMessage;
use router_core::retry::{Attempted, Disposition, Outcome, RetryPolicy, WaitReason, decide};
use router_core::routes::{Route, Routes};
use router_core::text::bounded;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::Semaphore;

/// Building the deliverer failed (the HTTP client could not be set up).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the HTTP client: {0}")]
pub struct BuildError(#[from] reqwest::Error);

/// Everything a batch needs, built once per cold start and shared by every invocation.
#[derive(Debug)]
pub struct Deliverer {
    /// The routes, the HTTP client, credentials, breakers: what every request needs.
    sender: Sender,
    backends: Backends,
    /// Routes with `max_in_flight`: their free slots in this process.
    slots: HashMap<String, Arc<Semaphore>>,
}

/// A route targets a path on the router itself and no base URL says where that is.
#[derive(Debug, thiserror::Error)]
#[error(
    "route `{0}` targets a path on this router, but its address is unknown: set ROUTER_BASE_URL"
)]
pub struct NoRouterBase(pub String);

/// Kept free before an invocation's deadline: settling the batch (visibility changes,
/// DLQ copies) and answering Lambda.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(3);

/// A message not attempted because an earlier one of its group did not succeed: it waits
/// (no attempt), visible again at once; the queue hands it out only after the earlier one
/// (in flight for its retry delay) is settled, so the group stays in order.
fn held_back(msg: ReceivedMessage) -> Processed {
    let job = router_core::domain::DeliveryJob::parse(&msg.body).ok();
    tracing::debug!(message_id = %msg.message_id, "held back behind an earlier delivery of its session");
    Processed {
        route: job
            .as_ref()
            .map_or_else(|| "unknown".to_owned(), |j| j.route.to_string()),
        event_id: job
            .as_ref()
            .map_or_else(|| "-".to_owned(), |j| j.event_id.as_str().to_owned()),
        delivery_id: job.map(|j| j.delivery_id).unwrap_or_default(),
        attempt: router_core::wire::queue::attempt(&msg),
        latency: None,
        disposition: Disposition::Wait {
            delay: Duration::ZERO,
            reason: WaitReason::HeldBack,
            error: "held back: an earlier delivery of its session has not succeeded yet".to_owned(),
        },
        follow_up: None,
        msg,
    }
}

fn deferred() -> Attempted {
    Attempted::new(
        Outcome::Deferred,
        "not started: it could not finish before the invocation's deadline",
    )
}

/// The policy of a message that ended before its attempt: nothing is retried.
const NO_RETRIES: RetryPolicy = RetryPolicy {
    schedule: Vec::new(),
    max_age: Duration::ZERO,
};

impl Deliverer {
    /// `allow_private_env` is the environment's `ALLOW_PRIVATE_TARGETS`; the routes file's
    /// `[delivery] allow_private_targets` is ORed in.
    pub fn new(
        routes: Arc<Routes>,
        backends: Backends,
        allow_private_env: bool,
    ) -> Result<Self, BuildError> {
        Self::with_lookup(routes, backends, allow_private_env, Arc::new(SystemLookup))
    }

    /// As [`Deliverer::new`], resolving names through `lookup` (tests use a table).
    pub fn with_lookup(
        routes: Arc<Routes>,
        backends: Backends,
        allow_private_env: bool,
        lookup: Arc<dyn Lookup>,
    ) -> Result<Self, BuildError> {
        let allow_private = allow_private_env || routes.allow_private_targets();
        let client = http::client(GuardedResolver::new(allow_private, lookup))?;
        let credentials = Credentials::new(backends.secrets.clone(), routes.auth.clone());
        let slots = routes
            .routes()
            .iter()
            .filter_map(|r| {
                let n = r.max_in_flight? as usize;
                Some((r.name.as_str().to_owned(), Arc::new(Semaphore::new(n))))
            })
            .collect();
        Ok(Self {
            sender: Sender {
                routes,
                client,
                credentials,
                allow_private,
                metrics: Arc::new(StdoutSink),
                breakers: Arc::new(Breakers::default()),
                router_base: None,
                router_origin: None,
                limiters: Default::default(),
                rate_share: 1,
            },
            backends,
            slots,
        })
    }

    /// Splits every rate limit between `share` processes that share no memory (Lambda
    /// containers); an error naming each limit too small to split.
    pub fn with_rate_share(mut self, share: u32) -> Result<Self, String> {
        let routes = &self.sender.routes;
        let mut small = Vec::new();
        for route in routes.routes() {
            for reply_job in [false, true] {
                for (name, limit) in routes.rate_limits(route, reply_job) {
                    if limit.share(share).is_none() && !small.contains(&name) {
                        small.push(name);
                    }
                }
            }
        }
        if !small.is_empty() {
            return Err(format!(
                "the rate limits of {} allow fewer requests per window than the {share} \
                 containers that may deliver at once, so they cannot be split between them: \
                 raise `requests` (and `per` with it) or lower DeliverMaxConcurrency",
                small.join(", ")
            ));
        }
        self.sender.rate_share = share.max(1);
        Ok(self)
    }

    /// Sends the per-batch metric lines to `sink` instead of stdout.
    pub fn with_metrics(mut self, sink: Arc<dyn MetricsSink>) -> Self {
        self.sender.metrics = sink;
        self
    }

    /// Where the router's own API is (`ROUTER_BASE_URL` on Lambda, `serve`'s address):
    /// routes whose `target_url` is a path deliver there, past the private-target guard (the
    /// operator set it, no event can). Without one, such a route is an error.
    pub fn with_router_base(mut self, base: Option<url::Url>) -> Result<Self, NoRouterBase> {
        if base.is_none()
            && let Some(r) = self
                .sender
                .routes
                .routes()
                .iter()
                .find(|r| matches!(r.target, router_core::routes::Target::Router(_)))
        {
            return Err(NoRouterBase(r.name.to_string()));
        }
        self.sender.router_origin = base.as_ref().map(|b| b.origin().ascii_serialization());
        self.sender.router_base = base;
        Ok(self)
    }

    /// Reads secrets (auth headers, the signing key, URL tokens) again after `reread`
    /// (default [`router_core::secrets::SECRET_REREAD`]).
    pub fn with_secret_reread(mut self, reread: std::time::Duration) -> Self {
        self.sender.credentials = self.sender.credentials.with_secret_reread(reread);
        self
    }

    pub fn allow_private_targets(&self) -> bool {
        self.sender.allow_private
    }

    /// The circuits of this process (for a health endpoint).
    pub fn breakers(&self) -> Arc<Breakers> {
        self.sender.breakers.clone()
    }

    /// Delivers a batch; returns the message ids to report as failed (retries, and
    /// dead letters that could not be written). Every other record may be deleted.
    pub async fn handle_batch(&self, records: Vec<ReceivedMessage>) -> Vec<String> {
        self.handle_batch_until(records, None).await
    }

    /// As [`Deliverer::handle_batch`], never starting an attempt that could not finish
    /// before `deadline` (minus [`DEADLINE_MARGIN`]): such a message is deferred (back in
    /// a second, reported failed), so an invocation never times out with work half done.
    pub async fn handle_batch_until(
        &self,
        records: Vec<ReceivedMessage>,
        deadline: Option<Instant>,
    ) -> Vec<String> {
        let started = Instant::now();
        let queue = self.backends.queue.as_ref();
        let mut processed: Vec<Processed> = match <[_; 1]>::try_from(records) {
            // One message without a group (`serve` hands them over one by one): processed
            // in place, without the join's allocations.
            Ok([msg]) if msg.group.is_none() => vec![self.process(msg, deadline).await],
            Ok(one) => self.process_all(one.into(), deadline).await,
            Err(records) => self.process_all(records, deadline).await,
        };
        crate::reply::queue_follow_ups(queue, &mut processed).await;
        let settlement = settle(&self.backends, &processed, started.elapsed()).await;
        crate::report::emit_metrics(self.sender.metrics.as_ref(), &processed, &settlement);
        settlement.failed
    }

    /// Every message of a batch: those without a group concurrently, each group in order.
    async fn process_all(
        &self,
        records: Vec<ReceivedMessage>,
        deadline: Option<Instant>,
    ) -> Vec<Processed> {
        let (singles, groups) = router_core::ports::by_group(records);
        let singles = join_all(singles.into_iter().map(|m| self.process(m, deadline)));
        let groups = join_all(groups.into_iter().map(|g| self.process_group(g, deadline)));
        let (singles, groups) = tokio::join!(singles, groups);
        singles
            .into_iter()
            .chain(groups.into_iter().flatten())
            .collect()
    }

    /// One message group of a FIFO batch, in order (Lambda's FIFO rule): at the first
    /// message that is not delivered now (retried, deferred, or dead-lettered), the rest of
    /// its group are not attempted; they go back behind it at once, so the session's order
    /// holds. A dead letter lets the next go only once the DLQ took it (at settling): if
    /// the copy fails, the message stays the group's head. Replies are queued before the
    /// next message goes.
    async fn process_group(
        &self,
        messages: Vec<ReceivedMessage>,
        deadline: Option<Instant>,
    ) -> Vec<Processed> {
        let mut out = Vec::with_capacity(messages.len());
        let mut held = false;
        for msg in messages {
            if held {
                out.push(held_back(msg));
                continue;
            }
            let mut p = self.process(msg, deadline).await;
            crate::reply::queue_follow_ups(
                self.backends.queue.as_ref(),
                std::slice::from_mut(&mut p),
            )
            .await;
            held = !matches!(p.disposition, Disposition::Delivered { .. });
            out.push(p);
        }
        out
    }

    /// One message through its stages, logged.
    async fn process(&self, msg: ReceivedMessage, deadline: Option<Instant>) -> Processed {
        let attempt = router_core::wire::queue::attempt(&msg);
        let p = match prepare::prepare(&self.sender.routes, &msg, OffsetDateTime::now_utc())
            .map_err(|e| *e)
        {
            Err(Ended {
                route,
                delivery_id,
                event_id,
                attempted,
            }) => Processed {
                disposition: decide(&attempted, &NO_RETRIES, attempt, Duration::ZERO),
                route: bounded(&route, MAX_LABEL_CHARS),
                delivery_id,
                event_id,
                attempt,
                latency: None,
                msg,
                follow_up: None,
            },
            Ok(ready) => {
                let done = self.attempt_in_time(&ready, deadline).await;
                let disposition =
                    decide(&done.attempted, ready.policy, ready.attempt, ready.elapsed);
                let follow_up = crate::reply::follow_up(&ready, &disposition, done.response);
                Processed {
                    disposition,
                    route: ready.job.route.as_str().to_owned(),
                    event_id: ready.job.event_id.as_str().to_owned(),
                    delivery_id: ready.job.delivery_id,
                    attempt: ready.attempt,
                    latency: done.latency,
                    msg,
                    follow_up,
                }
            }
        };
        crate::report::log(&p);
        p
    }

    /// The attempt, once the route has a free slot (`max_in_flight`: waiting for one is
    /// not an attempt) and if it can finish before the deadline.
    async fn attempt_in_time(&self, ready: &Ready<'_>, deadline: Option<Instant>) -> Attempt {
        let latest_start = deadline.map(|d| {
            d.checked_sub(DEADLINE_MARGIN + self.longest_attempt(ready.route))
                .unwrap_or_else(Instant::now)
        });
        let _slot = match self.slots.get(ready.route.name.as_str()) {
            None => None,
            Some(slots) => {
                let wait = slots.clone().acquire_owned();
                match latest_start {
                    None => wait.await.ok(),
                    Some(at) => match tokio::time::timeout_at(at.into(), wait).await {
                        Ok(permit) => permit.ok(),
                        Err(_) => return Attempt::ended(deferred()),
                    },
                }
            }
        };
        if latest_start.is_some_and(|at| Instant::now() > at) {
            return Attempt::ended(deferred());
        }
        crate::attempt::attempt(&self.sender, ready).await
    }

    /// The longest one attempt on `route` can take: the enrich lookup and the delivery,
    /// each possibly sent twice on an oauth2 profile (the resend after a 401/403).
    fn longest_attempt(&self, route: &Route) -> Duration {
        let times = |auth: Option<&str>| {
            if auth.is_some_and(|p| self.sender.credentials.is_oauth2(p)) {
                2
            } else {
                1
            }
        };
        let enrich = route
            .enrich
            .as_ref()
            .map_or(Duration::ZERO, |e| e.timeout * times(e.auth.as_deref()));
        enrich + route.timeout * times(route.auth.as_deref())
    }
}
