//! A rate limit split between deliver containers, on real SQS (moto_server): three
//! deliverers that share no memory, as Lambda containers, each taking its third of a route's
//! limit, drain a burst of 120 deliveries into a target that notes when each request
//! arrives; no window of the limit's length holds more than the limit, every delivery
//! arrives (its first copy on its first attempt), and nothing is dead-lettered. A limit too small to
//! split between the containers refuses to start.

use deliver::Deliverer;
use router_core::aws::{SecretsManagerStore, SqsQueue};
use router_core::backends::Backends;
use router_core::domain::{DeliveryJob, EventId, EventType, RouteName, TriggerEvent};
use router_core::ports::{OutgoingMessage, Queue};
use router_core::routes::Routes;
use router_core::testing::http::{Canned, TestServer};
use router_core::wire::queue::job_message;
use router_tests::{create_moto_queues, moto_sdk_config};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CONTAINERS: u32 = 3;
const JOBS: usize = 120;

fn routes(base: &str, requests: u32) -> Routes {
    let toml = format!(
        "[delivery]\nallow_private_targets = true\n\
         [[route]]\nname = \"crm\"\ntarget_url = \"{base}/crm\"\n\
         rate_limit = {{ requests = {requests}, per = \"1s\" }}\n\
         template = '{{\"attempt\": {{{{ delivery.attempt }}}}, \"event\": {{{{ event.id | tojson }}}}}}'\n\
         retry = {{ schedule = [\"2s\"], max_age = \"1h\" }}\n\
         triggers = [{{ event_type = \"intent\" }}]\n"
    );
    Routes::parse(&toml, Path::new("/tmp/routes.toml")).unwrap_or_else(|e| panic!("{e}"))
}

/// Metric lines are dropped (stdout would bypass test capture).
#[derive(Debug)]
struct Quiet;

impl deliver::metrics::MetricsSink for Quiet {
    fn emit(&self, _: &str) {}
}

fn job(i: usize) -> DeliveryJob {
    let event = TriggerEvent {
        id: EventId::parse(&format!("evt_{i:03}")).unwrap(),
        event_type: EventType::Intent,
        name: None,
        score: 1.0,
        user_id: None,
        session_id: None,
        data: None,
    };
    DeliveryJob::new(
        &event,
        &RouteName::parse("crm").unwrap(),
        router_core::time_fmt::now(),
    )
}

/// One container: receive a batch, handle it, delete what is done; until `stop`.
async fn container(d: Deliverer, queue: Arc<SqsQueue>, stop: Arc<std::sync::atomic::AtomicBool>) {
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let batch = queue
            .receive(10, Duration::from_secs(1), None)
            .await
            .unwrap();
        if batch.is_empty() {
            continue;
        }
        let failed = d.handle_batch(batch.clone()).await;
        let done: Vec<String> = batch
            .iter()
            .filter(|m| !failed.contains(&m.message_id))
            .map(|m| m.receipt_handle.clone())
            .collect();
        if !done.is_empty() {
            for r in queue.delete_batch(&done).await {
                r.expect("delete a handled message");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_sharing_a_limit_never_send_more_than_it_together() {
    let arrivals: Arc<Mutex<Vec<(Instant, String, u64)>>> = Arc::default();
    let seen = arrivals.clone();
    let target = TestServer::start(move |r, _| {
        let b: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
        seen.lock().unwrap().push((
            Instant::now(),
            b["event"].as_str().unwrap_or_default().to_owned(),
            b["attempt"].as_u64().unwrap_or_default(),
        ));
        Canned::status(200)
    })
    .await;
    let sdk = moto_sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (queue_url, dlq_url) = create_moto_queues(&sqs, Duration::from_secs(600), 5).await;
    let queue = Arc::new(SqsQueue::new(sqs.clone(), queue_url));
    let dlq = Arc::new(SqsQueue::new(sqs, dlq_url));
    let secrets = Arc::new(SecretsManagerStore::new(
        aws_sdk_secretsmanager::Client::new(&sdk),
    ));
    let jobs: Vec<DeliveryJob> = (0..JOBS).map(job).collect();
    for chunk in jobs.chunks(10) {
        let batch: Vec<OutgoingMessage> = chunk.iter().map(job_message).collect();
        assert!(queue.send_batch(&batch).await.unwrap().is_empty());
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut running = Vec::new();
    for _ in 0..CONTAINERS {
        let backends = Backends {
            queue: queue.clone(),
            dead_letters: dlq.clone(),
            secrets: secrets.clone(),
            ordered: None,
        };
        let d = Deliverer::new(Arc::new(routes(&target.base(), 30)), backends, false)
            .unwrap()
            .with_metrics(Arc::new(Quiet))
            .with_rate_share(CONTAINERS)
            .unwrap();
        running.push(tokio::spawn(container(d, queue.clone(), stop.clone())));
    }
    let deadline = Instant::now() + router_core::testing::PATIENCE;
    while arrivals.lock().unwrap().len() < JOBS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in running {
        r.await.unwrap();
    }
    let a = arrivals.lock().unwrap().clone();
    // SQS standard queues (and moto, with three receivers at once) deliver at least once:
    // a message can be handed out twice. Every delivery arrives; a second copy goes through
    // the limit like any request, so the window check below counts it too.
    let mut first: std::collections::BTreeMap<&str, u64> = Default::default();
    for (_, id, attempt) in &a {
        first.entry(id.as_str()).or_insert(*attempt);
    }
    assert_eq!(first.len(), JOBS, "every delivery arrived");
    assert!(
        a.len() <= JOBS + 3,
        "{} requests for {JOBS} deliveries",
        a.len()
    );
    assert!(
        first.values().all(|attempt| *attempt == 1),
        "waits spent no attempt"
    );
    let times: Vec<Instant> = a.iter().map(|(t, _, _)| *t).collect();
    let most = times
        .iter()
        .map(|&s| {
            times
                .iter()
                .filter(|&&t| t >= s && t <= s + Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(
        most <= 30,
        "{most} requests in one second from {CONTAINERS} containers"
    );
    // Each took its share (10 a second), so the three together could reach the limit.
    assert!(
        most >= 15,
        "only {most} in the busiest second: the shares went unused"
    );
    assert_eq!(
        dlq.depth().await.unwrap().visible,
        0,
        "nothing dead-lettered"
    );
}

#[tokio::test]
async fn a_limit_too_small_to_split_between_the_containers_refuses_to_start() {
    let sdk = moto_sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (queue_url, dlq_url) = create_moto_queues(&sqs, Duration::from_secs(60), 5).await;
    let backends = Backends {
        queue: Arc::new(SqsQueue::new(sqs.clone(), queue_url)),
        dead_letters: Arc::new(SqsQueue::new(sqs, dlq_url)),
        secrets: Arc::new(SecretsManagerStore::new(
            aws_sdk_secretsmanager::Client::new(&sdk),
        )),
        ordered: None,
    };
    let d = Deliverer::new(Arc::new(routes("http://127.0.0.1:9", 2)), backends, false).unwrap();
    let e = d.with_rate_share(CONTAINERS).unwrap_err();
    assert!(
        e.contains("route:crm") && e.contains("DeliverMaxConcurrency"),
        "{e}"
    );
}
