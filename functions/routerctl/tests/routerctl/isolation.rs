//! Target isolation through a running `serve`, the way users meet it: a slow path and a
//! dead port never hold up a healthy path of the same host, a flaky target is never shut
//! off, one session's events cannot shut a target off for the others, a delivery refused
//! while its target is down arrives once it is back without its refusals counting as
//! attempts, and a delivery slower than the visibility timeout reaches its target once.

use crate::common::*;
use router_tests::targets::{Gate, Targets};
use std::time::Duration;

/// The log lines of `serve` naming `needle`.
fn lines_with(serve: &Serve, needle: &str) -> Vec<String> {
    serve
        .log()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_path_and_a_dead_port_do_not_hold_up_a_healthy_path_of_the_same_host() {
    // One host: `healthy` answers, `slow` holds every request past its route's 1 s timeout.
    // Another port of it refuses connections.
    let targets = Targets::start().await;
    targets.delay("slow", Duration::from_secs(3600));
    let dead = router_core::testing::http::closed_port().await;
    let retry = "retry = { schedule = [\"1s\", \"1s\"], max_age = \"1h\" }";
    let routes = routes_for(
        &targets,
        &[
            (
                "healthy",
                &format!("{retry}\ntriggers = [{{ event_type = \"intent\" }}]"),
            ),
            (
                "slow",
                &format!(
                    "timeout_seconds = 1\n{retry}\ntriggers = [{{ event_type = \"intent\" }}]"
                ),
            ),
            (
                "dead",
                &format!("{retry}\ntriggers = [{{ event_type = \"intent\" }}]"),
            ),
        ],
    )
    .replace(
        &targets.url("dead"),
        &format!("http://127.0.0.1:{dead}/dead"),
    );
    let ws = Workspace::new(&routes);
    let serve = ws.serve(&["--concurrency", "16"]);
    for i in 0..40 {
        let (status, _) = serve
            .trigger(&format!(r#"{{"id":"evt_{i}","event_type":"intent"}}"#))
            .await;
        assert_eq!(status, 202);
    }
    // Nothing is lost: 40 delivered, the 80 that could never be are dead letters.
    assert!(
        wait_until(|| targets.received_at("healthy").len() >= 40 && dlq_rows(&ws).len() == 80)
            .await,
        "{} healthy, {} dead letters\n{}",
        targets.received_at("healthy").len(),
        dlq_rows(&ws).len(),
        serve.log()
    );
    // The healthy path was never held up: none of its deliveries refused by a circuit,
    // retried or dead-lettered.
    let healthy = targets.received_at("healthy");
    assert_eq!(healthy.len(), 40);
    assert!(
        lines_with(&serve, "route=healthy")
            .iter()
            .all(|l| !l.contains("waiting") && !l.contains("giving up") && !l.contains("retrying")),
        "{}",
        serve.log()
    );
    // The slow endpoint and the dead host opened their own circuits, not the host's:
    // refused deliveries spent no attempt, and were given up when their schedule had run.
    let h = serve.health().await;
    let circuits = h["circuits"].as_array().cloned().unwrap_or_default();
    let by = |scope: &str, route: &str| {
        circuits
            .iter()
            .any(|c| c["scope"] == scope && c["route"] == route)
    };
    assert!(by("endpoint", "slow") && by("host", "dead"), "{h}");
    assert!(
        !circuits
            .iter()
            .any(|c| c["circuit"] == targets.base.as_str()),
        "the shared host stays closed: {h}"
    );
    let failures: Vec<String> = dlq_rows(&ws)
        .iter()
        .map(|r| r["failure"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(failures.iter().any(|f| f == "circuit_open"), "{failures:?}");
    // Fewer requests reached the slow path than its 40 deliveries' 120 attempts: at most
    // what the 16 slots could start before its trouble had lasted the 2 s that opens it.
    let slow_tries = targets.received_at("slow").len();
    assert!(
        slow_tries <= 80,
        "the slow path was tried {slow_tries} times"
    );
}

/// Whether the target fails this request: about 30 % of (event, attempt) pairs, the same
/// in every run (a hash, not a clock or a counter).
fn flaky(d: &router_tests::targets::Delivery) -> bool {
    use sha2::{Digest, Sha256};
    Sha256::digest(d.body.as_bytes())[0] < 77
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordered_route_to_a_30_percent_flaky_target_loses_nothing_and_never_opens() {
    let targets = Targets::start().await;
    targets.respond_with("timeline", |d| if flaky(d) { 503 } else { 200 });
    let ws = Workspace::new(&routes_for(
        &targets,
        &[(
            "timeline",
            "ordering = \"session\"\nretry = { schedule = [\"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\"], max_age = \"1h\" }\ntriggers = [{ event_type = \"intent\" }]",
        )],
    ));
    let serve = ws.serve(&[]);
    const SESSIONS: usize = 10;
    const EVENTS: usize = 10;
    for e in 0..EVENTS {
        for s in 0..SESSIONS {
            let body =
                format!(r#"{{"id":"s{s}-e{e:02}","event_type":"intent","session_id":"sess-{s}"}}"#);
            assert_eq!(serve.trigger(&body).await.0, 202);
        }
    }
    let delivered = || {
        let got = targets.received_at("timeline");
        distinct_deliveries(got.iter().filter(|d| !flaky(d)))
    };
    assert!(
        wait_until(|| delivered() == SESSIONS * EVENTS).await,
        "{} of {} delivered\n{}",
        delivered(),
        SESSIONS * EVENTS,
        serve.log()
    );
    let failed = targets
        .received_at("timeline")
        .iter()
        .filter(|d| flaky(d))
        .count();
    assert!(failed >= 20, "the target did fail: {failed} times");
    assert!(dlq_rows(&ws).is_empty(), "no dead letter");
    assert!(
        lines_with(&serve, "circuit opened").is_empty(),
        "{}",
        serve.log()
    );
    // Each session's events arrived in order.
    for s in 0..SESSIONS {
        let order: Vec<String> = targets
            .received_at("timeline")
            .iter()
            .filter(|d| !flaky(d))
            .map(|d| {
                serde_json::from_str::<serde_json::Value>(&d.body).unwrap()["event"].to_string()
            })
            .filter(|id| id.contains(&format!("s{s}-")))
            .collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "session {s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_that_make_the_target_fail_do_not_shut_it_off_for_other_sessions() {
    let targets = Targets::start().await;
    // The target answers 500 to any body with the word in it, and takes everything else.
    let poisoned = |d: &router_tests::targets::Delivery| d.body.contains("poison");
    targets.respond_with("first", move |d| if poisoned(d) { 500 } else { 200 });
    targets.respond_with("second", move |d| if poisoned(d) { 500 } else { 200 });
    let routes = routes_for(
        &targets,
        &[
            ("first", "triggers = [{ event_type = \"intent\" }]"),
            ("second", "triggers = [{ event_type = \"intent\" }]"),
        ],
    )
    .replace(&targets.url("second"), &targets.url("first"));
    let ws = Workspace::new(&routes);
    let serve = ws.serve(&[]);
    for i in 0..5 {
        let body = format!(r#"{{"id":"poison-{i}","event_type":"intent","session_id":"bad"}}"#);
        assert_eq!(serve.trigger(&body).await.0, 202);
    }
    assert!(
        targets
            .wait_for(|r| r.iter().filter(|d| poisoned(d)).count() >= 10)
            .await
    );
    for i in 0..20 {
        let body = format!(r#"{{"id":"plain-{i}","event_type":"intent","session_id":"s{i}"}}"#);
        assert_eq!(serve.trigger(&body).await.0, 202);
    }
    // Both routes' ordinary events all reach the (healthy) target at their first attempt.
    assert!(
        targets
            .wait_for(|r| r.iter().filter(|d| !poisoned(d)).count() >= 40)
            .await,
        "{}",
        serve.log()
    );
    assert!(
        lines_with(&serve, "circuit opened").is_empty(),
        "{}",
        serve.log()
    );
    assert!(
        lines_with(&serve, "circuit_open").is_empty(),
        "{}",
        serve.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_refused_while_the_target_is_down_arrives_once_it_is_back_with_its_attempts() {
    let port = router_core::testing::http::closed_port().await;
    let ws = Workspace::new(&format!(
        "[ingest]\nauth = \"flows\"\n[delivery]\nallow_private_targets = true\n\
         [auth.flows]\ntype = \"api_key\"\nsecret = \"router/ingest-key\"\n\
         [[route]]\nname = \"crm\"\ntarget_url = \"http://127.0.0.1:{port}/crm\"\ntimeout_seconds = 5\n\
         circuit_breaker = {{ failures = 3, min_duration = \"0s\", cool_down = \"2s\", max_cool_down = \"2s\" }}\n\
         retry = {{ schedule = [\"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\"], max_age = \"1h\" }}\n\
         template = '{{\"attempt\": {{{{ delivery.attempt }}}}, \"event\": {{{{ event.id | tojson }}}}}}'\n\
         triggers = [{{ event_type = \"intent\" }}]\n"
    ));
    let serve = ws.serve(&[]);
    for i in 0..3 {
        let body = format!(r#"{{"id":"early-{i}","event_type":"intent"}}"#);
        assert_eq!(serve.trigger(&body).await.0, 202);
    }
    assert!(
        wait_until(|| !lines_with(&serve, "circuit opened").is_empty()).await,
        "{}",
        serve.log()
    );
    assert_eq!(
        serve
            .trigger(r#"{"id":"waiting","event_type":"intent"}"#)
            .await
            .0,
        202
    );
    // It is refused (no attempt) at least twice while the target is down.
    assert!(
        wait_until(|| lines_with(&serve, "waiting; no attempt spent")
            .iter()
            .filter(|l| l.contains("event_id=waiting "))
            .count()
            >= 2)
        .await,
        "{}",
        serve.log()
    );
    // The target comes back on its port: the next probe closes the circuit.
    let targets = Targets::start_on(port).await;
    assert!(
        targets
            .wait_for(|r| r.iter().any(|d| d.body.contains("\"waiting\"")))
            .await,
        "{}",
        serve.log()
    );
    let got = targets
        .received_at("crm")
        .into_iter()
        .find(|d| d.body.contains("\"waiting\""))
        .unwrap();
    let attempt: u64 = serde_json::from_str::<serde_json::Value>(&got.body).unwrap()["attempt"]
        .as_u64()
        .unwrap();
    // Its attempt number counts only its real attempts (probes that failed), never its
    // refusals.
    let own = |needle: &str| {
        lines_with(&serve, needle)
            .iter()
            .filter(|l| l.contains("event_id=waiting "))
            .count() as u64
    };
    let failed_attempts = own("attempt failed; retrying");
    assert_eq!(attempt, failed_attempts + 1, "{}", serve.log());
    assert!(own("waiting; no attempt spent") >= 2);
    assert!(dlq_rows(&ws).is_empty(), "nothing given up");
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
