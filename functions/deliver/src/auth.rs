//! Outbound credentials: a route's auth header and the signing key, read from the secret
//! store and cached per cold start. Static secrets are kept for [`SECRET_REREAD`] (so a
//! rotation takes effect within minutes); an oauth2 token until [`TOKEN_MARGIN`] before
//! its `expires_at`, and re-read on demand after a 401/403. No value ever reaches an
//! error message, a log line or `Debug`.

use reqwest::header::{HeaderName, HeaderValue};
use router_core::ports::{SecretError, SecretStore};
use router_core::routes::AuthProfile;
use router_core::secrets::{SECRET_REREAD, Secret, StoredToken};
use router_core::signing::Signer;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// An oauth2 token is re-read this many seconds before its `expires_at`.
pub const TOKEN_MARGIN: i64 = 60;

/// Why no credential could be produced. Worth a retry: an operator can fix the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("auth profile `{0}` is not in the routes file")]
    UnknownProfile(String),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(
        "secret `{0}` does not hold a token as token-refresh writes it \
         ({{\"access_token\",\"token_type\",\"expires_at\"}})"
    )]
    BadToken(String),
    #[error("the token in secret `{secret}` expired at {expires_at} (is token-refresh running?)")]
    TokenExpired { secret: String, expires_at: i64 },
    #[error("the value of secret `{0}` cannot be sent in an HTTP header")]
    BadHeaderValue(String),
    #[error("signing secret `{secret}`: {reason}")]
    BadSigningKey { secret: String, reason: String },
}

struct Cached<T> {
    value: T,
    fresh_until: Instant,
}

/// A profile's finished header (name, sensitive value).
type Header = (HeaderName, HeaderValue);

/// The secret store behind a cache, and the routes file's auth profiles. What is cached
/// is each profile's finished header, so a delivery only clones it.
pub struct Credentials {
    store: Arc<dyn SecretStore>,
    profiles: BTreeMap<String, AuthProfile>,
    /// How long a static secret is reused ([`SECRET_REREAD`] unless set).
    ttl: Duration,
    headers: Mutex<HashMap<String, Cached<Header>>>,
    signer: Mutex<Option<Cached<Arc<Signer>>>>,
    /// Plain secrets (a Cognigy endpoint's URL token), by id.
    secrets: Mutex<HashMap<String, Cached<Secret>>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("profiles", &self.profiles.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    pub fn new(store: Arc<dyn SecretStore>, profiles: BTreeMap<String, AuthProfile>) -> Self {
        Self {
            store,
            profiles,
            ttl: SECRET_REREAD,
            headers: Mutex::new(HashMap::new()),
            signer: Mutex::new(None),
            secrets: Mutex::new(HashMap::new()),
        }
    }

    /// Reuses static secrets for `ttl` instead of [`SECRET_REREAD`].
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    pub fn is_oauth2(&self, profile: &str) -> bool {
        matches!(self.profiles.get(profile), Some(AuthProfile::OAuth2(_)))
    }

    /// The header a profile adds to a request. `fresh`: bypass the cache (after a 401/403).
    pub async fn header(&self, profile: &str, fresh: bool) -> Result<Header, AuthError> {
        if !fresh
            && let Some(h) = self
                .lock_headers()
                .get(profile)
                .filter(|c| c.fresh_until > Instant::now())
        {
            return Ok(h.value.clone());
        }
        let p = self
            .profiles
            .get(profile)
            .ok_or_else(|| AuthError::UnknownProfile(profile.to_owned()))?;
        // The secret part of the header's value, and how long it may be reused.
        let (secret_id, secret, keep) = match p {
            AuthProfile::ApiKey { secret } | AuthProfile::Header { secret, .. } => {
                let v = self.store.get(secret).await?;
                (secret, v, Some(self.ttl))
            }
            AuthProfile::OAuth2(o) => {
                let (token, keep) = self.token(&o.token_secret).await?;
                (&o.token_secret, token, keep)
            }
        };
        let shape = router_core::wire::headers::AuthHeader::of(p, secret.expose());
        let name = HeaderName::from_bytes(shape.name.as_bytes())
            .map_err(|_| AuthError::BadHeaderValue(secret_id.clone()))?;
        let value = format!("{}{}", shape.prefix, shape.secret);
        let mut value = HeaderValue::from_str(value.trim_end())
            .map_err(|_| AuthError::BadHeaderValue(secret_id.clone()))?;
        value.set_sensitive(true);
        let header = (name, value);
        let mut cache = self.lock_headers();
        match keep {
            Some(ttl) => {
                cache.insert(
                    profile.to_owned(),
                    Cached {
                        value: header.clone(),
                        fresh_until: Instant::now() + ttl,
                    },
                );
            }
            None => {
                cache.remove(profile);
            }
        }
        Ok(header)
    }

    /// Drops a profile's cached header, so the next request reads its secret again.
    pub fn forget(&self, profile: &str) {
        self.lock_headers().remove(profile);
    }

    /// A plain secret's value (a Cognigy endpoint's URL token), reused for [`SECRET_REREAD`].
    pub async fn secret(&self, id: &str) -> Result<Secret, AuthError> {
        if let Some(c) = self
            .secrets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .filter(|c| c.fresh_until > Instant::now())
        {
            return Ok(c.value.clone());
        }
        let value = self.store.get(id).await?;
        self.secrets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                id.to_owned(),
                Cached {
                    value: value.clone(),
                    fresh_until: Instant::now() + self.ttl,
                },
            );
        Ok(value)
    }

    /// The signer for the `[signing]` secret, rebuilt after [`SECRET_REREAD`].
    pub async fn signer(&self, secret_id: &str) -> Result<Arc<Signer>, AuthError> {
        if let Some(c) = self
            .signer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            && c.fresh_until > Instant::now()
        {
            return Ok(c.value.clone());
        }
        let secret = self.store.get(secret_id).await?;
        let signer = Arc::new(
            Signer::new(&secret).map_err(|reason| AuthError::BadSigningKey {
                secret: secret_id.to_owned(),
                reason,
            })?,
        );
        *self.signer.lock().unwrap_or_else(PoisonError::into_inner) = Some(Cached {
            value: signer.clone(),
            fresh_until: Instant::now() + self.ttl,
        });
        Ok(signer)
    }

    fn lock_headers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached<Header>>> {
        self.headers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The access token of a token secret, and how long it may be reused: until
    /// `TOKEN_MARGIN` before it expires (`None` when that is already past).
    async fn token(&self, id: &str) -> Result<(Secret, Option<Duration>), AuthError> {
        let raw = self.store.get(id).await?;
        let token = StoredToken::parse(&raw).ok_or_else(|| AuthError::BadToken(id.to_owned()))?;
        let now = router_core::time_fmt::unix_now();
        if token.expires_at <= now {
            return Err(AuthError::TokenExpired {
                secret: id.to_owned(),
                expires_at: token.expires_at,
            });
        }
        let keep = token
            .expires_at
            .saturating_sub(TOKEN_MARGIN)
            .saturating_sub(now);
        let keep = (keep > 0).then(|| Duration::from_secs(keep as u64));
        Ok((Secret::new(token.access_token), keep))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use router_core::testing::MemorySecrets;

    fn token(access: &str, expires_in: i64) -> String {
        format!(
            r#"{{"access_token":"{access}","token_type":"Bearer","expires_at":{}}}"#,
            router_core::time_fmt::unix_now() + expires_in
        )
    }

    fn credentials(store: Arc<MemorySecrets>) -> Credentials {
        let toml = r#"
[auth.key]
type = "api_key"
secret = "s/key"

[auth.crm]
type = "header"
header = "Authorization"
prefix = "Token "
secret = "s/crm"

[auth.cognigy]
type = "oauth2"
token_url = "https://auth.example.com/token"
credentials_secret = "s/creds"
token_secret = "s/token"
"#;
        let routes = router_core::routes::Routes::parse(toml, std::path::Path::new("r.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
        Credentials::new(store, routes.auth.clone())
    }

    #[tokio::test]
    async fn each_profile_makes_its_header_and_static_secrets_are_cached() {
        let store = Arc::new(MemorySecrets::default());
        store.set("s/key", "k-1");
        store.set("s/crm", "c-1");
        store.set("s/token", &token("t-1", 3600));
        let c = credentials(store.clone());
        let (n, v) = c.header("key", false).await.unwrap();
        assert_eq!((n.as_str(), v.to_str().unwrap()), ("x-api-key", "k-1"));
        assert!(v.is_sensitive());
        let (n, v) = c.header("crm", false).await.unwrap();
        assert_eq!(
            (n.as_str(), v.to_str().unwrap()),
            ("authorization", "Token c-1")
        );
        let (n, v) = c.header("cognigy", false).await.unwrap();
        assert_eq!(
            (n.as_str(), v.to_str().unwrap()),
            ("authorization", "Bearer t-1")
        );
        for _ in 0..3 {
            c.header("key", false).await.unwrap();
            c.header("cognigy", false).await.unwrap();
        }
        assert_eq!((store.reads_of("s/key"), store.reads_of("s/token")), (1, 1));
        c.forget("key");
        c.header("key", false).await.unwrap();
        assert_eq!(store.reads_of("s/key"), 2);
        assert!(c.is_oauth2("cognigy") && !c.is_oauth2("crm"));
    }

    #[tokio::test]
    async fn a_token_near_expiry_is_read_again_and_an_expired_one_refused() {
        let store = Arc::new(MemorySecrets::default());
        store.set("s/token", &token("t-1", 30));
        let c = credentials(store.clone());
        c.header("cognigy", false).await.unwrap();
        c.header("cognigy", false).await.unwrap();
        assert_eq!(
            store.reads_of("s/token"),
            2,
            "within the margin: never cached"
        );

        store.set("s/token", &token("t-2", -5));
        let err = c.header("cognigy", false).await.unwrap_err();
        assert!(matches!(err, AuthError::TokenExpired { .. }), "{err}");

        store.set("s/token", "not json");
        let err = c.header("cognigy", false).await.unwrap_err();
        assert_eq!(err, AuthError::BadToken("s/token".into()));
    }

    #[tokio::test]
    async fn fresh_bypasses_the_cache() {
        let store = Arc::new(MemorySecrets::default());
        store.set("s/token", &token("old", 3600));
        let c = credentials(store.clone());
        c.header("cognigy", false).await.unwrap();
        store.set("s/token", &token("new", 3600));
        let (_, v) = c.header("cognigy", false).await.unwrap();
        assert_eq!(v.to_str().unwrap(), "Bearer old");
        let (_, v) = c.header("cognigy", true).await.unwrap();
        assert_eq!(v.to_str().unwrap(), "Bearer new");
        let (_, v) = c.header("cognigy", false).await.unwrap();
        assert_eq!(v.to_str().unwrap(), "Bearer new");
    }

    #[tokio::test]
    async fn errors_and_debug_never_show_a_secret_value() {
        let store = Arc::new(MemorySecrets::default());
        store.set("s/key", "line\nbreak-secret");
        store.set("sign", "not-whsec-secret");
        let c = credentials(store.clone());
        let err = c.header("key", false).await.unwrap_err();
        assert!(!err.to_string().contains("break-secret"), "{err}");
        let err = c.signer("sign").await.unwrap_err();
        assert!(!err.to_string().contains("not-whsec"), "{err}");
        c.header("nope", false).await.unwrap_err();
        store.set("s/crm", "c-visible");
        c.header("crm", false).await.unwrap();
        assert!(!format!("{c:?}").contains("c-visible"));
    }
}
