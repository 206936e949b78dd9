//! The ingest key: both forms, one 401 for every failure, read once, rotated without a
//! 401 window, and a revoked or broken key stops working.

use crate::common;
use crate::common::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};

#[tokio::test]
async fn both_key_forms_authenticate() {
    let h = harness().await;
    for (name, value) in [
        ("x-api-key", KEY.to_owned()),
        ("authorization", format!("ApiKey {KEY}")),
    ] {
        let req = Request::post(trigger::app::TRIGGER_PATH)
            .header("content-type", "application/json")
            .header(name, value)
            .body(Body::from(HANDOVER))
            .unwrap();
        assert_eq!(
            send(&h.app, req).await.status,
            StatusCode::ACCEPTED,
            "{name}"
        );
    }
}

#[tokio::test]
async fn every_auth_failure_is_the_same_401_without_a_hint() {
    let h = harness().await;
    let variants: Vec<Vec<(&str, String)>> = vec![
        vec![],
        vec![("x-api-key", "wrong".into())],
        vec![("x-api-key", format!("{KEY}x"))],
        vec![("authorization", format!("Bearer {KEY}"))],
        vec![("authorization", "ApiKey wrong".into())],
        vec![("authorization", KEY.into())],
    ];
    let mut bodies = Vec::new();
    for headers in variants {
        let mut req =
            Request::post(trigger::app::TRIGGER_PATH).header("content-type", "application/json");
        for (k, v) in &headers {
            req = req.header(*k, v);
        }
        let reply = send(&h.app, req.body(Body::from(HANDOVER)).unwrap()).await;
        assert_problem(&reply, 401);
        bodies.push(reply.body);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "401s are identical: {bodies:?}"
    );
    assert!(h.queue.sent().is_empty());
}

#[tokio::test]
async fn without_ingest_auth_the_endpoint_is_open() {
    let open = common::ROUTES.replace("[ingest]\nauth = \"flows\"\n", "[ingest]\n");
    let h = harness_with(&open, 10).await;
    let req = Request::post(trigger::app::TRIGGER_PATH)
        .header("content-type", "application/json")
        .body(Body::from(HANDOVER))
        .unwrap();
    assert_eq!(send(&h.app, req).await.status, StatusCode::ACCEPTED);
    assert_eq!(h.secrets.reads(), 0, "no ingest key is read");
}

#[tokio::test]
async fn the_ingest_key_is_read_once_not_per_request() {
    let h = harness().await;
    for _ in 0..3 {
        send(&h.app, json_request(HANDOVER)).await;
    }
    assert_eq!(h.secrets.reads(), 1);
}

/// The ingest key as a flow presents it, against a state that re-reads its secret on
/// every request (the real interval is minutes).
async fn status_with_key(app: &axum::Router, key: &str) -> StatusCode {
    let req = Request::post(trigger::app::TRIGGER_PATH)
        .header("content-type", "application/json")
        .header("x-api-key", key)
        .body(Body::from(HANDOVER))
        .unwrap();
    send(app, req).await.status
}

#[tokio::test]
async fn the_ingest_key_rotates_without_a_401_window_and_a_revoked_or_broken_key_stops() {
    let routes = std::sync::Arc::new(
        router_core::routes::Routes::parse(common::ROUTES, std::path::Path::new("routes.toml"))
            .unwrap(),
    );
    let secrets = std::sync::Arc::new(router_core::testing::MemorySecrets::with(&[(
        "router/ingest-key",
        "k-old",
    )]));
    let backends = router_core::backends::Backends {
        queue: std::sync::Arc::new(router_core::testing::FakeQueue::new()),
        dead_letters: std::sync::Arc::new(router_core::testing::FakeQueue::new()),
        secrets: secrets.clone(),
        ordered: None,
    };
    let state = trigger::State::with_secret_reread(routes, backends, 10, std::time::Duration::ZERO)
        .await
        .unwrap();
    let app = trigger::router(std::sync::Arc::new(state));
    assert_eq!(status_with_key(&app, "k-old").await, StatusCode::ACCEPTED);
    assert_eq!(
        status_with_key(&app, "k-new").await,
        StatusCode::UNAUTHORIZED
    );
    // Step 1 of a change: both keys; flows still on the old one keep working.
    secrets.set(
        "router/ingest-key",
        r#"{"current": "k-old", "next": "k-new"}"#,
    );
    assert_eq!(status_with_key(&app, "k-old").await, StatusCode::ACCEPTED);
    assert_eq!(status_with_key(&app, "k-new").await, StatusCode::ACCEPTED);
    // Step 2, once every flow sends the new key: only the new one.
    secrets.set("router/ingest-key", "k-new");
    assert_eq!(status_with_key(&app, "k-new").await, StatusCode::ACCEPTED);
    assert_eq!(
        status_with_key(&app, "k-old").await,
        StatusCode::UNAUTHORIZED
    );
    // The change ends with "next": null: the old key is refused from the next read on.
    secrets.set("router/ingest-key", r#"{"current": "k-new", "next": null}"#);
    assert_eq!(status_with_key(&app, "k-new").await, StatusCode::ACCEPTED);
    assert_eq!(
        status_with_key(&app, "k-old").await,
        StatusCode::UNAUTHORIZED
    );
    // An edit that cannot be used, or a deleted secret, stops every key from the next read
    // on (as a cold start on it would not start): 503, never the old keys forever.
    for bad in [
        "  ",
        r#"{"next": "k-x"}"#,
        "{oops",
        r#"{"current": "k-new", "next": ""}"#,
        r#"{"Current": "k-new"}"#,
        "<deleted>",
    ] {
        if bad == "<deleted>" {
            secrets.remove("router/ingest-key");
        } else {
            secrets.set("router/ingest-key", bad);
        }
        for key in ["k-new", "k-old", ""] {
            assert_eq!(
                status_with_key(&app, key).await,
                StatusCode::SERVICE_UNAVAILABLE,
                "{bad}: {key}"
            );
        }
        // Fixed: the keys work again at the next read.
        secrets.set("router/ingest-key", "k-new");
        assert_eq!(
            status_with_key(&app, "k-new").await,
            StatusCode::ACCEPTED,
            "{bad}"
        );
    }
    // A store that cannot be reached: with a re-read period of 0 there is no grace.
    secrets.fail_with(Some(router_core::ports::SecretError::Unavailable(
        "down".into(),
    )));
    assert_eq!(
        status_with_key(&app, "k-new").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
}
