//! Loading a routes file: read and parse it, the file-wide sections (`[ingest]`,
//! `[delivery]`, `[signing]`), and assembling [`Routes`]; every error at once.
//!
//! The other parts of the file have their own modules: [`auth`] (`[auth.*]` profiles),
//! [`route`] (one `[[route]]`) and [`templates`] (a route's payload and enrich URL
//! templates).

mod auth;
mod cognigy;
mod condition;
mod retry;
mod route;
mod templates;

use super::diagnostics::{Diagnostics, LoadErrors, Seg};
use super::section::Section;
use super::{AuthProfile, DeliverySettings, Ingest, Route, Routes, Signing};
use crate::breaker::BreakerSettings;
use crate::render::Renderer;
use crate::time_fmt::parse_duration;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;
use toml::Table;
use url::Url;

const TOP_KEYS: &[&str] = &["ingest", "delivery", "signing", "auth", "cognigy", "route"];

pub(super) fn load(path: &Path) -> Result<Routes, LoadErrors> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, path),
        Err(e) => {
            let mut diag = Diagnostics::default();
            diag.error("file", None, format!("cannot read the routes file: {e}"));
            diag.finish(path, None, None)
        }
    }
}

pub(super) fn parse(text: &str, path: &Path) -> Result<Routes, LoadErrors> {
    let mut diag = Diagnostics::default();
    let routes = match text.parse::<Table>() {
        Ok(table) => build(&table, path, &mut diag),
        Err(e) => {
            diag.error(
                "file",
                None,
                format!("not valid TOML: {}", e.to_string().trim()),
            );
            None
        }
    };
    diag.finish(path, Some(text), routes)
}

/// Reads every section of the file; `None` when a part that `Routes` cannot do without is
/// missing (the caller refuses the file anyway when any error was recorded).
fn build(top: &Table, path: &Path, diag: &mut Diagnostics) -> Option<Routes> {
    let file = Section::new("file", Vec::new(), top, TOP_KEYS, diag);
    let auth = file
        .table("auth", diag)
        .map(|t| auth::profiles(t, diag))
        .unwrap_or_default();
    let ingest = ingest(file.table("ingest", diag), &auth, diag);
    let delivery = file.table("delivery", diag).map(|t| delivery(t, diag));
    let signing = file.table("signing", diag).and_then(|t| signing(t, diag));

    let base_dir = path.parent().unwrap_or(Path::new("."));
    let mut renderer = Renderer::new();
    let entries = file
        .array("route", diag)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let defaults = delivery.clone().unwrap_or_default();
    let cognigy = file
        .table("cognigy", diag)
        .map(|t| cognigy::profiles(t, diag))
        .unwrap_or_default();
    let parts = FileParts {
        auth: &auth,
        cognigy: &cognigy,
        breaker: &defaults.breaker,
        max_queued_per_session: defaults.max_queued_per_session,
        rate_limit: defaults.rate_limit,
        base_dir,
    };
    let mut routes = route_list(entries, &parts, &mut renderer, diag);
    let slots = condition::assign_slots(&mut routes);
    let index = routes
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.as_str().to_owned(), i))
        .collect();
    Some(Routes {
        ingest: ingest?,
        delivery: delivery.unwrap_or_default(),
        signing,
        auth,
        cognigy,
        routes,
        index,
        slots,
        renderer,
        path: path.to_owned(),
    })
}

/// The `[[route]]` entries that loaded, in file order; a name seen before is an error.
/// What a route may refer to elsewhere in the file.
pub(super) struct FileParts<'a> {
    pub auth: &'a BTreeMap<String, AuthProfile>,
    pub cognigy: &'a BTreeMap<String, super::CognigyEndpoint>,
    /// `[delivery] circuit_breaker`, the routes' default.
    pub breaker: &'a BreakerSettings,
    /// `[delivery] max_queued_per_session`, the ordered routes' default.
    pub max_queued_per_session: u32,
    /// `[delivery] rate_limit`, the routes' default.
    pub rate_limit: Option<crate::rate_limit::RateLimit>,
    /// Where `template_file`s are read from.
    pub base_dir: &'a Path,
}

fn route_list(
    entries: &[toml::Value],
    parts: &FileParts<'_>,
    renderer: &mut Renderer,
    diag: &mut Diagnostics,
) -> Vec<Route> {
    let mut routes: Vec<Route> = Vec::new();
    // Name to position in the file, for the duplicate message.
    let mut seen = HashMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let Some(table) = entry.as_table() else {
            diag.error_at(
                vec![Seg::key("route"), Seg::Index(i)],
                &format!("route #{}", i + 1),
                None,
                "must be a table ([[route]])",
            );
            continue;
        };
        let Some(route) = route::route(i, table, parts, renderer, diag) else {
            continue;
        };
        if let Some(&first) = seen.get(route.name.as_str()) {
            diag.error_at(
                vec![Seg::key("route"), Seg::Index(i), Seg::key("name")],
                &format!("route `{}`", route.name),
                Some("name"),
                format!(
                    "duplicates route #{}; route names must be unique",
                    first + 1
                ),
            );
            continue;
        }
        seen.insert(route.name.as_str().to_owned(), i);
        routes.push(route);
    }
    routes
}

/// `[ingest]`: who may call the trigger endpoint and how large a body it takes. Read even
/// when absent, for its defaults.
fn ingest(
    table: Option<&Table>,
    auth: &BTreeMap<String, AuthProfile>,
    diag: &mut Diagnostics,
) -> Option<Ingest> {
    let empty = Table::new();
    let s = Section::new(
        "[ingest]",
        vec![Seg::key("ingest")],
        table.unwrap_or(&empty),
        &["auth", "max_body_kb"],
        diag,
    );
    let profile = s.str("auth", diag).map(str::to_owned);
    if let Some(name) = &profile {
        match auth.get(name) {
            None => s.error(diag, "auth", auth::unknown_profile(name, auth)),
            Some(AuthProfile::ApiKey { .. }) => {}
            Some(other) => s.error(
                diag,
                "auth",
                format!(
                    "profile `{name}` is of type {}, but inbound auth needs type api_key",
                    other.kind()
                ),
            ),
        }
    }
    let kb = s.int_in("max_body_kb", 1..=1024, diag).unwrap_or(64);
    Some(Ingest {
        auth: profile,
        max_body_bytes: kb as usize * 1024,
    })
}

/// `max_queued_per_session` (of `[delivery]` or a route), when given and valid.
pub(super) fn session_cap(s: &Section<'_>, diag: &mut Diagnostics) -> Option<u32> {
    s.int_in("max_queued_per_session", 1..=1_000_000, diag)
        .map(|n| n as u32)
}

/// `rate_limit = { requests, per }` of `s` (a route, a Cognigy endpoint, `[delivery]`),
/// when given and valid.
pub(super) fn rate_limit(
    s: &Section<'_>,
    diag: &mut Diagnostics,
) -> Option<crate::rate_limit::RateLimit> {
    use crate::rate_limit::{MAX_REQUESTS, RateLimit};
    let t = s.table("rate_limit", diag)?;
    let r = s.nested(&[Seg::key("rate_limit")], t, &["requests", "per"], diag);
    let requests = if r.has("requests") {
        r.int_in("requests", 1..=i64::from(MAX_REQUESTS), diag)
    } else {
        r.error(diag, "requests", "is required: how many requests per `per`");
        None
    };
    let per = match r.required_str("per", diag).map(parse_duration) {
        Some(Ok(d)) if d >= Duration::from_secs(1) && d <= MAX_COOL_DOWN => Some(d),
        Some(Ok(_)) => {
            r.error(diag, "per", "must be between 1s and 24h");
            None
        }
        Some(Err(reason)) => {
            r.error(diag, "per", reason);
            None
        }
        None => None,
    };
    Some(RateLimit {
        requests: requests? as u32,
        per: per?,
    })
}

/// `[delivery]`: settings for every outbound request.
fn delivery(t: &Table, diag: &mut Diagnostics) -> DeliverySettings {
    let s = Section::new(
        "[delivery]",
        vec![Seg::key("delivery")],
        t,
        &[
            "allow_private_targets",
            "circuit_breaker",
            "max_queued_per_session",
            "rate_limit",
        ],
        diag,
    );
    DeliverySettings {
        allow_private_targets: s.bool("allow_private_targets", diag).unwrap_or(false),
        breaker: breaker_settings(&s, &BreakerSettings::default(), diag),
        max_queued_per_session: session_cap(&s, diag).unwrap_or(super::MAX_QUEUED_PER_SESSION),
        rate_limit: rate_limit(&s, diag),
    }
}

/// A `circuit_breaker = { failures, min_duration, cool_down, max_cool_down, probes }`
/// table over `base` (each key optional; `failures = 0` turns the breaker off).
pub(super) fn breaker_settings(
    s: &Section<'_>,
    base: &BreakerSettings,
    diag: &mut Diagnostics,
) -> BreakerSettings {
    let Some(t) = s.table("circuit_breaker", diag) else {
        return *base;
    };
    let b = s.nested(
        &[Seg::key("circuit_breaker")],
        t,
        &[
            "failures",
            "min_duration",
            "cool_down",
            "max_cool_down",
            "probes",
        ],
        diag,
    );
    let failures = b.int_in("failures", 0..=1000, diag).map(|n| n as u32);
    let probes = b.int_in("probes", 1..=100, diag).map(|n| n as u32);
    let duration = |key: &str, least: Duration, diag: &mut Diagnostics| match b
        .str(key, diag)
        .map(parse_duration)
    {
        Some(Ok(d)) if d >= least && d <= MAX_COOL_DOWN => Some(d),
        Some(Ok(_)) => {
            b.error(
                diag,
                key,
                format!("must be between {}s and 24h", least.as_secs()),
            );
            None
        }
        Some(Err(reason)) => {
            b.error(diag, key, reason);
            None
        }
        None => None,
    };
    let second = Duration::from_secs(1);
    let min_duration = duration("min_duration", Duration::ZERO, diag).unwrap_or(base.min_duration);
    let cool_down = duration("cool_down", second, diag).unwrap_or(base.cool_down);
    let max_cool_down =
        duration("max_cool_down", second, diag).unwrap_or(base.max_cool_down.max(cool_down));
    if max_cool_down < cool_down {
        b.error(diag, "max_cool_down", "must not be shorter than cool_down");
    }
    BreakerSettings {
        failures: failures.unwrap_or(base.failures),
        min_duration,
        cool_down,
        max_cool_down,
        probes: probes.unwrap_or(base.probes),
    }
}

/// The longest cool-down a breaker may have.
const MAX_COOL_DOWN: Duration = Duration::from_secs(24 * 3600);

/// `[signing]`: the secret outbound requests are signed with.
fn signing(t: &Table, diag: &mut Diagnostics) -> Option<Signing> {
    let s = Section::new("[signing]", vec![Seg::key("signing")], t, &["secret"], diag);
    s.secret_id("secret", diag).map(|secret| Signing { secret })
}

/// An absolute http(s) URL with a host, as `key` of `s` (a target or token URL).
fn http_url(s: &Section<'_>, key: &str, raw: &str, diag: &mut Diagnostics) -> Option<Url> {
    match Url::parse(raw) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
        Ok(u) => {
            s.error(
                diag,
                key,
                format!(
                    "`{}` must be an http or https URL with a host (scheme is {})",
                    crate::secrets::mask_url(&u),
                    u.scheme()
                ),
            );
            None
        }
        // Not quoted: a URL can carry a credential.
        Err(e) => {
            s.error(diag, key, format!("is not a valid URL: {e}"));
            None
        }
    }
}
