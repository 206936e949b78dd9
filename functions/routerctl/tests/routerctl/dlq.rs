//! `routerctl dlq show | discard`, and the DLQ commands without a routes file.

use crate::common::*;

/// Two dead letters (route `refuses` answers 400) in a workspace whose serve has stopped.
async fn two_dead_letters() -> (Workspace, Vec<String>) {
    let (_targets, ws) = refusing_workspace().await;
    let mut serve = ws.serve(&[]);
    for id in ["evt-dead-1", "evt-dead-2"] {
        let (status, answer) = serve
            .trigger(&format!(
                r#"{{"id": "{id}", "event_type": "custom", "name": "x", "data": {{"text": "hi"}}}}"#
            ))
            .await;
        assert_eq!(status, 202, "{answer}");
    }
    let dead = wait_until(|| dlq_rows(&ws).len() == 2).await;
    assert!(dead, "both deliveries dead-lettered\n{}", serve.log());
    serve.terminate();
    let ids = dlq_rows(&ws)
        .iter()
        .map(|r| r["delivery_id"].as_str().unwrap().to_owned())
        .collect();
    (ws, ids)
}

fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn show_prints_the_event_the_reason_and_the_payload_as_it_renders_now() {
    let (ws, ids) = two_dead_letters().await;
    let out = ws.run(&["dlq", "show", &ids[0]]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("delivery id  {}", ids[0])),
        "{stdout}"
    );
    assert!(stdout.contains("route        refuses"), "{stdout}");
    assert!(stdout.contains("failure      http_status"), "{stdout}");
    assert!(stdout.contains("last status  400"), "{stdout}");
    assert!(stdout.contains("\"text\": \"hi\""), "the event: {stdout}");
    // routes_for's template: {"attempt": N, "event": "<event id>"}
    let event_id = if stdout.contains("evt-dead-1") {
        "evt-dead-1"
    } else {
        "evt-dead-2"
    };
    assert!(
        stdout.contains(&format!("{{\"attempt\": 1, \"event\": \"{event_id}\"}}")),
        "the payload as it renders now: {stdout}"
    );
    // Showing holds nothing back: both are still listed.
    assert_eq!(dlq_rows(&ws).len(), 2);

    let out = ws.run(&["dlq", "show", "no-such-delivery"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("No dead letter with delivery id `no-such-delivery`"),
        "{stderr}"
    );
}

#[tokio::test]
async fn discard_asks_first_and_deletes_only_what_it_was_given() {
    let (ws, ids) = two_dead_letters().await;
    // Nothing named: refused, nothing deleted.
    let out = ws.run(&["dlq", "discard"]);
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    assert!(text(&out).1.contains("--all"), "{:?}", text(&out));
    // Any answer but yes keeps them.
    let out = ws.run_with_stdin(&["dlq", "discard", &ids[0]], "no\n");
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(
        text(&out).0.contains("Nothing discarded."),
        "{:?}",
        text(&out)
    );
    assert!(text(&out).1.contains("Type `yes`"), "{:?}", text(&out));
    assert_eq!(dlq_rows(&ws).len(), 2);
    // yes deletes exactly that one.
    let out = ws.run_with_stdin(&["dlq", "discard", &ids[0]], "yes\n");
    assert!(
        text(&out).0.contains("Discarded 1 dead letter."),
        "{:?}",
        text(&out)
    );
    let left = dlq_rows(&ws);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["delivery_id"], ids[1].as_str());
    // A filter that matches nothing deletes nothing.
    let out = ws.run(&["dlq", "discard", "--route", "other", "--yes"]);
    assert!(
        text(&out).0.contains("Nothing to discard."),
        "{:?}",
        text(&out)
    );
    let out = ws.run(&["dlq", "discard", "--failure", "nonsense", "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    assert_eq!(dlq_rows(&ws).len(), 1);
    // --all --yes: the rest, without asking.
    let out = ws.run(&["dlq", "discard", "--all", "--yes"]);
    assert!(
        text(&out).0.contains("Discarded 1 dead letter."),
        "{:?}",
        text(&out)
    );
    assert!(dlq_rows(&ws).is_empty());
}

#[tokio::test]
async fn dlq_commands_work_without_a_routes_file() {
    let (ws, ids) = two_dead_letters().await;
    std::fs::remove_file(ws.path("routes.toml")).unwrap();
    assert_eq!(dlq_rows(&ws).len(), 2, "list");
    let out = ws.run(&["dlq", "show", &ids[0]]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("no routes file at"), "{stdout}");
    assert!(stdout.contains("failure      http_status"), "{stdout}");
    let out = ws.run(&["dlq", "redrive", "--limit", "1"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(
        text(&out).0.contains("Redrove 1 dead letter"),
        "{:?}",
        text(&out)
    );
    let out = ws.run(&["dlq", "discard", "--all", "--yes"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(dlq_rows(&ws).is_empty());
    // A routes file that exists and is broken is still an error.
    std::fs::write(ws.path("routes.toml"), "[[route]]\nname = ").unwrap();
    let out = ws.run(&["dlq", "list"]);
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
}

/// `count` dead letters of `pad_kb` KiB each, written straight into the embedded DLQ; the
/// last one's event carries `text`.
async fn seeded(count: usize, pad_kb: usize, text: &str) -> Workspace {
    let ws = Workspace::new(&sink_routes("{\"t\": {{ event.data.text | tojson }}}"));
    let pad = "p".repeat(pad_kb * 1024);
    seed_dead_letters(&ws, count, |n| {
        let t = if n + 1 == count { text } else { "plain" };
        Some(serde_json::json!({"text": t, "pad": pad}))
    })
    .await;
    ws
}

/// Runs routerctl `args` in `ws` and returns its peak resident memory in KiB (measured by
/// a python3 parent: `getrusage(RUSAGE_CHILDREN)`).
fn peak_kib(ws: &Workspace, args: &[&str]) -> u64 {
    let mut all = vec![
        "--routes".to_owned(),
        ws.path("routes.toml").display().to_string(),
        "--secrets".to_owned(),
        ws.path("secrets.toml").display().to_string(),
        "--data-dir".to_owned(),
        ws.path("data").display().to_string(),
    ];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)",
            env!("CARGO_BIN_EXE_routerctl"),
        ])
        .args(&all)
        .env_remove("QUEUE_URL")
        .env_remove("DEAD_LETTER_QUEUE_URL")
        .output()
        .expect("python3 runs routerctl");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("maxrss")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_commands_hold_a_page_in_memory_whatever_the_queue_holds() {
    // 400 dead letters of 120 KiB: 47 MiB of bodies.
    let ws = seeded(400, 120, "plain").await;
    for args in [
        vec!["dlq", "list"],
        vec!["dlq", "list", "--json"],
        vec!["dlq", "show", "dlv_missing"],
        vec!["dlq", "show", "dlv_399"],
    ] {
        let kib = peak_kib(&ws, &args);
        eprintln!("{args:?}: peak {} KiB", kib);
        assert!(kib < 40 * 1024, "{args:?} peaked at {} MiB", kib / 1024);
    }
    // And nothing was lost or left hidden on the way.
    assert_eq!(dlq_rows(&ws).len(), 400);
    let show = ws.run(&["dlq", "show", "dlv_7"]);
    assert!(String::from_utf8_lossy(&show.stdout).contains("delivery id  dlv_7"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_escapes_what_could_repaint_or_reorder_the_terminal() {
    // C1 controls (NEL, CSI), DEL, and a right-to-left override, in the event's data.
    let hostile = "a\u{85}b\u{9b}2Jc\u{7f}d\u{202e}txt.exe";
    let ws = seeded(1, 0, hostile).await;
    let out = ws.run(&["dlq", "show", "dlv_0"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for c in ['\u{85}', '\u{9b}', '\u{7f}', '\u{202e}', '\u{1b}'] {
        assert!(!stdout.contains(c), "{c:?} printed raw: {stdout:?}");
    }
    // In the event and in the payload as it renders now.
    assert_eq!(
        stdout
            .matches("a\\u{85}b\\u{9b}2Jc\\u{7f}d\\u{202e}txt.exe")
            .count(),
        2,
        "{stdout}"
    );
}
