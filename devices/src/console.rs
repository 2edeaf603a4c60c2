//! Text consoles: a serial port, a hypervisor console ring, stdio.

use core::fmt;
use core::task::{Context, Poll};

/// A byte-stream console.
pub trait Console {
    /// Writes all of `bytes`. Blocks until the bytes are handed to the device,
    /// which on every backend takes bounded time (a serial line at worst
    /// drains at its baud rate). Output is not interpreted; use `\r\n` where
    /// the other side wants it.
    fn write(&mut self, bytes: &[u8]) -> Result<(), ConsoleError>;

    /// Reads what input is waiting, up to `buf.len()` bytes. Returns
    /// `Poll::Pending` after registering `cx.waker()` when nothing is waiting;
    /// `Ready(Ok(0))` means the input has ended (or the backend has none).
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize, ConsoleError>>;
}

/// Why console I/O failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleError {
    /// The device or the other end has gone away.
    Closed,
    /// The device reported an error.
    Device,
}

impl fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConsoleError::Closed => "console closed",
            ConsoleError::Device => "console device error",
        })
    }
}

impl core::error::Error for ConsoleError {}
