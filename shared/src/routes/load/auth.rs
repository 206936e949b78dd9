//! The `[auth.<name>]` profiles (api_key, header, oauth2), and checks that a reference
//! to a profile names one the file defines.

use super::http_url;
use crate::routes::diagnostics::{Diagnostics, Pointer, Seg};
use crate::routes::section::Section;
use crate::routes::{AuthProfile, ClientAuth, OAuth2Profile, TokenRequestStyle};
use std::collections::BTreeMap;
use toml::{Table, Value};
use url::Url;

/// Every profile under `[auth]`, by name; a profile with an error is left out.
pub(super) fn profiles(t: &Table, diag: &mut Diagnostics) -> BTreeMap<String, AuthProfile> {
    let mut out = BTreeMap::new();
    for (name, v) in t {
        let loc = format!("[auth.{name}]");
        let at = vec![Seg::key("auth"), Seg::key(name)];
        let Some(table) = v.as_table() else {
            diag.error_at(at, &loc, None, "must be a table");
            continue;
        };
        let profile = match table.get("type").and_then(Value::as_str) {
            Some("api_key") => api_key(&loc, at, table, diag),
            Some("header") => header(&loc, at, table, diag),
            Some("oauth2") => oauth2(&loc, at, table, diag),
            other => {
                let reason = match other {
                    None => "field `type` is required: one of api_key, header, oauth2".to_owned(),
                    Some(t) => {
                        format!("unknown type `{t}`; expected one of api_key, header, oauth2")
                    }
                };
                let mut at = at;
                at.push(Seg::key("type"));
                diag.error_at(at, &loc, Some("type"), reason);
                None
            }
        };
        if let Some(p) = profile {
            out.insert(name.clone(), p);
        }
    }
    out
}

fn api_key(loc: &str, at: Pointer, table: &Table, diag: &mut Diagnostics) -> Option<AuthProfile> {
    let s = Section::new(loc, at, table, &["type", "secret"], diag);
    s.secret_id("secret", diag)
        .map(|secret| AuthProfile::ApiKey { secret })
}

fn header(loc: &str, at: Pointer, table: &Table, diag: &mut Diagnostics) -> Option<AuthProfile> {
    let s = Section::new(
        loc,
        at,
        table,
        &["type", "header", "prefix", "secret"],
        diag,
    );
    let header = s.required_str("header", diag);
    if let Some(h) = header
        && (h.is_empty() || !h.bytes().all(is_token_byte))
    {
        s.error(
            diag,
            "header",
            format!("`{h}` is not a valid HTTP header name"),
        );
    }
    let prefix = s.str("prefix", diag).unwrap_or("");
    let secret = s.secret_id("secret", diag);
    Some(AuthProfile::Header {
        header: header?.to_owned(),
        prefix: prefix.to_owned(),
        secret: secret?,
    })
}

fn oauth2(loc: &str, at: Pointer, table: &Table, diag: &mut Diagnostics) -> Option<AuthProfile> {
    let s = Section::new(
        loc,
        at,
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
        diag,
    );
    let token_url = s
        .required_str("token_url", diag)
        .and_then(|u| http_url(&s, "token_url", u, diag))
        .and_then(|u| {
            if u.scheme() == "https" || is_loopback(&u) {
                return Some(u);
            }
            s.error(
                diag,
                "token_url",
                "must be https: the client secret would cross the network in clear \
                 (http is allowed only for a loopback host)",
            );
            None
        });
    let request = match s.str("request", diag).unwrap_or("form") {
        "form" => Some(TokenRequestStyle::Form),
        "json_basic" => Some(TokenRequestStyle::JsonBasic),
        other => {
            s.error(
                diag,
                "request",
                format!("must be \"form\" or \"json_basic\", got \"{other}\""),
            );
            None
        }
    };
    let credentials_secret = s.secret_id("credentials_secret", diag);
    let token_secret = s.secret_id("token_secret", diag);
    let scope = s.str("scope", diag).map(str::to_owned);
    let client_auth = match s.str("client_auth", diag).unwrap_or("basic") {
        "basic" => Some(ClientAuth::Basic),
        "body" => Some(ClientAuth::Body),
        other => {
            s.error(
                diag,
                "client_auth",
                format!("must be \"basic\" or \"body\", got \"{other}\""),
            );
            None
        }
    };
    Some(AuthProfile::OAuth2(OAuth2Profile {
        token_url: token_url?,
        request: request?,
        credentials_secret: credentials_secret?,
        token_secret: token_secret?,
        scope,
        client_auth: client_auth?,
    }))
}

/// The `auth` field of `s`: a profile name, which must be one of `auth` (any type).
pub(super) fn profile_ref(
    s: &Section<'_>,
    auth: &BTreeMap<String, AuthProfile>,
    diag: &mut Diagnostics,
) -> Option<String> {
    let profile = s.str("auth", diag).map(str::to_owned);
    if let Some(p) = &profile
        && !auth.contains_key(p)
    {
        s.error(diag, "auth", unknown_profile(p, auth));
    }
    profile
}

/// Why `name` is not a profile, listing the ones there are.
pub(super) fn unknown_profile(name: &str, auth: &BTreeMap<String, AuthProfile>) -> String {
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

/// Whether a URL's host is this machine (`localhost`, 127.0.0.0/8, `::1`).
pub(super) fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A byte allowed in an HTTP header name (RFC 9110 `tchar`).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
