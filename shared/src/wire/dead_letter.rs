//! A dead letter (CONTRACT section 5): the message's body unchanged, its attributes plus
//! `failure`, `attempts`, `last_status` (when HTTP) and `last_error`. Written by deliver,
//! read by `routerctl dlq`.

pub use crate::retry::{DeadLetter, Failure};

use crate::ports::{OutgoingMessage, ReceivedMessage, limits::MAX_ATTRIBUTES};
use crate::text::one_line;
use crate::wire::queue::{ATTR_DELIVERY_ID, ATTR_ROUTE};
use std::collections::BTreeMap;
use std::time::Duration;

pub const ATTR_FAILURE: &str = "failure";
pub const ATTR_ATTEMPTS: &str = "attempts";
pub const ATTR_LAST_STATUS: &str = "last_status";
pub const ATTR_LAST_ERROR: &str = "last_error";
/// `last_error` is cut to this many characters.
pub const MAX_ERROR_CHARS: usize = 256;
/// What `routerctl dlq` shows for a message the queue itself moved (no `failure`).
pub const REDRIVEN_BY_QUEUE: &str = "redriven_by_queue";

/// The DLQ copy of a received message: the same body, the attributes of [`attributes`].
/// From a FIFO queue it goes to the FIFO DLQ in a group of its own (its message id, unique
/// per send: dead letters need no order among themselves, and every one of them can then
/// be listed at once), with that id as its deduplication id too (so a message
/// dead-lettered again after a redrive is never dropped).
pub fn message(received: &ReceivedMessage, d: &DeadLetter) -> OutgoingMessage {
    let own = received.group.as_ref().map(|_| received.message_id.clone());
    OutgoingMessage {
        body: received.body.clone(),
        attributes: attributes(&received.attributes, d),
        delay: Duration::ZERO,
        group: own.clone(),
        dedup_id: own,
        group_cap: None,
    }
}

/// The original attributes plus ours; stale ones from an earlier trip through the DLQ are
/// replaced. SQS allows ten attributes: extra originals (never `route` or `delivery_id`)
/// give way. `last_error` is one line of at most [`MAX_ERROR_CHARS`] characters, left out
/// when empty (SQS refuses empty values).
pub fn attributes(original: &BTreeMap<String, String>, d: &DeadLetter) -> BTreeMap<String, String> {
    const OURS: [&str; 4] = [
        ATTR_FAILURE,
        ATTR_ATTEMPTS,
        ATTR_LAST_STATUS,
        ATTR_LAST_ERROR,
    ];
    const KEEP: [&str; 2] = [ATTR_ROUTE, ATTR_DELIVERY_ID];
    let mut attrs: BTreeMap<String, String> = original
        .iter()
        .filter(|(k, _)| !OURS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut ours = vec![
        (ATTR_FAILURE, d.failure.as_str().to_owned()),
        (ATTR_ATTEMPTS, d.attempts.to_string()),
    ];
    if let Some(status) = d.last_status {
        ours.push((ATTR_LAST_STATUS, status.to_string()));
    }
    let error = one_line(&d.last_error, MAX_ERROR_CHARS);
    if !error.is_empty() {
        ours.push((ATTR_LAST_ERROR, error));
    }
    while attrs.len() + ours.len() > MAX_ATTRIBUTES {
        let Some(extra) = attrs.keys().find(|k| !KEEP.contains(&k.as_str())).cloned() else {
            break;
        };
        attrs.remove(&extra);
    }
    attrs.extend(ours.into_iter().map(|(k, v)| (k.to_owned(), v)));
    attrs
}

/// What a dead letter's attributes say, as `routerctl dlq` reads them back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recorded {
    pub route: Option<String>,
    pub delivery_id: Option<String>,
    /// `None`: the queue moved it itself (a crash loop), see [`REDRIVEN_BY_QUEUE`].
    pub failure: Option<String>,
    pub attempts: Option<u32>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
}

/// Reads the attributes [`attributes`] wrote (any of them may be missing).
pub fn read(attrs: &BTreeMap<String, String>) -> Recorded {
    let get = |k: &str| attrs.get(k).cloned();
    Recorded {
        route: get(ATTR_ROUTE),
        delivery_id: get(ATTR_DELIVERY_ID),
        failure: get(ATTR_FAILURE),
        attempts: get(ATTR_ATTEMPTS).and_then(|s| s.parse().ok()),
        last_status: get(ATTR_LAST_STATUS).and_then(|s| s.parse().ok()),
        last_error: get(ATTR_LAST_ERROR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dl(error: &str, status: Option<u16>) -> DeadLetter {
        DeadLetter {
            failure: Failure::HttpStatus,
            attempts: 2,
            last_status: status,
            last_error: error.to_owned(),
        }
    }

    #[test]
    fn dead_letter_attributes_keep_the_originals_and_add_the_reason() {
        let original = BTreeMap::from([
            ("route".to_owned(), "crm".to_owned()),
            ("delivery_id".to_owned(), "dlv_1".to_owned()),
            ("last_status".to_owned(), "503".to_owned()),
        ]);
        let a = attributes(&original, &dl("answered 404 Not Found", Some(404)));
        assert_eq!(a["route"], "crm");
        assert_eq!(a["delivery_id"], "dlv_1");
        assert_eq!(a["failure"], "http_status");
        assert_eq!(a["attempts"], "2");
        assert_eq!(a["last_status"], "404");
        assert_eq!(a["last_error"], "answered 404 Not Found");
        let r = read(&a);
        assert_eq!(
            (r.failure.as_deref(), r.attempts, r.last_status),
            (Some("http_status"), Some(2), Some(404))
        );

        // No HTTP status this time: a stale one from an earlier trip does not survive.
        let a = attributes(&original, &dl("no answer within 15 s", None));
        assert!(!a.contains_key("last_status"));
    }

    #[test]
    fn last_error_is_short_and_single_line() {
        let long = format!("line one\nline two {}", "x".repeat(1000));
        let a = attributes(&BTreeMap::new(), &dl(&long, None));
        assert_eq!(a["last_error"].chars().count(), MAX_ERROR_CHARS);
        assert!(a["last_error"].starts_with("line one line two"));
        let a = attributes(&BTreeMap::new(), &dl(" \n", None));
        assert!(!a.contains_key("last_error"), "SQS refuses empty values");
        let multibyte = "ü".repeat(300);
        let a = attributes(&BTreeMap::new(), &dl(&multibyte, None));
        assert_eq!(a["last_error"].chars().count(), MAX_ERROR_CHARS);
        let a = attributes(&BTreeMap::new(), &dl("bad \u{FFFF} char", None));
        assert_eq!(a["last_error"], "bad   char");
    }

    #[test]
    fn at_most_ten_attributes_and_route_and_delivery_id_always_stay() {
        let mut original: BTreeMap<String, String> =
            (0..9).map(|i| (format!("a{i}"), i.to_string())).collect();
        original.insert("route".into(), "crm".into());
        original.insert("delivery_id".into(), "dlv_1".into());
        let a = attributes(&original, &dl("e", Some(500)));
        assert_eq!(a.len(), 10);
        for k in [
            "route",
            "delivery_id",
            "failure",
            "attempts",
            "last_status",
            "last_error",
        ] {
            assert!(a.contains_key(k), "{k}");
        }
    }

    #[test]
    fn failures_round_trip_through_their_names() {
        for f in Failure::ALL {
            assert_eq!(Failure::parse(f.as_str()), Some(f));
        }
        assert_eq!(Failure::parse("nope"), None);
    }
}
