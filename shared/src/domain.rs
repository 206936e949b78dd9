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

/// The stable id of one (event, route) delivery; it is the `webhook-id` header.
pub fn delivery_id(event_id: &EventId, route: &RouteName) -> String {
    let mut h = Sha256::new();
    h.update(event_id.as_str().as_bytes());
    h.update([0u8]);
    h.update(route.as_str().as_bytes());
    let digest = h.finalize();
    format!("dlv_{}", hex::encode(&digest[..16]))
}

/// The body of one delivery-queue message (CONTRACT section 5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryJob {
    pub v: u32,
    pub delivery_id: String,
    pub event_id: EventId,
    pub route: String,
    pub event: TriggerEvent,
    /// RFC 3339.
    pub received_at: String,
}

impl DeliveryJob {
    pub const VERSION: u32 = 1;

    pub fn new(event: &TriggerEvent, route: &RouteName, received_at: time::OffsetDateTime) -> Self {
        Self {
            v: Self::VERSION,
            delivery_id: delivery_id(&event.id, route),
            event_id: event.id.clone(),
            route: route.as_str().to_owned(),
            event: event.clone(),
            received_at: crate::time_fmt::rfc3339(received_at),
        }
    }

    pub fn received_at(&self) -> Option<time::OffsetDateTime> {
        crate::time_fmt::parse_rfc3339(&self.received_at)
    }

    /// The queue message body: JSON with every character SQS refuses (U+FFFE, U+FFFF, ...)
    /// written as a `\uXXXX` escape, so any event a user can type can be queued.
    pub fn to_json(&self) -> String {
        crate::ports::limits::escape_json_for_queue(
            serde_json::to_string(self).expect("a delivery job always serializes"),
        )
    }

    /// Parses a queue message body; any shape other than version 1 is `malformed`.
    pub fn from_json(body: &str) -> Result<Self, String> {
        let job: Self =
            serde_json::from_str(body).map_err(|e| format!("not a delivery job: {e}"))?;
        if job.v != Self::VERSION {
            return Err(format!("unsupported message version {}", job.v));
        }
        Ok(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_names_follow_the_contract() {
        assert!(RouteName::parse("crm-handoff").is_ok());
        assert!(RouteName::parse("a_1").is_ok());
        assert!(RouteName::parse("ab").unwrap_err().contains("3 to 128"));
        assert!(RouteName::parse(&"a".repeat(129)).is_err());
        assert!(RouteName::parse(&"a".repeat(128)).is_ok());
        assert!(RouteName::parse("Crm").unwrap_err().contains("'C'"));
        assert!(RouteName::parse("crm handoff").is_err());
    }

    #[test]
    fn event_ids_follow_the_contract() {
        assert!(EventId::parse("evt_123:a.b-c").is_ok());
        assert!(EventId::parse("").is_err());
        assert!(EventId::parse(&"x".repeat(129)).is_err());
        assert!(EventId::parse("evt 1").is_err());
        assert!(EventId::parse("evt/1").is_err());
        let generated = EventId::generate();
        assert!(EventId::parse(generated.as_str()).is_ok());
        assert_ne!(generated, EventId::generate());
    }

    #[test]
    fn delivery_id_is_stable_per_event_and_route() {
        let e1 = EventId::parse("evt_1").unwrap();
        let e2 = EventId::parse("evt_2").unwrap();
        let a = RouteName::parse("route-a").unwrap();
        let b = RouteName::parse("route-b").unwrap();
        assert_eq!(delivery_id(&e1, &a), delivery_id(&e1, &a));
        assert_ne!(delivery_id(&e1, &a), delivery_id(&e1, &b));
        assert_ne!(delivery_id(&e1, &a), delivery_id(&e2, &a));
        // No ambiguity between ("ab", "c") and ("a", "bc")-style splits.
        let x = delivery_id(
            &EventId::parse("evt_1a").unwrap(),
            &RouteName::parse("bcd").unwrap(),
        );
        let y = delivery_id(
            &EventId::parse("evt_1").unwrap(),
            &RouteName::parse("abcd").unwrap(),
        );
        assert_ne!(x, y);
        assert!(delivery_id(&e1, &a).starts_with("dlv_"));
        assert_eq!(delivery_id(&e1, &a).len(), 4 + 32);
    }

    #[test]
    fn jobs_round_trip_and_reject_other_versions() {
        let event = TriggerEvent {
            id: EventId::parse("evt_1").unwrap(),
            event_type: EventType::Intent,
            name: Some("handover".into()),
            score: 0.9,
            user_id: Some("u".into()),
            session_id: None,
            data: None,
        };
        let job = DeliveryJob::new(
            &event,
            &RouteName::parse("crm").unwrap(),
            time::macros::datetime!(2026-11-27 10:00:00 UTC),
        );
        let body = job.to_json();
        assert_eq!(DeliveryJob::from_json(&body).unwrap(), job);
        assert_eq!(job.received_at, "2026-11-27T10:00:00Z");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["v"], 1);
        assert_eq!(v["event"]["event_type"], "intent");
        let v2 = body.replacen("\"v\":1", "\"v\":2", 1);
        assert!(
            DeliveryJob::from_json(&v2)
                .unwrap_err()
                .contains("version 2")
        );
        assert!(DeliveryJob::from_json("{}").is_err());
    }
}
