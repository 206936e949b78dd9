//! What SQS refuses, in one place: both queue adapters check a batch with [`check_send`]
//! before sending, so the embedded queue refuses exactly what SQS would, and a caller
//! learns it as [`QueueError::BadRequest`] (permanent) instead of an outage. [`chunks`]
//! splits any number of messages into calls SQS takes (by count and by size).

use super::{OutgoingMessage, QueueError};
use std::ops::Range;

/// SQS's limit for one batch call.
pub const MAX_BATCH: usize = 10;
/// SQS's limit for one message (body and attributes) and for one batch call's messages
/// together.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// SQS's limit on message attributes per message.
pub const MAX_ATTRIBUTES: usize = 10;
/// The attribute data type every attribute of ours has.
const STRING_TYPE: &str = "String";

/// Whether SQS takes `c` in a message body or attribute value:
/// `#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF`.
pub fn allowed_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// The first character of `s` SQS refuses, if any. Scans bytes: in UTF-8 a refused
/// character starts with a control byte (below 0x20, not tab, LF or CR) or with 0xEF
/// (U+FFFE and U+FFFF; surrogates cannot be in a `str`), and only from there are
/// characters decoded. Every trigger's messages pass here, so it must be cheap.
pub fn first_refused(s: &str) -> Option<char> {
    let start = s
        .bytes()
        .position(|b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0xEF)?;
    // A control byte or a lead byte is always at a character boundary.
    s[start..].chars().find(|c| !allowed_char(*c))
}

/// The size SQS counts for a message: the body, and each attribute's name, data type and
/// value, in UTF-8 bytes.
pub fn message_size(m: &OutgoingMessage) -> usize {
    m.body.len()
        + m.attributes
            .iter()
            .map(|(k, v)| k.len() + STRING_TYPE.len() + v.len())
            .sum::<usize>()
}

fn attribute_name_ok(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    (1..=256).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && !lower.starts_with("aws.")
        && !lower.starts_with("amazon.")
}

/// Why SQS would refuse this one message, if it would.
pub fn check_message(m: &OutgoingMessage) -> Result<(), String> {
    if m.body.is_empty() {
        return Err("the body is empty".to_owned());
    }
    if let Some(c) = first_refused(&m.body) {
        return Err(format!(
            "the body holds U+{:04X}, a character SQS refuses",
            u32::from(c)
        ));
    }
    if m.attributes.len() > MAX_ATTRIBUTES {
        return Err(format!(
            "{} attributes; SQS allows {MAX_ATTRIBUTES}",
            m.attributes.len()
        ));
    }
    for (k, v) in &m.attributes {
        if !attribute_name_ok(k) {
            return Err(format!("`{k}` is not a valid attribute name"));
        }
        if v.is_empty() {
            return Err(format!("attribute `{k}` is empty"));
        }
        if let Some(c) = first_refused(v) {
            return Err(format!(
                "attribute `{k}` holds U+{:04X}, a character SQS refuses",
                u32::from(c)
            ));
        }
    }
    for (what, v) in [
        ("message group", &m.group),
        ("deduplication id", &m.dedup_id),
    ] {
        if let Some(v) = v
            && (v.is_empty() || v.len() > 128 || !v.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(format!(
                "the {what} must be 1 to 128 visible ASCII characters"
            ));
        }
    }
    if m.group.is_some() && !m.delay.is_zero() {
        return Err("a FIFO message cannot be delayed".to_owned());
    }
    let size = message_size(m);
    if size > MAX_MESSAGE_BYTES {
        return Err(format!(
            "the message is {size} bytes with its attributes; SQS takes at most {MAX_MESSAGE_BYTES}"
        ));
    }
    Ok(())
}

/// Checks a batch as SQS would before anything is sent: 1 to [`MAX_BATCH`] messages,
/// each one acceptable, at most [`MAX_MESSAGE_BYTES`] together.
pub fn check_send(messages: &[OutgoingMessage]) -> Result<(), QueueError> {
    check_count(messages.len())?;
    for (i, m) in messages.iter().enumerate() {
        check_message(m).map_err(|why| QueueError::BadRequest(format!("message {i}: {why}")))?;
    }
    let total: usize = messages.iter().map(message_size).sum();
    if total > MAX_MESSAGE_BYTES {
        return Err(QueueError::BadRequest(format!(
            "the batch is {total} bytes; SQS takes at most {MAX_MESSAGE_BYTES} in one call"
        )));
    }
    Ok(())
}

/// A batch call holds 1 to [`MAX_BATCH`] entries.
pub fn check_count(n: usize) -> Result<(), QueueError> {
    if n == 0 || n > MAX_BATCH {
        return Err(QueueError::BadRequest(format!(
            "a batch holds 1 to {MAX_BATCH} entries, got {n}"
        )));
    }
    Ok(())
}

/// Splits messages into consecutive calls of at most [`MAX_BATCH`] entries and
/// [`MAX_MESSAGE_BYTES`] together. A message too large on its own gets a call of its own
/// (which [`check_send`] then refuses), so it never takes others down with it.
pub fn chunks(messages: &[OutgoingMessage]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, m) in messages.iter().enumerate() {
        let s = message_size(m);
        if i > start && (i - start == MAX_BATCH || size + s > MAX_MESSAGE_BYTES) {
            out.push(start..i);
            (start, size) = (i, 0);
        }
        size += s;
    }
    if start < messages.len() {
        out.push(start..messages.len());
    }
    out
}

/// `json` with every character SQS refuses written as a `\uXXXX` escape. Only valid for
/// JSON text from serde_json, where such characters can only stand inside strings (it
/// already escapes the C0 controls; U+FFFE and U+FFFF it leaves as they are).
pub fn escape_json_for_queue(json: String) -> String {
    if first_refused(&json).is_none() {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 12);
    for c in json.chars() {
        if allowed_char(c) {
            out.push(c);
        } else {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        }
    }
    out
}

/// How deep an event's `data` (and a target's answer kept for a reply) may nest, `data`
/// itself being level 1. A queue message wraps it in a few more levels (the job, the event,
/// a reply's answer), and the deliver side parses messages with serde_json's limit of 128:
/// at 64 every message the trigger or the deliver side writes parses again, so what the
/// trigger accepts can always be delivered and redriven.
pub const MAX_DATA_DEPTH: usize = 64;

/// How deeply `v` nests (a scalar is 0, `{}` or `[]` 1, `{"a": []}` 2), counted without
/// recursion and stopping once past `limit` (a deep value costs no more than `limit` levels
/// of work per branch).
pub fn json_depth(v: &serde_json::Value, limit: usize) -> usize {
    use serde_json::Value;
    let mut deepest = 0;
    let mut stack: Vec<(&Value, usize)> = vec![(v, 0)];
    while let Some((v, above)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(a) => Box::new(a.iter()),
            Value::Object(o) => Box::new(o.values()),
            _ => continue,
        };
        let level = above + 1;
        deepest = deepest.max(level);
        if deepest > limit {
            return deepest;
        }
        stack.extend(children.map(|c| (c, level)));
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    #[test]
    fn the_byte_scan_finds_what_a_character_scan_finds() {
        let slow = |s: &str| s.chars().find(|c| !allowed_char(*c));
        let mut cases: Vec<String> = [
            "",
            "plain",
            "tab\there\nline\rcr",
            "\u{0}",
            "a\u{1f}b",
            "\u{7f}del",
            "\u{FFFE}",
            "x\u{FFFF}",
            "\u{FFFD}ok",
            "\u{F000}\u{FEFF}\u{FFFD}",
            "日本語\u{8}",
            "\u{10FFFF}\u{1F600}",
            "\u{E000}\u{D7FF}",
            "é\u{EFBF}\u{FFFF}",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        // Every character from U+0000 to U+1FFFF after an allowed prefix.
        cases.extend(
            (0..0x2_0000u32)
                .filter_map(char::from_u32)
                .map(|c| format!("ok \u{FFFD}{c}")),
        );
        for case in &cases {
            assert_eq!(first_refused(case), slow(case), "{case:?}");
        }
    }

    fn m(body: &str) -> OutgoingMessage {
        OutgoingMessage {
            body: body.to_owned(),
            attributes: BTreeMap::from([("route".to_owned(), "crm".to_owned())]),
            delay: Duration::ZERO,
            ..OutgoingMessage::default()
        }
    }

    #[test]
    fn the_characters_sqs_refuses_are_refused() {
        for bad in ["\u{0}", "\u{8}", "\u{B}", "\u{1F}", "\u{FFFE}", "\u{FFFF}"] {
            assert!(check_message(&m(&format!("a{bad}b"))).is_err(), "{bad:?}");
        }
        for ok in [
            "\t\n\r",
            "é😀",
            "\u{FFFD}",
            "\u{E000}",
            "\u{10FFFF}",
            "\u{7F}",
        ] {
            assert!(check_message(&m(ok)).is_ok(), "{ok:?}");
        }
        let mut bad_attr = m("{}");
        bad_attr
            .attributes
            .insert("last_error".into(), "x\u{FFFF}".into());
        assert!(check_message(&bad_attr).is_err());
        assert!(check_message(&m("")).is_err());
    }

    #[test]
    fn sizes_count_attributes_and_batches_count_together() {
        let body = "x".repeat(MAX_MESSAGE_BYTES - "route".len() - 6 - "crm".len());
        assert!(check_message(&m(&body)).is_ok());
        assert!(check_message(&m(&format!("{body}x"))).is_err());
        let half = m(&"y".repeat(MAX_MESSAGE_BYTES / 2));
        assert!(check_send(std::slice::from_ref(&half)).is_ok());
        assert!(matches!(
            check_send(&[half.clone(), half.clone()]),
            Err(QueueError::BadRequest(_))
        ));
        assert!(check_send(&[]).is_err());
        assert!(check_send(&vec![m("{}"); 11]).is_err());
    }

    #[test]
    fn chunks_split_by_count_and_by_size() {
        let small = m("{}");
        assert_eq!(chunks(&vec![small.clone(); 25]), [0..10, 10..20, 20..25]);
        // Two halves (with their attributes) are more than one call takes.
        let half = m(&"z".repeat(MAX_MESSAGE_BYTES / 2));
        let msgs = vec![
            half.clone(),
            half.clone(),
            small.clone(),
            small.clone(),
            half,
        ];
        assert_eq!(chunks(&msgs), [0..1, 1..4, 4..5]);
        let huge = m(&"h".repeat(MAX_MESSAGE_BYTES + 1));
        assert_eq!(chunks(&[small.clone(), huge, small]), [0..1, 1..2, 2..3]);
        assert!(chunks(&[]).is_empty());
    }

    #[test]
    fn json_is_escaped_where_sqs_would_refuse_it() {
        let json =
            serde_json::to_string(&serde_json::json!({"t": "a\u{FFFF}b\u{FFFE}\u{0}"})).unwrap();
        let escaped = escape_json_for_queue(json);
        assert!(escaped.chars().all(allowed_char), "{escaped}");
        let back: serde_json::Value = serde_json::from_str(&escaped).unwrap();
        assert_eq!(back["t"], "a\u{FFFF}b\u{FFFE}\u{0}");
    }
}
