//! The `vigil` binary: parses the command line, sets up logging and runs the chosen role.

mod cli;

use clap::Parser;
use vigil::config::{Cli, Command};

/// Stack of the runtime's threads. Rendering a console page on the server (Leptos SSR) nests deeply — the
/// model page's charts overflowed tokio's 2 MiB default in debug builds, which aborts the whole process.
const RUNTIME_STACK_BYTES: usize = 16 * 1024 * 1024;

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread().enable_all().thread_stack_size(RUNTIME_STACK_BYTES).build()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=info,sqlx=warn".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Serve(config) => vigil::serve(config).await,
        Command::Worker(config) => vigil::work(config).await,
        Command::Admin(vigil::config::AdminCommand::CollectBlobs(args)) => vigil::maintenance::collect_blobs_command(args).await,
        Command::Edge(command) => vigil::edge::cli::run(command).await,
        Command::Admin(vigil::config::AdminCommand::ResetPassword(args)) => vigil::auth::reset::reset_password(args).await,
        other => cli::run(other),
    }
}
