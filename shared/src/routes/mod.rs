//! The routes file (CONTRACT section 2): the loaded, validated model and route matching.
//!
//! Loading lives in [`load`]; it reports every problem of a file at once, collected in
//! [`diagnostics`] while [`section`] reads each TOML table.

pub mod cognigy;
pub mod condition;
mod diagnostics;
mod load;
mod section;

pub use cognigy::{CognigyEndpoint, CognigyTarget, Mode, Reply, Target};
pub use condition::Condition;
pub use diagnostics::{LoadError, LoadErrors};

use crate::breaker::BreakerSettings;
use crate::domain::{Answer, DeliveryJob, EventType, RouteName, TriggerEvent};
use crate::event::FieldError;
use crate::rate_limit::RateLimit;
use crate::render::{RenderError, Renderer, UrlShape};
use crate::retry::RetryPolicy;
use crate::wire::headers::AuthHeader;
use minijinja::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// A loaded routes file: settings, auth profiles, routes, and their compiled templates.
#[derive(Debug)]
pub struct Routes {
    pub ingest: Ingest,
    pub delivery: DeliverySettings,
    pub signing: Option<Signing>,
    pub auth: BTreeMap<String, AuthProfile>,
    /// `[cognigy.<name>]` endpoint profiles.
    pub cognigy: BTreeMap<String, CognigyEndpoint>,
    routes: Vec<Route>,
    index: HashMap<String, usize>,
    /// How many distinct paths the routes' conditions name, and how many distinct
    /// conditions they hold (see [`condition::Lookup`]).
    slots: (usize, usize),
    renderer: Renderer,
    path: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ingest {
    /// The `api_key` profile inbound requests must present; `None` is an open endpoint.
    pub auth: Option<String>,
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeliverySettings {
    pub allow_private_targets: bool,
    /// `circuit_breaker`: the default for every route.
    pub breaker: BreakerSettings,
    /// `max_queued_per_session`: the default for every ordered route.
    pub max_queued_per_session: u32,
    /// `rate_limit`: the default for every route (each route its own limit).
    pub rate_limit: Option<RateLimit>,
}

/// How many deliveries of one session an ordered route may hold queued by default.
pub const MAX_QUEUED_PER_SESSION: u32 = 1000;

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            allow_private_targets: false,
            breaker: BreakerSettings::default(),
            max_queued_per_session: MAX_QUEUED_PER_SESSION,
            rate_limit: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Signing {
    /// Secret id; its value is `whsec_<base64 key>`.
    pub secret: String,
}

/// An `[auth.<name>]` profile.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthProfile {
    /// Inbound: `X-API-Key` or `Authorization: ApiKey <key>`. Outbound: `X-API-Key: <key>`.
    ApiKey { secret: String },
    /// Outbound: `<header>: <prefix><secret value>`.
    Header {
        header: String,
        prefix: String,
        secret: String,
    },
    /// Outbound: `Authorization: Bearer <token>`, the token kept fresh by token-refresh.
    OAuth2(OAuth2Profile),
}

impl AuthProfile {
    /// The header this profile adds, with `secret` as its secret part.
    pub fn header<'a>(&'a self, secret: &'a str) -> AuthHeader<'a> {
        let (name, prefix) = match self {
            Self::ApiKey { .. } => ("x-api-key", ""),
            Self::Header { header, prefix, .. } => (header.as_str(), prefix.as_str()),
            Self::OAuth2(_) => ("authorization", "Bearer "),
        };
        AuthHeader {
            name,
            prefix,
            secret,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::ApiKey { .. } => "api_key",
            Self::Header { .. } => "header",
            Self::OAuth2(_) => "oauth2",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OAuth2Profile {
    pub token_url: Url,
    pub request: TokenRequestStyle,
    pub credentials_secret: String,
    pub token_secret: String,
    pub scope: Option<String>,
    /// Where `form` requests carry the client credentials (`json_basic` always uses Basic).
    pub client_auth: ClientAuth,
}

/// How a `form` token request presents the client credentials (RFC 6749 section 2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic base64(client_id:client_secret)` (the default).
    Basic,
    /// `client_id` and `client_secret` as form fields.
    Body,
}

/// How a client-credentials token request is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRequestStyle {
    /// RFC 6749 section 4.4: form body, client credentials in Basic auth.
    Form,
    /// The tutorial's style: Basic credentials, JSON body `{"grant_type":"client_credentials"}`.
    JsonBasic,
}

/// One `[[route]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: RouteName,
    pub target: Target,
    pub auth: Option<String>,
    pub timeout: Duration,
    pub max_payload_bytes: usize,
    pub retry: RetryPolicy,
    pub enrich: Option<Enrich>,
    pub triggers: Vec<Trigger>,
    /// The `[delivery]` breaker settings, with the route's own `circuit_breaker` over them.
    pub breaker: BreakerSettings,
    /// At most this many of the route's deliveries in flight per process.
    pub max_in_flight: Option<u32>,
    /// `reply`: the answer of a successful delivery goes into the Cognigy session.
    pub reply: Option<Reply>,
    /// `ordering = "session"`: one session's deliveries reach the target in the order
    /// their triggers were accepted (the FIFO queue).
    pub ordered: bool,
    /// An ordered route: at most this many of one session's deliveries queued (the
    /// embedded queue refuses the trigger past it; SQS cannot count them).
    pub max_queued_per_session: u32,
    /// `rate_limit` (else `[delivery]`'s): at most so many of the route's deliveries reach
    /// its target in any window.
    pub rate_limit: Option<RateLimit>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Enrich {
    pub auth: Option<String>,
    pub timeout: Duration,
    /// What the URL template's literal part fixes (origin, prefix).
    pub url: UrlShape,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub event_type: EventType,
    pub name: Option<String>,
    pub threshold: f64,
    pub negate: bool,
    /// `where`: every one must hold.
    pub conditions: Vec<Condition>,
}

impl Trigger {
    /// Type matches, name matches (if given), `score >= threshold`, and every `where`
    /// condition holds.
    pub fn holds(&self, event: &TriggerEvent) -> bool {
        // A lookup with no room keeps nothing: each condition reads the event itself.
        self.holds_in(&condition::Lookup::new(event, 0, 0))
    }

    /// As [`Self::holds`], each condition's value from `lookup`.
    #[inline]
    pub fn holds_in(&self, lookup: &condition::Lookup<'_>) -> bool {
        let event = lookup.event();
        self.event_type == event.event_type
            && self
                .name
                .as_deref()
                .is_none_or(|n| event.name.as_deref() == Some(n))
            && event.score >= self.threshold
            && self.conditions.iter().all(|c| c.holds_in(lookup))
    }

    /// The first reason the trigger does not hold for `event`; `None` when it holds.
    pub fn why_not(&self, event: &TriggerEvent) -> Option<String> {
        if self.event_type != event.event_type {
            return Some(format!(
                "event_type is {}, not {}",
                event.event_type.as_str(),
                self.event_type.as_str()
            ));
        }
        if let Some(want) = &self.name
            && event.name.as_deref() != Some(want.as_str())
        {
            let got = condition::Condition {
                path: condition::FieldPath::Name,
                slot: usize::MAX,
                id: usize::MAX,
                test: condition::Test::Equals(condition::Scalar::Str(want.clone())),
            };
            return got.why_not(event);
        }
        if event.score < self.threshold {
            return Some(format!(
                "score {} is below the threshold {}",
                event.score, self.threshold
            ));
        }
        self.conditions
            .iter()
            .find_map(|c| c.why_not(event).map(|why| format!("where {why}")))
    }
}

impl Route {
    /// Whether the route answers into the event's Cognigy session (a `cognigy` target or a
    /// `reply`): its events need a `user_id` and a `session_id`.
    pub fn answers_into_session(&self) -> bool {
        matches!(self.target, Target::Cognigy(_)) || self.reply.is_some()
    }

    /// At least one non-negated trigger holds and no negated one does; a route with only
    /// negated triggers fires when none of them holds.
    pub fn fires(&self, event: &TriggerEvent) -> bool {
        self.fires_when(|t| t.holds(event))
    }

    /// As [`Self::fires`], the conditions' values from `lookup`.
    #[inline]
    pub fn fires_in(&self, lookup: &condition::Lookup<'_>) -> bool {
        self.fires_when(|t| t.holds_in(lookup))
    }

    #[inline]
    fn fires_when(&self, holds: impl Fn(&Trigger) -> bool) -> bool {
        let (mut has_positive, mut positive_holds) = (false, false);
        for t in &self.triggers {
            if t.negate {
                if holds(t) {
                    return false;
                }
            } else {
                has_positive = true;
                positive_holds = positive_holds || holds(t);
            }
        }
        positive_holds || !has_positive
    }

    /// Whether the route fires for `event`, and why, trigger by trigger (`routes check
    /// --event`); agrees with [`Self::fires`].
    pub fn explain(&self, event: &TriggerEvent) -> (bool, Vec<String>) {
        let mut notes = Vec::new();
        let (mut has_positive, mut positive_holds, mut vetoed) = (false, false, false);
        for (i, t) in self.triggers.iter().enumerate() {
            let n = i + 1;
            let why = t.why_not(event);
            match (t.negate, why) {
                (true, None) => {
                    vetoed = true;
                    notes.push(format!(
                        "negated trigger {n} holds, so the route does not fire"
                    ));
                }
                (true, Some(why)) => {
                    notes.push(format!("negated trigger {n} does not hold ({why})"))
                }
                (false, None) => {
                    has_positive = true;
                    positive_holds = true;
                    notes.push(format!("trigger {n} holds"));
                }
                (false, Some(why)) => {
                    has_positive = true;
                    notes.push(format!("trigger {n} does not hold: {why}"));
                }
            }
        }
        if !has_positive && !vetoed {
            notes.push("no negated trigger holds".to_owned());
        }
        (!vetoed && (positive_holds || !has_positive), notes)
    }
}

/// The event as templates see it: every field of the schema is there, an absent optional
/// field as `none` (`data` as an empty object), so `{{ event.user_id | tojson }}` renders
/// `null` instead of failing; only names outside the schema are undefined.
fn template_event(event: &TriggerEvent) -> Value {
    let data = match &event.data {
        Some(d) => Value::from_serialize(d),
        None => Value::from(std::collections::BTreeMap::<String, Value>::new()),
    };
    minijinja::context! {
        id => event.id.as_str(),
        event_type => Value::from_serialize(event.event_type),
        name => event.name.as_deref(),
        score => event.score,
        user_id => event.user_id.as_deref(),
        session_id => event.session_id.as_deref(),
        data => data,
    }
}

fn payload_template(route: &str) -> String {
    format!("route:{route}")
}

fn enrich_template(route: &str) -> String {
    format!("enrich:{route}")
}

pub(crate) fn reply_template(route: &str) -> String {
    format!("reply:{route}")
}

pub(crate) fn on_failure_template(route: &str) -> String {
    format!("reply-failure:{route}")
}

impl Routes {
    /// Loads and validates a routes file; `template_file`s resolve relative to it.
    pub fn load(path: &Path) -> Result<Self, LoadErrors> {
        load::load(path)
    }

    /// Parses routes from text, as if read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, LoadErrors> {
        load::parse(text, path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn get(&self, name: &str) -> Option<&Route> {
        self.index.get(name).map(|&i| &self.routes[i])
    }

    /// The routes that fire for `event`, in file order.
    pub fn matching<'a, 'e>(
        &'a self,
        event: &'e TriggerEvent,
    ) -> impl Iterator<Item = &'a Route> + use<'a, 'e> {
        let lookup = condition::Lookup::new(event, self.slots.0, self.slots.1);
        self.routes.iter().filter(move |r| r.fires_in(&lookup))
    }

    /// The rate limits one request of `route` is under, by name: the route's own (not for
    /// a reply job) and its Cognigy endpoint's (the route's target, or for a reply job its
    /// reply's), which every route naming the endpoint shares.
    pub fn rate_limits(&self, route: &Route, reply_job: bool) -> Vec<(String, RateLimit)> {
        let mut out = Vec::new();
        let endpoint = match (&route.target, &route.reply) {
            (_, Some(reply)) if reply_job => Some(&reply.to.endpoint),
            (Target::Cognigy(to), _) if !reply_job => Some(&to.endpoint),
            _ => None,
        };
        if let (Some(limit), false) = (route.rate_limit, reply_job) {
            out.push((format!("route:{}", route.name), limit));
        }
        if let Some(limit) = endpoint.and_then(|e| Some((e, self.cognigy.get(e)?.rate_limit?))) {
            out.push((format!("cognigy:{}", limit.0), limit.1));
        }
        out
    }

    /// The fields `event` lacks for the routes that fire for it: a route answering into
    /// the Cognigy session needs `user_id` and `session_id` (the answer would have nowhere
    /// to go). Each field once, naming the routes that need it.
    pub fn missing_fields(fired: &[&Route], event: &TriggerEvent) -> Vec<FieldError> {
        let names = |keep: fn(&Route) -> bool| -> Vec<String> {
            fired
                .iter()
                .filter(|r| keep(r))
                .map(|r| format!("`{}`", r.name))
                .collect()
        };
        let mut out = Vec::new();
        let ordered = names(|r| r.ordered);
        if !ordered.is_empty() && event.session_key().is_none() {
            out.push(FieldError {
                field: "session_id".to_owned(),
                reason: format!(
                    "or user_id is required: {} deliver{} in session order, and the event names no session",
                    ordered.join(", "),
                    if ordered.len() == 1 { "s" } else { "" }
                ),
            });
        }
        let needing = names(Route::answers_into_session);
        if needing.is_empty() {
            return out;
        }
        let routes = format!(
            "route{} {} answer{} into the Cognigy session",
            if needing.len() == 1 { "" } else { "s" },
            needing.join(", "),
            if needing.len() == 1 { "s" } else { "" },
        );
        for (field, value) in [
            ("user_id", &event.user_id),
            ("session_id", &event.session_id),
        ] {
            if out.iter().any(|e| e.field == field) {
                continue;
            }
            let reason = match crate::wire::cognigy::check_id(value.as_deref()) {
                Ok(_) => continue,
                Err(_) if value.as_deref().is_none_or(str::is_empty) => {
                    format!("is required: {routes}")
                }
                Err(why) => format!("{why}: {routes}"),
            };
            out.push(FieldError {
                field: field.to_owned(),
                reason,
            });
        }
        out
    }

    /// Whether deliveries may go to private addresses (file setting; the environment's
    /// `ALLOW_PRIVATE_TARGETS` is ORed in by the caller).
    pub fn allow_private_targets(&self) -> bool {
        self.delivery.allow_private_targets
    }

    /// Every secret id the file names, for start-up checks and infrastructure.
    pub fn secret_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.signing.iter().map(|s| s.secret.as_str()).collect();
        for p in self.auth.values() {
            match p {
                AuthProfile::ApiKey { secret } | AuthProfile::Header { secret, .. } => {
                    ids.push(secret)
                }
                AuthProfile::OAuth2(o) => {
                    ids.push(&o.credentials_secret);
                    ids.push(&o.token_secret);
                }
            }
        }
        ids.extend(self.cognigy.values().map(|c| c.url_token_secret.as_str()));
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    pub fn oauth2_profiles(&self) -> impl Iterator<Item = (&str, &OAuth2Profile)> {
        self.auth.iter().filter_map(|(name, p)| match p {
            AuthProfile::OAuth2(o) => Some((name.as_str(), o)),
            _ => None,
        })
    }

    /// The payload template's context for one attempt of a job.
    pub fn context(
        job: &DeliveryJob,
        attempt: u32,
        now: time::OffsetDateTime,
        external: Option<&serde_json::Value>,
    ) -> Value {
        let route = minijinja::context! { name => job.route.as_str() };
        let delivery = minijinja::context! { id => job.delivery_id.as_str(), attempt => attempt };
        let mut ctx = minijinja::context! {
            event => template_event(&job.event),
            route => route,
            delivery => delivery,
            now => crate::time_fmt::rfc3339(now),
        };
        if let Some(external) = external {
            ctx = minijinja::context! { external => Value::from_serialize(external), ..ctx };
        }
        ctx
    }

    /// Renders a route's payload: JSON, at most its `max_payload_kb`.
    pub fn render_payload(&self, route: &Route, ctx: &Value) -> Result<String, RenderError> {
        self.renderer.render_json(
            &payload_template(route.name.as_str()),
            ctx,
            route.max_payload_bytes,
        )
    }

    /// The payload template's context for a reply job: `response` (the parent's answer)
    /// or `failure` (why it was dead-lettered) besides the usual names.
    pub fn reply_context(job: &DeliveryJob, attempt: u32, now: time::OffsetDateTime) -> Value {
        let ctx = Self::context(job, attempt, now, None);
        match job.reply.as_ref().map(|r| &r.answer) {
            Some(Answer::Response { status, json, text }) => {
                let response = minijinja::context! {
                    status => status,
                    json => json.as_ref().map(Value::from_serialize),
                    text => text.as_deref(),
                };
                minijinja::context! { response => response, ..ctx }
            }
            Some(Answer::Failure {
                failure,
                attempts,
                last_status,
                last_error,
            }) => {
                let failure = minijinja::context! {
                    reason => failure,
                    attempts => attempts,
                    last_status => last_status,
                    last_error => last_error,
                };
                minijinja::context! { failure => failure, ..ctx }
            }
            None => ctx,
        }
    }

    /// Renders a reply job's template: `reply.template` for an answer, `on_failure` for a
    /// dead-lettered parent.
    pub fn render_reply(
        &self,
        route: &Route,
        job: &DeliveryJob,
        ctx: &Value,
    ) -> Result<String, RenderError> {
        let name = match job.reply.as_ref().map(|r| &r.answer) {
            Some(Answer::Failure { .. }) => on_failure_template(route.name.as_str()),
            _ => reply_template(route.name.as_str()),
        };
        self.renderer
            .render_json(&name, ctx, crate::wire::cognigy::MAX_BODY_BYTES)
    }

    /// Renders a route's enrich URL and checks it keeps the template's origin and
    /// literal prefix (see [`crate::render::url`]).
    pub fn render_enrich_url(&self, route: &Route, ctx: &Value) -> Result<Url, RenderError> {
        let Some(enrich) = &route.enrich else {
            return Err(RenderError::Template(format!(
                "route `{}` has no enrich lookup",
                route.name
            )));
        };
        self.renderer
            .render_url(&enrich_template(route.name.as_str()), ctx, &enrich.url)
    }
}

#[cfg(test)]
mod tests;
