//! A counting global allocator, for measuring heap use instead of guessing it.
//!
//! The library never installs it; a binary or a test opts in:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: edgenet::alloc::CountingAlloc = edgenet::alloc::CountingAlloc::new();
//! ```
//!
//! It wraps [`std::alloc::System`] and keeps four relaxed atomic counters: the number of
//! allocations (including reallocations), the bytes live now, the high-water mark of live bytes
//! since the last [`CountingAlloc::reset_peak`], and the total bytes ever allocated. The cost is
//! a few atomic adds per allocation. When it is not installed, [`CountingAlloc::installed`]
//! reports `false` and every reading is zero, so callers can say "not measured" instead of
//! printing a misleading 0.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

/// A [`GlobalAlloc`] that counts what passes through it.
#[derive(Debug)]
pub struct CountingAlloc {
    allocations: AtomicUsize,
    live: AtomicUsize,
    peak: AtomicUsize,
    total: AtomicUsize,
    used: AtomicBool,
}

/// A reading of the counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct AllocSnapshot {
    /// Allocation calls so far (`alloc`, `alloc_zeroed` and `realloc`).
    pub allocations: usize,
    /// Bytes allocated and not yet freed.
    pub live_bytes: usize,
    /// Highest `live_bytes` since the last peak reset.
    pub peak_bytes: usize,
    /// Bytes ever allocated (a reallocation counts its new size).
    pub total_bytes: usize,
}

impl AllocSnapshot {
    /// Allocation calls between `earlier` and `self`.
    pub fn allocations_since(&self, earlier: &AllocSnapshot) -> usize {
        self.allocations.saturating_sub(earlier.allocations)
    }
}

impl CountingAlloc {
    /// A fresh allocator with all counters at zero.
    pub const fn new() -> Self {
        CountingAlloc {
            allocations: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            total: AtomicUsize::new(0),
            used: AtomicBool::new(false),
        }
    }

    /// Whether any allocation went through this allocator, i.e. whether it is the global one.
    pub fn installed(&self) -> bool {
        self.used.load(Relaxed)
    }

    /// The counters now.
    pub fn snapshot(&self) -> AllocSnapshot {
        AllocSnapshot {
            allocations: self.allocations.load(Relaxed),
            live_bytes: self.live.load(Relaxed),
            peak_bytes: self.peak.load(Relaxed),
            total_bytes: self.total.load(Relaxed),
        }
    }

    /// Start a new high-water window at the current live size; returns the old peak.
    pub fn reset_peak(&self) -> usize {
        self.peak.swap(self.live.load(Relaxed), Relaxed)
    }

    fn grew(&self, bytes: usize) {
        self.allocations.fetch_add(1, Relaxed);
        self.total.fetch_add(bytes, Relaxed);
        let live = self.live.fetch_add(bytes, Relaxed) + bytes;
        self.peak.fetch_max(live, Relaxed);
        if !self.used.load(Relaxed) {
            self.used.store(true, Relaxed);
        }
    }
}

impl Default for CountingAlloc {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every call is forwarded unchanged to `System`; the counters are only bookkeeping.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` (a non-zero-size layout) is passed on as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            self.grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            self.grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator with `layout` (the caller's
        // contract), so `System` may free it.
        unsafe { System.dealloc(ptr, layout) };
        self.live.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`, and the caller guarantees a valid `new_size`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            self.live.fetch_sub(layout.size(), Relaxed);
            self.grew(new_size);
        }
        p
    }
}

/// Gives the heap's free pages back to the operating system (glibc's `malloc_trim(0)`), and
/// returns whether anything was released. glibc keeps memory freed at the top of its heap and
/// in its arenas resident; after a model is loaded, most of what loading allocated is free, so
/// calling this once the plan exists lowers the resident size of a long-running process (not
/// its peak, VmHWM, which loading has already set). A no-op returning `false` on other C
/// libraries.
pub fn release_free_heap() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::os::raw::c_int;
        }
        // SAFETY: malloc_trim takes the allocator's own locks and only releases free pages.
        unsafe { malloc_trim(0) != 0 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Keeps glibc's mmap threshold at 128 KiB (its initial value) for the whole process, and
/// returns whether it was set. glibc otherwise raises the threshold to the size of each mmapped
/// block freed (up to 32 MiB): after loading frees the decoded protobuf, the engine's weights and
/// buffers would come from the heap instead, among the holes loading left, and stay resident
/// with them. Blocks of 128 KiB or more are then mapped and unmapped on their own. The engine
/// allocates nothing per inference, so this costs no speed once a model is loaded. A no-op
/// returning `false` on other C libraries.
pub fn keep_mmap_threshold() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn mallopt(param: std::os::raw::c_int, value: std::os::raw::c_int) -> std::os::raw::c_int;
        }
        const M_MMAP_THRESHOLD: std::os::raw::c_int = -3;
        // SAFETY: mallopt takes the allocator's own lock; this parameter only steers where
        // later large blocks come from.
        unsafe { mallopt(M_MMAP_THRESHOLD, 128 * 1024) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Peak and current resident set size of this process in bytes (`VmHWM`, `VmRSS` from
/// `/proc/self/status`); `None` where that file does not exist (not Linux).
pub fn rss() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |key: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        let kb: u64 = line[key.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_alloc_realloc_and_free() {
        let a = CountingAlloc::new();
        assert!(!a.installed());
        let layout = Layout::from_size_align(100, 8).unwrap();
        // SAFETY: a non-zero layout, and every pointer is freed with the layout it has.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            let q = a.realloc(p, layout, 300);
            assert!(!q.is_null());
            let s = a.snapshot();
            assert_eq!((s.allocations, s.live_bytes, s.peak_bytes, s.total_bytes), (2, 300, 300, 400));
            a.dealloc(q, Layout::from_size_align(300, 8).unwrap());
        }
        let s = a.snapshot();
        assert_eq!((s.live_bytes, s.peak_bytes), (0, 300));
        assert_eq!(a.reset_peak(), 300);
        assert_eq!(a.snapshot().peak_bytes, 0);
        assert!(a.installed());
    }

    #[test]
    fn rss_is_readable_on_linux() {
        if cfg!(target_os = "linux") {
            let (peak, now) = rss().expect("/proc/self/status has VmHWM and VmRSS");
            assert!(peak >= now && now > 0);
        }
    }
}
