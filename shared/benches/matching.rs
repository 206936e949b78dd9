//! Matching one event against 100 routes: the contract's triggers alone, and with `where`
//! conditions that every route evaluates (its type and name match the event, so each of its
//! conditions is looked up in the event's data: the worst case).

use criterion::{Criterion, criterion_group, criterion_main};
use router_core::domain::{EventId, EventType, TriggerEvent};
use router_core::routes::Routes;
use std::hint::black_box;

fn routes_file(n: usize) -> String {
    let types = ["intent", "entity", "flow_start", "flow_end", "custom"];
    let mut s = String::new();
    for i in 0..n {
        let t = types[i % types.len()];
        s.push_str(&format!(
            "[[route]]\nname = \"route-{i:03}\"\ntarget_url = \"https://example.com/{i}\"\ntemplate = '{{}}'\n\
             triggers = [{{ event_type = \"{t}\", name = \"name-{}\", threshold = 0.{} }}, \
             {{ event_type = \"intent\", name = \"smalltalk\", negate = true }}]\n",
            i % 10,
            i % 9
        ));
    }
    s
}

/// 100 routes whose triggers all match the event's type and name, each with four
/// conditions on `data` (equals, exists, a range, any_of) of which the last holds for every
/// tenth route.
fn conditional_routes_file(n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        // Conditions are checked in key order: the one that differs is the last.
        let tiers = if i % 10 == 0 {
            "\"gold\", \"vip\""
        } else {
            "\"silver\", \"bronze\""
        };
        s.push_str(&format!(
            "[[route]]\nname = \"route-{i:03}\"\ntarget_url = \"https://example.com/{i}\"\ntemplate = '{{}}'\n\
             triggers = [{{ event_type = \"intent\", name = \"handover\", where = {{ \
             \"data.tier\" = {{ any_of = [{tiers}] }}, \"data.order.total\" = {{ gte = {i}, lt = 1000 }}, \
             \"data.email\" = {{ exists = true }}, \"data.channel\" = \"voice\" }} }}, \
             {{ event_type = \"intent\", name = \"smalltalk\", negate = true }}]\n"
        ));
    }
    s
}

/// As [`conditional_routes_file`], every condition different from every other route's (no
/// outcome shared across routes: each of the 400 is tested).
fn distinct_routes_file(n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        let tiers = if i % 10 == 0 {
            format!("\"gold\", \"t{i}\"")
        } else {
            format!("\"silver\", \"t{i}\"")
        };
        s.push_str(&format!(
            "[[route]]\nname = \"route-{i:03}\"\ntarget_url = \"https://example.com/{i}\"\ntemplate = '{{}}'\n\
             triggers = [{{ event_type = \"intent\", name = \"handover\", where = {{ \
             \"data.tier\" = {{ any_of = [{tiers}] }}, \"data.order.total\" = {{ gte = {i}, lt = 1000 }}, \
             \"data.email\" = {{ anything_but = \"e{i}\" }}, \"data.channel\" = {{ any_of = [\"voice\", \"c{i}\"] }} }} }}, \
             {{ event_type = \"intent\", name = \"smalltalk\", negate = true }}]\n"
        ));
    }
    s
}

fn conditional(c: &mut Criterion) {
    let mut group = c.benchmark_group("match");
    for (label, file) in [
        (
            "one_event_100_routes_with_conditions",
            conditional_routes_file(100),
        ),
        (
            "one_event_100_routes_with_distinct_conditions",
            distinct_routes_file(100),
        ),
    ] {
        bench_file(&mut group, label, &file);
    }
    group.finish();
}

fn bench_file(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    label: &str,
    file: &str,
) {
    let routes = Routes::parse(file, std::path::Path::new("routes.toml")).expect("routes load");
    let body = br#"{"id": "evt_1", "event_type": "intent", "name": "handover", "score": 0.92,
        "user_id": "usr_1", "data": {"text": "agent please", "channel": "voice", "tier": "gold",
        "email": "a@example.com", "order": {"total": 120, "items": [{"sku": "A1"}, {"sku": "B2"}]},
        "lang": "en-US", "country": "DE"}}"#;
    let event = router_core::event::from_json(body, None).expect("a valid event");
    let fired = routes.matching(&event).count();
    assert_eq!(fired, 10, "{label}: every tenth route's conditions hold");
    group.bench_function(label, |b| {
        b.iter(|| black_box(routes.matching(black_box(&event)).count()))
    });
}

fn bench(c: &mut Criterion) {
    let routes =
        Routes::parse(&routes_file(100), std::path::Path::new("routes.toml")).expect("routes load");
    let event = TriggerEvent {
        id: EventId::parse("evt_1").expect("valid id"),
        event_type: EventType::Intent,
        name: Some("name-5".into()),
        score: 0.92,
        user_id: Some("usr_1".into()),
        session_id: None,
        data: None,
    };
    assert!(
        routes.matching(&event).count() > 0,
        "the event fires some routes"
    );
    let mut group = c.benchmark_group("match");
    group.bench_function("one_event_100_routes", |b| {
        b.iter(|| black_box(routes.matching(black_box(&event)).count()))
    });
    group.finish();
}

criterion_group!(benches, bench, conditional);
criterion_main!(benches);
