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
    /// (after a crash, in-flight deliveries come back after this long).
    #[arg(long, default_value_t = 60)]
    pub visibility_timeout: u64,
    /// Seconds between token refresh runs.
    #[arg(long, default_value_t = 300)]
    pub token_interval: u64,
    /// Seconds a value read from the secret store (the ingest key, the signing key, auth
    /// headers, URL tokens) is reused before it is read again: a rotation takes effect
    /// within this long, without a restart.
    #[arg(long, default_value_t = 300)]
    pub secrets_reread: u64,
    /// Embedded queue: dead letters are deleted this long after they reached the
    /// dead-letter queue (`30s`, `12h`, `14d`...; SQS keeps them at most 14 days).
    #[arg(long, default_value = "14d", value_parser = parse_retention)]
    pub dead_letter_retention: Duration,
    /// On SIGTERM or Ctrl-C, how long in-flight deliveries may take to finish.
    #[arg(long, default_value_t = 30)]
    pub grace: u64,
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
        /// The sample event for --probe (default: one built from each route's triggers).
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

fn parse_retention(s: &str) -> Result<Duration, String> {
    let d = router_core::time_fmt::parse_duration(s)?;
    if d.is_zero() {
        return Err("a retention of 0 would delete every dead letter at once".to_owned());
    }
    Ok(d)
}
