//! Problems found while loading a routes file: [`LoadError`], [`LoadErrors`], and the
//! [`Diagnostics`] collector every reader pushes into, so a file reports all of them at once.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a routes file: where (route or section), which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub location: String,
    pub field: Option<String>,
    pub reason: String,
}

impl LoadError {
    pub fn new(location: &str, field: Option<&str>, reason: impl Into<String>) -> Self {
        Self {
            location: location.to_owned(),
            field: field.map(str::to_owned),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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

/// The errors of one load, in the order they were found. Readers borrow it mutably, record
/// a problem and carry on, so one pass finds everything wrong with a file.
#[derive(Debug, Default)]
pub(super) struct Diagnostics {
    errors: Vec<LoadError>,
}

impl Diagnostics {
    /// Records a problem at `location` (`file`, `[ingest]`, `route `x``, ...).
    pub fn error(&mut self, location: &str, field: Option<&str>, reason: impl Into<String>) {
        self.errors.push(LoadError::new(location, field, reason));
    }

    /// A point to compare against with [`Self::none_since`].
    pub fn mark(&self) -> usize {
        self.errors.len()
    }

    /// Whether nothing was recorded after `mark`.
    pub fn none_since(&self, mark: usize) -> bool {
        self.errors.len() == mark
    }

    /// The loaded value if nothing went wrong, else every error recorded for `path`.
    pub fn finish<T>(self, path: &Path, value: Option<T>) -> Result<T, LoadErrors> {
        match value {
            Some(value) if self.errors.is_empty() => Ok(value),
            _ => Err(LoadErrors {
                path: path.to_owned(),
                errors: self.errors,
            }),
        }
    }
}
