//! `serve --demo-echo`: demo targets on serve's own port, for the local examples.
//! - `POST /demo/echo` records a delivery and prints one line; `GET /demo/echo` lists the
//!   last ones received.
//! - `POST /demo/slow?seconds=N` is a slow backend: after N seconds (default 3, at most 60)
//!   it answers `{"summary": ..., "request": <what it got>}`.
//! - `POST /demo/cognigy/{inject|notify}/{URLToken}` stands in for a Cognigy endpoint: it
//!   checks the URL token ([`DEMO_URL_TOKEN`]) and what Cognigy checks on the body, and
//!   records it; `GET /demo/cognigy` lists what went into the "session".

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const PATH: &str = "/demo/echo";
/// The URL token the demo Cognigy endpoint takes (`examples/secrets.toml` holds it).
pub const DEMO_URL_TOKEN: &str = "demo-url-token";
const KEEP: usize = 20;

#[derive(Debug, Clone, Serialize)]
struct Received {
    received_at: String,
    webhook_id: Option<String>,
    webhook_timestamp: Option<String>,
    signed: bool,
    body: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
struct Injected {
    received_at: String,
    mode: String,
    body: serde_json::Value,
}

#[derive(Debug, Default)]
struct Logs {
    echo: Mutex<VecDeque<Received>>,
    cognigy: Mutex<VecDeque<Injected>>,
}

type Shared = Arc<Logs>;

pub fn router() -> axum::Router {
    axum::Router::new()
        .route(PATH, post(record).get(list))
        .route("/demo/slow", post(slow))
        .route("/demo/cognigy", get(injected))
        .route("/demo/cognigy/{mode}/{token}", post(inject))
        .with_state(Shared::default())
}

fn keep<T>(log: &Mutex<VecDeque<T>>, entry: T) {
    let mut log = router_core::sync::lock(log);
    if log.len() == KEEP {
        log.pop_front();
    }
    log.push_back(entry);
}

fn now() -> String {
    router_core::time_fmt::rfc3339(time::OffsetDateTime::now_utc())
}

fn json_or_text(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into()))
}

async fn record(
    State(logs): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Json<serde_json::Value> {
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let entry = Received {
        received_at: now(),
        webhook_id: header("webhook-id"),
        webhook_timestamp: header("webhook-timestamp"),
        signed: headers.contains_key("webhook-signature"),
        body: json_or_text(&body),
    };
    println!(
        "demo echo: received delivery {} {}",
        entry.webhook_id.as_deref().unwrap_or("-"),
        entry.body
    );
    keep(&logs.echo, entry);
    Json(serde_json::json!({"ok": true}))
}

async fn list(State(logs): State<Shared>) -> Json<Vec<Received>> {
    let log = router_core::sync::lock(&logs.echo);
    Json(log.iter().rev().cloned().collect())
}

#[derive(Debug, Deserialize)]
struct SlowQuery {
    seconds: Option<u64>,
}

async fn slow(Query(q): Query<SlowQuery>, body: Bytes) -> Json<serde_json::Value> {
    let seconds = q.seconds.unwrap_or(3).min(60);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let request = json_or_text(&body);
    let order = request
        .get("order")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    Json(serde_json::json!({
        "summary": format!("Order {} ships tomorrow (answered after {seconds} s).", order.as_str().unwrap_or("?")),
        "request": request,
    }))
}

async fn inject(
    State(logs): State<Shared>,
    Path((mode, token)): Path<(String, String)>,
    body: Bytes,
) -> (StatusCode, Json<serde_json::Value>) {
    if !matches!(mode.as_str(), "inject" | "notify") || token != DEMO_URL_TOKEN {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": "unknown endpoint"})),
        );
    }
    let raw = String::from_utf8_lossy(&body);
    if let Err(why) = router_core::wire::cognigy::check_body(&raw) {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": why})),
        );
    }
    let body = json_or_text(&body);
    println!(
        "demo cognigy: {mode} into session {}: {}",
        body["sessionId"], body["text"]
    );
    keep(
        &logs.cognigy,
        Injected {
            received_at: now(),
            mode,
            body,
        },
    );
    (StatusCode::OK, Json(serde_json::json!({})))
}

async fn injected(State(logs): State<Shared>) -> Json<Vec<Injected>> {
    let log = router_core::sync::lock(&logs.cognigy);
    Json(log.iter().rev().cloned().collect())
}
