//! Errors as `application/problem+json` (RFC 9457): the one place that maps a failure to
//! an HTTP status. Internal details are logged by the caller, never returned.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use router_core::event::FieldError;
use serde::Serialize;
use std::time::Duration;

pub const CONTENT_TYPE: &str = "application/problem+json";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// For 422: each offending field and why (the first few; `more_errors` counts the rest).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemField>,
    #[serde(skip_serializing_if = "is_zero")]
    pub more_errors: usize,
    #[serde(skip)]
    pub retry_after_s: Option<u32>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProblemField {
    pub field: String,
    pub reason: String,
}

impl Problem {
    fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            more_errors: 0,
            retry_after_s: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// Never says which part failed (missing header, wrong scheme, wrong key).
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication failed")
    }

    pub fn too_large(limit_bytes: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {} KiB", limit_bytes / 1024),
        )
    }

    /// A delivery message for the event would exceed what the queue takes.
    pub fn message_too_large(size: usize, limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the event is too large to queue: one delivery message would be {size} bytes, the queue takes at most {limit}"
            ),
        )
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send Content-Type: application/json or application/x-www-form-urlencoded",
        )
    }

    /// The first problems of an event (at most [`router_core::event::MAX_PROBLEMS`]) and
    /// how many more there were.
    pub fn invalid(fields: Vec<FieldError>, more: usize) -> Self {
        let detail = fields
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
            + &router_core::event::more_text(more);
        let mut p = Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail);
        p.more_errors = more;
        p.errors = fields
            .into_iter()
            .map(|f| ProblemField {
                field: f.field,
                reason: f.reason,
            })
            .collect();
        p
    }

    /// The event can never be queued as it is (the queue refuses its content for good).
    pub fn unqueueable(why: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the event cannot be queued: {why}"),
        )
    }

    /// The queue did not take every message: nothing is acknowledged, retry later.
    pub fn queue_unavailable(retry_after_s: u32) -> Self {
        let mut p = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the delivery queue did not accept every message; nothing was acknowledged, retry the request",
        );
        p.retry_after_s = Some(retry_after_s);
        p
    }

    /// An ordered route's session holds its cap of queued deliveries: nothing of the event
    /// was queued; `Retry-After` is when the session's oldest delivery is next attempted
    /// (at least 1 s, at most 5 minutes).
    pub fn session_full(route: &str, queued: u64, cap: u32, retry_after: Duration) -> Self {
        let mut p = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "ordered route {route}: this session has {queued} deliveries queued, at most {cap} may be (max_queued_per_session), and they go one at a time behind the oldest, which is not delivered yet. Nothing was queued; retry the request later"
            ),
        );
        let secs = retry_after.as_millis().div_ceil(1000).clamp(1, 300);
        p.retry_after_s = Some(secs as u32);
        p
    }

    /// Something the answer needs cannot be had now (a secret store outage).
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, detail)
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "no such endpoint")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "this endpoint does not take that method",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut resp = (status, body).into_response();
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if let Some(s) = self.retry_after_s {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}
