//! `routerctl routes check [FILE] [--event FILE] [--probe]`: every load error; with
//! `--event`, which routes the event fires and why each does or does not; with `--probe`,
//! also that each target and token URL answers (any HTTP status counts) and each template
//! renders with a sample event.

use crate::error::{CliError, CliResult, SetupContext};
use router_core::domain::{DeliveryJob, EventId, TriggerEvent};
use router_core::routes::{CognigyTarget, Route, Routes, Target};
use router_core::secrets::mask_url;
use router_core::wire::cognigy;
use std::path::Path;
use std::time::Duration;

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn run(path: &Path, probe: bool, event: Option<&Path>) -> CliResult {
    let routes = match Routes::load(path) {
        Ok(r) => r,
        Err(e) => {
            println!("{e}");
            return Err(CliError::problems(format!(
                "{} has {} problem{}.",
                path.display(),
                e.errors.len(),
                if e.errors.len() == 1 { "" } else { "s" }
            )));
        }
    };
    println!(
        "{}: OK ({} routes, {} auth profiles)",
        path.display(),
        routes.routes().len(),
        routes.auth.len()
    );
    let sample = match event {
        Some(p) => Some(read_event(p)?),
        None => None,
    };
    if let Some(event) = &sample {
        explain(&routes, event);
    }
    if !probe {
        return Ok(());
    }
    let problems = run_probe(&routes, sample.as_ref()).await;
    match problems {
        0 => Ok(()),
        n => Err(CliError::problems(format!(
            "The probe found {n} problem{}.",
            if n == 1 { "" } else { "s" }
        ))),
    }
}

/// Prints, route by route, whether `event` fires it and why, and whether the trigger would
/// refuse the event for the fields the fired routes need.
fn explain(routes: &Routes, event: &TriggerEvent) {
    let name = event
        .name
        .as_deref()
        .map_or(String::new(), |n| format!(" {n:?}"));
    println!(
        "event {} ({}{name}, score {}):",
        event.id.as_str(),
        event.event_type.as_str(),
        event.score
    );
    let mut fired = Vec::new();
    for route in routes.routes() {
        let (fires, notes) = route.explain(event);
        let verdict = if fires { "fires" } else { "does not fire" };
        println!("  route {}: {verdict} ({})", route.name, notes.join("; "));
        if fires {
            fired.push(route);
        }
    }
    println!("{} of {} routes fire.", fired.len(), routes.routes().len());
    for missing in Routes::missing_fields(&fired, event) {
        println!(
            "The trigger would refuse this event (422): field `{}` {}",
            missing.field, missing.reason
        );
    }
    if fired.is_empty() {
        println!("The trigger would answer 200 unrouted: no route fires.");
    }
}

pub fn read_event(path: &Path) -> CliResult<TriggerEvent> {
    let bytes = std::fs::read(path).or_setup(|| format!("Cannot read {}", path.display()))?;
    router_core::event::from_json(&bytes, None)
        .or_setup(|| format!("{} is not a valid trigger event", path.display()))
}

/// An event that fires `route`: its first non-negated trigger's type and name.
pub fn sample_event(route: &Route) -> TriggerEvent {
    let trigger = route
        .triggers
        .iter()
        .find(|t| !t.negate)
        .or(route.triggers.first());
    let mut data = serde_json::Map::new();
    data.insert("text".into(), "sample text".into());
    TriggerEvent {
        id: EventId::parse("evt_probe").unwrap_or_else(|_| EventId::generate()),
        event_type: trigger.map_or(router_core::domain::EventType::Custom, |t| t.event_type),
        name: trigger.and_then(|t| t.name.clone()),
        score: 1.0,
        user_id: Some("usr_sample".into()),
        session_id: Some("sess_sample".into()),
        data: Some(data),
    }
}

/// Probes a Cognigy endpoint's base URL (never the inject or notify URL: nothing goes
/// into a session, and the URL token stays out of the output).
async fn probe_endpoint(
    http: &reqwest::Client,
    routes: &Routes,
    route: &str,
    to: &CognigyTarget,
) -> bool {
    match routes.cognigy.get(&to.endpoint) {
        Some(e) => {
            probe_url(
                http,
                &format!("route {route}: Cognigy endpoint `{}` at", to.endpoint),
                &e.base_url,
            )
            .await
        }
        None => false,
    }
}

/// Prints whether `url` answers (any HTTP status counts), credentials masked; false when
/// it does not.
async fn probe_url(http: &reqwest::Client, what: &str, url: &url::Url) -> bool {
    match reachable(http, url).await {
        Ok(status) => {
            println!("{what} {} answered HTTP {status}", mask_url(url));
            true
        }
        Err(e) => {
            println!("{what} {} is not reachable: {e}", mask_url(url));
            false
        }
    }
}

async fn reachable(http: &reqwest::Client, url: &url::Url) -> Result<u16, String> {
    match http.head(url.clone()).send().await {
        Ok(resp) => Ok(resp.status().as_u16()),
        Err(e) if e.is_timeout() => Err("timed out".into()),
        Err(e) if e.is_connect() => Err("connection failed".into()),
        Err(e) => Err(e.without_url().to_string()),
    }
}

/// The body `route` would send for `event` (an empty enrich answer standing in for the
/// lookup; a Cognigy route's as the Endpoint takes it).
fn render_sample(
    routes: &Routes,
    route: &Route,
    event: &TriggerEvent,
    now: time::OffsetDateTime,
) -> Result<String, String> {
    let job = DeliveryJob::new(event, &route.name, now);
    let external = route.enrich.as_ref().map(|_| serde_json::json!({}));
    let ctx = Routes::context(&job, 1, now, external.as_ref());
    let rendered = routes
        .render_payload(route, &ctx)
        .map_err(|e| e.to_string())?;
    match &route.target {
        Target::Cognigy(_) => {
            let mark = cognigy::Injected {
                route: job.route.as_str(),
                delivery_id: &job.delivery_id,
            };
            cognigy::body(
                event.user_id.as_deref(),
                event.session_id.as_deref(),
                &rendered,
                mark,
            )
        }
        Target::Url(_) | Target::Router(_) => Ok(rendered),
    }
}

async fn run_probe(routes: &Routes, sample: Option<&TriggerEvent>) -> usize {
    let http = match reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            println!("cannot set up an HTTP client for the probe: {e}");
            return 1;
        }
    };
    let mut problems = 0;
    let now = time::OffsetDateTime::now_utc();
    for route in routes.routes() {
        let name = &route.name;
        let reachable = match &route.target {
            Target::Url(url) => probe_url(&http, &format!("route {name}: target"), url).await,
            // Only the endpoint's base URL: nothing goes into any session.
            Target::Cognigy(to) => probe_endpoint(&http, routes, name.as_str(), to).await,
            // The router itself: there is nothing to probe from here.
            Target::Router(path) => {
                println!("route {name}: target is {path} on this router (not probed)");
                true
            }
        };
        if !reachable {
            problems += 1;
        }
        if let Some(reply) = &route.reply
            && !probe_endpoint(&http, routes, name.as_str(), &reply.to).await
        {
            problems += 1;
        }
        let event = sample.cloned().unwrap_or_else(|| sample_event(route));
        match render_sample(routes, route, &event, now) {
            Ok(body) => println!("route {name}: template renders ({} bytes)", body.len()),
            Err(e) => {
                problems += 1;
                println!(
                    "route {name}: template does not render with the sample event: {e} \
                     (try `routerctl render {name} --event FILE` with a real event)"
                );
            }
        }
    }
    for (name, profile) in routes.oauth2_profiles() {
        if !probe_url(
            &http,
            &format!("auth {name}: token URL"),
            &profile.token_url,
        )
        .await
        {
            problems += 1;
        }
    }
    problems
}
