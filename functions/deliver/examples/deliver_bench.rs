//! Delivery throughput: the real `Deliverer` (render, sign, auth header, POST, metrics)
//! against a fast local sink, fed batches of 10 from an in-memory queue, plus the
//! process's peak RSS. Run through `functions/deliver/bench.sh`, which also measures the
//! Python baseline in the same run.
//!
//! ```text
//! deliver_bench sink PORT                       serve 200 to every request on 127.0.0.1:PORT
//! deliver_bench run URL N [BATCHES] [THREADS]   deliver N messages to URL, BATCHES batches
//!                                               in flight (default 1), on THREADS runtime
//!                                               threads (default 1)
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use deliver::Deliverer;
use deliver::metrics::MetricsSink;
use router_core::backends::Backends;
use router_core::domain::{DeliveryJob, EventId, EventType, RouteName, TriggerEvent};
use router_core::ports::ReceivedMessage;
use router_core::routes::Routes;
use router_core::testing::{FakeQueue, MemorySecrets};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The baseline's reference template (`template.json.j2`), on the router's context.
const TEMPLATE: &str = r#"{"userId": {{ event.user_id|tojson }}, "sessionId": {{ event.session_id|tojson }}, "text": {{ ("Intent " ~ event.name ~ " matched")|tojson }}, "data": {"score": {{ event.score }}, "slots": {{ event.data.slots|tojson }}, "items": [{% for i in event.data.items %}{"sku": {{ i.sku|tojson }}, "qty": {{ i.qty }}}{% if not loop.last %},{% endif %}{% endfor %}], "crm": {{ event.data.crm|tojson }}}}"#;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("sink") => sink(args[1].parse().expect("PORT")),
        Some("run") => {
            let url = args[1].clone();
            let n: usize = args[2].parse().expect("N");
            let in_flight: usize = args.get(3).map_or(1, |a| a.parse().expect("BATCHES"));
            let threads: usize = args.get(4).map_or(1, |a| a.parse().expect("THREADS"));
            let rt = if threads == 1 {
                tokio::runtime::Builder::new_current_thread()
            } else {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(threads);
                b
            }
            .enable_all()
            .build()
            .unwrap();
            rt.block_on(run(url, n, in_flight, threads));
        }
        _ => {
            eprintln!("usage: deliver_bench sink PORT | run URL N [BATCHES] [THREADS]");
            std::process::exit(2);
        }
    }
}

/// A fast sink: 200 to every POST, keep-alive, one thread. `GET /stats` answers
/// `{"count": N, "first_ms": T, "last_ms": T}`: the POSTs so far and when (unix ms) the
/// first and the last arrived, for the whole-`serve` benchmark.
fn sink(port: u16) {
    use std::sync::atomic::AtomicU64;
    static COUNT: AtomicU64 = AtomicU64::new(0);
    static FIRST: AtomicU64 = AtomicU64::new(0);
    static LAST: AtomicU64 = AtomicU64::new(0);
    fn now_ms() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let stats = || async {
            format!(
                r#"{{"count": {}, "first_ms": {}, "last_ms": {}}}"#,
                COUNT.load(Ordering::Relaxed),
                FIRST.load(Ordering::Relaxed),
                LAST.load(Ordering::Relaxed)
            )
        };
        let app = axum::Router::new()
            .route("/stats", axum::routing::get(stats))
            .fallback(|_body: axum::body::Bytes| async {
                let now = now_ms();
                let _ = FIRST.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
                LAST.store(now, Ordering::Relaxed);
                COUNT.fetch_add(1, Ordering::Relaxed);
                ""
            });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        println!("sink listening on http://127.0.0.1:{port}/hook");
        axum::serve(listener, app).await.unwrap();
    });
}

async fn run(url: String, n: usize, in_flight: usize, threads: usize) {
    let toml = format!(
        "[delivery]\nallow_private_targets = true\n\n\
         [signing]\nsecret = \"router/signing-key\"\n\n\
         [auth.crm]\ntype = \"header\"\nheader = \"Authorization\"\nprefix = \"Bearer \"\nsecret = \"crm/token\"\n\n\
         [[route]]\nname = \"bench\"\ntarget_url = \"{url}\"\nauth = \"crm\"\n\
         template = '{TEMPLATE}'\ntriggers = [{{ event_type = \"intent\" }}]\n"
    );
    let routes = Routes::parse(&toml, Path::new("bench.toml")).unwrap_or_else(|e| panic!("{e}"));
    let secrets = MemorySecrets::with(&[
        (
            "router/signing-key",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ),
        ("crm/token", "bench-token"),
    ]);
    // Every delivery succeeds: the queue side of a batch has nothing to do.
    let backends = Backends {
        queue: Arc::new(FakeQueue::new()),
        dead_letters: Arc::new(FakeQueue::new()),
        secrets: Arc::new(secrets),
        ordered: None,
    };
    let deliverer = Arc::new(
        Deliverer::new(Arc::new(routes), backends, false)
            .unwrap()
            .with_metrics(Arc::new(CountingSink(AtomicUsize::new(0)))),
    );
    let template: Arc<str> = body_template().into();
    let route = RouteName::parse("bench").unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..in_flight {
        let (d, next, failed) = (deliverer.clone(), next.clone(), failed.clone());
        let (template, route) = (template.clone(), route.clone());
        workers.push(tokio::spawn(async move {
            loop {
                // The "receive": a batch made on demand from stored bodies (its copying
                // counts; kept out of memory, the 20,000 messages do not inflate RSS).
                let from = next.fetch_add(10, Ordering::Relaxed);
                if from >= n {
                    break;
                }
                let batch: Vec<ReceivedMessage> = (from..(from + 10).min(n))
                    .map(|i| message(&template, &route, i))
                    .collect();
                let f = d.handle_batch(batch).await;
                failed.fetch_add(f.len(), Ordering::Relaxed);
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let took = started.elapsed();
    let failed = failed.load(Ordering::Relaxed);
    assert_eq!(failed, 0, "every delivery succeeds against the sink");
    println!(
        "rust deliver: {:.0} deliveries/s ({n} in {:.2}s, batches of 10, {in_flight} batch(es) in flight, {threads} thread(s)), peak RSS {:.1} MB",
        n as f64 / took.as_secs_f64(),
        took.as_secs_f64(),
        peak_rss_kb() as f64 / 1024.0
    );
}

/// One job, serialized once with placeholder ids; each message fills in its own.
fn body_template() -> String {
    let data = serde_json::json!({
        "slots": {"origin": "BER", "destination": "LIS", "date": "2026-12-24", "passengers": 2},
        "items": [{"sku": "A1", "qty": 1}, {"sku": "B2", "qty": 3}, {"sku": "C3", "qty": 2}, {"sku": "D4", "qty": 5}],
        "crm": {"tier": "gold", "id": "usr_123"},
    });
    let event = TriggerEvent {
        id: EventId::parse("EVENT_ID").unwrap(),
        event_type: EventType::Intent,
        name: Some("book_flight".into()),
        score: 0.92,
        user_id: Some("usr_123".into()),
        session_id: Some("sess-8f3a2c-01".into()),
        data: data.as_object().cloned(),
    };
    let mut job = DeliveryJob::new(
        &event,
        &RouteName::parse("bench").unwrap(),
        time::OffsetDateTime::now_utc(),
    );
    job.delivery_id = "DELIVERY_ID".to_owned();
    job.to_json()
}

/// Message `i` as a queue would hand it over: its stored body and attributes.
fn message(template: &str, route: &RouteName, i: usize) -> ReceivedMessage {
    let event_id = EventId::parse(&format!("evt_{i}")).unwrap();
    let delivery_id = router_core::domain::delivery_id(&event_id, route);
    ReceivedMessage {
        message_id: format!("m{i}"),
        receipt_handle: format!("r{i}"),
        attributes: BTreeMap::from([
            ("route".to_owned(), route.as_str().to_owned()),
            ("delivery_id".to_owned(), delivery_id.clone()),
        ]),
        body: template
            .replace("EVENT_ID", event_id.as_str())
            .replace("DELIVERY_ID", &delivery_id),
        receive_count: 1,
        sent_at_ms: 0,
        group: None,
    }
}

/// `VmHWM` of this process, in KiB.
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Formats the metric lines (their cost counts) and drops them.
#[derive(Debug)]
struct CountingSink(AtomicUsize);

impl MetricsSink for CountingSink {
    fn emit(&self, line: &str) {
        self.0.fetch_add(line.len(), Ordering::Relaxed);
    }
}
