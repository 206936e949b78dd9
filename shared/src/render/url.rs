//! URL templates (a route's `enrich.url`): event data may fill in parts of a URL, never
//! steer it elsewhere.
//!
//! - Every value a `{{ }}` writes is percent-encoded, every reserved character included
//!   (`/`, `?`, `#`, `\`, `@`, `:`, `%`, ...): only `A-Z a-z 0-9 - . _ ~` pass as they are.
//!   The router's `urlencode` filter does the same (a value it encoded is not encoded twice).
//! - At load, the literal text before the first tag must fix the scheme, host and port
//!   (the host ends at a `/`, `?` or `#` before any `{{ }}`).
//! - After rendering, the URL must keep the template's origin and literal prefix, have no
//!   `.`/`..` path segment, and no value may be empty or `none`.
//!
//! Anything else is a render error: the lookup is never sent.

use minijinja::value::ValueKind;
use minijinja::{Error, ErrorKind, Output, State, Value};
use url::Url;

/// Whether a byte passes unencoded (RFC 3986 "unreserved").
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Percent-encodes everything but the unreserved characters (UTF-8 bytes for the rest).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for &b in s.as_bytes() {
        if is_unreserved(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Whether `s` is already in encoded form: unreserved characters and `%XX` escapes only.
fn is_encoded(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
        } else if is_unreserved(b[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

fn invalid(msg: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg)
}

/// The text of a scalar value spliced into a URL; `none`, empty, lists and maps refused.
fn scalar_text(value: &Value) -> Result<String, Error> {
    match value.kind() {
        ValueKind::String | ValueKind::Number | ValueKind::Bool => {
            let text = value.to_string();
            if text.is_empty() {
                return Err(invalid(
                    "a value spliced into the URL is empty (it would change which resource the URL names)",
                ));
            }
            Ok(text)
        }
        ValueKind::None => Err(invalid("a value spliced into the URL is none")),
        _ => Err(invalid(
            "only a string or a number can be spliced into a URL (not a list or a map)",
        )),
    }
}

/// The `urlencode` filter: every reserved character encoded, `/` included.
pub fn urlencode(value: &Value) -> Result<Value, Error> {
    if value.is_safe()
        && let Some(s) = value.as_str()
        && is_encoded(s)
        && !s.is_empty()
    {
        return Ok(value.clone());
    }
    Ok(Value::from_safe_string(encode_component(&scalar_text(
        value,
    )?)))
}

/// The formatter of URL templates: every `{{ }}` output is encoded unless it already is.
pub fn formatter(out: &mut Output, _state: &State, value: &Value) -> Result<(), Error> {
    let encoded = urlencode(value)?;
    out.write_str(encoded.as_str().unwrap_or_default())
        .map_err(Error::from)
}

/// The literal text before a template's first tag (`{{`, `{%` or `{#`).
pub fn literal_prefix(source: &str) -> &str {
    let end = ["{{", "{%", "{#"]
        .iter()
        .filter_map(|t| source.find(t))
        .min()
        .unwrap_or(source.len());
    &source[..end]
}

/// What a URL template's literal prefix fixes: the origin and the start of the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlShape {
    prefix: Url,
}

impl UrlShape {
    /// Checks a template's source at load: its literal prefix must name an http(s) URL
    /// whose host is ended (by `/`, `?` or `#`) before the first tag.
    pub fn from_source(source: &str) -> Result<Self, String> {
        let source = source.trim_start();
        let prefix = literal_prefix(source);
        let templated = prefix.len() < source.len();
        let Some((scheme, rest)) = prefix.split_once("://") else {
            return Err(
                "must start with a literal `http://` or `https://` URL, before any `{{ }}`"
                    .to_owned(),
            );
        };
        if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
            return Err(format!("must be an http or https URL, not `{scheme}`"));
        }
        if templated && !rest.contains(['/', '?', '#']) {
            return Err(
                "the scheme, host and port must be written out: end the host with `/` before the first `{{ }}`"
                    .to_owned(),
            );
        }
        let fixed = if templated { prefix } else { source.trim_end() };
        let prefix = Url::parse(fixed)
            .map_err(|e| format!("the literal part `{fixed}` is not a valid URL: {e}"))?;
        if prefix.host().is_none() {
            return Err("the URL has no host".to_owned());
        }
        Ok(Self { prefix })
    }

    /// The fixed part every rendered URL starts with (what the circuit breakers call the
    /// lookup's endpoint, whatever the event writes after it).
    pub fn prefix(&self) -> &Url {
        &self.prefix
    }

    /// Checks a rendered URL against the template's shape.
    pub fn check(&self, rendered: &str) -> Result<Url, String> {
        let rendered = rendered.trim();
        if has_dot_segment(rendered) {
            return Err("the rendered URL has a `.` or `..` path segment".to_owned());
        }
        let url =
            Url::parse(rendered).map_err(|e| format!("the rendered URL is not valid: {e}"))?;
        if url.origin() != self.prefix.origin() {
            return Err(
                "the rendered URL's scheme, host or port differs from the template's".to_owned(),
            );
        }
        if !url.as_str().starts_with(self.prefix.as_str()) {
            return Err(
                "the rendered URL does not start with the template's literal part".to_owned(),
            );
        }
        Ok(url)
    }
}

/// Whether the path of `url` (before `?`/`#`) has a segment that is `.` or `..`, written
/// plainly or as `%2e`; `\` counts as a separator, as URL parsers treat it so.
fn has_dot_segment(url: &str) -> bool {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    let path_and_more = match after_scheme.find(['/', '\\']) {
        Some(i) => &after_scheme[i..],
        None => return false,
    };
    let path = path_and_more.split(['?', '#']).next().unwrap_or_default();
    path.split(['/', '\\']).any(|seg| {
        let lower = seg.to_ascii_lowercase().replace("%2e", ".");
        lower == "." || lower == ".."
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_but_unreserved_characters_is_encoded() {
        assert_eq!(encode_component("usr_1-a.b~c"), "usr_1-a.b~c");
        assert_eq!(
            encode_component("../../internal/admin"),
            "..%2F..%2Finternal%2Fadmin"
        );
        assert_eq!(encode_component("a?b#c\\d@e:f"), "a%3Fb%23c%5Cd%40e%3Af");
        assert_eq!(encode_component("%2f"), "%252f");
        assert_eq!(encode_component("ü 1"), "%C3%BC%201");
        assert!(
            is_encoded("a%2Fb") && !is_encoded("a/b") && !is_encoded("%2") && !is_encoded("%zz")
        );
    }

    #[test]
    fn the_literal_prefix_must_fix_the_origin() {
        assert!(UrlShape::from_source("https://crm.example.com/users/{{ x }}").is_ok());
        assert!(UrlShape::from_source("https://crm.example.com:8443/?q={{ x }}").is_ok());
        assert!(UrlShape::from_source("https://crm.example.com/users/42").is_ok());
        for bad in [
            "https://crm.example.com{{ x }}",
            "https://{{ host }}/users",
            "{{ base }}/users",
            "https://crm.example.com:{{ port }}/",
            "ftp://crm.example.com/{{ x }}",
            "crm.example.com/users/{{ x }}",
        ] {
            assert!(UrlShape::from_source(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_rendered_url_keeps_origin_and_prefix() {
        let shape = UrlShape::from_source("https://crm.example.com/users/{{ x }}").unwrap();
        assert_eq!(
            shape
                .check("https://crm.example.com/users/usr_1")
                .unwrap()
                .path(),
            "/users/usr_1"
        );
        for bad in [
            "https://crm.example.com/users/..",
            "https://crm.example.com/users/%2e%2E",
            "https://crm.example.com/users/./x",
            "https://crm.example.com/users\\..\\admin",
            "https://other.example.com/users/x",
            "http://crm.example.com/users/x",
            "https://crm.example.com:444/users/x",
            "https://crm.example.com/admin",
        ] {
            assert!(shape.check(bad).is_err(), "{bad}");
        }
    }
}
