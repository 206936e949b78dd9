//! The headers of a delivery (CONTRACT section 4), as deliver sends them and as
//! `routerctl render` shows them (signature and credential masked): one function for both.

/// `user-agent` of every request the router makes.
pub const USER_AGENT: &str = concat!("cognigy-webhook-router/", env!("CARGO_PKG_VERSION"));
pub const CONTENT_TYPE_JSON: &str = "application/json";
pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// How a masked credential is shown.
pub const MASK: &str = "***";

/// A route's auth header: its name, the part of its value that is not secret (`Bearer `),
/// and the secret part (empty where only the masked form is wanted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthHeader<'a> {
    pub name: &'a str,
    pub prefix: &'a str,
    pub secret: &'a str,
}

/// Everything that goes into a delivery's headers.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryHeaders<'a> {
    pub delivery_id: &'a str,
    /// Unix seconds.
    pub timestamp: i64,
    /// `v1,<base64>`, when the routes file has `[signing]`.
    pub signature: Option<&'a str>,
    pub auth: Option<AuthHeader<'a>>,
}

impl DeliveryHeaders<'_> {
    /// The headers as sent, in order (names lowercase).
    pub fn to_send(&self) -> Vec<(String, String)> {
        self.headers(false)
    }

    /// The same headers for display: the signature as `v1,***`, the credential as
    /// `<prefix>***`.
    pub fn to_show(&self) -> Vec<(String, String)> {
        self.headers(true)
    }

    fn headers(&self, masked: bool) -> Vec<(String, String)> {
        let mut out = vec![
            ("content-type".to_owned(), CONTENT_TYPE_JSON.to_owned()),
            ("user-agent".to_owned(), USER_AGENT.to_owned()),
            (HEADER_ID.to_owned(), self.delivery_id.to_owned()),
            (HEADER_TIMESTAMP.to_owned(), self.timestamp.to_string()),
        ];
        if let Some(sig) = self.signature {
            let shown = if masked {
                format!("v1,{MASK}")
            } else {
                sig.to_owned()
            };
            out.push((HEADER_SIGNATURE.to_owned(), shown));
        }
        if let Some(a) = self.auth {
            let secret = if masked { MASK } else { a.secret };
            out.push((a.name.to_ascii_lowercase(), format!("{}{secret}", a.prefix)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sent_and_shown_headers_differ_only_in_the_secrets() {
        let h = DeliveryHeaders {
            delivery_id: "dlv_1",
            timestamp: 1_700_000_000,
            signature: Some("v1,abc="),
            auth: Some(AuthHeader {
                name: "Authorization",
                prefix: "Bearer ",
                secret: "tok-123",
            }),
        };
        let sent = h.to_send();
        let shown = h.to_show();
        assert_eq!(sent.len(), 6);
        assert_eq!(sent[2], ("webhook-id".into(), "dlv_1".into()));
        assert_eq!(sent[3], ("webhook-timestamp".into(), "1700000000".into()));
        assert_eq!(sent[4].1, "v1,abc=");
        assert_eq!(sent[5], ("authorization".into(), "Bearer tok-123".into()));
        assert_eq!(shown[4].1, "v1,***");
        assert_eq!(shown[5].1, "Bearer ***");
        assert_eq!(&sent[..4], &shown[..4]);
        assert!(!format!("{shown:?}").contains("tok-123"));
        assert!(USER_AGENT.starts_with("cognigy-webhook-router/"));
    }
}
