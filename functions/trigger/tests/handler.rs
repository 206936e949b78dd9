//! The trigger router driven in-process with fakes: every status and every auth variant.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use router_core::domain::DeliveryJob;
use router_core::ports::QueueDepth;
use router_core::testing::SendBehaviour;
use serde_json::json;

fn assert_problem(reply: &Reply, status: u16) {
    assert_eq!(reply.status.as_u16(), status, "{:?}", reply.body);
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    assert_eq!(reply.body["status"], status);
    assert!(reply.body["title"].is_string() && reply.body["type"].is_string());
    assert!(reply.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
}

#[tokio::test]
async fn when_two_routes_fire_should_queue_two_messages_and_answer_202() {
    let h = harness().await;
    let reply = send(&h.app, json_request(HANDOVER)).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(reply.body["status"], "queued");
    assert_eq!(reply.body["event_id"], "evt_123");
    let deliveries = reply.body["deliveries"].as_array().unwrap();
    let routes: Vec<_> = deliveries
        .iter()
        .map(|d| d["route"].as_str().unwrap())
        .collect();
    assert_eq!(routes, ["crm-handoff", "ticketing"]);

    let sent = h.queue.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(h.queue.send_calls(), 1, "one batch");
    for (m, d) in sent.iter().zip(deliveries) {
        let job = DeliveryJob::parse(&m.body).unwrap();
        assert_eq!(job.route.as_str(), d["route"]);
        assert_eq!(job.delivery_id, d["delivery_id"]);
        assert_eq!(job.event.data.as_ref().unwrap()["text"], "agent please");
        assert_eq!(m.attributes["route"], job.route.as_str());
        assert_eq!(m.attributes["delivery_id"], job.delivery_id);
    }
}

#[tokio::test]
async fn when_no_route_fires_should_answer_200_unrouted() {
    let h = harness().await;
    let reply = send(
        &h.app,
        json_request(r#"{"id": "e1", "event_type": "entity"}"#),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body,
        json!({"status": "unrouted", "event_id": "e1", "deliveries": []})
    );
    assert!(h.queue.sent().is_empty());
}

#[tokio::test]
async fn a_form_body_is_accepted_like_json() {
    let h = harness().await;
    let body = "id=evt_f&event_type=intent&name=handover&score=0.9&user_id=u1&data=%7B%22text%22%3A%22hi%22%7D";
    let req = post("application/x-www-form-urlencoded; charset=utf-8")
        .body(Body::from(body))
        .unwrap();
    let reply = send(&h.app, req).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    let job = DeliveryJob::parse(&h.queue.sent()[0].body).unwrap();
    assert_eq!(job.event.score, 0.9);
    assert_eq!(job.event.data.unwrap()["text"], "hi");
}

#[tokio::test]
async fn the_same_event_id_gives_the_same_delivery_ids() {
    let h = harness().await;
    let a = send(&h.app, json_request(HANDOVER)).await;
    let b = send(&h.app, json_request(HANDOVER)).await;
    assert_eq!(a.body["deliveries"], b.body["deliveries"]);

    let keyed = |key: &str| {
        post("application/json")
            .header("idempotency-key", key)
            .body(Body::from(r#"{"event_type": "flow_end"}"#))
            .unwrap()
    };
    let c = send(&h.app, keyed("k-1")).await;
    let d = send(&h.app, keyed("k-1")).await;
    assert_eq!(c.body["event_id"], "k-1");
    assert_eq!(c.body["deliveries"], d.body["deliveries"]);
    let e = send(&h.app, json_request(r#"{"event_type": "flow_end"}"#)).await;
    assert_ne!(
        e.body["event_id"], c.body["event_id"],
        "without id or key one is generated"
    );
}

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
    let state = trigger::State::with_reread(routes, backends, 10, std::time::Duration::ZERO)
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

#[tokio::test]
async fn malformed_bodies_get_400() {
    let h = harness().await;
    for body in ["{", "[1]", "nope", "{\"event_type\":\"intent\"} trailing"] {
        assert_problem(&send(&h.app, json_request(body)).await, 400);
    }
    let req = post("application/x-www-form-urlencoded")
        .body(Body::from(&b"event_type=%ff"[..]))
        .unwrap();
    assert_problem(&send(&h.app, req).await, 400);
    assert!(h.queue.sent().is_empty());
}

#[tokio::test]
async fn schema_violations_get_422_naming_each_field() {
    let h = harness().await;
    let reply = send(
        &h.app,
        json_request(r#"{"id": "bad id!", "event_type": "nope", "score": "x", "extra": 1}"#),
    )
    .await;
    assert_problem(&reply, 422);
    let mut fields: Vec<_> = reply.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    fields.sort();
    assert_eq!(fields, ["event_type", "extra", "id", "score"]);
    let detail = reply.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("event_type") && detail.contains("score"),
        "{detail}"
    );
}

#[tokio::test]
async fn bodies_over_max_body_kb_get_413() {
    let h = harness().await;
    let big = format!(
        r#"{{"event_type": "intent", "data": {{"x": "{}"}}}}"#,
        "a".repeat(5000)
    );
    assert_problem(&send(&h.app, json_request(&big)).await, 413);
    // Without a Content-Length (streamed), the limit still holds.
    let stream = futures_stream(big.into_bytes());
    let req = post("application/json").body(stream).unwrap();
    assert_problem(&send(&h.app, req).await, 413);
    assert!(h.queue.sent().is_empty());
}

fn futures_stream(bytes: Vec<u8>) -> Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(512).map(|c| Ok(c.to_vec())).collect();
    Body::from_stream(tokio_stream_iter(chunks))
}

fn tokio_stream_iter(
    items: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    struct Iter(std::vec::IntoIter<Result<Vec<u8>, std::io::Error>>);
    impl futures_core::Stream for Iter {
        type Item = Result<Vec<u8>, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    Iter(items.into_iter())
}

#[tokio::test]
async fn other_content_types_get_415() {
    let h = harness().await;
    for ct in [
        "text/plain",
        "application/xml",
        "multipart/form-data; boundary=x",
    ] {
        let req = post(ct).body(Body::from(HANDOVER)).unwrap();
        assert_problem(&send(&h.app, req).await, 415);
    }
    let req = Request::post(trigger::app::TRIGGER_PATH)
        .header("x-api-key", KEY)
        .body(Body::from(HANDOVER))
        .unwrap();
    assert_problem(&send(&h.app, req).await, 415);
}

#[tokio::test]
async fn when_the_queue_is_down_should_answer_503_with_retry_after() {
    let h = harness().await;
    h.queue
        .then(SendBehaviour::Unavailable)
        .then(SendBehaviour::Unavailable);
    let reply = send(&h.app, json_request(HANDOVER)).await;
    assert_problem(&reply, 503);
    assert_eq!(reply.headers["retry-after"], "2");
    assert_eq!(h.queue.send_calls(), 2, "the batch was tried twice");
    assert!(h.queue.sent().is_empty());
}

#[tokio::test]
async fn failed_entries_are_retried_once_and_then_it_is_202() {
    let h = harness().await;
    h.queue.then(SendBehaviour::FailEntries(vec![1]));
    let reply = send(&h.app, json_request(HANDOVER)).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(h.queue.send_calls(), 2);
    let sent = h.queue.sent();
    assert_eq!(sent.len(), 2, "each message exactly once: {sent:?}");
    assert_ne!(sent[0].attributes["route"], sent[1].attributes["route"]);
}

#[tokio::test]
async fn entries_failing_twice_give_503() {
    let h = harness().await;
    // The second message fails, then fails again as the only entry of the retry.
    h.queue
        .then(SendBehaviour::FailEntries(vec![1]))
        .then(SendBehaviour::FailEntries(vec![0]));
    let reply = send(&h.app, json_request(HANDOVER)).await;
    assert_problem(&reply, 503);
    assert!(reply.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn more_than_ten_deliveries_go_in_batches_of_ten() {
    let mut text = String::from(common::ROUTES);
    for i in 0..12 {
        text.push_str(&format!(
            "\n[[route]]\nname = \"extra-{i}\"\ntarget_url = \"https://x.example/\"\ntemplate = '{{}}'\ntriggers = [{{ event_type = \"custom\" }}]\n"
        ));
    }
    let h = harness_with(&text, 10).await;
    let reply = send(&h.app, json_request(r#"{"event_type": "custom"}"#)).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(reply.body["deliveries"].as_array().unwrap().len(), 12);
    assert_eq!(h.queue.send_calls(), 2);
    assert_eq!(h.queue.sent().len(), 12);
}

/// Three routes firing on `custom` events, and bodies up to 1 MiB.
fn big_routes() -> String {
    let mut text = String::from(
        "[ingest]\nauth = \"flows\"\nmax_body_kb = 1024\n[auth.flows]\ntype = \"api_key\"\nsecret = \"router/ingest-key\"\n",
    );
    for i in 0..3 {
        text.push_str(&format!(
            "\n[[route]]\nname = \"big-{i}\"\ntarget_url = \"https://x.example/\"\ntemplate = '{{}}'\ntriggers = [{{ event_type = \"custom\" }}]\n"
        ));
    }
    text
}

fn custom_event_with_text(text: &str) -> String {
    json!({"event_type": "custom", "data": {"text": text}}).to_string()
}

#[tokio::test]
async fn calls_are_split_by_size_as_well_as_by_count() {
    let h = harness_with(&big_routes(), 10).await;
    // Three messages of ~400 KB: no call to the queue may carry more than 1 MiB.
    let reply = send(
        &h.app,
        json_request(&custom_event_with_text(&"x".repeat(400_000))),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    assert_eq!(h.queue.send_calls(), 2);
    assert_eq!(h.queue.sent().len(), 3);
}

#[tokio::test]
async fn an_event_too_large_to_queue_is_413_naming_why_never_503() {
    let h = harness_with(&big_routes(), 10).await;
    // Within max_body_kb, but its delivery message (the event plus the job around it,
    // with room for a dead-letter copy's attributes) is more than SQS takes.
    let reply = send(
        &h.app,
        json_request(&custom_event_with_text(&"x".repeat(1_047_000))),
    )
    .await;
    assert_problem(&reply, 413);
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("too large to queue"),
        "{:?}",
        reply.body
    );
    assert_eq!(h.queue.send_calls(), 0, "nothing is half-queued");
}

#[tokio::test]
async fn an_event_the_queue_refuses_for_good_is_422_and_not_retried() {
    let h = harness().await;
    h.queue.then(SendBehaviour::Refuse);
    let reply = send(&h.app, json_request(HANDOVER)).await;
    assert_problem(&reply, 422);
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("cannot be queued"),
        "{:?}",
        reply.body
    );
    assert_eq!(h.queue.send_calls(), 1, "retrying cannot help");
}

#[tokio::test]
async fn characters_sqs_refuses_are_escaped_in_the_queue_body() {
    let h = harness_with(&big_routes(), 10).await;
    let text = "noncharacters \u{FFFF}\u{FFFE}, controls \u{0}\u{1}\u{8}\u{B}\u{1F}, and fine: \u{FFFD} 😀";
    let reply = send(&h.app, json_request(&custom_event_with_text(text))).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    for m in h.queue.sent() {
        assert!(
            router_core::ports::limits::check_message(&m).is_ok(),
            "{:?}",
            m.body
        );
        let job = DeliveryJob::parse(&m.body).unwrap();
        assert_eq!(
            job.event.data.unwrap()["text"],
            text,
            "the event survives intact"
        );
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_get_problems() {
    let h = harness().await;
    let reply = send(&h.app, Request::get("/nope").body(Body::empty()).unwrap()).await;
    assert_problem(&reply, 404);
    let reply = send(
        &h.app,
        Request::get(trigger::app::TRIGGER_PATH)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_problem(&reply, 405);
}

async fn health(h: &Harness) -> Reply {
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

#[tokio::test]
async fn an_event_a_session_answering_route_cannot_answer_is_422() {
    let text = format!(
        "{}\n[cognigy.support]\nbase_url = \"https://endpoint-trial.cognigy.ai\"\nurl_token_secret = \"c/t\"\n\
         [[route]]\nname = \"notify-user\"\ncognigy = {{ endpoint = \"support\", mode = \"notify\" }}\n\
         template = '{{\"text\": \"hi\"}}'\ntriggers = [{{ event_type = \"custom\" }}]\n",
        common::ROUTES
    );
    let h = harness_with(&text, 10).await;
    let reply = send(
        &h.app,
        json_request(r#"{"event_type": "custom", "user_id": "u"}"#),
    )
    .await;
    assert_problem(&reply, 422);
    assert_eq!(reply.body["errors"][0]["field"], "session_id");
    assert!(h.queue.sent().is_empty(), "nothing queued");
    // Ids Cognigy would refuse are refused here, before the backend is called or anything
    // queued: 256 characters go, 257 do not.
    for (field, other) in [("session_id", "user_id"), ("user_id", "session_id")] {
        let body = serde_json::json!({"event_type": "custom", field: "s".repeat(257), other: "u"});
        let reply = send(&h.app, json_request(&body.to_string())).await;
        assert_problem(&reply, 422);
        assert_eq!(reply.body["errors"][0]["field"], field, "{}", reply.body);
        assert!(
            reply.body["errors"][0]["reason"]
                .as_str()
                .unwrap()
                .contains("256 characters"),
            "{}",
            reply.body
        );
    }
    assert!(h.queue.sent().is_empty(), "nothing queued");
    let body =
        serde_json::json!({"event_type": "custom", "user_id": "u", "session_id": "s".repeat(256)});
    let reply = send(&h.app, json_request(&body.to_string())).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_body_of_many_problems_gets_a_bounded_answer() {
    let h = harness().await;
    // A body full of unknown form fields: the first 20 named, the rest counted.
    let mut body = String::from("event_type=intent");
    while body.len() < 3900 {
        body.push_str(&format!("&unknown{}=x", body.len()));
    }
    let fields = body.matches('&').count();
    let req = post("application/x-www-form-urlencoded")
        .body(Body::from(body.clone()))
        .unwrap();
    let reply = send(&h.app, req).await;
    assert_problem(&reply, 422);
    let answer_bytes = reply.body.to_string().len();
    let errors = reply.body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), router_core::event::MAX_PROBLEMS);
    assert_eq!(
        reply.body["more_errors"].as_u64().unwrap() as usize,
        fields - router_core::event::MAX_PROBLEMS
    );
    assert!(
        answer_bytes < 10 * 1024,
        "the answer is {answer_bytes} bytes for a {} byte body",
        body.len()
    );
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
