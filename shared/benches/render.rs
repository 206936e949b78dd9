//! Rendering the baseline's reference template (../shared/bench-baseline, copied into
//! fixtures/) with its context, JSON check included: what the Python baseline's
//! `PayloadRenderer.render` does, external lookup merged into the context each time.

use criterion::{Criterion, criterion_group, criterion_main};
use minijinja::Value;
use router_core::render::Renderer;
use std::hint::black_box;

const TEMPLATE: &str = include_str!("fixtures/template.json.j2");
const CONTEXT: &str = include_str!("fixtures/context.json");

fn crm_lookup(user_id: &str) -> serde_json::Value {
    serde_json::json!({"tier": "gold", "id": user_id})
}

fn bench(c: &mut Criterion) {
    let mut renderer = Renderer::new();
    renderer
        .add("reference", TEMPLATE)
        .expect("the reference template compiles");
    let json: serde_json::Value = serde_json::from_str(CONTEXT).expect("context.json parses");
    let base = Value::from_serialize(&json);
    let user_id = json["user_id"].as_str().unwrap_or_default().to_owned();

    let mut group = c.benchmark_group("render");
    // The context is at hand as template values (as the Python dict is); the lookup answer
    // is merged in on every render, as the baseline does.
    group.bench_function("reference_template", |b| {
        b.iter(|| {
            let ctx = minijinja::context! { external_data => Value::from_serialize(crm_lookup(&user_id)), ..base.clone() };
            black_box(renderer.render_json("reference", &ctx, 256 * 1024).expect("renders"))
        })
    });
    // The deliver path: the context converted from serde data on every render.
    group.bench_function("reference_template_context_from_json", |b| {
        b.iter(|| {
            let mut ctx = json.clone();
            ctx["external_data"] = crm_lookup(&user_id);
            black_box(
                renderer
                    .render_json("reference", &Value::from_serialize(&ctx), 256 * 1024)
                    .expect("renders"),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
