//! Unit tests of the routes file: loading and its error messages, matching, rendering.

use super::*;
use crate::domain::{EventId, RouteName};
use std::path::Path;

const GOOD: &str = r#"
[ingest]
auth = "flows"
max_body_kb = 32

[delivery]
allow_private_targets = true

[signing]
secret = "router/signing-key"

[auth.flows]
type = "api_key"
secret = "router/ingest-key"

[auth.crm]
type = "header"
header = "Authorization"
prefix = "Bearer "
secret = "crm/token"

[auth.cognigy]
type = "oauth2"
token_url = "https://api-trial.cognigy.ai/auth/oauth2/token"
request = "json_basic"
credentials_secret = "cognigy/credentials"
token_secret = "cognigy/token"

[[route]]
name = "crm-handoff"
target_url = "https://crm.example.com/hooks/cognigy"
auth = "crm"
timeout_seconds = 10
max_payload_kb = 8
template = '{"user": {{ event.user_id | tojson }}, "tier": {{ external.tier | tojson }}}'
retry = { schedule = ["1s", "2m"], max_age = "1h" }
enrich = { url = "https://crm.example.com/users/{{ event.user_id }}", auth = "crm", timeout_seconds = 3 }
triggers = [
  { event_type = "intent", name = "handover", threshold = 0.8 },
  { event_type = "intent", name = "smalltalk", negate = true },
]

[[route]]
name = "flow-ends"
target_url = "http://127.0.0.1:9000/hook"
template = '{"id": {{ delivery.id | tojson }}}'
triggers = [{ event_type = "flow_end" }]
"#;

fn parse(text: &str) -> Result<Routes, LoadErrors> {
    Routes::parse(text, Path::new("/tmp/routes.toml"))
}

fn errors(text: &str) -> Vec<String> {
    parse(text)
        .unwrap_err()
        .errors
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// A file with one route whose body is `route_body` (plus a default template and trigger).
fn with_route(route_body: &str) -> String {
    let mut s = String::from("[[route]]\n");
    s.push_str(route_body);
    if !route_body.contains("\ntemplate") && !route_body.starts_with("template") {
        s.push_str("\ntemplate = '{}'");
    }
    if !route_body.contains("triggers") {
        s.push_str("\ntriggers = [{ event_type = \"intent\" }]");
    }
    if !route_body.contains("target_url") && !route_body.contains("\ncognigy =") {
        s.push_str("\ntarget_url = \"https://example.com/\"");
    }
    s
}

fn event(event_type: EventType, name: Option<&str>, score: f64) -> TriggerEvent {
    TriggerEvent {
        id: EventId::parse("evt_1").unwrap(),
        event_type,
        name: name.map(str::to_owned),
        score,
        user_id: Some("usr_1".into()),
        session_id: None,
        data: None,
    }
}

#[test]
fn a_full_file_loads() {
    let r = parse(GOOD).unwrap();
    assert_eq!(r.ingest.auth.as_deref(), Some("flows"));
    assert_eq!(r.ingest.max_body_bytes, 32 * 1024);
    assert!(r.allow_private_targets());
    assert_eq!(r.signing.as_ref().unwrap().secret, "router/signing-key");
    let crm = r.get("crm-handoff").unwrap();
    assert_eq!(crm.timeout, Duration::from_secs(10));
    assert_eq!(crm.max_payload_bytes, 8 * 1024);
    assert_eq!(
        crm.retry.schedule,
        [Duration::from_secs(1), Duration::from_secs(120)]
    );
    assert_eq!(crm.retry.max_age, Duration::from_secs(3600));
    assert_eq!(crm.enrich.as_ref().unwrap().timeout, Duration::from_secs(3));
    let ends = r.get("flow-ends").unwrap();
    assert_eq!(ends.timeout, Duration::from_secs(15), "default timeout");
    assert_eq!(ends.max_payload_bytes, 256 * 1024, "default payload cap");
    assert_eq!(ends.retry, RetryPolicy::default());
    assert!(
        matches!(&r.auth["cognigy"], AuthProfile::OAuth2(o) if o.request == TokenRequestStyle::JsonBasic)
    );
    assert_eq!(
        r.secret_ids(),
        [
            "cognigy/credentials",
            "cognigy/token",
            "crm/token",
            "router/ingest-key",
            "router/signing-key"
        ]
    );
    assert_eq!(r.oauth2_profiles().count(), 1);
}

#[test]
fn an_empty_file_is_an_open_endpoint_with_no_routes() {
    let r = parse("").unwrap();
    assert!(r.ingest.auth.is_none());
    assert_eq!(r.ingest.max_body_bytes, 64 * 1024);
    assert!(r.routes().is_empty());
    assert!(!r.allow_private_targets());
}

#[test]
fn bad_toml_says_where() {
    let e = errors("[[route]\nname = 'x'");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].contains("not valid TOML") && e[0].contains("line 1"),
        "{e:?}"
    );
}

#[test]
fn unknown_fields_are_named_everywhere() {
    let e = errors(&format!(
        "colour = 1\n[ingest]\nauht = 'x'\n{}",
        with_route("name = 'abc'\ntimeout = 5")
    ));
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(
        e.iter()
            .any(|m| m.contains("file: field `colour`: unknown field"))
    );
    assert!(
        e.iter()
            .any(|m| m.contains("[ingest]: field `auht`: unknown field"))
    );
    assert!(e.iter().any(|m| m.contains(
        "route `abc`: field `timeout`: unknown field; expected one of: name, target_url"
    )));
}

#[test]
fn names_too_short_or_duplicated_are_errors() {
    let text = format!(
        "{}\n{}\n{}",
        with_route("name = 'ab'"),
        with_route("name = 'dup'"),
        with_route("name = 'dup'")
    );
    let e = errors(&text);
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].contains("route `ab`: field `name`: must be 3 to 128 characters"));
    assert!(e[1].contains("route `dup`: field `name`: duplicates route #2"));
    let e = errors(&with_route("name = 'Bad Name'"));
    assert!(e[0].contains("may only contain a-z"), "{e:?}");
    let e = errors(&with_route("target_url = 'https://x.example/'"));
    assert!(
        e[0].contains("route #1: field `name`: is required"),
        "{e:?}"
    );
}

#[test]
fn bad_urls_are_errors() {
    for (url, want) in [
        ("not a url", "is not a valid URL"),
        ("ftp://example.com/x", "must be an http or https URL"),
        ("mailto:a@example.com", "must be an http or https URL"),
    ] {
        let e = errors(&with_route(&format!("name = 'abc'\ntarget_url = '{url}'")));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("field `target_url`") && e[0].contains(want),
            "{e:?}"
        );
    }
}

#[test]
fn a_path_targets_the_router_itself_and_nothing_else_passes_for_one() {
    let routes = parse(&with_route(
        "name = 'smoke'\ntarget_url = '/api/v2/webhooks/smoke'",
    ))
    .unwrap();
    assert_eq!(
        routes.get("smoke").unwrap().target,
        Target::Router("/api/v2/webhooks/smoke".into())
    );
    for bad in ["//evil.example.com/x", "/\\evil.example.com/x"] {
        let e = errors(&with_route(&format!("name = 'abc'\ntarget_url = '{bad}'")));
        assert_eq!(e.len(), 1, "{bad}: {e:?}");
        assert!(e[0].contains("is not a path on this router"), "{e:?}");
    }
}

#[test]
fn thresholds_out_of_range_are_errors() {
    let e = errors(&with_route(
        "name = 'abc'\ntriggers = [{ event_type = 'intent', threshold = 1.5 }, { event_type = 'entity', threshold = -0.1 }]",
    ));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].contains("field `triggers[0].threshold`: must be between 0.0 and 1.0, got 1.5"));
    assert!(e[1].contains("triggers[1].threshold"));
    let e = errors(&with_route(
        "name = 'abc'\ntriggers = [{ event_type = 'utterance' }]",
    ));
    assert!(
        e[0].contains("triggers[0].event_type") && e[0].contains("must be one of intent"),
        "{e:?}"
    );
    let e = errors(&with_route("name = 'abc'\ntriggers = []"));
    assert!(e[0].contains("at least one trigger"), "{e:?}");
}

#[test]
fn timeouts_and_payload_limits_are_range_checked() {
    let e = errors(&with_route(
        "name = 'abc'\ntimeout_seconds = 31\nmax_payload_kb = 0",
    ));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].contains("field `timeout_seconds`: must be between 1 and 30, got 31"));
    assert!(e[1].contains("field `max_payload_kb`: must be between 1 and 1024, got 0"));
    let e = errors(&with_route("name = 'abc'\ntimeout_seconds = 'ten'"));
    assert!(e[0].contains("must be an integer, got a string"), "{e:?}");
}

#[test]
fn unknown_auth_profiles_are_errors() {
    let text = format!(
        "[ingest]\nauth = 'nobody'\n[auth.crm]\ntype = 'header'\nheader = 'X-Key'\nsecret = 's'\n{}",
        with_route(
            "name = 'abc'\nauth = 'crn'\nenrich = { url = 'https://x.example/{{ event.user_id }}', auth = 'nope' }"
        )
    );
    let e = errors(&text);
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(e.iter().any(|m| {
        m.contains("[ingest]: field `auth`: unknown auth profile `nobody`; defined profiles: crm")
    }));
    assert!(
        e.iter()
            .any(|m| m.contains("route `abc`: field `auth`: unknown auth profile `crn`"))
    );
    assert!(
        e.iter()
            .any(|m| m.contains("field `enrich.auth`: unknown auth profile `nope`"))
    );
    let e = errors(
        "[ingest]\nauth = 'crm'\n[auth.crm]\ntype = 'header'\nheader = 'X-Key'\nsecret = 's'\n",
    );
    assert!(e[0].contains("inbound auth needs type api_key"), "{e:?}");
}

#[test]
fn bad_auth_profiles_are_errors() {
    let e = errors(
        "[auth.a]\ntype = 'magic'\n[auth.b]\ntype = 'oauth2'\ntoken_url = 'x'\nrequest = 'xml'\ncredentials_secret = 'c'\n[auth.c]\ntype='header'\nheader='Bad Header'\nsecret=''\n",
    );
    let text = e.join("\n");
    assert!(
        text.contains("[auth.a]: field `type`: unknown type `magic`"),
        "{text}"
    );
    assert!(
        text.contains("[auth.b]: field `token_url`: is not a valid URL"),
        "{text}"
    );
    assert!(
        text.contains("[auth.b]: field `request`: must be \"form\" or \"json_basic\""),
        "{text}"
    );
    assert!(
        text.contains("[auth.b]: field `token_secret`: is required"),
        "{text}"
    );
    assert!(
        text.contains("[auth.c]: field `header`: `Bad Header` is not a valid HTTP header name"),
        "{text}"
    );
    assert!(
        text.contains("[auth.c]: field `secret`: must name a secret"),
        "{text}"
    );
}

#[test]
fn template_syntax_errors_and_unknown_names_are_errors() {
    let e = errors(&with_route(
        "name = 'abc'\ntemplate = '{\"a\": {{ event.user_id }'",
    ));
    assert!(
        e[0].contains("field `template`: template syntax error") && e[0].contains("line 1"),
        "{e:?}"
    );
    let e = errors(&with_route(
        "name = 'abc'\ntemplate = '{\"a\": {{ user_id | tojson }}}'",
    ));
    assert!(
        e[0].contains("unknown name `user_id`; the context has: event, route, delivery, now"),
        "{e:?}"
    );
    let e = errors(&with_route(
        "name = 'abc'\ntemplate = '{\"a\": {{ external.x | tojson }}}'",
    ));
    assert!(
        e[0].contains("unknown name `external`"),
        "external needs enrich: {e:?}"
    );
    let e = errors(&with_route(
        "name = 'abc'\nenrich = { url = 'https://x.example/{{ external.id }}' }",
    ));
    assert!(
        e[0].contains("field `enrich.url`") && e[0].contains("`external`"),
        "{e:?}"
    );
    let e = errors(&with_route(
        "name = 'abc'\ntemplate = '{}'\ntemplate_file = 'x.j2'",
    ));
    assert!(e[0].contains("not both"), "{e:?}");
    let e = errors(
        "[[route]]\nname = 'abc'\ntarget_url = 'https://x.example/'\ntriggers = [{ event_type = 'intent' }]",
    );
    assert!(e[0].contains("field `template`: is required"), "{e:?}");
}

#[test]
fn template_files_resolve_relative_to_the_routes_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    std::fs::write(
        dir.path().join("templates/crm.json.j2"),
        "{\"id\": {{ delivery.id | tojson }}}",
    )
    .unwrap();
    let path = dir.path().join("routes.toml");
    std::fs::write(
        &path,
        with_route("name = 'abc'\ntemplate_file = 'templates/crm.json.j2'"),
    )
    .unwrap();
    let routes = Routes::load(&path).unwrap();
    assert!(routes.get("abc").is_some());

    std::fs::write(
        &path,
        with_route("name = 'abc'\ntemplate_file = 'templates/missing.j2'"),
    )
    .unwrap();
    let e = Routes::load(&path).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("field `template_file`: cannot read `templates/missing.j2`"),
        "{msg}"
    );
    assert!(
        msg.contains(
            &dir.path()
                .join("templates/missing.j2")
                .display()
                .to_string()
        ),
        "{msg}"
    );

    let missing = Routes::load(&dir.path().join("nope.toml")).unwrap_err();
    assert!(missing.to_string().contains("cannot read the routes file"));
}

#[test]
fn schedule_steps_over_12h_and_bad_durations_are_errors() {
    let e = errors(&with_route(
        "name = 'abc'\nretry = { schedule = ['5s', '13h', 'soon', 7], max_age = '0s' }",
    ));
    assert_eq!(e.len(), 4, "{e:?}");
    assert!(e[0].contains("field `retry.schedule[1]`: `13h` is over 12h"));
    assert!(e[1].contains("retry.schedule[2]"));
    assert!(e[2].contains("retry.schedule[3]`: must be a duration string"));
    assert!(e[3].contains("retry.max_age`: must be longer than 0s"));
}

#[test]
fn every_error_of_a_file_is_reported_at_once() {
    let text = format!(
        "{}\n{}",
        with_route("name = 'ab'\ntimeout_seconds = 99"),
        with_route("name = 'second'\ntarget_url = 'nope'\nauth = 'ghost'")
    );
    let err = parse(&text).unwrap_err();
    assert_eq!(err.errors.len(), 4, "{err}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("routes file /tmp/routes.toml has 4 errors:"),
        "{msg}"
    );
}

#[test]
fn matching_follows_the_trigger_and_negate_semantics() {
    let r = parse(GOOD).unwrap();
    let crm = r.get("crm-handoff").unwrap();
    assert!(crm.fires(&event(EventType::Intent, Some("handover"), 0.9)));
    assert!(
        crm.fires(&event(EventType::Intent, Some("handover"), 0.8)),
        "threshold is inclusive"
    );
    assert!(!crm.fires(&event(EventType::Intent, Some("handover"), 0.79)));
    assert!(!crm.fires(&event(EventType::Intent, Some("other"), 0.9)));
    assert!(!crm.fires(&event(EventType::Entity, Some("handover"), 0.9)));
    assert!(
        !crm.fires(&event(EventType::Intent, None, 0.9)),
        "a named trigger needs the name"
    );

    let only_negated = parse(&with_route(
        "name = 'abc'\ntriggers = [{ event_type = 'intent', name = 'smalltalk', negate = true }]",
    ))
    .unwrap();
    let route = only_negated.get("abc").unwrap();
    assert!(route.fires(&event(EventType::Intent, Some("handover"), 1.0)));
    assert!(route.fires(&event(EventType::FlowEnd, None, 1.0)));
    assert!(!route.fires(&event(EventType::Intent, Some("smalltalk"), 1.0)));

    let mixed = parse(&with_route(
        "name = 'abc'\ntriggers = [{ event_type = 'intent' }, { event_type = 'intent', threshold = 0.5, negate = true }]",
    ))
    .unwrap();
    let route = mixed.get("abc").unwrap();
    assert!(route.fires(&event(EventType::Intent, Some("x"), 0.4)));
    assert!(
        !route.fires(&event(EventType::Intent, Some("x"), 0.6)),
        "a holding negated trigger vetoes"
    );

    let names: Vec<_> = r
        .matching(&event(EventType::FlowEnd, None, 1.0))
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["flow-ends"]);
}

#[test]
fn absent_optional_event_fields_render_as_null_and_data_as_empty() {
    let text = with_route(
        "name = 'abc'\ntemplate = '[{{ event.user_id | tojson }}, {{ event.name | tojson }}, {{ event.data | tojson }}, {{ event.data.text | default(\"-\") | tojson }}, {{ event.event_type | tojson }}]'",
    );
    let r = parse(&text).unwrap();
    let route = r.get("abc").unwrap();
    let mut e = event(EventType::Intent, None, 1.0);
    e.user_id = None;
    let now = time::macros::datetime!(2026-11-27 10:00:00 UTC);
    let job = DeliveryJob::new(&e, &route.name, now);
    let body = r
        .render_payload(route, &Routes::context(&job, 1, now, None))
        .unwrap();
    assert_eq!(body, r#"[null, null, {}, "-", "intent"]"#);
    let typo = parse(&with_route(
        "name = 'abc'\ntemplate = '{{ event.usr_id | tojson }}'",
    ))
    .unwrap();
    let job = DeliveryJob::new(&e, &RouteName::parse("abc").unwrap(), now);
    assert!(
        typo.render_payload(
            typo.get("abc").unwrap(),
            &Routes::context(&job, 1, now, None)
        )
        .is_err()
    );
}

#[test]
fn the_payload_renders_with_the_contract_context() {
    let r = parse(GOOD).unwrap();
    let e = event(EventType::Intent, Some("handover"), 0.9);
    let route = r.get("crm-handoff").unwrap();
    let job = DeliveryJob::new(
        &e,
        &route.name,
        time::macros::datetime!(2026-11-27 10:00:00 UTC),
    );
    let now = time::macros::datetime!(2026-11-27 10:00:05 UTC);
    let ctx = Routes::context(&job, 2, now, Some(&serde_json::json!({"tier": "gold"})));
    let body = r.render_payload(route, &ctx).unwrap();
    assert_eq!(body, r#"{"user": "usr_1", "tier": "gold"}"#);
    assert_eq!(
        r.render_enrich_url(route, &ctx).unwrap().as_str(),
        "https://crm.example.com/users/usr_1"
    );

    let without_external = Routes::context(&job, 1, now, None);
    assert!(matches!(
        r.render_payload(route, &without_external),
        Err(RenderError::Template(_))
    ));

    let ends = r.get("flow-ends").unwrap();
    let job = DeliveryJob::new(&e, &ends.name, now);
    let body = r
        .render_payload(ends, &Routes::context(&job, 1, now, None))
        .unwrap();
    assert_eq!(body, format!("{{\"id\": \"{}\"}}", job.delivery_id));
}

fn enrich_file(url: &str) -> String {
    format!(
        r#"
[[route]]
name = "crm-lookup"
target_url = "https://hooks.example.com/in"
template = '{{"tier": {{{{ external.tier | tojson }}}}}}'
enrich = {{ url = "{url}" }}
triggers = [{{ event_type = "intent" }}]
"#
    )
}

/// The enrich URL for an event whose `user_id` is `user_id`.
fn enrich_url(url_template: &str, user_id: &str) -> Result<String, RenderError> {
    let r = parse(&enrich_file(url_template)).unwrap_or_else(|e| panic!("{e}"));
    let route = r.get("crm-lookup").unwrap();
    let mut e = event(EventType::Intent, None, 1.0);
    e.user_id = Some(user_id.to_owned());
    let now = time::macros::datetime!(2026-11-27 10:00:00 UTC);
    let job = DeliveryJob::new(&e, &route.name, now);
    r.render_enrich_url(route, &Routes::context(&job, 1, now, None))
        .map(|u| u.to_string())
}

#[test]
fn a_token_url_must_be_https_unless_it_is_loopback() {
    let profile = |url: &str| {
        format!(
            "[auth.c]\ntype = \"oauth2\"\ntoken_url = \"{url}\"\ncredentials_secret = \"c\"\ntoken_secret = \"t\"\n"
        )
    };
    for ok in [
        "https://api-trial.cognigy.ai/auth/oauth2/token",
        "http://127.0.0.1:9000/token",
        "http://localhost/token",
        "http://[::1]:8080/token",
    ] {
        assert!(parse(&profile(ok)).is_ok(), "{ok}");
    }
    for bad in ["http://api-trial.cognigy.ai/token", "http://10.0.0.5/token"] {
        let errs = errors(&profile(bad));
        assert!(
            errs.iter().any(|e| e.contains("must be https")),
            "{bad}: {errs:?}"
        );
    }
}

#[test]
fn event_data_cannot_steer_an_enrich_url() {
    let hostile = [
        (
            "../../internal/admin/export-all",
            "..%2F..%2Finternal%2Fadmin%2Fexport-all",
        ),
        ("%2f..%2fadmin", "%252f..%252fadmin"),
        ("x?admin=1", "x%3Fadmin%3D1"),
        ("x#frag", "x%23frag"),
        ("..\\..\\admin", "..%5C..%5Cadmin"),
        ("user@evil.example", "user%40evil.example"),
        ("http://other.example/", "http%3A%2F%2Fother.example%2F"),
        ("üser 1", "%C3%BCser%201"),
        ("a:b;c=d&e", "a%3Ab%3Bc%3Dd%26e"),
    ];
    for template in [
        "https://crm.example.com/users/{{ event.user_id | urlencode }}",
        "https://crm.example.com/users/{{ event.user_id }}",
    ] {
        for (value, encoded) in hostile {
            assert_eq!(
                enrich_url(template, value).unwrap(),
                format!("https://crm.example.com/users/{encoded}"),
                "{template} with {value}"
            );
        }
        // Whole dot segments would climb out of the literal prefix: refused, never sent.
        for value in ["..", ".", "%2e%2e"] {
            let got = enrich_url(template, value);
            if value == "%2e%2e" {
                // `%` is encoded, so this is the harmless literal text `%2e%2e`.
                assert_eq!(got.unwrap(), "https://crm.example.com/users/%252e%252e");
            } else {
                assert!(
                    matches!(got, Err(RenderError::Url(_))),
                    "{template} {value}: {got:?}"
                );
            }
        }
        // An empty value would name a different resource (`/users/`).
        assert!(enrich_url(template, "").is_err());
    }
    // In a query the same encoding applies: no parameter of the attacker's own.
    assert_eq!(
        enrich_url(
            "https://crm.example.com/find?u={{ event.user_id }}",
            "a&role=admin#x"
        )
        .unwrap(),
        "https://crm.example.com/find?u=a%26role%3Dadmin%23x"
    );
    // `safe` cannot smuggle reserved characters past the encoder.
    assert_eq!(
        enrich_url(
            "https://crm.example.com/users/{{ event.user_id | safe }}",
            "../admin"
        )
        .unwrap(),
        "https://crm.example.com/users/..%2Fadmin"
    );
}

#[test]
fn an_enrich_url_must_fix_its_origin_before_any_tag() {
    for bad in [
        "https://crm.example.com{{ event.user_id }}",
        "https://{{ event.user_id }}.crm.example.com/x",
        "{{ event.data.base }}/users",
        "https://crm.example.com:{{ event.user_id }}/x",
        "ftp://crm.example.com/{{ event.user_id }}",
    ] {
        let errs = errors(&enrich_file(bad));
        assert!(
            errs.iter().any(|e| e.contains("enrich.url")),
            "{bad}: {errs:?}"
        );
    }
    let errs = errors(&with_route(
        "name = 'abc'\ntarget_url = 'https://x.example.com/{{ event.user_id }}'",
    ));
    assert!(
        errs.iter()
            .any(|e| e.contains("target_url") && e.contains("not a template")),
        "{errs:?}"
    );
}

#[test]
fn bare_values_in_a_payload_cannot_break_out_of_their_json_string() {
    let text = with_route(
        "name = 'abc'\ntemplate = '{\"text\": \"{{ event.user_id }}\", \"admin\": false}'",
    );
    let r = parse(&text).unwrap();
    let route = r.get("abc").unwrap();
    let mut e = event(EventType::Intent, None, 1.0);
    e.user_id = Some("x\", \"admin\": true, \"y\": \"\\\n".into());
    let now = time::macros::datetime!(2026-11-27 10:00:00 UTC);
    let job = DeliveryJob::new(&e, &route.name, now);
    let body = r
        .render_payload(route, &Routes::context(&job, 1, now, None))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["admin"], false);
    assert_eq!(v["text"], e.user_id.unwrap().as_str());
    assert_eq!(v.as_object().unwrap().len(), 2);
}

#[test]
fn an_enrich_table_reports_each_problem_once() {
    let e = errors(&with_route(
        "name = 'abc'\nenrich = { auth = 'nope', colour = 1, timeout_seconds = 0 }",
    ));
    assert_eq!(
        e,
        [
            "route `abc`: field `enrich.colour`: unknown field; expected one of: url, auth, timeout_seconds",
            "route `abc`: field `enrich.auth`: unknown auth profile `nope`; the file defines no [auth.*] profiles",
            "route `abc`: field `enrich.timeout_seconds`: must be between 1 and 30, got 0",
            "route `abc`: field `enrich.url`: is required",
        ],
        "{e:?}"
    );
}

#[test]
fn circuit_breakers_default_and_are_overridden_per_route() {
    use crate::breaker::BreakerSettings;
    let r = parse(&with_route("name = 'abc'")).unwrap();
    assert_eq!(r.get("abc").unwrap().breaker, BreakerSettings::default());
    assert_eq!(r.get("abc").unwrap().max_in_flight, None);

    let text = format!(
        "[delivery]\ncircuit_breaker = {{ failures = 3, cool_down = \"10s\" }}\n{}\n{}",
        with_route("name = 'plain'"),
        with_route("name = 'own'\ncircuit_breaker = { max_cool_down = \"1m\" }\nmax_in_flight = 4")
            .replace("[[route]]", "\n[[route]]")
    );
    let r = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let plain = r.get("plain").unwrap().breaker;
    assert_eq!(
        (plain.failures, plain.cool_down, plain.max_cool_down),
        (3, Duration::from_secs(10), Duration::from_secs(600))
    );
    let own = r.get("own").unwrap();
    assert_eq!(
        (
            own.breaker.failures,
            own.breaker.cool_down,
            own.breaker.max_cool_down
        ),
        (3, Duration::from_secs(10), Duration::from_secs(60))
    );
    assert_eq!(own.max_in_flight, Some(4));

    let off = parse(&with_route(
        "name = 'off'\ncircuit_breaker = { failures = 0 }",
    ))
    .unwrap();
    assert!(!off.get("off").unwrap().breaker.enabled());

    for (bad, field) in [
        (
            "circuit_breaker = { failures = -1 }",
            "circuit_breaker.failures",
        ),
        (
            "circuit_breaker = { cool_down = \"0s\" }",
            "circuit_breaker.cool_down",
        ),
        (
            "circuit_breaker = { cool_down = \"5m\", max_cool_down = \"1m\" }",
            "circuit_breaker.max_cool_down",
        ),
        (
            "circuit_breaker = { colldown = \"5m\" }",
            "circuit_breaker.colldown",
        ),
        ("max_in_flight = 0", "max_in_flight"),
    ] {
        let errs = errors(&with_route(&format!("name = 'bad'\n{bad}")));
        assert!(
            errs.iter().any(|e| e.contains(&format!("`{field}`"))),
            "{bad}: {errs:?}"
        );
    }
}

const COGNIGY: &str = r#"
[cognigy.support]
base_url = "https://endpoint-trial.cognigy.ai"
url_token_secret = "cognigy/support-url-token"
"#;

#[test]
fn cognigy_endpoints_targets_and_replies_load() {
    let text = format!(
        "{COGNIGY}\n{}\n{}",
        with_route(
            "name = 'notify'\ncognigy = { endpoint = \"support\", mode = \"notify\" }\ntemplate = '{\"text\": \"open\"}'"
        ),
        with_route(
            "name = 'order-status'\ntarget_url = 'https://orders.example.com/api'\n\
             reply = { cognigy = \"support\", mode = \"inject\", template = '{\"text\": {{ response.json.summary | tojson }}}', on_failure = '{\"text\": \"sorry ({{ failure.reason }})\"}' }"
        )
    );
    let r = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let e = &r.cognigy["support"];
    assert_eq!(e.base_url.as_str(), "https://endpoint-trial.cognigy.ai/");
    assert_eq!(e.timeout, Duration::from_secs(10));
    assert_eq!(e.retry.schedule.len(), 4);
    let notify = r.get("notify").unwrap();
    assert_eq!(
        notify.target,
        Target::Cognigy(CognigyTarget {
            endpoint: "support".into(),
            mode: Mode::Notify
        })
    );
    assert!(notify.answers_into_session());
    let order = r.get("order-status").unwrap();
    let reply = order.reply.as_ref().unwrap();
    assert_eq!((reply.to.mode, reply.on_failure), (Mode::Inject, true));
    assert!(order.answers_into_session());
    assert!(r.secret_ids().contains(&"cognigy/support-url-token"));
}

#[test]
fn cognigy_mistakes_are_load_errors() {
    for (route, field) in [
        (
            "cognigy = { endpoint = \"nope\", mode = \"inject\" }",
            "cognigy.endpoint",
        ),
        (
            "cognigy = { endpoint = \"support\", mode = \"shout\" }",
            "cognigy.mode",
        ),
        ("cognigy = { endpoint = \"support\" }", "cognigy.mode"),
        (
            "cognigy = { endpoint = \"support\", mode = \"inject\" }\ntarget_url = 'https://x.example/'",
            "cognigy",
        ),
        (
            "cognigy = { endpoint = \"support\", mode = \"inject\" }\nauth = 'k'",
            "auth",
        ),
        (
            "cognigy = { endpoint = \"support\", mode = \"inject\" }\nreply = { cognigy = \"support\", mode = \"inject\", template = '{}' }",
            "reply",
        ),
        (
            "reply = { cognigy = \"support\", mode = \"inject\" }",
            "reply.template",
        ),
        (
            "reply = { cognigy = \"support\", mode = \"inject\", template = '{{ failure.reason }}' }",
            "reply.template",
        ),
        (
            "reply = { cognigy = \"support\", mode = \"inject\", template = '{}', on_failure = '{{ response.json }}' }",
            "reply.on_failure",
        ),
    ] {
        let text = format!(
            "{COGNIGY}\n[auth.k]\ntype = \"api_key\"\nsecret = \"k\"\n{}",
            with_route(&format!("name = 'bad'\n{route}"))
        );
        let errs = errors(&text);
        assert!(
            errs.iter().any(|e| e.contains(&format!("`{field}`"))),
            "{route}: {errs:?}"
        );
    }
    let plain_http = COGNIGY.replace(
        "https://endpoint-trial.cognigy.ai",
        "http://cognigy.example.com",
    );
    let errs = errors(&plain_http);
    assert!(errs.iter().any(|e| e.contains("must be https")), "{errs:?}");
    assert!(
        parse(&COGNIGY.replace(
            "https://endpoint-trial.cognigy.ai",
            "http://127.0.0.1:3000/demo/cognigy"
        ))
        .is_ok()
    );
}

#[test]
fn an_event_without_ids_cannot_fire_a_route_that_answers_into_the_session() {
    let text = format!(
        "{COGNIGY}\n{}\n{}",
        with_route("name = 'plain'"),
        with_route(
            "name = 'notify'\ncognigy = { endpoint = \"support\", mode = \"notify\" }\ntemplate = '{\"text\": \"x\"}'"
        )
    );
    let r = parse(&text).unwrap();
    let mut e = event(EventType::Intent, None, 1.0);
    e.session_id = None;
    let plain = [r.get("plain").unwrap()];
    assert!(Routes::missing_fields(&plain, &e).is_empty());
    let both = [r.get("plain").unwrap(), r.get("notify").unwrap()];
    let missing = Routes::missing_fields(&both, &e);
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].field, "session_id");
    assert!(
        missing[0].reason.contains("`notify`"),
        "{}",
        missing[0].reason
    );
    e.user_id = Some(String::new());
    assert_eq!(Routes::missing_fields(&both, &e).len(), 2);
}

#[test]
fn ordered_routes_need_a_session_key() {
    let text = format!(
        "{}\n{}",
        with_route("name = 'timeline'\nordering = \"session\""),
        with_route("name = 'plain'\nordering = \"none\"")
    );
    let r = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert!(r.get("timeline").unwrap().ordered);
    assert!(!r.get("plain").unwrap().ordered);
    let timeline = [r.get("timeline").unwrap()];
    let mut e = event(EventType::Intent, None, 1.0);
    e.user_id = None;
    let missing = Routes::missing_fields(&timeline, &e);
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(missing[0].reason.contains("user_id") && missing[0].reason.contains("`timeline`"));
    e.user_id = Some("u".into());
    assert!(
        Routes::missing_fields(&timeline, &e).is_empty(),
        "user_id will do"
    );
    e.user_id = None;
    e.session_id = Some("s".into());
    assert!(Routes::missing_fields(&timeline, &e).is_empty());
    let errs = errors(&with_route("name = 'bad'\nordering = \"strict\""));
    assert!(errs.iter().any(|e| e.contains("`ordering`")), "{errs:?}");
}
