//! `GET /api/v2/health`: depths, dead letters, token expiry, both queue pairs.

use crate::common;
use crate::common::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use router_core::ports::QueueDepth;
use serde_json::json;

async fn health(h: &Harness) -> Answered {
    send(
        &h.app,
        Request::get(trigger::app::HEALTH_PATH)
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

fn token_expiring_in(secs: i64) -> String {
    let at = time::OffsetDateTime::now_utc().unix_timestamp() + secs;
    format!(r#"{{"access_token":"t","token_type":"Bearer","expires_at":{at}}}"#)
}

#[tokio::test]
async fn health_is_healthy_with_depths_and_token_expiry() {
    let h = harness().await;
    h.secrets.set("cognigy/token", &token_expiring_in(3600));
    h.queue.set_depth(Some(QueueDepth {
        visible: 4,
        in_flight: 2,
    }));
    h.dead_letters.set_depth(Some(QueueDepth {
        visible: 1,
        in_flight: 0,
    }));
    let reply = health(&h).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["status"], "healthy");
    assert_eq!(reply.body["routes"], 3);
    assert_eq!(reply.body["version"], router_core::VERSION);
    assert_eq!(
        reply.body["queue"],
        json!({"visible": 4, "in_flight": 2, "dead_letter": 1})
    );
    let expires = reply.body["tokens"]["cognigy"]["expires_in_s"]
        .as_i64()
        .unwrap();
    assert!((3590..=3600).contains(&expires), "{expires}");
}

#[tokio::test]
async fn health_is_degraded_by_dead_letters_at_the_threshold() {
    let h = harness_with(common::ROUTES, 3).await;
    h.secrets.set("cognigy/token", &token_expiring_in(3600));
    h.dead_letters.set_depth(Some(QueueDepth {
        visible: 3,
        in_flight: 0,
    }));
    assert_eq!(health(&h).await.body["status"], "degraded");
}

#[tokio::test]
async fn health_is_degraded_by_a_token_expiring_within_5_minutes_or_missing() {
    let h = harness().await;
    h.secrets.set("cognigy/token", &token_expiring_in(200));
    assert_eq!(health(&h).await.body["status"], "degraded");
    let h = harness().await;
    let reply = health(&h).await;
    assert_eq!(reply.body["status"], "degraded");
    assert_eq!(
        reply.body["tokens"]["cognigy"]["expires_in_s"],
        serde_json::Value::Null
    );
}

#[tokio::test]
async fn health_is_503_unhealthy_when_the_queue_cannot_be_read() {
    let h = harness().await;
    h.queue.set_depth(None);
    let reply = health(&h).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.body["status"], "unhealthy");
}

#[tokio::test]
async fn health_counts_the_ordered_fifo_pair_too() {
    let h = harness_with(common::ROUTES, 3).await;
    h.secrets.set("cognigy/token", &token_expiring_in(3600));
    let depth = |visible, in_flight| Some(QueueDepth { visible, in_flight });
    h.queue.set_depth(depth(4, 2));
    h.dead_letters.set_depth(depth(1, 0));
    h.ordered_queue.set_depth(depth(10, 3));
    h.ordered_dead_letters.set_depth(depth(1, 0));
    let reply = health(&h).await;
    assert_eq!(
        reply.body["queue"],
        json!({"visible": 14, "in_flight": 5, "dead_letter": 2})
    );
    assert_eq!(reply.body["status"], "healthy");
    // Dead letters of ordered routes alone reach the threshold.
    h.dead_letters.set_depth(depth(0, 0));
    h.ordered_dead_letters.set_depth(depth(3, 0));
    assert_eq!(health(&h).await.body["status"], "degraded");
    // And a FIFO queue that cannot be read makes the router unhealthy.
    h.ordered_queue.set_depth(None);
    let reply = health(&h).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.body["status"], "unhealthy");
}

#[tokio::test]
async fn health_reads_token_secrets_at_most_once_a_minute() {
    let h = harness().await;
    h.secrets.set("cognigy/token", &token_expiring_in(3600));
    let before = h.secrets.reads();
    for _ in 0..5 {
        health(&h).await;
    }
    assert_eq!(h.secrets.reads() - before, 1);
}
