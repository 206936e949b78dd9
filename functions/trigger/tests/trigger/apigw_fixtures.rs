//! Real API Gateway HTTP API (payload v2) requests, decoded by `lambda_http` as on Lambda,
//! through the same router.

use crate::common::*;
use axum::http::StatusCode;
use router_core::domain::DeliveryJob;
use tower::ServiceExt;

async fn through_lambda_http(h: &Harness, fixture: &str) -> (StatusCode, serde_json::Value) {
    let text = std::fs::read_to_string(format!(
        "{}/tests/fixtures/{fixture}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let req = lambda_http::request::from_str(&text).expect("lambda_http decodes the fixture");
    let resp = h.app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn a_json_trigger_from_api_gateway_is_queued() {
    let h = harness().await;
    let (status, body) = through_lambda_http(&h, "apigw_v2_trigger_json.json").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["event_id"], "evt_apigw_1");
    assert_eq!(h.queue.sent().len(), 2);
}

#[tokio::test]
async fn a_base64_form_trigger_from_api_gateway_is_queued() {
    let h = harness().await;
    let (status, body) = through_lambda_http(&h, "apigw_v2_trigger_form_base64.json").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let job = DeliveryJob::parse(&h.queue.sent()[0].body).unwrap();
    assert_eq!(job.event.user_id.as_deref(), Some("usr_2"));
    assert_eq!(job.event.data.unwrap()["text"], "hi");
}

#[tokio::test]
async fn a_wrong_key_from_api_gateway_is_401() {
    let h = harness().await;
    let (status, body) = through_lambda_http(&h, "apigw_v2_trigger_bad_key.json").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["status"], 401);
    assert!(h.queue.sent().is_empty());
}

#[tokio::test]
async fn health_from_api_gateway_answers() {
    let h = harness().await;
    let (status, body) = through_lambda_http(&h, "apigw_v2_health.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["routes"], 3);
}
