//! Test support: queue and secret-store fakes that record their calls, a scripted HTTP
//! target on 127.0.0.1 (a real server, real sockets), routes and messages.

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use deliver::Deliverer;
use deliver::guard::Lookup;
use deliver::metrics::MetricsSink;
use router_core::backends::Backends;
use router_core::domain::{DeliveryJob, EventId, EventType, RouteName, TriggerEvent};
use router_core::ports::{
    EntryFailure, OutgoingMessage, Queue, QueueDepth, QueueError, ReceivedMessage, SecretError,
    SecretStore,
};
use router_core::routes::Routes;
use router_core::secrets::Secret;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;

// ---------------------------------------------------------------- queue fake

/// A queue that records every call. Receives nothing; the tests hand messages in.
#[derive(Debug, Default)]
pub struct FakeQueue {
    pub sent: Mutex<Vec<Vec<OutgoingMessage>>>,
    pub visibility: Mutex<Vec<Vec<(String, Duration)>>>,
    pub send_error: Mutex<Option<QueueError>>,
    /// Positions in a call `send_batch` reports as failed (the call itself succeeds, as
    /// SQS does).
    pub refuse_entries: Mutex<Vec<usize>>,
    pub visibility_error: Mutex<Option<QueueError>>,
}

impl FakeQueue {
    /// Every message sent, across batches.
    pub fn sent_messages(&self) -> Vec<OutgoingMessage> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// Every `change_visibility_batch` call, with its entries.
    pub fn visibility_calls(&self) -> Vec<Vec<(String, Duration)>> {
        self.visibility.lock().unwrap().clone()
    }
}

#[async_trait]
impl Queue for FakeQueue {
    async fn send_batch(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<EntryFailure>, QueueError> {
        assert!(messages.len() <= 10, "a batch holds at most 10");
        if let Some(e) = self.send_error.lock().unwrap().clone() {
            return Err(e);
        }
        router_core::ports::limits::check_send(messages)?;
        let refused = self.refuse_entries.lock().unwrap().clone();
        self.sent.lock().unwrap().push(
            messages
                .iter()
                .enumerate()
                .filter(|(i, _)| !refused.contains(i))
                .map(|(_, m)| m.clone())
                .collect(),
        );
        Ok(refused
            .iter()
            .filter(|i| **i < messages.len())
            .map(|&index| EntryFailure {
                index,
                reason: "InternalError".into(),
                permanent: false,
            })
            .collect())
    }

    async fn receive(
        &self,
        _max: usize,
        _wait: Duration,
        _visibility: Option<Duration>,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        Ok(Vec::new())
    }

    async fn delete(&self, _receipt_handle: &str) -> Result<(), QueueError> {
        panic!("the handler never deletes: its host does")
    }

    async fn change_visibility(
        &self,
        receipt_handle: &str,
        timeout: Duration,
    ) -> Result<(), QueueError> {
        self.change_visibility_batch(&[(receipt_handle.to_owned(), timeout)])
            .await
            .remove(0)
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        Ok(QueueDepth::default())
    }

    async fn change_visibility_batch(
        &self,
        entries: &[(String, Duration)],
    ) -> Vec<Result<(), QueueError>> {
        self.visibility.lock().unwrap().push(entries.to_vec());
        let err = self.visibility_error.lock().unwrap().clone();
        entries
            .iter()
            .map(|_| err.clone().map_or(Ok(()), Err))
            .collect()
    }
}

// ---------------------------------------------------------------- secrets fake

/// Secret values by id; an id given several values hands them out in turn (the last
/// one stays), as if token-refresh had rotated it in between. Records every read.
#[derive(Debug, Default)]
pub struct FakeSecrets {
    values: Mutex<HashMap<String, VecDeque<String>>>,
    reads: Mutex<Vec<String>>,
}

impl FakeSecrets {
    pub fn set(&self, id: &str, values: &[&str]) {
        self.values.lock().unwrap().insert(
            id.to_owned(),
            values.iter().map(|v| v.to_string()).collect(),
        );
    }

    pub fn reads(&self, id: &str) -> usize {
        self.reads
            .lock()
            .unwrap()
            .iter()
            .filter(|r| *r == id)
            .count()
    }
}

#[async_trait]
impl SecretStore for FakeSecrets {
    async fn get(&self, id: &str) -> Result<Secret, SecretError> {
        self.reads.lock().unwrap().push(id.to_owned());
        let mut values = self.values.lock().unwrap();
        let queue = values
            .get_mut(id)
            .ok_or_else(|| SecretError::NotFound(id.to_owned()))?;
        let v = if queue.len() > 1 {
            queue.pop_front()
        } else {
            queue.front().cloned()
        };
        v.map(Secret::new)
            .ok_or_else(|| SecretError::NotFound(id.to_owned()))
    }

    async fn put(&self, id: &str, value: &Secret) -> Result<(), SecretError> {
        self.set(id, &[value.expose()]);
        Ok(())
    }
}

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

// ---------------------------------------------------------------- HTTP target

/// What a target answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn json(body: &str) -> Self {
        Self::status(200)
            .header("content-type", "application/json")
            .body(body)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: &str) -> Self {
        self.body = body.to_owned();
        self
    }

    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A request as the target saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("the delivery body is JSON")
    }
}

type Responder = dyn Fn(&Recorded, usize) -> Reply + Send + Sync;

struct TargetState {
    requests: Mutex<Vec<Recorded>>,
    responder: Box<Responder>,
}

/// A real HTTP server on 127.0.0.1 answering as `responder` says (given the request and
/// its 0-based number), recording every request.
pub struct Target {
    pub port: u16,
    state: Arc<TargetState>,
}

impl Target {
    pub async fn start(
        responder: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let state = Arc::new(TargetState {
            requests: Mutex::new(Vec::new()),
            responder: Box::new(responder),
        });
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { port, state }
    }

    /// Answers the replies in order, then the last one forever.
    pub async fn scripted(replies: Vec<Reply>) -> Self {
        Self::start(move |_, n| replies[n.min(replies.len() - 1)].clone()).await
    }

    pub async fn always(status: u16) -> Self {
        Self::scripted(vec![Reply::status(status)]).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }
}

async fn answer(
    State(state): State<Arc<TargetState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let rec = Recorded {
        method: method.to_string(),
        path: uri.to_string(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let reply = {
        let mut requests = state.requests.lock().unwrap();
        requests.push(rec.clone());
        (state.responder)(&rec, requests.len() - 1)
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut headers = HeaderMap::new();
    for (k, v) in &reply.headers {
        headers.insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    (
        StatusCode::from_u16(reply.status).unwrap(),
        headers,
        reply.body,
    )
        .into_response()
}

/// A port on 127.0.0.1 nobody listens on.
pub async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
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
    let sent = job.received_at().unwrap();
    ReceivedMessage {
        message_id: format!("msg-{}", job.event_id),
        receipt_handle: format!("rh-{}-{receive_count}", job.event_id),
        body: job.to_json(),
        attributes: BTreeMap::from([
            ("route".to_owned(), job.route.clone()),
            ("delivery_id".to_owned(), job.delivery_id.clone()),
        ]),
        receive_count,
        sent_at_ms: (sent.unix_timestamp_nanos() / 1_000_000) as i64,
    }
}

// ---------------------------------------------------------------- the harness

/// A deliverer on fake ports, with everything it did recorded.
pub struct Harness {
    pub deliverer: Deliverer,
    pub queue: Arc<FakeQueue>,
    pub dlq: Arc<FakeQueue>,
    pub secrets: Arc<FakeSecrets>,
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
        let secrets = Arc::new(FakeSecrets::default());
        let metrics = Arc::new(CapturedMetrics::default());
        let backends = Backends {
            queue: queue.clone(),
            dead_letters: dlq.clone(),
            secrets: secrets.clone(),
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
            secrets,
            metrics,
        }
    }

    pub async fn run(&self, messages: Vec<ReceivedMessage>) -> Vec<String> {
        self.deliverer.handle_batch(messages).await
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
        let sent = self.dlq.sent_messages();
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
        assert!(self.dlq.sent_messages().is_empty(), "no dead letter");
    }
}
