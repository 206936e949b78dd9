//! Test doubles (feature `testing`), one set for every crate: a queue that records every
//! call and can be scripted to fail, a secret store in a map that can hand out a sequence
//! of values (a rotation), a log capture, and [`http`], the scripted HTTP server.
//!
//! Waiting, the one rule: a test waits for the thing it expects (a request at a target, a
//! log line, a dead letter) and gives up only at [`PATIENCE`], a deadline that exists to
//! end a broken run. No test asserts that something happens within a short wall-clock
//! window: a loaded machine is slow, not wrong. "Not before X" (a lower bound) is safe to
//! assert; "concurrently" or "without waiting for Y" is shown with a [`http::Gate`] that
//! holds Y until the test has seen the rest.

pub mod cognigy;
pub mod http;

use crate::ports::{
    EntryFailure, OutgoingMessage, Queue, QueueDepth, QueueError, Received, SecretError,
    SecretStore,
};
use crate::secrets::Secret;
use crate::sync::lock;
use async_trait::async_trait;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// How long a test waits for what it expects before it calls the run broken.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Polls `f` (every 50 ms) until it holds, or [`PATIENCE`] passes; whether it held.
pub async fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if f() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How the fake queue answers the next `send_batch` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendBehaviour {
    /// Accept everything.
    Accept,
    /// The whole call fails.
    Unavailable,
    /// The whole call is refused for good (as SQS refuses content it never takes).
    Refuse,
    /// The entries at these positions of the call fail (for a passing reason); the rest
    /// are accepted.
    FailEntries(Vec<usize>),
}

/// A queue that records accepted messages. Scripted send behaviours apply to the next
/// calls in order; after they run out every call is accepted. It refuses what SQS
/// refuses ([`crate::ports::limits`]). It receives nothing: tests hand messages in.
#[derive(Debug, Default)]
pub struct FakeQueue {
    pub sent: Mutex<Vec<OutgoingMessage>>,
    pub script: Mutex<VecDeque<SendBehaviour>>,
    pub calls: Mutex<usize>,
    pub depth: Mutex<Option<QueueDepth>>,
    /// Every `change_visibility_batch` call, with its entries (a single change is a call
    /// of one).
    pub visibility_calls: Mutex<Vec<Vec<(String, Duration)>>>,
    /// When set, every visibility change fails with it.
    pub visibility_error: Mutex<Option<QueueError>>,
    pub deleted: Mutex<Vec<String>>,
    /// Every message put back uncounted ([`Queue::release_batch`]), with its delay.
    pub released: Mutex<Vec<(String, Duration)>>,
}

impl FakeQueue {
    pub fn new() -> Self {
        Self {
            depth: Mutex::new(Some(QueueDepth::default())),
            ..Self::default()
        }
    }

    pub fn then(&self, behaviour: SendBehaviour) -> &Self {
        lock(&self.script).push_back(behaviour);
        self
    }

    /// `None` makes `depth` fail as an unreachable queue would.
    pub fn set_depth(&self, depth: Option<QueueDepth>) {
        *lock(&self.depth) = depth;
    }

    pub fn sent(&self) -> Vec<OutgoingMessage> {
        lock(&self.sent).clone()
    }

    pub fn send_calls(&self) -> usize {
        *lock(&self.calls)
    }

    /// Every visibility change so far, across calls.
    pub fn visibility_changes(&self) -> Vec<(String, Duration)> {
        lock(&self.visibility_calls)
            .iter()
            .flatten()
            .cloned()
            .collect()
    }

    pub fn visibility_calls(&self) -> Vec<Vec<(String, Duration)>> {
        lock(&self.visibility_calls).clone()
    }

    /// Every later visibility change fails with `error`.
    pub fn fail_visibility(&self, error: QueueError) {
        *lock(&self.visibility_error) = Some(error);
    }

    pub fn deleted(&self) -> Vec<String> {
        lock(&self.deleted).clone()
    }

    /// The receipt handles put back uncounted so far, with their delays.
    pub fn released(&self) -> Vec<(String, Duration)> {
        lock(&self.released).clone()
    }
}

#[async_trait]
impl Queue for FakeQueue {
    async fn send_batch(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<EntryFailure>, QueueError> {
        *lock(&self.calls) += 1;
        // What SQS (and the embedded queue) would refuse, this refuses too.
        crate::ports::limits::check_send(messages)?;
        let behaviour = lock(&self.script)
            .pop_front()
            .unwrap_or(SendBehaviour::Accept);
        match behaviour {
            SendBehaviour::Accept => {
                lock(&self.sent).extend_from_slice(messages);
                Ok(Vec::new())
            }
            SendBehaviour::Unavailable => Err(QueueError::Unavailable("fake queue is down".into())),
            SendBehaviour::Refuse => Err(QueueError::BadRequest(
                "InvalidMessageContents: fake".into(),
            )),
            SendBehaviour::FailEntries(ids) => {
                let mut failures = Vec::new();
                for (i, m) in messages.iter().enumerate() {
                    if ids.contains(&i) {
                        failures.push(EntryFailure {
                            index: i,
                            reason: "InternalError: fake".into(),
                            permanent: false,
                        });
                    } else {
                        lock(&self.sent).push(m.clone());
                    }
                }
                Ok(failures)
            }
        }
    }

    async fn receive(&self, _max: usize, _wait: Duration, _vis: Option<Duration>) -> Received {
        Ok(Vec::new())
    }

    async fn delete_batch(&self, receipt_handles: &[String]) -> Vec<Result<(), QueueError>> {
        lock(&self.deleted).extend_from_slice(receipt_handles);
        receipt_handles.iter().map(|_| Ok(())).collect()
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        lock(&self.depth).ok_or_else(|| QueueError::Unavailable("fake queue is down".into()))
    }

    /// Uncounted in place, as the embedded queue does (failing as visibility changes do).
    async fn release_batch(
        &self,
        entries: &[(&crate::ports::ReceivedMessage, Duration)],
    ) -> Vec<Result<crate::ports::Released, QueueError>> {
        let err = lock(&self.visibility_error).clone();
        lock(&self.released).extend(
            entries
                .iter()
                .map(|(m, delay)| (m.receipt_handle.clone(), *delay)),
        );
        entries
            .iter()
            .map(|_| err.clone().map_or(Ok(crate::ports::Released::InPlace), Err))
            .collect()
    }

    async fn change_visibility_batch(
        &self,
        entries: &[(String, Duration)],
    ) -> Vec<Result<(), QueueError>> {
        lock(&self.visibility_calls).push(entries.to_vec());
        let err = lock(&self.visibility_error).clone();
        entries
            .iter()
            .map(|_| err.clone().map_or(Ok(()), Err))
            .collect()
    }
}

/// Secrets in a map; remembers which ids were read. An id given several values hands them
/// out in turn (the last one stays), as if the secret had been rotated in between.
#[derive(Debug, Default)]
pub struct MemorySecrets {
    pub values: Mutex<BTreeMap<String, VecDeque<String>>>,
    pub reads: Mutex<Vec<String>>,
    /// When set, every `get` fails with it (an unreachable store).
    pub failure: Mutex<Option<SecretError>>,
}

impl MemorySecrets {
    pub fn with(pairs: &[(&str, &str)]) -> Self {
        let s = Self::default();
        for (k, v) in pairs {
            s.set(k, v);
        }
        s
    }

    pub fn set(&self, id: &str, value: &str) {
        self.set_sequence(id, &[value]);
    }

    /// `id` answers these values in turn, then the last one.
    pub fn set_sequence(&self, id: &str, values: &[&str]) {
        lock(&self.values).insert(
            id.to_owned(),
            values.iter().map(|v| (*v).to_owned()).collect(),
        );
    }

    /// Deletes `id`.
    pub fn remove(&self, id: &str) {
        lock(&self.values).remove(id);
    }

    /// Every later `get` fails with `error` (`None`: answers again).
    pub fn fail_with(&self, error: Option<SecretError>) {
        *lock(&self.failure) = error;
    }

    /// How many `get` calls there were.
    pub fn reads(&self) -> usize {
        lock(&self.reads).len()
    }

    /// How many `get` calls read `id`.
    pub fn reads_of(&self, id: &str) -> usize {
        lock(&self.reads).iter().filter(|r| *r == id).count()
    }
}

#[async_trait]
impl SecretStore for MemorySecrets {
    async fn get(&self, id: &str) -> Result<Secret, SecretError> {
        lock(&self.reads).push(id.to_owned());
        if let Some(e) = lock(&self.failure).clone() {
            return Err(e);
        }
        let mut values = lock(&self.values);
        let queue = values
            .get_mut(id)
            .ok_or_else(|| SecretError::NotFound(id.to_owned()))?;
        let v = if queue.len() > 1 {
            queue.pop_front()
        } else {
            queue.front().cloned()
        };
        v.map(Secret::new)
            .ok_or_else(|| SecretError::NotFound(id.to_owned()))
    }

    async fn put(&self, id: &str, value: &Secret) -> Result<(), SecretError> {
        self.set(id, value.expose());
        Ok(())
    }
}

/// A capture of this thread's log output, for tests: everything written while its guard
/// lives, from code running on this thread (a `#[tokio::test]`'s tasks included).
///
/// One subscriber serves every capture of the process: the first capture installs it as
/// the global default, and it writes each event into the capture of the thread that logs
/// it (nothing, on a thread without one). Its per-event (dynamic) filter asks that thread, so
/// tracing's per-callsite interest cache never holds a stale "nobody listens" for a
/// callsite first reached on another thread, which a thread-local subscriber per test
/// could: captures work in a test binary whose other tests log on other threads.
#[derive(Debug, Clone, Default)]
pub struct LogCapture(std::sync::Arc<Mutex<Vec<u8>>>);

/// What a capture keeps: JSON lines as the functions write them on Lambda (info and
/// above), or every level as plain text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CaptureMode {
    Json,
    Everything,
}

thread_local! {
    static CAPTURING: std::cell::RefCell<Option<(LogCapture, CaptureMode)>> =
        const { std::cell::RefCell::new(None) };
}

/// Ends a capture when dropped (the thread's capture before it, if any, resumes).
#[derive(Debug)]
pub struct CaptureGuard(Option<(LogCapture, CaptureMode)>);

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        let previous = self.0.take();
        CAPTURING.with(|c| *c.borrow_mut() = previous);
    }
}

/// The writer of one mode: this thread's capture when it is in that mode.
struct ThreadCapture(CaptureMode);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for ThreadCapture {
    type Writer = CaptureWriter;

    fn make_writer(&'a self) -> CaptureWriter {
        CaptureWriter(CAPTURING.with(|c| match &*c.borrow() {
            Some((capture, mode)) if *mode == self.0 => Some(capture.clone()),
            _ => None,
        }))
    }
}

/// Writes into a capture, or nowhere.
#[derive(Debug)]
pub struct CaptureWriter(Option<LogCapture>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(c) = &self.0 {
            lock(&c.0).extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capturing(mode: CaptureMode, level: &tracing::Level) -> bool {
    CAPTURING.with(|c| match &*c.borrow() {
        Some((_, m)) if *m == mode => {
            mode == CaptureMode::Everything || *level <= tracing::Level::INFO
        }
        _ => false,
    })
}

/// Installs the process's one capturing subscriber (once).
fn install_capturing_subscriber() {
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::dynamic_filter_fn;
    use tracing_subscriber::layer::SubscriberExt;
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let json = tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(ThreadCapture(CaptureMode::Json))
            .with_filter(dynamic_filter_fn(|m, _| {
                capturing(CaptureMode::Json, m.level())
            }));
        let text = tracing_subscriber::fmt::layer()
            .with_writer(ThreadCapture(CaptureMode::Everything))
            .with_filter(dynamic_filter_fn(|m, _| {
                capturing(CaptureMode::Everything, m.level())
            }));
        let subscriber = tracing_subscriber::registry().with(json).with(text);
        if tracing::subscriber::set_global_default(subscriber).is_err() {
            panic!("LogCapture needs to be the global subscriber, and another one was set first");
        }
    });
}

impl LogCapture {
    /// Captures this thread's logs as the functions write them on Lambda (JSON, one object
    /// per line, fields at the top level; info and above) until the guard is dropped.
    pub fn json() -> (Self, CaptureGuard) {
        Self::start(CaptureMode::Json)
    }

    /// Captures every level of this thread's logs, as plain text, until the guard is
    /// dropped.
    pub fn everything() -> (Self, CaptureGuard) {
        Self::start(CaptureMode::Everything)
    }

    fn start(mode: CaptureMode) -> (Self, CaptureGuard) {
        install_capturing_subscriber();
        let capture = Self::default();
        let previous = CAPTURING.with(|c| c.borrow_mut().replace((capture.clone(), mode)));
        // A callsite first reached while the subscriber was being installed may hold the
        // interest of before; this recomputes every callsite's.
        tracing::callsite::rebuild_interest_cache();
        (capture, CaptureGuard(previous))
    }

    /// The JSON lines written so far.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.0)).into_owned()
    }
}
