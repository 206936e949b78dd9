//! Keeps `openapi.json` true: the documented paths, statuses and event fields are the
//! implemented ones, and real responses of every status validate against their schemas.

use crate::common::*;
use axum::body::Body;
use axum::http::Request;
use router_core::ports::QueueDepth;
use router_core::testing::SendBehaviour;
use serde_json::{Value, json};
use std::collections::BTreeSet;

fn spec() -> Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn resolve<'a>(spec: &'a Value, mut node: &'a Value) -> &'a Value {
    while let Some(r) = node.get("$ref").and_then(Value::as_str) {
        let mut target = spec;
        for part in r.trim_start_matches("#/").split('/') {
            target = &target[part];
        }
        node = target;
    }
    node
}

/// A small JSON Schema check: type (incl. unions), enum, required, properties,
/// additionalProperties (false or a schema), items, $ref.
fn validate(spec: &Value, schema: &Value, v: &Value, path: &str, errs: &mut Vec<String>) {
    let schema = resolve(spec, schema);
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => false,
        });
        if !ok {
            errs.push(format!("{path}: {v} is not of type {t}"));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        errs.push(format!("{path}: {v} not in {allowed:?}"));
    }
    if let Value::Object(map) = v {
        let props = schema.get("properties").and_then(Value::as_object);
        for req in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !map.contains_key(req.as_str().unwrap()) {
                errs.push(format!("{path}: missing required {req}"));
            }
        }
        for (k, val) in map {
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate(spec, s, val, &format!("{path}.{k}"), errs),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        errs.push(format!("{path}: undocumented property {k}"))
                    }
                    Some(s @ Value::Object(_)) => {
                        validate(spec, s, val, &format!("{path}.{k}"), errs)
                    }
                    _ => {}
                },
            }
        }
    }
    if let (Value::Array(items), Some(s)) = (v, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            validate(spec, s, item, &format!("{path}[{i}]"), errs);
        }
    }
}

fn response_schema<'a>(spec: &'a Value, path: &str, method: &str, status: u16) -> &'a Value {
    let resp = resolve(
        spec,
        &spec["paths"][path][method]["responses"][status.to_string()],
    );
    let content = resp["content"]
        .as_object()
        .unwrap_or_else(|| panic!("{path} {status} has content"));
    &content.values().next().unwrap()["schema"]
}

fn assert_conforms(spec: &Value, path: &str, method: &str, reply: &Answered) {
    let schema = response_schema(spec, path, method, reply.status.as_u16());
    let mut errs = Vec::new();
    validate(spec, schema, &reply.body, "$", &mut errs);
    assert!(
        errs.is_empty(),
        "{method} {path} {}: {errs:?}\n{}",
        reply.status,
        reply.body
    );
}

#[test]
fn the_documented_statuses_are_the_implemented_ones() {
    let spec = spec();
    assert_eq!(spec["openapi"], "3.1.0");
    let statuses = |p: &str, m: &str| -> BTreeSet<String> {
        spec["paths"][p][m]["responses"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    let trigger: BTreeSet<String> = ["200", "202", "400", "401", "413", "415", "422", "503"]
        .map(String::from)
        .into();
    assert_eq!(statuses(trigger::app::TRIGGER_PATH, "post"), trigger);
    assert_eq!(
        statuses(trigger::app::HEALTH_PATH, "get"),
        ["200", "503"].map(String::from).into()
    );
    assert_eq!(
        statuses(trigger::smoke::SMOKE_PATH, "post"),
        ["200", "401", "404", "413", "503"].map(String::from).into()
    );
    assert_eq!(spec["paths"].as_object().unwrap().len(), 3);
}

#[test]
fn the_documented_event_fields_are_the_parsed_ones() {
    let spec = spec();
    for schema in ["TriggerEvent", "TriggerEventForm"] {
        let props: BTreeSet<&str> = spec["components"]["schemas"][schema]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            props,
            BTreeSet::from([
                "id",
                "event_type",
                "name",
                "score",
                "user_id",
                "session_id",
                "data"
            ])
        );
    }
    // An event using every documented field parses.
    let full = json!({"id": "e", "event_type": "custom", "name": "n", "score": 0.5, "user_id": "u", "session_id": "s", "data": {}});
    router_core::event::from_json(full.to_string().as_bytes(), None).unwrap();
}

#[tokio::test]
async fn responses_of_every_status_match_their_schemas() {
    let spec = spec();
    let path = trigger::app::TRIGGER_PATH;
    let h = harness().await;
    let cases: Vec<Request<Body>> = vec![
        json_request(HANDOVER),                      // 202
        json_request(r#"{"event_type": "entity"}"#), // 200
        json_request("{"),                           // 400
        Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(HANDOVER))
            .unwrap(), // 401
        json_request(&format!(
            r#"{{"event_type":"intent","data":{{"x":"{}"}}}}"#,
            "a".repeat(5000)
        )), // 413
        post("text/plain").body(Body::from("x")).unwrap(), // 415
        json_request(r#"{"event_type": "nope", "zzz": 1}"#), // 422
    ];
    let mut seen = BTreeSet::new();
    for req in cases {
        let reply = send(&h.app, req).await;
        seen.insert(reply.status.as_u16());
        assert_conforms(&spec, path, "post", &reply);
    }
    h.queue
        .then(SendBehaviour::Unavailable)
        .then(SendBehaviour::Unavailable);
    let reply = send(&h.app, json_request(HANDOVER)).await;
    seen.insert(reply.status.as_u16());
    assert_conforms(&spec, path, "post", &reply);
    assert_eq!(
        seen,
        BTreeSet::from([200, 202, 400, 401, 413, 415, 422, 503])
    );

    let health = || {
        Request::get(trigger::app::HEALTH_PATH)
            .body(Body::empty())
            .unwrap()
    };
    let reply = send(&h.app, health()).await;
    assert_eq!(reply.status.as_u16(), 200);
    assert_conforms(&spec, trigger::app::HEALTH_PATH, "get", &reply);
    h.queue.set_depth(None::<QueueDepth>);
    let reply = send(&h.app, health()).await;
    assert_eq!(reply.status.as_u16(), 503);
    assert_conforms(&spec, trigger::app::HEALTH_PATH, "get", &reply);

    // routerctl serve's health also lists open circuits.
    let breakers = std::sync::Arc::new(router_core::breaker::Breakers::default());
    let settings = router_core::breaker::BreakerSettings::default();
    let to = router_core::breaker::Destination {
        host: "http://down.example:80",
        endpoint: "http://down.example:80/",
        route: "crm",
    };
    let t0 = std::time::Instant::now();
    for i in 0..20 {
        breakers.record(
            to,
            router_core::breaker::Signal::HostUnwell,
            &settings,
            t0 + std::time::Duration::from_secs(i),
        );
    }
    let h = harness_with_circuits(breakers).await;
    let reply = send(&h.app, health()).await;
    let circuit = &reply.body["circuits"][0];
    assert_eq!(
        (&circuit["circuit"], &circuit["scope"], &circuit["route"]),
        (
            &json!("http://down.example:80"),
            &json!("host"),
            &json!("crm")
        )
    );
    assert_eq!(
        reply.body["status"], "degraded",
        "an open circuit degrades health"
    );
    assert_conforms(&spec, trigger::app::HEALTH_PATH, "get", &reply);
}

#[test]
fn the_validator_catches_what_it_should() {
    let spec = spec();
    let schema = json!({"$ref": "#/components/schemas/TriggerResult"});
    let mut errs = Vec::new();
    validate(
        &spec,
        &schema,
        &json!({"status": "queued", "event_id": 1, "deliveries": [], "x": 1}),
        "$",
        &mut errs,
    );
    assert_eq!(errs.len(), 2, "{errs:?}");
    errs.clear();
    validate(
        &spec,
        &schema,
        &json!({"status": "lost", "deliveries": [{"route": "r"}]}),
        "$",
        &mut errs,
    );
    assert_eq!(errs.len(), 3, "{errs:?}");
}
