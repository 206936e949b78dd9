//! A faster `tojson` filter: writes template values straight to JSON text instead of going
//! through serde. Same output shape as minijinja's (compact), without its HTML-safety
//! escapes of `<>&'`, which a JSON webhook body does not need; `indent` falls back to the
//! built-in filter.

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Error, ErrorKind, Output, State, Value};
use std::fmt::Write;

pub fn tojson(value: &Value, indent: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    if indent.is_some() || kwargs.args().next().is_some() {
        return minijinja::filters::tojson(value, indent, kwargs);
    }
    let mut out = String::with_capacity(32);
    write_json(value, &mut out, 0)?;
    Ok(Value::from_safe_string(out))
}

const MAX_DEPTH: usize = 128;

fn write_json(v: &Value, out: &mut String, depth: usize) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "value nested too deeply for tojson",
        ));
    }
    match v.kind() {
        ValueKind::None => out.push_str("null"),
        // Strict: an undefined name is an error, never a silent `null`.
        ValueKind::Undefined => return Err(Error::from(ErrorKind::UndefinedError)),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => match v
            .is_integer()
            .then(|| i128::try_from(v.clone()).ok())
            .flatten()
        {
            Some(i) => {
                let _ = write!(out, "{i}");
            }
            None => {
                let f = f64::try_from(v.clone()).unwrap_or(f64::NAN);
                if f.is_finite() {
                    // serde_json's float format (shortest round-trip, always with a dot or exponent).
                    out.push_str(
                        &serde_json::Number::from_f64(f)
                            .map_or_else(|| "null".to_owned(), |n| n.to_string()),
                    );
                } else {
                    out.push_str("null");
                }
            }
        },
        ValueKind::String => write_str(v.as_str().unwrap_or_default(), out),
        ValueKind::Seq | ValueKind::Iterable => {
            out.push('[');
            for (i, item) in v.try_iter()?.enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(&item, out, depth + 1)?;
            }
            out.push(']');
        }
        ValueKind::Map => {
            out.push('{');
            for (i, key) in v.try_iter()?.enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match key.as_str() {
                    Some(k) => write_str(k, out),
                    None => write_str(&key.to_string(), out),
                }
                out.push(':');
                write_json(&v.get_item(&key)?, out, depth + 1)?;
            }
            out.push('}');
        }
        _ => {
            let s = serde_json::to_string(v).map_err(|e| {
                Error::new(ErrorKind::InvalidOperation, "cannot serialize to JSON").with_source(e)
            })?;
            out.push_str(&s);
        }
    }
    Ok(())
}

fn write_str(s: &str, out: &mut String) {
    out.push('"');
    escape_into(s, out);
    out.push('"');
}

/// Writes `s` as the inside of a JSON string (quotes, backslashes, controls escaped).
pub(super) fn escape_into(s: &str, out: &mut String) {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
}

/// The formatter of payload templates. `tojson` output (and anything else marked safe)
/// goes in as it is; every other value is written as the inside of a JSON string, so a
/// bare `"{{ event.data.text }}"` stays one string whatever the user typed: event data
/// cannot add keys or close the string. Numbers, booleans and `none` print as before.
pub fn payload_formatter(out: &mut Output, _state: &State, value: &Value) -> Result<(), Error> {
    if value.is_safe()
        && let Some(s) = value.as_str()
    {
        return out.write_str(s).map_err(Error::from);
    }
    match value.kind() {
        ValueKind::Number | ValueKind::Bool | ValueKind::None => {
            write!(out, "{value}").map_err(Error::from)
        }
        _ => {
            let text = value.to_string();
            let mut escaped = String::with_capacity(text.len() + 2);
            escape_into(&text, &mut escaped);
            out.write_str(&escaped).map_err(Error::from)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Renderer;
    use minijinja::{Value, context};

    fn render(src: &str, v: serde_json::Value) -> String {
        let mut r = Renderer::new();
        r.add("t", src).unwrap();
        r.render_json("t", &context! { v => Value::from_serialize(&v) }, 1 << 20)
            .unwrap()
    }

    #[test]
    fn round_trips_every_json_shape() {
        let v = serde_json::json!({
            "s": "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} unicode é 😀 <>&'",
            "i": -42, "u": 18446744073709551615u64, "f": 0.92, "big": 1e300, "t": true, "n": null,
            "a": [1, "x", [], {}], "o": {"nested": {"deep": [1.5]}}
        });
        let out = render("{{ v | tojson }}", v.clone());
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&out).unwrap(),
            v,
            "{out}"
        );
    }

    #[test]
    fn matches_serde_json_for_plain_values() {
        for v in [
            serde_json::json!("a\"b"),
            serde_json::json!(0.1),
            serde_json::json!([1, 2]),
            serde_json::json!({"k": "v"}),
        ] {
            assert_eq!(
                render("{{ v | tojson }}", v.clone()),
                serde_json::to_string(&v).unwrap()
            );
        }
    }

    #[test]
    fn an_undefined_value_is_an_error_not_null() {
        let mut r = Renderer::new();
        r.add("t", "{{ v.missing | tojson }}").unwrap();
        let ctx = context! { v => Value::from_serialize(serde_json::json!({"present": 1})) };
        assert!(r.render_json("t", &ctx, 1024).is_err());
    }

    #[test]
    fn indent_falls_back_to_the_builtin() {
        let out = render("{{ v | tojson(indent=2) }}", serde_json::json!({"k": 1}));
        assert_eq!(out, "{\n  \"k\": 1\n}");
    }
}
