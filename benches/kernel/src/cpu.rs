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

/// What the calling thread has cost so far (`getrusage(RUSAGE_THREAD)`): the figures the
/// end-to-end harness also reads for the server's render threads from `/proc`, so a render
/// in the pipeline and one here can be compared.
#[derive(Clone, Copy, Debug, Default)]
pub struct ThreadUsage {
    pub cpu_seconds: f64,
    /// Minor page faults: pages the kernel had to map (and zero) for this thread.
    pub minor_faults: u64,
    /// Times the thread gave up the CPU to wait.
    pub voluntary_switches: u64,
    /// Times it was preempted.
    pub involuntary_switches: u64,
}

impl ThreadUsage {
    /// `None` where the platform has no per-thread usage (or, never seen, the call fails):
    /// the figures are then reported as null rather than failing the run.
    #[cfg(target_os = "linux")]
    pub fn of_this_thread() -> Option<Self> {
        // SAFETY: an all-zero rusage is a valid value of the plain C struct.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `usage` is valid and writable for the duration of the call.
        if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) } != 0 {
            return None;
        }
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
        Some(Self {
            cpu_seconds: seconds(usage.ru_utime) + seconds(usage.ru_stime),
            minor_faults: usage.ru_minflt as u64,
            voluntary_switches: usage.ru_nvcsw as u64,
            involuntary_switches: usage.ru_nivcsw as u64,
        })
    }

    #[cfg(not(target_os = "linux"))]
    pub fn of_this_thread() -> Option<Self> {
        None
    }

    /// What was spent between `earlier` and `self`.
    pub fn since(self, earlier: Self) -> Self {
        Self {
            cpu_seconds: self.cpu_seconds - earlier.cpu_seconds,
            minor_faults: self.minor_faults - earlier.minor_faults,
            voluntary_switches: self.voluntary_switches - earlier.voluntary_switches,
            involuntary_switches: self.involuntary_switches - earlier.involuntary_switches,
        }
    }

    pub fn add(self, other: Self) -> Self {
        Self {
            cpu_seconds: self.cpu_seconds + other.cpu_seconds,
            minor_faults: self.minor_faults + other.minor_faults,
            voluntary_switches: self.voluntary_switches + other.voluntary_switches,
            involuntary_switches: self.involuntary_switches + other.involuntary_switches,
        }
    }
}
