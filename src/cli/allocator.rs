//! Tunes glibc's allocator for `ffq worker`, a long-lived process that must
//! stay near its `--memory-limit`.
//!
//! Measured on TPC-H q18 at SF 10 on two workers limited to 1 GiB: with
//! glibc's defaults a worker's resident memory peaked at 1.35–1.55 GiB
//! while its live heap stayed under 0.75 GiB. The difference was freed
//! memory kept by the allocator: up to 8 arenas per core, each holding up
//! to 64 MiB of fragments that other threads cannot reuse, and large
//! buffers that stop being returned to the system once glibc raises its
//! mmap threshold on its own. Two arenas per process and a fixed 256 KiB
//! mmap threshold (Arrow buffers above it are unmapped when freed) brought
//! the peak to 1.15–1.2 GiB, for 5–10% more time (TPC-H q1 and q9 at
//! SF 10 embedded): so workers use these settings, while one-shot `ffq sql`
//! runs (which stayed within their limit anyway) keep glibc's defaults.
//! A user's own `GLIBC_TUNABLES`, `MALLOC_ARENA_MAX` or
//! `MALLOC_MMAP_THRESHOLD_` wins.

/// Allocations of at least this many bytes get their own mapping.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 256 * 1024;

/// Applies the settings above (glibc on Linux only).
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let set_by_user = [
            "GLIBC_TUNABLES",
            "MALLOC_ARENA_MAX",
            "MALLOC_MMAP_THRESHOLD_",
        ]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
        if set_by_user {
            return;
        }
        let arenas = std::thread::available_parallelism()
            .map_or(2, |n| n.get() / 4)
            .clamp(2, 8) as libc::c_int;
        // SAFETY: mallopt only changes allocator parameters; it is called
        // before the process starts any other thread.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        }
    }
}
