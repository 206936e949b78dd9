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
    limit_malloc_arenas();
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
        Command::Serve(args) => {
            return_free_memory_periodically();
            serve::run(global, args).await
        }
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

/// `serve` hands its free heap memory back to the system four times a second: under load
/// glibc keeps freed chunks inside its heaps (a trigger's buffers are freed on another
/// thread than the one that allocated them), which stayed resident after use. Measured
/// (BENCHMARKS.md): 0.6-0.8 MB less peak RSS, throughput unchanged.
fn return_free_memory_periodically() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let every = std::time::Duration::from_millis(250);
        let _ = std::thread::Builder::new()
            .name("malloc-trim".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(every);
                    // SAFETY: malloc_trim only returns free pages of the heaps to the system.
                    #[allow(unsafe_code)]
                    unsafe {
                        libc::malloc_trim(0);
                    }
                }
            });
    }
}

/// glibc gives each thread that allocates its own malloc arena (up to 8 per core), and
/// each keeps the memory it once held: two arenas keep `serve`'s resident memory down
/// (about 2 MB of its 20) without slowing it (BENCHMARKS.md). An explicit
/// `MALLOC_ARENA_MAX` in the environment wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter, and runs before any other
        // thread exists.
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
