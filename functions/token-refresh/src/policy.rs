//! When a stored token needs renewing: missing or unreadable, past half its lifetime, or
//! under 10 minutes left.

use router_core::secrets::StoredToken;

pub const MIN_REMAINING_S: i64 = 10 * 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    Missing,
    PastHalfLife,
    ExpiringSoon,
}

pub fn freshness(token: Option<&StoredToken>, now: i64) -> Freshness {
    let Some(t) = token else {
        return Freshness::Missing;
    };
    // Checked arithmetic: a stored token is only as sane as whoever wrote it.
    if t.expires_at.saturating_sub(now) < MIN_REMAINING_S {
        return Freshness::ExpiringSoon;
    }
    if let Some(issued) = t.issued_at
        && i128::from(now) >= (i128::from(issued) + i128::from(t.expires_at)) / 2
    {
        return Freshness::PastHalfLife;
    }
    Freshness::Fresh
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(issued_at: Option<i64>, expires_at: i64) -> StoredToken {
        StoredToken {
            access_token: "t".into(),
            token_type: "Bearer".into(),
            expires_at,
            issued_at,
        }
    }

    #[test]
    fn absurd_stored_times_never_overflow() {
        assert_eq!(
            freshness(Some(&token(None, i64::MIN)), 1_000),
            Freshness::ExpiringSoon
        );
        assert_eq!(
            freshness(Some(&token(Some(i64::MIN), i64::MAX)), 1_000),
            Freshness::PastHalfLife
        );
        assert_eq!(
            freshness(Some(&token(Some(i64::MAX), i64::MAX)), i64::MIN),
            Freshness::Fresh
        );
    }

    #[test]
    fn renews_when_missing_half_spent_or_nearly_expired() {
        assert_eq!(freshness(None, 0), Freshness::Missing);
        // One hour token issued at 0.
        assert_eq!(
            freshness(Some(&token(Some(0), 3600)), 1000),
            Freshness::Fresh
        );
        assert_eq!(
            freshness(Some(&token(Some(0), 3600)), 1800),
            Freshness::PastHalfLife
        );
        // A day-long token: half-life rule first.
        assert_eq!(
            freshness(Some(&token(Some(0), 86_400)), 43_199),
            Freshness::Fresh
        );
        assert_eq!(
            freshness(Some(&token(Some(0), 86_400)), 43_200),
            Freshness::PastHalfLife
        );
        // Ten minutes left always renews, with or without issued_at.
        assert_eq!(
            freshness(Some(&token(None, 1000)), 401),
            Freshness::ExpiringSoon
        );
        assert_eq!(freshness(Some(&token(None, 1000)), 399), Freshness::Fresh);
        assert_eq!(
            freshness(Some(&token(Some(0), 500)), 0),
            Freshness::ExpiringSoon
        );
        assert_eq!(
            freshness(Some(&token(Some(0), 900)), 0),
            Freshness::Fresh,
            "15 minutes left, none of it spent"
        );
        assert_eq!(
            freshness(Some(&token(None, 100)), 200),
            Freshness::ExpiringSoon,
            "expired"
        );
    }
}
