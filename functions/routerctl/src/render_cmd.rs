//! `routerctl render ROUTE --event FILE`: the exact body a delivery would send, and its
//! headers with every secret masked.

use crate::check::read_event;
use crate::cli::{Global, RenderArgs};
use crate::error::{CliError, CliResult};
use crate::setup;
use router_core::domain::{Answer, DeliveryJob};
use router_core::routes::{CognigyTarget, Routes, Target};
use router_core::secrets::mask_url;
use router_core::wire::cognigy;
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

    let (url, body) = match &route.target {
        Target::Url(url) => (mask_url(url), body),
        Target::Router(path) => (format!("<this router>{path}"), body),
        Target::Cognigy(to) => (
            shown_target(&routes, to),
            into_session(&job, &body).map_err(|e| {
                CliError::problems(format!(
                    "Route `{}` does not make an answer Cognigy takes: {e}",
                    args.route
                ))
            })?,
        ),
    };
    println!("POST {url}");
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
    if let Some(reply) = &route.reply {
        let answer = match (&args.response, args.failed) {
            (Some(path), _) => Some(response_answer(path)?),
            (None, true) if reply.on_failure => Some(Answer::Failure {
                failure: "http_status".into(),
                attempts: 8,
                last_status: Some(503),
                last_error: "answered 503 Service Unavailable".into(),
            }),
            _ => None,
        };
        match answer {
            None => eprintln!(
                "(route `{}` replies into the Cognigy session: --response FILE shows the reply for a target answer{})",
                args.route,
                if reply.on_failure {
                    ", --failed its on_failure"
                } else {
                    ""
                }
            ),
            Some(answer) => {
                let reply_job = job.reply_job(answer, now);
                let ctx = Routes::reply_context(&reply_job, 1, now);
                let rendered = routes
                    .render_reply(route, &reply_job, &ctx)
                    .map_err(|e| CliError::problems(format!("The reply does not render: {e}")))?;
                let reply_body = into_session(&reply_job, &rendered).map_err(|e| {
                    CliError::problems(format!("The reply is not one Cognigy takes: {e}"))
                })?;
                println!();
                println!("reply: POST {}", shown_target(&routes, &reply.to));
                println!("webhook-id: {}", reply_job.delivery_id);
                println!();
                println!("{reply_body}");
            }
        }
    }
    Ok(())
}

/// A Cognigy endpoint URL as it may be shown: `.../inject/***`.
fn shown_target(routes: &Routes, to: &CognigyTarget) -> String {
    routes.cognigy.get(&to.endpoint).map_or_else(
        || format!("(unknown Cognigy endpoint `{}`)", to.endpoint),
        |e| cognigy::shown_url(&e.base_url, to.mode),
    )
}

fn into_session(job: &DeliveryJob, rendered: &str) -> Result<String, String> {
    let mark = cognigy::Injected {
        route: job.route.as_str(),
        delivery_id: &job.delivery_id,
    };
    cognigy::body(
        job.event.user_id.as_deref(),
        job.event.session_id.as_deref(),
        rendered,
        mark,
    )
}

/// `--response FILE`: the target's answer, JSON (else taken as text).
fn response_answer(path: &std::path::Path) -> CliResult<Answer> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::setup(format!("Cannot read {}: {e}", path.display())))?;
    Ok(Answer::Response {
        status: 200,
        json: serde_json::from_str(&text).ok(),
        text: Some(text),
    })
}
