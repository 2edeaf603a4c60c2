//! Morgana's network API and its direct (smoltcp) implementation.
//!
//! Apps use [`Stack`], [`TcpListener`], [`TcpStream`] and [`UdpSocket`].
//! Behind them sits a [`driver::StackDriver`] chosen by the build and the boot
//! arguments, never by the app:
//!
//! * [`direct::DirectStack`]: smoltcp over any [`morgana_devices::Net`] device
//!   (a virtio NIC, a Xen netfront, a Linux TAP device, an in-memory link);
//! * host sockets, in the hosted backend, for development on Linux.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod api;
pub mod direct;
pub mod driver;
mod error;
pub mod slots;

pub use api::{ListenAddr, Stack, TcpListener, TcpStream, UdpSocket};
pub use error::Error;
pub use slots::{Slot, SlotMetrics, Slots};
