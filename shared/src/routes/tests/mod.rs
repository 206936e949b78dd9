//! Unit tests of the routes file, a module per area; the fixtures and helpers they share.

use super::*;
use crate::domain::{EventId, RouteName};
use std::path::Path;

mod cognigy;
mod conditions;
mod enrich;
mod load;
mod matching;

/// A routes file using every section, which loads.
const GOOD: &str = include_str!("good.routes.toml");

fn parse(text: &str) -> Result<Routes, LoadErrors> {
    Routes::parse(text, Path::new("/tmp/routes.toml"))
}

fn errors(text: &str) -> Vec<String> {
    parse(text)
        .unwrap_err()
        .errors
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// A file with one route whose body is `route_body` (plus a default template and trigger).
fn with_route(route_body: &str) -> String {
    let mut s = String::from("[[route]]\n");
    s.push_str(route_body);
    if !route_body.contains("\ntemplate") && !route_body.starts_with("template") {
        s.push_str("\ntemplate = '{}'");
    }
    if !route_body.contains("triggers") {
        s.push_str("\ntriggers = [{ event_type = \"intent\" }]");
    }
    if !route_body.contains("target_url") && !route_body.contains("\ncognigy =") {
        s.push_str("\ntarget_url = \"https://example.com/\"");
    }
    s
}

fn event(event_type: EventType, name: Option<&str>, score: f64) -> TriggerEvent {
    TriggerEvent {
        id: EventId::parse("evt_1").unwrap(),
        event_type,
        name: name.map(str::to_owned),
        score,
        user_id: Some("usr_1".into()),
        session_id: None,
        data: None,
    }
}
