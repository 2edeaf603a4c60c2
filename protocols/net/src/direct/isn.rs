//! TCP initial sequence numbers per RFC 6528 §3: `ISN = M + F(local,
//! remote, secret)`. smoltcp adds `M`, a 4-microsecond clock; `F` here is
//! SipHash-2-4 of the two endpoints keyed with a secret drawn from the
//! entropy device at boot, so a peer that sees its own ISNs learns nothing
//! about another connection's.

use core::hash::Hasher;

use siphasher::sip::SipHasher24;
use smoltcp::socket::tcp::IsnGenerator;
use smoltcp::wire::{IpAddress, IpEndpoint};

/// The generator for sockets of a stack whose secret is `secret`.
pub(super) fn generator(secret: [u8; 16]) -> IsnGenerator {
    IsnGenerator { secret, hash }
}

fn hash(secret: &[u8; 16], local: IpEndpoint, remote: IpEndpoint) -> u32 {
    let mut h = SipHasher24::new_with_key(secret);
    for e in [local, remote] {
        match e.addr {
            IpAddress::Ipv4(a) => h.write(&a.octets()),
            IpAddress::Ipv6(a) => h.write(&a.octets()),
        }
        h.write(&e.port.to_be_bytes());
    }
    h.finish() as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

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
