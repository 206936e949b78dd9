//! Rate limits from outside, on a running `serve`: a burst far over a route's limit reaches
//! a target that counts requests per window without any window over the limit, all of it,
//! nothing dead-lettered and no attempt spent on waiting; a 429 with `Retry-After` holds
//! the route's later requests back until it ends. The target notes when each request
//! arrives (its own clock, as a real rate limiter would).

use crate::common::*;
use router_core::testing::http::{Canned, TestServer};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Each request's arrival, event id and attempt.
type Arrivals = Arc<Mutex<Vec<(Instant, String, u64)>>>;

fn note(arrivals: &Arrivals, body: &str) -> usize {
    let b: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let mut a = arrivals.lock().unwrap();
    a.push((
        Instant::now(),
        b["event"].as_str().unwrap_or_default().to_owned(),
        b["attempt"].as_u64().unwrap_or_default(),
    ));
    a.len()
}

fn routes(base: &str, limit: &str) -> String {
    format!(
        "[ingest]\nauth = \"flows\"\n[delivery]\nallow_private_targets = true\n[signing]\nsecret = \"router/signing-key\"\n\
         [auth.flows]\ntype = \"api_key\"\nsecret = \"router/ingest-key\"\n\
         [[route]]\nname = \"crm\"\ntarget_url = \"{base}/crm\"\ntimeout_seconds = 20\n{limit}\n\
         retry = {{ schedule = [\"1s\", \"1s\", \"1s\"], max_age = \"1h\" }}\n\
         template = '{{\"attempt\": {{{{ delivery.attempt }}}}, \"event\": {{{{ event.id | tojson }}}}}}'\n\
         triggers = [{{ event_type = \"intent\" }}]\n"
    )
}

/// The most arrivals in any window of `per` (closed at both ends: stricter than a target
/// counting in half-open windows).
fn most_in_any_window(times: &[Instant], per: Duration) -> usize {
    times
        .iter()
        .map(|&start| {
            times
                .iter()
                .filter(|&&t| t >= start && t <= start + per)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_500_reaches_a_20_per_second_target_without_a_window_over_the_limit() {
    let arrivals: Arrivals = Arc::default();
    let seen = arrivals.clone();
    let target = TestServer::start(move |r, _| {
        note(&seen, &r.body);
        Canned::status(200)
    })
    .await;
    let ws = Workspace::new(&routes(
        &target.base(),
        "rate_limit = { requests = 20, per = \"1s\" }",
    ));
    let serve = ws.serve(&[]);
    let started = Instant::now();
    for i in 0..500 {
        let (status, reply) = serve
            .trigger(&format!(r#"{{"id":"e{i:03}","event_type":"intent"}}"#))
            .await;
        assert_eq!(status, 202, "{reply}");
    }
    let all_in = || arrivals.lock().unwrap().len() >= 500;
    assert!(
        wait_until_within(Duration::from_secs(180), all_in).await,
        "{} of 500 arrived\n{}",
        arrivals.lock().unwrap().len(),
        serve.log()
    );
    // Let anything late (a duplicate) show itself.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let a = arrivals.lock().unwrap().clone();
    let times: Vec<Instant> = a.iter().map(|(t, _, _)| *t).collect();
    let most = most_in_any_window(&times, Duration::from_secs(1));
    assert!(most <= 20, "{most} requests in one second");
    let ids: std::collections::BTreeSet<&str> = a.iter().map(|(_, id, _)| id.as_str()).collect();
    assert_eq!((a.len(), ids.len()), (500, 500), "each event once");
    assert!(
        a.iter().all(|(_, _, attempt)| *attempt == 1),
        "waiting spent no attempt"
    );
    assert!(dlq_rows(&ws).is_empty(), "nothing dead-lettered");
    // The limit was what paced it: 500 at 20 a second take 24 s at the least.
    let span = *times.iter().max().unwrap() - started;
    assert!(span >= Duration::from_secs(24), "{span:?}");
    assert!(
        serve.log().contains("rate_limited"),
        "the waits are logged as such"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_holds_the_routes_requests_until_it_ends() {
    let arrivals: Arrivals = Arc::default();
    let seen = arrivals.clone();
    let target = TestServer::start(move |r, _| match note(&seen, &r.body) {
        1 => Canned::status(429).header("retry-after", "3"),
        _ => Canned::status(200),
    })
    .await;
    let ws = Workspace::new(&routes(
        &target.base(),
        "rate_limit = { requests = 100, per = \"1s\" }",
    ));
    let serve = ws.serve(&[]);
    let (status, _) = serve
        .trigger(r#"{"id":"first","event_type":"intent"}"#)
        .await;
    assert_eq!(status, 202);
    assert!(wait_until(|| !arrivals.lock().unwrap().is_empty()).await);
    let refused_at = arrivals.lock().unwrap()[0].0;
    for i in 0..9 {
        let (status, _) = serve
            .trigger(&format!(r#"{{"id":"later-{i}","event_type":"intent"}}"#))
            .await;
        assert_eq!(status, 202);
    }
    assert!(
        wait_until(|| arrivals.lock().unwrap().len() >= 11).await,
        "{:?}\n{}",
        arrivals.lock().unwrap(),
        serve.log()
    );
    let a = arrivals.lock().unwrap().clone();
    for (at, id, attempt) in &a[1..] {
        // A little under 3 s: the pause starts when the 429 came back, a moment after the
        // target noted the request.
        assert!(
            *at >= refused_at + Duration::from_millis(2900),
            "{id} arrived {:?} after the 429",
            *at - refused_at
        );
        let want = if id == "first" { 2 } else { 1 };
        assert_eq!(*attempt, want, "{id}: only the 429 spent an attempt");
    }
    assert!(dlq_rows(&ws).is_empty());
}
