//! `routerctl render ROUTE --event FILE`: the exact body a delivery would send, and its
//! headers with every secret masked.

use crate::check::read_event;
use crate::cli::{Global, RenderArgs};
use crate::error::{CliError, CliResult, SetupContext};
use crate::setup;
use deliver::outgoing::{self, PlanError, Recipient};
use router_core::domain::{Answer, DeliveryJob};
use router_core::routes::{CognigyTarget, Reply, Route, Routes};
use router_core::secrets::mask_url;
use router_core::wire::cognigy;
use router_core::wire::headers::{DeliveryHeaders, HEADER_SIGNATURE};

pub fn run(global: &Global, args: &RenderArgs) -> CliResult {
    let routes = setup::load_routes(&global.routes)?;
    let route = find_route(&routes, global, &args.route)?;
    let event = read_event(&args.event)?;
    let external = external_answer(route, args)?;
    let now = time::OffsetDateTime::now_utc();
    let job = DeliveryJob::new(&event, &route.name, now);
    if route.enrich.is_some() {
        let ctx = Routes::context(&job, args.attempt, now, external.as_ref());
        match routes.render_enrich_url(route, &ctx) {
            Ok(url) => eprintln!("enrich lookup: GET {}", mask_url(&url)),
            Err(e) => {
                return Err(CliError::problems(format!(
                    "The enrich URL does not render: {e}"
                )));
            }
        }
    }
    // The same plan deliver makes: what is sent, and where.
    let plan = outgoing::plan(&routes, route, &job, args.attempt, now, external.as_ref()).map_err(
        |e| match e {
            PlanError::Session(e) => CliError::problems(format!(
                "Route `{}` does not make an answer Cognigy takes: {e}",
                args.route
            )),
            e => CliError::problems(format!(
                "Route `{}` does not render for this event: {e}",
                args.route
            )),
        },
    )?;
    println!("POST {}", shown(&routes, plan.to));
    print_headers(&routes, plan.auth, &job, now);
    println!();
    println!("{}", plan.body);
    if let Some(reply) = &route.reply {
        show_reply(&routes, route, reply, &job, args, now)?;
    }
    Ok(())
}

/// The route `name`, or an error listing the routes there are.
fn find_route<'r>(routes: &'r Routes, global: &Global, name: &str) -> CliResult<&'r Route> {
    routes.get(name).ok_or_else(|| {
        let names: Vec<&str> = routes.routes().iter().map(|r| r.name.as_str()).collect();
        CliError::setup(format!(
            "No route `{name}` in {}. Routes: {}.",
            global.routes.display(),
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        ))
    })
}

/// `--external FILE`: the enrich lookup's answer, required when the route enriches.
fn external_answer(route: &Route, args: &RenderArgs) -> CliResult<Option<serde_json::Value>> {
    match (&route.enrich, &args.external) {
        (Some(_), None) => Err(CliError::setup(format!(
            "Route `{}` enriches its payload with a lookup. Pass --external FILE with the lookup's JSON answer.",
            args.route
        ))),
        (_, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .or_setup(|| format!("Cannot read {}", path.display()))?;
            serde_json::from_str::<serde_json::Value>(&text)
                .map(Some)
                .or_setup(|| format!("{} is not JSON", path.display()))
        }
        (None, None) => Ok(None),
    }
}

/// Where a plan sends, as it may be shown (credentials and URL tokens masked).
fn shown(routes: &Routes, to: Recipient<'_>) -> String {
    match to {
        Recipient::Url(url) => mask_url(url),
        Recipient::Router(path) => format!("<this router>{path}"),
        Recipient::Session(to) => shown_target(routes, to),
    }
}

/// The delivery's headers, the signature and the credential masked.
fn print_headers(
    routes: &Routes,
    auth: Option<&str>,
    job: &DeliveryJob,
    now: time::OffsetDateTime,
) {
    let profile = auth.and_then(|p| routes.auth.get(p));
    let headers = DeliveryHeaders {
        delivery_id: &job.delivery_id,
        timestamp: now.unix_timestamp(),
        signature: routes.signing.as_ref().map(|_| ""),
        auth: profile.map(|p| p.header("")),
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
}

/// A reply route: the reply for `--response FILE` (or `--failed`: its `on_failure`).
fn show_reply(
    routes: &Routes,
    route: &Route,
    reply: &Reply,
    job: &DeliveryJob,
    args: &RenderArgs,
    now: time::OffsetDateTime,
) -> CliResult {
    let answer = match (&args.response, args.failed) {
        (Some(path), _) => response_answer(path)?,
        (None, true) if reply.on_failure => Answer::Failure {
            failure: "http_status".into(),
            attempts: 8,
            last_status: Some(503),
            last_error: "answered 503 Service Unavailable".into(),
        },
        _ => {
            eprintln!(
                "(route `{}` replies into the Cognigy session: --response FILE shows the reply for a target answer{})",
                args.route,
                if reply.on_failure {
                    ", --failed its on_failure"
                } else {
                    ""
                }
            );
            return Ok(());
        }
    };
    let reply_job = job.reply_job(answer, now);
    let plan = outgoing::plan_reply(routes, route, &reply_job, 1, now).map_err(|e| match e {
        PlanError::Session(e) => {
            CliError::problems(format!("The reply is not one Cognigy takes: {e}"))
        }
        e => CliError::problems(format!("The reply does not render: {e}")),
    })?;
    println!();
    println!("reply: POST {}", shown(routes, plan.to));
    println!("webhook-id: {}", reply_job.delivery_id);
    println!();
    println!("{}", plan.body);
    Ok(())
}

/// A Cognigy endpoint URL as it may be shown: `.../inject/***`.
fn shown_target(routes: &Routes, to: &CognigyTarget) -> String {
    routes.cognigy.get(&to.endpoint).map_or_else(
        || format!("(unknown Cognigy endpoint `{}`)", to.endpoint),
        |e| cognigy::shown_url(&e.base_url, to.mode),
    )
}

/// `--response FILE`: the target's answer, JSON (else taken as text).
fn response_answer(path: &std::path::Path) -> CliResult<Answer> {
    let text =
        std::fs::read_to_string(path).or_setup(|| format!("Cannot read {}", path.display()))?;
    Ok(Answer::Response {
        status: 200,
        json: serde_json::from_str(&text).ok(),
        text: Some(text),
    })
}
