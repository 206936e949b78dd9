//! `serve --demo-echo`: a small delivery target on serve's own port, for the local demo.
//! `POST /demo/echo` records a delivery and prints one line; `GET /demo/echo` lists the
//! last ones received.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

pub const PATH: &str = "/demo/echo";
const KEEP: usize = 20;

#[derive(Debug, Clone, Serialize)]
struct Received {
    received_at: String,
    webhook_id: Option<String>,
    webhook_timestamp: Option<String>,
    signed: bool,
    body: serde_json::Value,
}

type Log = Arc<Mutex<VecDeque<Received>>>;

pub fn router() -> axum::Router {
    let log: Log = Arc::default();
    axum::Router::new()
        .route(PATH, post(record).get(list))
        .with_state(log)
}

async fn record(
    State(log): State<Log>,
    headers: HeaderMap,
    body: Bytes,
) -> Json<serde_json::Value> {
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let body: serde_json::Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into()));
    let entry = Received {
        received_at: router_core::time_fmt::rfc3339(time::OffsetDateTime::now_utc()),
        webhook_id: header("webhook-id"),
        webhook_timestamp: header("webhook-timestamp"),
        signed: headers.contains_key("webhook-signature"),
        body,
    };
    println!(
        "demo echo: received delivery {} {}",
        entry.webhook_id.as_deref().unwrap_or("-"),
        entry.body
    );
    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
    if log.len() == KEEP {
        log.pop_front();
    }
    log.push_back(entry);
    Json(serde_json::json!({"ok": true}))
}

async fn list(State(log): State<Log>) -> Json<Vec<Received>> {
    let log = log.lock().unwrap_or_else(|p| p.into_inner());
    Json(log.iter().rev().cloned().collect())
}
