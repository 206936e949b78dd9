//! Inbound authentication: `X-API-Key: <key>` or `Authorization: ApiKey <key>`, compared
//! in constant time against the ingest key read once at cold start.

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

impl IngestKey {
    pub fn new(secret: &Secret) -> Self {
        Self {
            digest: Sha256::digest(secret.expose().trim().as_bytes()).into(),
        }
    }

    /// Whether the request presents the key in either accepted form.
    pub fn accepts(&self, headers: &HeaderMap) -> bool {
        let mut ok = subtle::Choice::from(0);
        for presented in presented_keys(headers) {
            let digest: [u8; 32] = Sha256::digest(presented).into();
            ok |= digest.ct_eq(&self.digest);
        }
        ok.into()
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
        let key = IngestKey::new(&Secret::new("k-123".into()));
        assert!(key.accepts(&headers(&[("x-api-key", "k-123")])));
        assert!(key.accepts(&headers(&[("authorization", "ApiKey k-123")])));
        assert!(key.accepts(&headers(&[("authorization", "apikey  k-123 ")])));
    }

    #[test]
    fn anything_else_is_refused() {
        let key = IngestKey::new(&Secret::new("k-123".into()));
        for h in [
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
    }
}
