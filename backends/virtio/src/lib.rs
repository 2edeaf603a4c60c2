//! Morgana's virtio backend: the `Net`, `Block`, `Console` and `Entropy`
//! device traits over modern (1.x) virtio devices, found on virtio-mmio
//! (QEMU microvm, Firecracker: from `virtio_mmio.device=` kernel parameters)
//! and on virtio-pci (QEMU pc and q35: bus 0 through the legacy
//! configuration ports). Interrupts come through the IOAPIC.
//!
//! The queue and device logic is the `virtio-drivers` crate's; this crate
//! supplies its DMA and MMIO hooks ([`hal::VirtioHal`]), finds the devices,
//! and adapts each to Morgana's traits with interrupt-driven readiness
//! (virtio-blk and virtio-rng drive the virtqueue themselves, so that no
//! request spins on the used ring).
//!
//! Only the VM target builds the devices; elsewhere the crate holds just the
//! net driver's queue logic ([`net::NetDevice`]) and [`used`] (what the
//! drivers accept from a device's used rings), which are tested on the host
//! ([`used`] is also fuzzed).
#![no_std]
#![warn(missing_docs)]

extern crate alloc;

#[cfg(target_os = "none")]
pub mod blk;
#[cfg(target_os = "none")]
mod discover;
#[cfg(target_os = "none")]
pub mod hal;
pub mod net;
#[cfg(target_os = "none")]
pub mod other;
pub mod used;

#[cfg(target_os = "none")]
pub use blk::VirtioBlk;
#[cfg(target_os = "none")]
pub use discover::{discover, Found, Location};
#[cfg(target_os = "none")]
pub use net::VirtioNet;
#[cfg(target_os = "none")]
pub use other::{VirtioConsole, VirtioRng, RNG_BUF};
#[cfg(target_os = "none")]
pub use virtio_drivers::transport::DeviceType;

/// The transport type of every device here.
#[cfg(target_os = "none")]
pub type Transport = virtio_drivers::transport::SomeTransport<'static>;
