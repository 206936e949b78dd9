//! `routerctl token refresh [PROFILE]`: one refresh now, due or not.

use crate::cli::Global;
use crate::error::{CliError, CliResult};
use crate::setup;
use std::time::Duration;
use token_refresh::ProfileOutcome;

pub async fn refresh(global: &Global, profile: Option<&str>) -> CliResult {
    let routes = setup::load_routes(&global.routes)?;
    let names: Vec<&str> = routes.oauth2_profiles().map(|(n, _)| n).collect();
    if names.is_empty() {
        return Err(CliError::setup(
            "The routes file has no oauth2 profile to refresh.",
        ));
    }
    if let Some(p) = profile
        && !names.contains(&p)
    {
        return Err(CliError::setup(format!(
            "No oauth2 profile `{p}` in the routes file. Profiles: {}.",
            names.join(", ")
        )));
    }
    let secrets = setup::secrets(global, &setup::config()?).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let report = token_refresh::refresh(
        &routes,
        secrets.as_ref(),
        &token_refresh::http_client()?,
        deadline,
        profile,
        token_refresh::Renew::Always,
    )
    .await;
    for (name, outcome) in &report.profiles {
        match outcome {
            ProfileOutcome::Refreshed { expires_at } | ProfileOutcome::Fresh { expires_at } => {
                println!("{name}: refreshed, expires at {}", unix(*expires_at))
            }
            ProfileOutcome::Superseded { expires_at } => {
                println!(
                    "{name}: a newer token was stored meanwhile, expires at {}",
                    unix(*expires_at)
                )
            }
            ProfileOutcome::Failed(e) => println!("{name}: FAILED: {e}"),
        }
    }
    match report.failures().len() {
        0 => Ok(()),
        n => Err(CliError::problems(format!(
            "{n} of {} profiles failed to refresh.",
            report.profiles.len()
        ))),
    }
}

fn unix(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .map(router_core::time_fmt::rfc3339)
        .unwrap_or_else(|_| t.to_string())
}
