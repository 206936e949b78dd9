//! [`Section`]: typed reads of one TOML table that record every problem in [`Diagnostics`]
//! instead of stopping at the first.

use super::diagnostics::Diagnostics;
use toml::{Table, Value};

/// One TOML table being read. Errors name `loc` (`[ingest]`, `route `x``) and the field
/// with `prefix` before it (`retry.` for a route's `retry` table).
pub(super) struct Section<'t> {
    pub loc: String,
    prefix: String,
    table: &'t Table,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a datetime",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

impl<'t> Section<'t> {
    /// Opens a table and reports each key not in `known` as an unknown field.
    pub fn new(
        loc: impl Into<String>,
        prefix: &str,
        table: &'t Table,
        known: &[&str],
        diag: &mut Diagnostics,
    ) -> Self {
        let s = Self {
            loc: loc.into(),
            prefix: prefix.to_owned(),
            table,
        };
        for key in table.keys().filter(|k| !known.contains(&k.as_str())) {
            s.error(
                diag,
                key,
                format!("unknown field; expected one of: {}", known.join(", ")),
            );
        }
        s
    }

    /// Opens a table nested in this one (`prefix` like `retry.`), reported at the same
    /// location.
    pub fn nested<'n>(
        &self,
        prefix: &str,
        table: &'n Table,
        known: &[&str],
        diag: &mut Diagnostics,
    ) -> Section<'n> {
        Section::new(
            self.loc.clone(),
            &format!("{}{prefix}", self.prefix),
            table,
            known,
            diag,
        )
    }

    fn field(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    pub fn error(&self, diag: &mut Diagnostics, key: &str, reason: impl Into<String>) {
        diag.error(&self.loc, Some(&self.field(key)), reason);
    }

    fn typed<T>(
        &self,
        key: &str,
        want: &str,
        diag: &mut Diagnostics,
        get: impl Fn(&'t Value) -> Option<T>,
    ) -> Option<T> {
        let v = self.table.get(key)?;
        let got = get(v);
        if got.is_none() {
            self.error(diag, key, format!("must be {want}, got {}", type_name(v)));
        }
        got
    }

    pub fn str(&self, key: &str, diag: &mut Diagnostics) -> Option<&'t str> {
        self.typed(key, "a string", diag, Value::as_str)
    }

    pub fn required_str(&self, key: &str, diag: &mut Diagnostics) -> Option<&'t str> {
        if !self.table.contains_key(key) {
            self.error(diag, key, "is required");
        }
        self.str(key, diag)
    }

    /// A non-empty string naming a secret.
    pub fn secret_id(&self, key: &str, diag: &mut Diagnostics) -> Option<String> {
        let id = self.required_str(key, diag)?;
        if id.trim().is_empty() {
            self.error(diag, key, "must name a secret, got an empty string");
            return None;
        }
        Some(id.to_owned())
    }

    pub fn int_in(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
        diag: &mut Diagnostics,
    ) -> Option<i64> {
        let v = self.typed(key, "an integer", diag, Value::as_integer)?;
        if !range.contains(&v) {
            self.error(
                diag,
                key,
                format!(
                    "must be between {} and {}, got {v}",
                    range.start(),
                    range.end()
                ),
            );
            return None;
        }
        Some(v)
    }

    pub fn float(&self, key: &str, diag: &mut Diagnostics) -> Option<f64> {
        self.typed(key, "a number", diag, |v| {
            v.as_float().or_else(|| v.as_integer().map(|i| i as f64))
        })
    }

    pub fn bool(&self, key: &str, diag: &mut Diagnostics) -> Option<bool> {
        self.typed(key, "true or false", diag, Value::as_bool)
    }

    pub fn table(&self, key: &str, diag: &mut Diagnostics) -> Option<&'t Table> {
        self.typed(key, "a table", diag, Value::as_table)
    }

    pub fn array(&self, key: &str, diag: &mut Diagnostics) -> Option<&'t Vec<Value>> {
        self.typed(key, "an array", diag, Value::as_array)
    }

    pub fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }
}
