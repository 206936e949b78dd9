//! Refused requests: 400, 413, 415, 422 naming each field, problems for unknown paths, a
//! bounded answer to a body of many problems, and what a session-answering route needs.

use crate::common;
use crate::common::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};

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
