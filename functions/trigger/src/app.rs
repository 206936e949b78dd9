//! The HTTP router: `POST /api/v2/webhooks/trigger` and `GET /api/v2/health`. The same
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
use router_core::domain::{DeliveryJob, TriggerEvent};
use router_core::event::{self, BodyError};
use router_core::wire::queue::job_message;
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
        .fallback(|| async { Problem::not_found() })
        .method_not_allowed_fallback(|| async { Problem::method_not_allowed() })
        .with_state(state)
}

#[derive(Debug, Serialize)]
struct Accepted<'a> {
    status: &'static str,
    event_id: &'a str,
    deliveries: Vec<Delivery<'a>>,
}

#[derive(Debug, Serialize)]
struct Delivery<'a> {
    route: &'a str,
    delivery_id: &'a str,
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
fn audit(
    started: Instant,
    event_id: Option<&str>,
    routes: &[&str],
    outcome: &str,
    status: StatusCode,
) {
    tracing::info!(
        target: "audit",
        event_id = event_id.unwrap_or("-"),
        routes = ?routes,
        outcome,
        status = status.as_u16(),
        latency_us = started.elapsed().as_micros() as u64,
        "trigger"
    );
}

async fn trigger(Extract(state): Extract<Arc<State>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let reject = |problem: Problem, outcome: &str| {
        let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST);
        audit(started, None, &[], outcome, status);
        problem.into_response()
    };

    if let Some(key) = &state.ingest_key
        && !key.accepts(&headers)
    {
        return reject(Problem::unauthorized(), "unauthorized");
    }
    let Some(kind) = body_kind(&headers) else {
        return reject(Problem::unsupported_media_type(), "unsupported_media_type");
    };
    let limit = state.routes.ingest.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return reject(Problem::too_large(limit), "too_large");
    }
    let bytes: Bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => return reject(Problem::too_large(limit), "too_large"),
    };
    let idempotency_key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    let parsed = match kind {
        BodyKind::Json => event::from_json(&bytes, idempotency_key),
        BodyKind::Form => event::from_form(&bytes, idempotency_key),
    };
    let event: TriggerEvent = match parsed {
        Ok(e) => e,
        Err(BodyError::Malformed(why)) => return reject(Problem::bad_request(why), "malformed"),
        Err(BodyError::Invalid(fields)) => return reject(Problem::invalid(fields), "invalid"),
    };

    let received_at = time::OffsetDateTime::now_utc();
    let jobs: Vec<DeliveryJob> = state
        .routes
        .matching(&event)
        .map(|r| DeliveryJob::new(&event, &r.name, received_at))
        .collect();
    let names: Vec<&str> = jobs.iter().map(|j| j.route.as_str()).collect();
    let event_id = event.id.as_str();
    if jobs.is_empty() {
        audit(started, Some(event_id), &names, "unrouted", StatusCode::OK);
        let body = Accepted {
            status: "unrouted",
            event_id,
            deliveries: Vec::new(),
        };
        return (StatusCode::OK, axum::Json(body)).into_response();
    }

    let messages: Vec<_> = jobs.iter().map(job_message).collect();
    match enqueue::send_all(state.queue.as_ref(), messages).await {
        Ok(()) => {}
        Err(e) => {
            let (problem, outcome) = match &e {
                EnqueueError::TooLarge { size, limit } => {
                    (Problem::message_too_large(*size, *limit), "too_large")
                }
                EnqueueError::Refused(why) => (Problem::unqueueable(why), "refused_by_queue"),
                EnqueueError::Unavailable { .. } => {
                    tracing::error!(event_id, error = %e, "trigger: enqueue failed");
                    (
                        Problem::queue_unavailable(RETRY_AFTER_S),
                        "queue_unavailable",
                    )
                }
            };
            let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST);
            audit(started, Some(event_id), &names, outcome, status);
            return problem.into_response();
        }
    }
    audit(
        started,
        Some(event_id),
        &names,
        "queued",
        StatusCode::ACCEPTED,
    );
    let body = Accepted {
        status: "queued",
        event_id,
        deliveries: jobs
            .iter()
            .map(|j| Delivery {
                route: j.route.as_str(),
                delivery_id: &j.delivery_id,
            })
            .collect(),
    };
    (StatusCode::ACCEPTED, axum::Json(body)).into_response()
}
