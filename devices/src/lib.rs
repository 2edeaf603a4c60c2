//! Device traits for Morgana unikernels.
//!
//! One trait per device class. Backends (hosted Linux, virtio, Xen) implement
//! them; protocols and applications are written against them. The traits are
//! deliberately small: a new driver needs nothing but this crate.
//!
//! Conventions shared by every trait:
//!
//! * **No call blocks on the network or on a peer.** Calls that would have to
//!   wait either return `None`/`Poll::Pending` after registering the caller's
//!   [`core::task::Waker`], or are `async`. The only blocking calls are the
//!   ones documented as such (console output, entropy), which complete in
//!   bounded time on every backend.
//! * **Buffers are borrowed, never kept.** A device copies what it needs out of
//!   a caller's buffer before the call returns.
//! * **Errors are typed** and every variant says when it happens.
//! * Devices are used from one thread (the unikernel's single executor), so
//!   traits take `&mut self` and need not be `Send`.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod aes_gcm;
mod block;
mod clock;
mod console;
mod entropy;
mod net;

pub use aes_gcm::{aes_gcm, register_aes_gcm, AesGcm, AesGcmError, AesGcmKey};
pub use block::{Block, BlockError, BlockInfo};
pub use clock::{Clock, Instant, WallTime};
pub use console::{Console, ConsoleError};
pub use entropy::{Entropy, EntropyError};
pub use net::{LinkState, Net, NetCounters, NetStats, RxToken, TxToken};
