//! Ordered routes through a running `serve`, on the embedded queue and on SQS FIFO (moto):
//! one session's deliveries reach the target in trigger order through retries and dead
//! letters, other sessions are not held back, and a kill -9 keeps the order.

use crate::common::*;
use router_tests::targets::Targets;
use std::collections::BTreeMap;
use std::time::Duration;

const SESSIONS: usize = 4;
const EVENTS: usize = 6;

fn ordered_routes(targets: &Targets) -> String {
    routes_for(
        targets,
        &[(
            "timeline",
            "ordering = \"session\"\nretry = { schedule = [\"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\"], max_age = \"1h\" }\ntriggers = [{ event_type = \"intent\" }]",
        )],
    )
}

/// Fails now and then, by event rather than by request order (so no event can meet more
/// 503s than its schedule has retries, however the sessions interleave on a slow machine):
/// the first attempt of every third event is a 503, and one event is always a 404 (a dead
/// letter).
fn script(targets: &Targets) {
    targets.respond_with("timeline", |d| {
        let body: serde_json::Value = serde_json::from_str(&d.body).unwrap_or_default();
        let id = body["event"].as_str().unwrap_or_default();
        let attempt = body["attempt"].as_u64().unwrap_or_default();
        let n: usize = id.bytes().map(usize::from).sum();
        match () {
            _ if id == "s1-e01" => 404,
            _ if attempt == 1 && n.is_multiple_of(3) => 503,
            _ => 200,
        }
    });
}

async fn trigger_all(serve: &Serve, from: usize, to: usize) {
    for i in from..to {
        for s in 0..SESSIONS {
            let body =
                format!(r#"{{"id":"s{s}-e{i:02}","event_type":"intent","session_id":"sess-{s}"}}"#);
            let (status, reply) = serve.trigger(&body).await;
            assert_eq!(status, 202, "{reply}");
        }
    }
}

/// Every session's requests (retries included) in the order they reached the target: an
/// event never arrives before an earlier one of its session was delivered or dead-lettered.
/// With `exact_attempts` (no crash in the run), each event's requests also carry attempt
/// numbers 1, 2, 3...: waiting behind a failing delivery of its session spends none.
fn assert_session_order(targets: &Targets, dead: &[serde_json::Value], exact_attempts: bool) {
    let mut by_session: BTreeMap<String, Vec<(usize, bool)>> = BTreeMap::new();
    let mut attempts: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for d in targets.received_at("timeline") {
        let body: serde_json::Value = serde_json::from_str(&d.body).unwrap();
        let id = body["event"].as_str().unwrap().to_owned();
        let (s, e) = id.split_once('-').unwrap();
        let n: usize = e.trim_start_matches('e').parse().unwrap();
        by_session.entry(s.to_owned()).or_default().push((n, true));
        attempts
            .entry(id)
            .or_default()
            .push(body["attempt"].as_u64().unwrap());
    }
    if exact_attempts {
        for (id, seen) in &attempts {
            let want: Vec<u64> = (1..=seen.len() as u64).collect();
            assert_eq!(seen, &want, "event {id}'s attempt numbers");
        }
    }
    assert_eq!(by_session.len(), SESSIONS);
    for (s, seq) in &by_session {
        let order: Vec<usize> = seq.iter().map(|(n, _)| *n).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "session {s} went out of order: {order:?}");
        let mut distinct = order.clone();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            EVENTS,
            "session {s}: every event reached the target: {order:?}"
        );
    }
    assert_eq!(dead.len(), 1, "the one 404 was dead-lettered: {dead:?}");
}

async fn run(ws: Workspace, targets: &Targets, kill_midway: bool) {
    let mut serve = ws.serve(&[]);
    trigger_all(&serve, 0, EVENTS / 2).await;
    if kill_midway {
        tokio::time::sleep(Duration::from_millis(700)).await;
        serve.kill9();
        serve = ws.serve(&[]);
    }
    trigger_all(&serve, EVENTS / 2, EVENTS).await;
    let want = SESSIONS * EVENTS;
    let settled = wait_until(|| {
        let mut ids: Vec<String> = targets
            .received_at("timeline")
            .iter()
            .map(|d| d.webhook_id().to_owned())
            .collect();
        ids.sort();
        ids.dedup();
        ids.len() == want
    })
    .await;
    assert!(
        settled,
        "not every event reached the target\n{}",
        serve.log()
    );
    // The last retries and the dead letter settle.
    let one = wait_until(|| dlq_rows(&ws).len() == 1).await;
    assert!(one, "one dead letter: {:?}\n{}", dlq_rows(&ws), serve.log());
    assert_session_order(targets, &dlq_rows(&ws), !kill_midway);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_embedded_queue_each_sessions_deliveries_keep_their_order() {
    let targets = Targets::start().await;
    script(&targets);
    run(Workspace::new(&ordered_routes(&targets)), &targets, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqs_fifo_each_sessions_deliveries_keep_their_order() {
    let targets = Targets::start().await;
    script(&targets);
    let mut ws = Workspace::new(&ordered_routes(&targets));
    ws.use_moto_sqs().await;
    run(ws, &targets, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_mid_run_keeps_the_order() {
    let targets = Targets::start().await;
    script(&targets);
    targets.delay("timeline", Duration::from_millis(150));
    run(Workspace::new(&ordered_routes(&targets)), &targets, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_without_a_session_is_422() {
    let targets = Targets::start().await;
    let ws = Workspace::new(&ordered_routes(&targets));
    let serve = ws.serve(&[]);
    let (status, body) = serve.trigger(r#"{"event_type":"intent"}"#).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "session_id");
}

/// The event ids of `path`'s deliveries (any attempt), deduplicated.
fn events_at(targets: &Targets, path: &str) -> Vec<String> {
    let mut ids: Vec<String> = targets
        .received_at(path)
        .iter()
        .filter_map(|d| {
            let body: serde_json::Value = serde_json::from_str(&d.body).ok()?;
            Some(body["event"].as_str()?.to_owned())
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// A trigger's status, `Retry-After` and body.
async fn post(serve: &Serve, body: &str) -> (u16, Option<u64>, serde_json::Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v2/webhooks/trigger", serve.base))
        .header("x-api-key", KEY)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("serve answers");
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    (
        resp.status().as_u16(),
        retry_after,
        resp.json().await.unwrap_or_default(),
    )
}

/// One session of an ordered route may hold `max_queued_per_session` deliveries: past it
/// the trigger answers 429 with `Retry-After` and nothing of the event is queued (not its
/// unordered route's delivery either); another session goes on meanwhile; once the stuck
/// head is delivered there is room again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_at_its_cap_is_refused_whole_while_others_go_on() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let targets = Targets::start().await;
    let stuck = Arc::new(AtomicBool::new(true));
    let failing = stuck.clone();
    targets.respond_with("timeline", move |d| {
        if failing.load(Ordering::SeqCst) && d.body.contains("stuck-") {
            503
        } else {
            200
        }
    });
    let ws = Workspace::new(&routes_for(
        &targets,
        &[
            (
                "timeline",
                "ordering = \"session\"\nmax_queued_per_session = 3\n\
                 retry = { schedule = [\"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\"], max_age = \"1h\" }\n\
                 triggers = [{ event_type = \"intent\" }]",
            ),
            ("plain", "triggers = [{ event_type = \"intent\" }]"),
        ],
    ));
    let serve = ws.serve(&[]);
    let event = |id: &str, session: &str| {
        format!(r#"{{"id":"{id}","event_type":"intent","session_id":"{session}"}}"#)
    };
    for i in 1..=3 {
        let (status, _, body) = post(&serve, &event(&format!("stuck-{i}"), "sess-stuck")).await;
        assert_eq!(status, 202, "{body}");
    }
    // The head is being retried (a 503 at least once) with two behind it: the session is full.
    assert!(
        wait_until(|| targets.received_at("timeline").len() >= 2).await,
        "the head was attempted"
    );
    let (status, retry_after, body) = post(&serve, &event("stuck-4", "sess-stuck")).await;
    assert_eq!(status, 429, "{body}");
    let retry_after = retry_after.expect("a Retry-After header");
    assert!(
        (1..=300).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("timeline") && detail.contains("max_queued_per_session"),
        "{detail}"
    );
    assert!(detail.contains("3 deliveries queued"), "{detail}");
    assert!(
        serve.log().contains("session_full"),
        "the audit line names it"
    );

    // Another session of the same route, and the unordered route, go on meanwhile.
    let (status, _, body) = post(&serve, &event("free-1", "sess-free")).await;
    assert_eq!(status, 202, "{body}");
    assert!(
        wait_until(
            || events_at(&targets, "timeline").contains(&"free-1".to_owned())
                && events_at(&targets, "plain").contains(&"free-1".to_owned())
        )
        .await,
        "the other session was delivered\n{}",
        serve.log()
    );
    assert!(
        !events_at(&targets, "plain").contains(&"stuck-4".to_owned()),
        "the refused event's unordered delivery was not queued"
    );

    // The target recovers: the three go out in order, and the session takes events again.
    stuck.store(false, Ordering::SeqCst);
    let three: Vec<String> = (1..=3).map(|i| format!("stuck-{i}")).collect();
    assert!(
        wait_until(|| {
            let got = events_at(&targets, "timeline");
            three.iter().all(|id| got.contains(id))
        })
        .await,
        "the stuck session drained\n{}",
        serve.log()
    );
    let deadline = tokio::time::Instant::now() + router_core::testing::PATIENCE;
    loop {
        let (status, _, body) = post(&serve, &event("stuck-4", "sess-stuck")).await;
        if status == 202 {
            break;
        }
        assert_eq!(status, 429, "{body}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "no room once the head was delivered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        wait_until(
            || events_at(&targets, "timeline").contains(&"stuck-4".to_owned())
                && events_at(&targets, "plain").contains(&"stuck-4".to_owned())
        )
        .await,
        "{}",
        serve.log()
    );
}
