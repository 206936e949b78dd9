//! The trigger body parsers (JSON and form) never panic, and what they accept round-trips
//! through a queue message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use router_core::domain::{DeliveryJob, RouteName};
use router_core::event::{from_form, from_json};

fuzz_target!(|data: &[u8]| {
    let route = RouteName::parse("fuzz-route").expect("a valid name");
    for parsed in [from_json(data, Some("fuzz-key")), from_form(data, None)] {
        if let Ok(event) = parsed {
            let job = DeliveryJob::new(&event, &route, router_core::time_fmt::now());
            let back = DeliveryJob::parse(&job.to_json()).expect("an accepted event round-trips");
            assert_eq!(back.event.id, event.id);
        }
    }
});
