//! Standard Webhooks signing: the `webhook-signature` value over `webhook-id`,
//! `webhook-timestamp` and the body (the header names live in [`crate::wire::headers`]).

use crate::secrets::Secret;
use standardwebhooks::Webhook;
use std::fmt;
use subtle::ConstantTimeEq;

/// Signs delivery bodies with a `whsec_<base64 key>` secret, or with two during a key
/// change (`{"current": "whsec_...", "next": "whsec_..."}`, see
/// [`crate::secrets::rotating_keys`]): then every delivery carries both signatures,
/// space-separated as Standard Webhooks specifies, and a receiver holding either key
/// verifies it.
pub struct Signer {
    webhooks: Vec<Webhook>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer(***)")
    }
}

impl Signer {
    /// Never echoes the secret in its error.
    pub fn new(secret: &Secret) -> Result<Self, String> {
        let keys = crate::secrets::rotating_keys(secret)?;
        let webhooks = keys
            .iter()
            .map(|value| {
                let Some(key) = value.strip_prefix("whsec_") else {
                    return Err("the signing secret must look like `whsec_<base64 key>`".to_owned());
                };
                Webhook::new(key).map_err(|_| {
                    "the signing secret's key after `whsec_` is not valid base64".to_owned()
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { webhooks })
    }

    /// `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`, one per key, separated
    /// by a space.
    pub fn sign(&self, id: &str, timestamp: i64, body: &str) -> String {
        let mut out = String::new();
        for webhook in &self.webhooks {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(
                &webhook
                    .sign(id, timestamp, body.as_bytes())
                    .expect("a &str body is always UTF-8"),
            );
        }
        out
    }

    /// Whether `signature` (a `webhook-signature` value: `v1,<sig>` entries separated by
    /// spaces) holds a signature of `id`, `timestamp` and `body` by one of the keys, and
    /// `timestamp` is within [`TOLERANCE_SECS`] of `now`. Every comparison takes the same
    /// time whatever matches.
    pub fn verify(&self, id: &str, timestamp: i64, body: &str, signature: &str, now: i64) -> bool {
        if (now - timestamp).abs() > TOLERANCE_SECS {
            return false;
        }
        let expected = self.sign(id, timestamp, body);
        let mut ok = subtle::Choice::from(0);
        for presented in signature.split(' ').filter(|s| !s.is_empty()) {
            for ours in expected.split(' ') {
                ok |= presented.as_bytes().ct_eq(ours.as_bytes());
            }
        }
        ok.into()
    }
}

/// How far a signed timestamp may be from now (the Standard Webhooks libraries' default).
pub const TOLERANCE_SECS: i64 = 300;

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
    fn during_a_key_change_both_signatures_are_sent() {
        let old = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let new = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let both = Signer::new(&Secret::new(format!(
            r#"{{"current": "{old}", "next": "{new}"}}"#
        )))
        .unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let sig = both.sign("dlv_1", now, "{}");
        let one = |k: &str| {
            Signer::new(&Secret::new(k.to_owned()))
                .unwrap()
                .sign("dlv_1", now, "{}")
        };
        assert_eq!(sig, format!("{} {}", one(old), one(new)));
        // Either key verifies it, as the standard's verifiers accept any listed signature.
        let mut headers = http::HeaderMap::new();
        headers.insert("webhook-id", "dlv_1".parse().unwrap());
        headers.insert("webhook-timestamp", now.to_string().parse().unwrap());
        headers.insert("webhook-signature", sig.parse().unwrap());
        for key in [old, new] {
            let webhook = Webhook::new(key.strip_prefix("whsec_").unwrap()).unwrap();
            assert!(webhook.verify(b"{}", &headers).is_ok());
        }
        // A bad key in either place refuses the whole secret.
        assert!(
            Signer::new(&Secret::new(format!(
                r#"{{"current": "{old}", "next": "nope"}}"#
            )))
            .is_err()
        );
    }

    #[test]
    fn verify_accepts_a_signature_by_either_key_and_refuses_the_rest() {
        let old = Signer::new(&Secret::new(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".into(),
        ))
        .unwrap();
        let new = Signer::new(&Secret::new(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        ))
        .unwrap();
        let both = Signer::new(&Secret::new(
            r#"{"current": "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "next": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}"#.into(),
        ))
        .unwrap();
        let now = 1_700_000_000;
        for signer in [&old, &new] {
            let sig = signer.sign("dlv_1", now, "{}");
            assert!(both.verify("dlv_1", now, "{}", &sig, now + 10));
            assert!(both.verify("dlv_1", now, "{}", &format!("v1,bm9wZQ== {sig}"), now));
            // Another id, timestamp or body, or a stale or future timestamp: refused.
            assert!(!both.verify("dlv_2", now, "{}", &sig, now));
            assert!(!both.verify("dlv_1", now + 1, "{}", &sig, now));
            assert!(!both.verify("dlv_1", now, "{ }", &sig, now));
            assert!(!both.verify("dlv_1", now, "{}", &sig, now + TOLERANCE_SECS + 1));
            assert!(!both.verify("dlv_1", now, "{}", &sig, now - TOLERANCE_SECS - 1));
        }
        let sig = new.sign("dlv_1", now, "{}");
        assert!(!old.verify("dlv_1", now, "{}", &sig, now));
        assert!(!old.verify("dlv_1", now, "{}", "", now));
    }

    #[test]
    fn bad_secrets_are_refused_without_echoing_them() {
        let err = Signer::new(&Secret::new("plainsecret".into())).unwrap_err();
        assert!(!err.contains("plainsecret"));
        let err = Signer::new(&Secret::new("whsec_!!!not-base64".into())).unwrap_err();
        assert!(!err.contains("not-base64"));
    }
}
