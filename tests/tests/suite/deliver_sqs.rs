//! The deliver handler on real SQS queues and Secrets Manager (moto_server), driven as
//! Lambda drives it: receive a batch from the queue, `handle_batch`, delete every record
//! not reported failed. Targets are real HTTP servers on 127.0.0.1.

use deliver::Deliverer;
use router_core::aws::{SecretsManagerStore, SqsQueue};
use router_core::backends::Backends;
use router_core::domain::{DeliveryJob, EventId, EventType, RouteName, TriggerEvent};
use router_core::ports::{OutgoingMessage, Queue, QueueDepth, ReceivedMessage, SecretStore};
use router_core::routes::Routes;
use router_core::secrets::Secret;
use router_core::testing::http::{Canned, TestServer};
use router_core::wire::queue::job_message;
use router_tests::{create_moto_queues, moto_sdk_config};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The queue's own visibility timeout: far longer than any retry delay used here, so a
/// message that comes back early came back because of the handler's delay.
const VISIBILITY: Duration = Duration::from_secs(600);
const MAX_RECEIVE_COUNT: u32 = 5;
/// A Standard Webhooks example secret.
const SIGNING_KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

// ---------------------------------------------------------------- a target

/// `/ok` answers 200, `/gone` 404, `/flaky` 500 on its first request and 200 after.
async fn start_target() -> TestServer {
    let flaky_seen = std::sync::atomic::AtomicUsize::new(0);
    TestServer::start(move |req, _| match req.path_only() {
        "/ok" => Canned::status(200),
        "/flaky" if flaky_seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 => {
            Canned::status(500)
        }
        "/flaky" => Canned::status(200),
        _ => Canned::status(404),
    })
    .await
}

// ---------------------------------------------------------------- the set-up

/// Metric lines are checked to be JSON and dropped (stdout would bypass test capture).
#[derive(Debug)]
struct JsonLines;

impl deliver::metrics::MetricsSink for JsonLines {
    fn emit(&self, line: &str) {
        serde_json::from_str::<serde_json::Value>(line).expect("a metric line is JSON");
    }
}

struct Setup {
    queue: Arc<SqsQueue>,
    dlq: Arc<SqsQueue>,
    deliverer: Deliverer,
    target: TestServer,
}

async fn setup() -> Setup {
    let target = start_target().await;
    let port = target.port;
    let sdk = moto_sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (queue_url, dlq_url) = create_moto_queues(&sqs, VISIBILITY, MAX_RECEIVE_COUNT).await;
    let secrets = SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&sdk));
    let signing_id = format!("router/signing-{}", uuid::Uuid::new_v4().simple());
    secrets
        .put(&signing_id, &Secret::new(SIGNING_KEY.to_owned()))
        .await
        .expect("store the signing key on moto");

    let mut toml = format!(
        "[delivery]\nallow_private_targets = true\n\n[signing]\nsecret = \"{signing_id}\"\n"
    );
    for name in ["ok", "gone", "flaky"] {
        toml.push_str(&format!(
            "\n[[route]]\nname = \"to-{name}\"\ntarget_url = \"http://127.0.0.1:{port}/{name}\"\n\
             template = '{{\"user\": {{{{ event.user_id | tojson }}}}, \"attempt\": {{{{ delivery.attempt }}}}}}'\n\
             retry = {{ schedule = [\"2s\"], max_age = \"1h\" }}\n\
             triggers = [{{ event_type = \"intent\" }}]\n"
        ));
    }
    // `to-down`: a port nobody listens on, its circuit open after one refusal.
    let down = router_core::testing::http::closed_port().await;
    toml.push_str(&format!(
        "\n[[route]]\nname = \"to-down\"\ntarget_url = \"http://127.0.0.1:{down}/down\"\n\
         template = '{{\"attempt\": {{{{ delivery.attempt }}}}}}'\n\
         circuit_breaker = {{ failures = 1, min_duration = \"0s\" }}\n\
         retry = {{ schedule = [\"2s\", \"2s\"], max_age = \"1h\" }}\n\
         triggers = [{{ event_type = \"intent\" }}]\n"
    ));
    let routes =
        Routes::parse(&toml, Path::new("/tmp/routes.toml")).unwrap_or_else(|e| panic!("{e}"));
    let queue = Arc::new(SqsQueue::new(sqs.clone(), queue_url));
    let dlq = Arc::new(SqsQueue::new(sqs, dlq_url));
    let backends = Backends {
        queue: queue.clone(),
        dead_letters: dlq.clone(),
        secrets: Arc::new(secrets),
        ordered: None,
    };
    let deliverer = Deliverer::new(Arc::new(routes), backends, false)
        .unwrap()
        .with_metrics(Arc::new(JsonLines));
    Setup {
        queue,
        dlq,
        deliverer,
        target,
    }
}

fn job(event_id: &str, route: &str) -> DeliveryJob {
    let event = TriggerEvent {
        id: EventId::parse(event_id).unwrap(),
        event_type: EventType::Intent,
        name: Some("handover".into()),
        score: 0.9,
        user_id: Some("usr_1".into()),
        session_id: None,
        data: None,
    };
    DeliveryJob::new(
        &event,
        &RouteName::parse(route).unwrap(),
        router_core::time_fmt::now(),
    )
}

/// Enqueues jobs as the trigger function does: body plus `route` and `delivery_id`.
async fn enqueue(q: &SqsQueue, jobs: &[&DeliveryJob]) {
    let batch: Vec<OutgoingMessage> = jobs.iter().map(|j| job_message(j)).collect();
    assert!(q.send_batch(&batch).await.unwrap().is_empty());
}

/// Receives until `n` messages arrived, or PATIENCE passed.
async fn receive(q: &SqsQueue, n: usize) -> Vec<ReceivedMessage> {
    let deadline = Instant::now() + router_core::testing::PATIENCE;
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        got.extend(
            q.receive(n - got.len(), Duration::from_secs(1), None)
                .await
                .unwrap(),
        );
    }
    got
}

/// One invocation as Lambda makes it: the batch goes to the handler, and every record
/// not reported failed is deleted. Returns the failed message ids.
async fn invoke(s: &Setup, batch: Vec<ReceivedMessage>) -> Vec<String> {
    let failed = s.deliverer.handle_batch(batch.clone()).await;
    let done: Vec<String> = batch
        .iter()
        .filter(|m| !failed.contains(&m.message_id))
        .map(|m| m.receipt_handle.clone())
        .collect();
    if !done.is_empty() {
        for r in s.queue.delete_batch(&done).await {
            r.expect("delete a handled message");
        }
    }
    failed
}

async fn depth(q: &SqsQueue) -> QueueDepth {
    q.depth().await.unwrap()
}

fn by_route(msgs: &[ReceivedMessage]) -> HashMap<String, ReceivedMessage> {
    msgs.iter()
        .map(|m| (m.attributes["route"].clone(), m.clone()))
        .collect()
}

// ---------------------------------------------------------------- the tests

#[tokio::test]
async fn successes_are_really_deleted() {
    let s = setup().await;
    let jobs = [
        job("evt_1", "to-ok"),
        job("evt_2", "to-ok"),
        job("evt_3", "to-ok"),
    ];
    enqueue(&s.queue, &jobs.iter().collect::<Vec<_>>()).await;
    let batch = receive(&s.queue, 3).await;
    assert_eq!(batch.len(), 3);
    assert!(batch.iter().all(|m| m.receive_count == 1));

    assert!(invoke(&s, batch).await.is_empty());
    assert_eq!(
        depth(&s.queue).await,
        QueueDepth {
            visible: 0,
            in_flight: 0
        },
        "gone, not hidden"
    );
    assert_eq!(depth(&s.dlq).await, QueueDepth::default());
    let requests = s.target.requests();
    assert_eq!(requests.len(), 3);
    for r in &requests {
        assert!(
            r.headers.contains_key("webhook-signature"),
            "signed with the key from Secrets Manager"
        );
    }
}

#[tokio::test]
async fn a_retried_message_really_reappears_after_the_visibility_delay() {
    let s = setup().await;
    let job = job("evt_flaky", "to-flaky");
    enqueue(&s.queue, &[&job]).await;
    let batch = receive(&s.queue, 1).await;
    let id = batch[0].message_id.clone();

    // The retry delay is 2 s: it comes back, not before that, and long before the queue's
    // own visibility timeout would have returned it.
    let parked = Instant::now();
    assert_eq!(invoke(&s, batch).await, vec![id.clone()], "reported failed");
    let again = receive(&s.queue, 1).await;
    let waited = parked.elapsed();
    assert_eq!(again.len(), 1, "it came back");
    assert!(waited >= Duration::from_secs(2), "back after {waited:?}");
    assert!(
        waited < VISIBILITY,
        "back after the retry delay: {waited:?}"
    );
    assert_eq!(
        (again[0].message_id.as_str(), again[0].receive_count),
        (id.as_str(), 2)
    );

    assert!(invoke(&s, again).await.is_empty(), "delivered on attempt 2");
    assert_eq!(depth(&s.queue).await, QueueDepth::default());
    let attempts: Vec<serde_json::Value> = s
        .target
        .requests()
        .iter()
        .map(|r| r.json()["attempt"].clone())
        .collect();
    assert_eq!(attempts, [1, 2]);
}

#[tokio::test]
async fn a_permanent_failure_really_lands_in_the_dlq_with_its_attributes() {
    let s = setup().await;
    let job = job("evt_gone", "to-gone");
    enqueue(&s.queue, &[&job]).await;
    let batch = receive(&s.queue, 1).await;
    let body = batch[0].body.clone();

    assert!(
        invoke(&s, batch).await.is_empty(),
        "not failed: copied, then deleted"
    );
    assert_eq!(
        depth(&s.queue).await,
        QueueDepth::default(),
        "gone from the delivery queue"
    );

    let dead = receive(&s.dlq, 1).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, body, "the same body");
    let a = &dead[0].attributes;
    assert_eq!(a["route"], "to-gone");
    assert_eq!(a["delivery_id"], job.delivery_id);
    assert_eq!(a["failure"], "http_status");
    assert_eq!(a["attempts"], "1");
    assert_eq!(a["last_status"], "404");
    assert_eq!(a["last_error"], "answered 404 Not Found");
}

#[tokio::test]
async fn a_mixed_batch_deletes_the_done_parks_the_retry_and_dead_letters_the_rest() {
    let s = setup().await;
    let jobs = [
        job("evt_a", "to-ok"),
        job("evt_b", "to-gone"),
        job("evt_c", "to-flaky"),
    ];
    enqueue(&s.queue, &jobs.iter().collect::<Vec<_>>()).await;
    let batch = receive(&s.queue, 3).await;
    assert_eq!(batch.len(), 3);
    let flaky = by_route(&batch)["to-flaky"].message_id.clone();

    assert_eq!(invoke(&s, batch).await, [flaky]);
    assert_eq!(
        depth(&s.queue).await,
        QueueDepth {
            visible: 0,
            in_flight: 1
        }
    );
    let dead = receive(&s.dlq, 1).await;
    assert_eq!(dead[0].attributes["route"], "to-gone");
    assert_eq!(dead[0].attributes["failure"], "http_status");
}

#[tokio::test]
async fn a_refused_delivery_is_replaced_by_a_copy_that_keeps_its_attempt_number() {
    let s = setup().await;
    // The first delivery's refused connection opens the port's circuit.
    enqueue(&s.queue, &[&job("evt_first", "to-down")]).await;
    let batch = receive(&s.queue, 1).await;
    assert_eq!(invoke(&s, batch).await.len(), 1, "retried");
    // The next is refused by the open circuit: no attempt. SQS cannot uncount a receive,
    // so a copy that carries its attempt count takes its place, and the original is
    // deleted as handled.
    let job = job("evt_refused", "to-down");
    enqueue(&s.queue, &[&job]).await;
    let mut batch = receive(&s.queue, 1).await;
    // Take it to its second receive first: the copy must keep attempt 2.
    s.queue
        .change_visibility(&batch[0].receipt_handle, Duration::ZERO)
        .await
        .unwrap();
    while batch[0].receive_count < 2 {
        batch = receive(&s.queue, 1).await;
    }
    let original = batch[0].clone();
    assert!(invoke(&s, batch).await.is_empty(), "not reported failed");
    let copy = loop {
        let got = receive(&s.queue, 1).await;
        if got[0].body == original.body {
            break got.into_iter().next().unwrap();
        }
        // The first delivery's own retry: handled again (still refused) and left alone.
        s.queue
            .change_visibility(&got[0].receipt_handle, Duration::from_secs(300))
            .await
            .unwrap();
    };
    assert_ne!(copy.message_id, original.message_id, "a copy");
    assert_eq!(copy.receive_count, 1);
    assert_eq!(router_core::wire::queue::attempt(&copy), 2);
    assert_eq!(
        router_core::wire::queue::first_sent_ms(&copy),
        original.sent_at_ms,
        "its max_age counts from the original's send"
    );
    assert_eq!(copy.attributes["delivery_id"], job.delivery_id);
    assert_eq!(depth(&s.dlq).await, QueueDepth::default());
}
