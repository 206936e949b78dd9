//! Shared set-up of the trigger tests: a routes file, fakes for the ports, request helpers.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use router_core::backends::Backends;
use router_core::routes::Routes;
use router_core::testing::{FakeQueue, MemorySecrets};
use std::path::Path;
use std::sync::Arc;
use tower::ServiceExt;

pub const KEY: &str = "ingest-key-123";

/// The routes file most tests run with: three routes, an `[ingest]` key, an oauth2 profile.
pub const ROUTES: &str = include_str!("../fixtures/routes.toml");

#[derive(Debug)]
pub struct Harness {
    pub app: Router,
    pub queue: Arc<FakeQueue>,
    pub dead_letters: Arc<FakeQueue>,
    /// The ordered routes' FIFO queue.
    pub ordered_queue: Arc<FakeQueue>,
    pub ordered_dead_letters: Arc<FakeQueue>,
    pub secrets: Arc<MemorySecrets>,
}

pub async fn harness_with(routes_text: &str, threshold: u64) -> Harness {
    harness_full(routes_text, threshold, None).await
}

/// A harness whose health answer lists `circuits` (as `routerctl serve`'s does).
pub async fn harness_with_circuits(circuits: Arc<router_core::breaker::Breakers>) -> Harness {
    harness_full(ROUTES, 10, Some(circuits)).await
}

async fn harness_full(
    routes_text: &str,
    threshold: u64,
    circuits: Option<Arc<router_core::breaker::Breakers>>,
) -> Harness {
    let routes =
        Arc::new(Routes::parse(routes_text, Path::new("routes.toml")).expect("test routes load"));
    let queue = Arc::new(FakeQueue::new());
    let dead_letters = Arc::new(FakeQueue::new());
    let ordered_queue = Arc::new(FakeQueue::new());
    let ordered_dead_letters = Arc::new(FakeQueue::new());
    let secrets = Arc::new(MemorySecrets::with(&[("router/ingest-key", KEY)]));
    let backends = Backends {
        queue: queue.clone(),
        dead_letters: dead_letters.clone(),
        secrets: secrets.clone(),
        ordered: Some(router_core::backends::QueuePair {
            queue: ordered_queue.clone(),
            dead_letters: ordered_dead_letters.clone(),
        }),
    };
    let mut state = trigger::State::new(routes, backends, threshold)
        .await
        .expect("state builds");
    if let Some(c) = circuits {
        state = state.with_circuits(c);
    }
    Harness {
        app: trigger::router(Arc::new(state)),
        queue,
        dead_letters,
        ordered_queue,
        ordered_dead_letters,
        secrets,
    }
}

pub async fn harness() -> Harness {
    harness_with(ROUTES, 10).await
}

pub fn post(content_type: &str) -> axum::http::request::Builder {
    Request::post(trigger::app::TRIGGER_PATH)
        .header("content-type", content_type)
        .header("x-api-key", KEY)
}

pub fn json_request(body: &str) -> Request<Body> {
    post("application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[derive(Debug)]
pub struct Answered {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
}

pub async fn send(app: &Router, req: Request<Body>) -> Answered {
    let resp = app
        .clone()
        .oneshot(req)
        .await
        .expect("the router always answers");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    Answered {
        status,
        headers,
        body,
    }
}

pub const HANDOVER: &str = r#"{"id": "evt_123", "event_type": "intent", "name": "handover", "score": 0.92,
  "user_id": "usr_1", "session_id": "sess_1", "data": {"text": "agent please"}}"#;

/// Checks a problem+json answer: its status, content type and the RFC 9457 fields.
pub fn assert_problem(reply: &Answered, status: u16) {
    assert_eq!(reply.status.as_u16(), status, "{:?}", reply.body);
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    assert_eq!(reply.body["status"], status);
    assert!(reply.body["title"].is_string() && reply.body["type"].is_string());
    assert!(reply.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
}
