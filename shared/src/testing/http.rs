//! The one scripted HTTP server of the tests: a real server on 127.0.0.1 answering as a
//! responder says (given the request and its 0-based number), recording every request.
//! Delivery targets, CRM lookups and token endpoints in every test crate are built on it.
//! A reply can be held behind a [`Gate`] that the test opens: "answered without waiting
//! for X" and "N requests at once" are then shown by what the server saw while it held
//! them, never by a stopwatch.

use crate::sync::lock;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A gate the test opens: replies held behind it wait until then (or until
/// [`super::PATIENCE`] passes, so a broken test ends).
#[derive(Debug, Clone)]
pub struct Gate(Arc<tokio::sync::watch::Sender<bool>>);

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Self {
        Self(Arc::new(tokio::sync::watch::channel(false).0))
    }

    pub fn open(&self) {
        self.0.send_replace(true);
    }

    pub fn is_open(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until the gate is open (at most [`super::PATIENCE`]).
    pub async fn passed(&self) {
        let mut rx = self.0.subscribe();
        let _ = tokio::time::timeout(super::PATIENCE, rx.wait_for(|open| *open)).await;
    }
}

/// What the server answers.
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
    /// Answers only once this gate is open (then after `delay`).
    pub hold: Option<Gate>,
}

impl Canned {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
            hold: None,
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

    /// Answers only after `delay`.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Answers only once `gate` is open.
    pub fn until(mut self, gate: &Gate) -> Self {
        self.hold = Some(gate.clone());
        self
    }

    /// Never answers within a test (an hour): a target that hangs.
    pub fn never(self) -> Self {
        self.after(Duration::from_secs(3600))
    }
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The path and query exactly as they arrived (escapes kept).
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("the request body is JSON")
    }

    /// The path without its query.
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or_default()
    }
}

type Responder = dyn Fn(&Recorded, usize) -> Canned + Send + Sync;

struct ServerState {
    requests: Mutex<Vec<Recorded>>,
    responder: Box<Responder>,
    /// Requests being answered now, and the most there were at once.
    in_flight: AtomicUsize,
    peak_in_flight: AtomicUsize,
}

/// A real HTTP server on 127.0.0.1. It stops with the test's runtime.
#[derive(Clone)]
pub struct TestServer {
    pub port: u16,
    state: Arc<ServerState>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("port", &self.port)
            .finish()
    }
}

impl TestServer {
    pub async fn start(
        responder: impl Fn(&Recorded, usize) -> Canned + Send + Sync + 'static,
    ) -> Self {
        Self::start_on(0, responder).await
    }

    /// As [`TestServer::start`], on `port` of 127.0.0.1 (0: any free one): a target that was
    /// down (a [`closed_port`]) comes up.
    pub async fn start_on(
        port: u16,
        responder: impl Fn(&Recorded, usize) -> Canned + Send + Sync + 'static,
    ) -> Self {
        let state = Arc::new(ServerState {
            requests: Mutex::new(Vec::new()),
            responder: Box::new(responder),
            in_flight: AtomicUsize::new(0),
            peak_in_flight: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local address").port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { port, state }
    }

    /// Answers the replies in order, then the last one forever.
    pub async fn scripted(replies: Vec<Canned>) -> Self {
        Self::start(move |_, n| replies[n.min(replies.len() - 1)].clone()).await
    }

    pub async fn always(status: u16) -> Self {
        Self::scripted(vec![Canned::status(status)]).await
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.state.requests).clone()
    }

    /// How many requests it received (without copying them: cheap to poll).
    pub fn request_count(&self) -> usize {
        lock(&self.state.requests).len()
    }

    /// Waits until `pred` holds for the requests so far, or [`super::PATIENCE`] passes.
    pub async fn wait_for(&self, pred: impl Fn(&[Recorded]) -> bool) -> bool {
        super::eventually(|| pred(&self.requests())).await
    }

    /// Requests being answered now (held or delayed ones included).
    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::SeqCst)
    }

    /// The most requests it was answering at once.
    pub fn peak_in_flight(&self) -> usize {
        self.state.peak_in_flight.load(Ordering::SeqCst)
    }
}

/// Counts a request in flight for as long as it lives.
struct InFlight<'a>(&'a ServerState);

impl<'a> InFlight<'a> {
    fn new(state: &'a ServerState) -> Self {
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(state)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn answer(
    State(state): State<Arc<ServerState>>,
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
    let _counted = InFlight::new(&state);
    let reply = {
        let mut requests = lock(&state.requests);
        requests.push(rec.clone());
        let n = requests.len() - 1;
        drop(requests);
        (state.responder)(&rec, n)
    };
    if let Some(gate) = &reply.hold {
        gate.passed().await;
    }
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut headers = HeaderMap::new();
    for (k, v) in &reply.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(k.as_bytes()), v.parse()) {
            headers.insert(name, value);
        }
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, headers, reply.body).into_response()
}

/// A port on 127.0.0.1 nobody listens on.
pub async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    l.local_addr().expect("local address").port()
}
