//! glibc's malloc, set up for a process that renders images. Every binary that renders
//! calls [`tune_for_rendering`] first, before it starts a thread: the `pixmill` server and
//! the benchmark harness, so the figures in BENCHMARKS.md are those of the process users run.
//!
//! Two habits of glibc's defaults cost a renderer dearly:
//! - Each thread that contends for the heap gets an arena of its own, up to eight per core,
//!   and arenas rarely give their freed pages back. A process allocates and frees tens of
//!   megabytes per photo, on the CPU pool's threads and on the runtime's, so the arenas
//!   fill with freed buffers: `benches/e2e.sh` saw standalone's RSS reach 1.2 GB, against
//!   0.44 GB with two arenas and no slower throughput.
//! - Blocks above the mmap threshold (128 KiB, rising to 32 MiB as such blocks are freed)
//!   are fresh mappings, unmapped again on free, and a heap's free top beyond the trim
//!   threshold is handed back. A render's buffers (planes, the progressive decoder's
//!   coefficients, whole images) are megabytes to tens of megabytes and live for
//!   milliseconds, so every image paid the kernel to fault in and zero each of their pages
//!   again: 3,000 page faults per image over the corpus on the grayscale op. With both
//!   thresholds at 256 MiB the freed buffers stay in the heap for the next image: page faults
//!   fell 3 to 5 times and CPU time per image 8 to 10% on blur and grayscale
//!   (`pixmill-bench throughput`, two threads, two arenas). The price is memory kept rather
//!   than returned: a 20 MP blur peaked 5 MB higher (`pixmill-bench mem`), the e2e worker
//!   13 MB (BENCHMARKS.md). A block larger than a second arena's heap (64 MiB, beyond about
//!   20 megapixels of RGB) is still mapped on its own there; the main arena grows with brk
//!   and keeps even those.
//! - A second arena's memory comes in heaps of 64 MiB, and a heap left empty is unmapped at
//!   once, whatever the trim threshold: glibc keeps an empty heap only while the one before
//!   it has less than the top pad (`M_TOP_PAD`, 128 KiB by default) free. Where a render's
//!   buffers do not fit beside what else lives in the arena's first heap (two renders at
//!   once on threads that landed in the same arena, say), each image mapped a second heap,
//!   faulted in its pages and unmapped it again: `benches/e2e.py` saw the render threads
//!   take 1,100 to 1,300 page faults per image in some runs of one build (0 to 40 in
//!   others; which threads share an arena is settled at start), nearly all in
//!   libjpeg-turbo's zeroing of its coefficient arrays, and a render cost 6 to 8% more than
//!   the kernel bench's. A top pad of one whole heap keeps an emptied heap for
//!   the next image. Peak memory is unchanged (the heap was in use at the peak); what
//!   changes is that it is kept, like the rest of the arena: a second arena's heaps no
//!   longer shrink, and the main arena keeps 64 MiB when it trims. The pad is also
//!   address space asked for up front (each new heap is made writable whole, each growth
//!   of the main arena asks for 64 MiB more than it needs), not resident until touched,
//!   but counted in full under `vm.overcommit_memory = 2` or an `RLIMIT_DATA` limit. So it
//!   is set only on 64-bit glibc, where a heap is 64 MiB, and not when the user set a trim
//!   threshold: one who asks glibc to hand memory back gets that instead.
//!
//! A variable of glibc's own (`MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_`,
//! `MALLOC_TRIM_THRESHOLD_`, `MALLOC_TOP_PAD_`, or the same under `GLIBC_TUNABLES`) wins
//! over the setting here. Other C libraries and allocators are left as they are.

/// Arenas for the whole process.
const ARENAS: i32 = 2;
/// The mmap and trim thresholds: 256 MiB.
const KEEP_BYTES: i32 = 256 << 20;
/// The top pad: the size of a second arena's heap on 64-bit glibc, so an emptied heap is
/// never unmapped (see above).
const TOP_PAD: i32 = 64 << 20;

/// Applies the settings above. Call before any thread is started.
pub fn tune_for_rendering() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        let user_set = |variable: &str, tunable: &str| {
            std::env::var_os(variable).is_some() || names_tunable(&tunables, tunable)
        };
        // SAFETY (all four calls): mallopt only sets an allocator parameter; the caller
        // starts no thread before this returns.
        if !user_set("MALLOC_ARENA_MAX", "arena_max") {
            unsafe { libc::mallopt(libc::M_ARENA_MAX, ARENAS) };
        }
        // Setting either threshold turns off glibc's rising mmap threshold, so the trim
        // threshold is set only once the mmap one has been taken: a glibc that refuses 256 MiB
        // (older ones cap it at 32 MiB) keeps its defaults rather than a threshold stuck at
        // 128 KiB.
        let mmap_taken = if user_set("MALLOC_MMAP_THRESHOLD_", "mmap_threshold") {
            true
        } else {
            unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, KEEP_BYTES) == 1 }
        };
        let trim_chosen_by_user = user_set("MALLOC_TRIM_THRESHOLD_", "trim_threshold");
        if mmap_taken && !trim_chosen_by_user {
            unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, KEEP_BYTES) };
        }
        if cfg!(target_pointer_width = "64")
            && !trim_chosen_by_user
            && !user_set("MALLOC_TOP_PAD_", "top_pad")
        {
            unsafe { libc::mallopt(libc::M_TOP_PAD, TOP_PAD) };
        }
    }
}

/// True when `GLIBC_TUNABLES` (`name=value:name=value`) sets `glibc.malloc.<tunable>`.
fn names_tunable(tunables: &str, tunable: &str) -> bool {
    tunables
        .split(':')
        .filter_map(|setting| setting.split_once('='))
        .any(|(name, _)| name.strip_prefix("glibc.malloc.") == Some(tunable))
}

#[cfg(test)]
mod tests {
    use super::names_tunable;

    #[test]
    fn a_tunable_set_by_the_user_is_recognised() {
        let set = "glibc.malloc.arena_max=4:glibc.malloc.trim_threshold=0";
        assert!(names_tunable(set, "arena_max"));
        assert!(names_tunable(set, "trim_threshold"));
        assert!(!names_tunable(set, "mmap_threshold"));
        assert!(!names_tunable(
            "glibc.pthread.mmap_threshold=1",
            "mmap_threshold"
        ));
        assert!(!names_tunable("", "arena_max"));
    }
}
