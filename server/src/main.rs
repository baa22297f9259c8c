//! The `vigil` binary: parses the command line, sets up logging and runs the chosen role.

mod cli;

use clap::Parser;
use vigil::config::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=info,sqlx=warn".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Serve(config) => vigil::serve(config).await,
        other => cli::run(other),
    }
}
