//! Inbound authentication: `X-API-Key: <key>` or `Authorization: ApiKey <key>`, compared
//! in constant time against the ingest key. Exactly one key is judged: a request with
//! several `X-API-Key` or `Authorization` headers, or a key in both forms, is refused.
//!
//! The ingest secret holds one key, or during a change `{"current": "...", "next": "..."}`
//! (both accepted; `"next": null` is none). It is read at start-up (a blank or malformed
//! one stops the start) and re-read every [`router_core::secrets::SECRET_REREAD`] through
//! the one secret cache ([`router_core::secret_cache::SecretCache`]): the same rule warm as cold.
//! A re-read that finds the value unusable (blank, malformed, a typo) or the secret deleted
//! stops every key at once: requests get a 503 (`ingest_key_unusable`) until it is fixed,
//! and the cache logs `secret unusable`. A re-read that cannot reach the store keeps the
//! keys for at most one more re-read period. A revoked key never works again for longer.

use axum::http::HeaderMap;
use router_core::ports::SecretStore;
use router_core::secret_cache::{CacheError, OnFailure, Read, SecretCache};
use router_core::secrets::Secret;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// The accepted ingest keys (one, or two during a change), kept only as their SHA-256 so
/// comparisons take the same time for any presented key length.
#[derive(Clone)]
pub struct IngestKey {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for IngestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IngestKey(***)")
    }
}

/// The ingest key's secret is blank, or not one key or `{"current","next"}`: the reason,
/// never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadKey(pub String);

impl IngestKey {
    pub fn new(secret: &Secret) -> Result<Self, BadKey> {
        let keys = router_core::secrets::rotating_keys(secret).map_err(BadKey)?;
        Ok(Self {
            digests: keys
                .iter()
                .map(|k| Sha256::digest(k.as_bytes()).into())
                .collect(),
        })
    }

    /// Whether the request presents one of the keys, once, in one of the accepted forms.
    pub fn accepts(&self, headers: &HeaderMap) -> bool {
        if headers.get_all("x-api-key").iter().count() > 1
            || headers.get_all("authorization").iter().count() > 1
        {
            return false;
        }
        let mut presented = presented_keys(headers);
        let (Some(key), None) = (presented.next(), presented.next()) else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(key).into();
        // Every key is compared, whichever matches.
        self.digests
            .iter()
            .fold(subtle::Choice::from(0), |any, d| any | digest.ct_eq(d))
            .into()
    }
}

/// The ingest key as requests see it, through the secret cache.
#[derive(Debug)]
pub struct IngestAuth {
    secret_id: String,
    keys: SecretCache<Arc<IngestKey>>,
}

fn make(secret: Secret) -> Result<(Arc<IngestKey>, Option<Duration>), String> {
    IngestKey::new(&secret)
        .map(|k| (Arc::new(k), None))
        .map_err(|e| e.0)
}

impl IngestAuth {
    /// Reads the key from `secret_id` in `store` (re-read after `reread`); an unusable
    /// or unreadable one is the cold start's error.
    pub async fn start(
        secret_id: String,
        store: Arc<dyn SecretStore>,
        reread: Duration,
    ) -> Result<Self, CacheError> {
        let keys = SecretCache::new(store, reread, OnFailure::GraceWhileUnreachable);
        keys.get(&secret_id, &secret_id, Read::Fresh, make).await?;
        Ok(Self { secret_id, keys })
    }

    /// Whether the request presents an accepted key (re-reading the secret when due);
    /// `Err` when no key can be had now (the request is answered 503).
    pub async fn accepts(&self, headers: &HeaderMap) -> Result<bool, CacheError> {
        let key = self
            .keys
            .get(&self.secret_id, &self.secret_id, Read::Cached, make)
            .await?;
        Ok(key.accepts(headers))
    }
}

fn presented_keys(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    let api_key = headers.get_all("x-api-key").iter().map(|v| v.as_bytes());
    let authorization = headers.get_all("authorization").iter().filter_map(|v| {
        let v = v.as_bytes();
        let (scheme, rest) = v.split_at(v.iter().position(|&b| b == b' ')?);
        scheme
            .eq_ignore_ascii_case(b"apikey")
            .then(|| rest.trim_ascii())
    });
    api_key.map(<[u8]>::trim_ascii).chain(authorization)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn both_header_forms_are_accepted() {
        let key = IngestKey::new(&Secret::new("k-123".into())).unwrap();
        assert!(key.accepts(&headers(&[("x-api-key", "k-123")])));
        assert!(key.accepts(&headers(&[("authorization", "ApiKey k-123")])));
        assert!(key.accepts(&headers(&[("authorization", "apikey  k-123 ")])));
    }

    #[test]
    fn anything_else_is_refused() {
        let key = IngestKey::new(&Secret::new("k-123".into())).unwrap();
        for h in [
            // One key is judged: several, or one in each form, are refused.
            headers(&[("x-api-key", "k-123"), ("x-api-key", "wrong")]),
            headers(&[("x-api-key", "wrong"), ("x-api-key", "k-123")]),
            headers(&[("x-api-key", "k-123"), ("authorization", "ApiKey k-123")]),
            headers(&[
                ("authorization", "ApiKey k-123"),
                ("authorization", "Bearer x"),
            ]),
            headers(&[]),
            headers(&[("x-api-key", "k-124")]),
            headers(&[("x-api-key", "")]),
            headers(&[("authorization", "Bearer k-123")]),
            headers(&[("authorization", "ApiKeyk-123")]),
            headers(&[("authorization", "k-123")]),
            headers(&[("x-api-key", "k-123x")]),
        ] {
            assert!(!key.accepts(&h), "{h:?}");
        }
        assert!(!format!("{key:?}").contains("k-123"));
        // Another Authorization scheme beside X-API-Key is not a second key.
        assert!(key.accepts(&headers(&[
            ("x-api-key", "k-123"),
            ("authorization", "Basic eDp5")
        ])));
    }

    #[test]
    fn a_blank_or_malformed_ingest_key_is_refused() {
        for bad in [
            "",
            "   ",
            "\n\t",
            "{\"current\": \" \"}",
            "{\"next\": \"k\"}",
        ] {
            let err = IngestKey::new(&Secret::new(bad.into())).unwrap_err();
            assert!(!err.0.is_empty(), "{bad}");
        }
    }

    #[test]
    fn during_a_change_current_and_next_are_both_accepted() {
        let key = IngestKey::new(&Secret::new(
            r#"{"current": "k-old", "next": "k-new"}"#.into(),
        ))
        .unwrap();
        assert!(key.accepts(&headers(&[("x-api-key", "k-old")])));
        assert!(key.accepts(&headers(&[("authorization", "ApiKey k-new")])));
        assert!(!key.accepts(&headers(&[("x-api-key", "k-other")])));
        // Still one key judged: presenting both is not a way around it.
        assert!(!key.accepts(&headers(&[("x-api-key", "k-old"), ("x-api-key", "k-new")])));
        assert!(!format!("{key:?}").contains("k-"));
    }
}
