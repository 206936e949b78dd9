//! AWS adapters: SQS for the queue ports, Secrets Manager for the secret store.
//! Each owns its SDK client, built once per cold start from one [`aws_config::SdkConfig`].

mod secrets_manager;
mod sqs;

pub use secrets_manager::SecretsManagerStore;
pub use sqs::SqsQueue;

/// The SDK's usual configuration chain (`AWS_REGION`, `AWS_ENDPOINT_URL`, credentials).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

/// One line for an SDK error: its code and message when the service answered, else why
/// the call failed (connection refused, timeout, ...). Never holds request data.
pub(crate) fn describe<E, R>(e: &aws_sdk_sqs::error::SdkError<E, R>) -> String
where
    E: std::error::Error + aws_sdk_sqs::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(service) => format!(
            "{}: {}",
            service.code().unwrap_or("ServiceError"),
            service.message().unwrap_or("no message")
        ),
        None => aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
    }
}
