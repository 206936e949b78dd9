//! The secret store on AWS Secrets Manager.

use super::describe;
use crate::ports::{SecretError, SecretStore};
use crate::secrets::Secret;
use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};

/// Secret ids are the routes file's, under the deployment's prefix (`SECRET_PREFIX`, the
/// stack's name and a `/` on AWS): `ingest/api-key` is read as
/// `cognigy-webhook-router-dev/ingest/api-key`, so one routes file serves every stack. A
/// full ARN is used as it is.
#[derive(Debug, Clone)]
pub struct SecretsManagerStore {
    client: Client,
    prefix: String,
}

impl SecretsManagerStore {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            prefix: String::new(),
        }
    }

    /// The store a function or `routerctl` works against: Secrets Manager from `sdk`, the
    /// ids under the configuration's `SECRET_PREFIX`.
    pub fn configured(sdk: &aws_config::SdkConfig, config: &crate::config::Config) -> Self {
        Self::new(Client::new(sdk)).with_prefix(config.secret_prefix.as_deref())
    }

    /// Reads and writes every id under `prefix` (as it is: include the `/`).
    pub fn with_prefix(mut self, prefix: Option<&str>) -> Self {
        self.prefix = prefix.unwrap_or_default().to_owned();
        self
    }

    /// The id Secrets Manager knows the routes file's `id` by.
    pub fn full_id(&self, id: &str) -> String {
        if id.starts_with("arn:") {
            id.to_owned()
        } else {
            format!("{}{id}", self.prefix)
        }
    }

    async fn put_value(&self, id: &str, value: &Secret) -> Result<(), SecretError> {
        self.client
            .put_secret_value()
            .secret_id(id)
            .secret_string(value.expose())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error(id, e, |s| s.is_resource_not_found_exception()))
    }
}

/// An SDK error as a secret-store error: `NotFound` when the service says `id` does not
/// exist, `Unavailable` (with the service's code and message) otherwise.
fn store_error<E, R>(id: &str, e: SdkError<E, R>, not_found: impl Fn(&E) -> bool) -> SecretError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    if e.as_service_error().is_some_and(not_found) {
        SecretError::NotFound(id.to_owned())
    } else {
        SecretError::Unavailable(describe(&e))
    }
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    async fn get(&self, id: &str) -> Result<Secret, SecretError> {
        let id = &self.full_id(id);
        let out = self
            .client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| store_error(id, e, |s| s.is_resource_not_found_exception()))?;
        out.secret_string()
            .map(|s| Secret::new(s.to_owned()))
            .ok_or_else(|| SecretError::NotFound(id.to_owned()))
    }

    /// One `PutSecretValue` (a complete value); creates the secret when it does not exist.
    async fn put(&self, id: &str, value: &Secret) -> Result<(), SecretError> {
        let id = &self.full_id(id);
        match self.put_value(id, value).await {
            Err(SecretError::NotFound(_)) => {}
            other => return other,
        }
        let created = self
            .client
            .create_secret()
            .name(id)
            .secret_string(value.expose())
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            // Another writer created it between our two calls: write our value over it.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_exists_exception()) =>
            {
                self.put_value(id, value).await
            }
            Err(e) => Err(SecretError::Unavailable(describe(&e))),
        }
    }
}
