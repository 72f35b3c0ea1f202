//! Counts the heap bytes each thread holds, so a harness can bound what a core keeps.
//!
//! The structure-aware targets run a core on one thread; the count is per thread so the
//! corpus replay test, which runs targets on parallel threads, measures each on its own.
//! The counter is a const-initialised thread-local without a destructor: reading it never
//! allocates, which an allocator must not do.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn add(delta: isize) {
    // During thread teardown the slot may be gone; those bytes belong to no harness.
    let _ = LIVE_BYTES.try_with(|live| live.set(live.get() + delta));
}

/// Heap bytes allocated and not yet freed by the current thread (frees of memory another
/// thread allocated count too, so only differences on one thread mean anything).
pub fn live_bytes() -> isize {
    LIVE_BYTES.try_with(Cell::get).unwrap_or(0)
}

/// The system allocator, counting.
pub struct CountingAllocator;

// SAFETY: every call forwards to the system allocator with the caller's arguments unchanged;
// the bookkeeping touches only a thread-local integer.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            add(layout.size() as isize);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            add(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) };
        add(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            add(new_size as isize - layout.size() as isize);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;
