//! The deliver handler: a batch of queue messages in, the ids to report as failed out.
//!
//! Per record (concurrently): parse the job, find its route, check `max_age`, run the
//! `enrich` lookup, render, sign, add the route's auth header, POST, and classify the
//! outcome with [`router_core::retry`]. Then, for the whole batch:
//! - delivered, or copied to the DLQ: not returned (the host deletes it);
//! - retry: its visibility is set to the delay (one batched call), and it is returned;
//! - a DLQ copy that could not be sent: returned, so the message is never lost.
//!
//! The attempt number is the message's receive count. A message's age is counted from
//! the later of its `received_at` and the time it was sent to this queue, so a message an
//! operator redrives from the DLQ gets a fresh `max_age` instead of expiring at once.

use crate::auth::Credentials;
use crate::guard::{GuardedResolver, Lookup, SystemLookup};
use crate::http::{self, Attempt};
use crate::metrics::{BatchMetrics, MetricsSink, StdoutSink};
use futures_util::future::join_all;
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use router_core::backends::Backends;
use router_core::domain::DeliveryJob;
use router_core::ports::{OutgoingMessage, QueueError, ReceivedMessage};
use router_core::render::RenderError;
use router_core::retry::{Failure, MAX_DELAY, NextStep, Verdict, classify, is_expired, next_step};
use router_core::routes::{Enrich, Route, Routes};
use router_core::signing::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// `last_error` is cut to this many characters.
pub const MAX_ERROR_CHARS: usize = 256;
/// SQS holds at most this many attributes on a message.
const MAX_ATTRIBUTES: usize = 10;
/// Kept free below SQS's 12 h visibility limit, which counts from the receive (made by
/// Lambda's poller shortly before this invocation).
const VISIBILITY_MARGIN: Duration = Duration::from_secs(300);
/// The dimension used when a message names no route.
const NO_ROUTE: &str = "unknown";

/// Building the deliverer failed (the HTTP client could not be set up).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the HTTP client: {0}")]
pub struct BuildError(#[from] reqwest::Error);

/// Everything a batch needs, built once per cold start and shared by every invocation.
pub struct Deliverer {
    routes: Arc<Routes>,
    backends: Backends,
    client: reqwest::Client,
    credentials: Credentials,
    allow_private: bool,
    metrics: Arc<dyn MetricsSink>,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer")
            .field("routes", &self.routes.routes().len())
            .field("allow_private", &self.allow_private)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// Why a message goes to the DLQ (its `failure`, `attempts`, `last_status`, `last_error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub failure: Failure,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: String,
}

/// What one attempt came to, before the schedule is consulted.
#[derive(Debug)]
enum Step {
    Delivered {
        status: u16,
    },
    Retry {
        reason: &'static str,
        retry_after: Option<Duration>,
        status: Option<u16>,
        error: String,
    },
    Permanent {
        failure: Failure,
        status: Option<u16>,
        error: String,
    },
}

impl Step {
    fn permanent(failure: Failure, error: impl Into<String>) -> Self {
        Self::Permanent {
            failure,
            status: None,
            error: error.into(),
        }
    }

    fn retry(reason: &'static str, error: impl Into<String>) -> Self {
        Self::Retry {
            reason,
            retry_after: None,
            status: None,
            error: error.into(),
        }
    }

    fn prefixed(self, prefix: &str) -> Self {
        match self {
            Self::Retry {
                reason,
                retry_after,
                status,
                error,
            } => Self::Retry {
                reason,
                retry_after,
                status,
                error: format!("{prefix}{error}"),
            },
            Self::Permanent {
                failure,
                status,
                error,
            } => Self::Permanent {
                failure,
                status,
                error: format!("{prefix}{error}"),
            },
            other => other,
        }
    }
}

/// What happens to a message.
#[derive(Debug)]
enum Disposition {
    Delivered {
        status: u16,
    },
    Retry {
        delay: Duration,
        reason: &'static str,
        status: Option<u16>,
        error: String,
    },
    DeadLetter(DeadLetter),
}

/// One record after its attempt.
#[derive(Debug)]
struct Processed {
    route: String,
    delivery_id: String,
    attempt: u32,
    /// The delivery request's latency, when one was made.
    latency: Option<Duration>,
    disposition: Disposition,
}

/// The answer of [`Deliverer::call`]: the step, the request's latency, the 2xx body if kept.
struct Called {
    step: Step,
    latency: Option<Duration>,
    body: Option<Vec<u8>>,
}

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
        let user_agent = format!("cognigy-webhook-router/{}", router_core::VERSION);
        let client = http::client(GuardedResolver::new(allow_private, lookup), &user_agent)?;
        let credentials = Credentials::new(backends.secrets.clone(), routes.auth.clone());
        Ok(Self {
            routes,
            backends,
            client,
            credentials,
            allow_private,
            metrics: Arc::new(StdoutSink),
        })
    }

    /// Sends the per-batch metric lines to `sink` instead of stdout.
    pub fn with_metrics(mut self, sink: Arc<dyn MetricsSink>) -> Self {
        self.metrics = sink;
        self
    }

    pub fn allow_private_targets(&self) -> bool {
        self.allow_private
    }

    /// Delivers a batch; returns the message ids to report as failed (retries, and
    /// dead letters that could not be written). Every other record may be deleted.
    pub async fn handle_batch(&self, records: Vec<ReceivedMessage>) -> Vec<String> {
        let started = Instant::now();
        let processed = join_all(records.iter().map(|m| self.process(m))).await;

        let cap = MAX_DELAY.saturating_sub(started.elapsed() + VISIBILITY_MARGIN);
        let mut retries = Vec::new();
        let mut dead = Vec::new();
        for (i, (msg, p)) in records.iter().zip(&processed).enumerate() {
            match &p.disposition {
                Disposition::Delivered { .. } => {}
                Disposition::Retry { delay, .. } => {
                    retries.push((i, (msg.receipt_handle.clone(), (*delay).min(cap))))
                }
                Disposition::DeadLetter(d) => dead.push((i, dead_letter_message(msg, d))),
            }
        }
        let ((), unsent) = tokio::join!(
            self.change_visibility(&records, &retries),
            self.send_dead_letters(&records, dead),
        );

        let mut metrics = BatchMetrics::default();
        for (i, p) in processed.iter().enumerate() {
            if let Some(latency) = p.latency {
                metrics.latency(&p.route, latency);
            }
            match &p.disposition {
                Disposition::Delivered { .. } => metrics.delivered(&p.route),
                Disposition::Retry { .. } => metrics.retried(&p.route),
                Disposition::DeadLetter(d) if !unsent.contains(&i) => {
                    metrics.dead_lettered(&p.route, d.failure)
                }
                Disposition::DeadLetter(_) => {}
            }
        }
        let now_ms = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        for line in metrics.lines(now_ms) {
            self.metrics.emit(&line);
        }

        let failed: HashSet<usize> = retries.iter().map(|(i, _)| *i).chain(unsent).collect();
        records
            .into_iter()
            .enumerate()
            .filter(|(i, _)| failed.contains(i))
            .map(|(_, m)| m.message_id)
            .collect()
    }

    /// Parks retried messages for their delay; a stale receipt handle is only logged.
    async fn change_visibility(
        &self,
        records: &[ReceivedMessage],
        retries: &[(usize, (String, Duration))],
    ) {
        if retries.is_empty() {
            return;
        }
        let entries: Vec<(String, Duration)> = retries.iter().map(|(_, e)| e.clone()).collect();
        let results = self.backends.queue.change_visibility_batch(&entries).await;
        for ((i, _), result) in retries.iter().zip(results) {
            let id = &records[*i].message_id;
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

    /// Copies dead letters to the DLQ; returns the records whose copy was not accepted.
    async fn send_dead_letters(
        &self,
        records: &[ReceivedMessage],
        dead: Vec<(usize, OutgoingMessage)>,
    ) -> Vec<usize> {
        if dead.is_empty() {
            return Vec::new();
        }
        let (indices, messages): (Vec<usize>, Vec<OutgoingMessage>) = dead.into_iter().unzip();
        let results = self.backends.dead_letters.send(&messages).await;
        let mut unsent = Vec::new();
        for (i, result) in indices.into_iter().zip(results) {
            if let Err(e) = result {
                tracing::error!(
                    message_id = %records[i].message_id,
                    error = %e,
                    "could not write to the DLQ; the message stays on the queue"
                );
                unsent.push(i);
            }
        }
        unsent
    }

    /// One record: everything up to the disposition, logged.
    async fn process(&self, msg: &ReceivedMessage) -> Processed {
        let attempt = msg.receive_count.max(1);
        let p = match parse_job(&msg.body) {
            Err(error) => {
                // Named by its attributes, when it has them.
                let attr = |k: &str| msg.attributes.get(k).map(|v| bounded(v, 128));
                Processed {
                    route: attr("route").unwrap_or_else(|| NO_ROUTE.to_owned()),
                    delivery_id: attr("delivery_id").unwrap_or_default(),
                    attempt,
                    latency: None,
                    disposition: dead(Failure::Malformed, attempt - 1, None, error),
                }
            }
            Ok(job) => {
                let (disposition, latency) = match self.routes.get(&job.route) {
                    Some(route) => self.deliver(&job, route, msg, attempt).await,
                    None => {
                        let error = format!(
                            "route `{}` is not in the routes file",
                            bounded(&job.route, 128)
                        );
                        (dead(Failure::UnknownRoute, attempt - 1, None, error), None)
                    }
                };
                Processed {
                    route: bounded_owned(job.route, 128),
                    delivery_id: job.delivery_id,
                    attempt,
                    latency,
                    disposition,
                }
            }
        };
        log(&p);
        p
    }

    /// A parsed job on a known route: the age check, the attempt, the schedule.
    async fn deliver(
        &self,
        job: &DeliveryJob,
        route: &Route,
        msg: &ReceivedMessage,
        attempt: u32,
    ) -> (Disposition, Option<Duration>) {
        let elapsed = age(job, msg, OffsetDateTime::now_utc());
        if is_expired(&route.retry, elapsed) {
            let error = format!(
                "max_age of {} had passed before attempt {attempt} (received {})",
                human(route.retry.max_age),
                job.received_at
            );
            return (dead(Failure::Expired, attempt - 1, None, error), None);
        }
        let (step, latency) = self.attempt(job, route, attempt).await;
        let disposition = match step {
            Step::Delivered { status } => Disposition::Delivered { status },
            Step::Permanent {
                failure,
                status,
                error,
            } => dead(failure, attempt, status, error),
            Step::Retry {
                reason,
                retry_after,
                status,
                error,
            } => match next_step(&route.retry, attempt, elapsed, retry_after) {
                NextStep::RetryIn(delay) => Disposition::Retry {
                    delay,
                    reason,
                    status,
                    error,
                },
                NextStep::GiveUp(failure) => dead(failure, attempt, status, error),
            },
        };
        (disposition, latency)
    }

    /// One attempt: enrich, render, sign, POST.
    async fn attempt(
        &self,
        job: &DeliveryJob,
        route: &Route,
        attempt: u32,
    ) -> (Step, Option<Duration>) {
        let now = OffsetDateTime::now_utc();
        let external = match &route.enrich {
            None => None,
            Some(enrich) => match self.enrich(job, route, enrich, attempt, now).await {
                Ok(v) => Some(v),
                Err(step) => return (step, None),
            },
        };
        let ctx = Routes::context(job, attempt, now, external.as_ref());
        let body = match self.routes.render_payload(route, &ctx) {
            Ok(body) => body,
            Err(e @ RenderError::TooLarge { .. }) => {
                return (Step::permanent(Failure::TooLarge, e.to_string()), None);
            }
            Err(e) => return (Step::permanent(Failure::Render, e.to_string()), None),
        };
        let timestamp = now.unix_timestamp();
        let mut headers = HeaderMap::with_capacity(8);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(HEADER_TIMESTAMP, HeaderValue::from(timestamp));
        if let Ok(id) = HeaderValue::from_str(&job.delivery_id) {
            headers.insert(HEADER_ID, id);
        }
        if let Some(signing) = &self.routes.signing {
            let signature = match self.credentials.signer(&signing.secret).await {
                Ok(signer) => signer.sign(&job.delivery_id, timestamp, &body),
                Err(e) => return (Step::retry("signing_key", e.to_string()), None),
            };
            match HeaderValue::from_str(&signature) {
                Ok(v) => headers.insert(HEADER_SIGNATURE, v),
                Err(_) => return (Step::retry("signing_key", "unusable signature"), None),
            };
        }
        let request = http::Request {
            method: Method::POST,
            url: &route.target_url,
            headers,
            body: Some(body),
            timeout: route.timeout,
            keep_body: false,
        };
        let called = self.request(route.auth.as_deref(), request).await;
        (called.step, called.latency)
    }

    /// The `enrich` lookup: its JSON answer, or the step that ends this attempt.
    async fn enrich(
        &self,
        job: &DeliveryJob,
        route: &Route,
        enrich: &Enrich,
        attempt: u32,
        now: OffsetDateTime,
    ) -> Result<serde_json::Value, Step> {
        let ctx = Routes::context(job, attempt, now, None);
        let url = self
            .routes
            .render_enrich_url(route, &ctx)
            .map_err(|e| Step::permanent(Failure::Render, format!("enrich url: {e}")))?;
        let mut headers = HeaderMap::with_capacity(4);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let request = http::Request {
            method: Method::GET,
            url: &url,
            headers,
            body: None,
            timeout: enrich.timeout,
            keep_body: true,
        };
        let called = self.request(enrich.auth.as_deref(), request).await;
        match (called.step, called.body) {
            (Step::Delivered { .. }, Some(body)) => serde_json::from_slice(&body).map_err(|_| {
                Step::permanent(Failure::Render, "enrich lookup: the answer is not JSON")
            }),
            (Step::Delivered { status }, None) => Err(Step::permanent(
                Failure::Render,
                format!("enrich lookup: answered {status} without a body"),
            )),
            (step, _) => Err(step.prefixed("enrich lookup: ")),
        }
    }

    /// Sends with the profile's auth header. On an oauth2 route a 401/403 re-reads the
    /// token and resends at once, once; that resend is part of the same attempt.
    async fn request(&self, auth: Option<&str>, request: http::Request<'_>) -> Called {
        let oauth2 = auth.is_some_and(|p| self.credentials.is_oauth2(p));
        // Only an oauth2 route may resend, so only there is a copy of the request kept.
        let resend = oauth2.then(|| request.clone());
        let mut a = match self.send_with_auth(auth, request, false).await {
            Ok(a) => a,
            Err(called) => return called,
        };
        let mut refreshed = false;
        if let (Verdict::RefreshTokenAndResend, Some(again)) =
            (classify(&a.outcome, oauth2, false), resend)
        {
            tracing::info!(
                auth = auth.unwrap_or_default(),
                status = a.status,
                "the target refused the token; re-reading it and resending"
            );
            refreshed = true;
            a = match self.send_with_auth(auth, again, true).await {
                Ok(a) => a,
                Err(called) => return called,
            };
        }
        let step = match classify(&a.outcome, oauth2, refreshed) {
            Verdict::Delivered => Step::Delivered {
                status: a.status.unwrap_or_default(),
            },
            Verdict::Retry {
                failure,
                retry_after,
            } => Step::Retry {
                reason: failure.as_str(),
                retry_after,
                status: a.status,
                error: error_text(&a),
            },
            Verdict::Permanent(failure) => {
                if let (Some(401 | 403), Some(profile)) = (a.status, auth) {
                    // A rotated static key: read it again for the next message.
                    self.credentials.forget(profile);
                }
                Step::Permanent {
                    failure,
                    status: a.status,
                    error: error_text(&a),
                }
            }
            // Not reached: a resent request is classified as already refreshed.
            Verdict::RefreshTokenAndResend => Step::Permanent {
                failure: Failure::HttpStatus,
                status: a.status,
                error: error_text(&a),
            },
        };
        Called {
            step,
            latency: Some(a.latency),
            body: a.body,
        }
    }

    /// One request with the profile's header (`fresh`: re-read its secret first).
    async fn send_with_auth(
        &self,
        auth: Option<&str>,
        mut req: http::Request<'_>,
        fresh: bool,
    ) -> Result<Attempt, Called> {
        if let Some(profile) = auth {
            match self.credentials.header(profile, fresh).await {
                Ok((name, value)) => {
                    req.headers.insert(name, value);
                }
                Err(e) => {
                    return Err(Called {
                        step: Step::retry("credentials", format!("auth `{profile}`: {e}")),
                        latency: None,
                        body: None,
                    });
                }
            }
        }
        Ok(http::send(&self.client, self.allow_private, req).await)
    }
}

fn error_text(a: &Attempt) -> String {
    a.error.clone().unwrap_or_else(|| "failed".to_owned())
}

fn dead(failure: Failure, attempts: u32, last_status: Option<u16>, error: String) -> Disposition {
    Disposition::DeadLetter(DeadLetter {
        failure,
        attempts,
        last_status,
        last_error: error,
    })
}

fn log(p: &Processed) {
    let latency_ms = p.latency.map(|l| l.as_secs_f64() * 1e3);
    match &p.disposition {
        Disposition::Delivered { status } => tracing::info!(
            delivery_id = %p.delivery_id,
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

/// Parses a message body into a job. The error never quotes the body.
fn parse_job(body: &str) -> Result<DeliveryJob, String> {
    let job = DeliveryJob::from_json(body).map_err(|_| describe_malformed(body))?;
    if job.delivery_id.is_empty() || HeaderValue::from_str(&job.delivery_id).is_err() {
        return Err("the delivery_id is empty or not a valid header value".to_owned());
    }
    Ok(job)
}

fn describe_malformed(body: &str) -> String {
    match serde_json::from_str::<DeliveryJob>(body) {
        Ok(job) => format!("unsupported message version {}", job.v),
        Err(e) => {
            let msg = e.to_string();
            let what = match e.classify() {
                serde_json::error::Category::Data if msg.starts_with("missing field") => msg
                    .split(" at line")
                    .next()
                    .unwrap_or("missing field")
                    .to_owned(),
                serde_json::error::Category::Data => "a field has the wrong type".to_owned(),
                _ => "not valid JSON".to_owned(),
            };
            format!(
                "the body is not a delivery job: {what} (line {}, column {})",
                e.line(),
                e.column()
            )
        }
    }
}

/// How old the job is: since the later of `received_at` and the send to this queue.
fn age(job: &DeliveryJob, msg: &ReceivedMessage, now: OffsetDateTime) -> Duration {
    let received_ms = job
        .received_at()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64);
    let start_ms = received_ms.unwrap_or(0).max(msg.sent_at_ms);
    if start_ms <= 0 {
        return Duration::ZERO;
    }
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    Duration::from_millis(now_ms.saturating_sub(start_ms).max(0) as u64)
}

/// The DLQ copy: the same body, the original attributes plus the reason.
fn dead_letter_message(msg: &ReceivedMessage, d: &DeadLetter) -> OutgoingMessage {
    OutgoingMessage {
        body: msg.body.clone(),
        attributes: dead_letter_attributes(&msg.attributes, d),
        delay: Duration::ZERO,
    }
}

/// The original attributes plus `failure`, `attempts`, `last_status` (when HTTP) and
/// `last_error`; stale ones from an earlier trip through the DLQ are replaced. SQS allows
/// ten attributes: extra originals (never `route` or `delivery_id`) give way.
pub fn dead_letter_attributes(
    original: &BTreeMap<String, String>,
    d: &DeadLetter,
) -> BTreeMap<String, String> {
    const OURS: [&str; 4] = ["failure", "attempts", "last_status", "last_error"];
    const KEEP: [&str; 2] = ["route", "delivery_id"];
    let mut attrs: BTreeMap<String, String> = original
        .iter()
        .filter(|(k, _)| !OURS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut ours = vec![
        ("failure", d.failure.as_str().to_owned()),
        ("attempts", d.attempts.to_string()),
    ];
    if let Some(status) = d.last_status {
        ours.push(("last_status", status.to_string()));
    }
    let error = sanitize(&d.last_error);
    if !error.is_empty() {
        ours.push(("last_error", error));
    }
    while attrs.len() + ours.len() > MAX_ATTRIBUTES {
        let Some(extra) = attrs.keys().find(|k| !KEEP.contains(&k.as_str())).cloned() else {
            break;
        };
        attrs.remove(&extra);
    }
    attrs.extend(ours.into_iter().map(|(k, v)| (k.to_owned(), v)));
    attrs
}

/// At most [`MAX_ERROR_CHARS`] characters, control characters (and any other character
/// SQS refuses in an attribute) turned into spaces.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || !router_core::ports::limits::allowed_char(c) {
                ' '
            } else {
                c
            }
        })
        .take(MAX_ERROR_CHARS)
        .collect::<String>()
        .trim()
        .to_owned()
}

fn bounded(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

fn bounded_owned(s: String, max_chars: usize) -> String {
    if s.len() <= max_chars {
        s
    } else {
        bounded(&s, max_chars)
    }
}

/// `86400s` as `24h`, `300s` as `5m`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    // `checked_rem` rather than `is_multiple_of`, which is newer than the workspace's MSRV.
    let whole = |unit: u64| s.checked_rem(unit) == Some(0);
    match s {
        0 => "0s".to_owned(),
        _ if whole(86_400) && s >= 172_800 => format!("{}d", s / 86_400),
        _ if whole(3600) => format!("{}h", s / 3600),
        _ if whole(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dl(error: &str, status: Option<u16>) -> DeadLetter {
        DeadLetter {
            failure: Failure::HttpStatus,
            attempts: 2,
            last_status: status,
            last_error: error.to_owned(),
        }
    }

    #[test]
    fn dead_letter_attributes_keep_the_originals_and_add_the_reason() {
        let original = BTreeMap::from([
            ("route".to_owned(), "crm".to_owned()),
            ("delivery_id".to_owned(), "dlv_1".to_owned()),
            ("last_status".to_owned(), "503".to_owned()),
        ]);
        let a = dead_letter_attributes(&original, &dl("answered 404 Not Found", Some(404)));
        assert_eq!(a["route"], "crm");
        assert_eq!(a["delivery_id"], "dlv_1");
        assert_eq!(a["failure"], "http_status");
        assert_eq!(a["attempts"], "2");
        assert_eq!(a["last_status"], "404");
        assert_eq!(a["last_error"], "answered 404 Not Found");

        // No HTTP status this time: a stale one from an earlier trip does not survive.
        let a = dead_letter_attributes(&original, &dl("no answer within 15 s", None));
        assert!(!a.contains_key("last_status"));
    }

    #[test]
    fn last_error_is_short_and_single_line() {
        let long = format!("line one\nline two {}", "x".repeat(1000));
        let a = dead_letter_attributes(&BTreeMap::new(), &dl(&long, None));
        assert_eq!(a["last_error"].chars().count(), MAX_ERROR_CHARS);
        assert!(a["last_error"].starts_with("line one line two"));
        let a = dead_letter_attributes(&BTreeMap::new(), &dl(" \n", None));
        assert!(!a.contains_key("last_error"), "SQS refuses empty values");
        let multibyte = "ü".repeat(300);
        let a = dead_letter_attributes(&BTreeMap::new(), &dl(&multibyte, None));
        assert_eq!(a["last_error"].chars().count(), MAX_ERROR_CHARS);
    }

    #[test]
    fn at_most_ten_attributes_and_route_and_delivery_id_always_stay() {
        let mut original: BTreeMap<String, String> =
            (0..9).map(|i| (format!("a{i}"), i.to_string())).collect();
        original.insert("route".into(), "crm".into());
        original.insert("delivery_id".into(), "dlv_1".into());
        let a = dead_letter_attributes(&original, &dl("e", Some(500)));
        assert_eq!(a.len(), 10);
        for k in [
            "route",
            "delivery_id",
            "failure",
            "attempts",
            "last_status",
            "last_error",
        ] {
            assert!(a.contains_key(k), "{k}");
        }
    }

    #[test]
    fn malformed_bodies_are_described_without_quoting_them() {
        let e = parse_job(r#"{"v":1,"delivery_id":"SECRET-ISH"}"#).unwrap_err();
        assert!(e.contains("missing field `event_id`"), "{e}");
        let e = parse_job(r#"{"v":"SECRET-ISH"}"#).unwrap_err();
        assert!(!e.contains("SECRET-ISH"), "{e}");
        assert!(e.contains("wrong type"), "{e}");
        let e = parse_job("SECRET-ISH not json").unwrap_err();
        assert!(e.contains("not valid JSON") && !e.contains("SECRET"), "{e}");
    }

    #[test]
    fn age_counts_from_the_later_of_received_at_and_the_send() {
        let now = time::macros::datetime!(2026-11-27 12:00:00 UTC);
        let job = |received: &str| DeliveryJob {
            received_at: received.to_owned(),
            ..DeliveryJob::from_json(
                &serde_json::json!({
                    "v": 1, "delivery_id": "dlv_1", "event_id": "evt_1", "route": "crm",
                    "event": {"id": "evt_1", "event_type": "intent", "score": 1.0},
                    "received_at": "2026-11-27T10:00:00Z"
                })
                .to_string(),
            )
            .unwrap()
        };
        let msg = |sent_at_ms: i64| ReceivedMessage {
            message_id: "m".into(),
            receipt_handle: "r".into(),
            body: String::new(),
            attributes: BTreeMap::new(),
            receive_count: 1,
            sent_at_ms,
        };
        let ten = (time::macros::datetime!(2026-11-27 10:00:00 UTC).unix_timestamp()) * 1000;
        let eleven = ten + 3_600_000;
        let j = job("2026-11-27T10:00:00Z");
        assert_eq!(age(&j, &msg(ten), now), Duration::from_secs(7200));
        assert_eq!(age(&j, &msg(0), now), Duration::from_secs(7200));
        // Redriven an hour later: counted from the redrive.
        assert_eq!(age(&j, &msg(eleven), now), Duration::from_secs(3600));
        assert_eq!(
            age(&job("garbage"), &msg(eleven), now),
            Duration::from_secs(3600)
        );
        assert_eq!(age(&job("garbage"), &msg(0), now), Duration::ZERO);
    }

    #[test]
    fn durations_read_like_the_routes_file() {
        assert_eq!(human(Duration::from_secs(86_400)), "24h");
        assert_eq!(human(Duration::from_secs(2 * 86_400)), "2d");
        assert_eq!(human(Duration::from_secs(300)), "5m");
        assert_eq!(human(Duration::from_secs(45)), "45s");
    }
}
