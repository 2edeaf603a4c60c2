//! TCP initial sequence numbers per RFC 6528 §3: `ISN = M + F(local,
//! remote, secret)`, where `M` is a clock ticking every 4 microseconds and
//! `F` is SipHash-2-4 of the two endpoints keyed with a secret drawn from
//! the entropy device at boot, so a peer that sees its own ISNs learns
//! nothing about another connection's.

use core::hash::Hasher;

use siphasher::sip::SipHasher24;
use smoltcp::socket::tcp::IsnGenerator;
use smoltcp::time::Instant;
use smoltcp::wire::IpEndpoint;

/// The generator for sockets of a stack whose secret is `secret`.
pub(super) fn generator(secret: [u8; 16]) -> IsnGenerator {
    IsnGenerator { secret, isn }
}

/// A generator that always gives `isn`: for a listening socket handed a
/// handshake the SYN queue already answered with `isn`.
pub(super) fn fixed(isn: u32) -> IsnGenerator {
    let mut secret = [0u8; 16];
    secret[..4].copy_from_slice(&isn.to_le_bytes());
    IsnGenerator { secret, isn: |s, _, _, _| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) }
}

/// A further key derived from `secret` for `purpose`.
pub(super) fn derive_key(secret: &[u8; 16], purpose: &[u8]) -> [u8; 16] {
    let mut h = siphasher::sip128::SipHasher24::new_with_key(secret);
    h.write(purpose);
    siphasher::sip128::Hasher128::finish128(&h).as_bytes()
}

/// RFC 6528's ISN.
pub(super) fn isn(secret: &[u8; 16], local: IpEndpoint, remote: IpEndpoint, now: Instant) -> u32 {
    let m = (now.total_micros() / 4) as u32;
    m.wrapping_add(hash(secret, local, remote))
}

fn hash(secret: &[u8; 16], local: IpEndpoint, remote: IpEndpoint) -> u32 {
    let mut h = SipHasher24::new_with_key(secret);
    for e in [local, remote] {
        super::addr::hash(&mut h, e.addr);
        h.write(&e.port.to_be_bytes());
    }
    h.finish() as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;
    use smoltcp::wire::IpAddress;

    fn ep(a: [u8; 4], port: u16) -> IpEndpoint {
        IpEndpoint::new(IpAddress::Ipv4(Ipv4Addr::from(a)), port)
    }

    #[test]
    fn same_tuple_same_offset_other_tuple_or_secret_another() {
        let (l, r) = (ep([10, 0, 0, 1], 80), ep([10, 0, 0, 2], 40000));
        let k = [7u8; 16];
        assert_eq!(hash(&k, l, r), hash(&k, l, r));
        assert_ne!(hash(&k, l, r), hash(&k, l, ep([10, 0, 0, 2], 40001)), "source port is an input");
        assert_ne!(hash(&k, l, r), hash(&k, r, l), "direction is an input");
        assert_ne!(hash(&k, l, r), hash(&[8u8; 16], l, r), "the secret is an input");
    }
}
