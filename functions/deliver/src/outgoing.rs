//! What an attempt sends, and where: the route's payload (after its enrich lookup) to its
//! `target_url`; or, into a Cognigy session, `{userId, sessionId, text, data}` to the
//! endpoint's inject/notify URL (its URL token read from the secret store); or, for a
//! reply job, the reply template (or `on_failure`) rendered with the parent's answer.

use crate::deliverer::Deliverer;
use crate::http::{self, Keep};
use crate::prepare::Ready;
use reqwest::Method;
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use router_core::domain::DeliveryJob;
use router_core::render::RenderError;
use router_core::retry::{Attempted, Outcome, Resend, Verdict, classify};
use router_core::routes::{CognigyTarget, Enrich, Route, Routes, Target};
use router_core::wire::cognigy;
use std::time::Duration;
use time::OffsetDateTime;
use url::Url;

/// One request to make.
#[derive(Debug)]
pub struct Outgoing<'r> {
    pub body: String,
    pub url: Url,
    pub timeout: Duration,
    /// The auth profile whose header it carries.
    pub auth: Option<&'r str>,
    /// Keep the 2xx answer for the route's reply.
    pub capture: bool,
}

fn render_failure(e: RenderError) -> Attempted {
    match e {
        e @ RenderError::TooLarge { .. } => Attempted::new(Outcome::TooLarge, e.to_string()),
        e => Attempted::new(Outcome::Render, e.to_string()),
    }
}

impl Deliverer {
    /// The request of a ready message, or what ends its attempt before one is made.
    pub(crate) async fn outgoing<'r>(
        &self,
        ready: &Ready<'r>,
        now: OffsetDateTime,
    ) -> Result<Outgoing<'r>, Attempted> {
        let (job, route, attempt) = (&ready.job, ready.route, ready.attempt);
        if job.reply.is_some() {
            let Some(reply) = &route.reply else {
                let error = format!("route `{}` has no `reply` any more", route.name);
                return Err(Attempted::new(Outcome::Render, error));
            };
            let ctx = Routes::reply_context(job, attempt, now);
            let rendered = self
                .routes
                .render_reply(route, job, &ctx)
                .map_err(render_failure)?;
            return self.to_session(job, &reply.to, &rendered, None).await;
        }
        let external = match &route.enrich {
            None => None,
            Some(enrich) => Some(self.enrich(job, route, enrich, attempt, now).await?),
        };
        let ctx = Routes::context(job, attempt, now, external.as_ref());
        let rendered = self
            .routes
            .render_payload(route, &ctx)
            .map_err(render_failure)?;
        let url = match &route.target {
            Target::Url(url) => url.clone(),
            Target::Router(path) => {
                let url = self.router_base.as_ref().and_then(|b| b.join(path).ok());
                url.ok_or_else(|| {
                    let error = format!(
                        "route `{}` targets {path} on this router, whose address is unknown (ROUTER_BASE_URL)",
                        route.name
                    );
                    Attempted::new(Outcome::Render, error)
                })?
            }
            Target::Cognigy(to) => {
                return self
                    .to_session(job, to, &rendered, Some(route.timeout))
                    .await;
            }
        };
        Ok(Outgoing {
            body: rendered,
            url,
            timeout: route.timeout,
            auth: route.auth.as_deref(),
            capture: route.reply.is_some(),
        })
    }

    /// A request into the event's Cognigy session: the body checked against Cognigy's
    /// limits, the URL with the endpoint's token. The token never reaches an error text.
    async fn to_session<'r>(
        &self,
        job: &DeliveryJob,
        to: &CognigyTarget,
        rendered: &str,
        timeout: Option<Duration>,
    ) -> Result<Outgoing<'r>, Attempted> {
        let event = &job.event;
        let mark = cognigy::Injected {
            route: job.route.as_str(),
            delivery_id: &job.delivery_id,
        };
        let body = cognigy::body(
            event.user_id.as_deref(),
            event.session_id.as_deref(),
            rendered,
            mark,
        )
        .map_err(|e| Attempted::new(Outcome::Render, e))?;
        let Some(endpoint) = self.routes.cognigy.get(&to.endpoint) else {
            let error = format!(
                "Cognigy endpoint `{}` is not in the routes file",
                to.endpoint
            );
            return Err(Attempted::new(Outcome::Render, error));
        };
        let token = self
            .credentials
            .secret(&endpoint.url_token_secret)
            .await
            .map_err(|e| {
                Attempted::new(
                    Outcome::Credentials,
                    format!("Cognigy endpoint `{}`: {e}", to.endpoint),
                )
            })?;
        let url =
            cognigy::endpoint_url(&endpoint.base_url, to.mode, token.expose()).map_err(|e| {
                Attempted::new(
                    Outcome::Credentials,
                    format!(
                        "Cognigy endpoint `{}` (secret `{}`): {e}",
                        to.endpoint, endpoint.url_token_secret
                    ),
                )
            })?;
        Ok(Outgoing {
            body,
            url,
            timeout: timeout.unwrap_or(endpoint.timeout),
            auth: None,
            capture: false,
        })
    }

    /// The `enrich` lookup: its JSON answer, or what ends this attempt.
    async fn enrich(
        &self,
        job: &DeliveryJob,
        route: &Route,
        enrich: &Enrich,
        attempt: u32,
        now: OffsetDateTime,
    ) -> Result<serde_json::Value, Attempted> {
        let ctx = Routes::context(job, attempt, now, None);
        let url = self
            .routes
            .render_enrich_url(route, &ctx)
            .map_err(|e| Attempted::new(Outcome::Render, format!("enrich url: {e}")))?;
        let mut headers = HeaderMap::with_capacity(4);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let request = http::Request {
            method: Method::GET,
            url: &url,
            headers,
            body: None,
            timeout: enrich.timeout,
            keep: Keep::Whole,
        };
        let sent = self
            .send(route, enrich.auth.as_deref(), request, enrich.url.prefix())
            .await;
        if classify(&sent.attempted.outcome, Resend::Spent) != Verdict::Delivered {
            return Err(sent.attempted.prefixed("enrich lookup: "));
        }
        match sent.body {
            Some(body) => serde_json::from_slice(&body).map_err(|_| {
                Attempted::new(Outcome::Render, "enrich lookup: the answer is not JSON")
            }),
            None => Err(Attempted::new(
                Outcome::Render,
                format!(
                    "enrich lookup: answered {} without a body",
                    sent.attempted.status.unwrap_or_default()
                ),
            )),
        }
    }
}
