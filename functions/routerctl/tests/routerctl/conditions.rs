//! `where` conditions from outside: a running `serve` with several conditional routes on
//! one host delivers each event to exactly the routes its data selects (hostile and odd
//! data included) and answers `unrouted` for the rest; `routes check --event` explains
//! each route's verdict; a file with bad conditions is refused with every error's line.

use crate::common::*;
use router_tests::targets::Targets;
use std::collections::BTreeSet;

const ROUTES: &[(&str, &str)] = &[
    (
        "voice-orders",
        "[[route.triggers]]\nevent_type = \"intent\"\nname = \"handover\"\n\
         [route.triggers.where]\n\"data.channel\" = \"voice\"\n\"data.order.total\" = { gte = 100 }\n",
    ),
    (
        "vip",
        "triggers = [{ event_type = \"intent\", where = { \"data.tier\" = { any_of = [\"gold\", \"vip\"] }, \"data.country\" = { anything_but = [\"US\"] } } }]\n",
    ),
    (
        "has-email",
        "triggers = [{ event_type = \"flow_end\", where = { \"data.email\" = { exists = true }, \"user_id\" = { prefix = \"usr_\" } } }]\n",
    ),
];

/// `(event id, body's extra fields, the routes it must reach)`.
fn events() -> Vec<(&'static str, serde_json::Value, &'static [&'static str])> {
    use serde_json::json;
    vec![
        (
            "e-voice-big",
            json!({"name": "handover", "data": {"channel": "voice", "order": {"total": 250}}}),
            &["voice-orders"],
        ),
        (
            "e-voice-small",
            json!({"name": "handover", "data": {"channel": "voice", "order": {"total": 99.5}}}),
            &[],
        ),
        (
            "e-chat-big",
            json!({"name": "handover", "data": {"channel": "chat", "order": {"total": 250}}}),
            &[],
        ),
        // Types are not converted.
        (
            "e-total-string",
            json!({"name": "handover", "data": {"channel": "voice", "order": {"total": "250"}}}),
            &[],
        ),
        (
            "e-both",
            json!({"name": "handover", "data": {"channel": "voice", "order": {"total": 100}, "tier": "gold", "country": "DE"}}),
            &["voice-orders", "vip"],
        ),
        (
            "e-vip-us",
            json!({"name": "x", "data": {"tier": "vip", "country": "US"}}),
            &[],
        ),
        (
            "e-vip-list",
            json!({"name": "x", "data": {"tier": ["silver", "vip"], "country": "FR"}}),
            &["vip"],
        ),
        (
            "e-vip-no-country",
            json!({"name": "x", "data": {"tier": "gold"}}),
            &[],
        ),
        // Hostile shapes: an object where a string is expected, control characters, a
        // path key holding a dot, deep nesting, a huge number.
        (
            "e-hostile-1",
            json!({"name": "handover", "data": {"channel": {"voice": true}, "order": {"total": 1e308}}}),
            &[],
        ),
        (
            "e-hostile-2",
            json!({"name": "handover", "data": {"channel": "voice\u{0}", "order.total": 500}}),
            &[],
        ),
        (
            "e-hostile-3",
            json!({"name": "x", "data": {"tier": [[["gold"]]], "country": [["DE"]]}}),
            &["vip"],
        ),
        (
            "e-email",
            json!({"event_type": "flow_end", "user_id": "usr_7", "data": {"email": "a@example.com"}}),
            &["has-email"],
        ),
        (
            "e-email-null",
            json!({"event_type": "flow_end", "user_id": "usr_7", "data": {"email": null}}),
            &[],
        ),
        (
            "e-email-bot",
            json!({"event_type": "flow_end", "user_id": "bot_7", "data": {"email": "a@example.com"}}),
            &[],
        ),
    ]
}

fn body(id: &str, extra: &serde_json::Value) -> String {
    let mut b = serde_json::json!({"id": id, "event_type": "intent"});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_delivers_each_event_to_the_routes_its_data_selects() {
    let targets = Targets::start().await;
    let ws = Workspace::new(&routes_for(&targets, ROUTES));
    let serve = ws.serve(&[]);
    let mut want: Vec<(String, &str)> = Vec::new();
    for (id, extra, routes) in events() {
        let (status, reply) = serve.trigger(&body(id, &extra)).await;
        let fired: BTreeSet<&str> = reply["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["route"].as_str().unwrap())
            .collect();
        assert_eq!(fired, routes.iter().copied().collect(), "{id}: {reply}");
        if routes.is_empty() {
            assert_eq!(
                (status, reply["status"].as_str()),
                (200, Some("unrouted")),
                "{id}"
            );
        } else {
            assert_eq!(status, 202, "{id}: {reply}");
        }
        want.extend(routes.iter().map(|r| (id.to_owned(), *r)));
    }
    let arrived = || {
        ROUTES
            .iter()
            .flat_map(|(r, _)| {
                targets.received_at(r).into_iter().map(move |d| {
                    let b: serde_json::Value = serde_json::from_str(&d.body).unwrap();
                    (b["event"].as_str().unwrap().to_owned(), *r)
                })
            })
            .collect::<BTreeSet<_>>()
    };
    let want: BTreeSet<_> = want.into_iter().collect();
    assert!(
        wait_until(|| arrived() == want).await,
        "{:?}\n{}",
        arrived(),
        serve.log()
    );
}

#[test]
fn routes_check_event_explains_every_route() {
    let targets_url = "http://127.0.0.1:9";
    let routes: String = ROUTES
        .iter()
        .map(|(name, extra)| {
            format!("[[route]]\nname = \"{name}\"\ntarget_url = \"{targets_url}/{name}\"\ntemplate = '{{}}'\n{extra}\n")
        })
        .collect();
    let ws = Workspace::new(&routes);
    std::fs::write(
        ws.path("event.json"),
        body(
            "evt_check",
            &serde_json::json!({"name": "handover", "data": {"channel": "voice", "order": {"total": 80}, "tier": "vip", "country": "DE"}}),
        ),
    )
    .unwrap();
    let out = ws.run(&[
        "routes",
        "check",
        "--event",
        ws.path("event.json").to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for line in [
        "event evt_check (intent \"handover\", score 1):",
        "  route voice-orders: does not fire (trigger 1 does not hold: where data.order.total is 80, needs a number >= 100)",
        "  route vip: fires (trigger 1 holds)",
        "  route has-email: does not fire (trigger 1 does not hold: event_type is intent, not flow_end)",
        "1 of 3 routes fire.",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "`{line}` missing:\n{stdout}"
        );
    }
}

#[test]
fn a_file_with_bad_conditions_is_refused_with_each_line() {
    let ws = Workspace::new(
        "[[route]]\nname = \"abc\"\ntarget_url = \"https://example.com/\"\ntemplate = '{}'\n\
         [[route.triggers]]\nevent_type = \"intent\"\n[route.triggers.where]\n\
         \"data.tier\" = { one_of = [\"gold\"] }\n\"name\" = { gte = 1 }\n\"scor\" = 1\n",
    );
    let out = ws.run(&["routes", "check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("3 errors"), "{stdout}");
    for want in [
        "line 8: route `abc`: field `triggers[0].where.\"data.tier\"`: unknown operator `one_of`",
        "line 9: route `abc`: field `triggers[0].where.name`: a number compared with a string",
        "line 10: route `abc`: field `triggers[0].where.scor`: `scor` is not a field of the event",
    ] {
        assert!(stdout.contains(want), "`{want}` missing:\n{stdout}");
    }
    // serve refuses the file the same way and starts nothing.
    let out = ws.run(&["serve", "--port", "0"]);
    assert_ne!(out.status.code(), Some(0));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("line 9: route `abc`"), "{all}");
}
