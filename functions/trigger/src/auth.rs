//! Inbound authentication: `X-API-Key: <key>` or `Authorization: ApiKey <key>`, compared
//! in constant time against the ingest key read once at cold start. Exactly one key is
//! judged: a request with several `X-API-Key` or `Authorization` headers, or a key in
//! both forms, is refused. A blank ingest key is refused at start-up.

use axum::http::HeaderMap;
use router_core::secrets::Secret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The ingest key, kept only as its SHA-256 so comparisons take the same time for any
/// presented key length.
#[derive(Clone)]
pub struct IngestKey {
    digest: [u8; 32],
}

impl std::fmt::Debug for IngestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IngestKey(***)")
    }
}

/// The ingest key's secret is empty or only whitespace: any request with a blank header
/// would match it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the ingest key is blank")]
pub struct BlankKey;

impl IngestKey {
    pub fn new(secret: &Secret) -> Result<Self, BlankKey> {
        let key = secret.expose().trim();
        if key.is_empty() {
            return Err(BlankKey);
        }
        Ok(Self {
            digest: Sha256::digest(key.as_bytes()).into(),
        })
    }

    /// Whether the request presents the key, once, in one of the accepted forms.
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
        digest.ct_eq(&self.digest).into()
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
    fn a_blank_ingest_key_is_refused() {
        for blank in ["", "   ", "\n\t"] {
            assert_eq!(
                IngestKey::new(&Secret::new(blank.into())).unwrap_err(),
                BlankKey
            );
        }
    }
}
