//! Time formats the contract uses (RFC 3339 timestamps, `5s`/`30m`/`2h`/`1d` durations),
//! Unix milliseconds, and a Unix time (a Lambda deadline) as an instant.

use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .expect("any UTC time formats as RFC 3339")
}

pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Unix milliseconds of `t`.
pub fn unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    unix_ms(OffsetDateTime::now_utc())
}

/// The instant on this process's clock of a Unix-milliseconds time, such as a Lambda
/// invocation's deadline (the Runtime API gives it that way; the deliver and token-refresh
/// functions both turn it into an instant here). A time already past is now.
pub fn instant_at_unix_ms(unix_ms: u64) -> std::time::Instant {
    let now_ms = u64::try_from(now_ms()).unwrap_or(0);
    std::time::Instant::now() + Duration::from_millis(unix_ms.saturating_sub(now_ms))
}

/// A duration as the routes file writes it, the inverse of [`parse_duration`]: the largest
/// whole unit (`86400s` is `24h`, `172800s` is `2d`, `300s` is `5m`).
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    let whole = |unit: u64| s.checked_rem(unit) == Some(0);
    match s {
        0 => "0s".to_owned(),
        _ if whole(86_400) && s >= 172_800 => format!("{}d", s / 86_400),
        _ if whole(3600) => format!("{}h", s / 3600),
        _ if whole(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

/// Parses `<integer><unit>` with unit `s`, `m`, `h` or `d` (e.g. `30s`, `5m`, `12h`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{s}` has no unit; write it like `30s`, `5m`, `2h` or `1d`"))?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` does not start with a whole number; write it like `30s`"))?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => {
            return Err(format!("`{s}` has unknown unit `{unit}`; use s, m, h or d"));
        }
    };
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("12h").unwrap(), Duration::from_secs(43_200));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert!(parse_duration("5").unwrap_err().contains("no unit"));
        assert!(parse_duration("5w").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("1.5h").is_err());
    }

    #[test]
    fn durations_format_as_the_file_writes_them() {
        for (secs, text) in [
            (0, "0s"),
            (45, "45s"),
            (300, "5m"),
            (5400, "90m"),
            (86_400, "24h"),
            (172_800, "2d"),
        ] {
            assert_eq!(format_duration(Duration::from_secs(secs)), text);
            assert_eq!(parse_duration(text).unwrap(), Duration::from_secs(secs));
        }
    }

    #[test]
    fn a_unix_time_becomes_an_instant() {
        let before = std::time::Instant::now();
        let now = u64::try_from(now_ms()).unwrap();
        let at = instant_at_unix_ms(now + 10_000);
        // Between reading the clock above and inside, at most `spent` went by (on a busy
        // machine, any amount): the instant is 10 s after the outer reading, less that.
        let spent = before.elapsed();
        assert!(at <= std::time::Instant::now() + Duration::from_secs(10));
        assert!(at + spent + Duration::from_millis(1) >= before + Duration::from_secs(10));
        assert!(
            instant_at_unix_ms(0) <= std::time::Instant::now(),
            "a past time is now"
        );
    }

    #[test]
    fn rfc3339_round_trips() {
        let t = time::macros::datetime!(2026-11-27 10:00:00.5 UTC);
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
