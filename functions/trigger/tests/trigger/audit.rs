//! One structured audit line per trigger, with id, routes, outcome and latency, and never
//! the event's data or the key.

use crate::common::*;
use router_core::testing::LogCapture;

#[tokio::test]
async fn each_trigger_logs_one_audit_line_without_data_or_secrets() {
    let (capture, _guard) = LogCapture::json();
    let h = harness().await;
    let queued = send(&h.app, json_request(HANDOVER)).await;
    send(
        &h.app,
        json_request(r#"{"event_type": "entity", "data": {"text": "agent please"}}"#),
    )
    .await;
    let bad = axum::http::Request::post(trigger::app::TRIGGER_PATH)
        .header("content-type", "application/json")
        .header("x-api-key", "not-the-key")
        .body(axum::body::Body::from(HANDOVER))
        .unwrap();
    send(&h.app, bad).await;

    let text = capture.text();
    let audits: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["target"] == "audit")
        .collect();
    assert_eq!(audits.len(), 3, "{text}");
    assert_eq!(audits[0]["event_id"], "evt_123");
    assert_eq!(audits[0]["outcome"], "queued");
    assert_eq!(audits[0]["routes"], "[\"crm-handoff\", \"ticketing\"]");
    assert!(audits[0]["latency_us"].is_u64());
    // The line names each delivery the 202 promised, so their log lines can be found.
    let ids = audits[0]["delivery_ids"].as_str().unwrap();
    for d in queued.body["deliveries"].as_array().unwrap() {
        let id = d["delivery_id"].as_str().unwrap();
        assert!(id.starts_with("dlv_") && ids.contains(id), "{ids}");
    }
    assert_eq!(audits[2]["delivery_ids"], "[]");
    assert_eq!(audits[1]["outcome"], "unrouted");
    assert_eq!(audits[2]["outcome"], "unauthorized");
    assert_eq!(audits[2]["status"], 401);
    assert!(!text.contains("agent please"), "event data leaked: {text}");
    assert!(
        !text.contains(KEY) && !text.contains("not-the-key"),
        "a key leaked: {text}"
    );
}

/// The log capture the audit tests rely on keeps exactly its own thread's lines, however
/// busy other threads are logging (their tests run beside it in this binary).
#[test]
fn a_capture_keeps_its_own_threads_lines_while_other_threads_log() {
    let noisy = std::thread::spawn(|| {
        let (other, _guard) = LogCapture::json();
        for _ in 0..500 {
            tracing::info!(target: "noise", "other thread");
        }
        other.text()
    });
    let (capture, guard) = LogCapture::json();
    for n in 0..200 {
        tracing::info!(n, "mine");
    }
    tracing::debug!("below info");
    drop(guard);
    tracing::info!("after the guard");
    let other = noisy.join().unwrap();

    let lines = capture.json_lines();
    assert_eq!(lines.len(), 200, "{}", capture.text());
    assert!(
        lines.iter().all(|l| l["message"] == "mine"),
        "{}",
        capture.text()
    );
    assert_eq!(other.matches("other thread").count(), 500);
    assert!(!other.contains("mine"));
}
