//! What a hostile event, environment or configuration can do, tried against a running
//! `serve` (and the CLI) the way an attacker or a careless operator would.

use crate::common::*;
use router_tests::targets::Targets;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A route enriching from `crm` with the route's bearer token, delivering to `sink`.
fn enrich_routes(targets: &Targets, url_template: &str) -> String {
    let mut s = routes_for(
        targets,
        &[(
            "sink",
            &format!(
                "auth = \"crm\"\nenrich = {{ url = \"{url_template}\", auth = \"crm\", timeout_seconds = 2 }}\n\
                 retry = {{ schedule = [\"1s\"], max_age = \"1h\" }}\n\
                 triggers = [{{ event_type = \"intent\" }}]"
            ),
        )],
    )
    .replace(
        "{\"attempt\": {{ delivery.attempt }}, \"event\": {{ event.id | tojson }}}",
        "{\"tier\": {{ external.tier | tojson }}}",
    );
    s.push_str(
        "[auth.crm]\ntype = \"header\"\nheader = \"Authorization\"\nprefix = \"Bearer \"\nsecret = \"crm/token\"\n",
    );
    s
}

fn add_secret(ws: &Workspace, line: &str) {
    let path = ws.path("secrets.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(line);
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

fn event(id: &str, user_id: &str) -> String {
    serde_json::json!({"id": id, "event_type": "intent", "user_id": user_id}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_data_never_steers_the_credentialed_enrich_lookup() {
    let targets = Targets::start().await;
    let template = format!(
        "{}/crm/users/{{{{ event.user_id | urlencode }}}}",
        targets.base
    );
    let ws = Workspace::new(&enrich_routes(&targets, &template));
    add_secret(&ws, "\"crm/token\" = \"crm-bearer-token\"");
    targets.answer_body("*", r#"{"tier": "gold"}"#);
    let serve = ws.serve(&[]);

    let hostile = [
        "../../internal/admin/export-all",
        "%2f..%2fadmin",
        "x?admin=1#frag",
        "..\\..\\admin",
        "me@other.example",
        "http://other.example/",
        "üser",
    ];
    for (i, user) in hostile.iter().enumerate() {
        let (status, _) = serve.trigger(&event(&format!("evt_h{i}"), user)).await;
        assert_eq!(status, 202);
    }
    // A whole `..` segment cannot be encoded away: it is a render failure, never sent.
    let (status, _) = serve.trigger(&event("evt_dots", "..")).await;
    assert_eq!(status, 202);

    assert!(
        targets
            .wait_for(|r| { r.iter().filter(|d| d.method == "GET").count() >= hostile.len() })
            .await,
        "{}",
        serve.log()
    );
    let lookups: Vec<_> = targets
        .received()
        .into_iter()
        .filter(|d| d.method == "GET")
        .collect();
    assert_eq!(lookups.len(), hostile.len(), "{lookups:#?}");
    for d in &lookups {
        // One path segment under /crm/users/, whatever the user typed.
        let rest = d.raw_path.strip_prefix("/crm/users/").unwrap_or_else(|| {
            panic!("the lookup left its prefix: {}", d.raw_path);
        });
        assert!(
            !rest.contains('/') && !rest.contains('?') && !rest.contains('#'),
            "{}",
            d.raw_path
        );
        assert_eq!(d.headers["authorization"], "Bearer crm-bearer-token");
    }
    assert!(
        lookups
            .iter()
            .any(|d| d.raw_path == "/crm/users/..%2F..%2Finternal%2Fadmin%2Fexport-all")
    );

    assert!(
        wait_until(|| dlq_rows(&ws).len() == 1).await,
        "{}",
        serve.log()
    );
    let rows = dlq_rows(&ws);
    assert_eq!(rows[0]["failure"], "render", "{rows:?}");
}

/// A base URL for routes files whose targets are never contacted.
const UNUSED_BASE: &str = "http://127.0.0.1:9";

#[test]
fn an_enrich_url_whose_host_is_not_fixed_is_refused_at_load() {
    for template in [
        format!("{UNUSED_BASE}{{{{ event.user_id }}}}"),
        "https://{{ event.user_id }}.crm.example.com/x".to_owned(),
        "{{ event.data.base }}/users".to_owned(),
    ] {
        let ws = Workspace::new(&enrich_routes_text(UNUSED_BASE, &template));
        let out = ws.run(&["routes", "check"]);
        assert_eq!(out.status.code(), Some(1), "{template}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("enrich.url"),
            "{template}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

fn enrich_routes_text(base: &str, url_template: &str) -> String {
    format!(
        "[[route]]\nname = \"sink\"\ntarget_url = \"{base}/sink\"\ntemplate = '{{}}'\n\
         enrich = {{ url = \"{url_template}\" }}\ntriggers = [{{ event_type = \"intent\" }}]\n"
    )
}

/// A TCP listener that counts the connections it gets (a proxy that must see nothing).
async fn counting_listener() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((_sock, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    (format!("http://{addr}"), count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_variables_never_route_a_delivery_around_the_guard() {
    let targets = Targets::start().await;
    let (proxy, proxied) = counting_listener().await;
    // A target on localhost, and no allow_private_targets: the guard must refuse it.
    let routes = routes_for(
        &targets,
        &[("sink", "triggers = [{ event_type = \"intent\" }]")],
    )
    .replace("[delivery]\nallow_private_targets = true\n", "")
    .replace("http://127.0.0.1:", "http://localhost:");
    let mut ws = Workspace::new(&routes);
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        ws.env.push((var.into(), proxy.clone()));
    }
    ws.env.push(("NO_PROXY".into(), String::new()));
    ws.env.push(("no_proxy".into(), String::new()));
    let serve = ws.serve(&[]);
    let (status, _) = serve
        .trigger(r#"{"id":"evt_proxy","event_type":"intent"}"#)
        .await;
    assert_eq!(status, 202);
    assert!(
        wait_until(|| dlq_rows(&ws).len() == 1).await,
        "{}",
        serve.log()
    );
    assert_eq!(dlq_rows(&ws)[0]["failure"], "blocked_target");
    assert_eq!(proxied.load(Ordering::SeqCst), 0, "the proxy saw a request");
    assert!(targets.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_private_targets_allowed_a_delivery_goes_direct_not_through_the_proxy() {
    let targets = Targets::start().await;
    let (proxy, proxied) = counting_listener().await;
    let mut ws = Workspace::new(&routes_for(
        &targets,
        &[("sink", "triggers = [{ event_type = \"intent\" }]")],
    ));
    ws.env.push(("HTTP_PROXY".into(), proxy.clone()));
    ws.env.push(("ALL_PROXY".into(), proxy));
    let serve = ws.serve(&[]);
    let (status, _) = serve.trigger(r#"{"event_type":"intent"}"#).await;
    assert_eq!(status, 202);
    assert!(targets.wait_for(|r| r.len() == 1).await);
    assert_eq!(proxied.load(Ordering::SeqCst), 0);
}

#[test]
fn a_blank_ingest_key_stops_serve_at_start() {
    let ws = Workspace::new(
        "[ingest]\nauth = \"flows\"\n[auth.flows]\ntype = \"api_key\"\nsecret = \"router/ingest-key\"\n",
    );
    std::fs::write(ws.path("secrets.toml"), "\"router/ingest-key\" = \"   \"\n").unwrap();
    let out = ws.run(&["serve", "--port", "0"]);
    assert_eq!(out.status.code(), Some(2));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("blank"), "{text}");
}

#[test]
fn render_and_probe_never_print_a_credential_that_sits_in_a_url() {
    let ws = Workspace::new(
        "[[route]]\nname = \"crm\"\ntarget_url = \"http://admin:pa55word@127.0.0.1:9/hooks\"\n\
         template = '{\"u\": {{ event.user_id | tojson }}}'\n\
         enrich = { url = \"http://lookup:s3cr3t@127.0.0.1:9/users/{{ event.user_id }}\" }\n\
         triggers = [{ event_type = \"intent\" }]\n\
         [auth.c]\ntype = \"oauth2\"\ntoken_url = \"http://client:t0ken@127.0.0.1:9/token\"\n\
         credentials_secret = \"c/creds\"\ntoken_secret = \"c/token\"\n",
    );
    std::fs::write(
        ws.path("event.json"),
        r#"{"event_type":"intent","user_id":"usr_1"}"#,
    )
    .unwrap();
    std::fs::write(ws.path("external.json"), "{}").unwrap();
    let event = ws.path("event.json");
    let external = ws.path("external.json");
    let render = ws.run(&[
        "render",
        "crm",
        "--event",
        event.to_str().unwrap(),
        "--external",
        external.to_str().unwrap(),
    ]);
    let probe = ws.run(&["routes", "check", "--probe"]);
    for out in [render, probe] {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("***@127.0.0.1"), "{text}");
        for secret in [
            "pa55word", "s3cr3t", "t0ken", "admin:", "//lookup", "//client",
        ] {
            assert!(!text.contains(secret), "`{secret}` printed:\n{text}");
        }
    }
}
