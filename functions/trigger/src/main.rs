//! The trigger function on Lambda, behind an API Gateway HTTP API.

use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    router_core::telemetry::init();
    let state = match trigger::State::from_env().await {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!("trigger init failed: {e}");
            return Err(e.into());
        }
    };
    lambda_http::run(trigger::router(state)).await
}
