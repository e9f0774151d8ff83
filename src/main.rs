use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    pixmill::cli::run(pixmill::cli::Cli::parse()).await
}
