//! The trip rule and every transition, on a clock that is passed in.

use super::*;

const S: fn(u64) -> Duration = Duration::from_secs;
const MS: fn(u64) -> Duration = Duration::from_millis;

const SLOW: &str = "http://crm:80/slow";
const OK: &str = "http://crm:80/ok";

fn to(endpoint: &str) -> Destination<'_> {
    let host_end = endpoint[7..].find('/').map_or(endpoint.len(), |i| i + 7);
    Destination {
        host: &endpoint[..host_end],
        endpoint,
        route: "crm",
    }
}

fn settings() -> BreakerSettings {
    BreakerSettings::default()
}

fn refused(a: &Admission) -> bool {
    matches!(a, Admission::Refuse { .. })
}

/// A small deterministic generator (xorshift64*), so the simulations are repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `n` requests to one endpoint at `per_second`, each failing with probability `p` as
/// `failure`: how often a circuit opened.
fn simulate(n: usize, per_second: f64, p: f64, failure: Signal, seed: u64) -> usize {
    let b = Breakers::default();
    let s = settings();
    let t0 = Instant::now();
    let mut rng = Rng(seed);
    let mut openings = 0;
    for i in 0..n {
        let now = t0 + Duration::from_secs_f64(i as f64 / per_second);
        let signal = if rng.next() < p {
            failure
        } else {
            Signal::Answered
        };
        openings += b
            .record(to(SLOW), signal, &s, now)
            .iter()
            .filter(|t| matches!(t, Transition::Opened { .. }))
            .count();
    }
    openings
}

#[test]
fn a_target_failing_30_percent_at_random_never_opens_at_any_rate() {
    for (per_second, failure) in [
        (1.0, Signal::EndpointUnwell),
        (20.0, Signal::HostUnwell),
        (1000.0, Signal::EndpointUnwell),
        (100_000.0, Signal::HostUnwell),
    ] {
        let openings = simulate(1_000_000, per_second, 0.3, failure, 0x5eed);
        assert_eq!(openings, 0, "{per_second}/s, {failure:?}");
    }
}

#[test]
fn answers_never_count_whatever_their_status() {
    // Every request answered 500 (a body the target chokes on, say): never unwell.
    assert_eq!(simulate(10_000, 100.0, 1.0, Signal::Answered, 1), 0);
    let b = Breakers::default();
    assert!(b.is_empty(), "an answer needs no entry");
}

#[test]
fn a_dead_target_opens_after_16_in_a_row_or_2_s_whichever_is_later() {
    let s = settings();
    for (per_second, opens_by) in [(1.0, S(15)), (10.0, S(2)), (1000.0, S(2))] {
        let b = Breakers::default();
        let t0 = Instant::now();
        let mut opened_at = None;
        for i in 0..100_000u32 {
            let now = t0 + Duration::from_secs_f64(f64::from(i) / per_second);
            let t = b.record(to(SLOW), Signal::EndpointUnwell, &s, now);
            if !t.is_empty() {
                opened_at = Some(now - t0);
                break;
            }
        }
        let at = opened_at.expect("it opened");
        assert!(
            at <= opens_by + MS(1),
            "{per_second}/s: opened after {at:?}"
        );
        assert!(at >= s.min_duration, "{per_second}/s: opened after {at:?}");
    }
}

#[test]
fn a_burst_that_fails_at_one_instant_is_not_sustained_trouble() {
    let b = Breakers::default();
    let s = settings();
    let t0 = Instant::now();
    // 64 requests in flight all time out together after one hiccup of the target.
    for _ in 0..64 {
        assert!(
            b.record(to(SLOW), Signal::EndpointUnwell, &s, t0)
                .is_empty()
        );
    }
    assert_eq!(b.admit(to(SLOW), &s, t0), Admission::Go);
    // One answer ends the streak.
    b.record(to(SLOW), Signal::Answered, &s, t0 + S(1));
    assert!(b.is_empty());
    // Still failing 2 s later: now it is sustained.
    for i in 0..16 {
        b.record(to(SLOW), Signal::EndpointUnwell, &s, t0 + S(2) + MS(i));
    }
    let t = b.record(to(SLOW), Signal::EndpointUnwell, &s, t0 + S(4) + MS(20));
    assert!(matches!(&t[..], [Transition::Opened { .. }]), "{t:?}");
}

#[test]
fn a_slow_endpoint_opens_alone_and_a_gone_host_opens_for_all_its_endpoints() {
    let b = Breakers::default();
    let s = settings();
    let t0 = Instant::now();
    for i in 0..20 {
        b.record(to(SLOW), Signal::EndpointUnwell, &s, t0 + S(i));
    }
    assert!(refused(&b.admit(to(SLOW), &s, t0 + S(21))));
    // The same host's other endpoint answers and is let through; so is another port.
    assert_eq!(b.admit(to(OK), &s, t0 + S(21)), Admission::Go);
    assert_eq!(
        b.admit(to("http://crm:81/slow"), &s, t0 + S(21)),
        Admission::Go
    );
    let open = b.open(t0 + S(21));
    assert_eq!(open.len(), 1);
    assert_eq!(
        (
            open[0].circuit.as_str(),
            open[0].scope,
            open[0].unwell_for_s
        ),
        (SLOW, Scope::Endpoint, 21)
    );
    // Refused connections count for the host, whichever path they were for: every
    // endpoint of it is refused once it opens.
    let gone = "http://gone:80";
    for i in 0..20 {
        let path = format!("{gone}/p{}", i % 3);
        b.record(to(&path), Signal::HostUnwell, &s, t0 + S(i));
    }
    let a = b.admit(to("http://gone:80/never-tried"), &s, t0 + S(21));
    assert!(
        matches!(&a, Admission::Refuse { circuit, .. } if circuit == gone),
        "{a:?}"
    );
    assert_eq!(b.open(t0 + S(21))[0].scope, Scope::Host, "hosts first");
}

#[test]
fn an_answer_on_any_endpoint_keeps_its_host_closed() {
    let b = Breakers::default();
    let s = settings();
    let t0 = Instant::now();
    for i in 0..100 {
        // A round-robin name with one dead address: refusals between answers.
        let signal = if i % 3 == 0 {
            Signal::Answered
        } else {
            Signal::HostUnwell
        };
        let path = if i % 2 == 0 { OK } else { SLOW };
        assert!(b.record(to(path), signal, &s, t0 + S(i)).is_empty());
    }
    // A timeout says the host is there: it breaks the host's streak.
    for i in 0..15 {
        b.record(to(OK), Signal::HostUnwell, &s, t0 + S(200 + i));
    }
    b.record(to(SLOW), Signal::EndpointUnwell, &s, t0 + S(216));
    b.record(to(OK), Signal::HostUnwell, &s, t0 + S(217));
    assert_eq!(b.admit(to(OK), &s, t0 + S(218)), Admission::Go);
}

#[test]
fn after_the_cool_down_a_few_probes_go_and_the_first_answer_closes_it() {
    let b = Breakers::default();
    let s = settings();
    let t0 = Instant::now();
    for i in 0..16 {
        b.record(to(SLOW), Signal::EndpointUnwell, &s, t0 + S(i));
    }
    let opened = t0 + S(15);
    let a = b.admit(to(SLOW), &s, opened + S(10));
    assert_eq!(
        a,
        Admission::Refuse {
            retry_in: S(20),
            circuit: SLOW.to_owned(),
            unwell_for: S(25),
        }
    );
    // The cool-down is over: two probes, then the rest wait for their outcome.
    let later = opened + S(30);
    assert_eq!(b.admit(to(SLOW), &s, later), Admission::Probe);
    assert_eq!(b.admit(to(SLOW), &s, later), Admission::Probe);
    assert!(matches!(
        b.admit(to(SLOW), &s, later),
        Admission::Refuse { retry_in, .. } if retry_in == PROBE_WAIT
    ));
    // A probe that learned nothing (its host refused it) gives its place back.
    b.record(to(SLOW), Signal::Nothing, &s, later);
    assert_eq!(b.admit(to(SLOW), &s, later), Admission::Probe);
    // The first answer closes the circuit and forgets it.
    let t = b.record(to(SLOW), Signal::Answered, &s, later + S(1));
    assert_eq!(
        t,
        [Transition::Closed {
            circuit: SLOW.to_owned(),
            scope: Scope::Endpoint,
            unwell_for: S(46),
        }]
    );
    assert!(b.is_empty());
    assert_eq!(b.admit(to(SLOW), &s, later + S(1)), Admission::Go);
}

#[test]
fn a_failed_probe_reopens_for_twice_the_cool_down_up_to_the_most() {
    let s = settings();
    let t0 = Instant::now();
    let half = |openings| Circuit::HalfOpen {
        openings,
        unwell_since: t0,
        probes: 1,
        since: t0,
    };
    for (openings, cool_down) in [(1, 60), (2, 120), (3, 240), (4, 480), (5, 600), (20, 600)] {
        let (next, t) = half(openings).record(Some(true), &s, t0);
        assert_eq!(
            next,
            Circuit::Open {
                until: t0 + S(cool_down),
                openings: openings + 1,
                unwell_since: t0,
            },
            "after {openings} openings"
        );
        assert_eq!(
            t,
            Some(TransitionKind::Opened {
                cool_down: S(cool_down),
                openings: openings + 1
            })
        );
    }
    // Late outcomes of requests sent before it opened change nothing.
    let open = Circuit::Open {
        until: t0 + S(30),
        openings: 1,
        unwell_since: t0,
    };
    assert_eq!(open.record(Some(false), &s, t0), (open, None));
    assert_eq!(open.record(Some(true), &s, t0), (open, None));
}

#[test]
fn a_probe_that_never_reports_stops_holding_its_place() {
    let s = settings();
    let t0 = Instant::now();
    let full = Circuit::HalfOpen {
        openings: 1,
        unwell_since: t0,
        probes: s.probes,
        since: t0,
    };
    assert!(matches!(full.judge(&s, t0 + S(1)), Verdict::Refuse { .. }));
    assert!(matches!(
        full.judge(&s, t0 + PROBE_TIMEOUT),
        Verdict::Probe(Circuit::HalfOpen { probes: 1, .. })
    ));
}

#[test]
fn an_open_host_does_not_use_up_its_endpoints_probe() {
    let b = Breakers::default();
    let s = BreakerSettings {
        probes: 1,
        ..settings()
    };
    let t0 = Instant::now();
    for i in 0..16 {
        b.record(to(SLOW), Signal::EndpointUnwell, &s, t0 + S(i));
    }
    for i in 0..16 {
        b.record(to(OK), Signal::HostUnwell, &s, t0 + S(20 + i));
    }
    // The endpoint's cool-down is over (at 45 s), the host's is not (until 65 s).
    assert!(refused(&b.admit(to(SLOW), &s, t0 + S(50))));
    assert!(refused(&b.admit(to(SLOW), &s, t0 + S(50))));
    // Once both are due, the one request probes both.
    assert_eq!(b.admit(to(SLOW), &s, t0 + S(66)), Admission::Probe);
    assert!(refused(&b.admit(to(SLOW), &s, t0 + S(66))));
    let t = b.record(to(SLOW), Signal::Answered, &s, t0 + S(67));
    assert_eq!(t.len(), 2, "both closed: {t:?}");
    assert!(b.is_empty());
}

#[test]
fn a_disabled_breaker_never_refuses_and_remembers_nothing() {
    let b = Breakers::default();
    let off = BreakerSettings {
        failures: 0,
        ..settings()
    };
    let t0 = Instant::now();
    for i in 0..100 {
        assert!(
            b.record(to(SLOW), Signal::EndpointUnwell, &off, t0 + S(i))
                .is_empty()
        );
    }
    assert!(b.is_empty());
    assert_eq!(b.admit(to(SLOW), &off, t0 + S(101)), Admission::Go);
}

#[test]
fn memory_stays_bounded_with_many_endpoints() {
    let b = Breakers::default();
    let s = settings();
    let t0 = Instant::now();
    // Healthy endpoints take no room at all.
    for i in 0..10_000 {
        b.record(to(&format!("http://ok-{i}:80/x")), Signal::Answered, &s, t0);
    }
    assert!(b.is_empty());
    for i in 0..16 {
        b.record(to(SLOW), Signal::EndpointUnwell, &s, t0 + S(i));
    }
    for i in 0..(MAX_CIRCUITS * 2) {
        b.record(
            to(&format!("http://flaky:80/{i}")),
            Signal::EndpointUnwell,
            &s,
            t0 + S(16),
        );
    }
    assert_eq!(b.len(), MAX_CIRCUITS);
    // The open circuit is kept over the merely failing ones.
    assert!(refused(&b.admit(to(SLOW), &s, t0 + S(17))));
}

#[test]
fn the_clock_can_be_moved_on() {
    let b = Breakers::default();
    let before = b.now();
    b.advance(S(30));
    assert!(b.now() >= before + S(30));
}

#[test]
fn circuit_names_never_show_a_path() {
    let url = |s: &str| url::Url::parse(s).unwrap();
    let (host, endpoint) =
        circuit_names(&url("https://hooks.example.com/services/T0/B0/s3cr3t?x=1"));
    assert_eq!(host, "https://hooks.example.com");
    assert!(
        endpoint.starts_with("https://hooks.example.com/\u{2026}"),
        "{endpoint}"
    );
    assert!(!endpoint.contains("s3cr3t") && !endpoint.contains("services"));
    // One name per path (the query is not part of it), another for another path.
    assert_eq!(
        circuit_names(&url("https://hooks.example.com/services/T0/B0/s3cr3t")).1,
        endpoint
    );
    assert_ne!(
        circuit_names(&url("https://hooks.example.com/other")).1,
        endpoint
    );
    assert_eq!(
        circuit_names(&url("http://user:pw@crm:8080/")),
        ("http://crm:8080".to_owned(), "http://crm:8080/".to_owned())
    );
}
