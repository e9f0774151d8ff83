use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    pixmill_actors::allocator::tune_for_rendering();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("pixmill: could not start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(pixmill::cli::run(pixmill::cli::Cli::parse()))
}
