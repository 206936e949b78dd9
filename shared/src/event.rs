//! Parsing a trigger request body (JSON or form-urlencoded) into a validated [`TriggerEvent`].
//!
//! Two failure classes, as the HTTP API reports them: the body is not parseable at all
//! ([`BodyError::Malformed`], 400) or it parses but breaks the schema
//! ([`BodyError::Invalid`], 422, every offending field named).

use crate::domain::{EventId, EventType, TriggerEvent};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// One schema violation: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("malformed body: {0}")]
    Malformed(String),
    #[error("invalid event: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
}

const KNOWN_FIELDS: &str = "id, event_type, name, score, user_id, session_id, data";

/// Parses a JSON body. Duplicate top-level keys are a schema violation, not "last one wins".
pub fn from_json(body: &[u8], idempotency_key: Option<&str>) -> Result<TriggerEvent, BodyError> {
    let top: TopLevel = serde_json::from_slice(body).map_err(|e| {
        BodyError::Malformed(if e.is_data() {
            "the body must be a JSON object".to_owned()
        } else {
            format!("not valid JSON ({e})")
        })
    })?;
    let fields = top.0.into_iter().map(|(k, v)| (k, Raw::Json(v))).collect();
    build(fields, idempotency_key)
}

/// Parses an `application/x-www-form-urlencoded` body: fields map to event fields,
/// `score` is parsed as a number, `data` is a JSON object in a string, and an empty
/// value counts as absent.
pub fn from_form(body: &[u8], idempotency_key: Option<&str>) -> Result<TriggerEvent, BodyError> {
    let fields = decode_form(body)?
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, Raw::Form(v)))
        .collect();
    build(fields, idempotency_key)
}

enum Raw {
    Json(Value),
    Form(String),
}

impl Raw {
    fn is_null(&self) -> bool {
        matches!(self, Raw::Json(Value::Null))
    }

    fn string(self, field: &str, errors: &mut Vec<FieldError>) -> Option<String> {
        match self {
            Raw::Json(Value::String(s)) | Raw::Form(s) => Some(s),
            Raw::Json(other) => {
                errors.push(err(
                    field,
                    format!("must be a string, got {}", kind(&other)),
                ));
                None
            }
        }
    }
}

fn err(field: &str, reason: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn build(
    fields: Vec<(String, Raw)>,
    idempotency_key: Option<&str>,
) -> Result<TriggerEvent, BodyError> {
    let mut errors = Vec::new();
    let mut seen: Vec<&'static str> = Vec::new();
    let (mut id, mut event_type, mut name, mut score) = (None, None, None, None);
    let (mut user_id, mut session_id, mut data) = (None, None, None);

    for (key, raw) in fields {
        let slot: &'static str = match key.as_str() {
            "id" => "id",
            "event_type" => "event_type",
            "name" => "name",
            "score" => "score",
            "user_id" => "user_id",
            "session_id" => "session_id",
            "data" => "data",
            _ => {
                errors.push(err(
                    &truncate(&key, 64),
                    format!("unknown field; the event's fields are {KNOWN_FIELDS} (put anything else under `data`)"),
                ));
                continue;
            }
        };
        if seen.contains(&slot) {
            errors.push(err(slot, "appears more than once"));
            continue;
        }
        seen.push(slot);
        if raw.is_null() {
            continue;
        }
        match slot {
            "id" => {
                if let Some(s) = raw.string("id", &mut errors) {
                    match EventId::parse(&s) {
                        Ok(v) => id = Some(v),
                        Err(reason) => errors.push(err("id", reason)),
                    }
                }
            }
            "event_type" => {
                if let Some(s) = raw.string("event_type", &mut errors) {
                    match EventType::parse(&s) {
                        Some(t) => event_type = Some(t),
                        None => errors.push(err(
                            "event_type",
                            format!(
                                "must be one of {}, got `{}`",
                                EventType::ALL.join(", "),
                                truncate(&s, 64)
                            ),
                        )),
                    }
                }
            }
            "name" => name = raw.string("name", &mut errors),
            "user_id" => user_id = raw.string("user_id", &mut errors),
            "session_id" => session_id = raw.string("session_id", &mut errors),
            "score" => score = parse_score(raw, &mut errors),
            "data" => data = parse_data(raw, &mut errors),
            _ => unreachable!("every slot is matched above"),
        }
    }

    if !seen.contains(&"event_type")
        || (event_type.is_none() && errors.iter().all(|e| e.field != "event_type"))
    {
        errors.push(err(
            "event_type",
            format!("is required (one of {})", EventType::ALL.join(", ")),
        ));
    }
    if id.is_none()
        && errors.iter().all(|e| e.field != "id")
        && let Some(key) = idempotency_key
    {
        match EventId::parse(key) {
            Ok(v) => id = Some(v),
            Err(reason) => errors.push(err("Idempotency-Key", reason)),
        }
    }
    match (errors.is_empty(), event_type) {
        (true, Some(event_type)) => Ok(TriggerEvent {
            id: id.unwrap_or_else(EventId::generate),
            event_type,
            name,
            score: score.unwrap_or(1.0),
            user_id,
            session_id,
            data,
        }),
        _ => Err(BodyError::Invalid(errors)),
    }
}

fn parse_score(raw: Raw, errors: &mut Vec<FieldError>) -> Option<f64> {
    let value = match raw {
        Raw::Json(Value::Number(n)) => n.as_f64(),
        Raw::Form(s) => s.trim().parse::<f64>().ok(),
        Raw::Json(other) => {
            errors.push(err(
                "score",
                format!("must be a number, got {}", kind(&other)),
            ));
            return None;
        }
    };
    match value {
        Some(v) if v.is_finite() => Some(v),
        _ => {
            errors.push(err("score", "must be a finite number"));
            None
        }
    }
}

fn parse_data(raw: Raw, errors: &mut Vec<FieldError>) -> Option<Map<String, Value>> {
    let value = match raw {
        Raw::Json(v) => v,
        Raw::Form(s) => match serde_json::from_str::<Value>(&s) {
            Ok(v) => v,
            Err(e) => {
                errors.push(err(
                    "data",
                    format!("must be a JSON object in a string ({e})"),
                ));
                return None;
            }
        },
    };
    match value {
        Value::Object(map) => Some(map),
        other => {
            errors.push(err(
                "data",
                format!("must be a JSON object, got {}", kind(&other)),
            ));
            None
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

/// Decodes `a=1&b=x+y%21` strictly: invalid percent escapes or invalid UTF-8 are malformed.
fn decode_form(body: &[u8]) -> Result<Vec<(String, String)>, BodyError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| BodyError::Malformed("the form body is not valid UTF-8".to_owned()))?;
    let mut out = Vec::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.push((percent_decode(k)?, percent_decode(v)?));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String, BodyError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                // Exactly two hex digits (`from_str_radix` alone would take `%+a`).
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        BodyError::Malformed("the form body has a bad percent escape".to_owned())
                    })?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| {
        BodyError::Malformed("a form field is not valid UTF-8 once decoded".to_owned())
    })
}

/// A JSON object's members in order, duplicates kept (so they can be reported).
struct TopLevel(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for TopLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TopLevel;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    out.push(entry);
                }
                Ok(TopLevel(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(r: Result<TriggerEvent, BodyError>) -> Vec<FieldError> {
        match r {
            Err(BodyError::Invalid(e)) => e,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_full_json_event_parses() {
        let body = br#"{"id": "evt_123", "event_type": "intent", "name": "handover", "score": 0.92,
            "user_id": "usr_1", "session_id": "sess_1", "data": {"text": "agent please"}}"#;
        let e = from_json(body, Some("ignored-when-id-given")).unwrap();
        assert_eq!(e.id.as_str(), "evt_123");
        assert_eq!(e.event_type, EventType::Intent);
        assert_eq!(e.name.as_deref(), Some("handover"));
        assert_eq!(e.score, 0.92);
        assert_eq!(e.user_id.as_deref(), Some("usr_1"));
        assert_eq!(e.session_id.as_deref(), Some("sess_1"));
        assert_eq!(e.data.unwrap()["text"], "agent please");
    }

    #[test]
    fn defaults_apply_and_the_id_comes_from_the_idempotency_key() {
        let e = from_json(br#"{"event_type": "flow_end"}"#, Some("key-1")).unwrap();
        assert_eq!(e.id.as_str(), "key-1");
        assert_eq!(e.score, 1.0);
        assert!(e.name.is_none() && e.data.is_none());
        let generated = from_json(br#"{"event_type": "custom", "name": null}"#, None).unwrap();
        assert!(generated.id.as_str().starts_with("evt_"));
    }

    #[test]
    fn every_schema_violation_is_named() {
        let errors = invalid(from_json(
            br#"{"id": "bad id", "event_type": "nope", "score": "high", "data": [1], "user_id": 5, "extra": 1}"#,
            None,
        ));
        let mut f = fields(&errors);
        f.sort();
        assert_eq!(f, ["data", "event_type", "extra", "id", "score", "user_id"]);
        assert!(errors.iter().any(|e| e.reason.contains("one of intent")));
    }

    #[test]
    fn missing_event_type_and_bad_idempotency_key_are_invalid() {
        let errors = invalid(from_json(br#"{"name": "x"}"#, Some("bad key!")));
        assert_eq!(fields(&errors), ["event_type", "Idempotency-Key"]);
    }

    #[test]
    fn duplicate_keys_are_rejected_not_overwritten() {
        let errors = invalid(from_json(
            br#"{"event_type": "intent", "event_type": "custom"}"#,
            None,
        ));
        assert_eq!(fields(&errors), ["event_type"]);
        assert!(errors[0].reason.contains("more than once"));
    }

    #[test]
    fn unparseable_bodies_are_malformed() {
        for body in [
            &b"{"[..],
            b"not json",
            b"[1,2]",
            b"\"str\"",
            b"{\"a\":1} x",
            b"\xff\xfe",
        ] {
            assert!(
                matches!(from_json(body, None), Err(BodyError::Malformed(_))),
                "{body:?}"
            );
        }
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let deep = format!("{{\"event_type\":\"intent\",\"data\":{{\"x\":{deep}}}}}");
        assert!(matches!(
            from_json(deep.as_bytes(), None),
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(
            from_json(br#"{"event_type":"intent","score":1e400}"#, None),
            Err(BodyError::Malformed(_))
        ));
    }

    #[test]
    fn a_form_body_maps_to_the_event() {
        let body = b"event_type=intent&name=handover&score=0.85&user_id=u+1&data=%7B%22text%22%3A%22hi%21%22%7D&session_id=";
        let e = from_form(body, None).unwrap();
        assert_eq!(e.event_type, EventType::Intent);
        assert_eq!(e.score, 0.85);
        assert_eq!(e.user_id.as_deref(), Some("u 1"));
        assert_eq!(e.session_id, None, "an empty form value counts as absent");
        assert_eq!(e.data.unwrap()["text"], "hi!");
    }

    #[test]
    fn bad_form_bodies_are_reported() {
        let errors = invalid(from_form(b"event_type=intent&score=abc&data=notjson", None));
        assert_eq!(fields(&errors), ["score", "data"]);
        let errors = invalid(from_form(b"event_type=intent&data=%5B1%5D", None));
        assert!(errors[0].reason.contains("JSON object"));
        assert!(matches!(
            from_form(b"event_type=%zz", None),
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(
            from_form(b"event_type=%ff", None),
            Err(BodyError::Malformed(_))
        ));
        for bad in [
            &b"name=%+a&event_type=intent"[..],
            b"name=%-1&event_type=intent",
            b"name=% a&event_type=intent",
            b"name=%a",
        ] {
            assert!(
                matches!(from_form(bad, None), Err(BodyError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(matches!(
            from_form(b"\xff=1", None),
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(
            from_form(b"score=inf&event_type=intent", None),
            Err(BodyError::Invalid(_))
        ));
    }
}
