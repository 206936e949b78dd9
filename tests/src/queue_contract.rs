//! The queue contract: what SQS does and the embedded queue must do too. Every case runs
//! against both adapters (see `tests/queue_contract.rs`) with the same assertions.
//! The queue under test has a 30 s default visibility and redrives at 3 receives.
//!
//! Timing is asserted only as lower bounds ("hidden until", "not before its delay"), which
//! a loaded machine cannot break; "still hidden" is checked on a hiding far longer than
//! any stall. Waits end at [`router_core::testing::PATIENCE`].

use router_core::ports::{OutgoingMessage, Queue, QueueError, ReceivedMessage, Released};
use router_core::wire::queue::{attempt, first_sent_ms};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const VISIBILITY: Duration = Duration::from_secs(30);
pub const MAX_RECEIVE_COUNT: u32 = 3;
const NOW: Duration = Duration::ZERO;
const SECOND: Duration = Duration::from_secs(1);

fn msg(i: usize, delay: Duration) -> OutgoingMessage {
    let mut attributes = BTreeMap::new();
    attributes.insert("route".to_owned(), format!("route-{i}"));
    attributes.insert("delivery_id".to_owned(), format!("dlv_{i}"));
    OutgoingMessage {
        body: format!("{{\"n\":{i}}}"),
        attributes,
        delay,
        ..OutgoingMessage::default()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

async fn send(q: &dyn Queue, range: std::ops::Range<usize>) {
    let batch: Vec<_> = range.map(|i| msg(i, Duration::ZERO)).collect();
    let failed = q.send_batch(&batch).await.expect("send a batch");
    assert!(failed.is_empty(), "no entry fails: {failed:?}");
}

/// A hiding no stall of a loaded machine outlasts.
const LONG: Duration = Duration::from_secs(120);

/// Receives until `n` messages arrived (SQS may hand out fewer per call), or PATIENCE
/// passed.
async fn receive_n(q: &dyn Queue, n: usize, visibility: Option<Duration>) -> Vec<ReceivedMessage> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + router_core::testing::PATIENCE;
    while got.len() < n && tokio::time::Instant::now() < deadline {
        got.extend(
            q.receive(10.min(n - got.len()), SECOND, visibility)
                .await
                .expect("receive"),
        );
    }
    assert_eq!(got.len(), n, "received {} of {n} messages", got.len());
    got
}

async fn receive_none(q: &dyn Queue) {
    let got = q.receive(10, NOW, None).await.expect("receive");
    assert!(got.is_empty(), "expected no visible message, got {got:?}");
}

pub async fn messages_round_trip_with_attributes(q: &dyn Queue, _dlq: &dyn Queue) {
    let before = now_ms();
    send(q, 0..3).await;
    let mut got = receive_n(q, 3, None).await;
    got.sort_by(|a, b| a.body.cmp(&b.body));
    for (i, m) in got.iter().enumerate() {
        let sent = msg(i, NOW);
        assert_eq!(m.body, sent.body);
        assert_eq!(m.attributes, sent.attributes);
        assert_eq!(m.receive_count, 1);
        assert!(
            (before - 2000..=now_ms() + 2000).contains(&m.sent_at_ms),
            "sent_at {}",
            m.sent_at_ms
        );
        assert!(!m.receipt_handle.is_empty());
    }
    let mut ids: Vec<_> = got.iter().map(|m| m.message_id.clone()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3, "message ids are distinct");
}

pub async fn a_received_message_is_hidden_until_its_visibility_expires(
    q: &dyn Queue,
    _dlq: &dyn Queue,
) {
    send(q, 0..2).await;
    // Hidden for long: not handed out again meanwhile.
    let long = receive_n(q, 1, Some(LONG)).await.remove(0);
    // Hidden for 1 s: back, and not before that second was over.
    let hidden = tokio::time::Instant::now();
    let first = receive_n(q, 1, Some(SECOND)).await.remove(0);
    let again = receive_n(q, 1, None).await.remove(0);
    assert!(
        hidden.elapsed() >= SECOND,
        "back after {:?}",
        hidden.elapsed()
    );
    assert_eq!(again.message_id, first.message_id);
    assert_ne!(again.message_id, long.message_id, "the long hiding holds");
    assert_eq!(again.receive_count, 2, "the receive count counts up");
}

pub async fn visibility_zero_releases_a_message_at_once(q: &dyn Queue, _dlq: &dyn Queue) {
    send(q, 0..1).await;
    let first = receive_n(q, 1, None).await.remove(0);
    receive_none(q).await;
    q.change_visibility(&first.receipt_handle, NOW)
        .await
        .expect("change visibility");
    let again = receive_n(q, 1, None).await.remove(0);
    assert_eq!(
        (again.message_id, again.receive_count),
        (first.message_id, 2)
    );
}

pub async fn change_visibility_extends_the_hiding(q: &dyn Queue, _dlq: &dyn Queue) {
    send(q, 0..1).await;
    let first = receive_n(q, 1, Some(SECOND)).await.remove(0);
    q.change_visibility(&first.receipt_handle, LONG)
        .await
        .expect("change visibility");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    receive_none(q).await;
}

pub async fn a_deleted_message_is_gone_for_good(q: &dyn Queue, _dlq: &dyn Queue) {
    send(q, 0..1).await;
    let m = receive_n(q, 1, Some(SECOND)).await.remove(0);
    q.delete(&m.receipt_handle).await.expect("delete");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    receive_none(q).await;
    let depth = q.depth().await.expect("depth");
    assert_eq!((depth.visible, depth.in_flight), (0, 0));
    let err = q
        .change_visibility(&m.receipt_handle, NOW)
        .await
        .unwrap_err();
    assert!(matches!(err, QueueError::ReceiptInvalid(_)), "{err:?}");
}

pub async fn a_message_moves_to_the_dead_letter_queue_after_max_receives(
    q: &dyn Queue,
    dlq: &dyn Queue,
) {
    send(q, 0..1).await;
    for attempt in 1..=MAX_RECEIVE_COUNT {
        let m = receive_n(q, 1, Some(NOW)).await.remove(0);
        assert_eq!(m.receive_count, attempt);
    }
    // The next receive finds it over the limit and redrives it.
    let more = q.receive(10, SECOND, None).await.expect("receive");
    assert!(
        more.is_empty(),
        "over the limit it is not handed out again: {more:?}"
    );
    let dead = receive_n(dlq, 1, None).await.remove(0);
    assert_eq!(dead.body, msg(0, NOW).body);
    assert_eq!(
        dead.attributes,
        msg(0, NOW).attributes,
        "attributes survive the redrive"
    );
}

pub async fn depth_counts_visible_and_in_flight(q: &dyn Queue, _dlq: &dyn Queue) {
    send(q, 0..3).await;
    receive_n(q, 1, None).await;
    let depth = q.depth().await.expect("depth");
    assert_eq!((depth.visible, depth.in_flight), (2, 1));
}

pub async fn a_delayed_message_appears_after_its_delay(q: &dyn Queue, _dlq: &dyn Queue) {
    // One delayed for long (not visible, counted in flight), one for a second (visible,
    // and not before that second was over).
    let sent = tokio::time::Instant::now();
    q.send_batch(&[msg(0, Duration::from_secs(900)), msg(1, SECOND)])
        .await
        .expect("send");
    let got = receive_n(q, 1, None).await.remove(0);
    assert!(
        sent.elapsed() >= SECOND,
        "visible after {:?}",
        sent.elapsed()
    );
    assert_eq!(got.body, msg(1, NOW).body);
    assert_eq!(
        q.depth().await.expect("depth").in_flight,
        2,
        "a delayed message is not visible"
    );
    receive_none(q).await;
}

pub async fn batches_hold_at_most_ten(q: &dyn Queue, _dlq: &dyn Queue) {
    let eleven: Vec<_> = (0..11).map(|i| msg(i, NOW)).collect();
    assert!(matches!(
        q.send_batch(&eleven).await,
        Err(QueueError::BadRequest(_))
    ));
    assert!(matches!(
        q.send_batch(&[]).await,
        Err(QueueError::BadRequest(_))
    ));
    assert!(matches!(
        q.receive(11, NOW, None).await,
        Err(QueueError::BadRequest(_))
    ));
    send(q, 0..10).await;
    let got = receive_n(q, 10, None).await;
    assert_eq!(got.len(), 10);
}

pub async fn batch_visibility_and_delete_report_each_entry(q: &dyn Queue, _dlq: &dyn Queue) {
    send(q, 0..2).await;
    let got = receive_n(q, 2, None).await;
    let entries: Vec<_> = got
        .iter()
        .map(|m| (m.receipt_handle.clone(), NOW))
        .collect();
    let results = q.change_visibility_batch(&entries).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let again = receive_n(q, 2, None).await;
    assert!(again.iter().all(|m| m.receive_count == 2));
    let handles: Vec<_> = again.iter().map(|m| m.receipt_handle.clone()).collect();
    let results = q.delete_batch(&handles).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let depth = q.depth().await.expect("depth");
    assert_eq!((depth.visible, depth.in_flight), (0, 0));
    let results = q
        .change_visibility_batch(&[(handles[0].clone(), NOW)])
        .await;
    assert!(
        matches!(results[0], Err(QueueError::ReceiptInvalid(_))),
        "{results:?}"
    );
}

pub async fn a_long_poll_returns_when_a_message_arrives(q: &dyn Queue, _dlq: &dyn Queue) {
    // A poll that would wait 20 s (SQS's longest) returns with the message sent meanwhile;
    // far sooner than 20 s on any machine that runs at all.
    let started = tokio::time::Instant::now();
    let (got, ()) = tokio::join!(q.receive(1, Duration::from_secs(20), None), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        send(q, 0..1).await;
    });
    assert_eq!(got.expect("receive").len(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(19),
        "returned before the wait ran out: {:?}",
        started.elapsed()
    );
}

/// A message put back without counting its receive keeps its attempt number and its age:
/// in place (embedded), or as a copy that carries them (SQS standard; the host deletes the
/// original). It is back after its delay, not before.
pub async fn a_released_message_keeps_its_attempt_number(q: &dyn Queue, _dlq: &dyn Queue) {
    send(q, 0..1).await;
    let first = receive_n(q, 1, None).await.remove(0);
    q.change_visibility(&first.receipt_handle, NOW)
        .await
        .expect("change visibility");
    let second = receive_n(q, 1, None).await.remove(0);
    assert_eq!(attempt(&second), 2);
    let put_back = tokio::time::Instant::now();
    let released = q.release_batch(&[(&second, SECOND)]).await;
    let how = released
        .into_iter()
        .next()
        .expect("one result")
        .expect("released");
    assert_ne!(how, Released::Counted, "a standard queue uncounts");
    if how == Released::Copied {
        q.delete(&second.receipt_handle)
            .await
            .expect("delete the original");
    }
    let back = receive_n(q, 1, None).await.remove(0);
    assert!(
        put_back.elapsed() >= SECOND,
        "back after {:?}",
        put_back.elapsed()
    );
    assert_eq!(back.body, first.body);
    assert_eq!(back.attributes["route"], "route-0");
    assert_eq!(attempt(&back), 2, "the release was not an attempt: {how:?}");
    assert_eq!(first_sent_ms(&back), first.sent_at_ms, "its age counts on");
    q.delete(&back.receipt_handle).await.expect("delete");
    let depth = q.depth().await.expect("depth");
    assert_eq!(
        (depth.visible, depth.in_flight),
        (0, 0),
        "nothing left behind"
    );
}

/// On a FIFO queue a released message keeps its place at the head of its group (uncounted
/// on the embedded queue; SQS FIFO can only change its visibility, so there it counts).
pub async fn fifo_a_released_message_keeps_its_place(q: &dyn Queue, _dlq: &dyn Queue) {
    let batch = [grouped(0, "a"), grouped(1, "a")];
    assert!(q.send_batch(&batch).await.expect("send").is_empty());
    let head = receive_n(q, 1, None).await.remove(0);
    assert_eq!(n_of(&head), 0);
    let put_back = tokio::time::Instant::now();
    let how = q
        .release_batch(&[(&head, SECOND)])
        .await
        .remove(0)
        .expect("released");
    assert_ne!(
        how,
        Released::Copied,
        "a FIFO message is never copied behind its group"
    );
    let again = receive_n(q, 1, None).await.remove(0);
    assert!(put_back.elapsed() >= SECOND);
    assert_eq!(n_of(&again), 0, "still the head of its group");
    let want = if how == Released::InPlace { 1 } else { 2 };
    assert_eq!(attempt(&again), want, "{how:?}");
    q.delete(&again.receipt_handle).await.expect("delete");
    assert_eq!(n_of(&receive_n(q, 1, None).await.remove(0)), 1);
}

fn with_body(body: String) -> OutgoingMessage {
    OutgoingMessage {
        body,
        ..msg(0, NOW)
    }
}

/// What SQS refuses is refused, as a permanent error, and nothing of the call is queued.
pub async fn content_sqs_refuses_is_refused_for_good(q: &dyn Queue, _dlq: &dyn Queue) {
    let limit = router_core::ports::MAX_MESSAGE_BYTES;
    let attrs = router_core::ports::limits::message_size(&msg(0, NOW)) - msg(0, NOW).body.len();
    let refused = [
        vec![with_body("bad \u{FFFF} char".into())],
        vec![with_body("bad \u{FFFE} char".into())],
        vec![with_body("bad \u{1} control".into())],
        vec![with_body(String::new())],
        // One byte over with its attributes.
        vec![with_body("x".repeat(limit - attrs + 1))],
        // Each fits, together they are over one call's limit.
        vec![
            with_body("y".repeat(limit / 2)),
            with_body("z".repeat(limit / 2)),
        ],
        // A fine message beside a bad one: the whole call is refused.
        vec![msg(1, NOW), with_body("bad \u{FFFF}".into())],
    ];
    for batch in refused {
        match q.send_batch(&batch).await {
            Err(e) => assert!(e.is_permanent(), "{e}"),
            Ok(failed) => panic!("accepted content SQS refuses ({failed:?})"),
        }
    }
    // Exactly at the limit, and the characters SQS allows, go through.
    let fits = with_body("x".repeat(limit - attrs));
    let allowed = with_body("tab\t nl\n cr\r é 😀 \u{FFFD} \u{E000} \u{10FFFF}".into());
    assert!(
        q.send_batch(std::slice::from_ref(&allowed))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        q.send_batch(std::slice::from_ref(&fits))
            .await
            .unwrap()
            .is_empty()
    );
    let mut got = receive_n(q, 2, None).await;
    got.sort_by_key(|m| m.body.len());
    assert_eq!(got[0].body, allowed.body);
    assert_eq!(got[1].body.len(), fits.body.len());
}

// ------------------------------------------------------------------ FIFO (ordered routes)

fn grouped(i: usize, group: &str) -> OutgoingMessage {
    OutgoingMessage {
        group: Some(group.to_owned()),
        dedup_id: Some(format!("d-{group}-{i}")),
        ..msg(i, NOW)
    }
}

fn n_of(m: &ReceivedMessage) -> usize {
    let v: serde_json::Value = serde_json::from_str(&m.body).expect("a test body");
    v["n"].as_u64().expect("n") as usize
}

/// A group's messages come in the order they were sent, and each carries its group.
pub async fn fifo_groups_come_in_send_order(q: &dyn Queue, _dlq: &dyn Queue) {
    let batch = [
        grouped(0, "a"),
        grouped(1, "b"),
        grouped(2, "a"),
        grouped(3, "a"),
        grouped(4, "b"),
    ];
    assert!(q.send_batch(&batch).await.expect("send").is_empty());
    let mut seen: Vec<(String, usize)> = Vec::new();
    let deadline = tokio::time::Instant::now() + router_core::testing::PATIENCE;
    while seen.len() < 5 && tokio::time::Instant::now() < deadline {
        for m in q.receive(10, SECOND, None).await.expect("receive") {
            seen.push((m.group.clone().expect("a group"), n_of(&m)));
            q.delete(&m.receipt_handle).await.expect("delete");
        }
    }
    let order = |g: &str| -> Vec<usize> {
        seen.iter()
            .filter(|(k, _)| k == g)
            .map(|(_, n)| *n)
            .collect()
    };
    assert_eq!(order("a"), [0, 2, 3]);
    assert_eq!(order("b"), [1, 4]);
}

/// While a group's message is in flight (or waiting out a retry delay), no later message
/// of the group is handed out; other groups are not held back; the held message comes
/// back first.
pub async fn fifo_an_unfinished_message_holds_back_only_its_group(q: &dyn Queue, _dlq: &dyn Queue) {
    let batch = [grouped(0, "a"), grouped(1, "a")];
    assert!(q.send_batch(&batch).await.expect("send").is_empty());
    let first = receive_n(q, 1, None).await.remove(0);
    assert_eq!(n_of(&first), 0);
    // In flight: the group is held.
    receive_none(q).await;
    // Another group goes on meanwhile.
    assert!(
        q.send_batch(&[grouped(2, "c")])
            .await
            .expect("send")
            .is_empty()
    );
    let other = receive_n(q, 1, None).await.remove(0);
    assert_eq!(n_of(&other), 2);
    q.delete(&other.receipt_handle).await.expect("delete");
    // A retry delay: the group stays held until it is over, then the same message comes
    // back first (never the one behind it).
    let parked = tokio::time::Instant::now();
    q.change_visibility(&first.receipt_handle, 2 * SECOND)
        .await
        .expect("park it");
    let again = receive_n(q, 1, None).await.remove(0);
    assert!(
        parked.elapsed() >= 2 * SECOND,
        "back after {:?}",
        parked.elapsed()
    );
    assert_eq!((n_of(&again), again.receive_count), (0, 2));
    q.delete(&again.receipt_handle).await.expect("delete");
    let next = receive_n(q, 1, None).await.remove(0);
    assert_eq!(n_of(&next), 1);
}

/// A message sent again with the same deduplication id within 5 minutes is accepted and
/// dropped; another id is not.
pub async fn fifo_a_repeated_deduplication_id_is_dropped(q: &dyn Queue, _dlq: &dyn Queue) {
    let first = grouped(0, "a");
    let again = OutgoingMessage {
        body: "{\"n\":9}".into(),
        ..first.clone()
    };
    assert!(
        q.send_batch(std::slice::from_ref(&first))
            .await
            .expect("send")
            .is_empty()
    );
    assert!(q.send_batch(&[again]).await.expect("send").is_empty());
    assert!(
        q.send_batch(&[grouped(1, "a")])
            .await
            .expect("send")
            .is_empty()
    );
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + router_core::testing::PATIENCE;
    while tokio::time::Instant::now() < deadline && got.len() < 3 {
        let batch = q.receive(10, SECOND, None).await.expect("receive");
        if batch.is_empty() && got.len() >= 2 {
            break;
        }
        for m in batch {
            got.push(n_of(&m));
            q.delete(&m.receipt_handle).await.expect("delete");
        }
    }
    assert_eq!(got, [0, 1], "the repeat was dropped");
}
