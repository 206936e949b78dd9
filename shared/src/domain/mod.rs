//! Domain types: the trigger event, the delivery job on the queue, and the newtypes that parse.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::fmt;

/// A route's name: 3..=128 characters of `[a-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RouteName(String);

impl RouteName {
    pub fn parse(s: &str) -> Result<Self, String> {
        if !(3..=128).contains(&s.len()) {
            return Err(format!(
                "must be 3 to 128 characters long, got {} (`{s}`)",
                s.len()
            ));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
        {
            return Err(format!(
                "may only contain a-z, 0-9, `-` and `_`; `{s}` contains {c:?}"
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RouteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An event id: `[A-Za-z0-9._:-]{1,128}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventId(String);

impl EventId {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > 128 {
            return Err(format!("must be 1 to 128 characters long, got {}", s.len()));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
        {
            return Err(format!(
                "may only contain A-Z, a-z, 0-9, `.`, `_`, `:` and `-`; found {c:?}"
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// A fresh random id, used when neither the body nor `Idempotency-Key` names one.
    pub fn generate() -> Self {
        Self(format!("evt_{}", uuid::Uuid::new_v4().simple()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<EventId> for String {
    fn from(id: EventId) -> String {
        id.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What happened in the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Intent,
    Entity,
    FlowStart,
    FlowEnd,
    Custom,
}

impl EventType {
    pub const ALL: [&'static str; 5] = ["intent", "entity", "flow_start", "flow_end", "custom"];

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "intent" => Self::Intent,
            "entity" => Self::Entity,
            "flow_start" => Self::FlowStart,
            "flow_end" => Self::FlowEnd,
            "custom" => Self::Custom,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Intent => "intent",
            Self::Entity => "entity",
            Self::FlowStart => "flow_start",
            Self::FlowEnd => "flow_end",
            Self::Custom => "custom",
        }
    }
}

/// The trigger event (CONTRACT section 3), validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerEvent {
    pub id: EventId,
    pub event_type: EventType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub score: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Map<String, Value>>,
}

impl TriggerEvent {
    /// What orders a session's deliveries: `session_id`, else `user_id` (empty counts as
    /// absent).
    pub fn session_key(&self) -> Option<&str> {
        self.session().map(|(_, v)| v)
    }

    /// The session key with the field it came from: a `user_id` of "x" and a `session_id`
    /// of "x" are different sessions.
    pub fn session(&self) -> Option<(&'static str, &str)> {
        [("session_id", &self.session_id), ("user_id", &self.user_id)]
            .into_iter()
            .filter_map(|(field, v)| v.as_deref().map(|v| (field, v)))
            .find(|(_, v)| !v.is_empty())
    }
}

/// The stable id of one (event, route) delivery; it is the `webhook-id` header.
pub fn delivery_id(event_id: &EventId, route: &RouteName) -> String {
    let mut h = Sha256::new();
    h.update(event_id.as_str().as_bytes());
    h.update([0u8]);
    h.update(route.as_str().as_bytes());
    let digest = h.finalize();
    format!("dlv_{}", hex::encode(&digest[..16]))
}

/// A delivery id derived from another (`kind` tells the derived ones of one apart).
fn derived_id(parent: &str, kind: &str) -> String {
    let mut h = Sha256::new();
    h.update(parent.as_bytes());
    h.update([0u8]);
    h.update(kind.as_bytes());
    format!("dlv_{}", hex::encode(&h.finalize()[..16]))
}

/// What a reply job carries into the session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyJob {
    /// The delivery it answers for.
    pub parent: String,
    pub answer: Answer,
}

/// The parent delivery's outcome: its target's answer, or why it was dead-lettered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// The target answered 2xx: `response` in the reply template.
    Response {
        status: u16,
        /// The body, when it is JSON.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        json: Option<Value>,
        /// The body as text, at most 256 KiB.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    /// The delivery was dead-lettered: `failure` in the `on_failure` template.
    Failure {
        failure: String,
        attempts: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_status: Option<u16>,
        last_error: String,
    },
}

/// The body of one delivery-queue message (CONTRACT section 5), parsed and typed.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryJob {
    pub delivery_id: String,
    pub event_id: EventId,
    pub route: RouteName,
    pub event: TriggerEvent,
    pub received_at: time::OffsetDateTime,
    /// Set on a reply job: the answer of the route's delivery, going into the session.
    pub reply: Option<ReplyJob>,
}

/// Why a queue message body is not a delivery job (its `malformed` reason). Never quotes
/// the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("the body is not a delivery job: {what} (line {line}, column {column})")]
    Shape {
        what: String,
        line: usize,
        column: usize,
    },
    #[error("unsupported message version {0}")]
    Version(u32),
    #[error("the delivery_id is empty or not a valid header value")]
    DeliveryId,
    #[error("the route is not a route name: {0}")]
    Route(String),
    #[error("received_at is not an RFC 3339 time")]
    ReceivedAt,
}

/// The JSON as it goes onto the queue.
#[derive(Serialize)]
struct WireOut<'a> {
    v: u32,
    delivery_id: &'a str,
    event_id: &'a EventId,
    route: &'a str,
    event: &'a TriggerEvent,
    received_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply: Option<&'a ReplyJob>,
}

/// The JSON as it comes off the queue, before its fields are checked.
#[derive(Deserialize)]
struct WireIn {
    v: u32,
    delivery_id: String,
    event_id: EventId,
    route: String,
    event: TriggerEvent,
    received_at: String,
    #[serde(default)]
    reply: Option<ReplyJob>,
}

impl DeliveryJob {
    pub const VERSION: u32 = 1;

    pub fn new(event: &TriggerEvent, route: &RouteName, received_at: time::OffsetDateTime) -> Self {
        Self {
            delivery_id: delivery_id(&event.id, route),
            event_id: event.id.clone(),
            route: route.clone(),
            event: event.clone(),
            received_at,
            reply: None,
        }
    }

    /// The reply job of this delivery: the same event and route, `answer` for the reply
    /// template, its own delivery id (derived from this one's, stable across retries), and
    /// its own `max_age` counted from now.
    pub fn reply_job(&self, answer: Answer, now: time::OffsetDateTime) -> Self {
        let kind = match answer {
            Answer::Response { .. } => "reply",
            Answer::Failure { .. } => "on_failure",
        };
        Self {
            delivery_id: derived_id(&self.delivery_id, kind),
            event_id: self.event_id.clone(),
            route: self.route.clone(),
            event: self.event.clone(),
            received_at: now,
            reply: Some(ReplyJob {
                parent: self.delivery_id.clone(),
                answer,
            }),
        }
    }

    /// For a reply job whose answer could not be delivered into the session: the job that
    /// sends the route's `on_failure` instead, as the parent's own failure would have (its
    /// delivery id the one the parent's failure would have had, so it goes at most once).
    /// `None` for a job that is not a reply with an answer (an `on_failure` that fails is
    /// only dead-lettered: nothing loops).
    pub fn failed_reply(&self, answer: Answer, now: time::OffsetDateTime) -> Option<Self> {
        let reply = self.reply.as_ref()?;
        if !matches!(reply.answer, Answer::Response { .. }) {
            return None;
        }
        let parent = Self {
            delivery_id: reply.parent.clone(),
            reply: None,
            ..self.clone()
        };
        Some(parent.reply_job(answer, now))
    }

    /// The queue message body: JSON with every character SQS refuses (U+FFFE, U+FFFF, ...)
    /// written as a `\uXXXX` escape, so any event a user can type can be queued.
    pub fn to_json(&self) -> String {
        let wire = WireOut {
            v: Self::VERSION,
            delivery_id: &self.delivery_id,
            event_id: &self.event_id,
            route: self.route.as_str(),
            event: &self.event,
            received_at: crate::time_fmt::rfc3339(self.received_at),
            reply: self.reply.as_ref(),
        };
        crate::ports::limits::escape_json_for_queue(
            serde_json::to_string(&wire).expect("a delivery job always serializes"),
        )
    }

    /// Parses a queue message body, once, into a typed job; anything else is described.
    pub fn parse(body: &str) -> Result<Self, JobError> {
        let wire: WireIn = serde_json::from_str(body).map_err(describe)?;
        if wire.v != Self::VERSION {
            return Err(JobError::Version(wire.v));
        }
        if wire.delivery_id.is_empty()
            || wire.delivery_id.len() > 256
            || !wire.delivery_id.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(JobError::DeliveryId);
        }
        let route = RouteName::parse(&wire.route)
            .map_err(|_| JobError::Route(crate::text::truncated(&wire.route, 64)))?;
        let received_at =
            crate::time_fmt::parse_rfc3339(&wire.received_at).ok_or(JobError::ReceivedAt)?;
        Ok(Self {
            delivery_id: wire.delivery_id,
            event_id: wire.event_id,
            route,
            event: wire.event,
            received_at,
            reply: wire.reply,
        })
    }
}

/// A serde_json error as a [`JobError`]: the missing field's name, or only the kind of
/// problem (the message of a type error can quote the body).
fn describe(e: serde_json::Error) -> JobError {
    let msg = e.to_string();
    let what = match e.classify() {
        serde_json::error::Category::Data if msg.starts_with("missing field") => msg
            .split(" at line")
            .next()
            .unwrap_or("missing field")
            .to_owned(),
        serde_json::error::Category::Data => "a field has the wrong type".to_owned(),
        _ => "not valid JSON".to_owned(),
    };
    JobError::Shape {
        what,
        line: e.line(),
        column: e.column(),
    }
}

#[cfg(test)]
mod tests;
