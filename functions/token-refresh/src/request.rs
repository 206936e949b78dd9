//! One client-credentials token request, with the retry rules: 429 waits `Retry-After`
//! (or backs off) while the deadline allows, 5xx and network errors get a few retries with
//! backoff, 400/401 (invalid_client, ...) stop at once.

use router_core::routes::{ClientAuth, OAuth2Profile, TokenRequestStyle};
use router_core::secrets::{ClientCredentials, Secret};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Attempts for 5xx and network errors.
pub const MAX_ATTEMPTS: u32 = 4;
const BASE_BACKOFF: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("client credentials: {0}")]
    Credentials(String),
    #[error("the token endpoint refused the credentials (HTTP {status}{})", .error.as_ref().map(|e| format!(", {e}")).unwrap_or_default())]
    Rejected { status: u16, error: Option<String> },
    #[error("the token endpoint's answer is not a usable token: {0}")]
    Malformed(String),
    #[error("the token endpoint is unavailable: {0}")]
    Unavailable(String),
    #[error("the token endpoint is rate limiting and the wait ({0} s) does not fit the time left")]
    RateLimited(u64),
    #[error("token store: {0}")]
    Store(String),
}

/// A token endpoint's answer. `Debug` hides the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenResponse {
    pub access_token: Secret,
    pub token_type: String,
    pub expires_in: i64,
}

/// The longest `expires_in` accepted (one year): anything longer is a broken answer.
pub const MAX_EXPIRES_IN: i64 = 365 * 24 * 3600;
/// The most of a token endpoint's answer that is read.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The longest access token accepted (it travels in a header on every delivery).
pub const MAX_TOKEN_CHARS: usize = 16 * 1024;

/// Parses a successful answer; anything without a usable token and an `expires_in` in
/// (0 s, 1 year] is an error (never stored). The token must be sendable in a header
/// (visible ASCII), or every delivery with it would fail.
pub fn parse_response(body: &[u8]) -> Result<TokenResponse, TokenError> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| TokenError::Malformed("the body is not JSON".to_owned()))?;
    let access_token = v
        .get("access_token")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| TokenError::Malformed("no access_token".to_owned()))?;
    if access_token.len() > MAX_TOKEN_CHARS || !access_token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TokenError::Malformed(
            "the access_token is not a short run of visible ASCII characters".to_owned(),
        ));
    }
    let expires_in = match v.get("expires_in") {
        Some(serde_json::Value::Number(n)) => n.as_f64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .ok_or_else(|| TokenError::Malformed("no expires_in".to_owned()))?;
    if !(expires_in.is_finite() && expires_in >= 1.0 && expires_in <= MAX_EXPIRES_IN as f64) {
        return Err(TokenError::Malformed(format!(
            "expires_in must be between 1 s and one year ({MAX_EXPIRES_IN} s)"
        )));
    }
    let token_type = v
        .get("token_type")
        .and_then(|t| t.as_str())
        .filter(|t| t.len() <= 64 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .unwrap_or("Bearer");
    Ok(TokenResponse {
        access_token: Secret::new(access_token.to_owned()),
        token_type: token_type.to_owned(),
        expires_in: expires_in as i64,
    })
}

/// Reads at most [`MAX_ANSWER_BYTES`] of an answer; `None` when it is longer.
async fn read_capped(mut resp: reqwest::Response) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// The OAuth `error` code of an error answer, if it is a plain code (never free text).
fn oauth_error(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = v.get("error")?.as_str()?;
    (code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .then(|| code.to_owned())
}

fn build(
    http: &reqwest::Client,
    profile: &OAuth2Profile,
    creds: &ClientCredentials,
) -> reqwest::RequestBuilder {
    let req = http
        .post(profile.token_url.clone())
        .header("accept", "application/json");
    match profile.request {
        TokenRequestStyle::Form => {
            let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
            if let Some(scope) = &profile.scope {
                form.push(("scope", scope));
            }
            match profile.client_auth {
                ClientAuth::Basic => req
                    .basic_auth(&creds.client_id, Some(&creds.client_secret))
                    .form(&form),
                ClientAuth::Body => {
                    form.push(("client_id", &creds.client_id));
                    form.push(("client_secret", &creds.client_secret));
                    req.form(&form)
                }
            }
        }
        TokenRequestStyle::JsonBasic => {
            let mut body = serde_json::json!({"grant_type": "client_credentials"});
            if let Some(scope) = &profile.scope {
                body["scope"] = scope.clone().into();
            }
            req.basic_auth(&creds.client_id, Some(&creds.client_secret))
                .json(&body)
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    (BASE_BACKOFF * 2u32.saturating_pow(attempt.saturating_sub(1))).min(Duration::from_secs(8))
}

/// Sleeps `wait` if it ends before `deadline`; false when it would not fit.
async fn wait_within(wait: Duration, deadline: Instant) -> bool {
    if Instant::now() + wait >= deadline {
        return false;
    }
    tokio::time::sleep(wait).await;
    true
}

pub async fn request_token(
    http: &reqwest::Client,
    profile: &OAuth2Profile,
    creds: &ClientCredentials,
    deadline: Instant,
) -> Result<TokenResponse, TokenError> {
    let mut failures = 0u32;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(TokenError::Unavailable("no time left".to_owned()));
        }
        let sent = build(http, profile, creds)
            .timeout(remaining.min(Duration::from_secs(10)))
            .send()
            .await;
        let last_error = match sent {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| router_core::retry::parse_retry_after(v, SystemTime::now()));
                let body = match read_capped(resp).await {
                    Ok(Some(body)) => body,
                    Ok(None) => {
                        return Err(TokenError::Malformed(format!(
                            "the answer is larger than {} KiB",
                            MAX_ANSWER_BYTES / 1024
                        )));
                    }
                    Err(_) => Vec::new(),
                };
                match status {
                    200..=299 => return parse_response(&body),
                    429 => {
                        failures += 1;
                        let wait = retry_after.unwrap_or_else(|| backoff(failures));
                        if !wait_within(wait, deadline).await {
                            return Err(TokenError::RateLimited(wait.as_secs()));
                        }
                        continue;
                    }
                    500..=599 => format!("HTTP {status}"),
                    _ => {
                        return Err(TokenError::Rejected {
                            status,
                            error: oauth_error(&body),
                        });
                    }
                }
            }
            Err(e) if e.is_timeout() => "timed out".to_owned(),
            Err(e) if e.is_connect() => "connection failed".to_owned(),
            Err(e) => format!("request failed ({})", e.without_url()),
        };
        failures += 1;
        if failures >= MAX_ATTEMPTS || !wait_within(backoff(failures), deadline).await {
            return Err(TokenError::Unavailable(format!(
                "{last_error} after {failures} attempts"
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_answer_parses_and_hides_its_token() {
        let t =
            parse_response(br#"{"access_token":"abc","token_type":"bearer","expires_in":3600}"#)
                .unwrap();
        assert_eq!((t.token_type.as_str(), t.expires_in), ("bearer", 3600));
        assert!(!format!("{t:?}").contains("abc"));
        let t = parse_response(br#"{"access_token":"abc","expires_in":"120"}"#).unwrap();
        assert_eq!((t.token_type.as_str(), t.expires_in), ("Bearer", 120));
        let t = parse_response(br#"{"access_token":"abc","expires_in":31536000}"#).unwrap();
        assert_eq!(
            t.expires_in, MAX_EXPIRES_IN,
            "one year is the longest accepted"
        );
    }

    #[test]
    fn bad_answers_are_errors() {
        for body in [
            &b"not json"[..],
            br#"{"token_type":"Bearer","expires_in":3600}"#,
            br#"{"access_token":"","expires_in":3600}"#,
            br#"{"access_token":"abc"}"#,
            br#"{"access_token":"abc","expires_in":0}"#,
            br#"{"access_token":"abc","expires_in":"soon"}"#,
            br#"{"access_token":7,"expires_in":60}"#,
            br#"{"access_token":"abc","expires_in":1e19}"#,
            br#"{"access_token":"abc","expires_in":-5}"#,
            br#"{"access_token":"abc","expires_in":0.5}"#,
            br#"{"access_token":"abc","expires_in":31536001}"#,
            br#"{"access_token":"abc","expires_in":"1e300"}"#,
            br#"{"access_token":"abc","expires_in":"NaN"}"#,
            br#"{"access_token":"a\nb","expires_in":60}"#,
            br#"{"access_token":"a b","expires_in":60}"#,
        ] {
            assert!(
                matches!(parse_response(body), Err(TokenError::Malformed(_))),
                "{body:?}"
            );
        }
    }

    #[test]
    fn only_plain_oauth_error_codes_are_kept() {
        assert_eq!(
            oauth_error(br#"{"error":"invalid_client"}"#).as_deref(),
            Some("invalid_client")
        );
        assert_eq!(oauth_error(br#"{"error":"secret abc is wrong"}"#), None);
        assert_eq!(oauth_error(b"<html>"), None);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(10), Duration::from_secs(8));
    }
}
