//! Standard Webhooks signing: the `webhook-signature` value over `webhook-id`,
//! `webhook-timestamp` and the body (the header names live in [`crate::wire::headers`]).

use crate::secrets::Secret;
use standardwebhooks::Webhook;
use std::fmt;

/// Signs delivery bodies with a `whsec_<base64 key>` secret.
pub struct Signer {
    webhook: Webhook,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer(***)")
    }
}

impl Signer {
    /// Never echoes the secret in its error.
    pub fn new(secret: &Secret) -> Result<Self, String> {
        let value = secret.expose().trim();
        let Some(key) = value.strip_prefix("whsec_") else {
            return Err("the signing secret must look like `whsec_<base64 key>`".to_owned());
        };
        let webhook = Webhook::new(key).map_err(|_| {
            "the signing secret's key after `whsec_` is not valid base64".to_owned()
        })?;
        Ok(Self { webhook })
    }

    /// `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &str) -> String {
        self.webhook
            .sign(id, timestamp, body.as_bytes())
            .expect("a &str body is always UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use hmac::{Hmac, Mac};

    #[test]
    fn matches_the_specs_published_example() {
        // From the Standard Webhooks specification's test vectors.
        let signer = Signer::new(&Secret::new(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".into(),
        ))
        .unwrap();
        assert_eq!(
            signer.sign(
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1_649_367_553,
                r#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
        let signer = Signer::new(&Secret::new(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        ))
        .unwrap();
        assert_eq!(
            signer.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn an_independent_hmac_verifies_the_signature() {
        let key = b"0123456789abcdef0123456789abcdef";
        let secret = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(key)
        );
        let sig =
            Signer::new(&Secret::new(secret))
                .unwrap()
                .sign("dlv_1", 1_700_000_000, "{\"a\":1}");
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
        mac.update(b"dlv_1.1700000000.{\"a\":1}");
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(sig, format!("v1,{expected}"));
    }

    #[test]
    fn bad_secrets_are_refused_without_echoing_them() {
        let err = Signer::new(&Secret::new("plainsecret".into())).unwrap_err();
        assert!(!err.contains("plainsecret"));
        let err = Signer::new(&Secret::new("whsec_!!!not-base64".into())).unwrap_err();
        assert!(!err.contains("not-base64"));
    }
}
