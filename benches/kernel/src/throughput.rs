//! `throughput --op OP --threads N --seconds S FILE...`: the kernel's images per second on
//! N threads, each going round the files from its own starting point until the time is up.
//! It also reports what a render cost its thread once warm (CPU time, page faults, context
//! switches per image, each thread's first image left out), the figures `benches/e2e.py`
//! reads for the server's render threads, to tell a render in the pipeline from one here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cpu::ThreadUsage;
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
    let (warm_images, warm) = std::thread::scope(|scope| -> Result<_, BoxError> {
        let workers: Vec<_> = (0..threads)
            .map(|t| scope.spawn(move || work(job, inputs, t, deadline, counter)))
            .collect();
        let (mut warm_images, mut warm) = (0, Some(ThreadUsage::default()));
        for worker in workers {
            let (n, usage) = worker.join().map_err(|_| "a worker thread panicked")??;
            warm_images += n;
            warm = warm.zip(usage).map(|(sum, one)| sum.add(one));
        }
        Ok((warm_images, warm))
    })?;
    let elapsed = start.elapsed().as_secs_f64();

    let images = images.load(Ordering::Relaxed);
    let per_image = |figure: fn(&ThreadUsage) -> f64| {
        warm.as_ref()
            .filter(|_| warm_images > 0)
            .map(|usage| figure(usage) / warm_images as f64)
    };
    let answer = json!({
        "images": images,
        "seconds": elapsed,
        "images_per_s": images as f64 / elapsed,
        "warm": {
            "images": warm_images,
            "cpu_ms_per_image": per_image(|u| u.cpu_seconds * 1000.0),
            "minor_faults_per_image": per_image(|u| u.minor_faults as f64),
            "voluntary_switches_per_image": per_image(|u| u.voluntary_switches as f64),
            "involuntary_switches_per_image": per_image(|u| u.involuntary_switches as f64),
        },
    });
    println!("{answer}");
    Ok(())
}

/// One thread's loop: always finishes the image it started, so the count is whole images.
/// Returns the images after its first and what they cost the thread (`None` where the
/// platform cannot say).
fn work(
    job: &Job,
    inputs: &[Vec<u8>],
    first: usize,
    deadline: Instant,
    images: &AtomicU64,
) -> Result<(u64, Option<ThreadUsage>), BoxError> {
    let mut next = first % inputs.len();
    let mut warm: Option<(u64, Option<ThreadUsage>)> = None;
    while Instant::now() < deadline {
        job.run(&inputs[next])?;
        images.fetch_add(1, Ordering::Relaxed);
        next = (next + 1) % inputs.len();
        match &mut warm {
            None => warm = Some((0, ThreadUsage::of_this_thread())),
            Some((n, _)) => *n += 1,
        }
    }
    Ok(match warm {
        Some((n, since)) => {
            let spent = ThreadUsage::of_this_thread()
                .zip(since)
                .map(|(now, then)| now.since(then));
            (n, spent)
        }
        None => (0, Some(ThreadUsage::default())),
    })
}
