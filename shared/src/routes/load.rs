//! Loading a routes file: parse, validate, compile templates; every error at once.

use super::section::Section;
use super::{
    AuthProfile, ClientAuth, DeliverySettings, Enrich, Ingest, OAuth2Profile, Route, Routes,
    Signing, TokenRequestStyle, Trigger, enrich_template, payload_template,
};
use crate::domain::{EventType, RouteName};
use crate::render::{CONTEXT_NAMES, Renderer, TemplateKind, UrlShape};
use crate::retry::{MAX_DELAY, RetryPolicy};
use crate::time_fmt::parse_duration;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::{Table, Value};
use url::Url;

/// One problem in a routes file: where (route or section), which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub location: String,
    pub field: Option<String>,
    pub reason: String,
}

impl LoadError {
    pub fn new(location: &str, field: Option<&str>, reason: impl Into<String>) -> Self {
        Self {
            location: location.to_owned(),
            field: field.map(str::to_owned),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}: field `{field}`: {}", self.location, self.reason),
            None => write!(f, "{}: {}", self.location, self.reason),
        }
    }
}

/// Every problem found in one routes file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadErrors {
    pub path: PathBuf,
    pub errors: Vec<LoadError>,
}

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "routes file {} has {n} error{}:",
            self.path.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

const TOP_KEYS: &[&str] = &["ingest", "delivery", "signing", "auth", "route"];
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
];

pub(super) fn load(path: &Path) -> Result<Routes, LoadErrors> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, path),
        Err(e) => Err(LoadErrors {
            path: path.to_owned(),
            errors: vec![LoadError::new(
                "file",
                None,
                format!("cannot read the routes file: {e}"),
            )],
        }),
    }
}

pub(super) fn parse(text: &str, path: &Path) -> Result<Routes, LoadErrors> {
    let mut errs = Vec::new();
    let routes = match text.parse::<Table>() {
        Ok(table) => build(&table, path, &mut errs),
        Err(e) => {
            errs.push(LoadError::new(
                "file",
                None,
                format!("not valid TOML: {}", e.to_string().trim()),
            ));
            None
        }
    };
    match routes {
        Some(routes) if errs.is_empty() => Ok(routes),
        _ => Err(LoadErrors {
            path: path.to_owned(),
            errors: errs,
        }),
    }
}

fn build(top: &Table, path: &Path, errs: &mut Vec<LoadError>) -> Option<Routes> {
    let file = Section::new("file", "", top, TOP_KEYS, errs);
    let auth = file
        .table("auth", errs)
        .map(|t| auth_profiles(t, errs))
        .unwrap_or_default();
    let ingest = ingest(file.table("ingest", errs), &auth, errs);
    let delivery = file.table("delivery", errs).map(|t| {
        let s = Section::new("[delivery]", "", t, &["allow_private_targets"], errs);
        DeliverySettings {
            allow_private_targets: s.bool("allow_private_targets", errs).unwrap_or(false),
        }
    });
    let signing = file.table("signing", errs).and_then(|t| {
        let s = Section::new("[signing]", "", t, &["secret"], errs);
        s.secret_id("secret", errs).map(|secret| Signing { secret })
    });

    let base_dir = path.parent().unwrap_or(Path::new("."));
    let mut renderer = Renderer::new();
    let mut routes: Vec<Route> = Vec::new();
    let mut index = HashMap::new();
    let entries = file
        .array("route", errs)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, entry) in entries.iter().enumerate() {
        let Some(table) = entry.as_table() else {
            errs.push(LoadError::new(
                &format!("route #{}", i + 1),
                None,
                "must be a table ([[route]])",
            ));
            continue;
        };
        let Some(route) = route(i, table, &auth, base_dir, &mut renderer, errs) else {
            continue;
        };
        if let Some(&first) = index.get(route.name.as_str()) {
            errs.push(LoadError::new(
                &format!("route `{}`", route.name),
                Some("name"),
                format!(
                    "duplicates route #{}; route names must be unique",
                    first + 1
                ),
            ));
            continue;
        }
        index.insert(route.name.as_str().to_owned(), i);
        routes.push(route);
    }
    // `index` maps to file positions; re-key it to positions in `routes`.
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
        routes,
        index,
        renderer,
        path: path.to_owned(),
    })
}

fn ingest(
    table: Option<&Table>,
    auth: &BTreeMap<String, AuthProfile>,
    errs: &mut Vec<LoadError>,
) -> Option<Ingest> {
    let empty = Table::new();
    let s = Section::new(
        "[ingest]",
        "",
        table.unwrap_or(&empty),
        &["auth", "max_body_kb"],
        errs,
    );
    let profile = s.str("auth", errs).map(str::to_owned);
    if let Some(name) = &profile {
        match auth.get(name) {
            None => s.error(errs, "auth", unknown_profile(name, auth)),
            Some(AuthProfile::ApiKey { .. }) => {}
            Some(other) => s.error(
                errs,
                "auth",
                format!(
                    "profile `{name}` is of type {}, but inbound auth needs type api_key",
                    other.kind()
                ),
            ),
        }
    }
    let kb = s.int_in("max_body_kb", 1..=1024, errs).unwrap_or(64);
    Some(Ingest {
        auth: profile,
        max_body_bytes: kb as usize * 1024,
    })
}

fn unknown_profile(name: &str, auth: &BTreeMap<String, AuthProfile>) -> String {
    if auth.is_empty() {
        format!("unknown auth profile `{name}`; the file defines no [auth.*] profiles")
    } else {
        let known: Vec<&str> = auth.keys().map(String::as_str).collect();
        format!(
            "unknown auth profile `{name}`; defined profiles: {}",
            known.join(", ")
        )
    }
}

fn auth_profiles(t: &Table, errs: &mut Vec<LoadError>) -> BTreeMap<String, AuthProfile> {
    let mut out = BTreeMap::new();
    for (name, v) in t {
        let loc = format!("[auth.{name}]");
        let Some(table) = v.as_table() else {
            errs.push(LoadError::new(&loc, None, "must be a table"));
            continue;
        };
        let kind = table.get("type").and_then(Value::as_str);
        let profile = match kind {
            Some("api_key") => {
                let s = Section::new(&loc, "", table, &["type", "secret"], errs);
                s.secret_id("secret", errs)
                    .map(|secret| AuthProfile::ApiKey { secret })
            }
            Some("header") => {
                let s = Section::new(
                    &loc,
                    "",
                    table,
                    &["type", "header", "prefix", "secret"],
                    errs,
                );
                let header = s.required_str("header", errs);
                if let Some(h) = header
                    && (h.is_empty() || !h.bytes().all(is_token_byte))
                {
                    s.error(
                        errs,
                        "header",
                        format!("`{h}` is not a valid HTTP header name"),
                    );
                }
                let prefix = s.str("prefix", errs).unwrap_or("");
                let secret = s.secret_id("secret", errs);
                match (header, secret) {
                    (Some(h), Some(secret)) => Some(AuthProfile::Header {
                        header: h.to_owned(),
                        prefix: prefix.to_owned(),
                        secret,
                    }),
                    _ => None,
                }
            }
            Some("oauth2") => {
                let s = Section::new(
                    &loc,
                    "",
                    table,
                    &[
                        "type",
                        "token_url",
                        "request",
                        "credentials_secret",
                        "token_secret",
                        "scope",
                        "client_auth",
                    ],
                    errs,
                );
                let token_url = s
                    .required_str("token_url", errs)
                    .and_then(|u| http_url(&s, "token_url", u, errs))
                    .and_then(|u| {
                        if u.scheme() == "https" || is_loopback(&u) {
                            return Some(u);
                        }
                        s.error(
                            errs,
                            "token_url",
                            "must be https: the client secret would cross the network in clear \
                             (http is allowed only for a loopback host)",
                        );
                        None
                    });
                let request = match s.str("request", errs).unwrap_or("form") {
                    "form" => Some(TokenRequestStyle::Form),
                    "json_basic" => Some(TokenRequestStyle::JsonBasic),
                    other => {
                        s.error(
                            errs,
                            "request",
                            format!("must be \"form\" or \"json_basic\", got \"{other}\""),
                        );
                        None
                    }
                };
                let credentials_secret = s.secret_id("credentials_secret", errs);
                let token_secret = s.secret_id("token_secret", errs);
                let scope = s.str("scope", errs).map(str::to_owned);
                let client_auth = match s.str("client_auth", errs).unwrap_or("basic") {
                    "basic" => Some(ClientAuth::Basic),
                    "body" => Some(ClientAuth::Body),
                    other => {
                        s.error(
                            errs,
                            "client_auth",
                            format!("must be \"basic\" or \"body\", got \"{other}\""),
                        );
                        None
                    }
                };
                match (
                    token_url,
                    request,
                    credentials_secret,
                    token_secret,
                    client_auth,
                ) {
                    (
                        Some(token_url),
                        Some(request),
                        Some(credentials_secret),
                        Some(token_secret),
                        Some(client_auth),
                    ) => Some(AuthProfile::OAuth2(OAuth2Profile {
                        token_url,
                        request,
                        credentials_secret,
                        token_secret,
                        scope,
                        client_auth,
                    })),
                    _ => None,
                }
            }
            other => {
                let reason = match other {
                    None => "field `type` is required: one of api_key, header, oauth2".to_owned(),
                    Some(t) => {
                        format!("unknown type `{t}`; expected one of api_key, header, oauth2")
                    }
                };
                errs.push(LoadError::new(&loc, Some("type"), reason));
                None
            }
        };
        if let Some(p) = profile {
            out.insert(name.clone(), p);
        }
    }
    out
}

/// Whether a URL's host is this machine (`localhost`, 127.0.0.0/8, `::1`).
fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn http_url(s: &Section<'_>, key: &str, raw: &str, errs: &mut Vec<LoadError>) -> Option<Url> {
    match Url::parse(raw) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
        Ok(u) => {
            s.error(
                errs,
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
            s.error(errs, key, format!("is not a valid URL: {e}"));
            None
        }
    }
}

fn route(
    i: usize,
    t: &Table,
    auth: &BTreeMap<String, AuthProfile>,
    base_dir: &Path,
    renderer: &mut Renderer,
    errs: &mut Vec<LoadError>,
) -> Option<Route> {
    let raw_name = t.get("name").and_then(Value::as_str);
    let loc = match raw_name {
        Some(n) => format!("route `{n}`"),
        None => format!("route #{}", i + 1),
    };
    let s = Section::new(&loc, "", t, ROUTE_KEYS, errs);
    let name = s.required_str("name", errs).and_then(|n| {
        RouteName::parse(n)
            .map_err(|reason| s.error(errs, "name", reason))
            .ok()
    });
    let target_url = s.required_str("target_url", errs).and_then(|u| {
        if u.contains("{{") || u.contains("{%") {
            s.error(
                errs,
                "target_url",
                "is not a template: write the full URL (event data never goes into a target URL)",
            );
            return None;
        }
        http_url(&s, "target_url", u, errs)
    });
    let route_auth = s.str("auth", errs).map(str::to_owned);
    if let Some(p) = &route_auth
        && !auth.contains_key(p)
    {
        s.error(errs, "auth", unknown_profile(p, auth));
    }
    let timeout = s.int_in("timeout_seconds", 1..=30, errs).unwrap_or(15);
    let max_kb = s.int_in("max_payload_kb", 1..=1024, errs).unwrap_or(256);
    let retry = match s.table("retry", errs) {
        Some(t) => retry_policy(&loc, t, errs),
        None => Some(RetryPolicy::default()),
    };
    let enrich = s
        .table("enrich", errs)
        .map(|t| (t, enrich_settings(&loc, t, auth, errs)));
    let triggers = triggers(&s, errs);

    // Templates: compiled under the route's name, names checked against the context.
    let template_src = template_source(&s, base_dir, errs);
    let name = name?;
    let allowed: Vec<&str> = CONTEXT_NAMES
        .iter()
        .copied()
        .filter(|n| *n != "external" || enrich.is_some())
        .collect();
    if let Some(src) = template_src {
        let key = if s.has("template") {
            "template"
        } else {
            "template_file"
        };
        compile(
            &s,
            key,
            renderer,
            TemplateKind::Payload,
            &payload_template(name.as_str()),
            &src,
            &allowed,
            errs,
        );
    }
    let enrich = match enrich {
        Some((t, settings)) => {
            let es = Section::new(
                &loc,
                "enrich.",
                t,
                &["url", "auth", "timeout_seconds"],
                &mut Vec::new(),
            );
            let url = es.required_str("url", errs);
            let without_external: Vec<&str> = allowed
                .iter()
                .copied()
                .filter(|n| *n != "external")
                .collect();
            let shape = url.and_then(|url| {
                compile(
                    &es,
                    "url",
                    renderer,
                    TemplateKind::Url,
                    &enrich_template(name.as_str()),
                    url,
                    &without_external,
                    errs,
                );
                UrlShape::from_source(url)
                    .map_err(|reason| es.error(errs, "url", reason))
                    .ok()
            });
            let (auth, timeout) = settings?;
            Some(Enrich {
                auth,
                timeout,
                url: shape?,
            })
        }
        None => None,
    };
    Some(Route {
        name,
        target_url: target_url?,
        auth: route_auth,
        timeout: Duration::from_secs(timeout as u64),
        max_payload_bytes: max_kb as usize * 1024,
        retry: retry?,
        enrich,
        triggers: triggers?,
    })
}

#[allow(clippy::too_many_arguments)]
fn compile(
    s: &Section<'_>,
    key: &str,
    renderer: &mut Renderer,
    kind: TemplateKind,
    template_name: &str,
    src: &str,
    allowed: &[&str],
    errs: &mut Vec<LoadError>,
) {
    if let Err(e) = renderer.add_kind(kind, template_name, src) {
        s.error(errs, key, format!("template syntax error: {e}"));
        return;
    }
    let unknown: Vec<String> = renderer
        .undeclared_names(kind, template_name)
        .into_iter()
        .filter(|n| !allowed.contains(&n.as_str()))
        .collect();
    if !unknown.is_empty() {
        let what = if unknown.len() == 1 { "name" } else { "names" };
        s.error(
            errs,
            key,
            format!(
                "template uses unknown {what} {}; the context has: {}",
                unknown
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                allowed.join(", ")
            ),
        );
    }
}

fn template_source(s: &Section<'_>, base_dir: &Path, errs: &mut Vec<LoadError>) -> Option<String> {
    match (s.str("template", errs), s.str("template_file", errs)) {
        (Some(_), Some(_)) => {
            s.error(
                errs,
                "template",
                "give either `template` or `template_file`, not both",
            );
            None
        }
        (Some(inline), None) => Some(inline.to_owned()),
        (None, Some(file)) => {
            let resolved = base_dir.join(file);
            match std::fs::read_to_string(&resolved) {
                Ok(src) => Some(src),
                Err(e) => {
                    s.error(
                        errs,
                        "template_file",
                        format!(
                            "cannot read `{file}` (resolved to {}): {e}",
                            resolved.display()
                        ),
                    );
                    None
                }
            }
        }
        (None, None) if !s.has("template") && !s.has("template_file") => {
            s.error(errs, "template", "is required (or `template_file`)");
            None
        }
        (None, None) => None,
    }
}

fn retry_policy(loc: &str, t: &Table, errs: &mut Vec<LoadError>) -> Option<RetryPolicy> {
    let s = Section::new(loc, "retry.", t, &["schedule", "max_age"], errs);
    let before = errs.len();
    let default = RetryPolicy::default();
    let schedule = match s.array("schedule", errs) {
        Some(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                let key = format!("schedule[{i}]");
                let Some(text) = v.as_str() else {
                    s.error(
                        errs,
                        &key,
                        "must be a duration string like \"30s\", \"5m\" or \"2h\"",
                    );
                    return None;
                };
                match parse_duration(text) {
                    Ok(d) if d > MAX_DELAY => {
                        s.error(
                            errs,
                            &key,
                            format!(
                                "`{text}` is over 12h, the longest delay SQS can hold a message"
                            ),
                        );
                        None
                    }
                    Ok(d) => Some(d),
                    Err(reason) => {
                        s.error(errs, &key, reason);
                        None
                    }
                }
            })
            .collect(),
        None => default.schedule,
    };
    let max_age = match s.str("max_age", errs).map(parse_duration) {
        Some(Ok(d)) if d.is_zero() => {
            s.error(errs, "max_age", "must be longer than 0s");
            None
        }
        Some(Ok(d)) => Some(d),
        Some(Err(reason)) => {
            s.error(errs, "max_age", reason);
            None
        }
        None => Some(default.max_age),
    };
    (errs.len() == before).then_some(RetryPolicy {
        schedule,
        max_age: max_age?,
    })
}

fn enrich_settings(
    loc: &str,
    t: &Table,
    auth: &BTreeMap<String, AuthProfile>,
    errs: &mut Vec<LoadError>,
) -> Option<(Option<String>, Duration)> {
    let s = Section::new(loc, "enrich.", t, &["url", "auth", "timeout_seconds"], errs);
    let profile = s.str("auth", errs).map(str::to_owned);
    if let Some(p) = &profile
        && !auth.contains_key(p)
    {
        s.error(errs, "auth", unknown_profile(p, auth));
    }
    let timeout = s.int_in("timeout_seconds", 1..=30, errs).unwrap_or(5);
    Some((profile, Duration::from_secs(timeout as u64)))
}

fn triggers(s: &Section<'_>, errs: &mut Vec<LoadError>) -> Option<Vec<Trigger>> {
    if !s.has("triggers") {
        s.error(errs, "triggers", "is required: at least one trigger");
        return None;
    }
    let items = s.array("triggers", errs)?;
    if items.is_empty() {
        s.error(errs, "triggers", "must hold at least one trigger");
        return None;
    }
    let before = errs.len();
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let prefix = format!("triggers[{i}].");
        let Some(t) = item.as_table() else {
            errs.push(LoadError::new(
                &s.loc,
                Some(&format!("triggers[{i}]")),
                "must be a table",
            ));
            continue;
        };
        let ts = Section::new(
            &s.loc,
            &prefix,
            t,
            &["event_type", "name", "threshold", "negate"],
            errs,
        );
        let event_type = ts.required_str("event_type", errs).and_then(|e| {
            EventType::parse(e)
                .ok_or_else(|| {
                    ts.error(
                        errs,
                        "event_type",
                        format!("must be one of {}, got `{e}`", EventType::ALL.join(", ")),
                    );
                })
                .ok()
        });
        let name = ts.str("name", errs).map(str::to_owned);
        let threshold = ts.float("threshold", errs).unwrap_or(0.0);
        if !(0.0..=1.0).contains(&threshold) {
            ts.error(
                errs,
                "threshold",
                format!("must be between 0.0 and 1.0, got {threshold}"),
            );
        }
        let negate = ts.bool("negate", errs).unwrap_or(false);
        if let Some(event_type) = event_type {
            out.push(Trigger {
                event_type,
                name,
                threshold,
                negate,
            });
        }
    }
    (errs.len() == before).then_some(out)
}
