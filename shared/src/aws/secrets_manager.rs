//! The secret store on AWS Secrets Manager.

use super::describe;
use crate::ports::{SecretError, SecretStore};
use crate::secrets::Secret;
use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;

#[derive(Debug, Clone)]
pub struct SecretsManagerStore {
    client: Client,
}

impl SecretsManagerStore {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    async fn put_value(&self, id: &str, value: &Secret) -> Result<(), SecretError> {
        let put = self
            .client
            .put_secret_value()
            .secret_id(id)
            .secret_string(value.expose())
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Err(SecretError::NotFound(id.to_owned()))
            }
            Err(e) => Err(SecretError::Unavailable(describe(&e))),
        }
    }
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    async fn get(&self, id: &str) -> Result<Secret, SecretError> {
        match self.client.get_secret_value().secret_id(id).send().await {
            Ok(out) => out
                .secret_string()
                .map(|s| Secret::new(s.to_owned()))
                .ok_or_else(|| SecretError::NotFound(id.to_owned())),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Err(SecretError::NotFound(id.to_owned()))
            }
            Err(e) => Err(SecretError::Unavailable(describe(&e))),
        }
    }

    /// One `PutSecretValue` (a complete value); creates the secret when it does not exist.
    async fn put(&self, id: &str, value: &Secret) -> Result<(), SecretError> {
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
