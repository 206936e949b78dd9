//! One `[[route]]`: name, target URL, auth, timeouts, retry policy, enrich lookup and
//! triggers (its templates are compiled by [`super::templates`]).

use super::{FileParts, auth, cognigy, http_url, retry, templates};
use crate::domain::{EventType, RouteName};
use crate::render::Renderer;
use crate::routes::diagnostics::{Diagnostics, Seg};
use crate::routes::section::Section;
use crate::routes::{AuthProfile, Enrich, Route, Target, Trigger};
use std::collections::BTreeMap;
use std::time::Duration;
use toml::{Table, Value};
use url::Url;

const ROUTE_KEYS: &[&str] = &[
    "name",
    "target_url",
    "auth",
    "timeout_seconds",
    "max_payload_kb",
    "template",
    "template_file",
    "retry",
    "enrich",
    "triggers",
    "circuit_breaker",
    "max_in_flight",
    "cognigy",
    "reply",
    "ordering",
    "max_queued_per_session",
    "rate_limit",
];

const ENRICH_KEYS: &[&str] = &["url", "auth", "timeout_seconds"];

/// Route `i` (0-based, in file order); `None` when it has an error.
pub(super) fn route(
    i: usize,
    t: &Table,
    parts: &FileParts<'_>,
    renderer: &mut Renderer,
    diag: &mut Diagnostics,
) -> Option<Route> {
    let (auth, base_dir) = (parts.auth, parts.base_dir);
    let s = route_section(i, t, diag);
    let name = s.required_str("name", diag).and_then(|n| {
        RouteName::parse(n)
            .map_err(|reason| s.error(diag, "name", reason))
            .ok()
    });
    let target = route_target(&s, parts, diag);
    let route_auth = route_auth(&s, auth, diag);
    let timeout = s.int_in("timeout_seconds", 1..=30, diag).unwrap_or(15);
    let max_kb = s.int_in("max_payload_kb", 1..=1024, diag).unwrap_or(256);
    let retry = match s.table("retry", diag) {
        Some(t) => retry::retry_policy(&s, t, diag),
        None => Some(crate::retry::RetryPolicy::default()),
    };
    let enrich = s
        .table("enrich", diag)
        .map(|t| enrich_table(&s, t, auth, diag));
    let triggers = triggers(&s, diag);
    let breaker = super::breaker_settings(&s, parts.breaker, diag);
    let ordered = ordering(&s, parts.max_queued_per_session, diag);
    let rate_limit = super::rate_limit(&s, diag).or(parts.rate_limit);
    let max_in_flight = s
        .int_in("max_in_flight", 1..=10_000, diag)
        .map(|n| n as u32);

    // Templates compile under the route's name, so they need a valid one.
    let payload_src = templates::payload_source(&s, base_dir, diag);
    let name = name?;
    if let Some(src) = payload_src {
        let allowed = templates::context_names(enrich.is_some());
        templates::compile_payload(&s, renderer, name.as_str(), &src, &allowed, diag);
    }
    let reply = reply(&s, parts, renderer, name.as_str(), diag);
    let enrich = match enrich {
        Some(e) => Some(compile_enrich(e, renderer, name.as_str(), diag)?),
        None => None,
    };
    let reply = match reply {
        Some(r) => Some(r?),
        None => None,
    };
    Some(Route {
        name,
        target: target?,
        auth: route_auth,
        timeout: Duration::from_secs(timeout as u64),
        max_payload_bytes: max_kb as usize * 1024,
        retry: retry?,
        enrich,
        triggers: triggers?,
        breaker,
        max_in_flight,
        reply,
        ordered: ordered?.0,
        max_queued_per_session: ordered?.1,
        rate_limit,
    })
}

/// Route `i`'s table, named by its name (or its place, without one).
fn route_section<'t>(i: usize, t: &'t Table, diag: &mut Diagnostics) -> Section<'t> {
    let loc = match t.get("name").and_then(Value::as_str) {
        Some(n) => format!("route `{n}`"),
        None => format!("route #{}", i + 1),
    };
    let at = vec![Seg::key("route"), Seg::Index(i)];
    Section::new(loc, at, t, ROUTE_KEYS, diag)
}

/// The route's auth profile; a Cognigy route takes none (its URL token is the credential).
fn route_auth(
    s: &Section<'_>,
    auth: &BTreeMap<String, AuthProfile>,
    diag: &mut Diagnostics,
) -> Option<String> {
    let route_auth = auth::profile_ref(s, auth, diag);
    if route_auth.is_some() && s.has("cognigy") {
        s.error(
            diag,
            "auth",
            "a route with `cognigy` needs no auth profile: the endpoint's URL token is its credential",
        );
    }
    route_auth
}

/// `ordering` and, for an ordered route, `max_queued_per_session` (else `default`);
/// `None` on an error.
fn ordering(s: &Section<'_>, default: u32, diag: &mut Diagnostics) -> Option<(bool, u32)> {
    let ordered = ordered(s, diag);
    let cap = super::session_cap(s, diag);
    if cap.is_some() && ordered == Some(false) {
        s.error(
            diag,
            "max_queued_per_session",
            "only an ordered route (`ordering = \"session\"`) queues per session",
        );
        return None;
    }
    Some((ordered?, cap.unwrap_or(default)))
}

/// `ordering = "session"` is ordered, `"none"` (the default) is not; `None` on an error.
fn ordered(s: &Section<'_>, diag: &mut Diagnostics) -> Option<bool> {
    match s.str("ordering", diag) {
        None | Some("none") => Some(false),
        Some("session") => Some(true),
        Some(other) => {
            s.error(
                diag,
                "ordering",
                format!("must be \"session\" or \"none\", got \"{other}\""),
            );
            None
        }
    }
}

/// The `[route.reply]` table: `None` without one (and, an error, on a Cognigy route, which
/// answers into the session already); `Some(None)` when the table has an error.
fn reply(
    s: &Section<'_>,
    parts: &FileParts<'_>,
    renderer: &mut Renderer,
    name: &str,
    diag: &mut Diagnostics,
) -> Option<Option<crate::routes::Reply>> {
    match s.table("reply", diag) {
        Some(_) if s.has("cognigy") => {
            s.error(
                diag,
                "reply",
                "a route with `cognigy` already answers into the session; `reply` goes with `target_url`",
            );
            None
        }
        Some(t) => Some(cognigy::reply(s, t, parts.cognigy, renderer, name, diag)),
        None => None,
    }
}

/// The enrich lookup with its URL template compiled; `None` when the template has an error.
fn compile_enrich(
    e: EnrichTable<'_>,
    renderer: &mut Renderer,
    name: &str,
    diag: &mut Diagnostics,
) -> Option<Enrich> {
    let url = templates::compile_enrich_url(&e.section, renderer, name, diag)?;
    Some(Enrich {
        auth: e.auth,
        timeout: e.timeout,
        url,
    })
}

/// Where the route delivers: exactly one of `target_url` and `cognigy`.
fn route_target(s: &Section<'_>, parts: &FileParts<'_>, diag: &mut Diagnostics) -> Option<Target> {
    match (s.has("target_url"), s.table("cognigy", diag)) {
        (true, Some(_)) => {
            s.error(
                diag,
                "cognigy",
                "give either `target_url` or `cognigy`, not both",
            );
            None
        }
        (false, Some(t)) => cognigy::route_target(s, t, parts.cognigy, diag).map(Target::Cognigy),
        (_, None) => s
            .required_str("target_url", diag)
            .and_then(|u| target_url(s, u, diag)),
    }
}

/// A fixed http(s) URL, or a path (`/...`) on the router's own API: event data never
/// steers where a delivery goes.
fn target_url(s: &Section<'_>, raw: &str, diag: &mut Diagnostics) -> Option<Target> {
    if raw.contains("{{") || raw.contains("{%") {
        s.error(
            diag,
            "target_url",
            "is not a template: write the full URL (event data never goes into a target URL)",
        );
        return None;
    }
    if raw.starts_with('/') {
        let base = Url::parse("http://router.invalid/").expect("a valid URL");
        return match base.join(raw) {
            Ok(u) if !raw.starts_with("//") && u.host_str() == Some("router.invalid") => {
                Some(Target::Router(raw.to_owned()))
            }
            _ => {
                s.error(
                    diag,
                    "target_url",
                    format!("`{raw}` is not a path on this router (`/api/v2/...`) nor a full URL"),
                );
                None
            }
        };
    }
    http_url(s, "target_url", raw, diag).map(Target::Url)
}

/// A route's `enrich` table, opened once: `auth` and `timeout_seconds` are read, `url` is
/// left to [`templates::compile_enrich_url`], which needs the route's name and reports
/// after the payload template.
struct EnrichTable<'t> {
    section: Section<'t>,
    auth: Option<String>,
    timeout: Duration,
}

fn enrich_table<'t>(
    route: &Section<'_>,
    t: &'t Table,
    auth: &BTreeMap<String, AuthProfile>,
    diag: &mut Diagnostics,
) -> EnrichTable<'t> {
    let section = route.nested(&[Seg::key("enrich")], t, ENRICH_KEYS, diag);
    let auth = auth::profile_ref(&section, auth, diag);
    let timeout = section.int_in("timeout_seconds", 1..=30, diag).unwrap_or(5);
    EnrichTable {
        section,
        auth,
        timeout: Duration::from_secs(timeout as u64),
    }
}

/// `triggers = [...]`: at least one, each a table.
fn triggers(s: &Section<'_>, diag: &mut Diagnostics) -> Option<Vec<Trigger>> {
    if !s.has("triggers") {
        s.error(diag, "triggers", "is required: at least one trigger");
        return None;
    }
    let items = s.array("triggers", diag)?;
    if items.is_empty() {
        s.error(diag, "triggers", "must hold at least one trigger");
        return None;
    }
    let mark = diag.mark();
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(t) = item.as_table() else {
            s.error_in(
                diag,
                &[Seg::key("triggers"), Seg::Index(i)],
                "must be a table",
            );
            continue;
        };
        let ts = s.nested(
            &[Seg::key("triggers"), Seg::Index(i)],
            t,
            &["event_type", "name", "threshold", "negate", "where"],
            diag,
        );
        out.extend(trigger(&ts, diag));
    }
    diag.none_since(mark).then_some(out)
}

/// One trigger; `None` when its event type is missing or unknown.
fn trigger(ts: &Section<'_>, diag: &mut Diagnostics) -> Option<Trigger> {
    let event_type = ts.required_str("event_type", diag).and_then(|e| {
        EventType::parse(e)
            .ok_or_else(|| {
                ts.error(
                    diag,
                    "event_type",
                    format!("must be one of {}, got `{e}`", EventType::ALL.join(", ")),
                );
            })
            .ok()
    });
    let name = ts.str("name", diag).map(str::to_owned);
    let threshold = ts.float("threshold", diag).unwrap_or(0.0);
    if !(0.0..=1.0).contains(&threshold) {
        ts.error(
            diag,
            "threshold",
            format!("must be between 0.0 and 1.0, got {threshold}"),
        );
    }
    let negate = ts.bool("negate", diag).unwrap_or(false);
    let conditions = super::condition::conditions(ts, diag);
    Some(Trigger {
        event_type: event_type?,
        name,
        threshold,
        negate,
        conditions: conditions?,
    })
}
