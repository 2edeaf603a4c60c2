//! Morgana's portable runtime core: what every backend and every app shares.
//!
//! * [`Executor`] and [`Handle`]: a single-threaded async executor with timers
//!   that puts the machine to sleep when no task can run.
//! * [`Platform`]: the two things a backend must supply to it (time and a way
//!   to wait for events).
//! * [`Args`]: boot arguments, one schema for argv and kernel command lines.
//! * [`logger`]: the `log` facade routed to the console.
//! * [`memory`]: heap accounting, so peers' requests are refused before an
//!   allocation could fail.
//! * [`metrics`]: counters and gauges, written in the Prometheus text format
//!   when scraped.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod args;
mod executor;
pub mod logger;
pub mod memory;
pub mod metrics;
mod time;

pub use args::{ArgError, Args};
pub use executor::{Executor, Handle, JoinHandle, Platform};
pub use morgana_devices::Instant;
pub use time::{Elapsed, Sleep, Timeout};

/// A file read from a directory: relative path (`/`-separated), bytes,
/// modification time in Unix seconds.
pub type FileEntry = (alloc::string::String, alloc::vec::Vec<u8>, u64);
