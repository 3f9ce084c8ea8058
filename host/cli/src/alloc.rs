//! The process's allocators: mimalloc for Rust (with the options that keep RSS low), and the
//! glibc malloc tuning RocksDB's C++ allocations need.

use std::alloc::{GlobalAlloc, Layout};

/// mimalloc instead of glibc's malloc: the server allocates many small, short-lived buffers per
/// request (decoded paths, change records, encoded txns), where glibc's allocator showed up as about
/// a tenth of the server's CPU in profiles.
#[global_allocator]
static GLOBAL: Mimalloc = Mimalloc;

/// Every size class of mimalloc is a multiple of 8 bytes, so `mi_malloc` memory is 8-aligned.
const MI_MIN_ALIGN: usize = 8;

/// mimalloc, with plain `mi_malloc`/`mi_realloc` for alignments up to 8, as Rust's own `System`
/// allocator does with `malloc`. `mimalloc::MiMalloc` sends every allocation to
/// `mi_malloc_aligned`, which in mimalloc v3 takes a slow path for any alignment above 1 when the
/// size class is not a power of two and then sometimes over-allocates into the next class (about
/// 3% of the server's CPU in profiles, and 16 extra bytes on many small objects).
pub struct Mimalloc;

fn plain(align: usize, size: usize) -> bool {
    align <= MI_MIN_ALIGN && align <= size
}

// SAFETY: each method forwards to mimalloc with the contract `GlobalAlloc` requires: memory from
// `mi_malloc`/`mi_zalloc`/`mi_realloc` is 8-aligned (so valid for `align <= 8`), larger alignments
// go to `MiMalloc`, and every block, however allocated, is freed by `mi_free`.
unsafe impl GlobalAlloc for Mimalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if plain(layout.align(), layout.size()) {
            // SAFETY: see the impl.
            unsafe { libmimalloc_sys::mi_malloc(layout.size()).cast() }
        } else {
            // SAFETY: the caller's contract, passed on.
            unsafe { mimalloc::MiMalloc.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if plain(layout.align(), layout.size()) {
            // SAFETY: see the impl.
            unsafe { libmimalloc_sys::mi_zalloc(layout.size()).cast() }
        } else {
            // SAFETY: the caller's contract, passed on.
            unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on (`MiMalloc::dealloc` is `mi_free` too).
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if plain(layout.align(), new_size) {
            // SAFETY: `ptr` is a live mimalloc block (the caller's contract); see the impl.
            unsafe { libmimalloc_sys::mi_realloc(ptr.cast(), new_size).cast() }
        } else {
            // SAFETY: the caller's contract, passed on.
            unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
        }
    }
}

/// mimalloc's `mi_option_arena_eager_commit` (position 4 of `mi_option_e`, the same in mimalloc v2
/// and v3; the crate exports no name for it).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Memory is a headline number: commit arena memory only as it is used. Freed pages go back to the
/// OS after mimalloc's default purge delay (10 ms). An immediate purge (delay 0) was tried for RSS
/// and is not worth it: with 1M znodes it saves under 3 MiB today (205 vs 208 MiB), while every
/// request or reply of 512 KiB or more (a huge allocation in mimalloc) then faults its pages in
/// afresh: a stream of 1 MB setData cost 8.3 ms of server CPU per MB with delay 0 and 4.4 with the
/// default (server CPU seconds over a 10 s stream, divided by MB sent; 2026-12-07). The
/// `MIMALLOC_*` environment variables still apply when set.
///
/// It must run before the first allocation reserves mimalloc's first arena, so it is a constructor
/// (`.init_array`), run before `main` and before the Rust runtime allocates anything.
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static TUNE_ALLOCATOR: extern "C" fn() = {
    extern "C" fn tune() {
        tune_allocator();
    }
    tune
};

fn tune_allocator() {
    if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_none() {
        // SAFETY: sets a process-wide allocator option; called once at startup before any other
        // thread exists.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
    }
    // RocksDB (C++) allocates through glibc's malloc. Once glibc's dynamic mmap threshold has
    // risen past a memtable's 1 MiB arena blocks, they come from malloc heaps that keep them
    // resident after the memtable is flushed and freed. A fixed threshold (which also turns the
    // dynamic one off) maps each such block and unmaps it on free (1M znodes: RSS -20 MiB, no
    // measurable CPU cost). `MALLOC_MMAP_THRESHOLD_` still applies when set.
    #[cfg(target_env = "gnu")]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: sets a process-wide allocator option before any other thread exists.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10) };
    }
}
