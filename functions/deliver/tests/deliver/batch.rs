//! A batch as a whole: concurrency, one batched visibility call, DLQ copies, what is
//! reported failed when the queue misbehaves, and the metric lines.

use crate::support::*;
use router_core::ports::QueueError;
use std::time::Duration;

/// Three routes on one target: `/ok` answers 200, `/retry` 503, `/gone` 404, each only
/// once `gate` is open, and then 400 ms later.
async fn three_routes(gate: &Gate) -> (TestServer, String) {
    let gate = gate.clone();
    let target = TestServer::start(move |req, _| {
        let status = match req.path.as_str() {
            "/ok" => 200,
            "/retry" => 503,
            _ => 404,
        };
        Canned::status(status)
            .until(&gate)
            .after(Duration::from_millis(400))
    })
    .await;
    let toml = format!(
        "[delivery]\nallow_private_targets = true\n\n{}{}{}",
        route_block("to-ok", &target.url("/ok"), ""),
        route_block("to-retry", &target.url("/retry"), ""),
        route_block("to-gone", &target.url("/gone"), ""),
    );
    (target, toml)
}

#[tokio::test]
async fn records_are_delivered_concurrently_and_only_retries_are_reported() {
    let gate = Gate::new();
    let (target, toml) = three_routes(&gate).await;
    let h = Harness::new(&toml);
    let mut msgs: Vec<_> = (0..8)
        .map(|i| message(&job(&format!("evt_ok{i}"), "to-ok"), 1))
        .collect();
    msgs.push(message(&job("evt_retry", "to-retry"), 1));
    msgs.push(message(&job("evt_gone", "to-gone"), 1));

    // All ten requests are out at once before the target answers any.
    let (failed, all_at_once) = tokio::join!(h.run(msgs), async {
        let all = target.wait_for(|r| r.len() == 10).await;
        gate.open();
        all
    });
    assert!(all_at_once, "{} requests at once", target.peak_in_flight());
    assert_eq!(failed, ["msg-evt_retry"]);
    assert_eq!(target.requests().len(), 10);

    let calls = h.queue.visibility_calls();
    assert_eq!(
        calls,
        [vec![("rh-evt_retry-1".to_owned(), Duration::from_secs(5))]]
    );
    let dl = h.dead_letter();
    assert_eq!(dl.attributes["route"], "to-gone");
    assert_eq!(dl.attributes["last_status"], "404");
}

#[tokio::test]
async fn retries_of_one_batch_share_one_visibility_call() {
    let target = TestServer::always(500).await;
    let h = Harness::new(&one_route(&target.url("/hook"), ""));
    let msgs: Vec<_> = (0..4)
        .map(|i| message(&job(&format!("evt_{i}"), ROUTE), 2))
        .collect();
    let failed = h.run(msgs).await;
    assert_eq!(failed.len(), 4);
    let calls = h.queue.visibility_calls();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].iter().all(|(_, d)| *d == Duration::from_secs(30)));
}

#[tokio::test]
async fn a_dead_letter_the_dlq_refuses_is_reported_failed_so_it_is_not_lost() {
    let target = TestServer::always(404).await;
    let h = Harness::new(&one_route(&target.url("/hook"), ""));
    h.dlq.then(SendBehaviour::Unavailable);
    let msg = message(&job("evt_keep", ROUTE), 1);
    assert_eq!(h.run(vec![msg]).await, ["msg-evt_keep"]);
    let docs = h.metrics.0.lock().unwrap().clone();
    assert_eq!(docs[0]["DeadLettered"], 0, "not counted as dead-lettered");
}

#[tokio::test]
async fn a_stale_receipt_handle_is_logged_not_fatal() {
    let target = TestServer::always(503).await;
    let h = Harness::new(&one_route(&target.url("/hook"), ""));
    h.queue
        .fail_visibility(QueueError::ReceiptInvalid("ReceiptHandleIsInvalid".into()));
    let ok_target = TestServer::always(200).await;
    let h2 = Harness::new(&one_route(&ok_target.url("/hook"), ""));
    assert_eq!(
        h.run(vec![message(&job("evt_stale", ROUTE), 1)]).await,
        ["msg-evt_stale"]
    );
    assert_eq!(h.delays(), [Duration::from_secs(5)]);
    // The next batch on the same deliverer goes on as usual.
    assert!(h.run(vec![]).await.is_empty());
    assert!(
        h2.run(vec![message(&job("evt_next", ROUTE), 1)])
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn one_metric_line_per_route_and_per_failure() {
    let open = Gate::new();
    open.open();
    let (_target, toml) = three_routes(&open).await;
    let h = Harness::new(&toml);
    let msgs = vec![
        message(&job("evt_a", "to-ok"), 1),
        message(&job("evt_b", "to-ok"), 1),
        message(&job_aged("evt_c", "to-retry", Duration::from_secs(7200)), 1),
        message(&job("evt_d", "to-gone"), 1),
    ];
    h.run(msgs).await;
    let docs = h.metrics.0.lock().unwrap().clone();
    let find = |route: &str, failure: Option<&str>| {
        docs.iter()
            .find(|d| d["Route"] == route && d.get("Failure").and_then(|f| f.as_str()) == failure)
            .unwrap_or_else(|| panic!("no line for {route} {failure:?}: {docs:#?}"))
            .clone()
    };
    let ok = find("to-ok", None);
    assert_eq!(
        (ok["Delivered"].as_u64(), ok["Retried"].as_u64()),
        (Some(2), Some(0))
    );
    let latencies = ok["DeliveryLatency"].as_array().unwrap();
    assert_eq!(latencies.len(), 2);
    assert!(
        latencies.iter().all(|l| l.as_f64().unwrap() >= 400.0),
        "{latencies:?}"
    );
    assert_eq!(find("to-retry", None)["Retried"], 1);
    assert_eq!(find("to-gone", None)["DeadLettered"], 1);
    let by_failure = find("to-gone", Some("http_status"));
    assert_eq!(by_failure["DeadLettered"], 1);
    assert_eq!(
        by_failure["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        serde_json::json!([["Route", "Failure"]])
    );
    // The retried message has been queued for two hours: the batch's RetryAge, no dimensions.
    let age = docs
        .iter()
        .find(|d| d.get("RetryAge").is_some())
        .unwrap_or_else(|| panic!("no RetryAge: {docs:#?}"));
    let secs = age["RetryAge"].as_u64().unwrap();
    assert!((7200..7260).contains(&secs), "{age}");
    assert_eq!(
        age["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        serde_json::json!([[]])
    );
    assert_eq!(docs.len(), 5);
}

/// A sink that wants nothing (serve's, unless its debug log is on).
#[derive(Debug, Default)]
struct Unwanted(std::sync::atomic::AtomicUsize);

impl deliver::metrics::MetricsSink for Unwanted {
    fn emit(&self, _line: &str) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn enabled(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn a_sink_that_wants_no_lines_gets_none() {
    let open = Gate::new();
    open.open();
    let (_target, toml) = three_routes(&open).await;
    let mut h = Harness::new(&toml);
    let sink = std::sync::Arc::new(Unwanted::default());
    h.deliverer = h.deliverer.with_metrics(sink.clone());
    h.run(vec![
        message(&job("evt_a", "to-ok"), 1),
        message(&job("evt_c", "to-retry"), 1),
    ])
    .await;
    assert_eq!(sink.0.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn more_than_ten_dead_letters_go_out_in_calls_of_ten_and_a_refused_entry_is_kept() {
    let target = TestServer::always(404).await;
    let h = Harness::new(&one_route(&target.url("/hook"), ""));
    // SQS accepts each call but fails its second entry.
    h.dlq
        .then(SendBehaviour::FailEntries(vec![1]))
        .then(SendBehaviour::FailEntries(vec![1]));
    let msgs: Vec<_> = (0..12)
        .map(|i| message(&job(&format!("evt_{i:02}"), ROUTE), 1))
        .collect();
    let failed = h.run(msgs).await;
    assert_eq!(
        failed,
        ["msg-evt_01", "msg-evt_11"],
        "the refused copies stay on the queue"
    );
    assert_eq!(h.dlq.send_calls(), 2, "calls of ten");
    assert_eq!(h.dlq.sent().len(), 10);
    let docs = h.metrics.0.lock().unwrap().clone();
    assert_eq!(docs[0]["DeadLettered"], 10);
}
