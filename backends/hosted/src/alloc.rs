//! The process's allocator: the system one, with every allocation counted
//! in `morgana_runtime::memory` (so `--memory` budgets a hosted process as
//! a VM's RAM budgets an image).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};

use morgana_runtime::memory;

struct Counted;

#[global_allocator]
static COUNTED: Counted = Counted;

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so its guarantees hold; the counting touches only atomics.
unsafe impl GlobalAlloc for Counted {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded; the caller upholds `alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            memory::allocated(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded; the caller upholds `alloc_zeroed`'s contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            memory::allocated(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded; `ptr` came from `alloc` with this `layout`.
        unsafe { System.dealloc(ptr, layout) };
        memory::freed(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded; the caller upholds `realloc`'s contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            memory::freed(layout.size());
            memory::allocated(new_size);
        }
        p
    }
}
