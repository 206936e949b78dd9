//! Ordered routes on the FIFO queue: Lambda's partial-batch rule per message group.

use crate::support::*;
use router_core::domain::DeliveryJob;
use std::time::Duration;

fn ordered_routes(target: &TestServer) -> String {
    one_route(
        &target.url("/timeline"),
        "ordering = \"session\"\nretry = { schedule = [\"7s\"], max_age = \"1h\" }",
    )
}

fn session_job(event_id: &str, session: &str) -> DeliveryJob {
    let mut j = job(event_id, ROUTE);
    j.event.session_id = Some(session.to_owned());
    j
}

fn ids_at(target: &TestServer) -> Vec<String> {
    target
        .requests()
        .iter()
        .map(|r| r.header("webhook-id").unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn at_the_first_failure_of_a_group_the_rest_of_it_waits_and_other_groups_go_on() {
    let (a1, a2, b1) = (
        session_job("evt_a1", "s-a"),
        session_job("evt_a2", "s-a"),
        session_job("evt_b1", "s-b"),
    );
    // a1 fails; everything else succeeds.
    let failing = a1.delivery_id.clone();
    let target = TestServer::start(move |r, _| {
        if r.header("webhook-id") == Some(failing.as_str()) {
            Canned::status(503)
        } else {
            Canned::status(200)
        }
    })
    .await;
    let h = Harness::new(&ordered_routes(&target));
    let failed = h
        .run(vec![
            ordered_message(&a1, 1),
            ordered_message(&a2, 1),
            ordered_message(&b1, 1),
        ])
        .await;
    assert_eq!(
        failed,
        ["msg-evt_a1", "msg-evt_a2"],
        "a2 is reported failed too"
    );
    let mut at = ids_at(&target);
    at.sort();
    let mut want = vec![a1.delivery_id.clone(), b1.delivery_id.clone()];
    want.sort();
    assert_eq!(at, want, "a2 was not attempted");
    // a1 waits out its retry delay; a2 is put back (no attempt) visible at once, but the
    // FIFO queue hands it out only after a1 (in flight for its delay) is settled.
    assert_eq!(
        h.ordered_queue.visibility_changes(),
        [("rh-evt_a1-1".to_owned(), Duration::from_secs(7))]
    );
    assert_eq!(
        h.ordered_queue.released(),
        [("rh-evt_a2-1".to_owned(), Duration::ZERO)]
    );
    assert!(
        h.queue.visibility_changes().is_empty(),
        "nothing on the standard queue"
    );
    // Holding back is not an attempt: only a1 counts as retried.
    let retried: u64 = h
        .metrics
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|d| d["Retried"].as_u64())
        .sum();
    assert_eq!(retried, 1);
}

#[tokio::test]
async fn a_dead_lettered_message_lets_the_next_of_its_group_go_once_the_dlq_took_it() {
    let target = TestServer::scripted(vec![Canned::status(404), Canned::status(200)]).await;
    let h = Harness::new(&ordered_routes(&target));
    let (a1, a2) = (session_job("evt_a1", "s-a"), session_job("evt_a2", "s-a"));
    let (m1, m2) = (ordered_message(&a1, 1), ordered_message(&a2, 1));
    // The dead letter ends the group's turn in this batch: the next one goes back at once.
    let failed = h.run(vec![m1.clone(), m2.clone()]).await;
    assert_eq!(failed, std::slice::from_ref(&m2.message_id));
    assert_eq!(ids_at(&target), std::slice::from_ref(&a1.delivery_id));
    assert!(
        h.ordered_queue
            .released()
            .contains(&(m2.receipt_handle.clone(), Duration::ZERO))
    );
    // The dead letter went to the FIFO DLQ, in a group of its own.
    let dead = h.ordered_dlq.sent();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].group.as_deref(), Some("msg-evt_a1"));
    assert_eq!(dead[0].dedup_id.as_deref(), Some("msg-evt_a1"));
    assert!(h.dlq.sent().is_empty());
    // The next receive holds only what is left: it goes.
    assert!(h.run(vec![m2]).await.is_empty());
    assert_eq!(
        ids_at(&target),
        [a1.delivery_id.clone(), a2.delivery_id.clone()]
    );
}

#[tokio::test]
async fn a_dead_letter_the_dlq_refused_stays_the_head_of_its_group() {
    let target = TestServer::scripted(vec![Canned::status(404)]).await;
    let h = Harness::new(&ordered_routes(&target));
    let (a1, a2) = (session_job("evt_a1", "s-a"), session_job("evt_a2", "s-a"));
    let (m1, m2) = (ordered_message(&a1, 1), ordered_message(&a2, 1));
    h.ordered_dlq.then(SendBehaviour::Unavailable);
    let failed = h.run(vec![m1.clone(), m2.clone()]).await;
    // Neither is deleted; the later one was never attempted.
    assert_eq!(failed, [m1.message_id.clone(), m2.message_id.clone()]);
    assert_eq!(ids_at(&target), std::slice::from_ref(&a1.delivery_id));
    assert!(h.ordered_dlq.sent().is_empty());
}

#[tokio::test]
async fn a_groups_messages_go_one_after_another_in_order() {
    let target =
        TestServer::scripted(vec![Canned::status(200).after(Duration::from_millis(50))]).await;
    let h = Harness::new(&ordered_routes(&target));
    let jobs: Vec<_> = (0..5)
        .map(|i| session_job(&format!("evt_{i}"), "s-a"))
        .collect();
    let failed = h
        .run(jobs.iter().map(|j| ordered_message(j, 1)).collect())
        .await;
    assert!(failed.is_empty());
    let want: Vec<String> = jobs.iter().map(|j| j.delivery_id.clone()).collect();
    assert_eq!(ids_at(&target), want);
}
