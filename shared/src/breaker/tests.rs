//! Every transition of a circuit, on a clock that is passed in.

use super::*;

const S: fn(u64) -> Duration = Duration::from_secs;

fn settings() -> BreakerSettings {
    BreakerSettings::default()
}

#[test]
fn closed_opens_after_n_consecutive_unwell_answers() {
    let t0 = Instant::now();
    let mut c = Circuit::Closed { failures: 0 };
    for i in 1..5 {
        let (next, t) = c.record(true, &settings(), t0);
        assert_eq!((next, t), (Circuit::Closed { failures: i }, None));
        c = next;
    }
    // A healthy answer in between starts the count again.
    let (reset, _) = c.record(false, &settings(), t0);
    assert_eq!(reset, Circuit::Closed { failures: 0 });
    let (next, t) = c.record(true, &settings(), t0);
    assert_eq!(
        next,
        Circuit::Open {
            until: t0 + S(30),
            openings: 1
        }
    );
    assert_eq!(
        t,
        Some(Transition::Opened {
            cool_down: S(30),
            openings: 1
        })
    );
}

#[test]
fn open_refuses_until_the_cool_down_then_lets_one_probe_through() {
    let t0 = Instant::now();
    let open = Circuit::Open {
        until: t0 + S(30),
        openings: 1,
    };
    assert_eq!(
        open.admit(t0 + S(10)),
        (Admission::Refuse { retry_in: S(20) }, open)
    );
    let (admission, half) = open.admit(t0 + S(30));
    assert_eq!(admission, Admission::Probe);
    assert!(matches!(half, Circuit::HalfOpen { openings: 1, .. }));
    // While the probe is out, everything else is refused.
    assert!(matches!(half.admit(t0 + S(31)).0, Admission::Refuse { .. }));
    // A probe that never reports stops holding the circuit after PROBE_TIMEOUT.
    assert_eq!(half.admit(t0 + S(30) + PROBE_TIMEOUT).0, Admission::Probe);
}

#[test]
fn the_probe_closes_or_reopens_with_a_growing_cool_down() {
    let t0 = Instant::now();
    let half = |openings| Circuit::HalfOpen {
        openings,
        since: t0,
    };
    assert_eq!(
        half(3).record(false, &settings(), t0),
        (Circuit::Closed { failures: 0 }, Some(Transition::Closed))
    );
    for (openings, cool_down) in [(1, 60), (2, 120), (3, 240), (4, 480), (5, 600), (20, 600)] {
        let (next, t) = half(openings).record(true, &settings(), t0);
        assert_eq!(
            next,
            Circuit::Open {
                until: t0 + S(cool_down),
                openings: openings + 1
            },
            "after {openings} openings"
        );
        assert_eq!(
            t,
            Some(Transition::Opened {
                cool_down: S(cool_down),
                openings: openings + 1
            })
        );
    }
    // Late answers of requests sent before it opened change nothing.
    let open = Circuit::Open {
        until: t0 + S(30),
        openings: 1,
    };
    assert_eq!(open.record(false, &settings(), t0), (open, None));
}

#[test]
fn origins_are_separate_and_a_disabled_breaker_never_refuses() {
    let b = Breakers::default();
    let t0 = Instant::now();
    let s = settings();
    for _ in 0..5 {
        b.record("http://down:80", true, &s, t0);
    }
    assert!(matches!(
        b.admit("http://down:80", &s, t0),
        Admission::Refuse { .. }
    ));
    assert_eq!(b.admit("http://up:80", &s, t0), Admission::Go);
    assert_eq!(b.admit("http://down:8080", &s, t0), Admission::Go);
    let open = b.open(t0 + S(10));
    assert_eq!(open.len(), 1);
    assert_eq!(
        (
            open[0].origin.as_str(),
            open[0].retry_in_s,
            open[0].openings
        ),
        ("http://down:80", 20, 1)
    );
    let off = BreakerSettings { failures: 0, ..s };
    assert_eq!(b.admit("http://down:80", &off, t0), Admission::Go);
    for _ in 0..10 {
        assert_eq!(b.record("http://other:80", true, &off, t0), None);
    }
    // The probe's success forgets the origin.
    assert_eq!(b.admit("http://down:80", &s, t0 + S(30)), Admission::Probe);
    assert_eq!(
        b.record("http://down:80", false, &s, t0 + S(31)),
        Some(Transition::Closed)
    );
    assert!(b.is_empty());
}

#[test]
fn memory_stays_bounded_with_many_origins() {
    let b = Breakers::default();
    let t0 = Instant::now();
    let s = settings();
    // Healthy origins take no room at all.
    for i in 0..10_000 {
        b.record(&format!("http://ok-{i}:80"), false, &s, t0);
    }
    assert!(b.is_empty());
    for _ in 0..5 {
        b.record("http://down:80", true, &s, t0);
    }
    for i in 0..(MAX_ORIGINS * 2) {
        b.record(&format!("http://flaky-{i}:80"), true, &s, t0 + S(1));
    }
    assert_eq!(b.len(), MAX_ORIGINS);
    // The open circuit is kept over the merely failing ones.
    assert!(matches!(
        b.admit("http://down:80", &s, t0 + S(2)),
        Admission::Refuse { .. }
    ));
}
