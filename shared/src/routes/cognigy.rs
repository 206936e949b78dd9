//! Answers into a Cognigy conversation: endpoint profiles (`[cognigy.<name>]`: a Webhook,
//! Socket, Webchat or Voice Gateway endpoint, its URL token in the secret store), routes
//! that target one (`cognigy = { endpoint, mode }`), and reply routes (`reply = { ... }`:
//! the backend's answer injected into the session, or `on_failure` when it never comes).

use crate::retry::RetryPolicy;
use std::time::Duration;
use url::Url;

/// One `[cognigy.<name>]` endpoint profile.
#[derive(Debug, Clone, PartialEq)]
pub struct CognigyEndpoint {
    /// The endpoint's base URL (`https://endpoint-trial.cognigy.ai`, or on-premises).
    pub base_url: Url,
    /// The secret holding the endpoint's URL token.
    pub url_token_secret: String,
    /// Per request (`timeout_seconds`, default 10).
    pub timeout: Duration,
    /// How replies to this endpoint are retried (`retry`, default 5s, 30s, 2m, 10m within
    /// 1h: an answer into a live conversation is worth little later).
    pub retry: RetryPolicy,
    /// `rate_limit`: shared by every route and reply sending into this endpoint.
    pub rate_limit: Option<crate::rate_limit::RateLimit>,
}

impl CognigyEndpoint {
    pub fn default_retry() -> RetryPolicy {
        RetryPolicy {
            schedule: [5, 30, 120, 600].map(Duration::from_secs).to_vec(),
            max_age: Duration::from_secs(3600),
        }
    }
}

pub use crate::wire::cognigy::Mode;

/// A Cognigy endpoint and what to do there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CognigyTarget {
    /// The `[cognigy.<name>]` profile.
    pub endpoint: String,
    pub mode: Mode,
}

/// Where a route's deliveries go.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// `target_url`: a fixed URL.
    Url(Url),
    /// `cognigy = { endpoint, mode }`: into the event's Cognigy session.
    Cognigy(CognigyTarget),
    /// `target_url = "/api/v2/webhooks/smoke"`: a path on the router's own API, resolved
    /// against its base URL (`ROUTER_BASE_URL` on Lambda, `serve`'s own address locally).
    Router(String),
}

/// A route's `reply`: after its delivery succeeds, the answer goes into the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub to: CognigyTarget,
    /// Whether an `on_failure` template is sent when the delivery is dead-lettered.
    pub on_failure: bool,
}
