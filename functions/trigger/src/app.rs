//! The HTTP router: `POST /api/v2/webhooks/trigger`, `GET /api/v2/health` and the smoke
//! check's sink, `POST /api/v2/webhooks/smoke`. The same
//! router runs on Lambda (through `lambda_http`) and locally (`routerctl serve`).

use crate::State;
use crate::enqueue::{self, EnqueueError};
use crate::health::health;
use crate::problem::Problem;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State as Extract;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use router_core::domain::{DeliveryJob, EventId, TriggerEvent};
use router_core::event::{self, BodyError};
use router_core::routes::{Route, Routes};
use router_core::wire::queue::{job_message, ordered_job_message};
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

pub const TRIGGER_PATH: &str = "/api/v2/webhooks/trigger";
pub const HEALTH_PATH: &str = "/api/v2/health";
/// What a 503 asks the caller to wait before retrying.
pub const RETRY_AFTER_S: u32 = 2;

pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route(TRIGGER_PATH, post(trigger))
        .route(HEALTH_PATH, get(health))
        .route(crate::smoke::SMOKE_PATH, post(crate::smoke::smoke))
        .fallback(|| async { Problem::not_found() })
        .method_not_allowed_fallback(|| async { Problem::method_not_allowed() })
        .with_state(state)
}

/// `POST /api/v2/webhooks/trigger`: whatever the answer, one audit line for it.
async fn trigger(Extract(state): Extract<Arc<State>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let result = accept(&state, &headers, body).await;
    audit(started, &result);
    result.into_response()
}

/// A trigger the router took: `200 unrouted` when no route fires, else `202 queued` once
/// the queue holds one message per delivery.
#[derive(Debug)]
struct Accepted {
    event_id: EventId,
    /// One per route that fired, in file order; empty when unrouted.
    deliveries: Vec<Delivery>,
}

#[derive(Debug, Serialize)]
struct Delivery {
    route: String,
    delivery_id: String,
}

impl Accepted {
    fn outcome(&self) -> &'static str {
        if self.deliveries.is_empty() {
            "unrouted"
        } else {
            "queued"
        }
    }

    fn status(&self) -> StatusCode {
        if self.deliveries.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::ACCEPTED
        }
    }
}

impl IntoResponse for Accepted {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct AcceptedBody<'a> {
            status: &'static str,
            event_id: &'a str,
            deliveries: &'a [Delivery],
        }
        let answer = AcceptedBody {
            status: self.outcome(),
            event_id: self.event_id.as_str(),
            deliveries: &self.deliveries,
        };
        (self.status(), axum::Json(answer)).into_response()
    }
}

/// A trigger the router refused: the problem to answer, the audit's outcome, and the
/// event id and matched routes once they are known (after the body was read).
#[derive(Debug)]
struct Rejection {
    problem: Problem,
    outcome: &'static str,
    event_id: Option<EventId>,
    routes: Vec<String>,
}

impl Rejection {
    fn new(problem: Problem, outcome: &'static str) -> Self {
        Self {
            problem,
            outcome,
            event_id: None,
            routes: Vec::new(),
        }
    }

    fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.problem.status).unwrap_or(StatusCode::BAD_REQUEST)
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        self.problem.into_response()
    }
}

/// Authenticates the request, reads its event, and queues a delivery per route that fires.
async fn accept(state: &State, headers: &HeaderMap, body: Body) -> Result<Accepted, Rejection> {
    if let Some(auth) = &state.ingest {
        match auth.accepts(headers).await {
            Ok(true) => {}
            Ok(false) => return Err(Rejection::new(Problem::unauthorized(), "unauthorized")),
            // No key can be had (the cache logged why): no key is accepted meanwhile.
            Err(_) => {
                return Err(Rejection::new(
                    Problem::unavailable("the ingest key cannot be used now; try again later"),
                    "ingest_key_unusable",
                ));
            }
        }
    }
    let event = read_event(headers, body, state.routes.ingest.max_body_bytes).await?;

    let received_at = time::OffsetDateTime::now_utc();
    let fired: Vec<&Route> = state.routes.matching(&event).collect();
    let missing = Routes::missing_fields(&fired, &event);
    if !missing.is_empty() {
        return Err(Rejection {
            problem: Problem::invalid(missing, 0),
            outcome: "invalid",
            routes: fired.iter().map(|r| r.name.to_string()).collect(),
            event_id: Some(event.id),
        });
    }
    let jobs: Vec<DeliveryJob> = fired
        .iter()
        .map(|r| DeliveryJob::new(&event, &r.name, received_at))
        .collect();
    if !jobs.is_empty()
        && let Err(e) = enqueue_jobs(state, &jobs, &fired).await
    {
        let (problem, outcome) = enqueue_problem(&event.id, &e);
        return Err(Rejection {
            problem,
            outcome,
            event_id: Some(event.id),
            routes: jobs.iter().map(|j| j.route.to_string()).collect(),
        });
    }
    Ok(Accepted {
        event_id: event.id,
        deliveries: jobs
            .into_iter()
            .map(|j| Delivery {
                route: j.route.to_string(),
                delivery_id: j.delivery_id,
            })
            .collect(),
    })
}

/// Queues the jobs: an ordered route's on the FIFO queue (its session's group, the delivery
/// id as deduplication id, the route's cap on the session's queued deliveries), the others
/// on the standard queue. Every message is checked before any is sent, so nothing is
/// half-queued for an event that can never be queued; the FIFO queue goes first, so a
/// session at its cap refuses the event before anything of it was queued.
async fn enqueue_jobs(
    state: &State,
    jobs: &[DeliveryJob],
    routes: &[&Route],
) -> Result<(), EnqueueError> {
    let (mut standard, mut fifo) = (Vec::new(), Vec::new());
    for (job, route) in jobs.iter().zip(routes) {
        if route.ordered {
            let mut m = ordered_job_message(job, &job.delivery_id);
            m.group_cap = Some(route.max_queued_per_session);
            fifo.push(m);
        } else {
            standard.push(job_message(job));
        }
    }
    enqueue::check(&standard)?;
    enqueue::check(&fifo)?;
    if !fifo.is_empty() {
        let Some(ordered) = &state.ordered else {
            return Err(EnqueueError::Refused(
                "there is no queue for ordered routes".to_owned(),
            ));
        };
        let groups: Vec<(String, String)> = fifo
            .iter()
            .zip(jobs.iter().zip(routes).filter(|(_, r)| r.ordered))
            .map(|(m, (job, _))| (m.group.clone().unwrap_or_default(), job.route.to_string()))
            .collect();
        enqueue::send_all(ordered.queue.as_ref(), fifo)
            .await
            .map_err(|e| e.naming_routes(&groups))?;
    }
    if !standard.is_empty() {
        enqueue::send_all(state.queue.as_ref(), standard).await?;
    }
    Ok(())
}

/// The answer to an event the queue did not take; only a passing failure is logged (the
/// others are the event's own fault).
fn enqueue_problem(event_id: &EventId, e: &EnqueueError) -> (Problem, &'static str) {
    match e {
        EnqueueError::TooLarge { size, limit } => {
            (Problem::message_too_large(*size, *limit), "too_large")
        }
        EnqueueError::Refused(why) => (Problem::unqueueable(why), "refused_by_queue"),
        EnqueueError::SessionFull {
            route,
            queued,
            cap,
            retry_after,
        } => (
            Problem::session_full(route, *queued, *cap, *retry_after),
            "session_full",
        ),
        EnqueueError::Unavailable { .. } => {
            tracing::error!(event_id = event_id.as_str(), error = %e, "trigger: enqueue failed");
            (
                Problem::queue_unavailable(RETRY_AFTER_S),
                "queue_unavailable",
            )
        }
    }
}

/// The event in the request body: a supported content type, at most `limit` bytes, and
/// valid against the schema.
async fn read_event(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<TriggerEvent, Rejection> {
    let Some(kind) = body_kind(headers) else {
        return Err(Rejection::new(
            Problem::unsupported_media_type(),
            "unsupported_media_type",
        ));
    };
    let too_large = || Rejection::new(Problem::too_large(limit), "too_large");
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let bytes: Bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    let idempotency_key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    let parsed = match kind {
        BodyKind::Json => event::from_json(&bytes, idempotency_key),
        BodyKind::Form => event::from_form(&bytes, idempotency_key),
    };
    parsed.map_err(|e| match e {
        BodyError::Malformed(why) => Rejection::new(Problem::bad_request(why), "malformed"),
        BodyError::Invalid(fields, more) => {
            Rejection::new(Problem::invalid(fields, more), "invalid")
        }
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Json,
    Form,
}

fn body_kind(headers: &HeaderMap) -> Option<BodyKind> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let mime = ct.split(';').next()?.trim();
    if mime.eq_ignore_ascii_case("application/json") {
        Some(BodyKind::Json)
    } else if mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        Some(BodyKind::Form)
    } else {
        None
    }
}

/// One audit line per trigger: never the event's data, never a secret.
fn audit(started: Instant, result: &Result<Accepted, Rejection>) {
    // The lists below are built only for a log that takes the line.
    if !tracing::enabled!(target: "audit", tracing::Level::INFO) {
        return;
    }
    let (event_id, routes, delivery_ids, outcome, status): (_, Vec<&str>, Vec<&str>, _, _) =
        match result {
            Ok(a) => (
                Some(&a.event_id),
                a.deliveries.iter().map(|d| d.route.as_str()).collect(),
                a.deliveries
                    .iter()
                    .map(|d| d.delivery_id.as_str())
                    .collect(),
                a.outcome(),
                a.status(),
            ),
            Err(r) => (
                r.event_id.as_ref(),
                r.routes.iter().map(String::as_str).collect(),
                Vec::new(),
                r.outcome,
                r.status(),
            ),
        };
    // The delivery ids join this line to every delivery log line (which names the event
    // id): one conversation's story in one Logs Insights query (docs/operations.md).
    tracing::info!(
        target: "audit",
        event_id = event_id.map_or("-", EventId::as_str),
        routes = ?routes,
        delivery_ids = ?delivery_ids,
        outcome,
        status = status.as_u16(),
        latency_us = started.elapsed().as_micros() as u64,
        "trigger"
    );
}
