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
use core::fmt;
use core::hash::Hasher;
use core::net::IpAddr;
use core::str::FromStr;

use siphasher::sip::SipHasher24;

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
/// The server cookie version RFC 9018 defines.
const VERSION: u8 = 1;
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

/// The 128-bit secret server cookies are made with.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; 16]);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)") // never in logs
    }
}

impl FromStr for Secret {
    type Err = &'static str;
    /// 32 hexadecimal digits, as BIND's `cookie-secret` for SipHash-2-4.
    fn from_str(s: &str) -> Result<Secret, &'static str> {
        const WANT: &str = "32 hexadecimal digits (128 bits)";
        if s.len() != 32 || !s.is_ascii() {
            return Err(WANT);
        }
        let mut key = [0u8; 16];
        for (i, k) in key.iter_mut().enumerate() {
            *k = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| WANT)?;
        }
        Ok(Secret(key))
    }
}

impl Secret {
    /// A secret of these octets.
    pub fn new(key: [u8; 16]) -> Secret {
        Secret(key)
    }

    /// The server cookie for `client` at `address`, with `reserved` and
    /// `timestamp` as given (RFC 9018 §4.1 and §4.2).
    pub fn server_cookie(
        &self,
        client: &[u8; CLIENT_LEN],
        reserved: [u8; 3],
        timestamp: u32,
        address: IpAddr,
    ) -> [u8; SERVER_LEN] {
        let mut cookie = [0u8; SERVER_LEN];
        cookie[0] = VERSION;
        cookie[1..4].copy_from_slice(&reserved);
        cookie[4..8].copy_from_slice(&timestamp.to_be_bytes());
        let mut h = SipHasher24::new_with_key(&self.0);
        h.write(client);
        h.write(&cookie[..8]);
        match address {
            IpAddr::V4(v4) => h.write(&v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => h.write(&v4.octets()),
                None => h.write(&v6.octets()),
            },
        }
        // The reference implementation's byte order: little endian.
        cookie[8..].copy_from_slice(&h.finish().to_le_bytes());
        cookie
    }

    /// Judges `received` from `address` at `now` (seconds, the clock
    /// server cookies are stamped with) and makes the option of the
    /// response: the received server cookie echoed while valid and less
    /// than [`REFRESH`] old, else a new one.
    pub fn check(&self, received: &Received, address: IpAddr, now: u32) -> (Outcome, Reply) {
        let server = received.server();
        let mut outcome = match server.len() {
            0 => Outcome::ClientOnly,
            _ => Outcome::Invalid,
        };
        let mut echo = false;
        if server.len() == SERVER_LEN && server[0] == VERSION {
            let stamp = u32::from_be_bytes([server[4], server[5], server[6], server[7]]);
            let age = now.wrapping_sub(stamp) as i32;
            let reserved = [server[1], server[2], server[3]];
            let fresh_enough = (-(SKEW as i32)..=LIFETIME as i32).contains(&age);
            if fresh_enough && constant_eq(&self.server_cookie(&received.client, reserved, stamp, address), server) {
                outcome = Outcome::Valid;
                echo = age <= REFRESH as i32;
            }
        }
        let mut reply = [0u8; 4 + CLIENT_LEN + SERVER_LEN];
        reply[..2].copy_from_slice(&OPTION.to_be_bytes());
        reply[2..4].copy_from_slice(&((CLIENT_LEN + SERVER_LEN) as u16).to_be_bytes());
        reply[4..12].copy_from_slice(&received.client);
        if echo {
            reply[12..].copy_from_slice(server);
        } else {
            reply[12..].copy_from_slice(&self.server_cookie(&received.client, [0; 3], now, address));
        }
        (outcome, reply)
    }
}

/// Compares without stopping at the first difference (no timing hint of
/// how much of a forged cookie was right).
fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |d, (x, y)| d | (x ^ y)) == 0
}

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

#[cfg(test)]
mod tests;
