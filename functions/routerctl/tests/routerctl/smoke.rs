//! `scripts/smoke.sh` against `routerctl serve`, as the README and docs/operations.md
//! run it: the smoke route delivers through the whole path to the router's own sink and
//! the script sees it arrive; with the signing key missing it says what went wrong as soon
//! as the delivery is given up; when nothing can arrive it says so after its `--wait`.
//! Each test waits for an outcome, not for a clock: the `--wait` given is one a loaded
//! machine meets, or one that no outcome can beat.

use crate::common::*;
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
    let out = tokio::task::block_in_place(|| run_smoke(&ws, &serve, "120"));
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
    // The delivery went out signed and was taken by the sink, not just queued. The script
    // returns on the sink's line; deliver logs its own once the sink's answer is in.
    assert!(serve.log().contains("smoke delivery received"));
    assert!(
        wait_until(|| serve.log().contains("route=router-smoke")).await,
        "{}",
        serve.log()
    );
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
    // The route retries twice, 1 s apart, then gives up: the script stops there, long
    // before its deadline, with the delivery's log lines.
    let out = tokio::task::block_in_place(|| run_smoke(&ws, &serve, "120"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the delivery was given up (dead-lettered)"),
        "{stderr}"
    );
    // The delivery's own log lines name the cause.
    assert!(stderr.contains("signing_key"), "{stderr}");
    assert!(!stderr.contains("no arrival within"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_nothing_arrives_the_smoke_check_says_so_after_its_wait() {
    // The smoke route delivers to a target that never answers and retries only in an hour:
    // nothing can arrive and nothing is given up while the script waits.
    let targets = Targets::start().await;
    targets.delay("hang", Duration::from_secs(3600));
    let route = SMOKE_ROUTE
        .replace("/api/v2/webhooks/smoke", &targets.url("hang"))
        .replace("[\"1s\", \"1s\"]", "[\"1h\"]")
        .replace("max_age = \"10m\"", "max_age = \"2h\"");
    assert!(route.contains("[\"1h\"]"), "{route}");
    let ws = Workspace::new(&(routes_for(&targets, &[]) + &route));
    let serve = ws.serve(&[]);
    let out = tokio::task::block_in_place(|| run_smoke(&ws, &serve, "3"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no arrival within 3s"), "{stderr}");
    assert!(!stderr.contains("given up"), "{stderr}");
}

#[test]
fn without_a_smoke_route_or_the_key_the_trigger_says_so() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let targets = rt.block_on(Targets::start());
    let ws = Workspace::new(&routes_for(&targets, &[]));
    let serve = ws.serve(&[]);
    // The trigger's 200 ends the script at once, whatever its wait.
    let out = run_smoke(&ws, &serve, "120");
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
