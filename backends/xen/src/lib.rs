//! Morgana's Xen paravirtual drivers, for PVH guests.
//!
//! * [`ring`]: Xen's shared request/response rings (`io/ring.h`), checked
//!   against a misbehaving backend;
//! * [`grant`]: grant table v1 entries;
//! * [`xenstore`]: the xenstore wire protocol and client;
//! * [`page`]: page-sized shared memory;
//! * [`netif`]: netfront's rings, the checks on what its backend answers,
//!   and its buffers as a `Net` device over any event channel;
//! * [`blkif`]: blkfront's ring and the checks on what its backend answers;
//! * `sim` (tests, feature `sim`): simulated backends;
//! * `console`, `netfront`, `blkfront` (VM builds): the PV console as a
//!   `Console`, netfront's connection to its backend, blkfront as a `Block`
//!   device.
//!
//! The protocol logic (rings, grants, xenstore messages, what netfront and
//! blkfront accept from their backends) is plain memory manipulation and is
//! tested and fuzzed on the host against simulated backends; the parts that
//! make hypercalls build only for the VM target.
#![no_std]
#![warn(missing_docs)]

extern crate alloc;

pub mod blkif;
pub mod grant;
pub mod netif;
pub mod page;
pub mod ring;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod xenstore;

#[cfg(target_os = "none")]
mod blkfront;
#[cfg(target_os = "none")]
mod console;
#[cfg(target_os = "none")]
mod netfront;
#[cfg(target_os = "none")]
mod platform;

#[cfg(target_os = "none")]
pub use blkfront::Blkfront;
#[cfg(target_os = "none")]
pub use console::PvConsole;
#[cfg(target_os = "none")]
pub use netfront::Netfront;
#[cfg(target_os = "none")]
pub use platform::{start, Devices, Store, StoreChannel};

/// Xenbus states (`io/xenbus.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum XenbusState {
    Unknown = 0,
    Initialising = 1,
    InitWait = 2,
    Initialised = 3,
    Connected = 4,
    Closing = 5,
    Closed = 6,
    Reconfiguring = 7,
    Reconfigured = 8,
}

impl XenbusState {
    /// Parses the decimal state stored in xenstore.
    pub fn parse(s: &str) -> Option<XenbusState> {
        use XenbusState::*;
        Some(match s.trim().parse::<u8>().ok()? {
            0 => Unknown,
            1 => Initialising,
            2 => InitWait,
            3 => Initialised,
            4 => Connected,
            5 => Closing,
            6 => Closed,
            7 => Reconfiguring,
            8 => Reconfigured,
            _ => return None,
        })
    }
}
