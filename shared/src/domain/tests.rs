//! Names, ids, delivery ids and the queue job's wire form.

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
    assert_eq!(DeliveryJob::parse(&body).unwrap(), job);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["v"], 1);
    assert_eq!(v["received_at"], "2026-11-27T10:00:00Z");
    assert_eq!(v["event"]["event_type"], "intent");
    let v2 = body.replacen("\"v\":1", "\"v\":2", 1);
    assert_eq!(DeliveryJob::parse(&v2).unwrap_err(), JobError::Version(2));
    assert!(DeliveryJob::parse("{}").is_err());
}

#[test]
fn malformed_bodies_are_described_without_quoting_them() {
    let e = DeliveryJob::parse(r#"{"v":1,"delivery_id":"SECRET-ISH"}"#).unwrap_err();
    assert!(e.to_string().contains("missing field `event_id`"), "{e}");
    let e = DeliveryJob::parse(r#"{"v":"SECRET-ISH"}"#)
        .unwrap_err()
        .to_string();
    assert!(!e.contains("SECRET-ISH") && e.contains("wrong type"), "{e}");
    let e = DeliveryJob::parse("SECRET-ISH not json")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not valid JSON") && !e.contains("SECRET"), "{e}");
    let good = |f: &dyn Fn(&mut Value)| {
        let mut v = serde_json::json!({
            "v": 1, "delivery_id": "dlv_1", "event_id": "evt_1", "route": "crm",
            "event": {"id": "evt_1", "event_type": "intent", "score": 1.0},
            "received_at": "2026-11-27T10:00:00Z"
        });
        f(&mut v);
        DeliveryJob::parse(&v.to_string())
    };
    assert!(good(&|_| {}).is_ok());
    assert_eq!(
        good(&|v| v["delivery_id"] = "".into()).unwrap_err(),
        JobError::DeliveryId
    );
    assert_eq!(
        good(&|v| v["delivery_id"] = "a\nb".into()).unwrap_err(),
        JobError::DeliveryId
    );
    assert!(matches!(
        good(&|v| v["route"] = "Not A Route".into()).unwrap_err(),
        JobError::Route(_)
    ));
    assert_eq!(
        good(&|v| v["received_at"] = "yesterday".into()).unwrap_err(),
        JobError::ReceivedAt
    );
}
