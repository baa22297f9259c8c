//! Memory handed back to the system after the engine's large, short-lived allocations.

/// Hands the heap's free pages back to the system. Training allocates gigabytes in many small and large
/// blocks (features, candidates, distance matrices); glibc keeps freed memory in its arenas, so without this a
/// server that has trained a few models keeps their peak as resident memory long after. Called when a training
/// ends and when a hosted model is unloaded. A no-op where the C library is not glibc.
pub fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns unused pages of the allocator's own arenas to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}
