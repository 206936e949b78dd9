//! Logging set-up shared by the functions and routerctl: JSON lines on Lambda (when
//! `AWS_LAMBDA_LOG_FORMAT=JSON`, or `LOG_FORMAT=json`), plain text otherwise; the level
//! from `RUST_LOG` (default `info`).
//!
//! Log fields carry outside text (event fields, a target's answer in an error, header
//! values). JSON escapes it; in the text format every field is written through
//! [`text_fields`], which escapes newlines, ESC and every other control or bidirectional
//! character ([`crate::text::escaped`]), so no field can forge a line or repaint a terminal.

use std::cell::RefCell;
use std::fmt::Write as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;

thread_local! {
    /// Each field's text before it is escaped: one buffer a thread, not one a field.
    static FIELD: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The text format's fields: `name=value`, space-delimited, the message bare, each value
/// escaped.
pub fn text_fields()
-> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static {
    tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let mut write = |raw: &mut String| {
            raw.clear();
            let _ = write!(raw, "{value:?}");
            let safe = crate::text::escaped(raw, false);
            if field.name() == "message" {
                write!(w, "{safe}")
            } else {
                write!(w, "{}={safe}", field.name())
            }
        };
        // A value whose `Debug` formats a field of this thread itself gets a buffer of its
        // own (no double borrow).
        FIELD.with(|buf| match buf.try_borrow_mut() {
            Ok(mut raw) => {
                let written = write(&mut raw);
                if raw.capacity() > 4096 {
                    // One large field (a target's answer) keeps no large buffer.
                    *raw = String::new();
                }
                written
            }
            Err(_) => write(&mut String::new()),
        })
    })
    .delimited(" ")
}

/// Installs the global subscriber; a second call is a no-op.
pub fn init() {
    let json = ["AWS_LAMBDA_LOG_FORMAT", "LOG_FORMAT"]
        .iter()
        .any(|k| std::env::var(k).is_ok_and(|v| v.eq_ignore_ascii_case("json")));
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_writer(std::io::stdout);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .without_time()
            .try_init()
    } else {
        builder.fmt_fields(text_fields()).try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The text format into a buffer.
    fn text_subscriber() -> (Buffer, impl tracing::Subscriber + Send + Sync) {
        let buf = Buffer::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_target(false)
            .fmt_fields(text_fields())
            .finish();
        (buf, subscriber)
    }

    #[test]
    fn no_field_of_a_text_log_line_can_forge_a_line_or_repaint_the_terminal() {
        let (buf, subscriber) = text_subscriber();
        let answer = "boom\n2026-12-02T00:00:00Z  INFO delivered route=forged\u{1b}[2J\u{202e}";
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(
                route = "crm",
                error = %answer,
                header = answer,
                attempt = 2,
                "attempt failed; retrying {}",
                answer
            );
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(
            !out.contains('\u{1b}') && !out.contains('\u{202e}'),
            "{out:?}"
        );
        assert!(out.contains("route=\"crm\""), "{out}");
        assert!(out.contains("attempt=2"), "{out}");
        assert!(out.contains("error=boom\\n2026"), "{out}");
        assert!(out.contains("\\u{1b}[2J\\u{202e}"), "{out}");
        assert!(
            out.contains("WARN attempt failed; retrying boom\\n"),
            "{out}"
        );
    }

    #[test]
    fn a_field_whose_debug_logs_is_written_whole_without_a_panic() {
        struct Logs;
        impl std::fmt::Debug for Logs {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                tracing::info!(inner = "x\ny", "nested");
                write!(f, "outer\u{1b}")
            }
        }
        let (buf, subscriber) = text_subscriber();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(field = ?Logs, "outer line");
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(out.contains("outer line field=outer\\u{1b}"), "{out}");
        // (tracing itself drops an event logged while another is being written.)
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(!out.contains('\u{1b}'), "{out:?}");
    }
}
