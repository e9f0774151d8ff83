//! Background CPU priority for the transformer's work on the blocking pool.
//!
//! Transforms keep every core busy for as long as the queue holds jobs; at the same OS
//! priority, a standalone process's (or a co-located gateway's) request handling waits its
//! turn behind them and uploads slow down exactly when the service is busiest. Lowering the
//! thread's priority while it renders hands the CPU to request handling whenever it has
//! work, and costs the transforms nothing when it has none.
//!
//! Linux only (the nice value is a per-thread attribute there); elsewhere a no-op.
//! Known limit: the transforms run on tokio's shared blocking pool, so the guard restores
//! the thread's previous priority when the render ends. Raising it back needs
//! `CAP_SYS_NICE` or an `RLIMIT_NICE` allowance; without them the thread stays at the lower
//! priority, and a later blocking task of the gateway (a probe, a SQLite write) that lands
//! on it runs in the background too.

/// How much nicer than its default a rendering thread runs (0 normal, 19 lowest).
const TRANSFORM_NICENESS: i32 = 10;

/// Holds the calling thread at background priority until dropped.
pub struct BackgroundPriority {
    #[cfg(target_os = "linux")]
    previous: Option<libc::c_int>,
}

impl BackgroundPriority {
    pub fn enter() -> Self {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: get/setpriority with `who` 0 act on the calling thread only, and
            // cannot fail for it (a -1 from getpriority is the nice value -1).
            unsafe {
                let previous = libc::getpriority(libc::PRIO_PROCESS, 0);
                let lowered = (previous + TRANSFORM_NICENESS).min(19);
                if libc::setpriority(libc::PRIO_PROCESS, 0, lowered) != 0 {
                    return Self { previous: None };
                }
                Self {
                    previous: Some(previous),
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        Self {}
    }
}

impl Drop for BackgroundPriority {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(previous) = self.previous {
            // SAFETY: as in `enter`; a refusal (no CAP_SYS_NICE) leaves the thread nicer.
            if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, previous) } != 0 {
                tracing::debug!("could not restore a transform thread's priority");
            }
        }
    }
}
