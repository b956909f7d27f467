//! Process-wide set-up done once, on first use of the library: glibc malloc keeps freed tensor
//! memory in the heap (no per-step unmap + page-fault cycle; docs/perf-log.md), libtorch's CUDA
//! half is loaded where a driver lists a device (`cuda::torch_cuda`), and torch uses every
//! available core (its default here is 1 thread); a config's `train.threads` sets it per run
//! (`hn_set_num_threads`).

use std::sync::Once;

static INIT: Once = Once::new();

/// Runs the one-time set-up (idempotent, cheap after the first call).
pub fn init() {
    INIT.call_once(|| {
        tune_allocator();
        // Before any torch call that may ask ATen about CUDA (it looks that up once).
        let _ = crate::cuda::torch_cuda::load();
        tch::set_num_threads(default_threads());
    });
}

/// The available cores (no environment switch: threads are a run's option, `train.threads`).
pub fn default_threads() -> i32 {
    std::thread::available_parallelism().map(|n| n.get() as i32).unwrap_or(1)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: mallopt only changes glibc malloc tunables.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

/// [`init`] for exports without a status (`hn_abi_version`): a panic is swallowed.
pub fn init_quietly() {
    let _ = std::panic::catch_unwind(init);
}
