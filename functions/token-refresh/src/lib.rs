//! The token-refresh function: keeps every oauth2 profile's client-credentials token fresh
//! in its token secret. The same [`refresh`] runs on Lambda (on a schedule), from
//! `routerctl token refresh`, and in `routerctl serve`'s scheduler.

#![warn(clippy::unwrap_used)]

mod policy;
mod request;

pub use policy::{Freshness, freshness};
pub use request::{TokenError, TokenResponse};

use router_core::ports::SecretStore;
use router_core::routes::{OAuth2Profile, Routes};
use router_core::secrets::{ClientCredentials, Secret, StoredToken};
use std::time::Duration;
use tokio::time::Instant;

/// What happened to one profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileOutcome {
    /// A new token was stored; it expires at this unix time.
    Refreshed {
        expires_at: i64,
    },
    /// The stored token was fresh enough; left alone.
    Fresh {
        expires_at: i64,
    },
    /// Another refresher stored a newer token meanwhile; ours was not written.
    Superseded {
        expires_at: i64,
    },
    Failed(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub profiles: Vec<(String, ProfileOutcome)>,
}

impl Report {
    pub fn failures(&self) -> Vec<(&str, &str)> {
        self.profiles
            .iter()
            .filter_map(|(name, o)| match o {
                ProfileOutcome::Failed(e) => Some((name.as_str(), e.as_str())),
                _ => None,
            })
            .collect()
    }
}

/// Which tokens a refresh renews.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renew {
    /// Those that need it (the schedule's run).
    IfDue,
    /// Fresh ones too (`routerctl token refresh`).
    Always,
}

/// Refreshes every oauth2 profile (or only `only`) whose token needs it (every one, with
/// [`Renew::Always`]), until `deadline`. One failing profile does not stop the others.
pub async fn refresh(
    routes: &Routes,
    secrets: &dyn SecretStore,
    http: &reqwest::Client,
    deadline: Instant,
    only: Option<&str>,
    renew: Renew,
) -> Report {
    let mut report = Report::default();
    for (name, profile) in routes.oauth2_profiles() {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let outcome = match refresh_one(profile, secrets, http, deadline, renew).await {
            Ok(o) => o,
            Err(e) => ProfileOutcome::Failed(e.to_string()),
        };
        match &outcome {
            ProfileOutcome::Failed(error) => {
                tracing::error!(profile = name, %error, "token refresh failed")
            }
            other => tracing::info!(profile = name, outcome = ?other, "token refresh"),
        }
        report.profiles.push((name.to_owned(), outcome));
    }
    report
}

async fn read_token(secrets: &dyn SecretStore, id: &str) -> Option<StoredToken> {
    secrets
        .get(id)
        .await
        .ok()
        .as_ref()
        .and_then(StoredToken::parse)
}

async fn refresh_one(
    profile: &OAuth2Profile,
    secrets: &dyn SecretStore,
    http: &reqwest::Client,
    deadline: Instant,
    renew: Renew,
) -> Result<ProfileOutcome, TokenError> {
    let current = read_token(secrets, &profile.token_secret).await;
    if renew == Renew::IfDue
        && freshness(current.as_ref(), router_core::time_fmt::unix_now()) == Freshness::Fresh
    {
        let expires_at = current.map_or(0, |t| t.expires_at);
        return Ok(ProfileOutcome::Fresh { expires_at });
    }
    let creds_secret = secrets
        .get(&profile.credentials_secret)
        .await
        .map_err(|e| {
            TokenError::Credentials(format!("cannot read `{}`: {e}", profile.credentials_secret))
        })?;
    let creds: ClientCredentials = serde_json::from_str(creds_secret.expose()).map_err(|_| {
        TokenError::Credentials(format!(
            "`{}` must hold {{\"client_id\": \"...\", \"client_secret\": \"...\"}}",
            profile.credentials_secret
        ))
    })?;
    let issued_at = router_core::time_fmt::unix_now();
    let response = request::request_token(http, profile, &creds, deadline).await?;
    let expires_at = issued_at
        .checked_add(response.expires_in)
        .ok_or_else(|| TokenError::Malformed("expires_in is out of range".to_owned()))?;
    let token = StoredToken {
        access_token: response.access_token.expose().to_owned(),
        token_type: response.token_type,
        expires_at,
        issued_at: Some(issued_at),
    };
    let value = serde_json::to_string(&token).map_err(|e| TokenError::Store(e.to_string()))?;
    // A racing refresher may have stored a newer token meanwhile: never replace it with
    // ours. The check and the write are one step where the store can lock (the file).
    let newer = std::sync::Mutex::new(None);
    let written = secrets
        .update(
            &profile.token_secret,
            &|current: Option<&Secret>| match current.and_then(StoredToken::parse) {
                Some(latest) if latest.expires_at > expires_at => {
                    *router_core::sync::lock(&newer) = Some(latest.expires_at);
                    None
                }
                _ => Some(Secret::new(value.clone())),
            },
        )
        .await
        .map_err(|e| TokenError::Store(format!("cannot write `{}`: {e}", profile.token_secret)))?;
    if !written {
        let expires_at = newer
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or(expires_at);
        return Ok(ProfileOutcome::Superseded { expires_at });
    }
    Ok(ProfileOutcome::Refreshed { expires_at })
}

/// One scheduled invocation: refresh every profile; an error (failing the invocation, so
/// the Errors alarm sees it) when any profile failed, naming each.
pub async fn invoke(
    routes: &Routes,
    secrets: &dyn SecretStore,
    http: &reqwest::Client,
    deadline: Instant,
) -> Result<serde_json::Value, String> {
    let report = refresh(routes, secrets, http, deadline, None, Renew::IfDue).await;
    let failures = report.failures();
    if failures.is_empty() {
        return Ok(serde_json::json!({ "profiles": report.profiles.len() }));
    }
    let list: Vec<String> = failures.iter().map(|(p, e)| format!("{p}: {e}")).collect();
    Err(format!("token refresh failed for {}", list.join("; ")))
}

/// The HTTP client for token requests: no redirects, no proxy, a bounded per-request
/// timeout. Failing to build one is an error, never a silent default client (which
/// would follow redirects and wait forever).
pub fn http_client() -> Result<reqwest::Client, TokenError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .user_agent(concat!(
            "cognigy-webhook-router/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .map_err(|e| TokenError::Unavailable(format!("cannot set up the HTTP client: {e}")))
}
