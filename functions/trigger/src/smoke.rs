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
use crate::auth::RETRY_AFTER_FAILURE;
use crate::problem::Problem;
use axum::body::Body;
use axum::extract::State as Extract;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use router_core::signing::Signer;
use std::sync::Arc;
use std::time::Instant;

pub const SMOKE_PATH: &str = "/api/v2/webhooks/smoke";
/// The largest smoke delivery taken (a rendered body is at most 1 MiB; the smoke route's
/// is a few hundred bytes).
const MAX_BODY: usize = 64 * 1024;

/// The `[signing]` key as the sink last read it, or why it could not be used; a failure is
/// kept for [`RETRY_AFTER_FAILURE`] (at most), so requests to the sink never turn into a
/// secret-store call each.
#[derive(Default)]
pub struct SignerCache(tokio::sync::Mutex<Option<(Instant, SignerOrWhyNot)>>);

type SignerOrWhyNot = Result<Arc<Signer>, String>;

impl std::fmt::Debug for SignerCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignerCache(***)")
    }
}

impl SignerCache {
    async fn get(&self, state: &State, secret_id: &str) -> SignerOrWhyNot {
        let mut cached = self.0.lock().await;
        if let Some((read, result)) = &*cached {
            let keep = match result {
                Ok(_) => state.secrets_reread,
                Err(_) => RETRY_AFTER_FAILURE.min(state.secrets_reread),
            };
            if read.elapsed() < keep {
                return result.clone();
            }
        }
        let result = match state.secrets.get(secret_id).await {
            Ok(secret) => Signer::new(&secret).map(Arc::new),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = &result {
            tracing::warn!(secret = %secret_id, "smoke sink: cannot use the signing key: {e}");
        }
        *cached = Some((Instant::now(), result.clone()));
        result
    }
}

pub async fn smoke(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(signing) = &state.routes.signing else {
        return Problem::not_found().into_response();
    };
    let Ok(signer) = state.smoke_signer.get(&state, &signing.secret).await else {
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
        tracing::warn!(
            delivery_id = id,
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
    tracing::info!(delivery_id = id, event_id, "smoke delivery received");
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({"status": "received", "delivery_id": id})),
    )
        .into_response()
}
