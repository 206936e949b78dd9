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
            classify(&status(code), Resend::Spent),
            Verdict::Delivered,
            "{code}"
        );
    }
    for code in [408, 425, 429, 500, 502, 503, 599] {
        assert!(
            matches!(
                classify(&status(code), Resend::Spent),
                Verdict::Retry {
                    reason: RetryReason::HttpStatus,
                    ..
                }
            ),
            "{code}"
        );
    }
    for code in [301, 400, 401, 403, 404, 410, 413, 422] {
        assert_eq!(
            classify(&status(code), Resend::Spent),
            Verdict::Permanent(Failure::HttpStatus),
            "{code}"
        );
    }
    assert_eq!(
        classify(&Outcome::Timeout, Resend::Spent),
        Verdict::Retry {
            reason: RetryReason::Timeout,
            retry_after: None
        }
    );
    assert_eq!(
        classify(&Outcome::Connect, Resend::Spent),
        Verdict::Retry {
            reason: RetryReason::Connect,
            retry_after: None
        }
    );
    assert_eq!(
        classify(&Outcome::Render, Resend::Spent),
        Verdict::Permanent(Failure::Render)
    );
    assert_eq!(
        classify(&Outcome::TooLarge, Resend::Spent),
        Verdict::Permanent(Failure::TooLarge)
    );
    assert_eq!(
        classify(&Outcome::Blocked, Resend::Spent),
        Verdict::Permanent(Failure::BlockedTarget)
    );
    let ra = Outcome::Status {
        code: 429,
        retry_after: Some(S(9)),
    };
    assert_eq!(
        classify(&ra, Resend::Spent),
        Verdict::Retry {
            reason: RetryReason::HttpStatus,
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
        assert_eq!(
            classify(&o, Resend::Possible),
            Verdict::RefreshTokenAndResend
        );
        assert_eq!(
            classify(&o, Resend::Spent),
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
        assert_eq!(classify(&o, Resend::Spent), Verdict::Permanent(f));
    }
    for o in [Outcome::Credentials, Outcome::SigningKey] {
        assert!(
            matches!(classify(&o, Resend::Spent), Verdict::Retry { .. }),
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
    Disposition::DeadLetter(super::DeadLetter {
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
            reason: RetryReason::HttpStatus,
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
            reason: RetryReason::Credentials,
            ..
        }
    ));
}

#[test]
fn only_outcomes_without_an_answer_say_the_target_is_unwell() {
    use crate::breaker::Signal;
    let status = |code| Outcome::Status {
        code,
        retry_after: None,
    };
    // Any answer proves the target is there: what it answers depends on the request.
    for o in [
        status(200),
        status(404),
        status(429),
        status(500),
        status(503),
        Outcome::TooLarge,
    ] {
        assert_eq!(o.signal(), Signal::Answered, "{o:?}");
    }
    assert_eq!(Outcome::Timeout.signal(), Signal::EndpointUnwell);
    assert_eq!(Outcome::Interrupted.signal(), Signal::EndpointUnwell);
    assert_eq!(Outcome::Connect.signal(), Signal::HostUnwell);
    for o in [
        Outcome::Blocked,
        Outcome::Render,
        Outcome::Credentials,
        Outcome::SigningKey,
        Outcome::Deferred,
        open(1),
    ] {
        assert_eq!(o.signal(), Signal::Nothing, "{o:?}");
    }
    // A broken exchange is retried as a connection failure.
    assert!(matches!(
        classify(&Outcome::Interrupted, Resend::Spent),
        Verdict::Retry {
            reason: RetryReason::Connect,
            ..
        }
    ));
}

fn open(secs: u64) -> Outcome {
    Outcome::CircuitOpen(Box::new(Refusal {
        retry_in: S(secs),
        circuit: "https://crm:443".into(),
        unwell_for: S(90),
    }))
}

#[test]
fn a_refusal_waits_for_the_circuit_without_spending_an_attempt() {
    let p = policy(&[5, 30], 3600);
    // The wait is until a request may go, not the schedule's next delay.
    assert_eq!(
        decide(&attempted(open(24), None), &p, 2, S(10)),
        Disposition::Wait {
            delay: S(24),
            reason: WaitReason::CircuitOpen,
            error: "why".into()
        }
    );
    // Or until its schedule would have ended (35 s), if that is sooner: it is not kept
    // waiting past the moment its route would have given up.
    assert!(matches!(
        decide(&attempted(open(60), None), &p, 2, S(30)),
        Disposition::Wait { delay, .. } if delay == S(5)
    ));
    // In whole seconds, rounded up: back once a request may go, not a moment before.
    assert!(matches!(
        decide(&attempted(open(0), None), &p, 1, S(0)),
        Disposition::Wait { .. }
    ));
    let mut soon = open(0);
    if let Outcome::CircuitOpen(refusal) = &mut soon {
        refusal.retry_in = Duration::from_millis(29_999);
    }
    assert!(matches!(
        decide(&attempted(soon, None), &p, 1, S(0)),
        Disposition::Wait { delay, .. } if delay == S(30)
    ));
    // Never straight back, never longer than SQS holds a message.
    assert!(matches!(
        decide(&attempted(open(0), None), &p, 1, S(0)),
        Disposition::Wait { delay, .. } if delay == MIN_CIRCUIT_WAIT
    ));
    // On what would have been its last attempt, it still waits: refusals are no attempts.
    assert!(matches!(
        decide(&attempted(open(5), None), &p, 3, S(20)),
        Disposition::Wait { .. }
    ));
}

#[test]
fn a_refused_delivery_is_given_up_only_when_its_schedule_would_have_been() {
    // The schedule spans 35 s: past that, every attempt failing would have ended it.
    let p = policy(&[5, 30], 3600);
    let dead = decide(&attempted(open(10), None), &p, 2, S(35));
    assert_eq!(
        dead,
        Disposition::DeadLetter(super::DeadLetter {
            failure: Failure::CircuitOpen,
            attempts: 1,
            last_status: None,
            last_error: "why".into(),
        })
    );
    // A wait that would cross max_age ends it too.
    let short = policy(&[600], 120);
    assert!(matches!(
        decide(&attempted(open(60), None), &short, 1, S(61)),
        Disposition::DeadLetter(d) if d.failure == Failure::CircuitOpen && d.attempts == 0
    ));
    // A route without retries gives up at its first refusal, as it would at a failure.
    assert!(matches!(
        decide(&attempted(open(1), None), &policy(&[], 3600), 1, S(0)),
        Disposition::DeadLetter(d) if d.failure == Failure::CircuitOpen
    ));
    assert_eq!(policy(&[5, 30], 3600).span(), S(35));
    assert_eq!(policy(&[], 3600).span(), S(0));
}

#[test]
fn a_deferral_is_a_wait_even_on_the_last_attempt() {
    let p = policy(&[5, 30], 3600);
    assert_eq!(
        decide(&attempted(Outcome::Deferred, None), &p, 3, S(40)),
        Disposition::Wait {
            delay: DEFER_DELAY,
            reason: WaitReason::Deadline,
            error: "why".into()
        }
    );
}

#[test]
fn the_attempts_a_schedule_allows_by_a_time() {
    let p = policy(&[5, 30], 3600);
    assert_eq!(p.attempts_by(S(0)), 1);
    assert_eq!(p.attempts_by(S(4)), 1);
    assert_eq!(p.attempts_by(S(5)), 2);
    assert_eq!(p.attempts_by(S(34)), 2);
    assert_eq!(p.attempts_by(S(35)), 3);
    assert_eq!(
        p.attempts_by(S(10_000)),
        3,
        "never more than the schedule has"
    );
}

#[test]
fn a_rate_limited_delivery_waits_for_its_place_and_is_never_given_up_for_it() {
    let p = policy(&[5, 30], 3600);
    let limited = |ms| attempted(Outcome::RateLimited(Duration::from_millis(ms)), None);
    // Whole seconds, rounded up, at least one; the attempt number stays (a wait).
    for (ms, secs) in [(2300, 3), (1, 1), (1000, 1)] {
        assert_eq!(
            decide(&limited(ms), &p, 3, S(10)),
            Disposition::Wait {
                delay: S(secs),
                reason: WaitReason::RateLimited,
                error: "why".into()
            },
            "{ms} ms"
        );
    }
    // Past its schedule's span too: a limit is not a failure.
    assert!(matches!(
        decide(&limited(5000), &p, 3, S(600)),
        Disposition::Wait { .. }
    ));
    // Only max_age ends the wait, as `expired`, counting only the attempts made.
    match decide(&limited(5000), &p, 3, S(3598)) {
        Disposition::DeadLetter(d) => {
            assert_eq!((d.failure, d.attempts), (Failure::Expired, 2));
            assert!(d.last_error.contains("max_age"), "{}", d.last_error);
        }
        other => panic!("{other:?}"),
    }
    assert!(Outcome::RateLimited(S(1)).before_attempt());
}
