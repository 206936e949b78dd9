//! `where` conditions: what each operator matches (a table of events per condition), that
//! `explain` agrees with `fires`, and every problem a `where` table can have, at once and
//! with its line.

use super::*;
use serde_json::json;

/// An intent event with `extra` merged over `{ "event_type": "intent", "name": "handover" }`.
fn ev(extra: serde_json::Value) -> TriggerEvent {
    let mut body = json!({ "event_type": "intent", "name": "handover", "id": "evt_1" });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    crate::event::from_json(body.to_string().as_bytes(), None).unwrap()
}

/// A route whose one trigger has `where = { <cond> }`.
fn route_with(cond: &str) -> Routes {
    parse(&with_route(&format!(
        "name = 'abc'\ntriggers = [{{ event_type = 'intent', where = {{ {cond} }} }}]"
    )))
    .unwrap_or_else(|e| panic!("{cond}: {e}"))
}

/// Checks each `(data, fires)` against the condition, and that `explain` agrees.
fn check(cond: &str, cases: &[(serde_json::Value, bool)]) {
    let r = route_with(cond);
    let route = r.get("abc").unwrap();
    for (extra, want) in cases {
        let e = ev(extra.clone());
        assert_eq!(route.fires(&e), *want, "{cond} with {extra}");
        let (fires, notes) = route.explain(&e);
        assert_eq!(fires, *want, "explain of {cond} with {extra}: {notes:?}");
        // The trigger's path: each path looked up once for every route.
        assert_eq!(
            r.matching(&e).count() == 1,
            *want,
            "matching {cond} with {extra}"
        );
    }
}

#[test]
fn equals_compares_strings_numbers_and_bools_by_type() {
    check(
        r#""data.channel" = "voice""#,
        &[
            (json!({"data": {"channel": "voice"}}), true),
            (json!({"data": {"channel": "Voice"}}), false),
            (json!({"data": {"channel": "chat"}}), false),
            (json!({"data": {"channel": null}}), false),
            (json!({"data": {"channel": 5}}), false),
            (json!({"data": {}}), false),
            (json!({}), false),
            // An array is looked through: any element.
            (json!({"data": {"channel": ["chat", "voice"]}}), true),
            (json!({"data": {"channel": {"voice": true}}}), false),
        ],
    );
    check(
        r#""data.order.total" = 100"#,
        &[
            (json!({"data": {"order": {"total": 100}}}), true),
            (json!({"data": {"order": {"total": 100.0}}}), true),
            (json!({"data": {"order": {"total": "100"}}}), false),
            (json!({"data": {"order": 100}}), false),
            (json!({"data": {"order.total": 100}}), false),
        ],
    );
    check(
        r#""data.vip" = true"#,
        &[
            (json!({"data": {"vip": true}}), true),
            (json!({"data": {"vip": false}}), false),
            (json!({"data": {"vip": "true"}}), false),
        ],
    );
}

#[test]
fn any_of_prefix_and_anything_but() {
    check(
        r#""data.tier" = { any_of = ["gold", "vip"] }"#,
        &[
            (json!({"data": {"tier": "gold"}}), true),
            (json!({"data": {"tier": "vip"}}), true),
            (json!({"data": {"tier": "silver"}}), false),
            (json!({"data": {"tier": ["silver", "vip"]}}), true),
            (json!({}), false),
        ],
    );
    check(
        r#""data.lang" = { prefix = "en" }"#,
        &[
            (json!({"data": {"lang": "en-US"}}), true),
            (json!({"data": {"lang": "en"}}), true),
            (json!({"data": {"lang": "de-en"}}), false),
            (json!({"data": {"lang": 5}}), false),
            (json!({}), false),
        ],
    );
    for cond in [
        r#""data.country" = { anything_but = ["US"] }"#,
        r#""data.country" = { anything_but = "US" }"#,
    ] {
        check(
            cond,
            &[
                (json!({"data": {"country": "DE"}}), true),
                (json!({"data": {"country": "US"}}), false),
                (json!({"data": {"country": 1}}), true),
                // Missing is false, like every condition but `exists = false`.
                (json!({"data": {}}), false),
                (json!({"data": {"country": null}}), false),
                // An array: none of its elements in the list.
                (json!({"data": {"country": ["DE", "FR"]}}), true),
                (json!({"data": {"country": ["DE", "US"]}}), false),
                (json!({"data": {"country": []}}), false),
            ],
        );
    }
}

#[test]
fn numeric_comparisons_and_ranges() {
    check(
        r#""data.order.total" = { gte = 100 }"#,
        &[
            (json!({"data": {"order": {"total": 100}}}), true),
            (json!({"data": {"order": {"total": 250.5}}}), true),
            (json!({"data": {"order": {"total": 99.99}}}), false),
            (json!({"data": {"order": {"total": "150"}}}), false),
            (json!({"data": {"order": {"total": true}}}), false),
            (json!({"data": {"order": {}}}), false),
        ],
    );
    check(
        r#""data.n" = { gt = 100 }"#,
        &[
            (json!({"data": {"n": 100}}), false),
            (json!({"data": {"n": 100.001}}), true),
        ],
    );
    check(
        r#""data.n" = { gte = 100, lt = 500 }"#,
        &[
            (json!({"data": {"n": 100}}), true),
            (json!({"data": {"n": 499.9}}), true),
            (json!({"data": {"n": 500}}), false),
            (json!({"data": {"n": -1}}), false),
            (json!({"data": {"n": [1, 200]}}), true),
        ],
    );
    check(
        r#""data.n" = { lte = -1.5 }"#,
        &[
            (json!({"data": {"n": -1.5}}), true),
            (json!({"data": {"n": -1.4}}), false),
        ],
    );
}

#[test]
fn exists_true_and_false() {
    check(
        r#""data.email" = { exists = true }"#,
        &[
            (json!({"data": {"email": "a@example.com"}}), true),
            (json!({"data": {"email": ""}}), true),
            (json!({"data": {"email": {}}}), true),
            (json!({"data": {"email": null}}), false),
            (json!({"data": {"email": []}}), false),
            (json!({"data": {}}), false),
            (json!({}), false),
        ],
    );
    check(
        r#""data.email" = { exists = false }"#,
        &[
            (json!({"data": {"email": "a@example.com"}}), false),
            (json!({"data": {"email": null}}), true),
            (json!({"data": {}}), true),
            (json!({}), true),
        ],
    );
}

#[test]
fn the_events_own_fields_and_paths_through_arrays() {
    check(
        r#""user_id" = { prefix = "usr_" }, "session_id" = { exists = false }"#,
        &[
            (json!({"user_id": "usr_42"}), true),
            (json!({"user_id": "bot_42"}), false),
            (json!({}), false),
            (json!({"user_id": "usr_42", "session_id": "s1"}), false),
        ],
    );
    check(
        r#""score" = { gte = 0.5, lt = 0.9 }, "name" = { any_of = ["handover", "agent"] }"#,
        &[
            (json!({"score": 0.5}), true),
            (json!({"score": 0.95}), false),
            (json!({"score": 0.6, "name": "other"}), false),
        ],
    );
    check(
        r#""event_type" = "intent", "id" = { prefix = "evt_" }"#,
        &[(json!({}), true), (json!({"id": "ord_1"}), false)],
    );
    check(
        r#""data.items.sku" = "A1""#,
        &[
            (
                json!({"data": {"items": [{"sku": "B2"}, {"sku": "A1"}]}}),
                true,
            ),
            (
                json!({"data": {"items": [{"sku": "B2"}, [{"sku": "A1"}]]}}),
                true,
            ),
            (json!({"data": {"items": [{"sku": "B2"}]}}), false),
            (json!({"data": {"items": "A1"}}), false),
        ],
    );
}

#[test]
fn every_condition_must_hold_beside_the_other_trigger_fields() {
    let text = "\
[[route]]
name = 'voice-handover'
target_url = 'https://example.com/'
template = '{}'

[[route.triggers]]
event_type = 'intent'
name = 'handover'
threshold = 0.5
[route.triggers.where]
\"data.channel\" = 'voice'
\"data.order.total\" = { gte = 100 }

[[route.triggers]]
event_type = 'intent'
negate = true
where = { \"data.test\" = true }
";
    let r = parse(text).unwrap();
    let route = r.get("voice-handover").unwrap();
    assert_eq!(route.triggers[0].conditions.len(), 2);
    let cases = [
        (
            json!({"score": 0.9, "data": {"channel": "voice", "order": {"total": 120}}}),
            true,
        ),
        (
            json!({"score": 0.4, "data": {"channel": "voice", "order": {"total": 120}}}),
            false,
        ),
        (
            json!({"score": 0.9, "data": {"channel": "chat", "order": {"total": 120}}}),
            false,
        ),
        (
            json!({"score": 0.9, "data": {"channel": "voice", "order": {"total": 80}}}),
            false,
        ),
        (
            json!({"name": "other", "data": {"channel": "voice", "order": {"total": 120}}}),
            false,
        ),
        // The negated trigger's condition vetoes.
        (
            json!({"data": {"channel": "voice", "order": {"total": 120}, "test": true}}),
            false,
        ),
    ];
    for (extra, want) in cases {
        let e = ev(extra.clone());
        assert_eq!(route.fires(&e), want, "{extra}");
        assert_eq!(route.explain(&e).0, want, "{extra}");
        assert_eq!(r.matching(&e).count() == 1, want, "{extra}");
    }
}

#[test]
fn explain_says_what_was_found_and_what_was_needed() {
    let r = route_with(r#""data.order.total" = { gte = 100 }, "data.email" = { exists = true }"#);
    let route = r.get("abc").unwrap();
    let (fires, notes) =
        route.explain(&ev(json!({"data": {"order": {"total": 80}, "email": "x"}})));
    assert!(!fires);
    assert_eq!(
        notes,
        ["trigger 1 does not hold: where data.order.total is 80, needs a number >= 100"]
    );
    let (_, notes) = route.explain(&ev(json!({"data": {"order": {"total": 120}}})));
    assert_eq!(
        notes,
        ["trigger 1 does not hold: where data.email is absent, needs to be present"]
    );
    let (_, notes) = route.explain(&ev(json!({"event_type": "flow_end"})));
    assert_eq!(
        notes,
        ["trigger 1 does not hold: event_type is flow_end, not intent"]
    );
    let (fires, notes) = route.explain(&ev(
        json!({"data": {"order": {"total": 120}, "email": "x"}}),
    ));
    assert!(fires);
    assert_eq!(notes, ["trigger 1 holds"]);

    // What the event says is shown escaped and cut short: it is whoever talks to the bot.
    let r = route_with(r#""data.channel" = "voice""#);
    let hostile = format!("\u{1b}[31mred\n{}", "x".repeat(100));
    let (_, notes) = r
        .get("abc")
        .unwrap()
        .explain(&ev(json!({"data": {"channel": hostile}})));
    assert!(
        !notes[0].contains('\u{1b}') && !notes[0].contains('\n'),
        "{notes:?}"
    );
    assert!(notes[0].contains(r#"is "\u{1b}[31mred\nxxx"#), "{notes:?}");
    assert!(notes[0].len() < 160, "{notes:?}");
}

#[test]
fn every_problem_of_a_where_table_is_reported_at_once_with_its_line() {
    let text = "\
[[route]]
name = 'abc'
target_url = 'https://example.com/'
template = '{}'
[[route.triggers]]
event_type = 'intent'
[route.triggers.where]
\"data.lang\" = { prefx = 'en' }
\"name\" = { gt = 5 }
\"score\" = 'high'
\"score.value\" = 1
\"colour\" = 'red'
\"data.j\" = { exists = 'yes' }
\"data..x\" = 1
\"data.tier\" = ['gold', 'vip']
\"data.a\" = {}
\"data.b\" = { prefix = 'x', gt = 1 }
\"data.c\" = { gt = 1, gte = 2 }
\"data.d\" = { gt = 10, lt = 5 }
\"data.e\" = nan
\"event_type\" = 'handoff'
\"id\" = { exists = false }
\"data.f\" = { prefix = '' }
\"data.g\" = { any_of = [] }
\"data.h\" = { any_of = [1, [2]] }
\"user_id\" = { any_of = ['usr_1', 2] }
\"data.i\" = 1979-05-27
data.channel = 'voice'
";
    let e = parse(text).unwrap_err().errors;
    let got: Vec<(usize, &str, &str)> = e
        .iter()
        .map(|e| {
            (
                e.line.unwrap_or(0),
                e.field.as_deref().unwrap_or(""),
                e.reason.as_str(),
            )
        })
        .collect();
    let want: &[(usize, &str, &str)] = &[
        (
            8,
            r#"triggers[0].where."data.lang""#,
            "unknown operator `prefx`; expected one of: any_of, prefix",
        ),
        (
            9,
            "triggers[0].where.name",
            "a number compared with a string: `name` holds a string",
        ),
        (
            10,
            "triggers[0].where.score",
            "a string compared with a number: `score` holds a number",
        ),
        (
            11,
            r#"triggers[0].where."score.value""#,
            "is outside the event: `score` holds a number",
        ),
        (
            12,
            "triggers[0].where.colour",
            "`colour` is not a field of the event",
        ),
        (
            13,
            r#"triggers[0].where."data.j""#,
            "`exists`: must be true or false",
        ),
        (14, r#"triggers[0].where."data..x""#, "has an empty step"),
        (
            15,
            r#"triggers[0].where."data.tier""#,
            "is a list: to match any of several values write `{ any_of = [...] }`",
        ),
        (16, r#"triggers[0].where."data.a""#, "has no operator"),
        (
            17,
            r#"triggers[0].where."data.b""#,
            "`gt` and `prefix` cannot share one condition",
        ),
        (
            18,
            r#"triggers[0].where."data.c""#,
            "give `gt` or `gte`, not both",
        ),
        (19, r#"triggers[0].where."data.d""#, "the range is empty"),
        (
            20,
            r#"triggers[0].where."data.e""#,
            "must be a finite number",
        ),
        (
            21,
            "triggers[0].where.event_type",
            "`handoff` is not an event type",
        ),
        (
            22,
            "triggers[0].where.id",
            "`exists = false` never holds: every event has `id`",
        ),
        (
            23,
            r#"triggers[0].where."data.f""#,
            "an empty prefix matches every string",
        ),
        (
            24,
            r#"triggers[0].where."data.g""#,
            "`any_of`: must list at least one value",
        ),
        (
            25,
            r#"triggers[0].where."data.h""#,
            "`any_of`: must be a string, a number or true/false",
        ),
        (
            26,
            "triggers[0].where.user_id",
            "`any_of`: a number compared with a string",
        ),
        (
            27,
            r#"triggers[0].where."data.i""#,
            "must be a string, a number or true/false",
        ),
        (
            28,
            "triggers[0].where.data",
            "quote the whole path: \"data.channel\" = ...",
        ),
    ];
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for ((line, field, reason), (wl, wf, wr)) in got.iter().zip(want) {
        assert_eq!((line, field), (wl, wf), "{reason}");
        assert!(reason.contains(wr), "line {line}: `{reason}` lacks `{wr}`");
    }
    let e = errors(&with_route(
        "name = 'abc'\ntriggers = [{ event_type = 'intent', where = { data = { exists = true } } }]",
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("`data` is an object: name a field inside it"),
        "{e:?}"
    );
    let e = errors(&with_route(
        "name = 'abc'\ntriggers = [{ event_type = 'intent', where = 5 }]",
    ));
    assert!(
        e[0].contains("field `triggers[0].where`: must be a table"),
        "{e:?}"
    );
}

#[test]
fn routes_naming_the_same_path_share_one_lookup_and_keep_their_own_tests() {
    let text = "\
[[route]]
name = 'gold'
target_url = 'https://example.com/'
template = '{}'
triggers = [{ event_type = 'intent', where = { \"data.tier\" = 'gold', \"data.n\" = { gt = 1 } } }]

[[route]]
name = 'not-gold'
target_url = 'https://example.com/'
template = '{}'
triggers = [{ event_type = 'intent', where = { \"data.tier\" = { anything_but = 'gold' } } }]

[[route]]
name = 'no-tier'
target_url = 'https://example.com/'
template = '{}'
triggers = [{ event_type = 'intent', where = { \"data.tier\" = { exists = false }, \"data.n\" = { lt = 5 } } }]

[[route]]
name = 'gold-too'
target_url = 'https://example.com/'
template = '{}'
triggers = [{ event_type = 'intent', where = { \"data.tier\" = 'gold', \"data.n\" = { gt = 1.0 } } }]
";
    let r = parse(text).unwrap();
    let slots: Vec<Vec<usize>> = r
        .routes()
        .iter()
        .map(|route| {
            route.triggers[0]
                .conditions
                .iter()
                .map(|c| c.slot)
                .collect()
        })
        .collect();
    assert_eq!(
        slots,
        [vec![0, 1], vec![1], vec![0, 1], vec![0, 1]],
        "data.n and data.tier, once each"
    );
    let ids: Vec<Vec<usize>> = r
        .routes()
        .iter()
        .map(|route| route.triggers[0].conditions.iter().map(|c| c.id).collect())
        .collect();
    assert_eq!(
        ids,
        [vec![0, 1], vec![2], vec![3, 4], vec![0, 1]],
        "the same path and test share an outcome, and only they"
    );
    for (data, want) in [
        (json!({"tier": "gold", "n": 3}), vec!["gold", "gold-too"]),
        (json!({"tier": "silver", "n": 3}), vec!["not-gold"]),
        (json!({"n": 3}), vec!["no-tier"]),
        (
            json!({"tier": ["gold"], "n": [0, 7]}),
            vec!["gold", "gold-too"],
        ),
        (json!({"tier": ["silver", "gold"], "n": 0}), vec![]),
    ] {
        let e = ev(json!({ "data": data }));
        let got: Vec<&str> = r.matching(&e).map(|r| r.name.as_str()).collect();
        assert_eq!(got, want, "{data}");
        let each: Vec<&str> = r
            .routes()
            .iter()
            .filter(|r| r.fires(&e))
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(each, want, "{data}");
    }
}
