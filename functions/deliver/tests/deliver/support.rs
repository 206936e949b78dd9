//! Test support: the harness around a deliverer on router_core's test doubles (fake
//! queues and secret store that record their calls, the scripted HTTP server on
//! 127.0.0.1), routes and messages.

use deliver::Deliverer;
use deliver::guard::Lookup;
use deliver::metrics::MetricsSink;
use router_core::backends::{Backends, QueuePair};
use router_core::domain::{DeliveryJob, EventId, EventType, RouteName, TriggerEvent};
use router_core::ports::{OutgoingMessage, ReceivedMessage};
use router_core::routes::Routes;
pub use router_core::testing::http::{Canned, Gate, TestServer, closed_port};
pub use router_core::testing::{FakeQueue, MemorySecrets, SendBehaviour};
use router_core::wire::queue::job_message;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;

/// A token as token-refresh stores it, expiring in an hour.
pub fn stored_token(access_token: &str) -> String {
    format!(
        r#"{{"access_token":"{access_token}","token_type":"Bearer","expires_at":{}}}"#,
        OffsetDateTime::now_utc().unix_timestamp() + 3600
    )
}

// ---------------------------------------------------------------- metrics capture

#[derive(Debug, Default)]
pub struct CapturedMetrics(pub Mutex<Vec<serde_json::Value>>);

impl MetricsSink for CapturedMetrics {
    fn emit(&self, line: &str) {
        let doc = serde_json::from_str(line).expect("a metric line is one JSON document");
        self.0.lock().unwrap().push(doc);
    }
}

// ---------------------------------------------------------------- routes and jobs

pub const ROUTE: &str = "crm-handoff";
pub const TEMPLATE: &str = r#"{"user": {{ event.user_id | tojson }}, "text": {{ event.data.text | tojson }}, "id": {{ delivery.id | tojson }}, "attempt": {{ delivery.attempt }}, "route": {{ route.name | tojson }}}"#;

/// A routes file with private targets allowed (the targets are on 127.0.0.1) and one
/// route `crm-handoff` to `target_url`, with `extra` lines added to the route.
pub fn one_route(target_url: &str, extra: &str) -> String {
    format!(
        "[delivery]\nallow_private_targets = true\n\n{}",
        route_block(ROUTE, target_url, extra)
    )
}

pub fn route_block(name: &str, target_url: &str, extra: &str) -> String {
    let template = if extra.contains("template") {
        String::new()
    } else {
        format!("template = '{TEMPLATE}'\n")
    };
    format!(
        "[[route]]\nname = \"{name}\"\ntarget_url = \"{target_url}\"\n{template}triggers = [{{ event_type = \"intent\" }}]\n{extra}\n"
    )
}

pub fn routes(toml: &str) -> Arc<Routes> {
    Arc::new(Routes::parse(toml, Path::new("/tmp/routes.toml")).unwrap_or_else(|e| panic!("{e}")))
}

pub fn event(id: &str) -> TriggerEvent {
    TriggerEvent {
        id: EventId::parse(id).unwrap(),
        event_type: EventType::Intent,
        name: Some("handover".into()),
        score: 0.92,
        user_id: Some("usr_1".into()),
        session_id: Some("sess_1".into()),
        data: serde_json::json!({"text": "agent please"})
            .as_object()
            .cloned(),
    }
}

/// A job for `route`, received `age` ago.
pub fn job_aged(event_id: &str, route: &str, age: Duration) -> DeliveryJob {
    DeliveryJob::new(
        &event(event_id),
        &RouteName::parse(route).unwrap(),
        OffsetDateTime::now_utc() - age,
    )
}

pub fn job(event_id: &str, route: &str) -> DeliveryJob {
    job_aged(event_id, route, Duration::ZERO)
}

/// The job as the queue hands it over on receive number `receive_count`.
pub fn message(job: &DeliveryJob, receive_count: u32) -> ReceivedMessage {
    let m = job_message(job);
    ReceivedMessage {
        message_id: format!("msg-{}", job.event_id),
        receipt_handle: format!("rh-{}-{receive_count}", job.event_id),
        body: m.body,
        attributes: m.attributes,
        receive_count,
        sent_at_ms: router_core::time_fmt::unix_ms(job.received_at),
        group: None,
    }
}

/// The job as the FIFO queue hands it over: in its session's message group.
pub fn ordered_message(job: &DeliveryJob, receive_count: u32) -> ReceivedMessage {
    ReceivedMessage {
        group: Some(router_core::wire::queue::message_group(job)),
        ..message(job, receive_count)
    }
}

// ---------------------------------------------------------------- the harness

/// A deliverer on fake ports, with everything it did recorded.
pub struct Harness {
    pub deliverer: Deliverer,
    pub queue: Arc<FakeQueue>,
    pub dlq: Arc<FakeQueue>,
    /// The ordered routes' FIFO pair.
    pub ordered_queue: Arc<FakeQueue>,
    pub ordered_dlq: Arc<FakeQueue>,
    pub secrets: Arc<MemorySecrets>,
    pub metrics: Arc<CapturedMetrics>,
}

impl Harness {
    pub fn new(routes_toml: &str) -> Self {
        Self::build(routes_toml, false, None)
    }

    pub fn build(
        routes_toml: &str,
        allow_private_env: bool,
        lookup: Option<Arc<dyn Lookup>>,
    ) -> Self {
        let queue = Arc::new(FakeQueue::default());
        let dlq = Arc::new(FakeQueue::default());
        let secrets = Arc::new(MemorySecrets::default());
        let metrics = Arc::new(CapturedMetrics::default());
        let ordered_queue = Arc::new(FakeQueue::default());
        let ordered_dlq = Arc::new(FakeQueue::default());
        let backends = Backends {
            queue: queue.clone(),
            dead_letters: dlq.clone(),
            secrets: secrets.clone(),
            ordered: Some(QueuePair {
                queue: ordered_queue.clone(),
                dead_letters: ordered_dlq.clone(),
            }),
        };
        let routes = routes(routes_toml);
        let deliverer = match lookup {
            Some(l) => Deliverer::with_lookup(routes, backends, allow_private_env, l),
            None => Deliverer::new(routes, backends, allow_private_env),
        }
        .unwrap()
        .with_metrics(metrics.clone());
        Self {
            deliverer,
            queue,
            dlq,
            ordered_queue,
            ordered_dlq,
            secrets,
            metrics,
        }
    }

    pub async fn run(&self, messages: Vec<ReceivedMessage>) -> Vec<String> {
        let failed = self.deliverer.handle_batch(messages).await;
        assert!(
            self.queue.deleted().is_empty(),
            "the handler never deletes: its host does"
        );
        failed
    }

    /// Runs one message alone; returns whether it was reported failed.
    pub async fn run_one(&self, msg: ReceivedMessage) -> bool {
        let id = msg.message_id.clone();
        let failed = self.run(vec![msg]).await;
        assert!(failed.iter().all(|f| *f == id));
        !failed.is_empty()
    }

    /// The one DLQ copy sent so far.
    pub fn dead_letter(&self) -> OutgoingMessage {
        let sent = self.dlq.sent();
        assert_eq!(sent.len(), 1, "exactly one dead letter: {sent:#?}");
        sent.into_iter().next().unwrap()
    }

    /// The visibility delays set so far, one per call.
    pub fn delays(&self) -> Vec<Duration> {
        self.queue
            .visibility_calls()
            .into_iter()
            .flatten()
            .map(|(_, d)| d)
            .collect()
    }

    pub fn assert_nothing_queued(&self) {
        assert!(self.delays().is_empty(), "no visibility change");
        assert!(self.queue.released().is_empty(), "nothing put back");
        assert!(self.dlq.sent().is_empty(), "no dead letter");
    }
}
