//! [`Section`]: typed reads of one TOML table that record every problem in [`Diagnostics`]
//! instead of stopping at the first.

use super::diagnostics::{Diagnostics, Pointer, Seg, field_name};
use toml::{Table, Value};

/// One TOML table being read, and where it is in the file. Errors name `loc` (`[ingest]`,
/// `route `x``) and the field by its steps from there (`retry.schedule[0]` for a route's
/// `retry` table), and carry the place so the error gets its line.
pub(super) struct Section<'t> {
    pub loc: String,
    /// The table's steps from the top of the file.
    at: Pointer,
    /// How many steps of `at` `loc` stands for; the rest prefix each field's name.
    base: usize,
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
    /// Opens the table at `at`, named `loc`, and reports each key not in `known` as an
    /// unknown field.
    pub fn new(
        loc: impl Into<String>,
        at: Pointer,
        table: &'t Table,
        known: &[&str],
        diag: &mut Diagnostics,
    ) -> Self {
        let s = Self {
            loc: loc.into(),
            base: at.len(),
            at,
            table,
        };
        s.unknown_keys(known, diag);
        s
    }

    /// Opens a table nested in this one, `steps` below it (`retry`, or `triggers`, 0),
    /// reported at the same location.
    pub fn nested<'n>(
        &self,
        steps: &[Seg],
        table: &'n Table,
        known: &[&str],
        diag: &mut Diagnostics,
    ) -> Section<'n> {
        let s = Section {
            loc: self.loc.clone(),
            at: self.at(steps),
            base: self.base,
            table,
        };
        s.unknown_keys(known, diag);
        s
    }

    fn unknown_keys(&self, known: &[&str], diag: &mut Diagnostics) {
        for key in self.table.keys().filter(|k| !known.contains(&k.as_str())) {
            self.error_in(
                diag,
                &[Seg::key(key)],
                format!("unknown field; expected one of: {}", known.join(", ")),
            );
        }
    }

    /// The place of `steps` below this table.
    pub fn at(&self, steps: &[Seg]) -> Pointer {
        [self.at.as_slice(), steps].concat()
    }

    /// A problem with `key` of this table.
    pub fn error(&self, diag: &mut Diagnostics, key: &str, reason: impl Into<String>) {
        self.error_in(diag, &[Seg::key(key)], reason);
    }

    /// A problem `steps` below this table (a key that may hold dots, an element).
    pub fn error_in(&self, diag: &mut Diagnostics, steps: &[Seg], reason: impl Into<String>) {
        let at = self.at(steps);
        let field = field_name(&at[self.base..]);
        diag.error_at(at, &self.loc, Some(&field), reason);
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
