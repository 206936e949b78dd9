//! Outbound credentials: a route's auth header, the signing key and Cognigy URL tokens,
//! made from secrets through the one secret cache ([`router_core::secret_cache::SecretCache`]):
//! static secrets are reused for [`SECRET_REREAD`] (so a rotation takes effect within
//! minutes), an oauth2 token's header until [`TOKEN_MARGIN`] before its `expires_at` (and
//! read again at once after a 401/403). A secret that cannot be used is remembered for
//! 30 s, so a placeholder signing key costs one read per 30 s, not one per delivery; an
//! unusable one is dropped at once, and a store outage keeps a static value for at most one
//! more re-read period (an oauth2 token's header, never past its margin). No value ever
//! reaches an error message, a log line or `Debug`.

use reqwest::header::{HeaderName, HeaderValue};
use router_core::ports::SecretStore;
use router_core::routes::AuthProfile;
use router_core::secret_cache::{CacheError, OnFailure, Read, SecretCache};
use router_core::secrets::{SECRET_REREAD, Secret, StoredToken};
use router_core::signing::Signer;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// An oauth2 token is re-read this many seconds before its `expires_at`.
pub const TOKEN_MARGIN: i64 = 60;

/// Why no credential could be produced. Worth a retry: an operator can fix the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("auth profile `{0}` is not in the routes file")]
    UnknownProfile(String),
    #[error(transparent)]
    Secret(#[from] CacheError),
}

/// A profile's finished header (name, sensitive value).
type Header = (HeaderName, HeaderValue);

/// The secret store behind the caches, and the routes file's auth profiles. What is
/// cached is each profile's finished header, so a delivery only clones it.
pub struct Credentials {
    store: Arc<dyn SecretStore>,
    profiles: BTreeMap<String, AuthProfile>,
    /// api_key and header profiles' headers, by profile.
    statics: SecretCache<Header>,
    /// oauth2 profiles' headers, by profile.
    tokens: SecretCache<Header>,
    signers: SecretCache<Arc<Signer>>,
    /// Plain secrets (a Cognigy endpoint's URL token), by id.
    secrets: SecretCache<Secret>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("profiles", &self.profiles.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The header `profile` adds, with the secret's value in it (marked sensitive).
fn header(p: &AuthProfile, secret: &Secret) -> Result<Header, String> {
    let bad = || "its value cannot be sent in an HTTP header".to_owned();
    let shape = p.header(secret.expose());
    let name = HeaderName::from_bytes(shape.name.as_bytes()).map_err(|_| bad())?;
    let value = format!("{}{}", shape.prefix, shape.secret);
    let mut value = HeaderValue::from_str(value.trim_end()).map_err(|_| bad())?;
    value.set_sensitive(true);
    Ok((name, value))
}

/// An oauth2 profile's header from its token secret, kept until `TOKEN_MARGIN` before the
/// token expires (not at all once that is past).
fn token_header(p: &AuthProfile, raw: &Secret) -> Result<(Header, Option<Duration>), String> {
    let token = StoredToken::parse(raw).ok_or_else(|| {
        "it does not hold a token as token-refresh writes it \
         ({\"access_token\",\"token_type\",\"expires_at\"})"
            .to_owned()
    })?;
    let now = router_core::time_fmt::unix_now();
    if token.expires_at <= now {
        return Err(format!(
            "its token expired at {} (is token-refresh running?)",
            token.expires_at
        ));
    }
    let keep = token
        .expires_at
        .saturating_sub(TOKEN_MARGIN)
        .saturating_sub(now)
        .max(0);
    let h = header(p, &Secret::new(token.access_token))?;
    Ok((h, Some(Duration::from_secs(keep as u64))))
}

impl Credentials {
    pub fn new(store: Arc<dyn SecretStore>, profiles: BTreeMap<String, AuthProfile>) -> Self {
        Self::build(store, profiles, SECRET_REREAD)
    }

    fn build(
        store: Arc<dyn SecretStore>,
        profiles: BTreeMap<String, AuthProfile>,
        reread: Duration,
    ) -> Self {
        let grace = OnFailure::GraceWhileUnreachable;
        Self {
            statics: SecretCache::new(store.clone(), reread, grace),
            tokens: SecretCache::new(store.clone(), reread, OnFailure::Drop),
            signers: SecretCache::new(store.clone(), reread, grace),
            secrets: SecretCache::new(store.clone(), reread, grace),
            store,
            profiles,
        }
    }

    /// Reads secrets again after `reread` instead of [`SECRET_REREAD`].
    pub fn with_secret_reread(self, reread: Duration) -> Self {
        Self::build(self.store, self.profiles, reread)
    }

    pub fn is_oauth2(&self, profile: &str) -> bool {
        matches!(self.profiles.get(profile), Some(AuthProfile::OAuth2(_)))
    }

    /// The header a profile adds to a request; [`Read::Fresh`] reads its secret again now
    /// (after a 401/403).
    pub async fn header(&self, profile: &str, read: Read) -> Result<Header, AuthError> {
        let p = self
            .profiles
            .get(profile)
            .ok_or_else(|| AuthError::UnknownProfile(profile.to_owned()))?;
        let made = match p {
            AuthProfile::ApiKey { secret } | AuthProfile::Header { secret, .. } => {
                self.statics
                    .get(profile, secret, read, |s| header(p, &s).map(|h| (h, None)))
                    .await
            }
            AuthProfile::OAuth2(o) => {
                self.tokens
                    .get(profile, &o.token_secret, read, |s| token_header(p, &s))
                    .await
            }
        };
        Ok(made?)
    }

    /// Drops a profile's cached header, so the next request reads its secret again.
    pub fn forget(&self, profile: &str) {
        self.statics.forget(profile);
        self.tokens.forget(profile);
    }

    /// A plain secret's value (a Cognigy endpoint's URL token).
    pub async fn secret(&self, id: &str) -> Result<Secret, AuthError> {
        Ok(self
            .secrets
            .get(id, id, Read::Cached, |s| Ok((s, None)))
            .await?)
    }

    /// The signer for the `[signing]` secret.
    pub async fn signer(&self, secret_id: &str) -> Result<Arc<Signer>, AuthError> {
        let made = self
            .signers
            .get(secret_id, secret_id, Read::Cached, |s| {
                Signer::new(&s).map(|signer| (Arc::new(signer), None))
            })
            .await;
        Ok(made?)
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
        let (n, v) = c.header("key", Read::Cached).await.unwrap();
        assert_eq!((n.as_str(), v.to_str().unwrap()), ("x-api-key", "k-1"));
        assert!(v.is_sensitive());
        let (n, v) = c.header("crm", Read::Cached).await.unwrap();
        assert_eq!(
            (n.as_str(), v.to_str().unwrap()),
            ("authorization", "Token c-1")
        );
        let (n, v) = c.header("cognigy", Read::Cached).await.unwrap();
        assert_eq!(
            (n.as_str(), v.to_str().unwrap()),
            ("authorization", "Bearer t-1")
        );
        for _ in 0..3 {
            c.header("key", Read::Cached).await.unwrap();
            c.header("cognigy", Read::Cached).await.unwrap();
        }
        assert_eq!((store.reads_of("s/key"), store.reads_of("s/token")), (1, 1));
        c.forget("key");
        c.header("key", Read::Cached).await.unwrap();
        assert_eq!(store.reads_of("s/key"), 2);
        assert!(c.is_oauth2("cognigy") && !c.is_oauth2("crm"));
    }

    #[tokio::test]
    async fn a_token_near_expiry_is_read_again_and_an_expired_one_refused() {
        let store = Arc::new(MemorySecrets::default());
        store.set("s/token", &token("t-1", 30));
        let c = credentials(store.clone());
        c.header("cognigy", Read::Cached).await.unwrap();
        c.header("cognigy", Read::Cached).await.unwrap();
        assert_eq!(
            store.reads_of("s/token"),
            2,
            "within the margin: never cached"
        );

        store.set("s/token", &token("t-2", -5));
        let err = c.header("cognigy", Read::Cached).await.unwrap_err();
        assert!(err.to_string().contains("expired at"), "{err}");
        // Remembered: the next delivery does not read it again at once...
        c.header("cognigy", Read::Cached).await.unwrap_err();
        assert_eq!(store.reads_of("s/token"), 3);
        // ... unless the target refused the token (a 401 asks for a fresh read).
        store.set("s/token", "not json");
        let err = c.header("cognigy", Read::Fresh).await.unwrap_err();
        assert!(err.to_string().contains("does not hold a token"), "{err}");
        assert!(
            err.to_string().contains("s/token"),
            "names the secret: {err}"
        );
    }

    #[tokio::test]
    async fn a_placeholder_signing_key_costs_one_read_not_one_per_delivery() {
        let store = Arc::new(MemorySecrets::default());
        store.set("sign", "PLACEHOLDER");
        let c = credentials(store.clone());
        for _ in 0..40 {
            assert!(c.signer("sign").await.is_err());
        }
        assert_eq!(store.reads_of("sign"), 1);
    }

    #[tokio::test]
    async fn a_rotated_key_made_unusable_stops_at_the_next_read() {
        let store = Arc::new(MemorySecrets::default());
        let key = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        store.set("sign", key);
        let c = credentials(store.clone()).with_secret_reread(Duration::ZERO);
        c.signer("sign").await.unwrap();
        // A broken edit: the old key is not used on.
        store.set("sign", r#"{"Current": "whsec_x"}"#);
        assert!(c.signer("sign").await.is_err());
        store.set("sign", key);
        c.signer("sign").await.unwrap();
    }

    #[tokio::test]
    async fn fresh_bypasses_the_cache() {
        let store = Arc::new(MemorySecrets::default());
        store.set("s/token", &token("old", 3600));
        let c = credentials(store.clone());
        c.header("cognigy", Read::Cached).await.unwrap();
        store.set("s/token", &token("new", 3600));
        let (_, v) = c.header("cognigy", Read::Cached).await.unwrap();
        assert_eq!(v.to_str().unwrap(), "Bearer old");
        let (_, v) = c.header("cognigy", Read::Fresh).await.unwrap();
        assert_eq!(v.to_str().unwrap(), "Bearer new");
        let (_, v) = c.header("cognigy", Read::Cached).await.unwrap();
        assert_eq!(v.to_str().unwrap(), "Bearer new");
    }

    #[tokio::test]
    async fn errors_and_debug_never_show_a_secret_value() {
        let store = Arc::new(MemorySecrets::default());
        store.set("s/key", "line\nbreak-secret");
        store.set("sign", "not-whsec-secret");
        let c = credentials(store.clone());
        let err = c.header("key", Read::Cached).await.unwrap_err();
        assert!(!err.to_string().contains("break-secret"), "{err}");
        let err = c.signer("sign").await.unwrap_err();
        assert!(!err.to_string().contains("not-whsec"), "{err}");
        c.header("nope", Read::Cached).await.unwrap_err();
        store.set("s/crm", "c-visible");
        c.header("crm", Read::Cached).await.unwrap();
        assert!(!format!("{c:?}").contains("c-visible"));
    }
}
