//! Accepted events: routes fire, one message each, 202 (or 200 when none fires); form
//! bodies like JSON; the same event id gives the same delivery ids.

use crate::common::*;
use axum::body::Body;
use axum::http::StatusCode;
use router_core::domain::DeliveryJob;
use serde_json::json;

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
