//! Stage 2 of a delivery: the attempt. What [`crate::outgoing`] makes (the payload, the
//! body into a Cognigy session, a reply) is signed and POSTed with the route's auth
//! header; on an oauth2 route a 401/403 re-reads the token and resends once, within the
//! same attempt. Every request passes its endpoint's and host's circuit breakers first: an
//! open circuit refuses it without a request (no attempt). Whatever happens comes out as one
//! [`Attempted`], with the request's latency when one was made and, on a route with a
//! reply, the answer.

use crate::deliverer::Deliverer;
use crate::http::{self, Keep, Private, Sent};
use crate::prepare::Ready;
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use router_core::breaker::{Admission, Destination, Transition, circuit_names};
use router_core::retry::{Attempted, Outcome, Refusal, Resend, Verdict, classify};
use router_core::routes::Route;
use router_core::secrets::Read;
use router_core::time_fmt::format_duration;
use router_core::wire::headers::DeliveryHeaders;
use std::time::Duration;
use time::OffsetDateTime;

/// The most of an answer kept as a reply's `response.text`.
pub const MAX_RESPONSE_TEXT: usize = 256 * 1024;

/// What one attempt came to.
#[derive(Debug)]
pub struct Attempt {
    pub attempted: Attempted,
    /// The request's latency, when one was made.
    pub latency: Option<Duration>,
    /// The 2xx answer, kept when the route has a `reply`.
    pub response: Option<Captured>,
}

impl Attempt {
    /// Ended before a request was made.
    pub fn ended(attempted: Attempted) -> Self {
        Self {
            attempted,
            latency: None,
            response: None,
        }
    }
}

/// A target's answer, kept for the reply.
#[derive(Debug)]
pub struct Captured {
    pub status: u16,
    /// At most [`MAX_RESPONSE_TEXT`] bytes.
    pub body: Vec<u8>,
    pub truncated: bool,
}

impl Deliverer {
    /// One attempt of a ready message: what it came to, the request's latency, and the
    /// answer kept for a reply (on a route with `reply`, when it was 2xx).
    pub(crate) async fn attempt(&self, ready: &Ready<'_>) -> Attempt {
        let now = OffsetDateTime::now_utc();
        let out = match self.outgoing(ready, now).await {
            Ok(out) => out,
            Err(attempted) => return Attempt::ended(attempted),
        };
        let job = &ready.job;
        let timestamp = now.unix_timestamp();
        let signature = match &self.routes.signing {
            None => None,
            Some(signing) => match self.credentials.signer(&signing.secret).await {
                Ok(signer) => Some(signer.sign(&job.delivery_id, timestamp, &out.body)),
                Err(e) => {
                    return Attempt::ended(Attempted::new(Outcome::SigningKey, e.to_string()));
                }
            },
        };
        let headers = DeliveryHeaders {
            delivery_id: &job.delivery_id,
            timestamp,
            signature: signature.as_deref(),
            auth: None,
        };
        let Some(headers) = header_map(&headers.to_send()) else {
            let error = "a delivery header is not a valid header value";
            return Attempt::ended(Attempted::new(Outcome::Render, error));
        };
        let keep = if out.capture {
            Keep::Prefix(MAX_RESPONSE_TEXT)
        } else {
            Keep::Drain
        };
        let request = http::Request {
            method: Method::POST,
            url: &out.url,
            headers,
            body: Some(out.body),
            timeout: out.timeout,
            keep,
        };
        let sent = self.send(ready.route, out.auth, request, &out.url).await;
        let response = match (sent.body, sent.attempted.status) {
            (Some(body), Some(status)) => Some(Captured {
                status,
                body,
                truncated: sent.truncated,
            }),
            _ => None,
        };
        Attempt {
            attempted: sent.attempted,
            latency: sent.latency,
            response,
        }
    }

    /// Sends through the circuit breakers (the route's settings) of the request's endpoint
    /// (named by `endpoint`: the request's URL, or an enrich template's fixed part) and its
    /// host: refused without a request while either is open, which is no attempt. What the
    /// request came to is recorded.
    pub(crate) async fn send(
        &self,
        route: &Route,
        auth: Option<&str>,
        request: http::Request<'_>,
        endpoint: &url::Url,
    ) -> Sent {
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
        let sent = self.send_authenticated(auth, request, private).await;
        let signal = sent.attempted.outcome.signal();
        for t in self
            .breakers
            .record(to, signal, &route.breaker, self.breakers.now())
        {
            self.circuit_changed(route.name.as_str(), t);
        }
        sent
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

/// Header pairs as a map; `None` when one of them is not a valid header.
fn header_map(pairs: &[(String, String)]) -> Option<HeaderMap> {
    let mut map = HeaderMap::with_capacity(pairs.len() + 2);
    for (k, v) in pairs {
        map.insert(
            HeaderName::from_bytes(k.as_bytes()).ok()?,
            HeaderValue::from_str(v).ok()?,
        );
    }
    Some(map)
}
