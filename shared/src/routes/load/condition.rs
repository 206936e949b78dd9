//! A trigger's `where` table: each key a dotted path into the event, each value what must
//! hold there (a value to equal, or one operator table). Every problem is reported, each at
//! its own key.

use crate::domain::EventType;
use crate::routes::condition::{Bound, Condition, FieldPath, Scalar, Test};
use crate::routes::diagnostics::{Diagnostics, Seg};
use crate::routes::section::Section;
use toml::{Table, Value};

const OPERATORS: &[&str] = &[
    "any_of",
    "prefix",
    "gt",
    "gte",
    "lt",
    "lte",
    "exists",
    "anything_but",
];

/// The top-level fields of an event and what they hold.
const FIELDS: &[(&str, Kind)] = &[
    ("id", Kind::Str),
    ("event_type", Kind::Str),
    ("name", Kind::Str),
    ("score", Kind::Num),
    ("user_id", Kind::Str),
    ("session_id", Kind::Str),
];

/// What a path holds, as far as the file can know: a top-level field's type, or anything
/// (inside `data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Num,
    Any,
}

/// One condition being read: its key's place and what the path names.
struct Key<'a> {
    s: &'a Section<'a>,
    steps: Vec<Seg>,
    path: &'a str,
    field: FieldPath,
    kind: Kind,
}

impl Key<'_> {
    fn error(&self, diag: &mut Diagnostics, reason: impl Into<String>) {
        self.s.error_in(diag, &self.steps, reason);
    }

    /// Always there: `exists = false` could never hold.
    fn always_present(&self) -> bool {
        matches!(
            self.field,
            FieldPath::Id | FieldPath::EventType | FieldPath::Score
        )
    }
}

/// The trigger's `where` conditions (none without the table); `None` on an error.
pub(super) fn conditions(ts: &Section<'_>, diag: &mut Diagnostics) -> Option<Vec<Condition>> {
    let Some(table) = ts.table("where", diag) else {
        return (!ts.has("where")).then(Vec::new);
    };
    let mark = diag.mark();
    let mut out = Vec::new();
    for (path, value) in table {
        let steps = vec![Seg::key("where"), Seg::key(path)];
        // `data.channel = ...` unquoted: TOML made `data` a table.
        if let Some(inner) = value
            .as_table()
            .and_then(nested_field)
            .filter(|_| !path.contains('.'))
        {
            ts.error_in(
                diag,
                &steps,
                format!(
                    "holds fields, not a condition: TOML reads an unquoted `{path}.{inner}` as a \
                     table inside `{path}`; quote the whole path: \"{path}.{inner}\" = ..."
                ),
            );
            continue;
        }
        let Some((field, kind)) = field_path(path)
            .map_err(|why| ts.error_in(diag, &steps, why))
            .ok()
        else {
            continue;
        };
        let key = Key {
            s: ts,
            steps,
            path,
            field,
            kind,
        };
        if let Some(test) = test(&key, value, diag) {
            out.push(Condition {
                path: key.field,
                // Given when the whole file is read (`assign_slots`).
                slot: usize::MAX,
                id: usize::MAX,
                test,
            });
        }
    }
    diag.none_since(mark).then_some(out)
}

/// Gives every condition of `routes` its path's slot (one per distinct path) and its id
/// (one per distinct path and test); how many of each.
pub(super) fn assign_slots(routes: &mut [crate::routes::Route]) -> (usize, usize) {
    let mut paths: std::collections::HashMap<FieldPath, usize> = Default::default();
    // Keyed by the test's debug form: it holds floats, which have no `Hash`.
    let mut ids: std::collections::HashMap<(usize, String), usize> = Default::default();
    for c in routes
        .iter_mut()
        .flat_map(|r| r.triggers.iter_mut())
        .flat_map(|t| t.conditions.iter_mut())
    {
        let next = paths.len();
        c.slot = *paths.entry(c.path.clone()).or_insert(next);
        let next = ids.len();
        c.id = *ids.entry((c.slot, format!("{:?}", c.test))).or_insert(next);
    }
    (paths.len(), ids.len())
}

/// A table none of whose keys is an operator: the file meant a deeper path, written as an
/// unquoted dotted key (`data.channel = "voice"`); its first key.
fn nested_field(t: &Table) -> Option<&str> {
    let first = t.keys().next()?;
    t.keys()
        .all(|k| !OPERATORS.contains(&k.as_str()))
        .then_some(first.as_str())
}

/// The field a dotted path names, and its kind; why not when it names none.
fn field_path(path: &str) -> Result<(FieldPath, Kind), String> {
    let mut steps = path.split('.');
    let root = steps.next().unwrap_or_default();
    let rest: Vec<&str> = steps.collect();
    if root.is_empty() || rest.iter().any(|s| s.is_empty()) {
        return Err("has an empty step: write a path like \"data.order.total\"".to_owned());
    }
    if root == "data" {
        if rest.is_empty() {
            return Err(
                "`data` is an object: name a field inside it, like \"data.channel\"".to_owned(),
            );
        }
        let keys = rest.into_iter().map(str::to_owned).collect();
        return Ok((FieldPath::Data(keys), Kind::Any));
    }
    let Some(&(_, kind)) = FIELDS.iter().find(|(name, _)| *name == root) else {
        return Err(format!(
            "`{root}` is not a field of the event: a condition names one of {}, or data.<key>",
            FIELDS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    if !rest.is_empty() {
        return Err(format!(
            "is outside the event: `{root}` holds a {}, with no fields inside it",
            if kind == Kind::Num {
                "number"
            } else {
                "string"
            }
        ));
    }
    let field = match root {
        "id" => FieldPath::Id,
        "event_type" => FieldPath::EventType,
        "name" => FieldPath::Name,
        "score" => FieldPath::Score,
        "user_id" => FieldPath::UserId,
        _ => FieldPath::SessionId,
    };
    Ok((field, kind))
}

/// What `value` asks of the path: a value to equal, or an operator table.
fn test(key: &Key<'_>, value: &Value, diag: &mut Diagnostics) -> Option<Test> {
    match value {
        Value::Table(ops) => operators(key, ops, diag),
        Value::Array(_) => {
            key.error(
                diag,
                "is a list: to match any of several values write `{ any_of = [...] }`",
            );
            None
        }
        v => scalar(key, v, "", diag).map(Test::Equals),
    }
}

/// A value to compare with, checked against the path's kind (`op` names the operator in
/// messages, `""` for a plain value).
fn scalar(key: &Key<'_>, v: &Value, op: &str, diag: &mut Diagnostics) -> Option<Scalar> {
    let what = if op.is_empty() {
        String::new()
    } else {
        format!("`{op}`: ")
    };
    let s = match v {
        Value::String(s) => Scalar::Str(s.clone()),
        Value::Integer(i) => Scalar::Num(*i as f64),
        Value::Float(f) if f.is_finite() => Scalar::Num(*f),
        Value::Boolean(b) => Scalar::Bool(*b),
        Value::Float(_) => {
            key.error(diag, format!("{what}must be a finite number"));
            return None;
        }
        _ => {
            key.error(
                diag,
                format!("{what}must be a string, a number or true/false"),
            );
            return None;
        }
    };
    let clash = match (&s, key.kind) {
        (_, Kind::Any) => None,
        (Scalar::Str(_), Kind::Str) | (Scalar::Num(_), Kind::Num) => None,
        (Scalar::Num(_), Kind::Str) => Some("a number compared with a string"),
        (Scalar::Str(_), Kind::Num) => Some("a string compared with a number"),
        (Scalar::Bool(_), _) => Some("true/false compared with a field that never holds one"),
    };
    if let Some(clash) = clash {
        let holds = if key.kind == Kind::Num {
            "a number"
        } else {
            "a string"
        };
        key.error(diag, format!("{what}{clash}: `{}` holds {holds}", key.path));
        return None;
    }
    if let (FieldPath::EventType, Scalar::Str(t)) = (&key.field, &s)
        && EventType::parse(t).is_none()
    {
        key.error(
            diag,
            format!(
                "{what}`{t}` is not an event type: one of {}",
                EventType::ALL.join(", ")
            ),
        );
        return None;
    }
    Some(s)
}

/// One operator table: one operator, or a lower and an upper bound.
fn operators(key: &Key<'_>, ops: &Table, diag: &mut Diagnostics) -> Option<Test> {
    let unknown: Vec<&str> = ops
        .keys()
        .map(String::as_str)
        .filter(|k| !OPERATORS.contains(k))
        .collect();
    if !unknown.is_empty() {
        let hint = match nested_field(ops) {
            Some(inner) => format!(
                " (for a field inside `{}`, quote the whole path: \"{}.{inner}\" = ...)",
                key.path, key.path
            ),
            None => String::new(),
        };
        key.error(
            diag,
            format!(
                "unknown operator `{}`; expected one of: {}{hint}",
                unknown.join("`, `"),
                OPERATORS.join(", ")
            ),
        );
        return None;
    }
    let bounds = ["gt", "gte", "lt", "lte"];
    let others: Vec<&str> = ops
        .keys()
        .map(String::as_str)
        .filter(|k| !bounds.contains(k))
        .collect();
    match (others.as_slice(), ops.len()) {
        (_, 0) => {
            key.error(
                diag,
                format!("has no operator; give one of: {}", OPERATORS.join(", ")),
            );
            None
        }
        ([], _) => range(key, ops, diag),
        ([one], 1) => single(key, one, &ops[*one], diag),
        _ => {
            let all: Vec<&str> = ops.keys().map(String::as_str).collect();
            key.error(
                diag,
                format!(
                    "`{}` cannot share one condition: give one operator, or a lower and an \
                     upper bound (`gte` and `lt`)",
                    all.join("` and `")
                ),
            );
            None
        }
    }
}

/// `any_of`, `prefix`, `exists` or `anything_but`.
fn single(key: &Key<'_>, op: &str, v: &Value, diag: &mut Diagnostics) -> Option<Test> {
    match op {
        "exists" => match v.as_bool() {
            Some(false) if key.always_present() => {
                key.error(
                    diag,
                    format!(
                        "`exists = false` never holds: every event has `{}`",
                        key.path
                    ),
                );
                None
            }
            Some(b) => Some(Test::Exists(b)),
            None => {
                key.error(diag, "`exists`: must be true or false");
                None
            }
        },
        "prefix" => prefix(key, v, diag),
        "any_of" => scalars(key, op, v, false, diag).map(Test::AnyOf),
        _ => scalars(key, op, v, true, diag).map(Test::AnythingBut),
    }
}

fn prefix(key: &Key<'_>, v: &Value, diag: &mut Diagnostics) -> Option<Test> {
    match v.as_str() {
        Some(_) if key.kind == Kind::Num => {
            key.error(
                diag,
                format!(
                    "`prefix`: a string compared with a number: `{}` holds a number",
                    key.path
                ),
            );
            None
        }
        Some("") => {
            key.error(
                diag,
                "`prefix`: an empty prefix matches every string; for \"is there\" write `exists = true`",
            );
            None
        }
        Some(p) => Some(Test::Prefix(p.to_owned())),
        None => {
            key.error(diag, "`prefix`: must be a string");
            None
        }
    }
}

/// A non-empty list of values (or, where `one_ok`, a single value).
fn scalars(
    key: &Key<'_>,
    op: &str,
    v: &Value,
    one_ok: bool,
    diag: &mut Diagnostics,
) -> Option<Vec<Scalar>> {
    let items = match v {
        Value::Array(items) if items.is_empty() => {
            key.error(diag, format!("`{op}`: must list at least one value"));
            return None;
        }
        Value::Array(items) => items.as_slice(),
        one if one_ok => std::slice::from_ref(one),
        _ => {
            key.error(diag, format!("`{op}`: must be a list of values"));
            return None;
        }
    };
    let mark = diag.mark();
    let out: Vec<Scalar> = items
        .iter()
        .filter_map(|item| scalar(key, item, op, diag))
        .collect();
    diag.none_since(mark).then_some(out)
}

/// `gt`/`gte` and `lt`/`lte`: at most one of each, a number each, a range something can be in.
fn range(key: &Key<'_>, ops: &Table, diag: &mut Diagnostics) -> Option<Test> {
    if key.kind == Kind::Str {
        key.error(
            diag,
            format!(
                "a number compared with a string: `{}` holds a string",
                key.path
            ),
        );
        return None;
    }
    let mark = diag.mark();
    let bound = |strict: &str, loose: &str, diag: &mut Diagnostics| -> Option<Bound> {
        if ops.contains_key(strict) && ops.contains_key(loose) {
            key.error(diag, format!("give `{strict}` or `{loose}`, not both"));
            return None;
        }
        let (op, inclusive) = if ops.contains_key(strict) {
            (strict, false)
        } else {
            (loose, true)
        };
        let v = ops.get(op)?;
        let value = match v {
            Value::Integer(i) => *i as f64,
            Value::Float(f) if f.is_finite() => *f,
            _ => {
                key.error(diag, format!("`{op}`: must be a finite number"));
                return None;
            }
        };
        Some(Bound { value, inclusive })
    };
    let above = bound("gt", "gte", diag);
    let below = bound("lt", "lte", diag);
    if let (Some(a), Some(b)) = (above, below) {
        let empty = a.value > b.value || (a.value == b.value && !(a.inclusive && b.inclusive));
        if empty {
            key.error(
                diag,
                "the range is empty: no number is above the lower bound and below the upper",
            );
            return None;
        }
    }
    diag.none_since(mark)
        .then_some(Test::Range { above, below })
}
