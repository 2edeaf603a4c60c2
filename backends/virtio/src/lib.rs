//! Morgana's virtio backend: the `Net`, `Block`, `Console` and `Entropy`
//! device traits over modern (1.x) virtio devices, found on virtio-mmio
//! (QEMU microvm, Firecracker: from `virtio_mmio.device=` kernel parameters)
//! and on virtio-pci (QEMU pc and q35: bus 0 through the legacy
//! configuration ports). Interrupts come through the IOAPIC.
//!
//! The queue and device logic is the `virtio-drivers` crate's; this crate
//! supplies its DMA and MMIO hooks ([`hal::VirtioHal`]), finds the devices,
//! and adapts each to Morgana's traits with interrupt-driven readiness.
// Bare metal only: on other targets this crate is empty.
#![cfg(target_os = "none")]
#![no_std]
#![warn(missing_docs)]

extern crate alloc;

pub mod blk;
mod discover;
pub mod hal;
pub mod net;
pub mod other;

pub use blk::VirtioBlk;
pub use discover::{discover, Found, Location};
pub use net::VirtioNet;
pub use other::{VirtioConsole, VirtioRng};
pub use virtio_drivers::transport::DeviceType;

/// The transport type of every device here.
pub type Transport = virtio_drivers::transport::SomeTransport<'static>;
