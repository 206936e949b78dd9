//! Secret values: a wrapper that never prints, and the token format token-refresh writes.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// How long a value read from the secret store (the ingest key, the signing key, an auth
/// header's value, a URL token) is used before it is read again: a rotation takes effect
/// within this long, on every function and in `routerctl serve` (`--secret-reread`).
pub const SECRET_REREAD: Duration = Duration::from_secs(300);

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

/// The keys a rotatable secret (the ingest key, the signing key) holds: its value is one
/// key, or during a change `{"current": "<key>", "next": "<key>"}` (both are accepted, or
/// both signatures sent). Errors name what is wrong, never a value.
pub fn rotating_keys(secret: &Secret) -> Result<Vec<String>, String> {
    let value = secret.expose().trim();
    if !value.starts_with('{') {
        if value.is_empty() {
            return Err("the secret is empty or blank".to_owned());
        }
        return Ok(vec![value.to_owned()]);
    }
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(value)
    else {
        return Err(
            "the secret starts with `{` but is not a JSON object like {\"current\": \"...\", \"next\": \"...\"}"
                .to_owned(),
        );
    };
    if let Some(other) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "current" | "next"))
    {
        return Err(format!(
            "the secret's JSON has `{other}`; only \"current\" and \"next\" are allowed"
        ));
    }
    let mut keys = Vec::new();
    for name in ["current", "next"] {
        match map.get(name) {
            None | Some(serde_json::Value::Null) if name == "current" => {
                return Err("the secret's JSON has no \"current\"".to_owned());
            }
            // `"next": null` says there is no next key (the end of a change).
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::String(k)) if !k.trim().is_empty() => {
                keys.push(k.trim().to_owned())
            }
            Some(_) => {
                return Err(format!(
                    "the secret's \"{name}\" must be a non-blank string"
                ));
            }
        }
    }
    Ok(keys)
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
    fn rotating_secrets_hold_one_key_or_current_and_next() {
        let keys = |v: &str| rotating_keys(&Secret::new(v.into()));
        assert_eq!(keys(" k1 \n").unwrap(), ["k1"]);
        assert_eq!(keys(r#"{"current": "k1"}"#).unwrap(), ["k1"]);
        assert_eq!(
            keys(r#" {"current": "k1", "next": " k2 "} "#).unwrap(),
            ["k1", "k2"]
        );
        assert_eq!(keys(r#"{"current": "k2", "next": null}"#).unwrap(), ["k2"]);
        for bad in [
            "",
            "  \n",
            "{",
            "{not json: k1}",
            r#"{"next": "k2"}"#,
            r#"{"current": ""}"#,
            r#"{"current": "k1", "next": " "}"#,
            r#"{"current": 1}"#,
            r#"{"current": null, "next": "k2"}"#,
            r#"{"current": "k1", "next": ""}"#,
            r#"{"Current": "k1"}"#,
            r#"{"current": "k1", "previous": "k0"}"#,
        ] {
            let err = keys(bad).unwrap_err();
            assert!(!err.contains("k1") && !err.contains("k2"), "{bad}: {err}");
        }
        let err = keys(r#"{"current": "s3cret", "nxt": "s3cret2"}"#).unwrap_err();
        assert!(err.contains("`nxt`") && !err.contains("s3cret"), "{err}");
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
