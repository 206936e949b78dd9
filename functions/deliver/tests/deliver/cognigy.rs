//! Answers into a Cognigy session: routes that target an endpoint, and reply routes whose
//! backend's answer (or `on_failure`) is queued as its own job and injected.

use crate::support::*;
use router_core::domain::{Answer, DeliveryJob};
use router_core::ports::ReceivedMessage;
use router_core::testing::cognigy::FakeCognigy;

const TOKEN: &str = "url-token-0123abcd";

fn profile(cognigy: &FakeCognigy) -> String {
    format!(
        "[delivery]\nallow_private_targets = true\n\n[cognigy.support]\nbase_url = \"{}\"\nurl_token_secret = \"cognigy/support\"\n\n",
        cognigy.base_url()
    )
}

fn harness(routes: &str) -> Harness {
    let h = Harness::new(routes);
    h.secrets.set("cognigy/support", TOKEN);
    h
}

/// A queued reply job, as the queue would hand it over.
fn received(m: &router_core::ports::OutgoingMessage, receive_count: u32) -> ReceivedMessage {
    let job = DeliveryJob::parse(&m.body).unwrap();
    ReceivedMessage {
        message_id: format!("msg-{}", job.delivery_id),
        receipt_handle: format!("rh-{}-{receive_count}", job.delivery_id),
        body: m.body.clone(),
        attributes: m.attributes.clone(),
        receive_count,
        sent_at_ms: router_core::time_fmt::now_ms(),
        group: None,
    }
}

#[tokio::test]
async fn a_cognigy_route_notifies_the_events_session_with_ids_from_the_event() {
    let cognigy = FakeCognigy::start(TOKEN).await;
    let h = harness(&format!(
        "{}[[route]]\nname = \"notify-user\"\ncognigy = {{ endpoint = \"support\", mode = \"notify\" }}\n\
         template = '{{\"text\": \"Your ticket is open.\", \"data\": {{\"t\": {{{{ event.data.text | tojson }}}}}}}}'\n\
         triggers = [{{ event_type = \"intent\" }}]\n",
        profile(&cognigy)
    ));
    let j = job("evt_n", "notify-user");
    assert!(!h.run_one(message(&j, 1)).await);
    let got = cognigy.accepted();
    assert_eq!(got.len(), 1, "{:?}", cognigy.requests());
    assert_eq!(got[0].mode, "notify");
    // The router's mark rides along, so the flow can tell it from user input.
    let mark =
        serde_json::json!({"injected": true, "route": "notify-user", "delivery_id": j.delivery_id});
    assert_eq!(
        got[0].body,
        serde_json::json!({"userId": "usr_1", "sessionId": "sess_1", "text": "Your ticket is open.", "data": {"t": "agent please", "webhookRouter": mark}})
    );
}

#[tokio::test]
async fn a_template_breaking_cognigys_limits_is_a_render_failure_and_the_token_stays_secret() {
    let cognigy = FakeCognigy::start(TOKEN).await;
    let h = harness(&format!(
        "{}[[route]]\nname = \"notify-user\"\ncognigy = {{ endpoint = \"support\", mode = \"notify\" }}\n\
         template = '{{\"text\": \"{{{{ \"x\" * 10001 }}}}\"}}'\ntriggers = [{{ event_type = \"intent\" }}]\n",
        profile(&cognigy)
    ));
    assert!(!h.run_one(message(&job("evt_big", "notify-user"), 1)).await);
    let dead = h.dead_letter();
    assert_eq!(dead.attributes["failure"], "render");
    assert!(
        dead.attributes["last_error"].contains("10000"),
        "{:?}",
        dead.attributes
    );
    assert!(cognigy.requests().is_empty(), "never sent");
    assert!(!format!("{dead:?}").contains(TOKEN));
}

#[tokio::test]
async fn an_unreadable_url_token_is_retried_and_never_shown() {
    let cognigy = FakeCognigy::start(TOKEN).await;
    let h = Harness::new(&format!(
        "{}[[route]]\nname = \"notify-user\"\ncognigy = {{ endpoint = \"support\", mode = \"notify\" }}\n\
         template = '{{\"text\": \"hi\"}}'\ntriggers = [{{ event_type = \"intent\" }}]\n",
        profile(&cognigy)
    ));
    assert!(
        h.run_one(message(&job("evt_t", "notify-user"), 1)).await,
        "retried"
    );
    assert!(cognigy.requests().is_empty());
    h.secrets.set("cognigy/support", "two words");
    assert!(!h.run_one(message(&job("evt_t", "notify-user"), 9)).await);
    let dead = h.dead_letter();
    assert_eq!(dead.attributes["failure"], "attempts_exhausted");
    assert!(
        !dead.attributes["last_error"].contains("two words"),
        "{:?}",
        dead.attributes
    );
}

fn reply_routes(cognigy: &FakeCognigy, backend: &TestServer) -> String {
    format!(
        "{}[[route]]\nname = \"order-status\"\ntarget_url = \"{}\"\n\
         template = '{{\"order\": {{{{ event.data.text | tojson }}}}}}'\n\
         reply = {{ cognigy = \"support\", mode = \"inject\", template = '{{\"text\": {{{{ response.json.summary | tojson }}}}, \"data\": {{\"status\": {{{{ response.status }}}}}}}}', on_failure = '{{\"text\": \"Sorry, no answer ({{{{ failure.reason }}}}).\"}}' }}\n\
         retry = {{ schedule = [\"1s\"], max_age = \"1h\" }}\n\
         triggers = [{{ event_type = \"intent\" }}]\n",
        profile(cognigy),
        backend.url("/status")
    )
}

#[tokio::test]
async fn a_backends_answer_is_queued_as_a_reply_job_and_injected() {
    let cognigy = FakeCognigy::start(TOKEN).await;
    let backend = TestServer::scripted(vec![Canned::json(
        r#"{"summary": "Shipped today", "eta": "2d"}"#,
    )])
    .await;
    let h = harness(&reply_routes(&cognigy, &backend));
    let parent = job("evt_o", "order-status");
    assert!(!h.run_one(message(&parent, 1)).await);
    assert!(
        cognigy.requests().is_empty(),
        "nothing injected yet: the reply is its own job"
    );
    let queued = h.queue.sent();
    assert_eq!(
        queued.len(),
        1,
        "one reply job queued before the parent settled"
    );
    let reply = DeliveryJob::parse(&queued[0].body).unwrap();
    let r = reply.reply.as_ref().unwrap();
    assert_eq!(r.parent, parent.delivery_id);
    assert!(matches!(
        &r.answer,
        Answer::Response {
            status: 200,
            json: Some(_),
            ..
        }
    ));
    assert_ne!(reply.delivery_id, parent.delivery_id);
    assert_eq!(
        reply.delivery_id,
        parent
            .reply_job(r.answer.clone(), time::OffsetDateTime::now_utc())
            .delivery_id,
        "derived, stable"
    );

    // The reply job: injected, and it never makes a reply of its own.
    assert!(!h.run_one(received(&queued[0], 1)).await);
    let got = cognigy.accepted();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].mode, "inject");
    let mark = serde_json::json!({"injected": true, "route": "order-status", "delivery_id": reply.delivery_id});
    assert_eq!(
        got[0].body,
        serde_json::json!({"userId": "usr_1", "sessionId": "sess_1", "text": "Shipped today", "data": {"status": 200, "webhookRouter": mark}})
    );
    assert_eq!(
        cognigy.requests()[0].header("webhook-id"),
        Some(reply.delivery_id.as_str())
    );
    assert_eq!(h.queue.sent().len(), 1, "no reply of a reply");
    assert_eq!(
        backend.requests().len(),
        1,
        "the backend is not called again"
    );
}

#[tokio::test]
async fn a_failed_backend_sends_on_failure_instead() {
    let cognigy = FakeCognigy::start(TOKEN).await;
    let backend = TestServer::always(404).await;
    let h = harness(&reply_routes(&cognigy, &backend));
    assert!(!h.run_one(message(&job("evt_f", "order-status"), 1)).await);
    assert_eq!(
        h.dead_letter().attributes["failure"],
        "http_status",
        "the parent is dead-lettered"
    );
    let queued = h.queue.sent();
    assert_eq!(queued.len(), 1);
    assert!(!h.run_one(received(&queued[0], 1)).await);
    let got = cognigy.accepted();
    assert_eq!(got[0].body["text"], "Sorry, no answer (http_status).");
}

#[tokio::test]
async fn a_reply_that_cannot_be_queued_keeps_the_parent_on_the_queue() {
    let cognigy = FakeCognigy::start(TOKEN).await;
    let backend = TestServer::scripted(vec![Canned::json(r#"{"summary": "ok"}"#)]).await;
    let h = harness(&reply_routes(&cognigy, &backend));
    h.queue.then(SendBehaviour::Unavailable);
    assert!(
        h.run_one(message(&job("evt_q", "order-status"), 1)).await,
        "reported failed"
    );
    assert_eq!(h.delays(), [std::time::Duration::from_secs(5)]);
    assert!(h.queue.sent().is_empty());
}

#[tokio::test]
async fn a_reply_the_endpoint_refuses_is_dead_lettered_without_showing_the_token() {
    let cognigy = FakeCognigy::start("another-token").await;
    let backend = TestServer::scripted(vec![Canned::json(r#"{"summary": "ok"}"#)]).await;
    let h = harness(&reply_routes(&cognigy, &backend));
    assert!(!h.run_one(message(&job("evt_r", "order-status"), 1)).await);
    let queued = h.queue.sent();
    // The endpoint answers 404 to a wrong token: permanent, dead-lettered with its reason.
    assert!(!h.run_one(received(&queued[0], 1)).await);
    let dead = h.dead_letter();
    assert_eq!(dead.attributes["failure"], "http_status");
    assert!(!format!("{dead:?}").contains(TOKEN));
    // `on_failure` is tried instead; refused the same way, it is only dead-lettered.
    let queued = h.queue.sent();
    assert_eq!(queued.len(), 2, "the reply, then its on_failure");
    assert!(!h.run_one(received(&queued[1], 1)).await);
    assert_eq!(h.dlq.sent().len(), 2);
    assert_eq!(
        h.queue.sent().len(),
        2,
        "an on_failure that fails goes nowhere else"
    );
}

/// A nested answer `levels` deep under `summary`.
fn deep_answer(levels: usize) -> String {
    format!(
        r#"{{"summary": {}"x"{}}}"#,
        "[".repeat(levels - 1),
        "]".repeat(levels - 1)
    )
}

#[tokio::test]
async fn a_reply_that_fails_for_good_sends_on_failure_into_the_session_instead() {
    let long = format!(r#"{{"summary": "{}"}}"#, "x".repeat(10_001));
    let huge = format!(
        r#"{{"summary": "ok", "pad": "{}"}}"#,
        "x".repeat(300 * 1024)
    );
    let cases: [(&str, Canned); 5] = [
        ("an answer over 256 KiB", Canned::json(&huge)),
        ("text over Cognigy's 10,000 characters", Canned::json(&long)),
        (
            "an answer that is not JSON",
            Canned::status(200).body("plain words"),
        ),
        (
            "an answer without the field the template reads",
            Canned::json(r#"{"other": 1}"#),
        ),
        (
            "an answer nesting deeper than 64 levels",
            Canned::json(&deep_answer(126)),
        ),
    ];
    for (case, answer) in cases {
        let cognigy = FakeCognigy::start(TOKEN).await;
        let backend = TestServer::scripted(vec![answer]).await;
        let h = harness(&reply_routes(&cognigy, &backend));
        let parent = job("evt_x", "order-status");
        assert!(!h.run_one(message(&parent, 1)).await, "{case}");
        let queued = h.queue.sent();
        assert_eq!(queued.len(), 1, "{case}: the reply job");
        // The reply fails for good: dead-lettered, and on_failure queued in its place.
        assert!(!h.run_one(received(&queued[0], 1)).await, "{case}");
        let dead = h.dead_letter();
        assert_eq!(dead.attributes["failure"], "render", "{case}");
        let queued = h.queue.sent();
        assert_eq!(queued.len(), 2, "{case}: on_failure queued");
        let failure = DeliveryJob::parse(&queued[1].body).unwrap();
        assert_eq!(
            failure.delivery_id,
            parent
                .reply_job(
                    Answer::Failure {
                        failure: String::new(),
                        attempts: 0,
                        last_status: None,
                        last_error: String::new()
                    },
                    time::OffsetDateTime::now_utc()
                )
                .delivery_id,
            "{case}: the id the parent's own failure would have had"
        );
        assert!(!h.run_one(received(&queued[1], 1)).await, "{case}");
        let got = cognigy.accepted();
        assert_eq!(got.len(), 1, "{case}");
        assert_eq!(got[0].body["text"], "Sorry, no answer (render).", "{case}");
        assert_eq!(h.queue.sent().len(), 2, "{case}: nothing more");
    }
}
