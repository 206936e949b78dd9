//! A misbehaving delivery target for soak tests: a raw HTTP/1.1 server on 127.0.0.1 that,
//! per request, answers 503 (30 %), holds the request past any route timeout (5 %), resets
//! the connection (2 %), and otherwise answers 200 and records the delivery.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Shares of requests that get each misbehaviour, in per mille.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    pub unavailable: u64,
    pub timeout: u64,
    pub reset: u64,
    /// How long a "timeout" holds the request.
    pub hold: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            unavailable: 300,
            timeout: 50,
            reset: 20,
            hold: Duration::from_secs(3),
        }
    }
}

#[derive(Debug, Default)]
pub struct Record {
    pub requests: u64,
    pub unavailable: u64,
    pub timeouts: u64,
    pub resets: u64,
    /// 200-answered deliveries by `webhook-id`: how many times each arrived.
    pub delivered: HashMap<String, u64>,
    /// Deliveries whose body named another delivery id than their `webhook-id` header.
    pub mismatched: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ChaosTarget {
    pub base: String,
    pub record: Arc<Mutex<Record>>,
}

impl ChaosTarget {
    pub async fn start(faults: Faults, seed: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let record: Arc<Mutex<Record>> = Arc::default();
        let rng = Arc::new(Mutex::new(seed | 1));
        let rec = record.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, faults, rng.clone(), rec.clone()));
            }
        });
        Self { base, record }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }
}

fn next(rng: &Mutex<u64>) -> u64 {
    let mut x = rng.lock().expect("lock");
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x % 1000
}

async fn serve(
    stream: TcpStream,
    faults: Faults,
    rng: Arc<Mutex<u64>>,
    record: Arc<Mutex<Record>>,
) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut headers = HashMap::new();
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        loop {
            line.clear();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let roll = next(&rng);
        record.lock().expect("lock").requests += 1;
        if roll < faults.reset {
            record.lock().expect("lock").resets += 1;
            let stream = reader.into_inner();
            // A zero linger makes the close a reset (RST); it cannot block with a zero timeout.
            #[allow(deprecated)]
            let _ = stream.set_linger(Some(Duration::ZERO));
            drop(stream);
            return;
        }
        if roll < faults.reset + faults.timeout {
            record.lock().expect("lock").timeouts += 1;
            tokio::time::sleep(faults.hold).await;
            return;
        }
        let status = if roll < faults.reset + faults.timeout + faults.unavailable {
            record.lock().expect("lock").unavailable += 1;
            "503 Service Unavailable"
        } else {
            let id = headers.get("webhook-id").cloned().unwrap_or_default();
            let named = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["delivery"].as_str().map(str::to_owned));
            let mut r = record.lock().expect("lock");
            if named.as_deref() != Some(id.as_str()) {
                r.mismatched.push(id.clone());
            }
            *r.delivered.entry(id).or_default() += 1;
            "200 OK"
        };
        let resp = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
        if reader.get_mut().write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}
