//! virtio-drivers' hooks into the platform: DMA memory from the heap, and
//! identity-mapped MMIO.

use core::alloc::Layout;
use core::ptr::NonNull;

use virtio_drivers::{BufferDirection, Hal, PhysAddr, PAGE_SIZE};

/// Memory for virtio queues and buffers. The platform identity maps all RAM
/// and devices see guest-physical addresses, so a pointer is its own DMA
/// address.
#[derive(Debug)]
pub struct VirtioHal;

fn layout(pages: usize) -> Layout {
    Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).expect("DMA allocation size overflows")
}

// SAFETY: `dma_alloc` returns zeroed, page-aligned, exclusively owned heap
// memory whose physical address equals its virtual address (identity
// mapping); `mmio_phys_to_virt` returns identity-mapped addresses (mapping
// them first if above 4 GiB); `share`
// needs no bounce buffers because devices can reach all of RAM.
unsafe impl Hal for VirtioHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let layout = layout(pages);
        // SAFETY: the layout has a non-zero size (pages >= 1 for every
        // virtio-drivers caller) and a valid alignment.
        let ptr = unsafe { alloc::alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(ptr) else { alloc::alloc::handle_alloc_error(layout) };
        (ptr.as_ptr() as PhysAddr, ptr)
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        // SAFETY: the caller guarantees `vaddr` came from `dma_alloc` with
        // the same `pages`, so the layout matches the allocation.
        unsafe { alloc::alloc::dealloc(vaddr.as_ptr(), layout(pages)) };
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        // Below 4 GiB this is a no-op; above (64-bit BARs placed there by
        // UEFI firmware) the region gets identity mapped now.
        if let Err(e) = morgana_x86::map_device(paddr, size as u64) {
            panic!("virtio MMIO region {paddr:#x} (+{size:#x}) cannot be mapped: {e}");
        }
        NonNull::new(morgana_x86::phys_to_virt(paddr) as *mut u8).expect("MMIO region at address 0")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        buffer.as_ptr() as *mut u8 as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}
