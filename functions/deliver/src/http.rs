//! One HTTP request (a delivery POST or an enrich GET) and what it came to: an
//! [`Attempted`] (the retry module's [`Outcome`], the status, a safe error text: no URL,
//! no body, no secret) with the latency and, when asked for, the answer's body. Also
//! builds the one pooled client per cold start.

use crate::guard::{self, GuardedResolver};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Client, Method, redirect};
use router_core::retry::{Attempted, Outcome, parse_retry_after};
use router_core::wire::headers::USER_AGENT;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use url::Url;

/// How much of a delivery's answer is read (so the connection can be reused).
const DRAIN_LIMIT: usize = 64 * 1024;
/// The largest enrich answer accepted.
pub const MAX_ENRICH_ANSWER: usize = 1024 * 1024;

/// The client every attempt goes through: pooled connections, the guard as its resolver,
/// redirects never followed, and no proxy (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` are
/// ignored): through a proxy the guard would only ever judge the proxy's address.
pub fn client(resolver: GuardedResolver) -> reqwest::Result<Client> {
    Client::builder()
        .no_proxy()
        .dns_resolver(Arc::new(resolver))
        .redirect(redirect::Policy::none())
        .user_agent(USER_AGENT)
        .pool_idle_timeout(Duration::from_secs(60))
        .connect_timeout(Duration::from_secs(10))
        .build()
}

/// One request to make.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub method: Method,
    pub url: &'a Url,
    pub headers: HeaderMap,
    pub body: Option<String>,
    pub timeout: Duration,
    /// What to do with a 2xx answer's body.
    pub keep: Keep,
}

/// What to do with a 2xx answer's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Read (up to 64 KiB, so the connection can be reused) and drop it.
    Drain,
    /// Keep it whole (an enrich answer): larger than [`MAX_ENRICH_ANSWER`] is `too_large`.
    Whole,
    /// Keep its first `n` bytes (a reply's `response.text`); more is cut, not an error.
    Prefix(usize),
}

/// What one request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub attempted: Attempted,
    /// How long the request took; `None` when none was made.
    pub latency: Option<Duration>,
    /// The answer's body, when asked for and the status was 2xx.
    pub body: Option<Vec<u8>>,
    /// The body was longer than [`Keep::Prefix`] kept.
    pub truncated: bool,
}

impl Sent {
    /// Ended without an answer (`latency`: `None` when nothing was sent).
    pub fn failed(outcome: Outcome, error: String, latency: Option<Duration>) -> Self {
        Self {
            attempted: Attempted::new(outcome, error),
            latency,
            body: None,
            truncated: false,
        }
    }
}

/// Whether a request may reach a private address (the name resolver of the client has its
/// own setting; this one judges IP literals in the URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Private {
    Refused,
    Allowed,
}

/// Sends one request: the guard first (IP literals), then the request with its timeout.
pub async fn send(client: &Client, private: Private, req: Request<'_>) -> Sent {
    let started = Instant::now();
    if let Err(blocked) = guard::check_url(req.url, private == Private::Allowed) {
        return Sent::failed(
            Outcome::Blocked,
            blocked.to_string(),
            Some(started.elapsed()),
        );
    }
    let mut builder = client
        .request(req.method, req.url.clone())
        .headers(req.headers)
        .timeout(req.timeout);
    if let Some(body) = req.body {
        builder = builder.body(body);
    }
    let mut resp = match builder.send().await {
        Ok(r) => r,
        Err(e) => {
            let (outcome, text) = describe(&e, req.timeout);
            return Sent::failed(outcome, text, Some(started.elapsed()));
        }
    };
    let code = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let success = (200..300).contains(&code);
    let keep = if success { req.keep } else { Keep::Drain };
    let (body, truncated) = match read_body(&mut resp, keep).await {
        BodyRead::Body { body, truncated } => (body, truncated),
        BodyRead::TooLarge(text) => {
            return Sent {
                attempted: Attempted {
                    outcome: Outcome::TooLarge,
                    status: Some(code),
                    error: text,
                },
                latency: Some(started.elapsed()),
                body: None,
                truncated: false,
            };
        }
        BodyRead::Failed(e) => {
            let (outcome, text) = describe(&e, req.timeout);
            return Sent::failed(outcome, text, Some(started.elapsed()));
        }
    };
    let latency = started.elapsed();
    let reason = resp.status().canonical_reason().unwrap_or("");
    let error = if success {
        String::new()
    } else {
        format!("answered {code} {reason}").trim_end().to_owned()
    };
    Sent {
        attempted: Attempted {
            outcome: Outcome::Status { code, retry_after },
            status: Some(code),
            error,
        },
        latency: Some(latency),
        body: (keep != Keep::Drain).then_some(body),
        truncated,
    }
}

/// What reading an answer's body gave.
enum BodyRead {
    /// The body as `keep` keeps it (empty when drained; `truncated` when a prefix was cut).
    Body { body: Vec<u8>, truncated: bool },
    /// A whole answer (an enrich lookup's) over its limit.
    TooLarge(String),
    /// The body of a whole answer failed to arrive. (A delivery's status is in already, and
    /// a delivery is judged by it: its body's failure is not one.)
    Failed(reqwest::Error),
}

/// Reads the body of `resp` up to the limit of `keep`; dropping the response past the
/// limit closes the connection.
async fn read_body(resp: &mut reqwest::Response, keep: Keep) -> BodyRead {
    let limit = match keep {
        Keep::Drain => DRAIN_LIMIT,
        Keep::Whole => MAX_ENRICH_ANSWER,
        Keep::Prefix(n) => n,
    };
    let mut body = Vec::new();
    let mut truncated = false;
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    match keep {
                        Keep::Whole => {
                            return BodyRead::TooLarge(format!(
                                "the answer is larger than {} KiB",
                                MAX_ENRICH_ANSWER / 1024
                            ));
                        }
                        Keep::Prefix(n) => {
                            body.extend_from_slice(&chunk[..n - body.len()]);
                            truncated = true;
                        }
                        Keep::Drain => {}
                    }
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) if keep == Keep::Whole => return BodyRead::Failed(e),
            Err(_) => break,
        }
    }
    BodyRead::Body { body, truncated }
}

/// Classifies a transport error and describes it without its URL.
fn describe(e: &reqwest::Error, timeout: Duration) -> (Outcome, String) {
    if let Some(blocked) = guard::blocked_in(e) {
        return (Outcome::Blocked, blocked.to_string());
    }
    // A failed connection (refused, DNS, TLS, the connect timeout) says the host is gone;
    // a timeout or a broken exchange after it connected is the endpoint's trouble.
    if e.is_connect() {
        return (
            Outcome::Connect,
            format!("could not connect: {}", root_cause(e)),
        );
    }
    if e.is_timeout() {
        return (
            Outcome::Timeout,
            format!("no answer within {} s", timeout.as_secs()),
        );
    }
    (
        Outcome::Interrupted,
        format!("request failed: {}", root_cause(e)),
    )
}

/// The innermost cause's message (e.g. "Connection refused (os error 111)"). reqwest's
/// own message names the URL, which may carry a key: it is never used.
fn root_cause(e: &reqwest::Error) -> String {
    let Some(mut cur) = std::error::Error::source(e) else {
        return "the request could not be sent".to_owned();
    };
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
