//! `mem --op OP FILE`: peak memory of one op in this (fresh) process.
//!
//! The file is read first; then VmHWM is reset (`5` into `/proc/self/clear_refs`), so the
//! read's own peak does not count; the baseline is VmRSS at that point, the peak is VmHWM
//! after the op.

use serde_json::json;

use crate::ops::Op;
use crate::{flag, positional, BoxError};

pub fn run(args: &[String]) -> Result<(), BoxError> {
    let op = Op::parse(flag(args, "--op").ok_or("--op is required")?)?;
    let file = *positional(args).first().ok_or("no input file")?;
    let input = std::fs::read(file).map_err(|e| format!("reading {file}: {e}"))?;
    let job = op.job()?;

    let hwm_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let baseline = status_kb("VmRSS")?;
    let output = job.run(&input)?;
    let peak = status_kb("VmHWM")?;

    let (w, h) = full_size(&input)?;
    let mb = |kb: u64| kb as f64 * 1024.0 / 1e6;
    let answer = json!({
        "op": format!("{op:?}").to_lowercase(),
        "file": file,
        "baseline_mb": mb(baseline),
        "peak_mb": mb(peak),
        "above_mb": mb(peak.saturating_sub(baseline)),
        "full_buffer_mb": f64::from(w) * f64::from(h) * 3.0 / 1e6,
        "output_width": output.width,
        "output_height": output.height,
        // Without the reset, the peak may include the file read itself.
        "hwm_reset": hwm_reset,
    });
    println!("{answer}");
    Ok(())
}

/// A `kB` field of `/proc/self/status`.
fn status_kb(field: &str) -> Result<u64, BoxError> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/self/status").into())
}

/// The input's stored size, from the kernel's probe.
fn full_size(input: &[u8]) -> Result<(u32, u32), BoxError> {
    let probed = pixmill_actors::transform::probe(input, &Default::default())?;
    Ok((probed.width, probed.height))
}
