//! Accepted means deliverable: for every limit the deliver side enforces on a queue message
//! (nesting depth, size, characters, ids), a value right at the limit is walked through the
//! whole path as users run it: `serve`'s trigger (202), the queue, the deliver side (the
//! target answers 404: a dead letter), `routerctl dlq redrive`, and the deliver side again
//! (200), arriving intact; one past the limit is refused at the trigger, nothing queued. On
//! the embedded queue and on SQS (moto).

use crate::common::*;
use router_tests::targets::Targets;
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug)]
enum Backend {
    Embedded,
    Moto,
}

/// The route echoes the event (its payload may be as large as a payload may: 1 MiB).
const ROUTE: &str = "triggers = [{ event_type = \"intent\" }]\nretry = { schedule = [], max_age = \"1h\" }\nmax_payload_kb = 1024\n\
    template = '{\"id\": {{ event.id | tojson }}, \"name\": {{ event.name | tojson }}, \"data\": {{ event.data | tojson }}}'";

async fn workspace(backend: Backend, targets: &Targets) -> Workspace {
    let routes = routes_for(targets, &[("edge", ROUTE)]).replace(
        "auth = \"flows\"\n",
        "auth = \"flows\"\nmax_body_kb = 1024\n",
    );
    assert!(routes.contains("max_body_kb = 1024"));
    // routes_for writes its own template; the route's wins (the last key is refused), so
    // drop routes_for's.
    let routes = routes
        .lines()
        .filter(|l| !l.starts_with("template = '{\"attempt\""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut ws = Workspace::new(&routes);
    if let Backend::Moto = backend {
        ws.use_moto_sqs().await;
    }
    ws
}

async fn post(serve: &Serve, content_type: &str, body: String) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v2/webhooks/trigger", serve.base))
        .header("x-api-key", KEY)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("serve answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Walks an accepted event through delivery, dead letter, redrive and delivery again;
/// returns what the target received the second time, parsed.
async fn walk(backend: Backend, content_type: &str, body: String, id: &str) -> Value {
    let targets = Targets::start().await;
    targets.script("edge", &[], 404);
    let ws = workspace(backend, &targets).await;
    let serve = ws.serve(&[]);
    let (status, answer) = post(&serve, content_type, body).await;
    assert_eq!(status, 202, "{backend:?}: {answer}");
    assert!(
        wait_until(|| dlq_rows(&ws).len() == 1).await,
        "{backend:?}: dead-lettered after its 404\n{}",
        serve.log()
    );
    assert_eq!(dlq_rows(&ws)[0]["failure"], "http_status", "{backend:?}");
    targets.script("edge", &[], 200);
    let out = ws.run(&["dlq", "redrive"]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Redrove 1"),
        "{backend:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        targets.wait_for(|r| r.len() >= 2).await,
        "{backend:?}: delivered after the redrive\n{}",
        serve.log()
    );
    assert!(wait_until(|| dlq_rows(&ws).is_empty()).await, "{backend:?}");
    let got = targets.received_at("edge");
    let first: Value = serde_json::from_str(&got[0].body).expect("JSON");
    let second: Value = serde_json::from_str(&got[1].body).expect("JSON");
    assert_eq!(first, second, "{backend:?}: the same payload both times");
    assert_eq!(second["id"], id, "{backend:?}");
    second
}

/// The JSON value `levels` deep: `{"d": [[...["x"]...]]}` (the object is level 1).
fn nested(levels: usize) -> Value {
    let mut v = json!("x");
    for _ in 1..levels {
        v = json!([v]);
    }
    json!({ "d": v })
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            let enc: String = v.bytes().map(|b| format!("%{b:02X}")).collect();
            format!("{k}={enc}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

async fn refused(backend: Backend, content_type: &str, body: String) -> (u16, Value) {
    let targets = Targets::start().await;
    let ws = workspace(backend, &targets).await;
    let serve = ws.serve(&[]);
    let answer = post(&serve, content_type, body).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        targets.received().is_empty(),
        "{backend:?}: nothing was queued"
    );
    answer
}

const BACKENDS: [Backend; 2] = [Backend::Embedded, Backend::Moto];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_nested_right_at_the_limit_is_delivered_and_redriven_and_past_it_refused() {
    let max = router_core::wire::queue::MAX_DATA_DEPTH;
    for backend in BACKENDS {
        let data = nested(max);
        assert_eq!(depth(&data), max);
        let body = json!({"id": "deep-json", "event_type": "intent", "data": data}).to_string();
        let got = walk(backend, "application/json", body, "deep-json").await;
        assert_eq!(got["data"], data, "{backend:?}");
        let body = form(&[
            ("id", "deep-form"),
            ("event_type", "intent"),
            ("data", &data.to_string()),
        ]);
        let got = walk(
            backend,
            "application/x-www-form-urlencoded",
            body,
            "deep-form",
        )
        .await;
        assert_eq!(got["data"], data, "{backend:?}");
        // One level more: a 422 naming `data`, as JSON and as a form (up to serde_json's
        // own limit of 128 for the whole body, past which the JSON body is a 400).
        for levels in [max + 1, 126, 127] {
            let over = nested(levels);
            let json_body = json!({"event_type": "intent", "data": over}).to_string();
            let (status, answer) = refused(backend, "application/json", json_body).await;
            if levels < 127 {
                assert_eq!(
                    (status, &answer["errors"][0]["field"]),
                    (422, &json!("data")),
                    "{levels}: {answer}"
                );
            } else {
                assert_eq!(status, 400, "{levels}: {answer}");
            }
            let form_body = form(&[("event_type", "intent"), ("data", &over.to_string())]);
            let (status, answer) =
                refused(backend, "application/x-www-form-urlencoded", form_body).await;
            assert_eq!(
                (status, &answer["errors"][0]["field"]),
                (422, &json!("data")),
                "{levels}: {answer}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_event_that_fits_a_queue_message_is_delivered_and_redriven() {
    for backend in BACKENDS {
        // Found from outside: the longest `data.pad` the trigger takes (the next byte is a
        // 413 naming the queue's limit).
        let event = |n: usize| {
            json!({"id": "big", "event_type": "intent", "data": {"pad": "p".repeat(n)}}).to_string()
        };
        let targets = Targets::start().await;
        let ws = workspace(backend, &targets).await;
        let serve = ws.serve(&[]);
        let (mut fits, mut over) = (1usize, 1024 * 1024usize);
        assert_eq!(post(&serve, "application/json", event(over)).await.0, 413);
        while over - fits > 1 {
            let mid = (fits + over) / 2;
            match post(&serve, "application/json", event(mid)).await.0 {
                202 => fits = mid,
                413 => over = mid,
                other => panic!("{backend:?}: {other} at {mid}"),
            }
        }
        // A few bytes past it (see below) is always refused, naming the queue's limit.
        let (status, answer) = post(&serve, "application/json", event(over + 32)).await;
        assert_eq!(status, 413, "{backend:?}: {answer}");
        assert!(
            answer["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("too large to queue"),
            "{answer}"
        );
        drop(serve);
        assert!(fits > 1000 * 1024, "{backend:?}: {fits}");
        // Within a few bytes of the limit: the job's `received_at` is written with as many
        // fraction digits as its nanoseconds need, so the same event's message varies by
        // a few bytes from one trigger to the next.
        let at_limit = fits - 32;
        let got = walk(backend, "application/json", event(at_limit), "big").await;
        assert_eq!(
            got["data"]["pad"].as_str().unwrap().len(),
            at_limit,
            "{backend:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn characters_sqs_refuses_and_the_longest_id_are_delivered_and_redriven() {
    // Characters SQS refuses in a message (they are escaped on the queue) and the longest
    // event id the trigger takes; one character more is a 422.
    let awkward =
        "\u{FFFF}\u{FFFE}\u{1}\u{8}\u{1F}\u{7F}\u{85}\u{202E}\u{D7FF}\u{E000}\u{10FFFF} é";
    let id = "i".repeat(128);
    for backend in BACKENDS {
        let body =
            json!({"id": id, "event_type": "intent", "name": awkward, "data": {"t": awkward}})
                .to_string();
        let got = walk(backend, "application/json", body, &id).await;
        assert_eq!(
            (got["name"].as_str(), got["data"]["t"].as_str()),
            (Some(awkward), Some(awkward))
        );
        let long = json!({"id": "i".repeat(129), "event_type": "intent"}).to_string();
        let (status, answer) = refused(backend, "application/json", long).await;
        assert_eq!(
            (status, &answer["errors"][0]["field"]),
            (422, &json!("id")),
            "{answer}"
        );
    }
}
