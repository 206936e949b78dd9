//! Secret values: a wrapper that never prints, and the token format token-refresh writes.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A secret value. `Debug` and `Display` print `***`; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A URL as it may be shown (logs, CLI output): any userinfo (`user:password@`) is
/// replaced by `***`.
pub fn mask_url(url: &url::Url) -> String {
    if url.username().is_empty() && url.password().is_none() {
        return url.to_string();
    }
    let mut shown = url.clone();
    let _ = shown.set_password(None);
    let _ = shown.set_username("***");
    shown.to_string()
}

/// What token-refresh stores in an oauth2 profile's token secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredToken {
    pub access_token: String,
    pub token_type: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// Unix seconds when it was obtained (lets token-refresh renew at half its lifetime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<i64>,
}

impl fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredToken")
            .field("access_token", &"***")
            .field("token_type", &self.token_type)
            .field("expires_at", &self.expires_at)
            .field("issued_at", &self.issued_at)
            .finish()
    }
}

impl StoredToken {
    pub fn parse(secret: &Secret) -> Option<Self> {
        serde_json::from_str(secret.expose()).ok()
    }
}

/// The `{"client_id","client_secret"}` in an oauth2 profile's credentials secret.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: String,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_userinfo() {
        let u = url::Url::parse("https://bob:pa55@crm.example.com/hooks?x=1").unwrap();
        assert_eq!(mask_url(&u), "https://***@crm.example.com/hooks?x=1");
        let u = url::Url::parse("https://tok3n@crm.example.com/").unwrap();
        assert_eq!(mask_url(&u), "https://***@crm.example.com/");
        let u = url::Url::parse("https://crm.example.com/a").unwrap();
        assert_eq!(mask_url(&u), "https://crm.example.com/a");
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        let t = StoredToken {
            access_token: "tok-123".into(),
            token_type: "Bearer".into(),
            expires_at: 1,
            issued_at: None,
        };
        assert!(!format!("{t:?}").contains("tok-123"));
        let c: ClientCredentials =
            serde_json::from_str(r#"{"client_id":"id","client_secret":"shh"}"#).unwrap();
        assert!(!format!("{c:?}").contains("shh"));
    }
}
