//! The command line: every command takes `--routes`, `--secrets` and `--data-dir`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "routerctl",
    version,
    about = "Run the Cognigy webhook router locally and operate it",
    long_about = "Run the whole Cognigy webhook router in one process (`serve`), check and preview routes, \
                  inspect and redrive dead letters, and refresh OAuth2 tokens.\n\n\
                  The queue is embedded (in --data-dir) unless QUEUE_URL and DEAD_LETTER_QUEUE_URL are set; \
                  secrets come from --secrets FILE, or from AWS Secrets Manager without it.\n\n\
                  Exit codes: 0 ok, 1 problems found, 2 usage or setup error."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct Global {
    /// The routes file.
    #[arg(
        long,
        global = true,
        env = "ROUTES_FILE",
        default_value = "routes.toml"
    )]
    pub routes: PathBuf,
    /// A TOML or JSON file mapping secret id to value; without it, AWS Secrets Manager.
    #[arg(long, global = true)]
    pub secrets: Option<PathBuf>,
    /// Where the embedded queue keeps its data.
    #[arg(long, global = true, default_value = ".routerctl")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole router: the trigger API, the deliveries, and the token refresh.
    Serve(ServeArgs),
    /// Check the routes file.
    Routes {
        #[command(subcommand)]
        command: RoutesCommand,
    },
    /// Print the payload and headers a delivery of ROUTE would send for an event.
    Render(RenderArgs),
    /// Inspect and redrive dead letters.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// OAuth2 tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The port of the trigger API.
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Deliveries in flight at the same time (a new message is received as each finishes).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Embedded queue: how long a received message stays hidden before it is retried
    /// (after a crash, in-flight deliveries come back after this long). Durations are
    /// written as in the routes file (`20s`, `5m`, `2h`, `1d`); a plain number is seconds.
    #[arg(long, default_value = "60s", value_parser = parse_at_least_a_second)]
    pub visibility_timeout: Duration,
    /// How long between token refresh runs.
    #[arg(long, default_value = "5m", value_parser = parse_at_least_a_second)]
    pub token_interval: Duration,
    /// How long a value read from the secret store (the ingest key, the signing key, auth
    /// headers, URL tokens) is reused before it is read again: a rotation takes effect
    /// within this long, without a restart (`0` reads it for every use; `--secrets-reread`
    /// is the same option, its earlier name).
    #[arg(long, alias = "secrets-reread", default_value = "5m", value_parser = parse_serve_duration)]
    pub secret_reread: Duration,
    /// Embedded queue: dead letters are deleted this long after they reached the
    /// dead-letter queue (`30s`, `12h`, `14d`...; SQS keeps them at most 14 days).
    #[arg(long, default_value = "14d", value_parser = parse_retention)]
    pub dead_letter_retention: Duration,
    /// On SIGTERM or Ctrl-C, how long in-flight deliveries may take to finish.
    #[arg(long, default_value = "30s", value_parser = parse_serve_duration)]
    pub grace: Duration,
    /// Also serve a demo delivery target at /demo/echo (the local examples deliver there).
    #[arg(long)]
    pub demo_echo: bool,
}

#[derive(Debug, Subcommand)]
pub enum RoutesCommand {
    /// List every problem of the routes file (exit 1 if any).
    Check {
        /// The routes file (default: --routes).
        file: Option<PathBuf>,
        /// Also check each target and token URL answers and each template renders with a
        /// sample event.
        #[arg(long)]
        probe: bool,
        /// A JSON file with a trigger event: say which routes it fires and why each does or
        /// does not; with --probe, the sample the templates render (default: one built from
        /// each route's triggers).
        #[arg(long)]
        event: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The route's name.
    pub route: String,
    /// A JSON file with the trigger event.
    #[arg(long)]
    pub event: PathBuf,
    /// A JSON file standing in for the enrich lookup's answer (routes with `enrich`).
    #[arg(long)]
    pub external: Option<PathBuf>,
    /// The attempt number to render (`delivery.attempt`).
    #[arg(long, default_value_t = 1)]
    pub attempt: u32,
    /// For a route with `reply`: a file with the target's answer; the reply it makes is
    /// printed too.
    #[arg(long)]
    pub response: Option<PathBuf>,
    /// For a route with `reply` and `on_failure`: print what goes into the session when
    /// the delivery is dead-lettered.
    #[arg(long)]
    pub failed: bool,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters: delivery id, route, failure, last status, attempts, age.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// One dead letter whole: the event, why it failed, and the payload its route would
    /// send now (rendered with the routes file, when there is one).
    Show {
        /// The delivery id (`dlq list` shows it).
        id: String,
    },
    /// Delete dead letters for good: by delivery id, or every one a filter picks. Asks
    /// before it deletes (type `yes`), unless --yes.
    Discard {
        /// Delivery ids.
        ids: Vec<String>,
        #[arg(long)]
        route: Option<String>,
        /// Only this failure (e.g. http_status, timeout, render).
        #[arg(long)]
        failure: Option<String>,
        /// Every dead letter (required when no id or filter is given).
        #[arg(long)]
        all: bool,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
    /// Move dead letters back to the delivery queue (a fresh schedule, same delivery id).
    Redrive {
        #[arg(long)]
        route: Option<String>,
        /// Only this failure (e.g. http_status, timeout, render).
        #[arg(long)]
        failure: Option<String>,
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Refresh OAuth2 tokens now (all profiles, or PROFILE), whether due or not.
    Refresh { profile: Option<String> },
}

/// A duration of serve's: the routes file's syntax (`30s`, `5m`, `2h`, `1d`), or a plain
/// number of seconds (what these options took before they took units).
fn parse_serve_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse()
            .map(Duration::from_secs)
            .map_err(|_| format!("`{t}` is too large"));
    }
    router_core::time_fmt::parse_duration(t)
}

/// A duration of at least a second (a shorter visibility timeout or refresh interval would
/// spin): `0` is refused.
fn parse_at_least_a_second(s: &str) -> Result<Duration, String> {
    let d = parse_serve_duration(s)?;
    if d < Duration::from_secs(1) {
        return Err("must be at least 1s".to_owned());
    }
    Ok(d)
}

fn parse_retention(s: &str) -> Result<Duration, String> {
    let d = parse_serve_duration(s)?;
    if d.is_zero() {
        return Err("a retention of 0 would delete every dead letter at once".to_owned());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        let argv = ["routerctl", "serve"].iter().chain(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Serve(a) => Ok(a),
            other => panic!("not serve: {other:?}"),
        }
    }

    #[test]
    fn serve_durations_take_units_and_plain_seconds() {
        let d = serve(&[]).unwrap();
        let secs = |d: Duration| d.as_secs();
        assert_eq!(
            (
                secs(d.visibility_timeout),
                secs(d.token_interval),
                secs(d.secret_reread),
                secs(d.grace),
                secs(d.dead_letter_retention)
            ),
            (60, 300, 300, 30, 14 * 86_400),
            "the defaults are the ones documented"
        );
        let a = serve(&[
            "--visibility-timeout",
            "2m",
            "--token-interval",
            "1h",
            "--secret-reread",
            "0",
            "--grace",
            "5",
            "--dead-letter-retention",
            "90",
        ])
        .unwrap();
        assert_eq!(
            (
                secs(a.visibility_timeout),
                secs(a.token_interval),
                secs(a.secret_reread),
                secs(a.grace),
                secs(a.dead_letter_retention)
            ),
            (120, 3600, 0, 5, 90)
        );
    }

    #[test]
    fn the_secret_reread_keeps_its_old_spelling() {
        let a = serve(&["--secrets-reread", "7"]).unwrap();
        assert_eq!(a.secret_reread, Duration::from_secs(7));
    }

    #[test]
    fn bad_serve_durations_are_usage_errors_that_say_why() {
        for (flag, value, why) in [
            ("--visibility-timeout", "0", "at least 1s"),
            ("--visibility-timeout", "0s", "at least 1s"),
            ("--token-interval", "0", "at least 1s"),
            ("--grace", "5w", "unknown unit"),
            ("--secret-reread", "1.5m", "unknown unit"),
            ("--secret-reread", "x5s", "whole number"),
            ("--dead-letter-retention", "0", "delete every dead letter"),
            ("--grace", "99999999999999999999", "too large"),
        ] {
            let e = serve(&[flag, value]).unwrap_err().to_string();
            assert!(e.contains(why), "{flag} {value}: {e}");
        }
    }
}
