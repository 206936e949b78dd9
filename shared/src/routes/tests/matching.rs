//! Matching (trigger and negate semantics) and rendering with the contract's context.

use super::*;

#[test]
fn matching_follows_the_trigger_and_negate_semantics() {
    let r = parse(GOOD).unwrap();
    let crm = r.get("crm-handoff").unwrap();
    assert!(crm.fires(&event(EventType::Intent, Some("handover"), 0.9)));
    assert!(
        crm.fires(&event(EventType::Intent, Some("handover"), 0.8)),
        "threshold is inclusive"
    );
    assert!(!crm.fires(&event(EventType::Intent, Some("handover"), 0.79)));
    assert!(!crm.fires(&event(EventType::Intent, Some("other"), 0.9)));
    assert!(!crm.fires(&event(EventType::Entity, Some("handover"), 0.9)));
    assert!(
        !crm.fires(&event(EventType::Intent, None, 0.9)),
        "a named trigger needs the name"
    );

    let only_negated = parse(&with_route(
        "name = 'abc'\ntriggers = [{ event_type = 'intent', name = 'smalltalk', negate = true }]",
    ))
    .unwrap();
    let route = only_negated.get("abc").unwrap();
    assert!(route.fires(&event(EventType::Intent, Some("handover"), 1.0)));
    assert!(route.fires(&event(EventType::FlowEnd, None, 1.0)));
    assert!(!route.fires(&event(EventType::Intent, Some("smalltalk"), 1.0)));

    let mixed = parse(&with_route(
        "name = 'abc'\ntriggers = [{ event_type = 'intent' }, { event_type = 'intent', threshold = 0.5, negate = true }]",
    ))
    .unwrap();
    let route = mixed.get("abc").unwrap();
    assert!(route.fires(&event(EventType::Intent, Some("x"), 0.4)));
    assert!(
        !route.fires(&event(EventType::Intent, Some("x"), 0.6)),
        "a holding negated trigger vetoes"
    );

    let names: Vec<_> = r
        .matching(&event(EventType::FlowEnd, None, 1.0))
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["flow-ends"]);
}

#[test]
fn absent_optional_event_fields_render_as_null_and_data_as_empty() {
    let text = with_route(
        "name = 'abc'\ntemplate = '[{{ event.user_id | tojson }}, {{ event.name | tojson }}, {{ event.data | tojson }}, {{ event.data.text | default(\"-\") | tojson }}, {{ event.event_type | tojson }}]'",
    );
    let r = parse(&text).unwrap();
    let route = r.get("abc").unwrap();
    let mut e = event(EventType::Intent, None, 1.0);
    e.user_id = None;
    let now = time::macros::datetime!(2026-11-27 10:00:00 UTC);
    let job = DeliveryJob::new(&e, &route.name, now);
    let body = r
        .render_payload(route, &Routes::context(&job, 1, now, None))
        .unwrap();
    assert_eq!(body, r#"[null, null, {}, "-", "intent"]"#);
    let typo = parse(&with_route(
        "name = 'abc'\ntemplate = '{{ event.usr_id | tojson }}'",
    ))
    .unwrap();
    let job = DeliveryJob::new(&e, &RouteName::parse("abc").unwrap(), now);
    assert!(
        typo.render_payload(
            typo.get("abc").unwrap(),
            &Routes::context(&job, 1, now, None)
        )
        .is_err()
    );
}

#[test]
fn the_payload_renders_with_the_contract_context() {
    let r = parse(GOOD).unwrap();
    let e = event(EventType::Intent, Some("handover"), 0.9);
    let route = r.get("crm-handoff").unwrap();
    let job = DeliveryJob::new(
        &e,
        &route.name,
        time::macros::datetime!(2026-11-27 10:00:00 UTC),
    );
    let now = time::macros::datetime!(2026-11-27 10:00:05 UTC);
    let ctx = Routes::context(&job, 2, now, Some(&serde_json::json!({"tier": "gold"})));
    let body = r.render_payload(route, &ctx).unwrap();
    assert_eq!(body, r#"{"user": "usr_1", "tier": "gold"}"#);
    assert_eq!(
        r.render_enrich_url(route, &ctx).unwrap().as_str(),
        "https://crm.example.com/users/usr_1"
    );

    let without_external = Routes::context(&job, 1, now, None);
    assert!(matches!(
        r.render_payload(route, &without_external),
        Err(RenderError::Template(_))
    ));

    let ends = r.get("flow-ends").unwrap();
    let job = DeliveryJob::new(&e, &ends.name, now);
    let body = r
        .render_payload(ends, &Routes::context(&job, 1, now, None))
        .unwrap();
    assert_eq!(body, format!("{{\"id\": \"{}\"}}", job.delivery_id));
}
