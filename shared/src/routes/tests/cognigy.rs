//! Circuit-breaker settings, Cognigy endpoints, targets and replies, and ordered routes.

use super::*;

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

#[test]
fn an_ordered_routes_session_cap_defaults_and_is_range_checked() {
    let two = format!(
        "{}\n{}",
        with_route("name = 'timeline'\nordering = \"session\""),
        with_route("name = 'capped'\nordering = \"session\"\nmax_queued_per_session = 50")
    );
    let r = parse(&two).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.get("timeline").unwrap().max_queued_per_session, 1000);
    assert_eq!(r.get("capped").unwrap().max_queued_per_session, 50);
    // `[delivery]` sets the default; a route's own wins.
    let r = parse(&format!("[delivery]\nmax_queued_per_session = 20\n{two}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.delivery.max_queued_per_session, 20);
    assert_eq!(r.get("timeline").unwrap().max_queued_per_session, 20);
    assert_eq!(r.get("capped").unwrap().max_queued_per_session, 50);

    let errs = errors(&with_route("name = 'plain'\nmax_queued_per_session = 5"));
    assert!(
        errs.iter()
            .any(|e| e.contains("`max_queued_per_session`") && e.contains("only an ordered route")),
        "{errs:?}"
    );
    let errs = errors(&format!(
        "[delivery]\nmax_queued_per_session = 0\n{}",
        with_route("name = 'timeline'\nordering = \"session\"\nmax_queued_per_session = 'many'")
    ));
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].contains("must be between 1 and 1000000, got 0"),
        "{errs:?}"
    );
    assert!(errs[1].contains("must be an integer"), "{errs:?}");
}

#[test]
fn rate_limits_load_on_routes_endpoints_and_delivery_and_name_who_shares_them() {
    use crate::rate_limit::RateLimit;
    let lim = |requests, secs| RateLimit {
        requests,
        per: Duration::from_secs(secs),
    };
    let text = format!(
        "[delivery]\nrate_limit = {{ requests = 50, per = \"10s\" }}\n\
         [cognigy.support]\nbase_url = \"https://endpoint-trial.cognigy.ai\"\n\
         url_token_secret = \"t\"\nrate_limit = {{ requests = 1000, per = \"5m\" }}\n\
         [cognigy.other]\nbase_url = \"https://endpoint-trial.cognigy.ai\"\nurl_token_secret = \"u\"\n{}\n{}\n{}",
        with_route("name = 'default'"),
        with_route(
            "name = 'own'\nrate_limit = { requests = 20, per = \"1s\" }\n\
             reply = { cognigy = \"support\", mode = \"inject\", template = '{}' }"
        ),
        with_route(
            "name = 'into-session'\ncognigy = { endpoint = \"support\", mode = \"notify\" }"
        ),
    );
    let r = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let named = |route: &str, reply: bool| r.rate_limits(r.get(route).unwrap(), reply);
    assert_eq!(
        named("default", false),
        [("route:default".into(), lim(50, 10))]
    );
    assert_eq!(named("own", false), [("route:own".into(), lim(20, 1))]);
    // A reply goes into the endpoint: its limit, shared with every route sending there.
    assert_eq!(
        named("own", true),
        [("cognigy:support".into(), lim(1000, 300))]
    );
    assert_eq!(
        named("into-session", false),
        [
            ("route:into-session".into(), lim(50, 10)),
            ("cognigy:support".into(), lim(1000, 300)),
        ]
    );
    assert_eq!(r.cognigy["other"].rate_limit, None);
    // Without any, nothing limits.
    let r = parse(&with_route("name = 'free'")).unwrap();
    assert!(r.rate_limits(r.get("free").unwrap(), false).is_empty());
}

#[test]
fn rate_limit_mistakes_are_load_errors() {
    for (bad, want) in [
        (
            "rate_limit = { requests = 0, per = \"1s\" }",
            "`rate_limit.requests`: must be between 1 and 100000",
        ),
        (
            "rate_limit = { requests = 10 }",
            "`rate_limit.per`: is required",
        ),
        (
            "rate_limit = { per = \"1s\" }",
            "`rate_limit.requests`: is required",
        ),
        (
            "rate_limit = { requests = 10, per = \"500ms\" }",
            "`rate_limit.per`:",
        ),
        (
            "rate_limit = { requests = 10, per = \"2d\" }",
            "`rate_limit.per`:",
        ),
        (
            "rate_limit = { requests = 10, per = \"1s\", burst = 5 }",
            "`rate_limit.burst`: unknown field",
        ),
        ("rate_limit = 10", "`rate_limit`: must be a table"),
    ] {
        let errs = errors(&with_route(&format!("name = 'bad'\n{bad}")));
        assert!(errs.iter().any(|e| e.contains(want)), "{bad}: {errs:?}");
    }
    let errs = errors("[delivery]\nrate_limit = { requests = 'many', per = '1s' }\n");
    assert!(
        errs[0].contains("[delivery]: field `rate_limit.requests`"),
        "{errs:?}"
    );
}
