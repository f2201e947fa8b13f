//! How the server binary's allocator (mimalloc) gives memory back.
//!
//! mimalloc reserves its memory in arenas. On Linux it commits a whole arena at once by default
//! (`arena_eager_commit = 2`: "on systems that overcommit"), and memory in a committed arena is
//! purged by a reset the kernel takes back only under pressure, so freed memory (a burst of
//! remote writes, a large query) stays in the resident set. Committing arenas on demand makes a
//! purge a decommit (`MADV_DONTNEED`): freed memory leaves the resident set after mimalloc's
//! purge delay. Measured on the ingest benchmark (docs/benchmarks.md): resident memory per
//! series after the burst 22.4 kB with the default, 16.4 kB with this, at the same speed.

// The workspace's exception to `unsafe_code` (see Cargo.toml): mimalloc's options are set
// through its C API.
#![allow(unsafe_code)]

use std::os::raw::c_int;

/// `mi_option_arena_eager_commit` in mimalloc 3's `mimalloc.h` (the Rust bindings do not name
/// it); [`tests::option_numbers_match_mimalloc`] checks the number against its default.
const ARENA_EAGER_COMMIT: c_int = 4;

/// Commits mimalloc's arenas on demand, so that freed memory is returned to the OS. The
/// value is set, not defaulted (`mi_option_set_default` would lose to mimalloc's own
/// initialization when that runs first), so `MIMALLOC_ARENA_EAGER_COMMIT` in the environment
/// has no effect; the other `MIMALLOC_*` options (`MIMALLOC_PURGE_DELAY`) still apply. It applies
/// to arenas reserved afterwards, and Rust's runtime allocates (reserving the first arena) before
/// `main`: the binary calls this from an ELF constructor (`.init_array`, see `src/main.rs`).
pub extern "C" fn return_freed_memory() {
    // SAFETY: `mi_option_set` only stores an option value; any thread may call it.
    unsafe { libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_numbers_match_mimalloc() {
        // The option's documented default is 2 ("only where the OS overcommits"), a value few
        // of mimalloc's options have: a renumbered enum would read another option here.
        // SAFETY: reads an option value.
        let value = unsafe { libmimalloc_sys::mi_option_get(ARENA_EAGER_COMMIT) };
        assert_eq!(value, 2);
    }
}
