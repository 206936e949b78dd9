//! Typed reads of one TOML table that record every problem instead of stopping at the first.

use super::load::LoadError;
use toml::{Table, Value};

pub(super) struct Section<'t> {
    pub loc: String,
    pub prefix: String,
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
        errs: &mut Vec<LoadError>,
    ) -> Self {
        let s = Self {
            loc: loc.into(),
            prefix: prefix.to_owned(),
            table,
        };
        for key in table.keys().filter(|k| !known.contains(&k.as_str())) {
            s.error(
                errs,
                key,
                format!("unknown field; expected one of: {}", known.join(", ")),
            );
        }
        s
    }

    pub fn field(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    pub fn error(&self, errs: &mut Vec<LoadError>, key: &str, reason: impl Into<String>) {
        errs.push(LoadError::new(&self.loc, Some(&self.field(key)), reason));
    }

    fn typed<T>(
        &self,
        key: &str,
        want: &str,
        errs: &mut Vec<LoadError>,
        get: impl Fn(&'t Value) -> Option<T>,
    ) -> Option<T> {
        let v = self.table.get(key)?;
        let got = get(v);
        if got.is_none() {
            self.error(errs, key, format!("must be {want}, got {}", type_name(v)));
        }
        got
    }

    pub fn str(&self, key: &str, errs: &mut Vec<LoadError>) -> Option<&'t str> {
        self.typed(key, "a string", errs, Value::as_str)
    }

    pub fn required_str(&self, key: &str, errs: &mut Vec<LoadError>) -> Option<&'t str> {
        if !self.table.contains_key(key) {
            self.error(errs, key, "is required");
        }
        self.str(key, errs)
    }

    /// A non-empty string naming a secret.
    pub fn secret_id(&self, key: &str, errs: &mut Vec<LoadError>) -> Option<String> {
        let id = self.required_str(key, errs)?;
        if id.trim().is_empty() {
            self.error(errs, key, "must name a secret, got an empty string");
            return None;
        }
        Some(id.to_owned())
    }

    pub fn int_in(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
        errs: &mut Vec<LoadError>,
    ) -> Option<i64> {
        let v = self.typed(key, "an integer", errs, Value::as_integer)?;
        if !range.contains(&v) {
            self.error(
                errs,
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

    pub fn float(&self, key: &str, errs: &mut Vec<LoadError>) -> Option<f64> {
        self.typed(key, "a number", errs, |v| {
            v.as_float().or_else(|| v.as_integer().map(|i| i as f64))
        })
    }

    pub fn bool(&self, key: &str, errs: &mut Vec<LoadError>) -> Option<bool> {
        self.typed(key, "true or false", errs, Value::as_bool)
    }

    pub fn table(&self, key: &str, errs: &mut Vec<LoadError>) -> Option<&'t Table> {
        self.typed(key, "a table", errs, Value::as_table)
    }

    pub fn array(&self, key: &str, errs: &mut Vec<LoadError>) -> Option<&'t Vec<Value>> {
        self.typed(key, "an array", errs, Value::as_array)
    }

    pub fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }
}
