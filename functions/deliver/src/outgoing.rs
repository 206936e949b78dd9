//! The request a delivery makes, in two steps. [`plan`] (and [`plan_reply`] for a reply job)
//! decides from the job alone, without I/O, what is sent and where: the rendered payload, or
//! the body into a Cognigy session checked against Cognigy's limits; `routerctl render`
//! shows exactly this. [`outgoing`] then does what needs the network or a secret: the
//! `enrich` lookup before the plan, and after it the URL (the router's own base URL, a
//! Cognigy endpoint's URL token).

use crate::http::{self, Keep};
use crate::prepare::Ready;
use crate::sender::Sender;
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

/// Where a planned request goes, before any secret is read.
#[derive(Debug, Clone, Copy)]
pub enum Recipient<'r> {
    Url(&'r Url),
    /// A path on the router itself.
    Router(&'r str),
    /// The event's Cognigy session, through one of the routes file's endpoints.
    Session(&'r CognigyTarget),
}

/// What a delivery sends, decided from the job alone.
#[derive(Debug)]
pub struct Plan<'r> {
    pub body: String,
    pub to: Recipient<'r>,
    /// The route's timeout; `None` for a reply, which takes its endpoint's.
    pub timeout: Option<Duration>,
    /// The auth profile whose header it carries (never on a request into a session).
    pub auth: Option<&'r str>,
    /// Keep the 2xx answer for the route's reply.
    pub capture: bool,
}

/// Why a plan cannot be made: the request would be refused as it stands, so this attempt
/// ends before one is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// The template (or the answer it reads) does not render.
    Render(String),
    /// It renders larger than the route allows.
    TooLarge(String),
    /// It renders, but not to a body Cognigy takes (its limits, its shape).
    Session(String),
    /// The route lost its `reply` since the reply job was queued.
    NoReply(String),
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Render(e) | Self::TooLarge(e) | Self::Session(e) | Self::NoReply(e) => {
                f.write_str(e)
            }
        }
    }
}

impl From<PlanError> for Attempted {
    fn from(e: PlanError) -> Self {
        match e {
            PlanError::TooLarge(e) => Attempted::new(Outcome::TooLarge, e),
            PlanError::Render(e) | PlanError::Session(e) | PlanError::NoReply(e) => {
                Attempted::new(Outcome::Render, e)
            }
        }
    }
}

fn rendering(e: RenderError) -> PlanError {
    match e {
        e @ RenderError::TooLarge { .. } => PlanError::TooLarge(e.to_string()),
        e => PlanError::Render(e.to_string()),
    }
}

/// The request of a delivery job (not a reply job) at `attempt`, `external` being its
/// enrich lookup's answer (when the route has one).
pub fn plan<'r>(
    routes: &Routes,
    route: &'r Route,
    job: &DeliveryJob,
    attempt: u32,
    now: OffsetDateTime,
    external: Option<&serde_json::Value>,
) -> Result<Plan<'r>, PlanError> {
    let ctx = Routes::context(job, attempt, now, external);
    let rendered = routes.render_payload(route, &ctx).map_err(rendering)?;
    let (body, to) = match &route.target {
        Target::Url(url) => (rendered, Recipient::Url(url)),
        Target::Router(path) => (rendered, Recipient::Router(path)),
        Target::Cognigy(to) => (into_session(job, &rendered)?, Recipient::Session(to)),
    };
    Ok(Plan {
        body,
        timeout: Some(route.timeout),
        auth: match to {
            Recipient::Session(_) => None,
            _ => route.auth.as_deref(),
        },
        capture: route.reply.is_some() && !matches!(to, Recipient::Session(_)),
        to,
    })
}

/// The request of a reply job: its template rendered from the answer, into the session.
pub fn plan_reply<'r>(
    routes: &Routes,
    route: &'r Route,
    job: &DeliveryJob,
    attempt: u32,
    now: OffsetDateTime,
) -> Result<Plan<'r>, PlanError> {
    let Some(reply) = &route.reply else {
        let error = format!("route `{}` has no `reply` any more", route.name);
        return Err(PlanError::NoReply(error));
    };
    let ctx = Routes::reply_context(job, attempt, now);
    let rendered = routes.render_reply(route, job, &ctx).map_err(rendering)?;
    Ok(Plan {
        body: into_session(job, &rendered)?,
        to: Recipient::Session(&reply.to),
        timeout: None,
        auth: None,
        capture: false,
    })
}

/// A rendered template as the body into the job's session: Cognigy's limits checked, the
/// ids from the event (never from a template), the router's mark in `data`.
fn into_session(job: &DeliveryJob, rendered: &str) -> Result<String, PlanError> {
    let mark = cognigy::Injected {
        route: job.route.as_str(),
        delivery_id: &job.delivery_id,
    };
    cognigy::body(
        job.event.user_id.as_deref(),
        job.event.session_id.as_deref(),
        rendered,
        mark,
    )
    .map_err(PlanError::Session)
}

/// The request of a ready message, or what ends its attempt before one is made.
pub async fn outgoing<'r>(
    sender: &Sender,
    ready: &Ready<'r>,
    now: OffsetDateTime,
) -> Result<Outgoing<'r>, Attempted> {
    let (job, route, attempt) = (&ready.job, ready.route, ready.attempt);
    let plan = if job.reply.is_some() {
        plan_reply(&sender.routes, route, job, attempt, now)?
    } else {
        let external = match &route.enrich {
            None => None,
            Some(enrich) => Some(lookup(sender, job, route, enrich, attempt, now).await?),
        };
        plan(&sender.routes, route, job, attempt, now, external.as_ref())?
    };
    let (url, timeout) = match plan.to {
        Recipient::Url(url) => (url.clone(), plan.timeout),
        Recipient::Router(path) => {
            let url = sender.router_base.as_ref().and_then(|b| b.join(path).ok());
            let url = url.ok_or_else(|| {
                let error = format!(
                    "route `{}` targets {path} on this router, whose address is unknown (ROUTER_BASE_URL)",
                    route.name
                );
                Attempted::new(Outcome::Render, error)
            })?;
            (url, plan.timeout)
        }
        Recipient::Session(to) => session_url(sender, to, plan.timeout).await?,
    };
    Ok(Outgoing {
        body: plan.body,
        url,
        timeout: timeout.unwrap_or(route.timeout),
        auth: plan.auth,
        capture: plan.capture,
    })
}

/// A Cognigy endpoint's URL with its token, and the request's timeout (`timeout`, else the
/// endpoint's). The token never reaches an error text.
async fn session_url(
    sender: &Sender,
    to: &CognigyTarget,
    timeout: Option<Duration>,
) -> Result<(Url, Option<Duration>), Attempted> {
    let Some(endpoint) = sender.routes.cognigy.get(&to.endpoint) else {
        let error = format!(
            "Cognigy endpoint `{}` is not in the routes file",
            to.endpoint
        );
        return Err(Attempted::new(Outcome::Render, error));
    };
    let token = sender
        .credentials
        .secret(&endpoint.url_token_secret)
        .await
        .map_err(|e| {
            Attempted::new(
                Outcome::Credentials,
                format!("Cognigy endpoint `{}`: {e}", to.endpoint),
            )
        })?;
    let url = cognigy::endpoint_url(&endpoint.base_url, to.mode, token.expose()).map_err(|e| {
        Attempted::new(
            Outcome::Credentials,
            format!(
                "Cognigy endpoint `{}` (secret `{}`): {e}",
                to.endpoint, endpoint.url_token_secret
            ),
        )
    })?;
    Ok((url, Some(timeout.unwrap_or(endpoint.timeout))))
}

/// The `enrich` lookup: its JSON answer, or what ends this attempt.
async fn lookup(
    sender: &Sender,
    job: &DeliveryJob,
    route: &Route,
    enrich: &Enrich,
    attempt: u32,
    now: OffsetDateTime,
) -> Result<serde_json::Value, Attempted> {
    let ctx = Routes::context(job, attempt, now, None);
    let url = sender
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
    let sent = sender
        // A lookup is not a delivery: the target's rate limit does not count it.
        .send(
            route,
            enrich.auth.as_deref(),
            request,
            enrich.url.prefix(),
            &[],
        )
        .await;
    if classify(&sent.attempted.outcome, Resend::Spent) != Verdict::Delivered {
        return Err(sent.attempted.prefixed("enrich lookup: "));
    }
    match sent.body {
        Some(body) => serde_json::from_slice(&body)
            .map_err(|_| Attempted::new(Outcome::Render, "enrich lookup: the answer is not JSON")),
        None => Err(Attempted::new(
            Outcome::Render,
            format!(
                "enrich lookup: answered {} without a body",
                sent.attempted.status.unwrap_or_default()
            ),
        )),
    }
}
