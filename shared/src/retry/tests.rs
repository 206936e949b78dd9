//! The schedule, the classification and the decision, table by table.

use super::*;

const S: fn(u64) -> Duration = Duration::from_secs;

fn policy(schedule: &[u64], max_age: u64) -> RetryPolicy {
    RetryPolicy {
        schedule: schedule.iter().copied().map(S).collect(),
        max_age: S(max_age),
    }
}

#[test]
fn the_default_schedule_is_the_contracts() {
    let p = RetryPolicy::default();
    assert_eq!(p.attempts(), 8);
    assert_eq!(p.schedule[0], S(5));
    assert_eq!(*p.schedule.last().unwrap(), MAX_DELAY);
    assert_eq!(p.max_age, S(86_400));
}

#[test]
fn delays_follow_the_schedule_then_attempts_run_out() {
    let p = policy(&[5, 30, 300], 86_400);
    assert_eq!(next_step(&p, 1, S(0), None), NextStep::RetryIn(S(5)));
    assert_eq!(next_step(&p, 2, S(5), None), NextStep::RetryIn(S(30)));
    assert_eq!(next_step(&p, 3, S(35), None), NextStep::RetryIn(S(300)));
    assert_eq!(
        next_step(&p, 4, S(335), None),
        NextStep::GiveUp(Failure::AttemptsExhausted)
    );
    assert_eq!(
        next_step(&policy(&[], 60), 1, S(0), None),
        NextStep::GiveUp(Failure::AttemptsExhausted)
    );
}

#[test]
fn retry_after_is_clamped_between_the_scheduled_delay_and_12h() {
    let p = policy(&[30], 7 * 86_400);
    assert_eq!(
        next_step(&p, 1, S(0), Some(S(120))),
        NextStep::RetryIn(S(120))
    );
    assert_eq!(next_step(&p, 1, S(0), Some(S(1))), NextStep::RetryIn(S(30)));
    assert_eq!(
        next_step(&p, 1, S(0), Some(S(86_400))),
        NextStep::RetryIn(MAX_DELAY)
    );
}

#[test]
fn no_attempt_is_planned_past_max_age() {
    let p = policy(&[60, 3600], 3000);
    assert_eq!(next_step(&p, 1, S(2900), None), NextStep::RetryIn(S(60)));
    assert_eq!(
        next_step(&p, 1, S(2950), None),
        NextStep::GiveUp(Failure::Expired)
    );
    assert_eq!(
        next_step(&p, 2, S(100), None),
        NextStep::GiveUp(Failure::Expired)
    );
    assert!(is_expired(&p, S(3001)));
    assert!(!is_expired(&p, S(3000)));
}

#[test]
fn outcomes_are_classified_as_the_contract_says() {
    let status = |code| Outcome::Status {
        code,
        retry_after: None,
    };
    for code in [200, 201, 204, 299] {
        assert_eq!(
            classify(&status(code), false, false),
            Verdict::Delivered,
            "{code}"
        );
    }
    for code in [408, 425, 429, 500, 502, 503, 599] {
        assert!(
            matches!(
                classify(&status(code), false, false),
                Verdict::Retry {
                    reason: "http_status",
                    ..
                }
            ),
            "{code}"
        );
    }
    for code in [301, 400, 401, 403, 404, 410, 413, 422] {
        assert_eq!(
            classify(&status(code), false, false),
            Verdict::Permanent(Failure::HttpStatus),
            "{code}"
        );
    }
    assert_eq!(
        classify(&Outcome::Timeout, false, false),
        Verdict::Retry {
            reason: "timeout",
            retry_after: None
        }
    );
    assert_eq!(
        classify(&Outcome::Connect, false, false),
        Verdict::Retry {
            reason: "connect",
            retry_after: None
        }
    );
    assert_eq!(
        classify(&Outcome::Render, false, false),
        Verdict::Permanent(Failure::Render)
    );
    assert_eq!(
        classify(&Outcome::TooLarge, false, false),
        Verdict::Permanent(Failure::TooLarge)
    );
    assert_eq!(
        classify(&Outcome::Blocked, false, false),
        Verdict::Permanent(Failure::BlockedTarget)
    );
    let ra = Outcome::Status {
        code: 429,
        retry_after: Some(S(9)),
    };
    assert_eq!(
        classify(&ra, false, false),
        Verdict::Retry {
            reason: "http_status",
            retry_after: Some(S(9))
        }
    );
}

#[test]
fn auth_rejections_on_oauth2_routes_get_one_token_refresh() {
    for code in [401, 403] {
        let o = Outcome::Status {
            code,
            retry_after: None,
        };
        assert_eq!(classify(&o, true, false), Verdict::RefreshTokenAndResend);
        assert_eq!(
            classify(&o, true, true),
            Verdict::Permanent(Failure::HttpStatus)
        );
    }
}

#[test]
fn retry_after_parses_seconds_and_dates() {
    let now = SystemTime::UNIX_EPOCH + S(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
    assert_eq!(parse_retry_after("120", now), Some(S(120)));
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now),
        Some(S(120))
    );
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
        Some(S(0))
    );
    assert_eq!(parse_retry_after("soon", now), None);
    assert_eq!(parse_retry_after("-5", now), None);
}

#[test]
fn what_ends_a_message_before_its_attempt_is_permanent() {
    for (o, f) in [
        (Outcome::Malformed, Failure::Malformed),
        (Outcome::UnknownRoute, Failure::UnknownRoute),
        (Outcome::Expired, Failure::Expired),
    ] {
        assert!(o.before_attempt());
        assert_eq!(classify(&o, false, false), Verdict::Permanent(f));
    }
    for o in [Outcome::Credentials, Outcome::SigningKey] {
        assert!(
            matches!(classify(&o, false, false), Verdict::Retry { .. }),
            "{o:?}"
        );
    }
}

fn attempted(outcome: Outcome, status: Option<u16>) -> Attempted {
    Attempted {
        outcome,
        status,
        error: "why".into(),
    }
}

fn dead(failure: Failure, attempts: u32, status: Option<u16>) -> Disposition {
    Disposition::DeadLetter(crate::wire::dead_letter::DeadLetter {
        failure,
        attempts,
        last_status: status,
        last_error: "why".into(),
    })
}

#[test]
fn the_decision_follows_the_classification_and_the_schedule() {
    let p = policy(&[5, 30], 3600);
    let ok = Outcome::Status {
        code: 204,
        retry_after: None,
    };
    assert_eq!(
        decide(&attempted(ok, Some(204)), &p, 1, S(0)),
        Disposition::Delivered { status: 204 }
    );
    let busy = Outcome::Status {
        code: 503,
        retry_after: None,
    };
    assert_eq!(
        decide(&attempted(busy.clone(), Some(503)), &p, 1, S(0)),
        Disposition::Retry {
            delay: S(5),
            reason: "http_status",
            status: Some(503),
            error: "why".into()
        }
    );
    assert_eq!(
        decide(&attempted(busy.clone(), Some(503)), &p, 3, S(40)),
        dead(Failure::AttemptsExhausted, 3, Some(503))
    );
    assert_eq!(
        decide(&attempted(busy, Some(503)), &p, 1, S(3599)),
        dead(Failure::Expired, 1, Some(503))
    );
    // A 401 reaching the decision is final (the oauth2 resend already happened).
    let denied = Outcome::Status {
        code: 401,
        retry_after: None,
    };
    assert_eq!(
        decide(&attempted(denied, Some(401)), &p, 1, S(0)),
        dead(Failure::HttpStatus, 1, Some(401))
    );
    // Ended before the attempt: this receive made no attempt.
    assert_eq!(
        decide(&attempted(Outcome::Malformed, None), &p, 3, S(0)),
        dead(Failure::Malformed, 2, None)
    );
    assert_eq!(
        decide(&attempted(Outcome::Expired, None), &p, 1, S(9999)),
        dead(Failure::Expired, 0, None)
    );
    assert!(matches!(
        decide(&attempted(Outcome::Credentials, None), &p, 1, S(0)),
        Disposition::Retry {
            reason: "credentials",
            ..
        }
    ));
}

#[test]
fn unwell_answers_are_the_ones_that_open_a_circuit() {
    let status = |code| Outcome::Status {
        code,
        retry_after: None,
    };
    for o in [
        Outcome::Timeout,
        Outcome::Connect,
        status(500),
        status(503),
        status(429),
    ] {
        assert!(o.is_unwell(), "{o:?}");
    }
    for o in [
        status(200),
        status(404),
        status(408),
        Outcome::Blocked,
        Outcome::Render,
        Outcome::CircuitOpen { retry_in: S(1) },
        Outcome::Credentials,
    ] {
        assert!(!o.is_unwell(), "{o:?}");
    }
}

#[test]
fn an_open_circuit_follows_the_schedule_and_a_deferral_does_not() {
    let p = policy(&[5, 30], 3600);
    let open = |secs| Outcome::CircuitOpen { retry_in: S(secs) };
    assert!(matches!(
        decide(&attempted(open(0), None), &p, 1, S(0)),
        Disposition::Retry { delay, reason: "circuit_open", .. } if delay == S(5)
    ));
    // The schedule, not the time until the next probe: a dead target's deliveries settle
    // on the route's schedule whatever the cool-down.
    assert!(matches!(
        decide(&attempted(open(24), None), &p, 1, S(0)),
        Disposition::Retry { delay, .. } if delay == S(5)
    ));
    assert!(matches!(
        decide(&attempted(open(0), None), &p, 3, S(40)),
        Disposition::DeadLetter(d) if d.failure == Failure::AttemptsExhausted
    ));
    // A deferral is not an attempt: back in a second even on the last attempt.
    assert_eq!(
        decide(&attempted(Outcome::Deferred, None), &p, 3, S(40)),
        Disposition::Retry {
            delay: DEFER_DELAY,
            reason: "deadline",
            status: None,
            error: "why".into()
        }
    );
}
