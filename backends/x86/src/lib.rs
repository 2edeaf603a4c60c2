//! Morgana's bare-metal x86_64 platform, shared by the virtio and Xen
//! backends: the PVH and multiboot2 entry points, long mode, page tables with W^X and a stack
//! guard page, the heap, exception reports, interrupts (LAPIC and IOAPIC),
//! the TSC clock, the CMOS wall clock, the COM1 console and the exit path.
//!
//! Boot: a PVH loader (QEMU, Firecracker, cloud-hypervisor, Xen) enters
//! `pvh_start32` in 32-bit protected mode with paging off and the physical
//! address of `hvm_start_info` in EBX; a multiboot2 loader (GRUB) enters
//! `mb2_start32` the same way, with the multiboot2 information in EBX. Both
//! are parsed into one [`boot_info::BootInfo`] (command line, memory map,
//! RSDP, boot modules). The assembly in [`boot`] zeroes .bss,
//! maps the first 4 GiB with 2 MiB pages, enables long mode, NX, WP and SSE,
//! and calls [`boot::morgana_x86_main`], which sets up the rest and calls the
//! app's `morgana_app_main` (defined by `morgana::main!`).
//!
//! This crate is one of the few places in Morgana with `unsafe` code; every
//! block states the invariant it relies on.
// Bare metal only: on other targets only the pure boot-information
// parsing and checks are compiled, for their unit tests.
#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
pub mod acpi;
mod acpi_tables;
#[cfg(all(target_arch = "x86_64", any(target_os = "none", test)))]
pub mod aes_gcm;
mod backtrace;
#[cfg(target_os = "none")]
pub mod boot;
pub mod boot_info;
#[cfg(target_os = "none")]
pub mod clock;
#[cfg(any(target_os = "none", test))]
pub mod cpu;
#[cfg(target_os = "none")]
pub mod entropy;
#[cfg(target_os = "none")]
pub mod exit;
#[cfg(target_os = "none")]
pub mod fault;
#[cfg(target_os = "none")]
pub mod heap;
#[cfg(target_os = "none")]
pub mod irq;
mod mb2_tags;
#[cfg(target_os = "none")]
mod multiboot2;
#[cfg(target_os = "none")]
mod paging;
#[cfg(target_os = "none")]
pub mod pci;
#[cfg(target_os = "none")]
mod pvh;
#[cfg(target_os = "none")]
pub mod serial;
#[cfg(target_os = "none")]
mod trap;
#[cfg(all(target_os = "none", feature = "xen"))]
pub mod xen;
#[cfg(all(target_os = "none", not(feature = "xen")))]
#[path = "xen_off.rs"]
pub mod xen;

#[cfg(target_os = "none")]
pub use clock::SystemClock;
#[cfg(target_os = "none")]
pub use exit::exit;
#[cfg(target_os = "none")]
pub use irq::{IrqLine, Machine};
#[cfg(target_os = "none")]
pub use paging::map_device;
#[cfg(target_os = "none")]
pub use serial::Serial;

#[cfg(target_os = "none")]
/// Exit status reported for panics and CPU exceptions (QEMU's isa-debug-exit
/// turns it into process status 2 * 64 + 1 = 129).
pub const FATAL_EXIT: i32 = 64;

#[cfg(target_os = "none")]
/// A static that only single-threaded boot code writes (before interrupts
/// are enabled and before anything else can see it).
pub(crate) struct BootCell<T>(core::cell::UnsafeCell<T>);

#[cfg(target_os = "none")]
// SAFETY: Morgana runs on one CPU; a BootCell is written only during boot,
// before any interrupt handler or task exists, and read-only afterwards.
unsafe impl<T> Sync for BootCell<T> {}

#[cfg(target_os = "none")]
impl<T> BootCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        BootCell(core::cell::UnsafeCell::new(value))
    }

    /// # Safety
    /// Only during single-threaded boot, with no other reference alive.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn boot_mut(&self) -> &mut T {
        // SAFETY: the caller guarantees exclusive access.
        unsafe { &mut *self.0.get() }
    }

    /// # Safety
    /// Only after boot has finished writing.
    pub(crate) unsafe fn get(&self) -> &T {
        // SAFETY: the caller guarantees no writer remains.
        unsafe { &*self.0.get() }
    }
}

#[cfg(target_os = "none")]
/// Physical memory is identity mapped: a physical address is the virtual
/// address of the same byte.
pub const fn phys_to_virt(phys: u64) -> usize {
    phys as usize
}
