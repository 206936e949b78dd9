//! Parsing a trigger request body (JSON or form-urlencoded) into a validated [`TriggerEvent`].
//!
//! Two failure classes, as the HTTP API reports them: the body is not parseable at all
//! ([`BodyError::Malformed`], 400) or it parses but breaks the schema
//! ([`BodyError::Invalid`], 422: the first [`MAX_PROBLEMS`] offending fields named, and
//! how many more there were; the work per field past them is a count).

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
    /// The first [`MAX_PROBLEMS`] problems, and how many more there were.
    #[error("invalid event: {}{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "), more_text(*.1))]
    Invalid(Vec<FieldError>, usize),
}

/// The most problems a 422 names (a body of a thousand unknown fields is answered with
/// these and a count, not a thousand reasons).
pub const MAX_PROBLEMS: usize = 20;

/// "; and N more problems", or nothing.
pub fn more_text(more: usize) -> String {
    if more == 0 {
        String::new()
    } else {
        format!(
            "; and {more} more problem{}",
            if more == 1 { "" } else { "s" }
        )
    }
}

const UNKNOWN_FIELD: &str = "unknown field; the event's fields are id, event_type, name, score, user_id, session_id, data (put anything else under `data`)";

/// Problems as they are found: the first [`MAX_PROBLEMS`] kept, the rest counted.
#[derive(Debug, Default)]
struct Problems {
    kept: Vec<FieldError>,
    more: usize,
}

impl Problems {
    fn push(&mut self, e: FieldError) {
        if self.kept.len() < MAX_PROBLEMS {
            self.kept.push(e);
        } else {
            self.more += 1;
        }
    }

    /// Counts one more without building it, once the list is full.
    fn push_with(&mut self, make: impl FnOnce() -> FieldError) {
        if self.kept.len() < MAX_PROBLEMS {
            self.kept.push(make());
        } else {
            self.more += 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.kept.is_empty() && self.more == 0
    }

    fn none_for(&self, field: &str) -> bool {
        self.kept.iter().all(|e| e.field != field)
    }
}

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

    fn string(self, field: &str, errors: &mut Problems) -> Option<String> {
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

/// The event's fields as they are read, before the required ones are checked.
#[derive(Default)]
struct Fields {
    id: Option<EventId>,
    event_type: Option<EventType>,
    name: Option<String>,
    score: Option<f64>,
    user_id: Option<String>,
    session_id: Option<String>,
    data: Option<Map<String, Value>>,
}

/// The field a key names; `None` for a key the contract does not know.
fn slot(key: &str) -> Option<&'static str> {
    Some(match key {
        "id" => "id",
        "event_type" => "event_type",
        "name" => "name",
        "score" => "score",
        "user_id" => "user_id",
        "session_id" => "session_id",
        "data" => "data",
        _ => return None,
    })
}

impl Fields {
    /// Reads `raw` into `slot` (one of [`slot`]'s), or adds why it cannot be.
    fn set(&mut self, slot: &'static str, raw: Raw, errors: &mut Problems) {
        match slot {
            "id" => self.id = parse_id(raw, errors),
            "event_type" => self.event_type = parse_event_type(raw, errors),
            "name" => self.name = raw.string("name", errors),
            "user_id" => self.user_id = raw.string("user_id", errors),
            "session_id" => self.session_id = raw.string("session_id", errors),
            "score" => self.score = parse_score(raw, errors),
            "data" => self.data = parse_data(raw, errors),
            _ => unreachable!("every slot is matched above"),
        }
    }
}

fn build(
    fields: Vec<(String, Raw)>,
    idempotency_key: Option<&str>,
) -> Result<TriggerEvent, BodyError> {
    let mut errors = Problems::default();
    let mut seen: Vec<&'static str> = Vec::new();
    let mut read = Fields::default();
    for (key, raw) in fields {
        let Some(slot) = slot(&key) else {
            errors.push_with(|| err(&crate::text::truncated(&key, 64), UNKNOWN_FIELD));
            continue;
        };
        if seen.contains(&slot) {
            errors.push_with(|| err(slot, "appears more than once"));
            continue;
        }
        seen.push(slot);
        if !raw.is_null() {
            read.set(slot, raw, &mut errors);
        }
    }

    if !seen.contains(&"event_type") || (read.event_type.is_none() && errors.none_for("event_type"))
    {
        errors.push(err(
            "event_type",
            format!("is required (one of {})", EventType::ALL.join(", ")),
        ));
    }
    if read.id.is_none()
        && errors.none_for("id")
        && let Some(key) = idempotency_key
    {
        match EventId::parse(key) {
            Ok(v) => read.id = Some(v),
            Err(reason) => errors.push(err("Idempotency-Key", reason)),
        }
    }
    match (errors.is_empty(), read.event_type) {
        (true, Some(event_type)) => Ok(TriggerEvent {
            id: read.id.unwrap_or_else(EventId::generate),
            event_type,
            name: read.name,
            score: read.score.unwrap_or(1.0),
            user_id: read.user_id,
            session_id: read.session_id,
            data: read.data,
        }),
        _ => Err(BodyError::Invalid(errors.kept, errors.more)),
    }
}

fn parse_id(raw: Raw, errors: &mut Problems) -> Option<EventId> {
    let s = raw.string("id", errors)?;
    EventId::parse(&s)
        .map_err(|reason| errors.push(err("id", reason)))
        .ok()
}

fn parse_event_type(raw: Raw, errors: &mut Problems) -> Option<EventType> {
    let s = raw.string("event_type", errors)?;
    let t = EventType::parse(&s);
    if t.is_none() {
        errors.push(err(
            "event_type",
            format!(
                "must be one of {}, got `{}`",
                EventType::ALL.join(", "),
                crate::text::truncated(&s, 64)
            ),
        ));
    }
    t
}

fn parse_score(raw: Raw, errors: &mut Problems) -> Option<f64> {
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

fn parse_data(raw: Raw, errors: &mut Problems) -> Option<Map<String, Value>> {
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
        v @ Value::Object(_) => {
            let max = crate::ports::limits::MAX_DATA_DEPTH;
            if crate::ports::limits::json_depth(&v, max) > max {
                errors.push(err(
                    "data",
                    format!("nests deeper than {max} levels (objects and arrays in each other)"),
                ));
                return None;
            }
            match v {
                Value::Object(map) => Some(map),
                _ => None,
            }
        }
        other => {
            errors.push(err(
                "data",
                format!("must be a JSON object, got {}", kind(&other)),
            ));
            None
        }
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
mod tests;
