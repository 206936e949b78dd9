//! Stage 2 of a delivery: the attempt. The enrich lookup (when the route has one), the
//! payload rendered, signed, and POSTed with the route's auth header; on an oauth2 route a
//! 401/403 re-reads the token and resends once, within the same attempt. Every request
//! passes its origin's circuit breaker first: an open circuit fails it at once. Whatever
//! happens comes out as one [`Attempted`], with the request's latency when one was made.

use crate::deliverer::Deliverer;
use crate::http::{self, Sent};
use crate::prepare::Ready;
use reqwest::Method;
use reqwest::header::{ACCEPT, HeaderMap, HeaderName, HeaderValue};
use router_core::breaker::{Admission, Transition};
use router_core::domain::DeliveryJob;
use router_core::render::RenderError;
use router_core::retry::{Attempted, Outcome, Verdict, classify};
use router_core::routes::{Enrich, Route, Routes};
use router_core::wire::headers::DeliveryHeaders;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

impl Deliverer {
    /// One attempt of a ready message.
    pub(crate) async fn attempt(&self, ready: &Ready<'_>) -> (Attempted, Option<Duration>) {
        let (job, route, attempt) = (&ready.job, ready.route, ready.attempt);
        let now = OffsetDateTime::now_utc();
        let external = match &route.enrich {
            None => None,
            Some(enrich) => match self.enrich(job, route, enrich, attempt, now).await {
                Ok(v) => Some(v),
                Err(a) => return (a, None),
            },
        };
        let ctx = Routes::context(job, attempt, now, external.as_ref());
        let body = match self.routes.render_payload(route, &ctx) {
            Ok(body) => body,
            Err(e @ RenderError::TooLarge { .. }) => {
                return (Attempted::new(Outcome::TooLarge, e.to_string()), None);
            }
            Err(e) => return (Attempted::new(Outcome::Render, e.to_string()), None),
        };
        let timestamp = now.unix_timestamp();
        let signature = match &self.routes.signing {
            None => None,
            Some(signing) => match self.credentials.signer(&signing.secret).await {
                Ok(signer) => Some(signer.sign(&job.delivery_id, timestamp, &body)),
                Err(e) => return (Attempted::new(Outcome::SigningKey, e.to_string()), None),
            },
        };
        let headers = DeliveryHeaders {
            delivery_id: &job.delivery_id,
            timestamp,
            signature: signature.as_deref(),
            auth: None,
        };
        let Some(headers) = header_map(&headers.to_send()) else {
            return (
                Attempted::new(
                    Outcome::Render,
                    "a delivery header is not a valid header value",
                ),
                None,
            );
        };
        let request = http::Request {
            method: Method::POST,
            url: &route.target_url,
            headers,
            body: Some(body),
            timeout: route.timeout,
            keep_body: false,
        };
        let sent = self.send(route, route.auth.as_deref(), request).await;
        (sent.attempted, sent.latency)
    }

    /// The `enrich` lookup: its JSON answer, or what ends this attempt.
    async fn enrich(
        &self,
        job: &DeliveryJob,
        route: &Route,
        enrich: &Enrich,
        attempt: u32,
        now: OffsetDateTime,
    ) -> Result<serde_json::Value, Attempted> {
        let ctx = Routes::context(job, attempt, now, None);
        let url = self
            .routes
            .render_enrich_url(route, &ctx)
            .map_err(|e| Attempted::new(Outcome::Render, format!("enrich url: {e}")))?;
        let mut headers = HeaderMap::with_capacity(4);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let request = http::Request {
            method: Method::GET,
            url: &url,
            headers,
            body: None,
            timeout: enrich.timeout,
            keep_body: true,
        };
        let sent = self.send(route, enrich.auth.as_deref(), request).await;
        if classify(&sent.attempted.outcome, false, true) != Verdict::Delivered {
            return Err(sent.attempted.prefixed("enrich lookup: "));
        }
        match sent.body {
            Some(body) => serde_json::from_slice(&body).map_err(|_| {
                Attempted::new(Outcome::Render, "enrich lookup: the answer is not JSON")
            }),
            None => Err(Attempted::new(
                Outcome::Render,
                format!(
                    "enrich lookup: answered {} without a body",
                    sent.attempted.status.unwrap_or_default()
                ),
            )),
        }
    }

    /// Sends through the origin's circuit breaker (the route's settings): refused at once
    /// while it is open; the answer is recorded (only when a request went out).
    async fn send(&self, route: &Route, auth: Option<&str>, request: http::Request<'_>) -> Sent {
        let origin = request.url.origin().ascii_serialization();
        match self.breakers.admit(&origin, &route.breaker, Instant::now()) {
            Admission::Refuse { retry_in } => {
                let error = format!(
                    "the circuit of {origin} is open (next probe in {} s)",
                    retry_in.as_secs()
                );
                return Sent::failed(Outcome::CircuitOpen { retry_in }, error, None);
            }
            Admission::Probe => {
                tracing::info!(route = %route.name, origin, "circuit half-open: probing the target")
            }
            Admission::Go => {}
        }
        let sent = self.send_authenticated(auth, request).await;
        if sent.latency.is_some() && sent.attempted.outcome != Outcome::Blocked {
            let unwell = sent.attempted.outcome.is_unwell();
            if let Some(t) = self
                .breakers
                .record(&origin, unwell, &route.breaker, Instant::now())
            {
                self.circuit_changed(route.name.as_str(), &origin, t);
            }
        }
        sent
    }

    fn circuit_changed(&self, route: &str, origin: &str, t: Transition) {
        match t {
            Transition::Opened {
                cool_down,
                openings,
            } => {
                tracing::warn!(
                    route,
                    origin,
                    cool_down_s = cool_down.as_secs(),
                    openings,
                    "circuit opened: the target keeps failing; its deliveries fail at once until the cool-down ends"
                );
                self.metrics.emit(&crate::metrics::circuit_opened_line(
                    route,
                    origin,
                    router_core::time_fmt::now_ms(),
                ));
            }
            Transition::Closed => {
                tracing::info!(route, origin, "circuit closed: the target answers again")
            }
        }
    }

    /// Sends with the profile's auth header. On an oauth2 route a 401/403 re-reads the
    /// token and resends at once, once; that resend is part of the same attempt. A 401/403
    /// that stands drops the profile's cached secret, so the next message reads it again.
    async fn send_authenticated(&self, auth: Option<&str>, request: http::Request<'_>) -> Sent {
        let oauth2 = auth.is_some_and(|p| self.credentials.is_oauth2(p));
        // Only an oauth2 route may resend, so only there is a copy of the request kept.
        let resend = oauth2.then(|| request.clone());
        let mut sent = self.send_with_auth(auth, request, false).await;
        if let (Verdict::RefreshTokenAndResend, Some(again)) =
            (classify(&sent.attempted.outcome, oauth2, false), resend)
        {
            tracing::info!(
                auth = auth.unwrap_or_default(),
                status = sent.attempted.status,
                "the target refused the token; re-reading it and resending"
            );
            sent = self.send_with_auth(auth, again, true).await;
        }
        if let (Some(401 | 403), Some(profile)) = (sent.attempted.status, auth) {
            self.credentials.forget(profile);
        }
        sent
    }

    /// One request with the profile's header (`fresh`: re-read its secret first).
    async fn send_with_auth(
        &self,
        auth: Option<&str>,
        mut req: http::Request<'_>,
        fresh: bool,
    ) -> Sent {
        if let Some(profile) = auth {
            match self.credentials.header(profile, fresh).await {
                Ok((name, value)) => {
                    req.headers.insert(name, value);
                }
                Err(e) => {
                    let error = format!("auth `{profile}`: {e}");
                    return Sent::failed(Outcome::Credentials, error, None);
                }
            }
        }
        http::send(&self.client, self.allow_private, req).await
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
