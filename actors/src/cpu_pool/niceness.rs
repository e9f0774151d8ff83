//! Background CPU priority for the threads of the [`CpuPool`](super::CpuPool).
//!
//! Transforms keep every core busy for as long as the queue holds jobs; at the same OS
//! priority, a standalone process's (or a co-located gateway's) request handling waits its
//! turn behind them and uploads slow down exactly when the service is busiest. Lowering the
//! pool threads' priority hands the CPU to request handling whenever it has work, and costs
//! the transforms nothing when it has none. Each pool thread lowers its own priority once,
//! for its life, so no raising back (which needs `CAP_SYS_NICE`) is ever needed.
//!
//! Linux only (the nice value is a per-thread attribute there); elsewhere a no-op.

/// How much nicer than its default a rendering thread runs (0 normal, 19 lowest).
const TRANSFORM_NICENESS: i32 = 10;

/// Lowers the calling thread's CPU priority by [`TRANSFORM_NICENESS`] for the rest of its
/// life. Lowering needs no privilege.
pub fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    // SAFETY: get/setpriority with `who` 0 act on the calling thread only (a -1 from
    // getpriority is the nice value -1, not an error, for the calling thread).
    unsafe {
        let current = libc::getpriority(libc::PRIO_PROCESS, 0);
        let lowered = (current + TRANSFORM_NICENESS).min(19);
        if libc::setpriority(libc::PRIO_PROCESS, 0, lowered) != 0 {
            tracing::debug!("could not lower a CPU pool thread's priority");
        }
    }
}
