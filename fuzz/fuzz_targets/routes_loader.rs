//! The routes file loader never panics, whatever the text: it loads or lists errors.
#![no_main]

use libfuzzer_sys::fuzz_target;
use router_core::routes::Routes;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match Routes::parse(text, std::path::Path::new("/nonexistent/fuzz/routes.toml")) {
            Ok(routes) => {
                let _ = routes.secret_ids();
            }
            Err(e) => assert!(!e.errors.is_empty(), "an error report lists at least one error"),
        }
    }
});
