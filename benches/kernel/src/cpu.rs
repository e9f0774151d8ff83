//! CPU time of this process (every thread), the benchmark's measure of cost.

use crate::BoxError;

/// Seconds of CPU time this process has used so far.
pub fn process_seconds() -> Result<f64, BoxError> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Err(format!("clock_gettime: {}", std::io::Error::last_os_error()).into());
    }
    Ok(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
}

/// Runs `f` and returns its result with the CPU seconds it took.
pub fn timed<T>(f: impl FnOnce() -> Result<T, BoxError>) -> Result<(T, f64), BoxError> {
    let start = process_seconds()?;
    let value = f()?;
    Ok((value, process_seconds()? - start))
}
