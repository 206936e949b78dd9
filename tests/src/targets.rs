//! Delivery targets for end-to-end tests: a real HTTP server on 127.0.0.1 whose paths
//! answer as scripted, recording every delivery it receives (headers and body).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Delivery {
    pub method: String,
    /// The path as decoded by the router (`%2F` is `/`).
    pub path: String,
    /// The path exactly as it arrived on the wire (escapes kept).
    pub raw_path: String,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Delivery {
    pub fn webhook_id(&self) -> &str {
        self.headers.get("webhook-id").map_or("", String::as_str)
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// Statuses to answer per path, in order; when a path's script runs out it answers `fallback`.
    scripts: HashMap<String, VecDeque<u16>>,
    fallback: HashMap<String, u16>,
    delays: HashMap<String, std::time::Duration>,
    bodies: HashMap<String, String>,
    received: Vec<Delivery>,
}

/// Paths answer 200 unless scripted otherwise.
#[derive(Debug, Clone)]
pub struct Targets {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

impl Targets {
    pub async fn start() -> Self {
        let inner: Arc<Mutex<Inner>> = Arc::default();
        let app = axum::Router::new()
            .route("/{*path}", axum::routing::any(receive))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            base: format!("http://{addr}"),
            inner,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    /// `path` answers these statuses in order, then `then` forever.
    pub fn script(&self, path: &str, statuses: &[u16], then: u16) {
        let mut inner = self.inner.lock().expect("lock");
        inner
            .scripts
            .insert(path.to_owned(), statuses.iter().copied().collect());
        inner.fallback.insert(path.to_owned(), then);
    }

    /// `path` answers only after `delay`.
    pub fn delay(&self, path: &str, delay: std::time::Duration) {
        self.inner
            .lock()
            .expect("lock")
            .delays
            .insert(path.to_owned(), delay);
    }

    /// `path` answers with this body (e.g. JSON for an enrich lookup); `*` is every path
    /// without a body of its own.
    pub fn answer_body(&self, path: &str, body: &str) {
        self.inner
            .lock()
            .expect("lock")
            .bodies
            .insert(path.to_owned(), body.to_owned());
    }

    /// Every request received (including the ones answered with an error).
    pub fn received(&self) -> Vec<Delivery> {
        self.inner.lock().expect("lock").received.clone()
    }

    pub fn received_at(&self, path: &str) -> Vec<Delivery> {
        self.received()
            .into_iter()
            .filter(|d| d.path == path)
            .collect()
    }

    /// Waits until `pred` holds for what was received, or `timeout` passes.
    pub async fn wait_for(
        &self,
        timeout: std::time::Duration,
        pred: impl Fn(&[Delivery]) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if pred(&self.received()) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

async fn receive(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(path): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let delay = inner.lock().expect("lock").delays.get(&path).copied();
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let mut inner = inner.lock().expect("lock");
    let status = match inner.scripts.get_mut(&path).and_then(VecDeque::pop_front) {
        Some(s) => s,
        None => inner.fallback.get(&path).copied().unwrap_or(200),
    };
    let answer = inner
        .bodies
        .get(&path)
        .or_else(|| inner.bodies.get("*"))
        .cloned()
        .unwrap_or_default();
    inner.received.push(Delivery {
        method: method.to_string(),
        raw_path: uri.path().to_owned(),
        path,
        headers: headers
            .iter()
            .filter_map(|(k, v)| {
                v.to_str()
                    .ok()
                    .map(|v| (k.as_str().to_owned(), v.to_owned()))
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        answer,
    )
}
