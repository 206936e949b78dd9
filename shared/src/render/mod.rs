//! Rendering with minijinja: one environment per routes load for payloads (JSON out,
//! bare values JSON-escaped) and one for URL templates (every value percent-encoded, the
//! result checked against the template's shape); strict undefined, bounded work (fuel)
//! and bounded output everywhere.

mod tojson;
pub mod url;

use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value};
use serde::de::IgnoredAny;
use std::io;

pub use url::UrlShape;

/// How many VM instructions one render may spend: far above any sane payload template
/// (the reference template spends well under 1,000), far below a runaway loop.
pub const RENDER_FUEL: u64 = 500_000;
/// Output cap for URL templates (enrich URLs).
pub const MAX_TEXT_BYTES: usize = 8 * 1024;
/// The names a template may use at its top level (`external` only with `enrich`).
pub const CONTEXT_NAMES: [&str; 5] = ["event", "route", "delivery", "now", "external"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("template error: {0}")]
    Template(String),
    #[error("rendered payload is larger than the route's max_payload_kb ({limit} bytes)")]
    TooLarge { limit: usize },
    #[error("rendered payload is not valid JSON: {0}")]
    NotJson(String),
    #[error("{0}")]
    Url(String),
}

/// Which environment a template belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateKind {
    /// A JSON payload: bare values are written as JSON string contents.
    Payload,
    /// A URL: every value is percent-encoded.
    Url,
}

/// All templates of one routes file, compiled once.
#[derive(Debug)]
pub struct Renderer {
    payloads: Environment<'static>,
    urls: Environment<'static>,
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new()
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_fuel(Some(RENDER_FUEL));
    env.set_recursion_limit(64);
    env.set_keep_trailing_newline(false);
    env.add_filter("tojson", tojson::tojson);
    env.add_filter("urlencode", url::urlencode);
    env
}

impl Renderer {
    pub fn new() -> Self {
        let mut payloads = environment();
        payloads.set_formatter(tojson::payload_formatter);
        let mut urls = environment();
        urls.set_formatter(url::formatter);
        Self { payloads, urls }
    }

    fn env(&self, kind: TemplateKind) -> &Environment<'static> {
        match kind {
            TemplateKind::Payload => &self.payloads,
            TemplateKind::Url => &self.urls,
        }
    }

    /// Compiles a payload template under `name`; a syntax error names its line.
    pub fn add(&mut self, name: &str, source: &str) -> Result<(), String> {
        self.add_kind(TemplateKind::Payload, name, source)
    }

    /// Compiles `source` under `name` in the environment of `kind`.
    pub fn add_kind(&mut self, kind: TemplateKind, name: &str, source: &str) -> Result<(), String> {
        let env = match kind {
            TemplateKind::Payload => &mut self.payloads,
            TemplateKind::Url => &mut self.urls,
        };
        env.add_template_owned(name.to_owned(), source.to_owned())
            .map_err(describe)
    }

    /// The top-level names a template reads that it does not define itself.
    pub fn undeclared_names(&self, kind: TemplateKind, name: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .env(kind)
            .get_template(name)
            .map(|t| t.undeclared_variables(false).into_iter().collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Renders a JSON payload: at most `max_bytes`, and it must parse as JSON.
    pub fn render_json(
        &self,
        name: &str,
        ctx: &Value,
        max_bytes: usize,
    ) -> Result<String, RenderError> {
        let out = self.render_capped(TemplateKind::Payload, name, ctx, max_bytes)?;
        let mut de = serde_json::Deserializer::from_str(&out);
        serde::Deserialize::deserialize(&mut de)
            .and_then(|IgnoredAny| de.end())
            .map_err(|e| RenderError::NotJson(e.to_string()))?;
        Ok(out)
    }

    /// Renders a URL template and checks the result keeps the template's `shape`.
    pub fn render_url(
        &self,
        name: &str,
        ctx: &Value,
        shape: &UrlShape,
    ) -> Result<::url::Url, RenderError> {
        let out = self.render_capped(TemplateKind::Url, name, ctx, MAX_TEXT_BYTES)?;
        shape.check(&out).map_err(RenderError::Url)
    }

    fn render_capped(
        &self,
        kind: TemplateKind,
        name: &str,
        ctx: &Value,
        max_bytes: usize,
    ) -> Result<String, RenderError> {
        let tmpl = self
            .env(kind)
            .get_template(name)
            .map_err(|e| RenderError::Template(describe(e)))?;
        let mut out = CappedBuf {
            buf: Vec::with_capacity(1024.min(max_bytes)),
            max: max_bytes,
            overflowed: false,
        };
        match tmpl.render_captured_to(ctx, &mut out) {
            Ok(_) => {}
            Err(_) if out.overflowed => return Err(RenderError::TooLarge { limit: max_bytes }),
            Err(e) if e.kind() == ErrorKind::OutOfFuel => {
                return Err(RenderError::Template(format!(
                    "the template ran too long (over {RENDER_FUEL} steps); look for a loop that never ends"
                )));
            }
            Err(e) => return Err(RenderError::Template(describe(e))),
        }
        String::from_utf8(out.buf)
            .map_err(|_| RenderError::Template("output is not UTF-8".to_owned()))
    }
}

/// One line: the error's message, its template line when known, and its cause.
fn describe(e: minijinja::Error) -> String {
    let mut msg = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    if let Some(line) = e.line() {
        msg.push_str(&format!(" (line {line})"));
    }
    msg
}

struct CappedBuf {
    buf: Vec<u8>,
    max: usize,
    overflowed: bool,
}

impl io::Write for CappedBuf {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > self.max {
            self.overflowed = true;
            return Err(io::Error::other("output limit reached"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    fn renderer(src: &str) -> Renderer {
        let mut r = Renderer::new();
        r.add("t", src).unwrap();
        r
    }

    #[test]
    fn renders_json_with_tojson() {
        let r = renderer(r#"{"user": {{ event.user_id | tojson }}, "n": {{ n }}}"#);
        let ctx = context! { event => context! { user_id => "u\"1" }, n => 3 };
        assert_eq!(
            r.render_json("t", &ctx, 1024).unwrap(),
            r#"{"user": "u\"1", "n": 3}"#
        );
    }

    #[test]
    fn an_undefined_name_is_an_error_not_an_empty_string() {
        let r = renderer(r#"{"text": "{{ event.data.missing }}"}"#);
        let ctx = context! { event => context! { data => context! {} } };
        assert!(matches!(
            r.render_json("t", &ctx, 1024),
            Err(RenderError::Template(_))
        ));
    }

    #[test]
    fn output_must_be_json() {
        let r = renderer(r#"{"a": {{ x }}"#);
        let err = r.render_json("t", &context! { x => 1 }, 1024).unwrap_err();
        assert!(matches!(err, RenderError::NotJson(_)));
        let r = renderer(r#"{"a": 1} trailing"#);
        assert!(matches!(
            r.render_json("t", &context! {}, 1024),
            Err(RenderError::NotJson(_))
        ));
    }

    #[test]
    fn output_over_the_limit_is_too_large() {
        let r = renderer(r#"["{{ "x" * 5000 }}"]"#);
        assert_eq!(
            r.render_json("t", &context! {}, 4096).unwrap_err(),
            RenderError::TooLarge { limit: 4096 }
        );
        assert!(r.render_json("t", &context! {}, 8192).is_ok());
    }

    #[test]
    fn a_runaway_loop_runs_out_of_fuel() {
        let r = renderer(
            "[{% for i in range(100000) %}{% for j in range(100000) %}{% if false %}{{ i }}{% endif %}{% endfor %}{% endfor %}]",
        );
        let err = r.render_json("t", &context! {}, 1 << 20).unwrap_err();
        assert!(
            matches!(&err, RenderError::Template(m) if m.contains("ran too long")),
            "{err}"
        );
    }

    #[test]
    fn a_huge_output_stops_at_the_cap_instead_of_filling_memory() {
        let r = renderer("[{% for i in range(100000) %}\"{{ 'x' * 1000 }}\",{% endfor %}0]");
        assert_eq!(
            r.render_json("t", &context! {}, 256 * 1024).unwrap_err(),
            RenderError::TooLarge { limit: 256 * 1024 }
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let mut r = Renderer::new();
        let err = r.add("t", "{\n\"a\": {{ x }\n}").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn undeclared_names_are_listed() {
        let r = renderer("{% set y = 1 %}{{ event.x }}{{ foo }}{{ y }}");
        assert_eq!(
            r.undeclared_names(TemplateKind::Payload, "t"),
            ["event", "foo"]
        );
    }
}
