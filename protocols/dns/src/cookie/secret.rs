//! Server cookies (RFC 9018): made and checked with a 128-bit secret.

use core::fmt;
use core::hash::Hasher;
use core::net::IpAddr;
use core::str::FromStr;

use siphasher::sip::SipHasher24;

use super::{Outcome, Received, Reply, CLIENT_LEN, LIFETIME, OPTION, REFRESH, SERVER_LEN, SKEW};

/// The server cookie version RFC 9018 defines.
const VERSION: u8 = 1;

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
