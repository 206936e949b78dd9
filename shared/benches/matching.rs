//! Matching one event against 100 routes.

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

criterion_group!(benches, bench);
criterion_main!(benches);
