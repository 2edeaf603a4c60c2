//! [`Counted`]: wraps a backend's global allocator so that every byte it
//! hands out and takes back is counted in `morgana_runtime::memory`, the
//! heap budget code acting for network peers consults. The VM backend
//! wraps talc, the hosted backend the system allocator.
#![no_std]

use core::alloc::{GlobalAlloc, Layout};

use morgana_runtime::memory;

/// `A`, counted.
#[derive(Debug)]
pub struct Counted<A>(pub A);

// SAFETY: every method forwards to `A`'s `GlobalAlloc` with the caller's
// arguments unchanged, so `A`'s guarantees hold; the counting touches only
// atomics.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counted<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded; the caller upholds `alloc`'s contract.
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            memory::allocated(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded; the caller upholds `alloc_zeroed`'s contract.
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            memory::allocated(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded; `ptr` came from this allocator with `layout`.
        unsafe { self.0.dealloc(ptr, layout) };
        memory::freed(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded; the caller upholds `realloc`'s contract.
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            memory::freed(layout.size());
            memory::allocated(new_size);
        }
        p
    }
}
