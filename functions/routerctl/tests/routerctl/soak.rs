//! Soak: triggers over 20 routes through `routerctl serve`, targets that answer 503 to 30 %
//! of requests, time out on 5 % and reset the connection on 2 %, and `serve` killed with
//! SIGKILL twice and restarted during the run. At the end every accepted delivery was
//! received by its target or is in the DLQ, and every duplicate carries its webhook-id.
//!
//! CI runs a small variant; by hand, the full one:
//!   SOAK_TRIGGERS=5000 cargo test -p routerctl --test routerctl soak::soak_on_the_embedded -- --nocapture
//! (`make test` provides moto for the SQS variant: SOAK_SQS_TRIGGERS, default 150.)

use crate::common::*;
use router_tests::chaos::{ChaosTarget, Faults};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const ROUTES: usize = 20;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn routes(target: &ChaosTarget) -> String {
    let mut s = String::from(
        "[ingest]\nauth = \"flows\"\n[delivery]\nallow_private_targets = true\n[signing]\nsecret = \"router/signing-key\"\n\
         [auth.flows]\ntype = \"api_key\"\nsecret = \"router/ingest-key\"\n",
    );
    for i in 0..ROUTES {
        s.push_str(&format!(
            "[[route]]\nname = \"route-{i:02}\"\ntarget_url = \"{}\"\ntimeout_seconds = 1\n\
             template = '{{\"delivery\": {{{{ delivery.id | tojson }}}}, \"attempt\": {{{{ delivery.attempt }}}}}}'\n\
             retry = {{ schedule = [\"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\"], max_age = \"1h\" }}\n\
             triggers = [{{ event_type = \"custom\", name = \"r{i}\" }}]\n",
            target.url(&format!("route-{i:02}"))
        ));
    }
    s
}

async fn soak(ws: Workspace, triggers: usize, kills: usize) {
    let target = ChaosTarget::start(Faults::default(), 0x5eed_1234_abcd_0001).await;
    std::fs::write(ws.path("routes.toml"), routes(&target)).unwrap();
    let started = Instant::now();
    let mut serve = ws.serve(&["--concurrency", "4"]);
    let kill_at: Vec<usize> = (1..=kills).map(|k| k * triggers / (kills + 1)).collect();
    let mut accepted = BTreeSet::new();
    for i in 0..triggers {
        if kill_at.contains(&i) {
            serve.kill9();
            serve = ws.serve(&["--concurrency", "4"]);
        }
        let body = format!(
            r#"{{"id": "soak-{i}", "event_type": "custom", "name": "r{}"}}"#,
            i % ROUTES
        );
        // Retried until accepted, as a caller would; only a 202 counts.
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (status, reply) = serve.trigger(&body).await;
            if status == 202 {
                accepted.insert(
                    reply["deliveries"][0]["delivery_id"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "trigger {i} never accepted: {status} {reply}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let mut dead = BTreeSet::new();
    let mut lost: Vec<String> = Vec::new();
    // Minutes for the long runs by hand (their schedules and kills included).
    let patience = PATIENCE * 2 + Duration::from_millis(20 * triggers as u64);
    let settled = wait_until_within(patience, || {
        let delivered: BTreeSet<String> = target
            .record
            .lock()
            .unwrap()
            .delivered
            .keys()
            .cloned()
            .collect();
        dead = dlq_rows(&ws)
            .iter()
            .map(|r| r["delivery_id"].as_str().unwrap().to_owned())
            .collect();
        lost = accepted
            .iter()
            .filter(|id| !delivered.contains(*id) && !dead.contains(*id))
            .cloned()
            .collect();
        lost.is_empty()
    })
    .await;
    let r = target.record.lock().unwrap();
    let deliveries: u64 = r.delivered.values().sum();
    let duplicates = deliveries - r.delivered.len() as u64;
    println!(
        "soak: triggers={} deliveries={} duplicates={} dead_letters={} lost={} ({} requests: {} 503, {} timeouts, {} resets; {} kills; {:.0?})",
        accepted.len(),
        deliveries,
        duplicates,
        dead.len(),
        lost.len(),
        r.requests,
        r.unavailable,
        r.timeouts,
        r.resets,
        kills,
        started.elapsed()
    );
    assert!(
        settled && lost.is_empty(),
        "lost deliveries: {lost:?}\n{}",
        serve.log()
    );
    assert!(
        r.mismatched.is_empty(),
        "deliveries whose body and webhook-id disagree: {:?}",
        r.mismatched
    );
    let strangers: Vec<&String> = r
        .delivered
        .keys()
        .filter(|id| !accepted.contains(*id))
        .collect();
    assert!(
        strangers.is_empty(),
        "deliveries nobody triggered: {strangers:?}"
    );
    assert!(
        r.unavailable > 0 && r.timeouts > 0 && r.resets > 0,
        "the faults happened: {r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_on_the_embedded_queue_loses_nothing() {
    soak(
        Workspace::new(""),
        env_or("SOAK_TRIGGERS", 400),
        env_or("SOAK_KILLS", 2),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_on_sqs_loses_nothing() {
    let mut ws = Workspace::new("");
    ws.use_moto_sqs().await;
    soak(
        ws,
        env_or("SOAK_SQS_TRIGGERS", 150),
        env_or("SOAK_KILLS", 2),
    )
    .await;
}
