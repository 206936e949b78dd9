//! `serve`'s embedded queue on disk: its files follow the queue's depth, not its history,
//! and dead letters expire after the retention `serve` was given.

use crate::common::*;
use router_tests::targets::{Gate, Targets};
use std::time::Duration;

const ROUTES: usize = 20;
/// 100 triggers to 20 routes, each job carrying an 8 KiB event: a backlog of 16 MiB in
/// 2,000 deliveries. (serve delivers at the lowest CPU priority, so beside busy processes
/// deliveries go slowly: the test keeps the bytes on disk, not the count, high.)
const TRIGGERS: usize = 100;
const PAD: usize = 8 * 1024;

fn data_bytes(ws: &Workspace) -> u64 {
    std::fs::read_dir(ws.path("data"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("queue.db"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_drains_a_16_mib_backlog_and_gives_the_disk_back() {
    let targets = Targets::start().await;
    let names: Vec<String> = (0..ROUTES).map(|i| format!("r{i:02}")).collect();
    let routes: Vec<(&str, &str)> = names
        .iter()
        .map(|n| {
            (
                n.as_str(),
                "triggers = [{ event_type = \"custom\", name = \"fan-out\" }]",
            )
        })
        .collect();
    let ws = Workspace::new(&routes_for(&targets, &routes));
    // The targets hold their answers until every trigger is in, so the whole backlog is on
    // disk at once however fast the deliveries would have drained it.
    let gate = Gate::new();
    targets.hold("*", &gate);
    let serve = std::sync::Arc::new(ws.serve(&[]));
    let pad = "x".repeat(PAD);
    let mut posting = Vec::new();
    for worker in 0..8 {
        let (serve, pad) = (serve.clone(), pad.clone());
        posting.push(tokio::spawn(async move {
            for i in (worker..TRIGGERS).step_by(8) {
                let body = format!(
                    r#"{{"id": "disk-{i}", "event_type": "custom", "name": "fan-out", "data": {{"pad": "{pad}"}}}}"#
                );
                let (status, answer) = serve.trigger(&body).await;
                assert_eq!(status, 202, "{answer}");
            }
        }));
    }
    for p in posting {
        p.await.unwrap();
    }
    let peak = data_bytes(&ws);
    gate.open();
    // Every delivery arrives (a held one that timed out is delivered again: counted once).
    // Progress is polled by count (copying every request each poll would slow the run it
    // watches).
    let patience = PATIENCE * 5;
    assert!(
        wait_until_within(patience, || targets.count() >= ROUTES * TRIGGERS).await,
        "{} of {} requests\n{}",
        targets.count(),
        ROUTES * TRIGGERS,
        serve.log()
    );
    let distinct = || distinct_deliveries(&targets.received());
    assert!(
        wait_until_within(patience, || distinct() == ROUTES * TRIGGERS).await,
        "{} of {} delivered\n{}",
        distinct(),
        ROUTES * TRIGGERS,
        serve.log()
    );
    assert!(
        peak > 10 << 20,
        "the queue held its backlog on disk: peak {peak} bytes"
    );
    // While serve runs: the drained queue's pages are given back and the idle WAL emptied.
    // The queue drains (a retry of a held request that timed out included).
    let deadline = std::time::Instant::now() + patience;
    let mut h = serve.health().await;
    while (h["queue"]["visible"] != 0 || h["queue"]["in_flight"] != 0)
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
        h = serve.health().await;
    }
    assert_eq!(h["queue"]["visible"], 0, "{h}");
    assert_eq!(h["queue"]["in_flight"], 0, "{h}");
    assert_eq!(h["queue"]["dead_letter"], 0, "{h}");
    let small = wait_until(|| data_bytes(&ws) < 3 << 20).await;
    assert!(
        small,
        "data dir still {} bytes after the drain (peak {peak})",
        data_bytes(&ws)
    );
}

#[tokio::test]
async fn dead_letters_expire_after_the_retention_serve_was_given() {
    let (_targets, ws) = refusing_workspace().await;
    let serve = ws.serve(&["--dead-letter-retention", "30s"]);
    let (status, answer) = serve
        .trigger(r#"{"id": "expiring", "event_type": "custom", "name": "x"}"#)
        .await;
    assert_eq!(status, 202, "{answer}");
    let dead = wait_until(|| dlq_rows(&ws).len() == 1).await;
    assert!(dead, "the 400 dead-lettered the delivery\n{}", serve.log());
    // Seen well within the retention (a retention a loaded machine meets: 30 s), then gone.
    assert_eq!(serve.health().await["queue"]["dead_letter"], 1);
    let expired = wait_until(|| dlq_rows(&ws).is_empty()).await;
    assert!(
        expired,
        "the dead letter expired after 30 s\n{}",
        serve.log()
    );
    assert_eq!(serve.health().await["queue"]["dead_letter"], 0);
}

#[test]
fn a_retention_of_zero_is_refused() {
    let ws = Workspace::new("");
    let out = ws.run(&["serve", "--port", "0", "--dead-letter-retention", "0s"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("retention of 0"), "{stderr}");
}

/// `serve` returns freed memory to the system after bursts even when idle: jemalloc's
/// background thread purges it (main.rs). And its deliveries yield to the trigger API: their
/// thread runs at nice 19.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn serve_runs_jemallocs_purger_and_deliveries_at_the_lowest_priority() {
    let ws = Workspace::new("");
    let serve = ws.serve(&[]);
    // Thread name and nice value (the 19th field of `stat`, after the parenthesised name).
    let threads = || -> Vec<(String, i64)> {
        std::fs::read_dir(format!("/proc/{}/task", serve.child.id()))
            .unwrap()
            .filter_map(Result::ok)
            .filter_map(|t| {
                let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
                let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
                let after_name = stat.rsplit_once(')')?.1;
                let nice = after_name.split_whitespace().nth(16)?.parse().ok()?;
                Some((comm.trim().to_owned(), nice))
            })
            .collect()
    };
    let expected = |threads: &[(String, i64)]| {
        threads.iter().any(|(t, _)| t == "jemalloc_bg_thd")
            && threads.contains(&("deliveries".to_owned(), 19))
            && threads.contains(&("tokio-rt-worker".to_owned(), 0))
    };
    // A thread takes its name once it first runs: on a busy machine (the other tests of
    // this file run beside it) some still bear the process's name for a while.
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut seen = threads();
    while !expected(&seen) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        seen = threads();
    }
    assert!(expected(&seen), "{seen:?}");
}
