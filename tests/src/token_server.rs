//! A fake OAuth2 token endpoint on the one scripted server
//! ([`router_core::testing::http::TestServer`]): answers scripted responses in order, then
//! fresh tokens (`tok-1`, `tok-2`, ...), and records every request it saw.

use router_core::sync::lock;
use router_core::testing::http::{Canned, TestServer};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// One scripted answer: status, `Retry-After` (if any) and body.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: u16,
    pub retry_after: Option<&'static str>,
    pub body: String,
}

impl Scripted {
    pub fn status(status: u16, body: &str) -> Self {
        Self {
            status,
            retry_after: None,
            body: body.to_owned(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
}

#[derive(Debug, Default)]
struct Inner {
    script: VecDeque<Scripted>,
    issued: u32,
}

#[derive(Debug, Clone)]
pub struct TokenServer {
    pub url: String,
    server: TestServer,
    inner: Arc<Mutex<Inner>>,
}

/// How long the tokens it issues live.
const EXPIRES_IN: i64 = 3600;

impl TokenServer {
    /// Starts the server; it stops when the test's runtime ends.
    pub async fn start(script: Vec<Scripted>) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            script: script.into(),
            issued: 0,
        }));
        let state = inner.clone();
        let server = TestServer::start(move |_, _| {
            let mut inner = lock(&state);
            if let Some(s) = inner.script.pop_front() {
                let reply = Canned::status(s.status).body(&s.body);
                return match s.retry_after {
                    Some(ra) => reply.header("retry-after", ra),
                    None => reply,
                };
            }
            inner.issued += 1;
            Canned::json(
                &serde_json::json!({
                    "access_token": format!("tok-{}", inner.issued),
                    "token_type": "Bearer",
                    "expires_in": EXPIRES_IN,
                })
                .to_string(),
            )
        })
        .await;
        Self {
            url: server.url("/oauth2/token"),
            server,
            inner,
        }
    }

    pub fn seen(&self) -> Vec<SeenRequest> {
        self.server
            .requests()
            .iter()
            .map(|r| SeenRequest {
                authorization: r.header("authorization").map(str::to_owned),
                content_type: r.header("content-type").map(str::to_owned),
                body: r.body.clone(),
            })
            .collect()
    }

    pub fn issued(&self) -> u32 {
        lock(&self.inner).issued
    }
}
