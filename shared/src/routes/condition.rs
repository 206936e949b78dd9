//! A trigger's `where` conditions: a dotted path into the event and a test of what is there
//! (CONTRACT section 2). Pure: loading them is `load::condition`'s.
//!
//! What a path finds: a top-level field (`name`, `score`, ...), or a value inside `data`
//! (`data.order.total`). An array on the way, or at the end, is looked through: the test
//! holds when it holds for any of its elements (EventBridge's rule), and `anything_but`
//! holds when none of them is in the list. `null` counts as absent.

use crate::domain::TriggerEvent;
use serde_json::Value as Json;
use std::cell::Cell;
use std::fmt;

/// One condition: `path` (as written) and the test every value found there is put to.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub path: FieldPath,
    /// The path's place in [`Lookup`]: every condition naming the same path in a routes
    /// file shares one, so matching an event looks each path up once.
    pub slot: usize,
    /// The condition's place in [`Lookup`]: the same path and test on several routes is
    /// tested once per event.
    pub id: usize,
    pub test: Test,
}

/// A field of the event a condition can name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FieldPath {
    Id,
    EventType,
    Name,
    Score,
    UserId,
    SessionId,
    /// The keys below `data`, at least one.
    Data(Vec<String>),
}

/// A value a condition compares with.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Str(String),
    Num(f64),
    Bool(bool),
}

/// One end of a numeric range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    pub value: f64,
    pub inclusive: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// `"data.channel" = "voice"`: equal (strings exactly, numbers as numbers).
    Equals(Scalar),
    AnyOf(Vec<Scalar>),
    /// A string that starts with this.
    Prefix(String),
    /// A number within the bounds (`gt`/`gte` above, `lt`/`lte` below).
    Range {
        above: Option<Bound>,
        below: Option<Bound>,
    },
    /// `true`: present (and not null); `false`: absent.
    Exists(bool),
    /// Present, and none of its values in the list.
    AnythingBut(Vec<Scalar>),
}

/// A value found in the event.
#[derive(Debug, Clone, Copy)]
enum Found<'a> {
    Str(&'a str),
    Num(f64),
    Bool(bool),
    /// An object: present, equal to nothing.
    Object,
}

impl Found<'_> {
    fn is(self, s: &Scalar) -> bool {
        match (self, s) {
            (Found::Str(a), Scalar::Str(b)) => a == b,
            (Found::Num(a), Scalar::Num(b)) => a == *b,
            (Found::Bool(a), Scalar::Bool(b)) => a == *b,
            _ => false,
        }
    }

    fn passes(self, test: &Test) -> bool {
        match test {
            Test::Equals(s) => self.is(s),
            Test::AnyOf(list) => list.iter().any(|s| self.is(s)),
            Test::Prefix(p) => matches!(self, Found::Str(v) if v.starts_with(p.as_str())),
            Test::Range { above, below } => match self {
                Found::Num(v) => {
                    above.is_none_or(|b| {
                        if b.inclusive {
                            v >= b.value
                        } else {
                            v > b.value
                        }
                    }) && below.is_none_or(|b| {
                        if b.inclusive {
                            v <= b.value
                        } else {
                            v < b.value
                        }
                    })
                }
                _ => false,
            },
            Test::Exists(_) => true,
            Test::AnythingBut(list) => !list.iter().any(|s| self.is(s)),
        }
    }
}

/// Calls `f` on each value `rest` finds below `v`, arrays looked through, until `f` says
/// stop (`true`); whether it did.
fn walk<'a>(v: &'a Json, rest: &[String], f: &mut impl FnMut(Found<'a>) -> bool) -> bool {
    match (v, rest.split_first()) {
        (Json::Array(items), _) => items.iter().any(|item| walk(item, rest, f)),
        (Json::Object(map), Some((key, rest))) => map.get(key).is_some_and(|v| walk(v, rest, f)),
        (_, Some(_)) | (Json::Null, None) => false,
        (Json::String(s), None) => f(Found::Str(s)),
        (Json::Number(n), None) => n.as_f64().is_some_and(|n| f(Found::Num(n))),
        (Json::Bool(b), None) => f(Found::Bool(*b)),
        (Json::Object(_), None) => f(Found::Object),
    }
}

impl FieldPath {
    /// Calls `f` on each value the path finds in `event` until `f` says stop; whether it did.
    fn any<'a>(&self, event: &'a TriggerEvent, mut f: impl FnMut(Found<'a>) -> bool) -> bool {
        let top = |v: Option<&'a str>| v.map(Found::Str);
        let found = match self {
            FieldPath::Id => top(Some(event.id.as_str())),
            FieldPath::EventType => top(Some(event.event_type.as_str())),
            FieldPath::Name => top(event.name.as_deref()),
            FieldPath::Score => Some(Found::Num(event.score)),
            FieldPath::UserId => top(event.user_id.as_deref()),
            FieldPath::SessionId => top(event.session_id.as_deref()),
            FieldPath::Data(keys) => {
                let Some((first, rest)) = keys.split_first() else {
                    return false;
                };
                return event
                    .data
                    .as_ref()
                    .and_then(|d| d.get(first))
                    .is_some_and(|v| walk(v, rest, &mut f));
            }
        };
        found.is_some_and(f)
    }
}

/// What one path of a routes file found in an event, once looked up.
#[derive(Debug, Clone, Copy)]
enum Slot<'e> {
    Unknown,
    Absent,
    One(Found<'e>),
    /// An array on the way: each condition walks it.
    Walk,
}

/// One event's values at the paths of a routes file's conditions, each looked up the first
/// time a condition needs it: matching 100 routes that test `data.tier` finds it once.
#[derive(Debug)]
pub struct Lookup<'e> {
    event: &'e TriggerEvent,
    slots: Vec<Cell<Slot<'e>>>,
    /// Each distinct condition's outcome, once tested.
    outcomes: Vec<Cell<Option<bool>>>,
}

impl<'e> Lookup<'e> {
    /// For a routes file whose conditions use `slots` distinct paths and `conditions`
    /// distinct conditions.
    pub fn new(event: &'e TriggerEvent, slots: usize, conditions: usize) -> Self {
        Self {
            event,
            slots: vec![Cell::new(Slot::Unknown); slots],
            outcomes: vec![Cell::new(None); conditions],
        }
    }

    pub fn event(&self) -> &'e TriggerEvent {
        self.event
    }

    fn get(&self, c: &Condition) -> Slot<'e> {
        let Some(cell) = self.slots.get(c.slot) else {
            return Slot::Walk;
        };
        if let Slot::Unknown = cell.get() {
            cell.set(resolve(&c.path, self.event));
        }
        cell.get()
    }
}

/// The one value `path` finds in `event`, unless an array is on the way.
fn resolve<'e>(path: &FieldPath, event: &'e TriggerEvent) -> Slot<'e> {
    let FieldPath::Data(keys) = path else {
        let mut one = Slot::Absent;
        path.any(event, |v| {
            one = Slot::One(v);
            true
        });
        return one;
    };
    let mut at = match (keys.split_first(), &event.data) {
        (Some((first, _)), Some(d)) => d.get(first),
        _ => None,
    };
    for key in keys.iter().skip(1) {
        at = match at {
            Some(Json::Object(m)) => m.get(key),
            Some(Json::Array(_)) => return Slot::Walk,
            _ => None,
        };
    }
    match at {
        None | Some(Json::Null) => Slot::Absent,
        Some(Json::Array(_)) => Slot::Walk,
        Some(Json::String(s)) => Slot::One(Found::Str(s)),
        Some(Json::Number(n)) => n
            .as_f64()
            .map_or(Slot::Absent, |n| Slot::One(Found::Num(n))),
        Some(Json::Bool(b)) => Slot::One(Found::Bool(*b)),
        Some(Json::Object(_)) => Slot::One(Found::Object),
    }
}

impl Condition {
    /// As [`Self::holds`], tested once per event (the outcome and the path's value kept in
    /// `lookup`).
    pub fn holds_in(&self, lookup: &Lookup<'_>) -> bool {
        let Some(outcome) = lookup.outcomes.get(self.id) else {
            return self.test_in(lookup);
        };
        if let Some(known) = outcome.get() {
            return known;
        }
        let holds = self.test_in(lookup);
        outcome.set(Some(holds));
        holds
    }

    fn test_in(&self, lookup: &Lookup<'_>) -> bool {
        match (lookup.get(self), &self.test) {
            (Slot::Absent, test) => matches!(test, Test::Exists(false)),
            (Slot::One(_), Test::Exists(want)) => *want,
            (Slot::One(v), test) => v.passes(test),
            (Slot::Walk | Slot::Unknown, _) => self.holds(lookup.event),
        }
    }

    pub fn holds(&self, event: &TriggerEvent) -> bool {
        match &self.test {
            Test::Exists(want) => self.path.any(event, |_| true) == *want,
            Test::AnythingBut(_) => {
                let mut present = false;
                let vetoed = self.path.any(event, |v| {
                    present = true;
                    !v.passes(&self.test)
                });
                present && !vetoed
            }
            test => self.path.any(event, |v| v.passes(test)),
        }
    }

    /// Why the condition does not hold for `event` (`None` when it holds): what the path
    /// found, shown escaped and cut short, and what the test wanted.
    pub fn why_not(&self, event: &TriggerEvent) -> Option<String> {
        if self.holds(event) {
            return None;
        }
        let mut seen = Vec::new();
        self.path.any(event, |v| {
            seen.push(shown(v));
            seen.len() >= 3
        });
        let found = match seen.as_slice() {
            [] => "is absent".to_owned(),
            [one] => format!("is {one}"),
            many => format!("holds {}", many.join(", ")),
        };
        Some(format!("{} {found}, needs {}", self.path, self.test))
    }
}

/// A found value for an operator's eyes: strings quoted with control characters escaped and
/// cut to 40 characters (the event is whoever talks to the bot).
fn shown(v: Found<'_>) -> String {
    match v {
        Found::Str(s) if s.chars().count() > 40 => {
            let cut: String = s.chars().take(40).collect();
            format!("{cut:?}...")
        }
        Found::Str(s) => format!("{s:?}"),
        Found::Num(n) => n.to_string(),
        Found::Bool(b) => b.to_string(),
        Found::Object => "an object".to_owned(),
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let top = match self {
            FieldPath::Id => "id",
            FieldPath::EventType => "event_type",
            FieldPath::Name => "name",
            FieldPath::Score => "score",
            FieldPath::UserId => "user_id",
            FieldPath::SessionId => "session_id",
            FieldPath::Data(keys) => return write!(f, "data.{}", keys.join(".")),
        };
        f.write_str(top)
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Str(s) => write!(f, "{s:?}"),
            Scalar::Num(n) => write!(f, "{n}"),
            Scalar::Bool(b) => write!(f, "{b}"),
        }
    }
}

fn list(items: &[Scalar]) -> String {
    let items: Vec<String> = items.iter().map(ToString::to_string).collect();
    format!("[{}]", items.join(", "))
}

impl fmt::Display for Test {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Test::Equals(s) => write!(f, "= {s}"),
            Test::AnyOf(items) => write!(f, "any of {}", list(items)),
            Test::Prefix(p) => write!(f, "a string starting with {p:?}"),
            Test::Range { above, below } => {
                let above =
                    above.map(|b| format!("{} {}", if b.inclusive { ">=" } else { ">" }, b.value));
                let below =
                    below.map(|b| format!("{} {}", if b.inclusive { "<=" } else { "<" }, b.value));
                let parts: Vec<String> = above.into_iter().chain(below).collect();
                write!(f, "a number {}", parts.join(" and "))
            }
            Test::Exists(true) => f.write_str("to be present"),
            Test::Exists(false) => f.write_str("to be absent"),
            Test::AnythingBut(items) => write!(f, "anything but {}", list(items)),
        }
    }
}
