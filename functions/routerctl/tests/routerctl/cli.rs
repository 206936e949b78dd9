//! routerctl's commands other than `serve`: exit codes, help, routes check, render, token
//! refresh, and the routes files the repository ships.

use crate::common::*;
use router_tests::token_server::{Scripted, TokenServer};
use std::process::Command;

fn routerctl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_routerctl"))
        .args(args)
        .output()
        .unwrap()
}

fn repo(path: &str) -> String {
    format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["routes", "--help"],
        vec!["routes", "check", "--help"],
        vec!["render", "--help"],
        vec!["dlq", "--help"],
        vec!["dlq", "list", "--help"],
        vec!["dlq", "redrive", "--help"],
        vec!["token", "--help"],
        vec!["token", "refresh", "--help"],
    ] {
        let out = routerctl(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage:"),
            "{args:?}"
        );
    }
}

#[test]
fn bad_usage_exits_2() {
    for args in [
        vec!["frobnicate"],
        vec!["render"],
        vec!["dlq", "redrive", "--limit", "x"],
        vec![],
    ] {
        assert_eq!(routerctl(&args).status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn the_shipped_routes_files_pass_the_check() {
    for file in [
        "examples/routes.toml",
        "examples/cognigy.routes.toml",
        "infra/config/routes.toml",
    ] {
        let out = routerctl(&["routes", "check", &repo(file)]);
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn routes_check_lists_every_error_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.toml");
    std::fs::write(
        &path,
        "[[route]]\nname = 'ab'\ntarget_url = 'ftp://x'\ntimeout_seconds = 99\ntemplate = '{}'\ntriggers = [{ event_type = 'intent' }]\n",
    )
    .unwrap();
    let out = routerctl(&["routes", "check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("3 errors"), "{stdout}");
    for field in ["`name`", "`target_url`", "`timeout_seconds`"] {
        assert!(stdout.contains(field), "{field}: {stdout}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("routerctl: ") && stderr.lines().count() <= 2,
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_check_probe_checks_targets_tokens_and_templates() {
    let targets = router_tests::targets::Targets::start().await;
    let tokens = TokenServer::start(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.toml");
    let routes = format!(
        "[auth.o]\ntype = 'oauth2'\ntoken_url = '{}'\ncredentials_secret = 'c'\ntoken_secret = 't'\n\
         [[route]]\nname = 'reachable'\ntarget_url = '{}'\ntemplate = '{{\"t\": {{{{ event.data.text | tojson }}}}}}'\ntriggers = [{{ event_type = 'intent' }}]\n\
         [[route]]\nname = 'bad-template'\ntarget_url = '{}'\ntemplate = '{{\"t\": {{{{ event.data.nothing.here | tojson }}}}}}'\ntriggers = [{{ event_type = 'intent' }}]\n\
         [[route]]\nname = 'unreachable'\ntarget_url = 'http://127.0.0.1:9/'\ntemplate = '{{}}'\ntriggers = [{{ event_type = 'intent' }}]\n",
        tokens.url,
        targets.url("reachable"),
        targets.url("bad")
    );
    std::fs::write(&path, routes).unwrap();
    let out = routerctl(&["routes", "check", path.to_str().unwrap(), "--probe"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("route reachable: template renders"),
        "{stdout}"
    );
    assert!(
        stdout.contains("route reachable: target") && stdout.contains("answered HTTP 200"),
        "{stdout}"
    );
    assert!(
        stdout.contains("route bad-template: template does not render"),
        "{stdout}"
    );
    assert!(
        stdout.contains("route unreachable: target http://127.0.0.1:9/ is not reachable"),
        "{stdout}"
    );
    assert!(
        stdout.contains("auth o: token URL") && stdout.contains("answered HTTP"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 problems"));
}

#[test]
fn render_prints_headers_without_secrets_and_the_exact_body() {
    let routes = repo("examples/cognigy.routes.toml");
    let out = routerctl(&[
        "--routes",
        &routes,
        "render",
        "crm-handoff",
        "--event",
        &repo("examples/events/handover.json"),
        "--external",
        &repo("examples/events/crm-user.json"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let (head, body) = text.split_once("\n\n").unwrap();
    assert!(head.starts_with("POST https://crm.example.com/api/handoffs"));
    assert!(
        head.contains("webhook-id: dlv_") && head.contains("authorization: Bearer ***"),
        "{head}"
    );
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["customer"]["tier"], "gold");
    assert_eq!(body["last_message"], "agent please");

    let out = routerctl(&[
        "--routes",
        &routes,
        "render",
        "crm-handoff",
        "--event",
        &repo("examples/events/handover.json"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an enrich route needs --external"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--external"));
    let out = routerctl(&[
        "--routes",
        &routes,
        "render",
        "nope",
        "--event",
        &repo("examples/events/handover.json"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Routes: cognigy-inject-agent-reply"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_refresh_writes_the_token_into_the_secrets_file() {
    let server = TokenServer::start(vec![]).await;
    let bad =
        TokenServer::start(vec![Scripted::status(401, r#"{"error":"invalid_client"}"#)]).await;
    let ws = Workspace::new(&format!(
        "[auth.good]\ntype = 'oauth2'\ntoken_url = '{}'\ncredentials_secret = 'creds'\ntoken_secret = 'good/token'\n\
         [auth.bad]\ntype = 'oauth2'\ntoken_url = '{}'\ncredentials_secret = 'creds'\ntoken_secret = 'bad/token'\n",
        server.url, bad.url
    ));
    let secrets = ws.path("secrets.toml");
    let mut text = std::fs::read_to_string(&secrets).unwrap();
    text.push_str("creds = '{\"client_id\":\"id\",\"client_secret\":\"shh-secret\"}'\n");
    std::fs::write(&secrets, text).unwrap();

    let out = ws.run(&["token", "refresh", "good"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("good: refreshed"));
    let stored: toml::Table = std::fs::read_to_string(&secrets).unwrap().parse().unwrap();
    let token: serde_json::Value =
        serde_json::from_str(stored["good/token"].as_str().unwrap()).unwrap();
    assert_eq!(token["access_token"], "tok-1");

    let again = ws.run(&["token", "refresh", "good"]);
    assert!(again.status.success());
    assert_eq!(
        server.issued(),
        2,
        "a manual refresh renews even a fresh token"
    );

    let out = ws.run(&["token", "refresh"]);
    assert_eq!(out.status.code(), Some(1), "one profile failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("bad: FAILED") && stdout.contains("invalid_client"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("shh-secret")
            && !String::from_utf8_lossy(&out.stderr).contains("shh-secret")
    );

    assert_eq!(
        ws.run(&["token", "refresh", "ghost"]).status.code(),
        Some(2)
    );
}

#[test]
fn dlq_list_on_an_empty_queue_says_so() {
    let ws = Workspace::new("");
    let out = ws.run(&["dlq", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 dead letters"));
    let out = ws.run(&["dlq", "redrive", "--failure", "nonsense"]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_commands_report_progress_and_respect_the_limit() {
    let ws = Workspace::new(&sink_routes("{}"));
    seed_dead_letters(&ws, 120, |_| None).await;
    let list = ws.run(&["dlq", "list"]);
    assert!(list.status.success());
    assert!(String::from_utf8_lossy(&list.stderr).contains("... 100 dead letters read"));
    assert!(String::from_utf8_lossy(&list.stdout).contains("120 dead letters"));

    let redrive = ws.run(&[
        "dlq",
        "redrive",
        "--failure",
        "http_status",
        "--limit",
        "110",
    ]);
    assert!(
        redrive.status.success(),
        "{}",
        String::from_utf8_lossy(&redrive.stderr)
    );
    assert!(String::from_utf8_lossy(&redrive.stderr).contains("... 100 redriven"));
    let summary = String::from_utf8_lossy(&redrive.stdout);
    assert!(
        summary.contains("Redrove 110 dead letters to the delivery queue; 10 left"),
        "{summary}"
    );
    assert_eq!(dlq_rows(&ws).len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refreshes_tokens_on_its_schedule() {
    let server = TokenServer::start(vec![]).await;
    let ws = Workspace::new(&format!(
        "[auth.cognigy]\ntype = 'oauth2'\ntoken_url = '{}'\ncredentials_secret = 'creds'\ntoken_secret = 'cognigy/token'\n",
        server.url
    ));
    let secrets = ws.path("secrets.toml");
    let mut text = std::fs::read_to_string(&secrets).unwrap();
    text.push_str("creds = '{\"client_id\":\"id\",\"client_secret\":\"s\"}'\n");
    std::fs::write(&secrets, text).unwrap();
    let serve = ws.serve(&["--token-interval", "1"]);
    let stored = wait_until(|| std::fs::read_to_string(&secrets).unwrap().contains("tok-1")).await;
    assert!(stored, "serve stored a token at start-up\n{}", serve.log());
    let health: serde_json::Value = reqwest::get(format!("{}/api/v2/health", serve.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        health["tokens"]["cognigy"]["expires_in_s"]
            .as_i64()
            .unwrap()
            > 3000,
        "{health}"
    );
}
