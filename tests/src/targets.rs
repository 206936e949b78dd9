//! Delivery targets for end-to-end tests, on the one scripted server
//! ([`router_core::testing::http::TestServer`]): paths answer as scripted (statuses in order,
//! a delay, a body), and every request is kept as a [`Delivery`].

use router_core::sync::lock;
pub use router_core::testing::http::Gate;
use router_core::testing::http::{Canned, Recorded, TestServer};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Delivery {
    pub method: String,
    /// The path, percent-decoded, without its leading `/` and query.
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

    fn from_recorded(r: &Recorded) -> Self {
        let raw_path = r.path_only().to_owned();
        Self {
            method: r.method.clone(),
            path: percent_decode(raw_path.trim_start_matches('/')),
            raw_path,
            headers: r
                .headers
                .iter()
                .filter_map(|(k, v)| {
                    v.to_str()
                        .ok()
                        .map(|v| (k.as_str().to_owned(), v.to_owned()))
                })
                .collect(),
            body: r.body.clone(),
        }
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Debug, Default)]
struct Scripts {
    /// Statuses to answer per path, in order; when a path's script runs out it answers its
    /// fallback (200 unless set).
    statuses: HashMap<String, VecDeque<u16>>,
    fallback: HashMap<String, u16>,
    delays: HashMap<String, Duration>,
    bodies: HashMap<String, String>,
    /// Paths whose answers wait for a gate (`*`: every path without a gate of its own).
    gates: HashMap<String, Gate>,
    /// Paths whose status is chosen from the request itself.
    by_request: HashMap<String, StatusFn>,
}

#[derive(Clone)]
struct StatusFn(Arc<dyn Fn(&Delivery) -> u16 + Send + Sync>);

impl std::fmt::Debug for StatusFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatusFn")
    }
}

impl Scripts {
    fn reply(&mut self, d: &Delivery) -> Canned {
        let path = d.path.as_str();
        let status = match self.statuses.get_mut(path).and_then(VecDeque::pop_front) {
            Some(s) => s,
            None => match self.by_request.get(path) {
                Some(f) => (f.0)(d),
                None => self.fallback.get(path).copied().unwrap_or(200),
            },
        };
        let body = self
            .bodies
            .get(path)
            .or_else(|| self.bodies.get("*"))
            .cloned()
            .unwrap_or_default();
        let reply = Canned::status(status)
            .body(&body)
            .after(self.delays.get(path).copied().unwrap_or_default());
        match self.gates.get(path).or_else(|| self.gates.get("*")) {
            Some(gate) => reply.until(gate),
            None => reply,
        }
    }
}

/// Paths answer 200 unless scripted otherwise.
#[derive(Debug, Clone)]
pub struct Targets {
    pub base: String,
    server: TestServer,
    scripts: Arc<Mutex<Scripts>>,
}

impl Targets {
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    /// As [`Targets::start`], on `port` of 127.0.0.1: a target that was down comes up.
    pub async fn start_on(port: u16) -> Self {
        let scripts: Arc<Mutex<Scripts>> = Arc::default();
        let s = scripts.clone();
        let server = TestServer::start_on(port, move |r, _| {
            lock(&s).reply(&Delivery::from_recorded(r))
        })
        .await;
        Self {
            base: server.base(),
            server,
            scripts,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    /// `path` answers these statuses in order, then `then` forever.
    pub fn script(&self, path: &str, statuses: &[u16], then: u16) {
        let mut s = lock(&self.scripts);
        s.statuses
            .insert(path.to_owned(), statuses.iter().copied().collect());
        s.fallback.insert(path.to_owned(), then);
    }

    /// `path` answers with the status `f` picks for each request (after any statuses
    /// [`Targets::script`] gave it).
    pub fn respond_with(&self, path: &str, f: impl Fn(&Delivery) -> u16 + Send + Sync + 'static) {
        lock(&self.scripts)
            .by_request
            .insert(path.to_owned(), StatusFn(Arc::new(f)));
    }

    /// `path` (`*`: every path without a gate of its own) answers only once `gate` is open.
    pub fn hold(&self, path: &str, gate: &Gate) {
        lock(&self.scripts)
            .gates
            .insert(path.to_owned(), gate.clone());
    }

    /// Requests being answered now (held ones included), on every path.
    pub fn in_flight(&self) -> usize {
        self.server.in_flight()
    }

    /// `path` answers only after `delay`.
    pub fn delay(&self, path: &str, delay: Duration) {
        lock(&self.scripts).delays.insert(path.to_owned(), delay);
    }

    /// `path` answers with this body (e.g. JSON for an enrich lookup); `*` is every path
    /// without a body of its own.
    pub fn answer_body(&self, path: &str, body: &str) {
        lock(&self.scripts)
            .bodies
            .insert(path.to_owned(), body.to_owned());
    }

    /// Every request received (including the ones answered with an error).
    pub fn received(&self) -> Vec<Delivery> {
        self.server
            .requests()
            .iter()
            .map(Delivery::from_recorded)
            .collect()
    }

    /// How many requests were received (cheap to poll, unlike [`Targets::received`]).
    pub fn count(&self) -> usize {
        self.server.request_count()
    }

    pub fn received_at(&self, path: &str) -> Vec<Delivery> {
        self.received()
            .into_iter()
            .filter(|d| d.path == path)
            .collect()
    }

    /// Waits until `pred` holds for what was received, or [`router_core::testing::PATIENCE`]
    /// passes.
    pub async fn wait_for(&self, pred: impl Fn(&[Delivery]) -> bool) -> bool {
        self.server
            .wait_for(|r| pred(&r.iter().map(Delivery::from_recorded).collect::<Vec<_>>()))
            .await
    }
}
