use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    limit_malloc_arenas();
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

/// glibc's malloc gives each thread that contends for the heap an arena of its own, up to
/// eight per core, and rarely returns their freed pages. A process allocates and frees tens
/// of megabytes per photo (image buffers on the CPU pool's threads, upload bodies and
/// originals on the runtime's), so the arenas fill with freed buffers: the bench
/// (benches/e2e.sh) saw standalone's RSS reach 1.2 GB, against 0.44 GB with two arenas and
/// no slower throughput.
/// Set before the runtime starts any thread; `MALLOC_ARENA_MAX` in the environment wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; no thread other than this one
        // exists yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
