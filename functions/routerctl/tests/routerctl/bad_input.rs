//! Malformed, oversized, mistyped, unauthenticated and hostile requests against the trigger
//! API of a running `serve`: each gets its expected status, nothing is queued for them, and
//! the process is still healthy afterwards.

use crate::common::*;
use router_tests::targets::Targets;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const PATH: &str = "/api/v2/webhooks/trigger";

struct Case {
    name: &'static str,
    content_type: Option<&'static str>,
    key: Option<&'static str>,
    body: Vec<u8>,
    /// More headers, sent as they are (repeated names stay repeated).
    extra: Vec<(&'static str, &'static str)>,
    want: u16,
}

fn case(name: &'static str, body: impl Into<Vec<u8>>, want: u16) -> Case {
    Case {
        name,
        content_type: Some("application/json"),
        key: Some(KEY),
        body: body.into(),
        extra: Vec::new(),
        want,
    }
}

fn cases() -> Vec<Case> {
    let deep = format!(
        "{{\"event_type\":\"intent\",\"data\":{{\"x\":{}{}}}}}",
        "[".repeat(20_000),
        "]".repeat(20_000)
    );
    let wide = format!(
        "{{\"event_type\":\"intent\",\"data\":{{{}}}}}",
        (0..2000)
            .map(|i| format!("\"k{i}\":{i}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut v = vec![
        case("empty body", "", 400),
        case("not JSON", "hello", 400),
        case("truncated JSON", r#"{"event_type": "intent""#, 400),
        case("JSON array", "[1,2,3]", 400),
        case("JSON string", r#""intent""#, 400),
        case("JSON null", "null", 400),
        case("trailing garbage", r#"{"event_type":"intent"} {}"#, 400),
        case(
            "invalid UTF-8",
            b"{\"event_type\":\"\xff\xfe\"}".to_vec(),
            400,
        ),
        case("deep nesting", deep.into_bytes(), 400),
        case(
            "huge number",
            r#"{"event_type":"intent","score":1e999}"#,
            400,
        ),
        case(
            "huge integer in data",
            r#"{"event_type":"intent","data":{"n":123456789012345678901234567890}}"#,
            202,
        ),
        case("missing event_type", r#"{"name":"x"}"#, 422),
        case("unknown event_type", r#"{"event_type":"utterance"}"#, 422),
        case("event_type a number", r#"{"event_type":7}"#, 422),
        case(
            "score a string",
            r#"{"event_type":"intent","score":"high"}"#,
            422,
        ),
        case(
            "score a boolean",
            r#"{"event_type":"intent","score":true}"#,
            422,
        ),
        case(
            "data an array",
            r#"{"event_type":"intent","data":[1]}"#,
            422,
        ),
        case(
            "data a string",
            r#"{"event_type":"intent","data":"x"}"#,
            422,
        ),
        case(
            "id with spaces",
            r#"{"id":"a b","event_type":"intent"}"#,
            422,
        ),
        case(
            "id too long",
            format!(r#"{{"id":"{}","event_type":"intent"}}"#, "a".repeat(129)),
            422,
        ),
        case("id empty", r#"{"id":"","event_type":"intent"}"#, 422),
        case(
            "unknown field",
            r#"{"event_type":"intent","colour":"red"}"#,
            422,
        ),
        case(
            "duplicate keys",
            r#"{"event_type":"intent","event_type":"custom"}"#,
            422,
        ),
        case(
            "null bytes in strings",
            "{\"event_type\":\"intent\",\"name\":\"a\\u0000b\",\"data\":{\"t\":\"\\u0000\"}}",
            202,
        ),
        case(
            "null byte in id",
            "{\"id\":\"a\\u0000\",\"event_type\":\"intent\"}",
            422,
        ),
        case("wide data object", wide.into_bytes(), 202),
        case(
            "body over max_body_kb",
            format!(
                r#"{{"event_type":"intent","data":{{"x":"{}"}}}}"#,
                "a".repeat(70 * 1024)
            ),
            413,
        ),
        case("10 MB body", vec![b'a'; 10 * 1024 * 1024], 413),
        case(
            "a valid event",
            r#"{"event_type":"intent","name":"handover","score":0.9}"#,
            202,
        ),
    ];
    v.push(Case {
        name: "no key",
        key: None,
        ..case("", r#"{"event_type":"intent"}"#, 401)
    });
    v.push(Case {
        name: "wrong key",
        key: Some("nope"),
        ..case("", r#"{"event_type":"intent"}"#, 401)
    });
    v.push(Case {
        name: "key with a newline",
        key: Some("x\r\nX-Evil: 1"),
        ..case("", r#"{"event_type":"intent"}"#, 401)
    });
    v.push(Case {
        name: "no content type",
        content_type: None,
        ..case("", r#"{"event_type":"intent"}"#, 415)
    });
    v.push(Case {
        name: "text/plain",
        content_type: Some("text/plain"),
        ..case("", r#"{"event_type":"intent"}"#, 415)
    });
    v.push(Case {
        name: "XML",
        content_type: Some("application/xml"),
        ..case("", "<event/>", 415)
    });
    v.push(Case {
        name: "multipart",
        content_type: Some("multipart/form-data; boundary=x"),
        ..case("", "--x--", 415)
    });
    v.push(Case {
        name: "form with bad escape",
        content_type: Some("application/x-www-form-urlencoded"),
        ..case("", "event_type=%zz", 400)
    });
    v.push(Case {
        name: "form with invalid UTF-8",
        content_type: Some("application/x-www-form-urlencoded"),
        ..case("", b"event_type=%ff%fe".to_vec(), 400)
    });
    v.push(Case {
        name: "form with non-JSON data",
        content_type: Some("application/x-www-form-urlencoded"),
        ..case("", "event_type=intent&data=%7Bnope", 422)
    });
    v.push(Case {
        name: "form with a bad score",
        content_type: Some("application/x-www-form-urlencoded"),
        ..case("", "event_type=intent&score=NaN", 422)
    });
    v.push(Case {
        name: "form with a sign in an escape",
        content_type: Some("application/x-www-form-urlencoded"),
        ..case("", "event_type=intent&name=%+a", 400)
    });
    v.push(Case {
        name: "two X-API-Key headers, the right one second",
        extra: vec![("x-api-key", KEY)],
        key: Some("wrong"),
        ..case("", r#"{"event_type":"intent"}"#, 401)
    });
    v.push(Case {
        name: "two X-API-Key headers, both right",
        extra: vec![("x-api-key", KEY)],
        ..case("", r#"{"event_type":"intent"}"#, 401)
    });
    v.push(Case {
        name: "a key in both forms",
        extra: vec![("authorization", "ApiKey test-ingest-key")],
        ..case("", r#"{"event_type":"intent"}"#, 401)
    });
    v.push(Case {
        name: "two Authorization headers",
        key: None,
        extra: vec![
            ("authorization", "ApiKey test-ingest-key"),
            ("authorization", "ApiKey test-ingest-key"),
        ],
        ..case("", r#"{"event_type":"intent"}"#, 401)
    });
    v.push(case(
        "characters SQS refuses",
        "{\"event_type\":\"intent\",\"name\":\"\u{FFFF}\",\"data\":{\"t\":\"\u{FFFE}\\u0001\"}}",
        202,
    ));
    v.push(Case {
        name: "valid form",
        content_type: Some("application/x-www-form-urlencoded"),
        ..case("", "event_type=intent&name=handover&score=0.9", 202)
    });
    v
}

/// One raw HTTP/1.1 request; returns the status (0 when the server closed the connection).
fn raw(addr: &str, request: &[u8]) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let _ = s.write_all(request);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_request_gets_its_status_and_serve_stays_healthy() {
    let targets = Targets::start().await;
    let ws = Workspace::new(&routes_for(
        &targets,
        &[("sink", "triggers = [{ event_type = \"intent\" }]")],
    ));
    let serve = ws.serve(&[]);
    let client = reqwest::Client::new();
    let cases = cases();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut accepted = 0;
    let mut wrong = Vec::new();
    for c in &cases {
        let mut req = client
            .post(format!("{}{PATH}", serve.base))
            .body(c.body.clone());
        if let Some(ct) = c.content_type {
            req = req.header("content-type", ct);
        }
        if let Some(v) = c
            .key
            .and_then(|k| reqwest::header::HeaderValue::from_str(k).ok())
        {
            req = req.header("x-api-key", v);
        }
        for (k, v) in &c.extra {
            req = req.header(*k, *v);
        }
        let status = match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                if status >= 400 {
                    let ct = resp
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let body: serde_json::Value = resp.json().await.unwrap_or_default();
                    if ct != "application/problem+json" || body["status"] != status {
                        wrong.push(format!("{}: not a problem document ({ct}) {body}", c.name));
                    }
                }
                status
            }
            // A server may close the connection on a body it refuses before reading it all.
            Err(e) if c.want == 413 => {
                eprintln!(
                    "{}: connection closed early ({e}), accepted as a refusal",
                    c.name
                );
                413
            }
            Err(e) => panic!("{}: {e}", c.name),
        };
        if status == 202 {
            accepted += 1;
        }
        if status != c.want {
            wrong.push(format!("{}: got {status}, want {}", c.name, c.want));
        }
    }

    // Broken HTTP itself.
    let addr = serve.base.trim_start_matches("http://").to_owned();
    let head = |extra: &str| {
        format!(
            "POST {PATH} HTTP/1.1\r\nhost: x\r\nx-api-key: {KEY}\r\ncontent-type: application/json\r\n{extra}\r\n"
        )
    };
    let status = raw(
        &addr,
        format!("{}{}", head("content-length: 5\r\n"), "{\"a\"").as_bytes(),
    );
    if status == 202 {
        wrong.push("a body shorter than its content-length was accepted".into());
    }
    let status = raw(
        &addr,
        head("content-length: 99999999999999999999\r\n").as_bytes(),
    );
    if !(status == 0 || status == 400 || status == 413) {
        wrong.push(format!("absurd content-length: {status}"));
    }
    let status = raw(&addr, b"GARBAGE\r\n\r\n");
    if status == 202 {
        wrong.push("garbage request line accepted".into());
    }
    assert!(wrong.is_empty(), "{wrong:#?}\n{}", serve.log());

    // Still healthy, still taking triggers, and exactly the accepted ones were delivered.
    let health: serde_json::Value = client
        .get(format!("{}/api/v2/health", serve.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "healthy", "{health}");
    let (status, _) = serve
        .trigger(r#"{"event_type":"intent","name":"after"}"#)
        .await;
    assert_eq!(status, 202);
    assert!(
        targets.wait_for(|r| r.len() > accepted).await,
        "{}",
        serve.log()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        targets.received().len(),
        accepted + 1,
        "only the accepted requests became deliveries"
    );
}
