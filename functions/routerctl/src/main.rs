//! `routerctl`: the operator CLI, and the whole router in one process (`serve`).

#![warn(clippy::unwrap_used)]

mod check;
mod cli;
mod dlq;
mod echo;
mod error;
mod render_cmd;
mod runner;
mod serve;
mod setup;
mod token;

use clap::Parser;
use cli::{Cli, Command, RoutesCommand, TokenCommand};
use error::CliResult;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve(_)) {
        router_core::telemetry::init();
    } else {
        // Operator commands print their own output; only warnings and errors are logged.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
            .with_writer(std::io::stderr)
            .with_target(false)
            .try_init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("routerctl: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("routerctl: {e}");
            ExitCode::from(e.code)
        }
    }
}

async fn run(cli: Cli) -> CliResult {
    let global = &cli.global;
    match &cli.command {
        Command::Serve(args) => serve::run(global, args).await,
        Command::Routes {
            command: RoutesCommand::Check { file, probe, event },
        } => {
            check::run(
                file.as_deref().unwrap_or(&global.routes),
                *probe,
                event.as_deref(),
            )
            .await
        }
        Command::Render(args) => render_cmd::run(global, args),
        Command::Dlq { command } => dlq::run(global, command).await,
        Command::Token {
            command: TokenCommand::Refresh { profile },
        } => token::refresh(global, profile.as_deref()).await,
    }
}

// The allocator: jemalloc, for Rust and C code alike (SQLite is C), on Linux with glibc.
// Under `serve`'s load glibc's malloc took a quarter of the trigger workers' time and a fifth
// of the deliveries thread's: a request's read buffer and a delivery's futures are large
// allocations, which glibc serves from its locked arena bins, not its thread caches.
// jemalloc, measured as users run `serve` (BENCHMARKS.md): triggers +10-15 %, deliveries
// +20-30 %, p99 lower. Its settings keep the memory down:
// - `narenas:1`: one arena, not 4 per core; each arena keeps partly used pages of every
//   size it served.
// - `tcache_max:1024,tcache_nslots_small_max:64`: threads cache only small sizes, at most
//   64 of each (default 32 KiB and 200).
// - `dirty_decay_ms:500,muzzy_decay_ms:0`: freed pages go back to the system within half a
//   second (default 10 s), by a background thread, so an idle `serve` shrinks after a burst.
// `MALLOC_CONF` in the environment overrides any of them.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
use tikv_jemalloc_sys as _;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Read by jemalloc when it starts (its documented `malloc_conf` symbol).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // exporting a symbol is unsafe: nothing else may define `malloc_conf`
#[unsafe(export_name = "malloc_conf")]
static MALLOC_CONF: &[u8; 112] =
    b"narenas:1,tcache_max:1024,tcache_nslots_small_max:64,dirty_decay_ms:500,muzzy_decay_ms:0,background_thread:true\0";
