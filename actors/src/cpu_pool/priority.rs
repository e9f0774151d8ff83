//! Background CPU priority for the threads of the [`CpuPool`](super::CpuPool).
//!
//! Transforms keep every core busy for as long as the queue holds jobs; at the same OS
//! priority, a standalone process's (or a co-located gateway's) request handling waits its
//! turn behind them and uploads slow down exactly when the service is busiest. So each pool
//! thread gives up its claim on the CPU once, for its life (no raising back, which needs
//! `CAP_SYS_NICE`), and no privilege is needed to do it.
//!
//! Linux: `SCHED_IDLE`, the policy for work that should run only when nothing else wants the
//! core. A thread of any other policy that wakes preempts a render at once. A nice value
//! alone does not guarantee that: with nice 10 (what this pool used before) the scheduler
//! (EEVDF, Linux 6.6 on) may let the render finish its time slice first, and on Linux 6.18
//! the gateway's threads waited 0.7 ms on average after each wake-up in an upload-latency
//! phase while both renders ran; with `SCHED_IDLE`, three alternated pairs of phases gave
//! 13 to 16% more uploads a second and a p99 15 to 27% lower (BENCHMARKS.md). Where the
//! policy is refused (a seccomp profile may), the thread falls back to nice 10.
//!
//! The cost is stated where it applies: a render gets only the time the rest of its CPU
//! scheduling group leaves it. On a bare host whose cores other processes keep busy, jobs
//! wait in the queue until they let up (lease renewals run on ordinary threads; a render
//! starved past `engine.max_job_time` is given up on and its job fails, so a host that busy
//! is one to move the workers off). Where each container has a CPU group of its
//! own (Docker on cgroup v2), a worker's renders yield only to its own process, not to its
//! neighbours: groups share the CPU by their weights, whatever their threads' policies.
//!
//! Elsewhere than Linux, a no-op.

/// How much nicer than its default a rendering thread runs where `SCHED_IDLE` is refused
/// (0 normal, 19 lowest).
#[cfg(target_os = "linux")]
const FALLBACK_NICENESS: i32 = 10;

/// Moves the calling thread to background priority for the rest of its life.
pub fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: pid 0 names the calling thread; `param` is a valid, initialised struct
        // that the call only reads.
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } == 0 {
            return;
        }
        let error = std::io::Error::last_os_error();
        // SAFETY: get/setpriority with `who` 0 act on the calling thread only (a -1 from
        // getpriority is the nice value -1, not an error, for the calling thread).
        let lowered = unsafe {
            let current = libc::getpriority(libc::PRIO_PROCESS, 0);
            libc::setpriority(libc::PRIO_PROCESS, 0, (current + FALLBACK_NICENESS).min(19)) == 0
        };
        tracing::debug!(error = %error, niced = lowered,
            "SCHED_IDLE refused for a CPU pool thread; lowered its nice value instead");
    }
}
