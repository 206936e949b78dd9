//! `POST /api/v2/webhooks/smoke`: the router's own delivery target for the smoke check
//! (`scripts/smoke.sh` after a deploy). A route with `target_url = "/api/v2/webhooks/smoke"`
//! delivers here through the whole path (trigger, queue, deliver, signing); the sink
//! checks the Standard Webhooks signature with the `[signing]` key and logs
//! `smoke delivery received` with the delivery's and event's ids, which is where the
//! smoke check sees it arrive.
//!
//! Only signed deliveries are taken: without `[signing]` the sink does not exist (404); a
//! missing or wrong signature, or a timestamp more than five minutes off, is a 401. It
//! stores nothing and calls nothing.

use crate::State;
use crate::problem::Problem;
use axum::body::Body;
use axum::extract::State as Extract;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use router_core::secret_cache::{OnFailure, Read, SecretCache};
use router_core::signing::Signer;
use std::sync::Arc;

pub const SMOKE_PATH: &str = "/api/v2/webhooks/smoke";
/// The largest smoke delivery taken (a rendered body is at most 1 MiB; the smoke route's
/// is a few hundred bytes).
const MAX_BODY: usize = 64 * 1024;

/// The `[signing]` key as the sink reads it: through the one secret cache, so a failure is
/// remembered (requests to the sink never turn into a secret-store call each) and an
/// unusable key stops being used at once.
pub type SignerCache = SecretCache<Arc<Signer>>;

/// The sink's cache over `store`, re-read after `reread`.
pub fn signer_cache(
    store: Arc<dyn router_core::ports::SecretStore>,
    reread: std::time::Duration,
) -> SignerCache {
    SecretCache::new(store, reread, OnFailure::GraceWhileUnreachable)
}

/// The most of a caller's `webhook-id` (or a body's event id) a log line carries.
const MAX_LOGGED_ID: usize = 80;

pub async fn smoke(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(signing) = &state.routes.signing else {
        return Problem::not_found().into_response();
    };
    let signer = state
        .smoke_signer
        .get(&signing.secret, &signing.secret, Read::Cached, |s| {
            Signer::new(&s).map(|signer| (Arc::new(signer), None))
        })
        .await;
    let Ok(signer) = signer else {
        return Problem::unavailable("the signing key cannot be read").into_response();
    };
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return Problem::too_large(MAX_BODY).into_response();
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(id), Some(timestamp), Some(signature), Ok(text)) = (
        header("webhook-id"),
        header("webhook-timestamp").and_then(|t| t.parse::<i64>().ok()),
        header("webhook-signature"),
        std::str::from_utf8(&body),
    ) else {
        return Problem::unauthorized().into_response();
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if !signer.verify(id, timestamp, text, signature, now) {
        // The caller chose the id (up to the header limit): a bounded prefix is logged.
        tracing::warn!(
            delivery_id = %router_core::text::truncated(id, MAX_LOGGED_ID),
            "smoke sink: a delivery whose signature does not verify"
        );
        return Problem::unauthorized().into_response();
    }
    let event_id = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| {
            v.get("event_id")
                .and_then(|e| e.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    tracing::info!(
        delivery_id = %router_core::text::truncated(id, MAX_LOGGED_ID),
        event_id = %router_core::text::truncated(&event_id, MAX_LOGGED_ID),
        "smoke delivery received"
    );
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({"status": "received", "delivery_id": id})),
    )
        .into_response()
}
