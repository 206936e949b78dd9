//! Enrich lookups and token URLs: what event data can and cannot steer.

use super::*;

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
            "line 3: route `abc`: field `enrich.colour`: unknown field; expected one of: url, auth, timeout_seconds",
            "line 3: route `abc`: field `enrich.auth`: unknown auth profile `nope`; the file defines no [auth.*] profiles",
            "line 3: route `abc`: field `enrich.timeout_seconds`: must be between 1 and 30, got 0",
            "line 3: route `abc`: field `enrich.url`: is required",
        ],
        "{e:?}"
    );
}
