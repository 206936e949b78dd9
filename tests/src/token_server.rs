//! A fake OAuth2 token endpoint on 127.0.0.1: answers scripted responses in order, then
//! fresh tokens (`tok-1`, `tok-2`, ...), and records every request it saw.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
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
    seen: Vec<SeenRequest>,
    issued: u32,
    expires_in: i64,
}

#[derive(Debug, Clone)]
pub struct TokenServer {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl TokenServer {
    /// Starts the server; it stops when the test's runtime ends.
    pub async fn start(script: Vec<Scripted>) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            script: script.into(),
            expires_in: 3600,
            ..Inner::default()
        }));
        let state = inner.clone();
        let app = axum::Router::new().route(
            "/oauth2/token",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move { answer(&state, &headers, &body) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url: format!("http://{addr}/oauth2/token"),
            inner,
        }
    }

    pub fn seen(&self) -> Vec<SeenRequest> {
        self.inner.lock().expect("lock").seen.clone()
    }

    pub fn issued(&self) -> u32 {
        self.inner.lock().expect("lock").issued
    }
}

fn answer(state: &Mutex<Inner>, headers: &HeaderMap, body: &[u8]) -> Response {
    let mut inner = state.lock().expect("lock");
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    inner.seen.push(SeenRequest {
        authorization: header("authorization"),
        content_type: header("content-type"),
        body: String::from_utf8_lossy(body).into_owned(),
    });
    if let Some(s) = inner.script.pop_front() {
        let mut resp = (
            StatusCode::from_u16(s.status).expect("valid status"),
            s.body,
        )
            .into_response();
        if let Some(ra) = s.retry_after {
            resp.headers_mut()
                .insert("retry-after", ra.parse().expect("valid header"));
        }
        return resp;
    }
    inner.issued += 1;
    let body = serde_json::json!({"access_token": format!("tok-{}", inner.issued), "token_type": "Bearer", "expires_in": inner.expires_in});
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}
