//! `throughput --op OP --threads N --seconds S FILE...`: the kernel's images per second on
//! N threads, each going round the files from its own starting point until the time is up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::ops::{Job, Op};
use crate::{flag, positional, BoxError};

pub fn run(args: &[String]) -> Result<(), BoxError> {
    let op = Op::parse(flag(args, "--op").ok_or("--op is required")?)?;
    let threads: usize = flag(args, "--threads").unwrap_or("1").parse()?;
    let seconds: f64 = flag(args, "--seconds").unwrap_or("10").parse()?;
    if threads == 0 || !seconds.is_finite() || seconds <= 0.0 {
        return Err("--threads must be at least 1 and --seconds above 0".into());
    }
    let files = positional(args);
    if files.is_empty() {
        return Err("no input files".into());
    }
    let inputs = files
        .iter()
        .map(|f| std::fs::read(f).map_err(|e| format!("reading {f}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let job = op.job()?;

    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let images = AtomicU64::new(0);
    let start = Instant::now();
    let (job, inputs, counter) = (&job, &inputs, &images);
    std::thread::scope(|scope| -> Result<(), BoxError> {
        let workers: Vec<_> = (0..threads)
            .map(|t| scope.spawn(move || work(job, inputs, t, deadline, counter)))
            .collect();
        for worker in workers {
            worker.join().map_err(|_| "a worker thread panicked")??;
        }
        Ok(())
    })?;
    let elapsed = start.elapsed().as_secs_f64();

    let images = images.load(Ordering::Relaxed);
    let answer = json!({
        "images": images,
        "seconds": elapsed,
        "images_per_s": images as f64 / elapsed,
    });
    println!("{answer}");
    Ok(())
}

/// One thread's loop: always finishes the image it started, so the count is whole images.
fn work(
    job: &Job,
    inputs: &[Vec<u8>],
    first: usize,
    deadline: Instant,
    images: &AtomicU64,
) -> Result<(), BoxError> {
    let mut next = first % inputs.len();
    while Instant::now() < deadline {
        job.run(&inputs[next])?;
        images.fetch_add(1, Ordering::Relaxed);
        next = (next + 1) % inputs.len();
    }
    Ok(())
}
