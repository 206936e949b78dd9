//! A `retry` table (a route's, or a Cognigy endpoint's): its schedule and `max_age`.

use crate::retry::{MAX_DELAY, RetryPolicy};
use crate::routes::diagnostics::{Diagnostics, Seg};
use crate::routes::section::Section;
use crate::time_fmt::parse_duration;
use std::time::Duration;
use toml::{Table, Value};

/// `retry = { schedule, max_age }`; each field defaults to [`RetryPolicy::default`]'s.
pub(super) fn retry_policy(
    owner: &Section<'_>,
    t: &Table,
    diag: &mut Diagnostics,
) -> Option<RetryPolicy> {
    let s = owner.nested(&[Seg::key("retry")], t, &["schedule", "max_age"], diag);
    let mark = diag.mark();
    let default = RetryPolicy::default();
    let schedule = match s.array("schedule", diag) {
        Some(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| schedule_step(&s, i, v, diag))
            .collect(),
        None => default.schedule,
    };
    let max_age = match s.str("max_age", diag).map(parse_duration) {
        Some(Ok(d)) if d.is_zero() => {
            s.error(diag, "max_age", "must be longer than 0s");
            None
        }
        Some(Ok(d)) => Some(d),
        Some(Err(reason)) => {
            s.error(diag, "max_age", reason);
            None
        }
        None => Some(default.max_age),
    };
    diag.none_since(mark).then_some(RetryPolicy {
        schedule,
        max_age: max_age?,
    })
}

/// `schedule[i]`: a duration no longer than SQS can delay a message.
fn schedule_step(s: &Section<'_>, i: usize, v: &Value, diag: &mut Diagnostics) -> Option<Duration> {
    let key = [Seg::key("schedule"), Seg::Index(i)];
    let Some(text) = v.as_str() else {
        s.error_in(
            diag,
            &key,
            "must be a duration string like \"30s\", \"5m\" or \"2h\"",
        );
        return None;
    };
    match parse_duration(text) {
        Ok(d) if d > MAX_DELAY => {
            s.error_in(
                diag,
                &key,
                format!("`{text}` is over 12h, the longest delay SQS can hold a message"),
            );
            None
        }
        Ok(d) => Some(d),
        Err(reason) => {
            s.error_in(diag, &key, reason);
            None
        }
    }
}
