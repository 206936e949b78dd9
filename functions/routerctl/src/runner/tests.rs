use super::*;
use router_core::backends::embedded_queues;
use router_core::ports::OutgoingMessage;
use std::sync::atomic::{AtomicUsize, Ordering};

fn message(body: &str) -> OutgoingMessage {
    OutgoingMessage {
        body: body.into(),
        attributes: Default::default(),
        delay: Duration::ZERO,
        ..Default::default()
    }
}

/// Starts a runner on `queue` (a batch a receive); it runs until the returned sender says
/// stop, and the handle ends once it has.
fn start<H: MessageHandler>(
    queue: Arc<dyn Queue>,
    handler: Arc<H>,
    concurrency: usize,
    per_receive: usize,
    visibility: Duration,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let runner = tokio::spawn(run(
        queue,
        handler,
        concurrency,
        per_receive,
        visibility,
        stop_rx,
    ));
    (stop_tx, runner)
}

struct Panics(AtomicUsize);

impl MessageHandler for Panics {
    async fn handle(&self, _msgs: Vec<ReceivedMessage>) -> Vec<String> {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("a bug in the handler");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_delivery_loses_no_message() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, dead_letters) = embedded_queues(dir.path(), Duration::from_secs(1), 2).unwrap();
    queue.send_batch(&[message("{}")]).await.unwrap();
    let handler = Arc::new(Panics(AtomicUsize::new(0)));
    let (stop_tx, runner) = start(
        queue.clone(),
        handler.clone(),
        4,
        MAX_BATCH,
        Duration::from_secs(1),
    );
    // Received twice (visibility 1 s), then redriven to the DLQ at the max receive count.
    let mut dead = Vec::new();
    let deadline = tokio::time::Instant::now() + router_core::testing::PATIENCE;
    while dead.is_empty() && tokio::time::Instant::now() < deadline {
        dead = dead_letters
            .receive(1, Duration::from_millis(100), None)
            .await
            .unwrap();
    }
    stop_tx.send(true).unwrap();
    runner.await.unwrap();
    assert_eq!(
        dead.len(),
        1,
        "the message reached the DLQ instead of vanishing"
    );
    assert_eq!(
        handler.0.load(Ordering::SeqCst),
        2,
        "the runner survived the first panic"
    );
}

/// Takes `hold` per message (a message whose body is `"slow"` also waits for `gate`),
/// counting how many run at once and how many finished.
struct Slow {
    hold: Duration,
    gate: router_core::testing::http::Gate,
    now: AtomicUsize,
    peak: AtomicUsize,
    seen: AtomicUsize,
    done: AtomicUsize,
}

impl Slow {
    fn new(hold: Duration) -> Self {
        Self {
            hold,
            gate: Default::default(),
            now: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            seen: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
        }
    }
}

impl MessageHandler for Slow {
    async fn handle(&self, msgs: Vec<ReceivedMessage>) -> Vec<String> {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
        self.seen.fetch_add(1, Ordering::SeqCst);
        if msgs.iter().any(|m| m.body == "slow") {
            self.gate.passed().await;
        }
        tokio::time::sleep(self.hold).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        self.done.fetch_add(1, Ordering::SeqCst);
        Vec::new()
    }
}

/// Waits until `f` holds (or PATIENCE passes).
async fn until(f: impl FnMut() -> bool) -> bool {
    router_core::testing::eventually(f).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_delivery_outlives_its_visibility_and_is_handled_once() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, _dlq) = embedded_queues(dir.path(), Duration::from_secs(1), 10).unwrap();
    queue.send_batch(&[message("{}")]).await.unwrap();
    // 3.5 s of handling against a 1 s visibility: its visibility must be extended.
    let handler = Arc::new(Slow::new(Duration::from_millis(3500)));
    let (stop_tx, runner) = start(
        queue.clone(),
        handler.clone(),
        8,
        MAX_BATCH,
        Duration::from_secs(1),
    );
    assert!(until(|| handler.done.load(Ordering::SeqCst) == 1).await);
    // Time for a second consumer to get it, had its visibility lapsed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop_tx.send(true).unwrap();
    runner.await.unwrap();
    assert_eq!(
        handler.seen.load(Ordering::SeqCst),
        1,
        "never handed out twice"
    );
    assert_eq!(
        queue.depth().await.unwrap().visible + queue.depth().await.unwrap().in_flight,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_to_concurrency_messages_are_in_flight_and_a_slow_one_holds_back_none() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, _dlq) = embedded_queues(dir.path(), Duration::from_secs(30), 10).unwrap();
    queue.send_batch(&[message("slow")]).await.unwrap();
    for chunk in 0..3 {
        let batch: Vec<_> = (0..10)
            .map(|i| message(&format!("{}", chunk * 10 + i)))
            .collect();
        queue.send_batch(&batch).await.unwrap();
    }
    let handler = Arc::new(Slow::new(Duration::from_millis(100)));
    let (stop_tx, runner) = start(
        queue.clone(),
        handler.clone(),
        16,
        MAX_BATCH,
        Duration::from_secs(30),
    );
    // The other 30 are all handled while the slow one is held.
    let others_done = until(|| handler.done.load(Ordering::SeqCst) == 30).await;
    let slow_still_held = !handler.gate.is_open() && handler.now.load(Ordering::SeqCst) == 1;
    handler.gate.open();
    assert!(until(|| handler.done.load(Ordering::SeqCst) == 31).await);
    stop_tx.send(true).unwrap();
    runner.await.unwrap();
    assert!(
        others_done && slow_still_held,
        "a slow delivery held others back"
    );
    assert_eq!(handler.seen.load(Ordering::SeqCst), 31);
    assert_eq!(
        handler.peak.load(Ordering::SeqCst),
        16,
        "never more than the concurrency"
    );
}

/// A queue that records how many messages each receive asked for.
#[derive(Debug)]
struct CountsReceives {
    inner: Arc<dyn Queue>,
    asked: std::sync::Mutex<Vec<usize>>,
    /// The size of each delete call.
    deleted: std::sync::Mutex<Vec<usize>>,
}

#[async_trait::async_trait]
impl Queue for CountsReceives {
    async fn send_batch(
        &self,
        messages: &[OutgoingMessage],
    ) -> Result<Vec<router_core::ports::EntryFailure>, router_core::ports::QueueError> {
        self.inner.send_batch(messages).await
    }
    async fn receive(
        &self,
        max: usize,
        wait: Duration,
        visibility: Option<Duration>,
    ) -> router_core::ports::Received {
        self.asked.lock().unwrap().push(max);
        self.inner.receive(max, wait, visibility).await
    }
    async fn depth(
        &self,
    ) -> Result<router_core::ports::QueueDepth, router_core::ports::QueueError> {
        self.inner.depth().await
    }
    async fn delete_batch(
        &self,
        handles: &[String],
    ) -> Vec<Result<(), router_core::ports::QueueError>> {
        self.deleted.lock().unwrap().push(handles.len());
        self.inner.delete_batch(handles).await
    }
    async fn change_visibility_batch(
        &self,
        entries: &[(String, Duration)],
    ) -> Vec<Result<(), router_core::ports::QueueError>> {
        self.inner.change_visibility_batch(entries).await
    }
}

struct Counts(AtomicUsize);

impl MessageHandler for Counts {
    async fn handle(&self, msgs: Vec<ReceivedMessage>) -> Vec<String> {
        self.0.fetch_add(msgs.len(), Ordering::SeqCst);
        Vec::new()
    }
}

/// Runs a runner (16 in flight) with a counting handler until it has handled `want`
/// messages (or PATIENCE passed), then stops it and waits for it; returns the count.
async fn run_until_handled(queue: Arc<CountsReceives>, per_receive: usize, want: usize) -> usize {
    let handler = Arc::new(Counts(AtomicUsize::new(0)));
    let (stop_tx, runner) = start(
        queue,
        handler.clone(),
        16,
        per_receive,
        Duration::from_secs(30),
    );
    let deadline = std::time::Instant::now() + router_core::testing::PATIENCE;
    while handler.0.load(Ordering::SeqCst) < want && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    stop_tx.send(true).unwrap();
    runner.await.unwrap();
    handler.0.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_polls_at_most_per_receive_messages_a_call() {
    for (per_receive, most) in [(1, 1), (MAX_BATCH, MAX_BATCH), (0, 1), (99, MAX_BATCH)] {
        let dir = tempfile::tempdir().unwrap();
        let (inner, _dlq) = embedded_queues(dir.path(), Duration::from_secs(30), 10).unwrap();
        let batch: Vec<_> = (0..10).map(|i| message(&i.to_string())).collect();
        inner.send_batch(&batch).await.unwrap();
        let queue = Arc::new(CountsReceives {
            inner,
            asked: Default::default(),
            deleted: Default::default(),
        });
        assert_eq!(run_until_handled(queue.clone(), per_receive, 10).await, 10);
        let asked = queue.asked.lock().unwrap().clone();
        assert_eq!(
            asked.iter().max(),
            Some(&most),
            "per_receive {per_receive}: {asked:?}"
        );
    }
}

/// Finished messages are deleted by batches, and all of them before `run` returns.
#[tokio::test]
async fn finished_messages_are_deleted_by_batches_before_the_runner_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (inner, _dlq) = embedded_queues(dir.path(), Duration::from_secs(30), 10).unwrap();
    for chunk in 0..4 {
        let batch: Vec<_> = (0..10).map(|i| message(&format!("{chunk}-{i}"))).collect();
        inner.send_batch(&batch).await.unwrap();
    }
    let queue = Arc::new(CountsReceives {
        inner: inner.clone(),
        asked: Default::default(),
        deleted: Default::default(),
    });
    // Stops at once: the runner still deletes every finished message before it returns.
    assert_eq!(run_until_handled(queue.clone(), MAX_BATCH, 40).await, 40);
    let depth = inner.depth().await.unwrap();
    assert_eq!((depth.visible, depth.in_flight), (0, 0), "all deleted");
    let deleted = queue.deleted.lock().unwrap().clone();
    assert_eq!(deleted.iter().sum::<usize>(), 40, "{deleted:?}");
    assert!(
        deleted.iter().all(|n| *n <= MAX_BATCH),
        "at most a batch a call: {deleted:?}"
    );
    assert!(
        deleted.len() <= 8,
        "deleted by batches, not one call per message: {deleted:?}"
    );
}
