//! Loading: a full file, and every kind of load error, reported at once with its place.

use super::*;

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
fn every_error_names_its_line() {
    let text = "\
[ingest]
max_body_kb = 0

[auth.crm]
type = 'header'
secret = 'crm/key'

[[route]]
name = 'first'
target_url = 'https://example.com/'
template = '{}'
triggers = [
  { event_type = 'intent' },
  { event_type = 'nope' },
]
retry = { schedule = ['30s', 'soon'] }

[[route]]
name = 'second'
template = '{}'
triggers = [{ event_type = 'intent' }]

[[route]]
name = 'third'
target_url = 'https://example.com/'
template = '{}'
triggers = [{ event_type = 'intent' }]

[[route]]
name = 'third'
target_url = 'https://example.com/'
template = '{}'
triggers = [{ event_type = 'intent' }]
";
    let e = parse(text).unwrap_err().errors;
    let got: Vec<_> = e.iter().map(|e| (e.line, e.field.as_deref())).collect();
    assert_eq!(
        got,
        [
            (Some(2), Some("max_body_kb")),
            // A missing field: the line of its table's header.
            (Some(4), Some("header")),
            (Some(14), Some("triggers[1].event_type")),
            (Some(16), Some("retry.schedule[1]")),
            (Some(18), Some("target_url")),
            (Some(30), Some("name")),
        ],
        "{e:#?}"
    );
    let shown = parse(text).unwrap_err().to_string();
    assert!(
        shown.contains(
            "\n  - line 14: route `first`: field `triggers[1].event_type`: must be one of"
        ),
        "{shown}"
    );
}
