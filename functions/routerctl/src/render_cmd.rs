//! `routerctl render ROUTE --event FILE`: the exact body a delivery would send, and its
//! headers with every secret masked.

use crate::check::read_event;
use crate::cli::{Global, RenderArgs};
use crate::error::{CliError, CliResult};
use crate::setup;
use router_core::domain::DeliveryJob;
use router_core::routes::Routes;
use router_core::secrets::mask_url;
use router_core::wire::headers::{AuthHeader, DeliveryHeaders, HEADER_SIGNATURE};

pub fn run(global: &Global, args: &RenderArgs) -> CliResult {
    let routes = setup::load_routes(&global.routes)?;
    let Some(route) = routes.get(&args.route) else {
        let names: Vec<&str> = routes.routes().iter().map(|r| r.name.as_str()).collect();
        return Err(CliError::setup(format!(
            "No route `{}` in {}. Routes: {}.",
            args.route,
            global.routes.display(),
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        )));
    };
    let event = read_event(&args.event)?;
    let external = match (&route.enrich, &args.external) {
        (Some(_), None) => {
            return Err(CliError::setup(format!(
                "Route `{}` enriches its payload with a lookup. Pass --external FILE with the lookup's JSON answer.",
                args.route
            )));
        }
        (_, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::setup(format!("Cannot read {}: {e}", path.display())))?;
            Some(
                serde_json::from_str::<serde_json::Value>(&text)
                    .map_err(|e| CliError::setup(format!("{} is not JSON: {e}", path.display())))?,
            )
        }
        (None, None) => None,
    };
    let now = time::OffsetDateTime::now_utc();
    let job = DeliveryJob::new(&event, &route.name, now);
    let ctx = Routes::context(&job, args.attempt, now, external.as_ref());
    if route.enrich.is_some() {
        match routes.render_enrich_url(route, &ctx) {
            Ok(url) => eprintln!("enrich lookup: GET {}", mask_url(&url)),
            Err(e) => {
                return Err(CliError::problems(format!(
                    "The enrich URL does not render: {e}"
                )));
            }
        }
    }
    let body = routes.render_payload(route, &ctx).map_err(|e| {
        CliError::problems(format!(
            "Route `{}` does not render for this event: {e}",
            args.route
        ))
    })?;

    println!("POST {}", mask_url(&route.target_url));
    let profile = route.auth.as_ref().and_then(|p| routes.auth.get(p));
    let headers = DeliveryHeaders {
        delivery_id: &job.delivery_id,
        timestamp: now.unix_timestamp(),
        signature: routes.signing.as_ref().map(|_| ""),
        auth: profile.map(|p| AuthHeader::of(p, "")),
    };
    for (name, value) in headers.to_show() {
        match (&routes.signing, name.as_str()) {
            (Some(signing), HEADER_SIGNATURE) => println!(
                "{name}: {value} (HMAC-SHA256 with secret `{}`)",
                signing.secret
            ),
            _ => println!("{name}: {value}"),
        }
    }
    println!();
    println!("{body}");
    Ok(())
}
