//! The smoke sink, `POST /api/v2/webhooks/smoke`: takes only deliveries signed with the
//! `[signing]` key (either key during a change), logs each, and does not exist without
//! `[signing]`.

use crate::common::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use router_core::backends::Backends;
use router_core::routes::Routes;
use router_core::secrets::Secret;
use router_core::signing::Signer;
use router_core::testing::{FakeQueue, LogCapture, MemorySecrets};
use std::path::Path;
use std::sync::Arc;

const OLD: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const NEW: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn app(signing: bool, secrets: &[(&str, &str)]) -> axum::Router {
    app_and_secrets(signing, secrets).await.0
}

async fn app_and_secrets(
    signing: bool,
    secrets: &[(&str, &str)],
) -> (axum::Router, Arc<MemorySecrets>) {
    let mut text = ROUTES.to_owned();
    if signing {
        text.push_str("\n[signing]\nsecret = \"outbound/signing-key\"\n");
    }
    let routes = Arc::new(Routes::parse(&text, Path::new("routes.toml")).unwrap());
    let mut all = vec![("router/ingest-key", KEY)];
    all.extend_from_slice(secrets);
    let store = Arc::new(MemorySecrets::with(&all));
    let backends = Backends {
        queue: Arc::new(FakeQueue::new()),
        dead_letters: Arc::new(FakeQueue::new()),
        secrets: store.clone(),
        ordered: None,
    };
    let app = trigger::router(Arc::new(
        trigger::State::new(routes, backends, 10).await.unwrap(),
    ));
    (app, store)
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A delivery to the sink signed with `key` (or unsigned), stamped `timestamp`.
fn delivery(key: Option<&str>, id: &str, timestamp: i64, body: &str) -> Request<Body> {
    let mut req = Request::post(trigger::smoke::SMOKE_PATH)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string());
    if let Some(key) = key {
        let sig = Signer::new(&Secret::new(key.to_owned()))
            .unwrap()
            .sign(id, timestamp, body);
        req = req.header("webhook-signature", sig);
    }
    req.body(Body::from(body.to_owned())).unwrap()
}

const BODY: &str = r#"{"event_id": "smoke-1", "delivery_id": "dlv_1", "attempt": 1}"#;

#[tokio::test]
async fn a_signed_delivery_is_taken_and_logged() {
    let (capture, _guard) = LogCapture::json();
    let app = app(true, &[("outbound/signing-key", OLD)]).await;
    let reply = send(&app, delivery(Some(OLD), "dlv_1", now(), BODY)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body,
        serde_json::json!({"status": "received", "delivery_id": "dlv_1"})
    );
    let lines = capture.json_lines();
    let line = lines
        .iter()
        .find(|l| l["message"] == "smoke delivery received")
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert_eq!(line["delivery_id"], "dlv_1");
    assert_eq!(line["event_id"], "smoke-1");
}

#[tokio::test]
async fn anything_not_signed_with_the_key_is_refused() {
    let app = app(true, &[("outbound/signing-key", OLD)]).await;
    let t = now();
    let tampered = {
        let mut req = delivery(Some(OLD), "dlv_1", t, BODY);
        *req.body_mut() = Body::from(BODY.replace("smoke-1", "smoke-2"));
        req
    };
    for req in [
        delivery(None, "dlv_1", t, BODY),
        delivery(Some(NEW), "dlv_1", t, BODY),
        delivery(Some(OLD), "dlv_1", t - 3600, BODY),
        delivery(Some(OLD), "dlv_1", t + 3600, BODY),
        tampered,
        Request::post(trigger::smoke::SMOKE_PATH)
            .body(Body::from(BODY))
            .unwrap(),
    ] {
        let reply = send(&app, req).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    }
    let big = "x".repeat(70 * 1024);
    let reply = send(&app, delivery(Some(OLD), "dlv_1", t, &big)).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn an_unauthenticated_caller_cannot_fill_the_log_with_its_webhook_id() {
    let (capture, _guard) = LogCapture::json();
    let app = app(true, &[("outbound/signing-key", OLD)]).await;
    let long = format!("dlv_{}", "9".repeat(9_000));
    let reply = send(&app, delivery(Some(NEW), &long, now(), BODY)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let text = capture.text();
    assert!(text.contains("does not verify"), "{text}");
    assert!(text.len() < 1_000, "{} bytes logged", text.len());
    let line = capture
        .json_lines()
        .into_iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("does not verify"))
        })
        .unwrap();
    let logged = line["delivery_id"].as_str().unwrap();
    assert!(
        logged.starts_with("dlv_999") && logged.len() <= 83,
        "{logged}"
    );
}

#[tokio::test]
async fn during_a_key_change_either_key_is_taken() {
    let both = format!(r#"{{"current": "{OLD}", "next": "{NEW}"}}"#);
    let app = app(true, &[("outbound/signing-key", both.as_str())]).await;
    for key in [OLD, NEW] {
        let reply = send(&app, delivery(Some(key), "dlv_2", now(), BODY)).await;
        assert_eq!(reply.status, StatusCode::OK, "{key}: {}", reply.body);
    }
}

#[tokio::test]
async fn without_signing_there_is_no_sink_and_without_the_key_it_is_unavailable() {
    let app_unsigned = app(false, &[]).await;
    let reply = send(&app_unsigned, delivery(Some(OLD), "dlv_3", now(), BODY)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let (app_no_key, store) = app_and_secrets(true, &[]).await;
    for _ in 0..3 {
        let reply = send(&app_no_key, delivery(Some(OLD), "dlv_3", now(), BODY)).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!reply.body.to_string().contains("whsec_"));
    }
    // The failure is remembered: calls to the sink do not each become a secret-store read.
    assert_eq!(store.reads_of("outbound/signing-key"), 1);
    // Neither does a key that reads but is not a signing key (the template's placeholder).
    let (app_placeholder, store) =
        app_and_secrets(true, &[("outbound/signing-key", "REPLACE_WITH_whsec_KEY")]).await;
    for _ in 0..3 {
        let reply = send(&app_placeholder, delivery(Some(OLD), "dlv_4", now(), BODY)).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(store.reads_of("outbound/signing-key"), 1);
}
