//! `pixmill-bench`: the kernel's side of the speed benchmark (issue 5).
//!
//! - `serve` and `floor` answer JSON-line requests on stdin, so the driver
//!   (`benches/kernel.py`) can interleave pixmill with libvips and Pillow image by image:
//!   `ops` runs the kernel, `floor` the decode alone, `cpu` times them.
//! - `throughput` runs the kernel on N threads for a while (images per second, the figure
//!   the end-to-end load generator compares with).
//! - `mem` runs one op in a fresh process and reports its peak RSS above the baseline.
//! - `count` runs one op (or its floor) once, for callgrind to count its instructions
//!   (`benches/regression.sh`, the cheap regression check CI runs).
//! - `uploads` is the end-to-end harness's upload clients (`benches/e2e.py`'s latency
//!   phase): HTTP, not the kernel, kept here so the harness needs one binary of ours.

mod count;
mod cpu;
mod floor;
mod mem;
mod ops;
mod serve;
mod throughput;
mod uploads;

use std::process::ExitCode;

/// Every failure ends up as one message on stderr (or one `{"error":..}` line in `serve`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str = "usage:
  pixmill-bench serve                 JSON lines on stdin: {\"op\",\"file\",\"reps\"[,\"write\"]}
  pixmill-bench floor                 the same, timing the decode the op needs
  pixmill-bench throughput --op OP --threads N --seconds S FILE...
  pixmill-bench mem --op OP FILE
  pixmill-bench count (--op OP | --floor OP) FILE   one run, for callgrind to count
  pixmill-bench uploads --base URL --tokens FILE --bodies FILE --per-client N [--timeout-s S]
ops: thumbnail, resize, grayscale, blur, webp";

fn main() -> ExitCode {
    // The allocator set up as the `pixmill` server sets it, so the figures are its own.
    pixmill_actors::allocator::tune_for_rendering();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => serve::run(serve::Mode::Kernel),
        Some("floor") => serve::run(serve::Mode::Floor),
        Some("throughput") => throughput::run(&args[1..]),
        Some("mem") => mem::run(&args[1..]),
        Some("count") => count::run(&args[1..]),
        Some("uploads") => uploads::run(&args[1..]),
        _ => Err(USAGE.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pixmill-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The value after `--name` in `args`, if any.
pub fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// The arguments that are neither flags nor flag values.
pub fn positional(args: &[String]) -> Vec<&str> {
    let mut out = Vec::new();
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
        } else if a.starts_with("--") {
            skip = true;
        } else {
            out.push(a.as_str());
        }
    }
    out
}
