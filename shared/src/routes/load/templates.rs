//! A route's templates: where the payload template comes from (`template` inline or
//! `template_file`), compiling it and the enrich URL template into the [`Renderer`], and
//! refusing names the template context does not have.

use crate::render::{CONTEXT_NAMES, Renderer, TemplateKind, UrlShape};
use crate::routes::diagnostics::Diagnostics;
use crate::routes::section::Section;
use crate::routes::{enrich_template, payload_template};
use std::path::Path;

/// The names a route's templates may use: `external` only when the route has an enrich
/// lookup to fill it.
pub(super) fn context_names(with_external: bool) -> Vec<&'static str> {
    CONTEXT_NAMES
        .iter()
        .copied()
        .filter(|n| *n != "external" || with_external)
        .collect()
}

/// The payload template's text: `template` inline, or `template_file` read relative to the
/// routes file's directory. Exactly one of them is required.
pub(super) fn payload_source(
    s: &Section<'_>,
    base_dir: &Path,
    diag: &mut Diagnostics,
) -> Option<String> {
    match (s.str("template", diag), s.str("template_file", diag)) {
        (Some(_), Some(_)) => {
            s.error(
                diag,
                "template",
                "give either `template` or `template_file`, not both",
            );
            None
        }
        (Some(inline), None) => Some(inline.to_owned()),
        (None, Some(file)) => {
            let resolved = base_dir.join(file);
            match std::fs::read_to_string(&resolved) {
                Ok(src) => Some(src),
                Err(e) => {
                    s.error(
                        diag,
                        "template_file",
                        format!(
                            "cannot read `{file}` (resolved to {}): {e}",
                            resolved.display()
                        ),
                    );
                    None
                }
            }
        }
        (None, None) if !s.has("template") && !s.has("template_file") => {
            s.error(diag, "template", "is required (or `template_file`)");
            None
        }
        (None, None) => None,
    }
}

/// Compiles route `route`'s payload template; errors name the field it came from.
pub(super) fn compile_payload(
    s: &Section<'_>,
    renderer: &mut Renderer,
    route: &str,
    src: &str,
    allowed: &[&str],
    diag: &mut Diagnostics,
) {
    let key = if s.has("template") {
        "template"
    } else {
        "template_file"
    };
    let template = Template {
        kind: TemplateKind::Payload,
        name: &payload_template(route),
        src,
        allowed,
    };
    compile(s, key, renderer, template, diag);
}

/// Compiles a JSON template `src` (a reply's) under `name`; errors name field `key`.
pub(super) fn compile_json(
    s: &Section<'_>,
    key: &str,
    renderer: &mut Renderer,
    name: &str,
    src: &str,
    allowed: &[&str],
    diag: &mut Diagnostics,
) {
    let template = Template {
        kind: TemplateKind::Payload,
        name,
        src,
        allowed,
    };
    compile(s, key, renderer, template, diag);
}

/// Reads the enrich table's `url` (`enrich` is that table, already open), compiles it as
/// route `route`'s URL template, and returns what its literal part fixes. An enrich URL
/// cannot use `external`: that is what the lookup fetches.
pub(super) fn compile_enrich_url(
    enrich: &Section<'_>,
    renderer: &mut Renderer,
    route: &str,
    diag: &mut Diagnostics,
) -> Option<UrlShape> {
    let url = enrich.required_str("url", diag)?;
    let template = Template {
        kind: TemplateKind::Url,
        name: &enrich_template(route),
        src: url,
        allowed: &context_names(false),
    };
    compile(enrich, "url", renderer, template, diag);
    UrlShape::from_source(url)
        .map_err(|reason| enrich.error(diag, "url", reason))
        .ok()
}

/// One template to compile: its kind, its name in the renderer, its text, and the context
/// names it may use.
struct Template<'a> {
    kind: TemplateKind,
    name: &'a str,
    src: &'a str,
    allowed: &'a [&'a str],
}

/// Adds `t` to the renderer; a syntax error or a name outside `t.allowed` is an error on
/// field `key` of `s`.
fn compile(
    s: &Section<'_>,
    key: &str,
    renderer: &mut Renderer,
    t: Template<'_>,
    diag: &mut Diagnostics,
) {
    if let Err(e) = renderer.add_kind(t.kind, t.name, t.src) {
        s.error(diag, key, format!("template syntax error: {e}"));
        return;
    }
    let unknown: Vec<String> = renderer
        .undeclared_names(t.kind, t.name)
        .into_iter()
        .filter(|n| !t.allowed.contains(&n.as_str()))
        .collect();
    if !unknown.is_empty() {
        let what = if unknown.len() == 1 { "name" } else { "names" };
        s.error(
            diag,
            key,
            format!(
                "template uses unknown {what} {}; the context has: {}",
                unknown
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                t.allowed.join(", ")
            ),
        );
    }
}
