//! Problems found while loading a routes file: [`LoadError`], [`LoadErrors`], and the
//! [`Diagnostics`] collector every reader pushes into, so a file reports all of them at once,
//! each with the line it is on.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml_edit::{ImDocument, Item, TableLike, Value};

/// One problem in a routes file: where (route or section), which field, why, and on which
/// line (1-based; `None` when the file did not parse or the place has no line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub location: String,
    pub field: Option<String>,
    pub reason: String,
    pub line: Option<usize>,
}

impl LoadError {
    pub fn new(location: &str, field: Option<&str>, reason: impl Into<String>) -> Self {
        Self {
            location: location.to_owned(),
            field: field.map(str::to_owned),
            reason: reason.into(),
            line: None,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        match &self.field {
            Some(field) => write!(f, "{}: field `{field}`: {}", self.location, self.reason),
            None => write!(f, "{}: {}", self.location, self.reason),
        }
    }
}

/// Every problem found in one routes file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadErrors {
    pub path: PathBuf,
    pub errors: Vec<LoadError>,
}

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "routes file {} has {n} error{}:",
            self.path.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

/// One step from a TOML table to what it holds: a key, or an array's element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

impl Seg {
    pub fn key(k: &str) -> Self {
        Self::Key(k.to_owned())
    }
}

/// Where in the file something is: the steps from the top table.
pub(super) type Pointer = Vec<Seg>;

/// Writes `segs` the way the file names them: `retry.schedule[0]`, `where."data.x"`.
pub(super) fn field_name(segs: &[Seg]) -> String {
    let mut out = String::new();
    for seg in segs {
        match seg {
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                let bare = !k.is_empty()
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if bare {
                    out.push_str(k);
                } else {
                    out.push_str(&format!("{k:?}"));
                }
            }
        }
    }
    out
}

/// The errors of one load, in the order they were found. Readers borrow it mutably, record
/// a problem and carry on, so one pass finds everything wrong with a file.
#[derive(Debug, Default)]
pub(super) struct Diagnostics {
    errors: Vec<(LoadError, Option<Pointer>)>,
}

impl Diagnostics {
    /// Records a problem at `location` (`file`, `[ingest]`, `route `x``, ...) that has no
    /// place in the file (it could not be read or parsed).
    pub fn error(&mut self, location: &str, field: Option<&str>, reason: impl Into<String>) {
        self.errors
            .push((LoadError::new(location, field, reason), None));
    }

    /// Records a problem at `at` in the file; its line is found when the load finishes (the
    /// key's own line, else the nearest enclosing one).
    pub fn error_at(
        &mut self,
        at: Pointer,
        location: &str,
        field: Option<&str>,
        reason: impl Into<String>,
    ) {
        self.errors
            .push((LoadError::new(location, field, reason), Some(at)));
    }

    /// A point to compare against with [`Self::none_since`].
    pub fn mark(&self) -> usize {
        self.errors.len()
    }

    /// Whether nothing was recorded after `mark`.
    pub fn none_since(&self, mark: usize) -> bool {
        self.errors.len() == mark
    }

    /// The loaded value if nothing went wrong, else every error recorded for `path`, each
    /// with its line in `text` (the file's contents, when it was read).
    pub fn finish<T>(
        self,
        path: &Path,
        text: Option<&str>,
        value: Option<T>,
    ) -> Result<T, LoadErrors> {
        match value {
            Some(value) if self.errors.is_empty() => Ok(value),
            _ => {
                let doc = text.and_then(|t| ImDocument::parse(t).ok());
                let mut errors: Vec<LoadError> = self
                    .errors
                    .into_iter()
                    .map(|(mut e, at)| {
                        if let (Some(doc), Some(at), Some(text)) = (&doc, at, text) {
                            e.line = span_of(doc.as_item(), &at).map(|s| line_at(text, s.start));
                        }
                        e
                    })
                    .collect();
                // Top to bottom, the way the file is read; those with no line first.
                errors.sort_by_key(|e| e.line);
                Err(LoadErrors {
                    path: path.to_owned(),
                    errors,
                })
            }
        }
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_at(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// A node of the parsed document: a table's item, or an inline array's element.
#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a Item),
    Value(&'a Value),
    Table(&'a toml_edit::Table),
}

impl<'a> Node<'a> {
    fn table(self) -> Option<&'a dyn TableLike> {
        match self {
            Node::Item(i) => i.as_table_like(),
            Node::Value(v) => v.as_inline_table().map(|t| t as &dyn TableLike),
            Node::Table(t) => Some(t as &dyn TableLike),
        }
    }

    fn span(self) -> Option<Range<usize>> {
        match self {
            Node::Item(i) => i.span(),
            Node::Value(v) => v.span(),
            Node::Table(t) => t.span(),
        }
    }

    /// Element `i` of an array or array of tables, with its span.
    fn index(self, i: usize) -> Option<(Node<'a>, Option<Range<usize>>)> {
        let array = match self {
            Node::Item(Item::ArrayOfTables(a)) => {
                // An element of `[[route]]`: a table's own span is its header's.
                let t = a.get(i)?;
                return Some((Node::Table(t), t.span()));
            }
            Node::Item(Item::Value(v)) | Node::Value(v) => v.as_array()?,
            Node::Item(_) | Node::Table(_) => return None,
        };
        let v = array.get(i)?;
        Some((Node::Value(v), v.span()))
    }
}

/// The span of the deepest step of `at` the document has: a key's own span, an element's,
/// else the enclosing node's.
fn span_of(top: &Item, at: &[Seg]) -> Option<Range<usize>> {
    let mut node = Node::Item(top);
    let mut best = None;
    for seg in at {
        let step = match seg {
            Seg::Key(k) => node
                .table()
                .and_then(|t| t.get_key_value(k))
                .map(|(key, item)| (Node::Item(item), key.span().or_else(|| item.span()))),
            Seg::Index(i) => node.index(*i),
        };
        let Some((next, span)) = step else { break };
        if span.is_some() {
            best = span;
        } else if best.is_none() {
            best = next.span();
        }
        node = next;
    }
    best
}
