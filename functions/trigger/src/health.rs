//! `GET /api/v2/health`: queue depth, dead letters, token expiry, and (where deliveries run
//! in the same process: `routerctl serve`) the open circuits; no auth.
//!
//! Token expiries are read from the secret store at most once a minute, so an
//! unauthenticated endpoint cannot run up secret-store calls.

use crate::State;
use axum::Json;
use axum::extract::State as Extract;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use router_core::secrets::StoredToken;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN_WARNING_S: i64 = 5 * 60;
pub const TOKEN_CACHE: Duration = Duration::from_secs(60);

#[derive(Debug, Serialize, PartialEq)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
    pub routes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueHealth>,
    pub tokens: BTreeMap<String, TokenHealth>,
    /// The endpoints and hosts whose circuit is open (only where this process delivers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuits: Option<Vec<CircuitHealth>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct CircuitHealth {
    /// `scheme://host:port` (scope `host`), or that and a hash of the path (`endpoint`).
    pub circuit: String,
    pub scope: &'static str,
    /// The route that last met its trouble.
    pub route: String,
    /// Seconds until the next probe may go (0: probes are due or out).
    pub retry_in_s: u64,
    /// How many times it opened in a row.
    pub openings: u32,
    /// Seconds since its trouble began.
    pub unwell_for_s: u64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct QueueHealth {
    pub visible: u64,
    pub in_flight: u64,
    pub dead_letter: u64,
}

#[derive(Debug, Serialize, PartialEq, Clone)]
pub struct TokenHealth {
    /// Seconds until the stored token expires (negative: expired); null when no
    /// readable token is stored.
    pub expires_in_s: Option<i64>,
}

/// Cached `expires_at` per oauth2 profile (`None`: no readable token).
pub type TokenCache = tokio::sync::Mutex<Option<(Instant, BTreeMap<String, Option<i64>>)>>;

async fn token_expiries(state: &State) -> BTreeMap<String, Option<i64>> {
    let mut cache = state.token_cache.lock().await;
    if let Some((at, v)) = cache.as_ref()
        && at.elapsed() < TOKEN_CACHE
    {
        return v.clone();
    }
    let mut out = BTreeMap::new();
    for (name, profile) in state.routes.oauth2_profiles() {
        let expires_at = match state.secrets.get(&profile.token_secret).await {
            Ok(secret) => StoredToken::parse(&secret).map(|t| t.expires_at),
            Err(_) => None,
        };
        out.insert(name.to_owned(), expires_at);
    }
    *cache = Some((Instant::now(), out.clone()));
    out
}

/// Both queue pairs' depths summed (the FIFO pair of ordered routes, where there is one).
async fn queue_depths(state: &State) -> Result<QueueHealth, router_core::ports::QueueError> {
    let (q, dlq) = tokio::try_join!(state.queue.depth(), state.dead_letters.depth())?;
    let mut health = QueueHealth {
        visible: q.visible,
        in_flight: q.in_flight,
        dead_letter: dlq.visible + dlq.in_flight,
    };
    if let Some(ordered) = &state.ordered {
        let (q, dlq) = tokio::try_join!(ordered.queue.depth(), ordered.dead_letters.depth())?;
        health.visible += q.visible;
        health.in_flight += q.in_flight;
        health.dead_letter += dlq.visible + dlq.in_flight;
    }
    Ok(health)
}

pub async fn health(Extract(state): Extract<Arc<State>>) -> Response {
    let now = router_core::time_fmt::unix_now();
    let tokens: BTreeMap<String, TokenHealth> = token_expiries(&state)
        .await
        .into_iter()
        .map(|(name, at)| {
            (
                name,
                TokenHealth {
                    expires_in_s: at.map(|at| at.saturating_sub(now)),
                },
            )
        })
        .collect();
    let token_trouble = tokens
        .values()
        .any(|t| t.expires_in_s.is_none_or(|s| s < TOKEN_WARNING_S));
    let circuits = state.circuits.as_ref().map(|b| {
        b.open(b.now())
            .into_iter()
            .map(|c| CircuitHealth {
                circuit: c.circuit,
                scope: c.scope.as_str(),
                route: c.route,
                retry_in_s: c.retry_in_s,
                openings: c.openings,
                unwell_for_s: c.unwell_for_s,
            })
            .collect::<Vec<_>>()
    });
    let circuit_open = circuits.as_ref().is_some_and(|c| !c.is_empty());
    let depths = queue_depths(&state).await;
    let mut health = Health {
        status: "healthy",
        version: router_core::VERSION,
        routes: state.routes.routes().len(),
        queue: None,
        tokens,
        circuits,
        detail: None,
    };
    match depths {
        Ok(queue) => {
            let dead_letter = queue.dead_letter;
            health.queue = Some(queue);
            if dead_letter >= state.dlq_degraded_threshold || token_trouble || circuit_open {
                health.status = "degraded";
            }
            (StatusCode::OK, Json(health)).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "health: cannot read the queue");
            health.status = "unhealthy";
            health.detail = Some("the delivery queue cannot be read".to_owned());
            (StatusCode::SERVICE_UNAVAILABLE, Json(health)).into_response()
        }
    }
}
