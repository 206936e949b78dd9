//! Target isolation: the circuit breakers (per endpoint, and per host for failed
//! connections), refusals that wait without spending an attempt, the invocation deadline,
//! and the per-route cap on deliveries in flight. The breakers' clock is moved on with
//! `Breakers::advance`, never slept.

use crate::support::*;
use router_core::domain::{DeliveryJob, RouteName};
use std::time::{Duration, Instant};

const S: fn(u64) -> Duration = Duration::from_secs;
/// Opens after 3 in a row, at once (the default asks 16 over at least 2 s).
const QUICK: &str = "circuit_breaker = { failures = 3, min_duration = \"0s\" }";

fn metric_sum(h: &Harness, name: &str) -> u64 {
    h.metrics
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|d| d[name].as_u64())
        .sum()
}

/// A job for `route` whose event says `text`.
fn saying(event_id: &str, route: &str, text: &str) -> DeliveryJob {
    let mut e = event(event_id);
    e.data = serde_json::json!({ "text": text }).as_object().cloned();
    DeliveryJob::new(
        &e,
        &RouteName::parse(route).unwrap(),
        time::OffsetDateTime::now_utc(),
    )
}

/// The attempt numbers the target saw, in order.
fn attempts(target: &TestServer) -> Vec<u64> {
    target
        .requests()
        .iter()
        .map(|r| r.json()["attempt"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_refused_delivery_waits_for_the_circuit_and_spends_no_attempt() {
    let port = closed_port().await;
    let h = Harness::new(&one_route(
        &format!("http://127.0.0.1:{port}/hook"),
        &format!("{QUICK}\nretry = {{ schedule = [\"5s\", \"60s\"], max_age = \"1h\" }}"),
    ));
    for i in 0..3 {
        assert!(
            h.run_one(message(&job(&format!("evt_{i}"), ROUTE), 1))
                .await
        );
    }
    assert_eq!(h.delays(), [S(5), S(5), S(5)], "three failed attempts");
    assert_eq!(metric_sum(&h, "CircuitOpened"), 1);
    // Open: the next is not sent; it waits (reported failed, so it stays) until the
    // cool-down ends, put back without its receive counting, and not retried.
    assert!(h.run_one(message(&job("evt_3", ROUTE), 2)).await);
    assert_eq!(h.queue.released(), [("rh-evt_3-2".to_owned(), S(30))]);
    assert_eq!(h.delays().len(), 3, "no visibility change for it");
    assert!(h.dlq.sent().is_empty());
    assert_eq!(metric_sum(&h, "CircuitOpen"), 1);
    assert_eq!(metric_sum(&h, "Retried"), 3, "a refusal is no retry");
    let health = h.deliverer.breakers().open(h.deliverer.breakers().now());
    assert_eq!(health.len(), 1);
    assert_eq!(health[0].circuit, format!("http://127.0.0.1:{port}"));
    assert_eq!(health[0].scope.as_str(), "host");
}

#[tokio::test]
async fn a_delivery_refused_while_open_goes_out_once_it_closes_with_its_attempt_number() {
    // Times out twice (the route waits 1 s), then answers.
    let target = TestServer::scripted(vec![
        Canned::status(200).never(),
        Canned::status(200).never(),
        Canned::status(200),
    ])
    .await;
    let h = Harness::new(&one_route(
        &target.url("/hook"),
        "timeout_seconds = 1\ncircuit_breaker = { failures = 2, min_duration = \"0s\" }",
    ));
    let clock = h.deliverer.breakers();
    assert!(h.run_one(message(&job("evt_1", ROUTE), 1)).await);
    assert!(h.run_one(message(&job("evt_2", ROUTE), 1)).await);
    // evt_3 on its third attempt is refused, again and again: it keeps attempt 3 (the
    // queue hands it back with the same receive count, as its receives were uncounted).
    let third = job("evt_3", ROUTE);
    for _ in 0..3 {
        assert!(h.run_one(message(&third, 3)).await);
        clock.advance(S(10));
    }
    assert_eq!(h.queue.released().len(), 3);
    assert_eq!(target.requests().len(), 2, "nothing reached the target");
    // The cool-down is over: it probes, is answered, and the circuit closes.
    assert!(!h.run_one(message(&third, 3)).await, "delivered");
    assert_eq!(attempts(&target), [1, 1, 3]);
    assert!(h.deliverer.breakers().is_empty(), "closed and forgotten");
    assert!(h.dlq.sent().is_empty());
}

#[tokio::test]
async fn a_refused_delivery_is_dead_lettered_only_when_its_schedule_would_have_ended() {
    let port = closed_port().await;
    let h = Harness::new(&one_route(
        &format!("http://127.0.0.1:{port}/hook"),
        &format!("{QUICK}\nretry = {{ schedule = [\"5s\", \"30s\"], max_age = \"1h\" }}"),
    ));
    for i in 0..3 {
        h.run_one(message(&job(&format!("evt_{i}"), ROUTE), 1))
            .await;
    }
    // 35 s after its event: had every attempt failed, the route would have given up.
    let old = job_aged("evt_old", ROUTE, S(40));
    assert!(!h.run_one(message(&old, 2)).await);
    let a = h.dead_letter().attributes;
    assert_eq!(a["failure"], "circuit_open");
    assert_eq!(a["attempts"], "1", "its refused attempt is not counted");
    assert!(
        a["last_error"].contains("is open: in trouble for"),
        "{}",
        a["last_error"]
    );
}

#[tokio::test]
async fn a_slow_endpoint_does_not_close_the_healthy_endpoints_of_its_host() {
    let target = TestServer::start(|req, _| match req.path.as_str() {
        "/slow" => Canned::status(200).never(),
        _ => Canned::status(200),
    })
    .await;
    let routes = format!(
        "[delivery]\nallow_private_targets = true\n\n{}{}",
        route_block(
            "to-slow",
            &target.url("/slow"),
            &format!("timeout_seconds = 1\n{QUICK}")
        ),
        route_block("to-ok", &target.url("/ok"), QUICK),
    );
    let h = Harness::new(&routes);
    for i in 0..4 {
        h.run(vec![
            message(&job(&format!("evt_s{i}"), "to-slow"), 1),
            message(&job(&format!("evt_o{i}"), "to-ok"), 1),
        ])
        .await;
    }
    // The slow endpoint opened after its third timeout; the healthy one never did.
    let ok = target.requests().iter().filter(|r| r.path == "/ok").count();
    let slow = target
        .requests()
        .iter()
        .filter(|r| r.path == "/slow")
        .count();
    assert_eq!((ok, slow), (4, 3));
    let open = h.deliverer.breakers().open(h.deliverer.breakers().now());
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].scope.as_str(), "endpoint");
    assert_eq!(open[0].route, "to-slow");
    assert!(
        !open[0].circuit.contains("slow"),
        "no path in the name: {}",
        open[0].circuit
    );
    assert!(h.dlq.sent().is_empty());
}

#[tokio::test]
async fn answers_that_depend_on_the_body_never_open_it_for_anyone() {
    // One word makes the target answer 500; everything else it takes.
    let target = TestServer::start(|req, _| {
        if req.body.contains("poison") {
            Canned::status(500)
        } else {
            Canned::status(200)
        }
    })
    .await;
    let strict = "circuit_breaker = { failures = 1, min_duration = \"0s\" }";
    let routes = format!(
        "[delivery]\nallow_private_targets = true\n\n{}{}",
        route_block("first", &target.url("/hook"), strict),
        route_block("second", &target.url("/hook"), strict),
    );
    let h = Harness::new(&routes);
    let poison: Vec<_> = (0..20)
        .map(|i| message(&saying(&format!("evt_p{i}"), "first", "poison"), 1))
        .collect();
    assert_eq!(
        h.run(poison).await.len(),
        20,
        "each retried on its schedule"
    );
    // The next ordinary events, of both routes and other sessions, all go out.
    let plain: Vec<_> = (0..20)
        .map(|i| {
            let route = if i % 2 == 0 { "first" } else { "second" };
            message(&saying(&format!("evt_n{i}"), route, "hello"), 1)
        })
        .collect();
    assert!(h.run(plain).await.is_empty(), "all delivered");
    assert_eq!(target.requests().len(), 40);
    assert!(h.deliverer.breakers().is_empty(), "no circuit at all");
    assert_eq!(metric_sum(&h, "CircuitOpen"), 0);
}

#[tokio::test]
async fn after_the_cool_down_two_probes_go_and_failing_they_reopen_it_for_twice_as_long() {
    let target = TestServer::scripted(vec![Canned::status(200).never()]).await;
    let h = Harness::new(&one_route(
        &target.url("/hook"),
        &format!("timeout_seconds = 1\n{QUICK}"),
    ));
    let clock = h.deliverer.breakers();
    for i in 0..3 {
        h.run_one(message(&job(&format!("evt_{i}"), ROUTE), 1))
            .await;
    }
    assert_eq!(clock.open(clock.now()).len(), 1);
    clock.advance(S(30));
    // Three at once after the cool-down: two probe (and time out), the third waits.
    let failed = h
        .run(vec![
            message(&job("evt_a", ROUTE), 1),
            message(&job("evt_b", ROUTE), 1),
            message(&job("evt_c", ROUTE), 1),
        ])
        .await;
    assert_eq!(failed.len(), 3);
    assert_eq!(target.requests().len(), 5, "two probes");
    assert_eq!(h.queue.released().len(), 1, "the third waited");
    let open = clock.open(clock.now());
    assert_eq!(open[0].openings, 2, "{open:?}");
    assert!((50..=60).contains(&open[0].retry_in_s), "{open:?}");
}

#[tokio::test]
async fn the_first_answer_after_the_cool_down_closes_the_circuit() {
    let target = TestServer::scripted(vec![
        Canned::status(200).never(),
        Canned::status(200).never(),
        Canned::status(200).never(),
        Canned::status(404),
    ])
    .await;
    let h = Harness::new(&one_route(
        &target.url("/hook"),
        &format!("timeout_seconds = 1\n{QUICK}"),
    ));
    let clock = h.deliverer.breakers();
    for i in 0..3 {
        h.run_one(message(&job(&format!("evt_{i}"), ROUTE), 1))
            .await;
    }
    assert!(h.run_one(message(&job("evt_w", ROUTE), 1)).await, "waits");
    assert_eq!(target.requests().len(), 3);
    clock.advance(S(30));
    // Any answer closes it, a 404 too (the target is there; the 404 is this delivery's).
    assert!(!h.run_one(message(&job("evt_p", ROUTE), 1)).await);
    assert_eq!(h.dead_letter().attributes["failure"], "http_status");
    assert!(clock.is_empty());
    assert_eq!(target.requests().len(), 4);
}

#[tokio::test]
async fn with_the_breaker_off_every_delivery_is_tried() {
    let port = closed_port().await;
    let h = Harness::new(&one_route(
        &format!("http://127.0.0.1:{port}/hook"),
        "circuit_breaker = { failures = 0 }",
    ));
    for i in 0..30 {
        h.run_one(message(&job(&format!("evt_{i}"), ROUTE), 1))
            .await;
    }
    assert_eq!(h.delays().len(), 30, "every one an attempt");
    assert!(h.queue.released().is_empty());
    assert_eq!(metric_sum(&h, "CircuitOpen"), 0);
}

#[tokio::test]
async fn an_attempt_that_cannot_finish_before_the_deadline_waits_without_counting() {
    let target = TestServer::always(200).await;
    // timeout_seconds = 5: with 3 s of margin, it needs 8 s before the deadline.
    let h = Harness::new(&one_route(&target.url("/hook"), "timeout_seconds = 5"));
    let soon = Instant::now() + S(4);
    let failed = h
        .deliverer
        .handle_batch_until(vec![message(&job("evt_late", ROUTE), 1)], Some(soon))
        .await;
    assert_eq!(failed, ["msg-evt_late"], "it stays, so it comes back");
    assert!(target.requests().is_empty(), "never started");
    assert_eq!(
        h.queue.released(),
        [("rh-evt_late-1".to_owned(), S(1))],
        "back in a second, its receive uncounted"
    );
    assert!(h.delays().is_empty());
    assert!(h.dlq.sent().is_empty());
    // With time enough it goes out, as attempt 1.
    let later = Instant::now() + S(30);
    let failed = h
        .deliverer
        .handle_batch_until(vec![message(&job("evt_late", ROUTE), 1)], Some(later))
        .await;
    assert!(failed.is_empty());
    assert_eq!(target.requests().len(), 1);
}

#[tokio::test]
async fn max_in_flight_holds_a_routes_deliveries_to_n_at_a_time_without_spending_attempts() {
    let target =
        TestServer::scripted(vec![Canned::status(200).after(Duration::from_millis(100))]).await;
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
    let free_target = TestServer::scripted(vec![Canned::status(200).until(&gate)]).await;
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
