//! Trigger bodies: JSON and form, every failure class.

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
