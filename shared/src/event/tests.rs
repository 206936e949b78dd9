//! Trigger bodies: JSON and form, every failure class.

use super::*;

fn invalid(r: Result<TriggerEvent, BodyError>) -> Vec<FieldError> {
    match r {
        Err(BodyError::Invalid(e, _)) => e,
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
        Err(BodyError::Invalid(..))
    ));
}

#[test]
fn a_body_of_many_problems_is_answered_with_the_first_ones_and_a_count() {
    // 50,000 unknown fields and a duplicate: the first MAX_PROBLEMS named, the rest counted.
    let mut body = String::from("event_type=intent&name=a&name=b");
    for i in 0..50_000 {
        body.push_str(&format!("&f{i}=x"));
    }
    match from_form(body.as_bytes(), None) {
        Err(BodyError::Invalid(kept, more)) => {
            assert_eq!(kept.len(), MAX_PROBLEMS);
            assert_eq!(kept[0].field, "name");
            assert_eq!(more, 50_001 - MAX_PROBLEMS);
            let text = BodyError::Invalid(kept, more).to_string();
            assert!(
                text.ends_with(&format!("and {more} more problems")),
                "{text}"
            );
            assert!(text.len() < 4096, "{} bytes", text.len());
        }
        other => panic!("{other:?}"),
    }
    // At the cap exactly nothing is counted as more.
    let mut body = String::from(r#"{"event_type": "intent""#);
    for i in 0..MAX_PROBLEMS {
        body.push_str(&format!(r#", "u{i}": 1"#));
    }
    body.push('}');
    match from_json(body.as_bytes(), None) {
        Err(BodyError::Invalid(kept, 0)) => assert_eq!(kept.len(), MAX_PROBLEMS),
        other => panic!("{other:?}"),
    }
}

#[test]
fn data_may_nest_64_levels_and_no_deeper_in_json_and_in_a_form() {
    let nested = |levels: usize| "[".repeat(levels - 1) + &"]".repeat(levels - 1);
    let json = |levels: usize| {
        format!(
            r#"{{"event_type": "intent", "data": {{"d": {}}}}}"#,
            nested(levels)
        )
    };
    assert!(from_json(json(64).as_bytes(), None).is_ok());
    let e = invalid(from_json(json(65).as_bytes(), None));
    assert_eq!(fields(&e), ["data"]);
    assert!(e[0].reason.contains("deeper than 64"), "{e:?}");
    // Within serde_json's own limit (128) it is a 422 naming `data`; past it, a 400.
    assert_eq!(
        fields(&invalid(from_json(json(126).as_bytes(), None))),
        ["data"]
    );
    assert!(matches!(
        from_json(json(200).as_bytes(), None),
        Err(BodyError::Malformed(_))
    ));
    let form = |levels: usize| {
        let data = format!(r#"{{"d": {}}}"#, nested(levels));
        let encoded: String = data.bytes().map(|b| format!("%{b:02X}")).collect();
        format!("event_type=intent&data={encoded}")
    };
    assert!(from_form(form(64).as_bytes(), None).is_ok());
    assert_eq!(
        fields(&invalid(from_form(form(65).as_bytes(), None))),
        ["data"]
    );
    assert_eq!(
        fields(&invalid(from_form(form(127).as_bytes(), None))),
        ["data"]
    );
}
