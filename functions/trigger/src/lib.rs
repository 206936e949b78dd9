//! The trigger function: authenticate, validate, match routes, enqueue one message per
//! delivery, and answer `202` only once the queue accepted them all (CONTRACT section 3).

#![warn(clippy::unwrap_used)]

pub mod app;
pub mod auth;
pub mod enqueue;
pub mod health;
pub mod problem;
pub mod smoke;

pub use app::router;

use auth::IngestAuth;
use router_core::backends::{Backends, QueuePair};
use router_core::config::{Config, ConfigError};
use router_core::ports::{Queue, SecretError, SecretStore};
use router_core::routes::{LoadErrors, Routes};
use router_core::secret_cache::CacheError;
use router_core::secrets::SECRET_REREAD;
use std::sync::Arc;

/// Everything a request needs, built once per cold start.
#[derive(Debug)]
pub struct State {
    pub routes: Arc<Routes>,
    pub queue: Arc<dyn Queue>,
    pub dead_letters: Arc<dyn Queue>,
    /// Ordered routes' FIFO queue and its dead-letter queue (required when the routes file
    /// has an ordered route).
    pub ordered: Option<QueuePair>,
    pub secrets: Arc<dyn SecretStore>,
    /// `None`: the routes file configures an open endpoint.
    pub ingest: Option<IngestAuth>,
    pub dlq_degraded_threshold: u64,
    pub token_cache: health::TokenCache,
    /// The delivering side's circuits, when it runs in this process (`routerctl serve`).
    pub circuits: Option<Arc<router_core::breaker::Breakers>>,
    /// How long a secret read from the store is used before it is read again.
    pub secret_reread: std::time::Duration,
    /// The smoke sink's signing key.
    pub smoke_signer: smoke::SignerCache,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Routes(#[from] LoadErrors),
    #[error("[ingest] auth names `{0}`, which is not an api_key profile")]
    IngestProfile(String),
    #[error("cannot read the ingest key secret `{id}`: {source}")]
    IngestKey { id: String, source: SecretError },
    #[error(
        "the ingest key secret `{id}`: {reason}; put a long random key in it (or {{\"current\": \"<key>\", \"next\": \"<key>\"}} during a change)"
    )]
    BadIngestKey { id: String, reason: String },
    #[error(transparent)]
    NoOrderedQueue(#[from] router_core::backends::NoOrderedQueue),
}

impl State {
    /// Reads the ingest key and assembles the state; the key is re-read every
    /// [`SECRET_REREAD`].
    pub async fn new(
        routes: Arc<Routes>,
        backends: Backends,
        dlq_degraded_threshold: u64,
    ) -> Result<Self, InitError> {
        Self::with_secret_reread(routes, backends, dlq_degraded_threshold, SECRET_REREAD).await
    }

    /// As [`State::new`], re-reading the ingest key every `reread`.
    pub async fn with_secret_reread(
        routes: Arc<Routes>,
        backends: Backends,
        dlq_degraded_threshold: u64,
        reread: std::time::Duration,
    ) -> Result<Self, InitError> {
        let ingest = match &routes.ingest.auth {
            Some(profile) => {
                let id = match routes.auth.get(profile) {
                    Some(router_core::routes::AuthProfile::ApiKey { secret }) => secret.clone(),
                    // The loader refuses any other profile for [ingest]; a hand-built Routes may not.
                    _ => return Err(InitError::IngestProfile(profile.clone())),
                };
                match IngestAuth::start(id.clone(), backends.secrets.clone(), reread).await {
                    Ok(auth) => Some(auth),
                    Err(CacheError::Store(source)) => {
                        return Err(InitError::IngestKey { id, source });
                    }
                    Err(CacheError::Unusable { reason, .. }) => {
                        return Err(InitError::BadIngestKey { id, reason });
                    }
                }
            }
            None => {
                tracing::warn!(
                    "the routes file sets no [ingest] auth: the trigger endpoint is open to anyone"
                );
                None
            }
        };
        router_core::backends::check_ordered(&routes, backends.ordered.as_ref())?;
        let smoke_signer = smoke::signer_cache(backends.secrets.clone(), reread);
        Ok(Self {
            ordered: backends.ordered,
            routes,
            queue: backends.queue,
            dead_letters: backends.dead_letters,
            secrets: backends.secrets,
            ingest,
            dlq_degraded_threshold,
            token_cache: Default::default(),
            circuits: None,
            secret_reread: reread,
            smoke_signer,
        })
    }

    /// Lists these circuits in the health answer (and degrades it while one is open).
    pub fn with_circuits(mut self, circuits: Arc<router_core::breaker::Breakers>) -> Self {
        self.circuits = Some(circuits);
        self
    }

    /// Lambda's cold start: configuration, routes, AWS clients and the ingest key.
    pub async fn from_env() -> Result<Self, InitError> {
        let config = Config::from_env()?;
        let routes = Arc::new(Routes::load(&config.routes_file)?);
        let backends = Backends::aws(&config).await?;
        Self::new(routes, backends, config.dlq_degraded_threshold).await
    }
}
