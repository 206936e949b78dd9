//! Target isolation through a running `serve`: a dead or slow target never holds up a
//! healthy one, a delivery slower than the visibility timeout reaches its target once,
//! and the health answer lists the open circuit.

mod common;

use common::*;
use router_tests::targets::{Gate, Targets};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_and_a_slow_target_do_not_delay_a_healthy_one() {
    let targets = Targets::start().await;
    // The slow target is another origin (circuits are per scheme, host and port).
    let slow = Targets::start().await;
    slow.delay("slow", Duration::from_secs(30));
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let routes = routes_for(
        &targets,
        &[
            ("healthy", "triggers = [{ event_type = \"intent\" }]"),
            (
                "slow",
                "timeout_seconds = 1\nretry = { schedule = [\"1s\", \"1s\"], max_age = \"1h\" }\ntriggers = [{ event_type = \"intent\" }]",
            ),
            (
                "dead",
                "retry = { schedule = [\"1s\", \"1s\"], max_age = \"1h\" }\ntriggers = [{ event_type = \"intent\" }]",
            ),
        ],
    )
    .replace(&targets.url("dead"), &format!("http://127.0.0.1:{dead}/dead"))
    .replace(&targets.url("slow"), &slow.url("slow"));
    let ws = Workspace::new(&routes);
    let serve = ws.serve(&["--concurrency", "16"]);
    for i in 0..40 {
        let (status, _) = serve
            .trigger(&format!(r#"{{"id":"evt_{i}","event_type":"intent"}}"#))
            .await;
        assert_eq!(status, 202);
    }
    // Every healthy delivery arrives, at its first attempt, although the slow target holds
    // each request past its 1 s timeout and the dead one refuses.
    assert!(
        targets
            .wait_for(|r| r.iter().filter(|d| d.path == "healthy").count() == 40)
            .await,
        "{}",
        serve.log()
    );
    assert!(
        targets
            .received_at("healthy")
            .iter()
            .all(|d| d.body.starts_with("{\"attempt\": 1,")),
        "{:?}",
        targets.received_at("healthy")
    );
    // The slow and dead origins opened their circuits: of the 40 deliveries (and their
    // retries) only those already in flight when it opened (up to the 16 of
    // --concurrency) and the 5 that opened it reached the slow target.
    let slow_tries = slow.received_at("slow").len();
    assert!(
        slow_tries <= 16 + 5,
        "the slow target was tried {slow_tries} times"
    );
    let health: serde_json::Value = reqwest::get(format!("{}/api/v2/health", serve.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let origins = health["circuits"].to_string();
    assert!(origins.contains(&format!("127.0.0.1:{dead}")), "{health}");
    assert_eq!(health["status"], "degraded");
    assert!(serve.log().contains("circuit opened"), "{}", serve.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_slower_than_the_visibility_timeout_reaches_its_target_once() {
    let targets = Targets::start().await;
    let gate = Gate::new();
    targets.hold("sink", &gate);
    let ws = Workspace::new(&routes_for(
        &targets,
        &[(
            "sink",
            "timeout_seconds = 30\ntriggers = [{ event_type = \"intent\" }]",
        )],
    ));
    // visibility 2 s (serve's helper passes 3; this overrides it).
    let serve = ws.serve(&["--visibility-timeout", "2"]);
    let (status, _) = serve
        .trigger(r#"{"id":"evt_slow","event_type":"intent"}"#)
        .await;
    assert_eq!(status, 202);
    assert!(targets.wait_for(|r| !r.is_empty()).await, "{}", serve.log());
    // Held for at least twice the visibility timeout before it is answered.
    tokio::time::sleep(Duration::from_secs(5)).await;
    gate.open();
    assert!(
        wait_until(|| serve
            .log()
            .lines()
            .any(|l| l.contains("evt_slow") && l.contains(" delivered")))
        .await,
        "{}",
        serve.log()
    );
    assert_eq!(
        targets.received_at("sink").len(),
        1,
        "exactly one request reached the slow target\n{}",
        serve.log()
    );
    assert!(dlq_rows(&ws).is_empty());
}
