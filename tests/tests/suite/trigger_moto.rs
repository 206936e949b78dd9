//! The trigger function against real SQS and Secrets Manager APIs (moto_server).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use router_core::aws::SecretsManagerStore;
use router_core::backends::Backends;
use router_core::domain::DeliveryJob;
use router_core::ports::Queue;
use router_core::routes::Routes;
use router_tests::{moto_queue_pair, moto_sdk_config};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// Four routes: three fire on a handover intent (one through a negated trigger), one never
/// does; `SECRET_ID` is replaced by the test's ingest key secret.
const ROUTES: &str = include_str!("fixtures/trigger.routes.toml");

struct Setup {
    app: axum::Router,
    queue: Arc<router_core::aws::SqsQueue>,
    sqs: aws_sdk_sqs::Client,
}

async fn setup() -> Setup {
    let sdk = moto_sdk_config().await;
    let secret_id = format!("router/ingest-key-{}", uuid::Uuid::new_v4().simple());
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    sm.create_secret()
        .name(&secret_id)
        .secret_string("moto-key")
        .send()
        .await
        .unwrap();
    let (queue, dlq) = moto_queue_pair(Duration::from_secs(30), 10).await;
    let queue = Arc::new(queue);
    let routes = Routes::parse(
        &ROUTES.replace("SECRET_ID", &secret_id),
        std::path::Path::new("routes.toml"),
    )
    .unwrap();
    let backends = Backends {
        queue: queue.clone(),
        dead_letters: Arc::new(dlq),
        secrets: Arc::new(SecretsManagerStore::new(sm)),
        ordered: None,
    };
    let state = trigger::State::new(Arc::new(routes), backends, 10)
        .await
        .unwrap();
    Setup {
        app: trigger::router(Arc::new(state)),
        queue,
        sqs: aws_sdk_sqs::Client::new(&sdk),
    }
}

fn request(body: &str) -> Request<Body> {
    Request::post(trigger::app::TRIGGER_PATH)
        .header("content-type", "application/json")
        .header("x-api-key", "moto-key")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

async fn call(app: &axum::Router, body: &str) -> (StatusCode, serde_json::Value) {
    let resp = app.clone().oneshot(request(body)).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn a_trigger_matching_three_routes_leaves_exactly_three_messages() {
    let s = setup().await;
    let event = r#"{"id": "evt_moto_1", "event_type": "intent", "name": "handover", "score": 0.9, "data": {"text": "agent"}}"#;
    let (status, body) = call(&s.app, event).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    // Until three arrived (or PATIENCE passed), then one more look for a fourth.
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + router_core::testing::PATIENCE;
    while got.len() < 3 && std::time::Instant::now() < deadline {
        got.extend(
            s.queue
                .receive(10, Duration::from_secs(1), None)
                .await
                .unwrap(),
        );
    }
    got.extend(
        s.queue
            .receive(10, Duration::from_secs(1), None)
            .await
            .unwrap(),
    );
    assert_eq!(got.len(), 3, "exactly three messages: {got:?}");
    let mut routes: Vec<String> = Vec::new();
    for m in &got {
        let job = DeliveryJob::parse(&m.body).unwrap();
        assert_eq!(job.event_id.as_str(), "evt_moto_1");
        assert_eq!(job.event.data.as_ref().unwrap()["text"], "agent");
        assert_eq!(m.attributes["route"], job.route.as_str());
        assert_eq!(m.attributes["delivery_id"], job.delivery_id);
        let listed = body["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["route"] == job.route.as_str())
            .unwrap();
        assert_eq!(listed["delivery_id"], job.delivery_id.as_str());
        routes.push(job.route.to_string());
    }
    routes.sort();
    assert_eq!(routes, ["analytics", "crm-handoff", "ticketing"]);
}

#[tokio::test]
async fn when_the_queue_is_gone_the_caller_gets_503_and_no_202() {
    let s = setup().await;
    s.sqs
        .delete_queue()
        .queue_url(s.queue.url())
        .send()
        .await
        .unwrap();
    let event = r#"{"id": "evt_moto_2", "event_type": "intent", "name": "handover"}"#;
    let (status, body) = call(&s.app, event).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], 503);
}

#[tokio::test]
async fn the_ingest_key_comes_from_secrets_manager() {
    let s = setup().await;
    let bad = Request::post(trigger::app::TRIGGER_PATH)
        .header("content-type", "application/json")
        .header("x-api-key", "wrong")
        .body(Body::from(r#"{"event_type": "intent"}"#))
        .unwrap();
    let resp = s.app.clone().oneshot(bad).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

/// One routes file (`secret = "ingest/api-key"`) deployed as two stacks: each reads its own
/// secret under its prefix (`SECRET_PREFIX`, the stack's name), writes under it, and a full
/// ARN is read as it is.
#[tokio::test]
async fn one_routes_file_serves_two_stacks_by_their_secret_prefix() {
    use router_core::ports::SecretStore;
    use router_core::secrets::Secret;
    let sdk = moto_sdk_config().await;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let stacks = [format!("dev-{run}/"), format!("prod-{run}/")];
    let mut arns = Vec::new();
    for (stack, key) in stacks.iter().zip(["key-dev", "key-prod"]) {
        let out = sm
            .create_secret()
            .name(format!("{stack}ingest/api-key"))
            .secret_string(key)
            .send()
            .await
            .unwrap();
        arns.push(out.arn().unwrap().to_owned());
    }
    let routes = Arc::new(
        Routes::parse(
            &ROUTES.replace("SECRET_ID", "ingest/api-key"),
            std::path::Path::new("routes.toml"),
        )
        .unwrap(),
    );
    for (stack, (key, other)) in stacks
        .iter()
        .zip([("key-dev", "key-prod"), ("key-prod", "key-dev")])
    {
        let store = SecretsManagerStore::new(sm.clone()).with_prefix(Some(stack));
        let (queue, dlq) = moto_queue_pair(Duration::from_secs(30), 10).await;
        let backends = Backends {
            queue: Arc::new(queue),
            dead_letters: Arc::new(dlq),
            secrets: Arc::new(store.clone()),
            ordered: None,
        };
        let app = trigger::router(Arc::new(
            trigger::State::new(routes.clone(), backends, 10)
                .await
                .unwrap(),
        ));
        for (presented, expected) in [
            (key, StatusCode::ACCEPTED),
            (other, StatusCode::UNAUTHORIZED),
        ] {
            let req = Request::post(trigger::app::TRIGGER_PATH)
                .header("content-type", "application/json")
                .header("x-api-key", presented)
                .body(Body::from(
                    r#"{"event_type": "intent", "name": "handover"}"#,
                ))
                .unwrap();
            assert_eq!(
                app.clone().oneshot(req).await.unwrap().status(),
                expected,
                "{stack} {presented}"
            );
        }
        // Writes (token-refresh's tokens) land under the prefix too.
        store
            .put("tokens/crm", &Secret::new(format!("token of {stack}")))
            .await
            .unwrap();
        let written = sm
            .get_secret_value()
            .secret_id(format!("{stack}tokens/crm"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            written.secret_string(),
            Some(format!("token of {stack}").as_str())
        );
        // An ARN names one secret wherever it is read from.
        assert_eq!(store.get(&arns[1]).await.unwrap().expose(), "key-prod");
    }
    // Without a prefix the ids are used as written: `ingest/api-key` does not exist.
    let bare = SecretsManagerStore::new(sm);
    assert!(matches!(
        bare.get("ingest/api-key").await,
        Err(router_core::ports::SecretError::NotFound(_))
    ));
}
