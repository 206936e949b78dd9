//! Running `routerctl` as a subprocess against real local targets.

use base64::Engine;
use hmac::{Hmac, Mac};
pub use router_core::testing::PATIENCE;
use router_tests::targets::{Delivery, Targets};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const KEY: &str = "test-ingest-key";
pub const SIGNING_KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

/// A data dir with routes and secrets files; `extra_env` is passed to every command.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
}

impl Workspace {
    pub fn new(routes: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("routes.toml"), routes).unwrap();
        let signing = base64::engine::general_purpose::STANDARD.encode(SIGNING_KEY);
        std::fs::write(
            dir.path().join("secrets.toml"),
            format!(
                "\"router/ingest-key\" = \"{KEY}\"\n\"router/signing-key\" = \"whsec_{signing}\"\n"
            ),
        )
        .unwrap();
        Self {
            dir,
            env: Vec::new(),
        }
    }

    /// Points every command at a fresh queue pair on moto_server (SQS mode).
    pub async fn use_moto_sqs(&mut self) {
        let endpoint = router_tests::moto_endpoint();
        let client = aws_sdk_sqs::Client::new(&router_tests::moto_sdk_config().await);
        let (queue, dlq) =
            router_tests::create_moto_queues(&client, Duration::from_secs(3), 20).await;
        let (ordered, ordered_dlq) =
            router_tests::create_moto_queue_pair(&client, Duration::from_secs(3), 20, true).await;
        self.env = vec![
            ("QUEUE_URL".into(), queue),
            ("DEAD_LETTER_QUEUE_URL".into(), dlq),
            ("ORDERED_QUEUE_URL".into(), ordered),
            ("ORDERED_DEAD_LETTER_QUEUE_URL".into(), ordered_dlq),
            ("AWS_ENDPOINT_URL".into(), endpoint),
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
        ];
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_routerctl"));
        c.arg("--routes")
            .arg(self.path("routes.toml"))
            .arg("--secrets")
            .arg(self.path("secrets.toml"))
            .arg("--data-dir")
            .arg(self.path("data"))
            .args(args)
            .env_remove("QUEUE_URL")
            .env_remove("DEAD_LETTER_QUEUE_URL")
            .env_remove("ORDERED_QUEUE_URL")
            .env_remove("ORDERED_DEAD_LETTER_QUEUE_URL")
            .env("RUST_LOG", "info");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs a command to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run routerctl")
    }

    /// Runs a command to completion with `input` on its stdin.
    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run routerctl");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().expect("routerctl exits")
    }

    /// Starts `serve` on a free port and waits for its ready line.
    pub fn serve(&self, extra: &[&str]) -> Serve {
        // A visibility timeout short enough that a kill -9's in-flight deliveries come
        // back soon, long enough that a loaded machine's late heartbeat does not hand a
        // delivery out twice.
        let mut args = vec!["serve", "--port", "0", "--grace", "5"];
        if !extra.contains(&"--visibility-timeout") {
            args.extend(["--visibility-timeout", "10"]);
        }
        args.extend_from_slice(extra);
        let mut child = self
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start serve");
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let log = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("ready on http://").nth(1) {
                    let _ = tx.send(
                        rest.split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                }
                log.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let stderr = child.stderr.take().unwrap();
        let log = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let addr = match rx.recv_timeout(PATIENCE) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("serve did not get ready:\n{}", output.lock().unwrap());
            }
        };
        Serve {
            child,
            base: format!("http://{addr}"),
            output,
        }
    }
}

pub struct Serve {
    pub child: Child,
    pub base: String,
    pub output: Arc<Mutex<String>>,
}

impl Serve {
    pub async fn trigger(&self, body: &str) -> (u16, serde_json::Value) {
        let resp = reqwest::Client::new()
            .post(format!("{}/api/v2/webhooks/trigger", self.base))
            .header("x-api-key", KEY)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("serve answers");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub fn kill9(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("serve exits")
    }

    pub fn log(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// `GET /api/v2/health`.
    pub async fn health(&self) -> serde_json::Value {
        reqwest::get(format!("{}/api/v2/health", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A workspace whose one route, `refuses`, fires on `{"event_type": "custom", "name":
/// "x"}` and is answered 400 (a dead letter at the first attempt). Keep the targets alive.
pub async fn refusing_workspace() -> (Targets, Workspace) {
    let targets = Targets::start().await;
    targets.script("refuses", &[], 400);
    let ws = Workspace::new(&routes_for(
        &targets,
        &[(
            "refuses",
            "triggers = [{ event_type = \"custom\", name = \"x\" }]",
        )],
    ));
    (targets, ws)
}

/// A routes file delivering to `targets`: route `<name>` posts to `<targets>/<name>`.
pub fn routes_for(targets: &Targets, routes: &[(&str, &str)]) -> String {
    let mut s = String::from(
        "[ingest]\nauth = \"flows\"\n[delivery]\nallow_private_targets = true\n[signing]\nsecret = \"router/signing-key\"\n\
         [auth.flows]\ntype = \"api_key\"\nsecret = \"router/ingest-key\"\n",
    );
    for (name, extra) in routes {
        // Long enough for a loaded machine: a test that needs a timeout sets its own.
        let timeout = if extra.contains("timeout_seconds") {
            ""
        } else {
            "timeout_seconds = 20\n"
        };
        s.push_str(&format!(
            "[[route]]\nname = \"{name}\"\ntarget_url = \"{}\"\n{timeout}\
             template = '{{\"attempt\": {{{{ delivery.attempt }}}}, \"event\": {{{{ event.id | tojson }}}}}}'\n{extra}\n",
            targets.url(name)
        ));
    }
    s
}

/// Checks the Standard Webhooks signature of a received delivery with an independent HMAC.
pub fn signature_is_valid(d: &Delivery) -> bool {
    let (Some(id), Some(ts), Some(sig)) = (
        d.headers.get("webhook-id"),
        d.headers.get("webhook-timestamp"),
        d.headers.get("webhook-signature"),
    ) else {
        return false;
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SIGNING_KEY).unwrap();
    mac.update(format!("{id}.{ts}.{}", d.body).as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    sig.split(' ').any(|s| s == format!("v1,{expected}"))
}

/// A routes file with one route, `sink`, rendering `template` (for dead letters seeded
/// straight into the embedded DLQ: nothing is ever delivered).
pub fn sink_routes(template: &str) -> String {
    format!(
        "[[route]]\nname = 'sink'\ntarget_url = 'https://example.com/'\ntemplate = '{template}'\ntriggers = [{{ event_type = 'intent' }}]\n"
    )
}

/// Writes `count` dead letters of route `sink` straight into `ws`'s embedded DLQ, as the
/// deliver side leaves them (a 404): delivery ids `dlv_0`, `dlv_1`, ..., each event's
/// `data` what `data(n)` says (`None`: no data).
pub async fn seed_dead_letters(
    ws: &Workspace,
    count: usize,
    data: impl Fn(usize) -> Option<serde_json::Value>,
) {
    let (_, dead_letters) =
        router_core::backends::embedded_queues(&ws.path("data"), Duration::from_secs(30), 10)
            .unwrap();
    let messages: Vec<_> = (0..count)
        .map(|n| {
            let data = data(n).map_or_else(String::new, |d| format!(r#","data":{d}"#));
            let body = format!(
                r#"{{"v":1,"delivery_id":"dlv_{n}","event_id":"e{n}","route":"sink","event":{{"id":"e{n}","event_type":"intent","score":1.0{data}}},"received_at":"2026-11-27T10:00:00Z"}}"#
            );
            router_core::ports::OutgoingMessage {
                body,
                attributes: [("route", "sink"), ("failure", "http_status"), ("last_status", "404"), ("attempts", "1")]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
                ..Default::default()
            }
        })
        .collect();
    let sent = router_core::ports::Queue::send(dead_letters.as_ref(), &messages).await;
    assert!(sent.iter().all(Result::is_ok), "{sent:?}");
}

/// How many distinct deliveries (by `webhook-id`) these requests are.
pub fn distinct_deliveries<'a>(requests: impl IntoIterator<Item = &'a Delivery>) -> usize {
    let mut ids: Vec<&str> = requests.into_iter().map(Delivery::webhook_id).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len()
}

/// `dlq list --json` rows.
pub fn dlq_rows(ws: &Workspace) -> Vec<serde_json::Value> {
    let out = ws.run(&["dlq", "list", "--json"]);
    assert!(
        out.status.success(),
        "dlq list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

/// Polls `f` (every 200 ms: it often runs a `routerctl` command) until it holds, or
/// [`PATIENCE`] passes: the deadline ends a broken run, it does not time the router.
pub async fn wait_until(f: impl FnMut() -> bool) -> bool {
    wait_until_within(PATIENCE, f).await
}

/// As [`wait_until`], for a run whose work itself takes minutes (the soak).
pub async fn wait_until_within(patience: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + patience;
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    f()
}
