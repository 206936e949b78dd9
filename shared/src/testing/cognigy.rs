//! A fake Cognigy endpoint on the scripted server: `POST /inject/{token}` and
//! `/notify/{token}` under its base URL, enforcing what Cognigy documents (the URL token,
//! a JSON body with `userId` and `sessionId` strings of at most 256 characters, `text` of
//! at most 10,000, `data` an object, at most 60 kB) and recording what it accepted.

use super::http::{Canned, Recorded, TestServer};

/// One request Cognigy accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Injected {
    /// `inject` or `notify`.
    pub mode: String,
    pub body: serde_json::Value,
}

#[derive(Debug, Clone)]
pub struct FakeCognigy {
    pub server: TestServer,
    pub token: String,
    /// While false, every request is answered 503 (an outage).
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    accepted: std::sync::Arc<std::sync::Mutex<Vec<Injected>>>,
}

fn check(req: &Recorded, token: &str) -> Result<(), (u16, &'static str)> {
    let path = req.path_only();
    let Some((mode, got)) = path.trim_start_matches('/').split_once('/') else {
        return Err((404, "no such endpoint"));
    };
    if req.method != "POST" || !matches!(mode, "inject" | "notify") {
        return Err((404, "no such endpoint"));
    }
    if got != token {
        return Err((404, "unknown URL token"));
    }
    crate::wire::cognigy::check_body(&req.body)
        .map_err(|_| (400, "the body breaks Cognigy's rules"))?;
    Ok(())
}

impl FakeCognigy {
    pub async fn start(token: &str) -> Self {
        let expected = token.to_owned();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let available = up.clone();
        let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = accepted.clone();
        let server = TestServer::start(move |req, _| {
            if !available.load(std::sync::atomic::Ordering::SeqCst) {
                return Canned::status(503);
            }
            match check(req, &expected) {
                Ok(()) => {
                    crate::sync::lock(&log).push(Injected {
                        mode: req
                            .path_only()
                            .trim_start_matches('/')
                            .split('/')
                            .next()
                            .unwrap_or_default()
                            .to_owned(),
                        body: req.json(),
                    });
                    Canned::json("{}")
                }
                Err((status, why)) => Canned::status(status).body(why),
            }
        })
        .await;
        Self {
            server,
            token: token.to_owned(),
            up,
            accepted,
        }
    }

    /// Down (503 to everything) or up again.
    pub fn set_available(&self, up: bool) {
        self.up.store(up, std::sync::atomic::Ordering::SeqCst);
    }

    /// The base URL of the endpoint profile (`[cognigy.<name>] base_url`).
    pub fn base_url(&self) -> String {
        self.server.base()
    }

    /// What it accepted, in order.
    pub fn accepted(&self) -> Vec<Injected> {
        crate::sync::lock(&self.accepted).clone()
    }

    /// Every request, refused ones included.
    pub fn requests(&self) -> Vec<Recorded> {
        self.server.requests()
    }
}
