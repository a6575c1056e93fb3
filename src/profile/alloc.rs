//! A global allocator wrapper that counts live and peak heap bytes and allocation calls.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static INSTALLED: AtomicUsize = AtomicUsize::new(0);
static CALLS: AtomicUsize = AtomicUsize::new(0);

/// Wraps the system allocator and tracks heap use. Install it in a binary with
/// `#[global_allocator] static A: CountingAlloc = CountingAlloc;`.
pub struct CountingAlloc;

fn grow(n: usize) {
    CALLS.fetch_add(1, Ordering::Relaxed);
    let now = CURRENT.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        INSTALLED.store(1, Ordering::Relaxed);
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            grow(l.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        INSTALLED.store(1, Ordering::Relaxed);
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            grow(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        CURRENT.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if new >= l.size() {
                grow(new - l.size());
            } else {
                CURRENT.fetch_sub(l.size() - new, Ordering::Relaxed);
            }
        }
        q
    }
}

/// Heap bytes live now, or `None` when `CountingAlloc` is not the global allocator.
pub fn current_bytes() -> Option<usize> {
    (INSTALLED.load(Ordering::Relaxed) == 1).then(|| CURRENT.load(Ordering::Relaxed))
}

/// Highest heap use since the last `reset_peak`, or `None` when not installed.
pub fn peak_bytes() -> Option<usize> {
    (INSTALLED.load(Ordering::Relaxed) == 1).then(|| PEAK.load(Ordering::Relaxed))
}

/// Restarts peak tracking from the current heap use.
pub fn reset_peak() {
    PEAK.store(CURRENT.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// Allocation calls (alloc, alloc_zeroed and growing realloc) since the program started, or
/// `None` when `CountingAlloc` is not the global allocator.
pub fn alloc_calls() -> Option<usize> {
    (INSTALLED.load(Ordering::Relaxed) == 1).then(|| CALLS.load(Ordering::Relaxed))
}
