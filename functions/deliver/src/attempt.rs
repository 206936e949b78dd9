//! Stage 2 of a delivery: the attempt. What [`crate::outgoing`] makes (the payload, the
//! body into a Cognigy session, a reply) is signed and POSTed with the route's auth
//! header; on an oauth2 route a 401/403 re-reads the token and resends once, within the
//! same attempt. Every request passes its endpoint's and host's circuit breakers first: an
//! open circuit refuses it without a request (no attempt). Whatever happens comes out as one
//! [`Attempted`], with the request's latency when one was made and, on a route with a
//! reply, the answer.

use crate::http::{self, Keep};
use crate::prepare::Ready;
use crate::sender::Sender;
use crate::stage::{Attempt, Captured, MAX_RESPONSE_TEXT};
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use router_core::retry::{Attempted, Outcome};
use router_core::wire::headers::DeliveryHeaders;
use time::OffsetDateTime;

/// One attempt of a ready message: what it came to, the request's latency, and the
/// answer kept for a reply (on a route with `reply`, when it was 2xx).
pub async fn attempt(sender: &Sender, ready: &Ready<'_>) -> Attempt {
    let now = OffsetDateTime::now_utc();
    let out = match crate::outgoing::outgoing(sender, ready, now).await {
        Ok(out) => out,
        Err(attempted) => return Attempt::ended(attempted),
    };
    let job = &ready.job;
    let timestamp = now.unix_timestamp();
    let signature = match &sender.routes.signing {
        None => None,
        Some(signing) => match sender.credentials.signer(&signing.secret).await {
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
    let limits = sender.routes.rate_limits(ready.route, job.reply.is_some());
    let sent = sender
        .send(ready.route, out.auth, request, &out.url, &limits)
        .await;
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
