//! The xenstore protocol (`xen/include/public/io/xs_wire.h`) over its
//! shared ring page, and a client.
//!
//! Requests and responses are a 16-byte header (type, request id,
//! transaction id, length) and a payload, streamed through two 1 KiB
//! circular buffers. The daemon on the other side is trusted no more than
//! any backend: lengths and indices are checked.

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::sync::atomic::{fence, Ordering};
use core::task::{Context, Poll, Waker};

use crate::page::SharedPage;

/// Message types.
#[allow(missing_docs)]
pub mod op {
    pub const DIRECTORY: u32 = 1;
    pub const READ: u32 = 2;
    pub const WATCH: u32 = 4;
    pub const UNWATCH: u32 = 5;
    pub const TRANSACTION_START: u32 = 6;
    pub const TRANSACTION_END: u32 = 7;
    pub const WRITE: u32 = 11;
    pub const WATCH_EVENT: u32 = 15;
    pub const ERROR: u32 = 16;
}

const RING: u32 = 1024;
const REQ: usize = 0;
const RSP: usize = 1024;
const REQ_CONS: usize = 2048;
const REQ_PROD: usize = 2052;
const RSP_CONS: usize = 2056;
const RSP_PROD: usize = 2060;
/// Largest payload the protocol allows.
pub const MAX_PAYLOAD: usize = 4096;
/// Watch events kept for [`Client::poll_event`]; older ones are dropped.
const MAX_EVENTS: usize = 64;
/// Messages that are not the answer (watch events, late answers) taken
/// while waiting for one, before the daemon counts as flooding the ring.
const MAX_UNRELATED: usize = 256;

/// A failed xenstore operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XsError {
    /// The daemon answered with an error (`ENOENT`, `EACCES`, `EAGAIN`...).
    Daemon(String),
    /// The daemon broke the protocol.
    Protocol(&'static str),
    /// No answer in time.
    TimedOut,
}

impl core::fmt::Display for XsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            XsError::Daemon(e) => write!(f, "xenstore: {e}"),
            XsError::Protocol(e) => write!(f, "xenstore protocol error: {e}"),
            XsError::TimedOut => f.write_str("xenstore did not answer"),
        }
    }
}

/// One message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Type.
    pub kind: u32,
    /// Request id (echoed in the response).
    pub req_id: u32,
    /// Transaction id (0: none).
    pub tx_id: u32,
    /// Payload.
    pub payload: Vec<u8>,
}

impl Message {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.payload.len());
        for v in [self.kind, self.req_id, self.tx_id, self.payload.len() as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.payload);
        out
    }
}

mod client;
#[cfg(any(test, feature = "sim"))]
mod fake;
mod ring;

#[cfg(any(test, feature = "sim"))]
use client::nul_terminated;
use ring::read_message;

pub use client::Client;
#[cfg(any(test, feature = "sim"))]
pub use fake::FakeDaemon;
pub use ring::{Channel, RingPage};
