//! Target isolation: the circuit breaker per origin, the invocation deadline, and the
//! per-route cap on deliveries in flight.

use crate::support::*;
use std::time::{Duration, Instant};

const S: fn(u64) -> Duration = Duration::from_secs;

fn metric_sum(h: &Harness, name: &str) -> u64 {
    h.metrics
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|d| d[name].as_u64())
        .sum()
}

#[tokio::test]
async fn after_five_unwell_answers_the_circuit_opens_and_deliveries_fail_at_once() {
    let target = Target::always(503).await;
    let h = Harness::new(&one_route(&target.url("/hook"), ""));
    for i in 0..5 {
        assert!(
            h.run_one(message(&job(&format!("evt_{i}"), ROUTE), 1))
                .await
        );
    }
    assert_eq!(target.requests().len(), 5);
    // Open now: no request, a retry like any retryable failure.
    assert!(h.run_one(message(&job("evt_6", ROUTE), 1)).await);
    assert_eq!(target.requests().len(), 5, "no request while open");
    // Retried on the route's schedule like any retryable failure.
    assert_eq!(h.delays().last(), Some(&S(5)));
    assert_eq!(metric_sum(&h, "CircuitOpen"), 1);
    assert_eq!(metric_sum(&h, "CircuitOpened"), 1);
    // Attempts run out as for any retryable failure.
    assert!(!h.run_one(message(&job("evt_7", ROUTE), 8)).await);
    let dead = h.dead_letter();
    assert_eq!(dead.attributes["failure"], "attempts_exhausted");
    assert!(
        dead.attributes["last_error"].contains("circuit"),
        "{:?}",
        dead.attributes
    );
}

#[tokio::test]
async fn one_dead_origin_does_not_touch_a_healthy_one() {
    let healthy = Target::always(200).await;
    let dead_port = closed_port().await;
    let routes = format!(
        "{}\n{}",
        one_route(&healthy.url("/ok"), ""),
        route_block("to-dead", &format!("http://127.0.0.1:{dead_port}/x"), "")
    );
    let h = Harness::new(&routes);
    for i in 0..10 {
        h.run(vec![
            message(&job(&format!("evt_d{i}"), "to-dead"), 1),
            message(&job(&format!("evt_h{i}"), ROUTE), 1),
        ])
        .await;
    }
    assert_eq!(
        healthy.requests().len(),
        10,
        "every healthy delivery went out"
    );
    let failed_fast = h
        .metrics
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|d| d["Route"] == "to-dead")
        .filter_map(|d| d["CircuitOpen"].as_u64())
        .sum::<u64>();
    assert_eq!(
        failed_fast, 5,
        "the dead origin was tried 5 times, then failed fast"
    );
}

#[tokio::test]
async fn after_the_cool_down_one_probe_closes_the_circuit() {
    let target = Target::scripted(vec![
        Reply::status(500),
        Reply::status(500),
        Reply::status(200),
    ])
    .await;
    let h = Harness::new(&one_route(
        &target.url("/hook"),
        "circuit_breaker = { failures = 2, cool_down = \"30s\" }",
    ));
    let clock = h.deliverer.breakers();
    assert!(h.run_one(message(&job("evt_1", ROUTE), 1)).await);
    assert!(h.run_one(message(&job("evt_2", ROUTE), 1)).await);
    assert!(h.run_one(message(&job("evt_3", ROUTE), 1)).await, "open");
    assert_eq!(target.requests().len(), 2);
    clock.advance(S(30));
    // Two at once after the cool-down: one probe goes, the other is still refused.
    let failed = h
        .run(vec![
            message(&job("evt_4", ROUTE), 1),
            message(&job("evt_5", ROUTE), 1),
        ])
        .await;
    assert_eq!(target.requests().len(), 3, "exactly one probe");
    assert_eq!(failed.len(), 1);
    // The probe succeeded: closed, everything flows.
    assert!(!h.run_one(message(&job("evt_6", ROUTE), 1)).await);
    assert_eq!(target.requests().len(), 4);
}

#[tokio::test]
async fn a_failed_probe_reopens_for_twice_the_cool_down() {
    let target = Target::always(503).await;
    let h = Harness::new(&one_route(
        &target.url("/hook"),
        "circuit_breaker = { failures = 1, cool_down = \"30s\" }",
    ));
    let clock = h.deliverer.breakers();
    assert!(h.run_one(message(&job("evt_1", ROUTE), 1)).await);
    clock.advance(S(30));
    assert!(
        h.run_one(message(&job("evt_2", ROUTE), 1)).await,
        "the probe fails"
    );
    assert_eq!(target.requests().len(), 2);
    clock.advance(S(30));
    assert!(h.run_one(message(&job("evt_3", ROUTE), 1)).await);
    assert_eq!(
        target.requests().len(),
        2,
        "still open: the cool-down doubled to 60 s"
    );
    clock.advance(S(30));
    assert!(h.run_one(message(&job("evt_4", ROUTE), 1)).await);
    assert_eq!(target.requests().len(), 3, "the next probe after 60 s");
}

#[tokio::test]
async fn with_the_breaker_off_every_delivery_is_tried() {
    let target = Target::always(503).await;
    let h = Harness::new(&one_route(
        &target.url("/hook"),
        "circuit_breaker = { failures = 0 }",
    ));
    for i in 0..8 {
        h.run_one(message(&job(&format!("evt_{i}"), ROUTE), 1))
            .await;
    }
    assert_eq!(target.requests().len(), 8);
    assert_eq!(metric_sum(&h, "CircuitOpen"), 0);
}

#[tokio::test]
async fn an_attempt_that_cannot_finish_before_the_deadline_is_not_started() {
    let target = Target::always(200).await;
    // timeout_seconds = 5: with 3 s of margin, it needs 8 s before the deadline.
    let h = Harness::new(&one_route(&target.url("/hook"), "timeout_seconds = 5"));
    let soon = Instant::now() + S(4);
    let failed = h
        .deliverer
        .handle_batch_until(vec![message(&job("evt_late", ROUTE), 1)], Some(soon))
        .await;
    assert_eq!(
        failed,
        ["msg-evt_late"],
        "reported failed, so it comes back"
    );
    assert!(target.requests().is_empty(), "never started");
    assert_eq!(
        h.delays(),
        [S(1)],
        "a short visibility, whatever the schedule"
    );
    assert!(h.dlq.sent().is_empty());
    // With time enough it goes out.
    let later = Instant::now() + S(30);
    let failed = h
        .deliverer
        .handle_batch_until(vec![message(&job("evt_late", ROUTE), 2)], Some(later))
        .await;
    assert!(failed.is_empty());
    assert_eq!(target.requests().len(), 1);
}

#[tokio::test]
async fn max_in_flight_holds_a_routes_deliveries_to_n_at_a_time_without_spending_attempts() {
    let target = Target::scripted(vec![Reply::status(200).after(Duration::from_millis(100))]).await;
    let h = Harness::new(&one_route(&target.url("/hook"), "max_in_flight = 1"));
    let msgs: Vec<_> = (0..3)
        .map(|i| message(&job(&format!("evt_{i}"), ROUTE), 1))
        .collect();
    let failed = h.run(msgs).await;
    assert!(
        failed.is_empty(),
        "all delivered, none counted as a failed attempt"
    );
    assert_eq!(target.requests().len(), 3);
    assert_eq!(target.peak_in_flight(), 1, "one at a time");
    // Without the cap the same three are out at once: the target holds them until all
    // three have arrived.
    let gate = Gate::new();
    let free_target = Target::scripted(vec![Reply::status(200).until(&gate)]).await;
    let free = Harness::new(&one_route(&free_target.url("/hook"), ""));
    let msgs: Vec<_> = (0..3)
        .map(|i| message(&job(&format!("evt_f{i}"), ROUTE), 1))
        .collect();
    let (failed, all_at_once) = tokio::join!(free.run(msgs), async {
        let all = free_target.wait_for(|r| r.len() == 3).await;
        gate.open();
        all
    });
    assert!(all_at_once && failed.is_empty(), "{failed:?}");
    assert_eq!(free_target.peak_in_flight(), 3);
}
