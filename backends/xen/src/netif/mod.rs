//! The netif rings (`xen/include/public/io/netif.h`) as netfront uses them,
//! in copy mode: the layouts, what the front end accepts from the backend
//! ([`RxRing`], [`TxRing`]), and the rings with their buffers as a [`Net`]
//! device over any [`EventChannel`] ([`NetIf`]). The backend copies
//! received frames into pages we granted and reads transmitted frames from
//! pages we granted.
//!
//! Setting up the rings with the backend (grants, xenstore) is netfront's
//! part and runs only in a VM; this part is plain memory logic, tested on
//! the host against a simulated backend and fuzzed.

use alloc::vec::Vec;
use core::task::{Context, Waker};

use morgana_devices::{LinkState, Net, NetCounters, NetStats, RxToken, TxToken};

use crate::grant::GrantRef;
use crate::page::{SharedPage, PAGE};
use crate::ring::{FrontRing, RingError, Slots};

/// A transmit request: `size` bytes at `offset` in the granted page.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct TxReq {
    pub gref: u32,
    pub offset: u16,
    pub flags: u16,
    pub id: u16,
    pub size: u16,
}

/// A transmit response; a negative status is an error.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct TxRsp {
    pub id: u16,
    pub status: i16,
}

/// A receive buffer posted to the backend.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct RxReq {
    pub id: u16,
    pub pad: u16,
    pub gref: u32,
}

/// A received frame: a positive status is its length at `offset`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct RxRsp {
    pub id: u16,
    pub offset: u16,
    pub flags: u16,
    pub status: i16,
}

/// `NETRXF_more_data`: the frame continues in the next slot.
pub const NETRXF_MORE_DATA: u16 = 1 << 2;
/// `NETRXF_extra_info`: an extra-info slot follows.
pub const NETRXF_EXTRA_INFO: u16 = 1 << 3;
/// The largest frame accepted (a 1500-byte MTU).
pub const MAX_FRAME: usize = 1500 + 14;

/// A backend broke the netif protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetifError {
    /// Ring indices or a response id.
    Ring(RingError),
    /// Extra-info slots, which follow only for features never negotiated
    /// (GSO); they carry no id, so the ring cannot be kept in step.
    ExtraInfo,
}

impl From<RingError> for NetifError {
    fn from(e: RingError) -> Self {
        NetifError::Ring(e)
    }
}

impl core::fmt::Display for NetifError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NetifError::Ring(e) => e.fmt(f),
            NetifError::ExtraInfo => f.write_str("backend sent extra-info slots that were not negotiated"),
        }
    }
}

mod device;
mod rings;

pub use device::{EventChannel, NetIf, Rx, Tx};
pub use rings::{RxFrame, RxRing, TxRing};
