//! Each outcome of an attempt, as the contract classifies it (CONTRACT sections 4, 5).

use crate::support::*;
use std::time::Duration;

const S: fn(u64) -> Duration = Duration::from_secs;

#[tokio::test]
async fn a_2xx_is_delivered_and_nothing_else_happens() {
    for status in [200, 201, 204] {
        let target = TestServer::always(status).await;
        let h = Harness::new(&one_route(&target.url("/hook"), ""));
        let job = job("evt_ok", ROUTE);
        assert!(!h.run_one(message(&job, 1)).await, "{status}: not failed");
        h.assert_nothing_queued();
        let reqs = target.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(
            (reqs[0].method.as_str(), reqs[0].path.as_str()),
            ("POST", "/hook")
        );
        let body = reqs[0].json();
        assert_eq!(body["user"], "usr_1");
        assert_eq!(body["text"], "agent please");
        assert_eq!(body["id"], job.delivery_id.as_str());
        assert_eq!(body["attempt"], 1);
        assert_eq!(body["route"], ROUTE);
    }
}

#[tokio::test]
async fn a_500_three_times_then_200_is_delivered_on_attempt_4_after_the_schedules_delays() {
    let target = TestServer::scripted(vec![
        Canned::status(500),
        Canned::status(500),
        Canned::status(500),
        Canned::status(200),
    ])
    .await;
    // No retry table: the contract's default schedule (5s, 30s, 5m, ...).
    let h = Harness::new(&one_route(&target.url("/hook"), ""));
    let job = job("evt_flaky", ROUTE);
    for attempt in 1..=3 {
        assert!(
            h.run_one(message(&job, attempt)).await,
            "attempt {attempt} is retried"
        );
    }
    assert!(!h.run_one(message(&job, 4)).await, "attempt 4 is delivered");
    assert_eq!(h.delays(), [S(5), S(30), S(300)]);
    let calls = h.queue.visibility_calls();
    assert_eq!(calls[0], [("rh-evt_flaky-1".to_owned(), S(5))]);
    assert_eq!(calls[2][0].0, "rh-evt_flaky-3", "each receive's own handle");
    assert!(h.dlq.sent().is_empty());
    let attempts: Vec<_> = target
        .requests()
        .iter()
        .map(|r| r.json()["attempt"].clone())
        .collect();
    assert_eq!(attempts, [1, 2, 3, 4]);
    let ids: Vec<_> = target
        .requests()
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_owned())
        .collect();
    assert!(
        ids.iter().all(|i| *i == job.delivery_id),
        "webhook-id is stable across retries"
    );
}

#[tokio::test]
async fn a_404_is_dead_lettered_with_its_status_and_the_original_attributes() {
    let target = TestServer::always(404).await;
    let h = Harness::new(&one_route(&target.url("/hook"), ""));
    let job = job("evt_404", ROUTE);
    let msg = message(&job, 1);
    assert!(
        !h.run_one(msg.clone()).await,
        "dead-lettered: the host deletes it"
    );
    assert!(h.delays().is_empty());
    let dl = h.dead_letter();
    assert_eq!(dl.body, msg.body, "the same body");
    assert_eq!(dl.delay, Duration::ZERO);
    let a = &dl.attributes;
    assert_eq!(a["route"], ROUTE);
    assert_eq!(a["delivery_id"], job.delivery_id);
    assert_eq!(a["failure"], "http_status");
    assert_eq!(a["attempts"], "1");
    assert_eq!(a["last_status"], "404");
    assert_eq!(a["last_error"], "answered 404 Not Found");
    assert_eq!(target.requests().len(), 1);
}

#[tokio::test]
async fn a_410_is_permanent() {
    let target = TestServer::always(410).await;
    let h = Harness::new(&one_route(&target.url("/hook"), ""));
    assert!(!h.run_one(message(&job("evt_410", ROUTE), 2)).await);
    let a = h.dead_letter().attributes;
    assert_eq!(
        (a["failure"].as_str(), a["last_status"].as_str()),
        ("http_status", "410")
    );
    assert_eq!(a["attempts"], "2");
    assert!(h.delays().is_empty());
}

#[tokio::test]
async fn a_429_waits_for_its_retry_after_clamped_to_the_schedule() {
    let target = TestServer::scripted(vec![
        Canned::status(429).header("retry-after", "120"),
        Canned::status(429).header("retry-after", "1"),
        Canned::status(503).header("retry-after", "999999"),
    ])
    .await;
    let h = Harness::new(&one_route(
        &target.url("/hook"),
        r#"retry = { schedule = ["5s", "30s", "1m"], max_age = "7d" }"#,
    ));
    let job = job("evt_429", ROUTE);
    for attempt in 1..=3 {
        assert!(h.run_one(message(&job, attempt)).await);
    }
    // 120 s honoured; 1 s is below the scheduled 30 s; 999999 s is above the 12 h cap
    // (less the margin kept below SQS's limit, counted from the receive).
    let delays = h.delays();
    assert_eq!(&delays[..2], [S(120), S(30)]);
    assert!(
        (S(11 * 3600)..=S(12 * 3600)).contains(&delays[2]),
        "{:?}",
        delays[2]
    );
    assert!(h.dlq.sent().is_empty());
}

#[tokio::test]
async fn a_timeout_is_retried_and_named_when_the_schedule_runs_out() {
    // A target that never answers: the attempt ends only because the route's timeout does.
    let target = TestServer::scripted(vec![Canned::status(200).never()]).await;
    let h = Harness::new(&one_route(
        &target.url("/hook"),
        "timeout_seconds = 1\nretry = { schedule = [\"5s\"], max_age = \"1h\" }",
    ));
    let job = job("evt_slow", ROUTE);
    assert!(h.run_one(message(&job, 1)).await, "retried");
    assert_eq!(h.delays(), [S(5)]);

    assert!(!h.run_one(message(&job, 2)).await);
    let a = h.dead_letter().attributes;
    assert_eq!(a["failure"], "attempts_exhausted");
    assert_eq!(a["last_error"], "no answer within 1 s");
    assert!(!a.contains_key("last_status"));
}

#[tokio::test]
async fn a_refused_connection_is_retried_and_named_when_the_schedule_runs_out() {
    let port = closed_port().await;
    let h = Harness::new(&one_route(
        &format!("http://127.0.0.1:{port}/hook"),
        "retry = { schedule = [\"10s\"], max_age = \"1h\" }",
    ));
    let job = job("evt_refused", ROUTE);
    assert!(h.run_one(message(&job, 1)).await, "retried");
    assert_eq!(h.delays(), [S(10)]);

    assert!(!h.run_one(message(&job, 2)).await);
    let a = h.dead_letter().attributes;
    assert_eq!(
        (a["failure"].as_str(), a["attempts"].as_str()),
        ("attempts_exhausted", "2")
    );
    assert!(
        a["last_error"].starts_with("could not connect"),
        "{}",
        a["last_error"]
    );
    assert!(
        !a["last_error"].contains("127.0.0.1"),
        "no URL in last_error"
    );
}

#[tokio::test]
async fn a_payload_over_max_payload_kb_is_dead_lettered_as_too_large_without_a_request() {
    let target = TestServer::always(200).await;
    let h = Harness::new(&one_route(
        &target.url("/hook"),
        "max_payload_kb = 1\ntemplate = '{\"pad\": {{ (\"x\" * 2000) | tojson }}}'",
    ));
    assert!(!h.run_one(message(&job("evt_big", ROUTE), 1)).await);
    let a = h.dead_letter().attributes;
    assert_eq!(
        (a["failure"].as_str(), a["attempts"].as_str()),
        ("too_large", "1")
    );
    assert!(
        a["last_error"].contains("1024 bytes"),
        "{}",
        a["last_error"]
    );
    assert!(target.requests().is_empty());
}

#[tokio::test]
async fn a_render_error_is_dead_lettered_without_a_request() {
    let target = TestServer::always(200).await;
    for (template, expect) in [
        // An undefined name printed.
        (r#"'{"x": "{{ event.data.missing }}"}'"#, "undefined"),
        // Output that is not JSON (an unquoted string).
        (r#"'{"x": {{ event.user_id }}}'"#, "not valid JSON"),
    ] {
        let h = Harness::new(&one_route(
            &target.url("/hook"),
            &format!("template = {template}"),
        ));
        assert!(!h.run_one(message(&job("evt_render", ROUTE), 1)).await);
        let a = h.dead_letter().attributes;
        assert_eq!(a["failure"], "render", "{template}");
        assert!(a["last_error"].contains(expect), "{}", a["last_error"]);
        assert!(!a.contains_key("last_status"));
    }
    assert!(target.requests().is_empty());
}

#[tokio::test]
async fn an_exhausted_schedule_is_dead_lettered_with_the_last_status() {
    let target = TestServer::always(503).await;
    let h = Harness::new(&one_route(
        &target.url("/hook"),
        "retry = { schedule = [\"1s\", \"1s\"], max_age = \"1h\" }",
    ));
    let job = job("evt_exhausted", ROUTE);
    assert!(
        h.run_one(message(&job, 2)).await,
        "attempt 2 of 3 is retried"
    );
    assert!(
        !h.run_one(message(&job, 3)).await,
        "attempt 3 of 3 is the last"
    );
    let a = h.dead_letter().attributes;
    assert_eq!(a["failure"], "attempts_exhausted");
    assert_eq!(
        (a["attempts"].as_str(), a["last_status"].as_str()),
        ("3", "503")
    );
    assert_eq!(h.delays(), [S(1)]);
}

#[tokio::test]
async fn a_job_past_max_age_at_receive_is_dead_lettered_as_expired_without_an_attempt() {
    let target = TestServer::always(200).await;
    let h = Harness::new(&one_route(&target.url("/hook"), ""));
    let old = job_aged("evt_old", ROUTE, Duration::from_secs(25 * 3600));
    assert!(!h.run_one(message(&old, 3)).await);
    let a = h.dead_letter().attributes;
    assert_eq!(a["failure"], "expired");
    assert_eq!(a["attempts"], "2", "this receive made no attempt");
    assert!(
        a["last_error"].contains("max_age of 24h"),
        "{}",
        a["last_error"]
    );
    assert!(target.requests().is_empty());
}

#[tokio::test]
async fn a_retry_that_would_land_past_max_age_is_dead_lettered_as_expired() {
    let target = TestServer::always(500).await;
    let h = Harness::new(&one_route(
        &target.url("/hook"),
        "retry = { schedule = [\"5m\"], max_age = \"2m\" }",
    ));
    assert!(!h.run_one(message(&job("evt_late", ROUTE), 1)).await);
    let a = h.dead_letter().attributes;
    assert_eq!(a["failure"], "expired");
    assert_eq!(
        (a["attempts"].as_str(), a["last_status"].as_str()),
        ("1", "500")
    );
    assert_eq!(target.requests().len(), 1);
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let elsewhere = TestServer::always(200).await;
    let target = TestServer::scripted(vec![
        Canned::status(302).header("location", &elsewhere.url("/stolen")),
    ])
    .await;
    let h = Harness::new(&one_route(&target.url("/hook"), ""));
    assert!(!h.run_one(message(&job("evt_redirect", ROUTE), 1)).await);
    let a = h.dead_letter().attributes;
    assert_eq!(
        (a["failure"].as_str(), a["last_status"].as_str()),
        ("http_status", "302")
    );
    assert!(elsewhere.requests().is_empty());
}

#[tokio::test]
async fn an_unparseable_body_is_dead_lettered_as_malformed_and_keeps_its_attributes() {
    let h = Harness::new(&one_route("http://127.0.0.1:9/hook", ""));
    let mut msg = message(&job("evt_bad", ROUTE), 1);
    msg.body = r#"{"v": 1, "delivery_id": "dlv_x", "secret": "s3cr3t"#.to_owned();
    assert!(!h.run_one(msg.clone()).await);
    let dl = h.dead_letter();
    assert_eq!(dl.body, msg.body);
    assert_eq!(dl.attributes["failure"], "malformed");
    assert_eq!(dl.attributes["attempts"], "0");
    assert_eq!(dl.attributes["route"], ROUTE);
    assert!(!dl.attributes["last_error"].contains("s3cr3t"));
}

#[tokio::test]
async fn a_route_missing_from_the_routes_file_is_dead_lettered_as_unknown_route() {
    let h = Harness::new(&one_route("http://127.0.0.1:9/hook", ""));
    assert!(!h.run_one(message(&job("evt_lost", "gone-route"), 1)).await);
    let a = h.dead_letter().attributes;
    assert_eq!(a["failure"], "unknown_route");
    assert_eq!(
        a["last_error"],
        "route `gone-route` is not in the routes file"
    );
}

#[tokio::test]
async fn every_delivery_log_line_names_the_event_and_the_delivery() {
    let (capture, _guard) = router_core::testing::LogCapture::json();
    for (status, event) in [
        (200, "evt_logged_ok"),
        (500, "evt_logged_retry"),
        (400, "evt_logged_dead"),
    ] {
        let target = TestServer::always(status).await;
        let h = Harness::new(&one_route(&target.url("/hook"), ""));
        let job = job(event, ROUTE);
        h.run_one(message(&job, 1)).await;
        let line = capture
            .json_lines()
            .into_iter()
            .find(|v| v["delivery_id"] == job.delivery_id.as_str())
            .unwrap_or_else(|| panic!("{status}: no line for the delivery\n{}", capture.text()));
        assert_eq!(line["event_id"], event, "{status}: {line}");
        assert_eq!(line["route"], ROUTE, "{status}: {line}");
    }
}
