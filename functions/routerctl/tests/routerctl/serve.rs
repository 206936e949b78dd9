//! `routerctl serve` as a subprocess, on the embedded queue and on SQS (moto): deliveries
//! with the contract's headers, retries, dead letters and redrive, and kill -9.

use crate::common::*;
use router_tests::targets::{Gate, Targets};
use std::collections::BTreeSet;
use std::time::Duration;

#[derive(Clone, Copy, Debug)]
enum Backend {
    Embedded,
    Moto,
}

async fn workspace(backend: Backend, routes: &str) -> Workspace {
    let mut ws = Workspace::new(routes);
    if let Backend::Moto = backend {
        ws.use_moto_sqs().await;
    }
    ws
}

fn event(id: &str) -> String {
    format!(
        r#"{{"id": "{id}", "event_type": "intent", "name": "handover", "score": 0.9, "user_id": "u1"}}"#
    )
}

async fn delivers_with_the_contract_headers(backend: Backend) {
    let targets = Targets::start().await;
    let ws = workspace(
        backend,
        &routes_for(
            &targets,
            &[("okay", "triggers = [{ event_type = \"intent\" }]")],
        ),
    )
    .await;
    let serve = ws.serve(&[]);
    let (status, body) = serve.trigger(&event("evt_h1")).await;
    assert_eq!(status, 202, "{body}");
    let delivery_id = body["deliveries"][0]["delivery_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(targets.wait_for(|r| !r.is_empty()).await, "{}", serve.log());
    let d = &targets.received_at("okay")[0];
    assert_eq!(d.headers["content-type"], "application/json");
    assert!(d.headers["user-agent"].starts_with("cognigy-webhook-router/"));
    assert_eq!(d.webhook_id(), delivery_id);
    let ts: i64 = d.headers["webhook-timestamp"].parse().unwrap();
    assert!((time::OffsetDateTime::now_utc().unix_timestamp() - ts).abs() < 60);
    assert!(
        signature_is_valid(d),
        "signature verifies independently: {d:?}"
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&d.body).unwrap()["event"],
        "evt_h1"
    );
}

async fn a_flaky_target_gets_it_on_the_third_attempt(backend: Backend) {
    let targets = Targets::start().await;
    targets.script("flaky", &[500, 503], 200);
    let routes = routes_for(
        &targets,
        &[(
            "flaky",
            "retry = { schedule = [\"1s\", \"1s\"] }\ntriggers = [{ event_type = \"intent\" }]",
        )],
    );
    let ws = workspace(backend, &routes).await;
    let serve = ws.serve(&[]);
    assert_eq!(serve.trigger(&event("evt_f1")).await.0, 202);
    assert!(
        targets.wait_for(|r| r.len() >= 3).await,
        "three attempts arrive: {:?}\n{}",
        targets.received(),
        serve.log()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = targets.received_at("flaky");
    assert_eq!(got.len(), 3, "no fourth attempt after the 200");
    let attempts: Vec<i64> = got
        .iter()
        .map(|d| {
            serde_json::from_str::<serde_json::Value>(&d.body).unwrap()["attempt"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(attempts, [1, 2, 3]);
    assert!(
        got.iter().all(|d| d.webhook_id() == got[0].webhook_id()),
        "one webhook-id across retries"
    );
    assert!(dlq_rows(&ws).is_empty());
}

async fn a_404_is_dead_lettered_and_redrive_delivers_it(backend: Backend) {
    let targets = Targets::start().await;
    targets.script("gone", &[], 404);
    let ws = workspace(
        backend,
        &routes_for(
            &targets,
            &[("gone", "triggers = [{ event_type = \"intent\" }]")],
        ),
    )
    .await;
    let serve = ws.serve(&[]);
    let (_, body) = serve.trigger(&event("evt_g1")).await;
    let delivery_id = body["deliveries"][0]["delivery_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut rows = Vec::new();
    assert!(
        wait_until(|| {
            rows = dlq_rows(&ws);
            !rows.is_empty()
        })
        .await,
        "the 404 reaches the DLQ\n{}",
        serve.log()
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["delivery_id"], delivery_id.as_str());
    assert_eq!(rows[0]["route"], "gone");
    assert_eq!(rows[0]["failure"], "http_status");
    assert_eq!(rows[0]["last_status"], 404);
    assert_eq!(rows[0]["attempts"], 1);

    let table = ws.run(&["dlq", "list"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("DELIVERY ID")
            && text.contains(&delivery_id)
            && text.contains("1 dead letter"),
        "{text}"
    );

    targets.script("gone", &[], 200);
    let out = ws.run(&["dlq", "redrive", "--route", "gone"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Redrove 1 dead letter"));
    assert!(
        targets.wait_for(|r| r.len() >= 2).await,
        "the redriven delivery arrives\n{}",
        serve.log()
    );
    let got = targets.received_at("gone");
    assert_eq!(
        got[1].webhook_id(),
        delivery_id,
        "redrive keeps the delivery id"
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&got[1].body).unwrap()["attempt"],
        1,
        "a redriven message starts a fresh schedule"
    );
    assert!(wait_until(|| dlq_rows(&ws).is_empty()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_delivers_with_the_contract_headers() {
    delivers_with_the_contract_headers(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_flaky_target_gets_it_on_the_third_attempt() {
    a_flaky_target_gets_it_on_the_third_attempt(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_404_is_dead_lettered_and_redriven() {
    a_404_is_dead_lettered_and_redrive_delivers_it(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_delivers_with_the_contract_headers() {
    delivers_with_the_contract_headers(Backend::Moto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_flaky_target_gets_it_on_the_third_attempt() {
    a_flaky_target_gets_it_on_the_third_attempt(Backend::Moto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_404_is_dead_lettered_and_redriven() {
    a_404_is_dead_lettered_and_redrive_delivers_it(Backend::Moto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_deliveries_in_flight_loses_nothing() {
    let targets = Targets::start().await;
    // The target holds every request until the restart: the kill comes while two
    // deliveries are in flight and the rest are queued, however fast the machine.
    let gate = Gate::new();
    targets.hold("slow", &gate);
    let ws = Workspace::new(&routes_for(
        &targets,
        &[("slow", "triggers = [{ event_type = \"intent\" }]")],
    ));
    let mut serve = ws.serve(&["--concurrency", "2"]);
    let mut accepted = BTreeSet::new();
    for i in 0..40 {
        let (status, body) = serve.trigger(&event(&format!("evt_k{i}"))).await;
        assert_eq!(status, 202);
        accepted.insert(
            body["deliveries"][0]["delivery_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert!(targets.wait_for(|r| r.len() >= 2).await, "{}", serve.log());
    serve.kill9();
    assert_eq!(
        targets.received().len(),
        2,
        "two were in flight at the kill"
    );

    gate.open();
    let serve = ws.serve(&["--concurrency", "4"]);
    let mut missing = BTreeSet::new();
    let all_arrived = wait_until(|| {
        let received: BTreeSet<String> = targets
            .received()
            .iter()
            .map(|d| d.webhook_id().to_owned())
            .collect();
        missing = accepted.difference(&received).cloned().collect();
        missing.is_empty()
    })
    .await;
    assert!(
        all_arrived,
        "accepted but never delivered: {missing:?}\n{}",
        serve.log()
    );
    assert!(dlq_rows(&ws).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_serve_cleanly() {
    let targets = Targets::start().await;
    let ws = Workspace::new(&routes_for(
        &targets,
        &[("okay", "triggers = [{ event_type = \"intent\" }]")],
    ));
    let mut serve = ws.serve(&[]);
    assert_eq!(serve.trigger(&event("evt_t1")).await.0, 202);
    assert!(targets.wait_for(|r| !r.is_empty()).await);
    let status = serve.terminate();
    assert!(status.success(), "exit {status:?}\n{}", serve.log());
    assert!(serve.log().contains("shutting down"));
}
