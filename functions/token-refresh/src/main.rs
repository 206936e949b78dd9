//! The token-refresh function on Lambda, invoked by an EventBridge schedule. The invocation
//! fails (so the Errors alarm sees it) when any profile failed.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use router_core::config::Config;
use router_core::routes::Routes;
use std::sync::Arc;
use std::time::Duration;

/// Time kept back from the invocation's deadline to write results and return.
const MARGIN: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() -> Result<(), Error> {
    router_core::telemetry::init();
    let config = Config::from_env()?;
    let routes =
        Arc::new(Routes::load(&config.routes_file).inspect_err(|e| tracing::error!("{e}"))?);
    let sdk = router_core::aws::sdk_config().await;
    let secrets = Arc::new(router_core::aws::SecretsManagerStore::configured(
        &sdk, &config,
    ));
    let http = token_refresh::http_client()?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let (routes, secrets, http) = (routes.clone(), secrets.clone(), http.clone());
        async move {
            let end = router_core::time_fmt::instant_at_unix_ms(event.context.deadline);
            let now = std::time::Instant::now();
            let deadline =
                tokio::time::Instant::from_std(end.checked_sub(MARGIN).unwrap_or(now).max(now));
            token_refresh::invoke(&routes, secrets.as_ref(), &http, deadline)
                .await
                .map_err(Error::from)
        }
    }))
    .await
}
