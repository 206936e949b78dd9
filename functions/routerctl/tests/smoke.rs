//! `scripts/smoke.sh` against `routerctl serve`, as the README and docs/operations.md
//! run it: the smoke route delivers through the whole path to the router's own sink and
//! the script sees it arrive; with the signing key missing it says what went wrong.

mod common;

use common::*;
use router_tests::targets::Targets;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const SMOKE_ROUTE: &str = "[[route]]\nname = \"router-smoke\"\ntarget_url = \"/api/v2/webhooks/smoke\"\n\
    timeout_seconds = 5\nretry = { schedule = [\"1s\", \"1s\"], max_age = \"10m\" }\n\
    template = '{\"event_id\": {{ event.id | tojson }}, \"delivery_id\": {{ delivery.id | tojson }}}'\n\
    triggers = [{ event_type = \"custom\", name = \"router-smoke\" }]\n";

/// A routes file with the smoke route and private targets refused, as in production: the
/// smoke delivery reaches serve's own loopback address only because it is the router's.
fn smoke_routes(targets: &Targets) -> String {
    let routes = routes_for(targets, &[]).replace(
        "allow_private_targets = true",
        "allow_private_targets = false",
    );
    assert!(routes.contains("allow_private_targets = false"));
    routes + SMOKE_ROUTE
}

/// Runs the script against `serve`, its output copied to a log file as it comes.
fn run_smoke(ws: &Workspace, serve: &Serve, wait_s: &str) -> std::process::Output {
    let log = ws.path("serve.log");
    let stop = Arc::new(AtomicBool::new(false));
    let copier = {
        let (stop, output, log) = (stop.clone(), serve.output.clone(), log.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::fs::write(&log, output.lock().unwrap().as_bytes()).unwrap();
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/smoke.sh");
    let out = Command::new("bash")
        .arg(script)
        .args([
            "--url",
            &serve.base,
            "--key",
            KEY,
            "--wait",
            wait_s,
            "--log",
        ])
        .arg(&log)
        .output()
        .expect("run scripts/smoke.sh");
    stop.store(true, Ordering::Relaxed);
    copier.join().unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smoke_check_sees_its_delivery_arrive() {
    let targets = Targets::start().await;
    let ws = Workspace::new(&smoke_routes(&targets));
    let serve = ws.serve(&[]);
    let out = tokio::task::block_in_place(|| run_smoke(&ws, &serve, "20"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        serve.log()
    );
    assert!(stdout.contains("smoke: delivered."), "{stdout}");
    assert!(
        stdout.contains(&format!("{}/api/v2/webhooks/smoke", serve.base)),
        "{stdout}"
    );
    // The delivery went out signed and was taken by the sink, not just queued.
    assert!(serve.log().contains("smoke delivery received"));
    assert!(serve.log().contains("route=router-smoke"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_signing_key_the_smoke_check_fails_and_shows_why() {
    let targets = Targets::start().await;
    let ws = Workspace::new(&smoke_routes(&targets));
    std::fs::write(
        ws.path("secrets.toml"),
        format!("\"router/ingest-key\" = \"{KEY}\"\n"),
    )
    .unwrap();
    let serve = ws.serve(&[]);
    let out = tokio::task::block_in_place(|| run_smoke(&ws, &serve, "4"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no arrival within 4s"), "{stderr}");
    // The delivery's own log lines name the cause.
    assert!(stderr.contains("signing"), "{stderr}");
}

#[test]
fn without_a_smoke_route_or_the_key_the_trigger_says_so() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let targets = rt.block_on(Targets::start());
    let ws = Workspace::new(&routes_for(&targets, &[]));
    let serve = ws.serve(&[]);
    let out = run_smoke(&ws, &serve, "2");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no route fired"), "{stderr}");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/smoke.sh");
    let out = Command::new("bash")
        .arg(script)
        .args(["--url", &serve.base, "--key", "wrong", "--log", "/dev/null"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the trigger answered 401"), "{stderr}");
}
