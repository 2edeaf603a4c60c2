//! DNS cookies (RFC 7873) with the interoperable server cookie of
//! RFC 9018: servers of one anycast name that share the secret accept each
//! other's cookies.
//!
//! A server cookie is 16 octets: version 1, three reserved octets, a 32-bit
//! timestamp (seconds, serial-number arithmetic) and SipHash-2-4 of
//! client cookie | version | reserved | timestamp | client address, keyed
//! with the 128-bit secret. One is valid for an hour (five minutes of
//! clock skew into the future allowed); a new one is handed out once the
//! one received is older than half an hour (RFC 9018 §4.3).

use alloc::vec::Vec;

use crate::answer::MAX_UDP;
use crate::wire::{flags, Query, Writer};

/// The EDNS option code of COOKIE.
pub const OPTION: u16 = 10;
/// The extended rcode BADCOOKIE (RFC 7873 §8).
pub const BADCOOKIE: u16 = 23;
/// Seconds a server cookie stays valid.
pub const LIFETIME: u32 = 3600;
/// Seconds after which a valid cookie is replaced by a fresh one.
pub const REFRESH: u32 = 1800;
/// Seconds a cookie's timestamp may be ahead of our clock.
pub const SKEW: u32 = 300;
/// Octets of a client cookie.
const CLIENT_LEN: usize = 8;
/// Octets of an RFC 9018 server cookie.
const SERVER_LEN: usize = 16;

/// A COOKIE option as received: a client cookie and possibly a server
/// cookie of 8 to 32 octets (RFC 7873 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    client: [u8; CLIENT_LEN],
    server: [u8; 32],
    server_len: u8,
}

impl Received {
    /// The option's data, `None` when its length is malformed: neither 8
    /// (client cookie alone) nor 16 to 40 (RFC 7873 §5.2.2).
    pub fn parse(data: &[u8]) -> Option<Received> {
        if data.len() != CLIENT_LEN && !(16..=40).contains(&data.len()) {
            return None;
        }
        let (client, server) = data.split_at(CLIENT_LEN);
        let mut r = Received { client: client.try_into().ok()?, server: [0; 32], server_len: server.len() as u8 };
        r.server[..server.len()].copy_from_slice(server);
        Some(r)
    }

    /// The client cookie.
    pub fn client(&self) -> &[u8; CLIENT_LEN] {
        &self.client
    }

    /// The server cookie, empty when the client sent none.
    pub fn server(&self) -> &[u8] {
        &self.server[..self.server_len as usize]
    }
}

/// What a received cookie proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A client cookie only: the client has no server cookie yet.
    ClientOnly,
    /// A server cookie we made, for this client and address, not expired:
    /// the source address is not spoofed.
    Valid,
    /// A server cookie that is not ours, for another address, of another
    /// version or length, or expired.
    Invalid,
}

/// The COOKIE option of a response, ready for the OPT record: code,
/// length, the client cookie and our server cookie.
pub type Reply = [u8; 4 + CLIENT_LEN + SERVER_LEN];

/// A BADCOOKIE answer to `q` (RFC 7873 §5.2.3): the question and an OPT
/// record carrying `reply`, no records, so the client retries with the
/// server cookie it brings.
pub fn badcookie(q: &Query, reply: &Reply) -> Vec<u8> {
    let mut hdr = flags::QR;
    if q.rd {
        hdr |= flags::RD;
    }
    if q.cd {
        hdr |= flags::CD;
    }
    let mut w = Writer::new(q.id, hdr, Some((&q.qname_raw, q.qtype, q.qclass)));
    w.set_rcode(BADCOOKIE & 0xf);
    let dnssec_ok = q.edns.is_some_and(|e| e.dnssec_ok);
    w.opt_with(MAX_UDP as u16, (BADCOOKIE >> 4) as u8, dnssec_ok, reply);
    w.finish()
}

#[cfg(feature = "cookies")]
mod secret;
#[cfg(feature = "cookies")]
pub use secret::Secret;

#[cfg(all(test, feature = "cookies"))]
mod tests;
