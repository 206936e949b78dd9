//! `[cognigy.<name>]` endpoint profiles, a route's `cognigy = { endpoint, mode }` target,
//! and its `reply = { cognigy, mode, template, on_failure }` (both templates compiled).

use super::retry::retry_policy;
use super::{http_url, templates};
use crate::render::Renderer;
use crate::routes::cognigy::{CognigyEndpoint, CognigyTarget, Mode, Reply};
use crate::routes::diagnostics::{Diagnostics, Seg};
use crate::routes::section::Section;
use crate::routes::{on_failure_template, reply_template};
use std::collections::BTreeMap;
use std::time::Duration;
use toml::Table;

const PROFILE_KEYS: &[&str] = &[
    "base_url",
    "url_token_secret",
    "timeout_seconds",
    "retry",
    "rate_limit",
];
const REPLY_KEYS: &[&str] = &["cognigy", "mode", "template", "on_failure"];

/// Every `[cognigy.<name>]` table.
pub(super) fn profiles(t: &Table, diag: &mut Diagnostics) -> BTreeMap<String, CognigyEndpoint> {
    let mut out = BTreeMap::new();
    for (name, v) in t {
        let loc = format!("[cognigy.{name}]");
        let at = vec![Seg::key("cognigy"), Seg::key(name)];
        let Some(table) = v.as_table() else {
            diag.error_at(at, &loc, None, "must be a table");
            continue;
        };
        let s = Section::new(&loc, at, table, PROFILE_KEYS, diag);
        let base_url = s
            .required_str("base_url", diag)
            .and_then(|u| http_url(&s, "base_url", u, diag))
            .and_then(|u| {
                if u.scheme() == "https" || super::auth::is_loopback(&u) {
                    return Some(u);
                }
                s.error(
                    diag,
                    "base_url",
                    "must be https: the URL token would cross the network in clear \
                     (http is allowed only for a loopback host)",
                );
                None
            });
        let url_token_secret = s.secret_id("url_token_secret", diag);
        let timeout = s.int_in("timeout_seconds", 1..=30, diag).unwrap_or(10);
        let retry = match s.table("retry", diag) {
            Some(t) => retry_policy(&s, t, diag),
            None => Some(CognigyEndpoint::default_retry()),
        };
        let rate_limit = super::rate_limit(&s, diag);
        if let (Some(base_url), Some(url_token_secret), Some(retry)) =
            (base_url, url_token_secret, retry)
        {
            out.insert(
                name.clone(),
                CognigyEndpoint {
                    base_url,
                    url_token_secret,
                    timeout: Duration::from_secs(timeout as u64),
                    retry,
                    rate_limit,
                },
            );
        }
    }
    out
}

/// The endpoint (under `endpoint_key`) and `mode` of a table naming a Cognigy endpoint.
fn target(
    s: &Section<'_>,
    endpoint_key: &str,
    profiles: &BTreeMap<String, CognigyEndpoint>,
    diag: &mut Diagnostics,
) -> Option<CognigyTarget> {
    let endpoint = s.required_str(endpoint_key, diag).and_then(|e| {
        if profiles.contains_key(e) {
            return Some(e.to_owned());
        }
        let known: Vec<&str> = profiles.keys().map(String::as_str).collect();
        let reason = if known.is_empty() {
            format!("unknown Cognigy endpoint `{e}`; the file defines no [cognigy.*] profiles")
        } else {
            format!(
                "unknown Cognigy endpoint `{e}`; defined: {}",
                known.join(", ")
            )
        };
        s.error(diag, endpoint_key, reason);
        None
    });
    let mode = s.required_str("mode", diag).and_then(|m| {
        Mode::parse(m).or_else(|| {
            s.error(
                diag,
                "mode",
                format!("must be \"inject\" or \"notify\", got \"{m}\""),
            );
            None
        })
    });
    Some(CognigyTarget {
        endpoint: endpoint?,
        mode: mode?,
    })
}

/// A route's `cognigy = { endpoint, mode }`.
pub(super) fn route_target(
    route: &Section<'_>,
    t: &Table,
    profiles: &BTreeMap<String, CognigyEndpoint>,
    diag: &mut Diagnostics,
) -> Option<CognigyTarget> {
    let s = route.nested(&[Seg::key("cognigy")], t, &["endpoint", "mode"], diag);
    target(&s, "endpoint", profiles, diag)
}

/// A route's `reply`, its templates compiled under the route's name.
pub(super) fn reply(
    route: &Section<'_>,
    t: &Table,
    profiles: &BTreeMap<String, CognigyEndpoint>,
    renderer: &mut Renderer,
    name: &str,
    diag: &mut Diagnostics,
) -> Option<Reply> {
    let s = route.nested(&[Seg::key("reply")], t, REPLY_KEYS, diag);
    let to = target(&s, "cognigy", profiles, diag);
    let template = s.required_str("template", diag);
    if let Some(src) = template {
        let allowed = ["event", "route", "delivery", "now", "response"];
        templates::compile_json(
            &s,
            "template",
            renderer,
            &reply_template(name),
            src,
            &allowed,
            diag,
        );
    }
    let on_failure = s.str("on_failure", diag);
    if let Some(src) = on_failure {
        let allowed = ["event", "route", "delivery", "now", "failure"];
        templates::compile_json(
            &s,
            "on_failure",
            renderer,
            &on_failure_template(name),
            src,
            &allowed,
            diag,
        );
    }
    template?;
    Some(Reply {
        to: to?,
        on_failure: on_failure.is_some(),
    })
}
