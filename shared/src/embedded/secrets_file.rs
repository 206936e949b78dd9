//! Secrets from a local TOML or JSON file mapping secret id to value.
//!
//! A value that is a table (TOML) or object (JSON) is handed out as its JSON text, so
//! `cognigy/credentials = { client_id = "...", client_secret = "..." }` reads like the
//! JSON secret Secrets Manager would hold. Writes replace the file atomically
//! (temporary file, fsync, rename), so a reader never sees half a file.

use crate::ports::{SecretError, SecretStore};
use crate::secrets::Secret;
use async_trait::async_trait;
use std::io::Write;
use std::path::{Path, PathBuf};
use tokio::sync::Mutex;

#[derive(Debug)]
pub struct FileSecrets {
    path: PathBuf,
    write_lock: Mutex<()>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Toml,
    Json,
}

impl FileSecrets {
    /// Checks the file is readable and well-formed now, so a bad file fails start-up.
    pub fn open(path: &Path) -> Result<Self, SecretError> {
        let store = Self {
            path: path.to_owned(),
            write_lock: Mutex::new(()),
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

    /// The file as a JSON map (TOML converted), values kept in their own shape.
    fn read_map(&self) -> Result<serde_json::Map<String, serde_json::Value>, SecretError> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| self.bad(e))?;
        // Parse errors can quote the offending line, which may hold a secret: keep only
        // the position.
        match self.format() {
            Format::Json => serde_json::from_str(&text).map_err(|e| {
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

    fn write_map(
        &self,
        map: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), SecretError> {
        let text = match self.format() {
            Format::Json => serde_json::to_string_pretty(map).map_err(|e| self.bad(e))?,
            Format::Toml => toml::to_string(map).map_err(|e| self.bad(e))?,
        };
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut tmp = tempfile_in(dir).map_err(|e| self.bad(e))?;
        tmp.1.write_all(text.as_bytes()).map_err(|e| self.bad(e))?;
        tmp.1.sync_all().map_err(|e| self.bad(e))?;
        std::fs::rename(&tmp.0, &self.path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp.0);
            self.bad(e)
        })
    }
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let path = dir.join(format!(".secrets.{}.tmp", uuid::Uuid::new_v4().simple()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    Ok((path, file))
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
        let _guard = self.write_lock.lock().await;
        let mut map = self.read_map()?;
        map.insert(
            id.to_owned(),
            serde_json::Value::String(value.expose().to_owned()),
        );
        self.write_map(&map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_strings_and_tables_and_writes_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.toml");
        std::fs::write(
            &path,
            "\"router/ingest-key\" = \"k1\"\n[\"cognigy/credentials\"]\nclient_id = \"id\"\nclient_secret = \"s\"\n",
        )
        .unwrap();
        let store = FileSecrets::open(&path).unwrap();
        assert_eq!(store.get("router/ingest-key").await.unwrap().expose(), "k1");
        let creds: serde_json::Value =
            serde_json::from_str(store.get("cognigy/credentials").await.unwrap().expose()).unwrap();
        assert_eq!(creds["client_secret"], "s");
        assert_eq!(
            store.get("nope").await,
            Err(SecretError::NotFound("nope".into()))
        );

        store
            .put(
                "cognigy/token",
                &Secret::new("{\"access_token\":\"t\"}".into()),
            )
            .await
            .unwrap();
        let reopened = FileSecrets::open(&path).unwrap();
        assert_eq!(
            reopened.get("cognigy/token").await.unwrap().expose(),
            "{\"access_token\":\"t\"}"
        );
        assert_eq!(
            reopened.get("router/ingest-key").await.unwrap().expose(),
            "k1"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[tokio::test]
    async fn json_files_work_too_and_parse_errors_hide_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        std::fs::write(&path, r#"{"a": "1"}"#).unwrap();
        let store = FileSecrets::open(&path).unwrap();
        store.put("b", &Secret::new("2".into())).await.unwrap();
        assert_eq!(
            FileSecrets::open(&path)
                .unwrap()
                .get("b")
                .await
                .unwrap()
                .expose(),
            "2"
        );

        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "key = \"supersecret\nbroken").unwrap();
        let err = FileSecrets::open(&bad).unwrap_err().to_string();
        assert!(!err.contains("supersecret"), "{err}");
        assert!(FileSecrets::open(&dir.path().join("missing.toml")).is_err());
    }
}
