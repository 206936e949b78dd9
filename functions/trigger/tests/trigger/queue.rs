//! Enqueueing: 503 with Retry-After when the queue is down, one retry of failed entries,
//! calls split by count and size, and what the queue refuses for good.

use crate::common;
use crate::common::*;
use axum::http::StatusCode;
use router_core::domain::DeliveryJob;
use router_core::testing::SendBehaviour;
use serde_json::json;

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
