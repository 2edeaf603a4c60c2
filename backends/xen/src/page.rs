//! Page-sized memory shared with another domain.

use alloc::boxed::Box;
use core::ptr::NonNull;

/// Size of a Xen page.
pub const PAGE: usize = 4096;

#[repr(C, align(4096))]
struct Raw([u8; PAGE]);

/// A zeroed, page-aligned page that is never freed: once granted to
/// another domain or mapped over by Xen, its memory must not be reused.
#[derive(Debug, Clone, Copy)]
pub struct SharedPage {
    ptr: NonNull<u8>,
}

impl SharedPage {
    /// Allocates (and leaks) a page.
    pub fn new() -> SharedPage {
        let raw: &'static mut Raw = Box::leak(Box::new(Raw([0; PAGE])));
        SharedPage { ptr: NonNull::from(&mut raw.0).cast() }
    }

    /// The page's address (identity mapped: also its guest-physical address).
    pub fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// Its guest frame number.
    pub fn gfn(&self) -> u64 {
        (self.addr() / PAGE) as u64
    }

    /// The page as a pointer.
    pub fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Allocates (and leaks) `n` contiguous pages; returns the first.
    pub fn contiguous(n: usize) -> SharedPage {
        let pages: &'static mut [Raw] = Box::leak((0..n).map(|_| Raw([0; PAGE])).collect());
        SharedPage { ptr: NonNull::from(&mut pages[0].0).cast() }
    }

    /// A page at a fixed address that Xen owns (a ring frame named by an
    /// HVM parameter); `None` if `addr` is not page-aligned or null.
    ///
    /// # Safety
    ///
    /// `addr` must be a page of guest memory that is mapped read/write,
    /// stays valid for the life of the VM and is not used as anything else
    /// (not heap, image or another device's page): every access through
    /// the returned page relies on it.
    pub unsafe fn at(addr: usize) -> Option<SharedPage> {
        (addr % PAGE == 0).then_some(())?;
        Some(SharedPage { ptr: NonNull::new(addr as *mut u8)? })
    }
}

impl Default for SharedPage {
    fn default() -> Self {
        SharedPage::new()
    }
}
