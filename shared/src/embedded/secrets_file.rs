//! Secrets from a local TOML or JSON file mapping secret id to value.
//!
//! A value that is a table (TOML) or object (JSON) is handed out as its JSON text, so
//! `cognigy/credentials = { client_id = "...", client_secret = "..." }` reads like the
//! JSON secret Secrets Manager would hold.
//!
//! Writes are read-modify-write under an exclusive lock on a sidecar file
//! (`.<name>.lock`, `flock`), so `serve`, `routerctl token refresh` and any other writer
//! never lose each other's entries; the new file replaces the old atomically (temporary
//! file created 0600, fsync, rename) and keeps the old file's permission bits. A change
//! made meanwhile by someone who does not take the lock (an operator's editor) is noticed
//! before the rename and the update is redone on top of it.

use crate::ports::{SecretError, SecretStore, SecretUpdate};
use crate::secrets::Secret;
use async_trait::async_trait;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// How often an update is redone when the file changed under it.
const UPDATE_TRIES: usize = 5;

#[derive(Debug)]
pub struct FileSecrets {
    path: PathBuf,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Toml,
    Json,
}

type Map = serde_json::Map<String, serde_json::Value>;

/// What identifies one version of the file: length, modification time, inode.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Version(u64, Option<SystemTime>, u64);

fn version(meta: &std::fs::Metadata) -> Version {
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let ino = 0;
    Version(meta.len(), meta.modified().ok(), ino)
}

impl FileSecrets {
    /// Checks the file is readable and well-formed now, so a bad file fails start-up.
    pub fn open(path: &Path) -> Result<Self, SecretError> {
        let store = Self {
            path: path.to_owned(),
        };
        store.read_map()?;
        Ok(store)
    }

    fn format(&self) -> Format {
        match self.path.extension().and_then(|e| e.to_str()) {
            Some("json") => Format::Json,
            _ => Format::Toml,
        }
    }

    fn bad(&self, why: impl std::fmt::Display) -> SecretError {
        SecretError::Unavailable(format!("secrets file {}: {why}", self.path.display()))
    }

    fn dir(&self) -> &Path {
        self.path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    }

    fn lock_path(&self) -> PathBuf {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "secrets".to_owned());
        self.dir().join(format!(".{name}.lock"))
    }

    /// The file as a JSON map (TOML converted), values kept in their own shape.
    fn read_map(&self) -> Result<Map, SecretError> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| self.bad(e))?;
        self.parse(&text)
    }

    fn parse(&self, text: &str) -> Result<Map, SecretError> {
        // Parse errors can quote the offending line, which may hold a secret: keep only
        // the position.
        match self.format() {
            Format::Json => serde_json::from_str(text).map_err(|e| {
                self.bad(format!(
                    "not a JSON object (line {}, column {})",
                    e.line(),
                    e.column()
                ))
            }),
            Format::Toml => {
                let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
                    let at = e
                        .span()
                        .map(|s| format!(" at byte {}", s.start))
                        .unwrap_or_default();
                    self.bad(format!("not valid TOML{at}"))
                })?;
                serde_json::to_value(table)
                    .ok()
                    .and_then(|v| v.as_object().cloned())
                    .ok_or_else(|| self.bad("cannot be read as a table"))
            }
        }
    }

    fn render(&self, map: &Map) -> Result<String, SecretError> {
        match self.format() {
            Format::Json => serde_json::to_string_pretty(map).map_err(|e| self.bad(e)),
            Format::Toml => toml::to_string(map).map_err(|e| self.bad(e)),
        }
    }

    /// Read-modify-write of one entry under the lock.
    fn update_blocking(&self, id: &str, decide: &SecretUpdate<'_>) -> Result<bool, SecretError> {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.lock_path())
            .map_err(|e| self.bad(format!("cannot open its lock file: {e}")))?;
        lock.lock()
            .map_err(|e| self.bad(format!("cannot lock it: {e}")))?;
        for _ in 0..UPDATE_TRIES {
            let before = std::fs::metadata(&self.path).map_err(|e| self.bad(e))?;
            let text = std::fs::read_to_string(&self.path).map_err(|e| self.bad(e))?;
            let mut map = self.parse(&text)?;
            let current = map.get(id).map(|v| match v {
                serde_json::Value::String(s) => Secret::new(s.clone()),
                other => Secret::new(other.to_string()),
            });
            let Some(value) = decide(current.as_ref()) else {
                return Ok(false);
            };
            map.insert(
                id.to_owned(),
                serde_json::Value::String(value.expose().to_owned()),
            );
            let tmp = self.write_temp(&self.render(&map)?, &before)?;
            // Someone who does not take the lock (an editor) changed the file meanwhile:
            // their change wins this round, ours is redone on top of it.
            let now = std::fs::metadata(&self.path).map_err(|e| self.bad(e))?;
            if version(&now) != version(&before) {
                let _ = std::fs::remove_file(&tmp);
                continue;
            }
            std::fs::rename(&tmp, &self.path).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                self.bad(e)
            })?;
            return Ok(true);
        }
        Err(self.bad("it kept changing while being updated"))
    }

    /// Writes `text` to a new temporary file beside the secrets file: created 0600, then
    /// given the permission bits of the file it will replace, and synced.
    fn write_temp(&self, text: &str, like: &std::fs::Metadata) -> Result<PathBuf, SecretError> {
        let path = self
            .dir()
            .join(format!(".secrets.{}.tmp", uuid::Uuid::new_v4().simple()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path).map_err(|e| self.bad(e))?;
        let written = (|| {
            file.set_permissions(like.permissions())?;
            file.write_all(text.as_bytes())?;
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&path);
            return Err(self.bad(e));
        }
        Ok(path)
    }
}

#[async_trait]
impl SecretStore for FileSecrets {
    async fn get(&self, id: &str) -> Result<Secret, SecretError> {
        let map = self.read_map()?;
        match map.get(id) {
            Some(serde_json::Value::String(s)) => Ok(Secret::new(s.clone())),
            Some(other) => Ok(Secret::new(other.to_string())),
            None => Err(SecretError::NotFound(id.to_owned())),
        }
    }

    async fn put(&self, id: &str, value: &Secret) -> Result<(), SecretError> {
        let value = value.clone();
        self.update(id, &move |_| Some(value.clone()))
            .await
            .map(|_| ())
    }

    async fn update(&self, id: &str, decide: &SecretUpdate<'_>) -> Result<bool, SecretError> {
        // Small blocking file I/O and a lock held for as long as one rewrite takes.
        self.update_blocking(id, decide)
    }
}

#[cfg(test)]
mod tests;
