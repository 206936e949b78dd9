//! Everything a stage needs to send a request, and the sending: [`Sender`] owns the HTTP
//! client (with the private-target guard in its resolver), the credentials, the circuit
//! breakers and the metrics sink, and knows the routes and the router's own address. The
//! attempt and its enrich lookup go through [`Sender::send`]: the breakers first, then the
//! route's auth header (an oauth2 profile's 401/403 re-read and resent once), then
//! [`crate::http::send`], and what the request came to is recorded by the breakers.

use crate::auth::Credentials;
use crate::http::{self, Private, Sent};
use crate::metrics::MetricsSink;
use router_core::breaker::{Admission, Breakers, Destination, Transition, circuit_names};
use router_core::rate_limit::{self, Limiters, RateLimit};
use router_core::retry::{Outcome, Refusal, Resend, Verdict, classify};
use router_core::routes::{Route, Routes};
use router_core::secret_cache::Read;
use router_core::time_fmt::format_duration;
use std::sync::Arc;

/// The context of every request a delivery makes (built once per process).
pub struct Sender {
    pub routes: Arc<Routes>,
    pub client: reqwest::Client,
    pub credentials: Credentials,
    /// Whether targets may resolve to private addresses (else the guard refuses them).
    pub allow_private: bool,
    pub metrics: Arc<dyn MetricsSink>,
    /// The circuits of this process (a warm Lambda container, a `serve`), by origin.
    pub breakers: Arc<Breakers>,
    /// The router's own base URL, for routes whose `target_url` is a path on it.
    pub router_base: Option<url::Url>,
    /// Its origin as the circuit breakers name origins: requests there skip the guard.
    pub router_origin: Option<String>,
    /// The rate limits' logs of this process.
    pub limiters: Arc<Limiters>,
    /// How many processes split each rate limit (1 in `serve`; on Lambda, as many
    /// containers as the event sources may run at once).
    pub rate_share: u32,
}

/// The longest a request sleeps for its place under a rate limit; a longer wait goes back
/// to the queue (no attempt spent). Within the deadline margin an attempt keeps on Lambda.
pub const MAX_RATE_SLEEP: std::time::Duration = std::time::Duration::from_secs(1);

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("routes", &self.routes.routes().len())
            .field("allow_private", &self.allow_private)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// Sends through the circuit breakers (the route's settings) of the request's endpoint
    /// (named by `endpoint`: the request's URL, or an enrich template's fixed part) and its
    /// host: refused without a request while either is open, which is no attempt. What the
    /// request came to is recorded.
    pub async fn send(
        &self,
        route: &Route,
        auth: Option<&str>,
        request: http::Request<'_>,
        endpoint: &url::Url,
        limits: &[(String, RateLimit)],
    ) -> Sent {
        if let Err(waiting) = self.take_place(limits).await {
            return waiting;
        }
        let (host, endpoint) = circuit_names(endpoint);
        let to = Destination {
            host: &host,
            endpoint: &endpoint,
            route: route.name.as_str(),
        };
        match self.breakers.admit(to, &route.breaker, self.breakers.now()) {
            Admission::Refuse {
                retry_in,
                circuit,
                unwell_for,
            } => {
                let error = format!(
                    "the circuit of {circuit} is open: in trouble for {}; next request in {} s",
                    format_duration(unwell_for),
                    retry_in.as_secs()
                );
                let outcome = Outcome::CircuitOpen(Box::new(Refusal {
                    retry_in,
                    circuit,
                    unwell_for,
                }));
                return Sent::failed(outcome, error, None);
            }
            Admission::Probe => {
                tracing::info!(route = %route.name, endpoint, "circuit half-open: probing the target")
            }
            Admission::Go => {}
        }
        // The router's own address is the operator's, not an event's: never blocked.
        let own = self.router_origin.as_deref() == Some(host.as_str());
        let private = if self.allow_private || own {
            Private::Allowed
        } else {
            Private::Refused
        };
        let sent = self
            .send_authenticated(auth, request, private, limits)
            .await;
        if let Outcome::Status {
            code: 429,
            retry_after: Some(after),
        } = sent.attempted.outcome
        {
            let until = std::time::Instant::now() + after.min(router_core::retry::MAX_DELAY);
            for (name, _) in limits {
                self.limiters.pause(name, until);
            }
        }
        let signal = sent.attempted.outcome.signal();
        for t in self
            .breakers
            .record(to, signal, &route.breaker, self.breakers.now())
        {
            self.circuit_changed(route.name.as_str(), t);
        }
        sent
    }

    /// A place under every limit in `limits` (this process's share of each), sleeping for
    /// it up to [`MAX_RATE_SLEEP`]; else the failed send that makes the message wait.
    async fn take_place(&self, limits: &[(String, RateLimit)]) -> Result<(), Sent> {
        if limits.is_empty() {
            return Ok(());
        }
        let shares: Vec<(&str, RateLimit)> = limits
            .iter()
            .map(|(name, l)| {
                // Checked when the deliverer was built; one a second if it were not.
                let part = l.share(self.rate_share).unwrap_or(RateLimit {
                    requests: 1,
                    per: l.per * self.rate_share,
                });
                (name.as_str(), part)
            })
            .collect();
        let now = std::time::Instant::now();
        match self.limiters.admit(&shares, now, MAX_RATE_SLEEP) {
            rate_limit::Admission::At(at) => {
                if at > now {
                    tokio::time::sleep_until(at.into()).await;
                }
                Ok(())
            }
            rate_limit::Admission::Later(wait) => {
                let names: Vec<&str> = shares.iter().map(|(n, _)| *n).collect();
                let error = format!(
                    "rate limit ({}): no place for {} ms; waiting without an attempt",
                    names.join(", "),
                    wait.as_millis()
                );
                Err(Sent::failed(Outcome::RateLimited(wait), error, None))
            }
        }
    }

    fn circuit_changed(&self, route: &str, t: Transition) {
        match t {
            Transition::Opened {
                circuit,
                scope,
                cool_down,
                openings,
            } => {
                tracing::warn!(
                    route,
                    circuit,
                    scope = scope.as_str(),
                    cool_down_s = cool_down.as_secs(),
                    openings,
                    "circuit opened: no answer from the target again and again; its deliveries wait (no attempt spent) until the cool-down ends"
                );
                self.metrics.emit(&crate::metrics::circuit_opened_line(
                    route,
                    &circuit,
                    scope.as_str(),
                    router_core::time_fmt::now_ms(),
                ));
            }
            Transition::Closed {
                circuit,
                scope,
                unwell_for,
            } => tracing::info!(
                route,
                circuit,
                scope = scope.as_str(),
                unwell_for_s = unwell_for.as_secs(),
                "circuit closed: the target answers again"
            ),
        }
    }

    /// Sends with the profile's auth header. On an oauth2 route a 401/403 re-reads the
    /// token and resends at once, once; that resend is part of the same attempt. A 401/403
    /// that stands drops the profile's cached secret, so the next message reads it again.
    /// `to`: whether the request may reach a private address (the router's own, or private
    /// targets allowed).
    async fn send_authenticated(
        &self,
        auth: Option<&str>,
        request: http::Request<'_>,
        to: Private,
        limits: &[(String, RateLimit)],
    ) -> Sent {
        let resend = if auth.is_some_and(|p| self.credentials.is_oauth2(p)) {
            Resend::Possible
        } else {
            Resend::Spent
        };
        // Only an oauth2 route may resend, so only there is a copy of the request kept.
        let again = (resend == Resend::Possible).then(|| request.clone());
        let mut sent = self.send_with_auth(auth, request, Read::Cached, to).await;
        if let (Verdict::RefreshTokenAndResend, Some(again)) =
            (classify(&sent.attempted.outcome, resend), again)
        {
            tracing::info!(
                auth = auth.unwrap_or_default(),
                status = sent.attempted.status,
                "the target refused the token; re-reading it and resending"
            );
            // The resend is a request too: it needs its own place under the limits.
            if let Err(waiting) = self.take_place(limits).await {
                return waiting;
            }
            sent = self.send_with_auth(auth, again, Read::Fresh, to).await;
        }
        if let (Some(401 | 403), Some(profile)) = (sent.attempted.status, auth) {
            self.credentials.forget(profile);
        }
        sent
    }

    /// One request with the profile's header (its secret read as `read` says), to `to`.
    async fn send_with_auth(
        &self,
        auth: Option<&str>,
        mut req: http::Request<'_>,
        read: Read,
        to: Private,
    ) -> Sent {
        if let Some(profile) = auth {
            match self.credentials.header(profile, read).await {
                Ok((name, value)) => {
                    req.headers.insert(name, value);
                }
                Err(e) => {
                    let error = format!("auth `{profile}`: {e}");
                    return Sent::failed(Outcome::Credentials, error, None);
                }
            }
        }
        http::send(&self.client, to, req).await
    }
}
