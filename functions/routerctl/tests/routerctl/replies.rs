//! Answers back into the conversation through a running `serve`: a backend slower than
//! Cognigy's HTTP Request node waits has its answer injected; a failing one gets
//! `on_failure`; the URL token never shows; an event that could not be answered is a 422;
//! a reply survives a kill -9 between the parent's success and its own delivery.

use crate::common::*;
use router_core::testing::cognigy::FakeCognigy;
use router_core::testing::http::{Canned, Gate, TestServer};
use std::time::Duration;

const TOKEN: &str = "endpoint-url-token-7f3a9c";

fn routes(cognigy: &FakeCognigy, backend: &str, extra: &str) -> String {
    format!(
        "[ingest]\nauth = \"flows\"\n[delivery]\nallow_private_targets = true\n\
         [auth.flows]\ntype = \"api_key\"\nsecret = \"router/ingest-key\"\n\
         [cognigy.support]\nbase_url = \"{}\"\nurl_token_secret = \"cognigy/support\"\n{extra}\n\
         [[route]]\nname = \"order-status\"\ntarget_url = \"{backend}\"\ntimeout_seconds = 30\n\
         template = '{{\"order\": {{{{ event.data.order_id | tojson }}}}}}'\n\
         reply = {{ cognigy = \"support\", mode = \"inject\", template = '{{\"text\": {{{{ response.json.summary | tojson }}}}, \"data\": {{\"order\": {{{{ response.json | tojson }}}}}}}}', on_failure = '{{\"text\": \"Sorry, I could not reach the order system.\"}}' }}\n\
         retry = {{ schedule = [\"1s\"], max_age = \"1h\" }}\n\
         triggers = [{{ event_type = \"intent\", name = \"order-status\" }}]\n",
        cognigy.base_url()
    )
}

fn workspace(routes: &str) -> Workspace {
    let ws = Workspace::new(routes);
    let path = ws.path("secrets.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!("\"cognigy/support\" = \"{TOKEN}\"\n"));
    std::fs::write(path, text).unwrap();
    ws
}

const ORDER_EVENT: &str = r#"{"id":"evt_order","event_type":"intent","name":"order-status","user_id":"usr_7","session_id":"sess_7","data":{"order_id":"A-1001"}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_slower_than_the_flow_waits_has_its_answer_injected() {
    let cognigy = FakeCognigy::start(TOKEN).await;
    // The backend holds its answer until the flow has had its own: the 202 comes while
    // the backend is still working (longer than the HTTP Request node would wait).
    let gate = Gate::new();
    let backend = TestServer::scripted(vec![
        Canned::json(r#"{"summary": "A-1001 ships tomorrow", "carrier": "DHL"}"#).until(&gate),
    ])
    .await;
    let ws = workspace(&routes(&cognigy, &backend.url("/status"), ""));
    let serve = ws.serve(&[]);
    let (status, _) = serve.trigger(ORDER_EVENT).await;
    assert_eq!(status, 202, "the flow gets its answer at once");
    assert!(
        cognigy.requests().is_empty(),
        "nothing injected before the backend answered"
    );
    assert!(backend.wait_for(|r| !r.is_empty()).await, "{}", serve.log());
    gate.open();
    assert!(
        wait_until(|| !cognigy.accepted().is_empty()).await,
        "{}",
        serve.log()
    );
    let got = cognigy.accepted();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].mode, "inject");
    assert_eq!(got[0].body["userId"], "usr_7");
    assert_eq!(got[0].body["sessionId"], "sess_7");
    assert_eq!(got[0].body["text"], "A-1001 ships tomorrow");
    assert_eq!(got[0].body["data"]["order"]["carrier"], "DHL");
    assert_eq!(backend.requests()[0].json()["order"], "A-1001");
    assert!(
        !serve.log().contains(TOKEN),
        "the URL token leaked into the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanently_failing_backend_gets_on_failure_into_the_session() {
    let cognigy = FakeCognigy::start(TOKEN).await;
    let backend = TestServer::always(404).await;
    let ws = workspace(&routes(&cognigy, &backend.url("/status"), ""));
    let serve = ws.serve(&[]);
    assert_eq!(serve.trigger(ORDER_EVENT).await.0, 202);
    assert!(
        wait_until(|| !cognigy.accepted().is_empty()).await,
        "{}",
        serve.log()
    );
    assert_eq!(
        cognigy.accepted()[0].body["text"],
        "Sorry, I could not reach the order system."
    );
    let rows = dlq_rows(&ws);
    assert_eq!(rows.len(), 1, "the parent is dead-lettered: {rows:?}");
    assert_eq!(rows[0]["failure"], "http_status");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_without_ids_is_422_naming_the_field() {
    let cognigy = FakeCognigy::start(TOKEN).await;
    let backend = TestServer::always(200).await;
    let ws = workspace(&routes(&cognigy, &backend.url("/status"), ""));
    let serve = ws.serve(&[]);
    let (status, body) = serve
        .trigger(r#"{"event_type":"intent","name":"order-status","user_id":"usr_7"}"#)
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "session_id", "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("order-status"),
        "{body}"
    );
    let (status, _) = serve
        .trigger(r#"{"event_type":"intent","name":"order-status","session_id":"s"}"#)
        .await;
    assert_eq!(status, 422);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(backend.requests().is_empty(), "nothing was queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_url_token_never_shows_in_render_or_check_output() {
    let cognigy = FakeCognigy::start(TOKEN).await;
    let backend = TestServer::always(200).await;
    let ws = workspace(&routes(&cognigy, &backend.url("/status"), ""));
    std::fs::write(ws.path("event.json"), ORDER_EVENT).unwrap();
    std::fs::write(ws.path("answer.json"), r#"{"summary": "ok"}"#).unwrap();
    let event = ws.path("event.json");
    let answer = ws.path("answer.json");
    let render = ws.run(&[
        "render",
        "order-status",
        "--event",
        event.to_str().unwrap(),
        "--response",
        answer.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&render.stdout).into_owned();
    assert!(
        render.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&render.stderr)
    );
    assert!(
        text.contains("reply: POST ") && text.contains("/inject/***"),
        "{text}"
    );
    assert!(text.contains(r#""sessionId":"sess_7""#), "{text}");
    let probe = ws.run(&["routes", "check", "--probe"]);
    for out in [&render, &probe] {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains(TOKEN), "{all}");
    }
    assert!(
        cognigy
            .requests()
            .iter()
            .all(|r| !r.path.contains("inject")),
        "the probe sent nothing into a session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_survives_a_kill_9_between_the_parents_success_and_its_delivery() {
    let cognigy = FakeCognigy::start(TOKEN).await;
    cognigy.set_available(false);
    let backend = TestServer::scripted(vec![Canned::json(
        r#"{"summary": "A-1001 ships tomorrow"}"#,
    )])
    .await;
    let ws = workspace(&routes(
        &cognigy,
        &backend.url("/status"),
        "retry = { schedule = [\"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\"], max_age = \"1h\" }",
    ));
    let mut serve = ws.serve(&[]);
    assert_eq!(serve.trigger(ORDER_EVENT).await.0, 202);
    // The parent succeeded and its reply is on the queue, failing against the outage.
    assert!(
        wait_until(|| !cognigy.requests().is_empty()).await,
        "{}",
        serve.log()
    );
    serve.kill9();
    cognigy.set_available(true);
    let serve = ws.serve(&[]);
    assert!(
        wait_until(|| !cognigy.accepted().is_empty()).await,
        "{}",
        serve.log()
    );
    assert_eq!(cognigy.accepted()[0].body["text"], "A-1001 ships tomorrow");
    assert_eq!(backend.requests().len(), 1, "the backend was called once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqs_the_answer_is_injected_the_same_way() {
    let cognigy = FakeCognigy::start(TOKEN).await;
    let backend = TestServer::scripted(vec![Canned::json(r#"{"summary": "via SQS"}"#)]).await;
    let mut ws = workspace(&routes(&cognigy, &backend.url("/status"), ""));
    ws.use_moto_sqs().await;
    let serve = ws.serve(&[]);
    assert_eq!(serve.trigger(ORDER_EVENT).await.0, 202);
    assert!(
        wait_until(|| !cognigy.accepted().is_empty()).await,
        "{}",
        serve.log()
    );
    assert_eq!(cognigy.accepted()[0].body["text"], "via SQS");
}
