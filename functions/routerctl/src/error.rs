//! Exit codes and the one or two plain sentences printed on stderr.

use std::fmt;

#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    /// Exit 1: the command ran and found problems.
    pub fn problems(message: impl Into<String>) -> Self {
        Self {
            code: 1,
            message: message.into(),
        }
    }

    /// Exit 2: bad usage, or the set-up (files, queue, secrets) is not usable.
    pub fn setup(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: message.into(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

/// Errors whose own message is the whole story (it names the file, variable or secret):
/// exit 2, set-up, with that message. `?` converts them.
macro_rules! setup_errors {
    ($($error:ty),* $(,)?) => {$(
        impl From<$error> for CliError {
            fn from(e: $error) -> Self {
                Self::setup(e.to_string())
            }
        }
    )*};
}

setup_errors!(
    router_core::config::ConfigError,
    router_core::routes::LoadErrors,
    router_core::ports::SecretError,
    router_core::backends::NoOrderedQueue,
    token_refresh::TokenError,
    deliver::deliverer::NoRouterBase,
);

/// An error that needs to say what was being done: `Cannot read x.json: <error>`, exit 2.
pub trait SetupContext<T> {
    fn or_setup(self, doing: impl FnOnce() -> String) -> CliResult<T>;
}

impl<T, E: fmt::Display> SetupContext<T> for Result<T, E> {
    fn or_setup(self, doing: impl FnOnce() -> String) -> CliResult<T> {
        self.map_err(|e| CliError::setup(format!("{}: {e}", doing())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_errors_keep_their_message_and_exit_2() {
        let e: CliError = router_core::backends::NoOrderedQueue {
            route: "timeline".into(),
        }
        .into();
        assert_eq!(e.code, 2);
        assert!(e.message.starts_with("route `timeline` is ordered"), "{e}");

        let read: Result<(), std::io::Error> = Err(std::io::Error::other("gone"));
        let e = read.or_setup(|| "Cannot read x.json".into()).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (2, "Cannot read x.json: gone")
        );
        assert_eq!(
            Ok::<_, std::io::Error>(5)
                .or_setup(|| unreachable!())
                .unwrap(),
            5
        );
    }
}
