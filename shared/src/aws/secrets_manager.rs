//! The secret store on AWS Secrets Manager.

use crate::ports::{SecretError, SecretStore};
use crate::secrets::Secret;
use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::DisplayErrorContext;

#[derive(Debug, Clone)]
pub struct SecretsManagerStore {
    client: Client,
}

impl SecretsManagerStore {
    pub fn new(client: Client) -> Self {
        Self { client }
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
            Err(e) => Err(SecretError::Unavailable(
                DisplayErrorContext(&e).to_string(),
            )),
        }
    }

    async fn put(&self, id: &str, value: &Secret) -> Result<(), SecretError> {
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
                self.client
                    .create_secret()
                    .name(id)
                    .secret_string(value.expose())
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| SecretError::Unavailable(DisplayErrorContext(&e).to_string()))
            }
            Err(e) => Err(SecretError::Unavailable(
                DisplayErrorContext(&e).to_string(),
            )),
        }
    }
}
