//! The renderer never panics, hangs or exhausts memory: the first line of the input is a
//! template, the rest a JSON context; output is capped and work is bounded by fuel.
#![no_main]

use libfuzzer_sys::fuzz_target;
use router_core::render::{RenderError, Renderer};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (template, context) = text.split_once('\n').unwrap_or((text, "{}"));
    let mut renderer = Renderer::new();
    if renderer.add("t", template).is_err() {
        return;
    }
    let ctx: serde_json::Value = serde_json::from_str(context).unwrap_or_default();
    match renderer.render_json("t", &minijinja::Value::from_serialize(&ctx), 64 * 1024) {
        Ok(out) => {
            assert!(out.len() <= 64 * 1024);
            serde_json::from_str::<serde::de::IgnoredAny>(&out).expect("rendered output is JSON");
        }
        Err(
            RenderError::Template(_)
            | RenderError::TooLarge { .. }
            | RenderError::NotJson(_)
            | RenderError::Url(_),
        ) => {}
    }
});
