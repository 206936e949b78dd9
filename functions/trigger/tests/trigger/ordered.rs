//! Ordered routes: the FIFO queue in the session's group, and init errors (the ingest
//! key missing, an ordered route without a FIFO queue).

use crate::common;
use crate::common::*;
use axum::http::StatusCode;
use router_core::domain::DeliveryJob;

#[tokio::test]
async fn init_fails_naming_the_secret_when_the_ingest_key_is_missing() {
    let routes = std::sync::Arc::new(
        router_core::routes::Routes::parse(common::ROUTES, std::path::Path::new("routes.toml"))
            .unwrap(),
    );
    let backends = router_core::backends::Backends {
        queue: std::sync::Arc::new(router_core::testing::FakeQueue::new()),
        dead_letters: std::sync::Arc::new(router_core::testing::FakeQueue::new()),
        secrets: std::sync::Arc::new(router_core::testing::MemorySecrets::default()),
        ordered: None,
    };
    let err = trigger::State::new(routes, backends, 10).await.unwrap_err();
    assert!(err.to_string().contains("router/ingest-key"), "{err}");
}

fn ordered_routes() -> String {
    format!(
        "{}\n[[route]]\nname = \"timeline\"\ntarget_url = \"https://crm.example.com/t\"\nordering = \"session\"\n\
         template = '{{}}'\ntriggers = [{{ event_type = \"custom\" }}]\n\
         [[route]]\nname = \"plain\"\ntarget_url = \"https://crm.example.com/p\"\ntemplate = '{{}}'\ntriggers = [{{ event_type = \"custom\" }}]\n",
        common::ROUTES
    )
}

#[tokio::test]
async fn an_ordered_routes_job_goes_to_the_fifo_queue_in_its_sessions_group() {
    let h = harness_with(&ordered_routes(), 10).await;
    let reply = send(
        &h.app,
        json_request(r#"{"id": "evt_o1", "event_type": "custom", "session_id": "sess_9"}"#),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    let fifo = h.ordered_queue.sent();
    assert_eq!(fifo.len(), 1);
    let job = DeliveryJob::parse(&fifo[0].body).unwrap();
    assert_eq!(job.route.as_str(), "timeline");
    assert_eq!(fifo[0].dedup_id.as_deref(), Some(job.delivery_id.as_str()));
    assert_eq!(
        fifo[0].group.as_deref(),
        Some(router_core::wire::queue::message_group(&job).as_str())
    );
    assert!(fifo[0].group.as_deref().unwrap().starts_with("timeline:"));
    let standard = h.queue.sent();
    assert_eq!(standard.len(), 1);
    assert_eq!(standard[0].attributes["route"], "plain");
    assert!(standard[0].group.is_none());
    // Another event of the same session: the same group; another session: another.
    send(
        &h.app,
        json_request(r#"{"event_type": "custom", "session_id": "sess_9"}"#),
    )
    .await;
    send(
        &h.app,
        json_request(r#"{"event_type": "custom", "user_id": "usr_2"}"#),
    )
    .await;
    let groups: Vec<_> = h
        .ordered_queue
        .sent()
        .iter()
        .map(|m| m.group.clone())
        .collect();
    assert_eq!(groups[0], groups[1]);
    assert_ne!(groups[0], groups[2]);
}

#[tokio::test]
async fn an_event_an_ordered_route_cannot_order_is_422() {
    let h = harness_with(&ordered_routes(), 10).await;
    let reply = send(&h.app, json_request(r#"{"event_type": "custom"}"#)).await;
    assert_problem(&reply, 422);
    assert_eq!(reply.body["errors"][0]["field"], "session_id");
    assert!(reply.body["detail"].as_str().unwrap().contains("user_id"));
    assert!(h.ordered_queue.sent().is_empty() && h.queue.sent().is_empty());
}

#[tokio::test]
async fn an_ordered_route_without_a_fifo_queue_is_an_init_error() {
    let routes = std::sync::Arc::new(
        router_core::routes::Routes::parse(&ordered_routes(), std::path::Path::new("r.toml"))
            .unwrap(),
    );
    let backends = router_core::backends::Backends {
        queue: std::sync::Arc::new(router_core::testing::FakeQueue::new()),
        dead_letters: std::sync::Arc::new(router_core::testing::FakeQueue::new()),
        secrets: std::sync::Arc::new(router_core::testing::MemorySecrets::with(&[(
            "router/ingest-key",
            KEY,
        )])),
        ordered: None,
    };
    let err = trigger::State::new(routes, backends, 10).await.unwrap_err();
    assert!(err.to_string().contains("ORDERED_QUEUE_URL"), "{err}");
}
