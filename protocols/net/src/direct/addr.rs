//! Addresses between `core::net` and smoltcp, whose address type has no
//! IPv6 variant when the `ipv6` feature is off.

use core::hash::Hasher;
use core::net::{IpAddr, SocketAddr};

use smoltcp::wire::{IpAddress, IpEndpoint};

/// `ip` as smoltcp's address; `None` for IPv6 in a build without it.
pub(super) fn to_smol(ip: IpAddr) -> Option<IpAddress> {
    match ip {
        IpAddr::V4(a) => Some(IpAddress::Ipv4(a)),
        #[cfg(feature = "ipv6")]
        IpAddr::V6(a) => Some(IpAddress::Ipv6(a)),
        #[cfg(not(feature = "ipv6"))]
        IpAddr::V6(_) => None,
    }
}

/// `sa` as smoltcp's endpoint; `None` for IPv6 in a build without it.
pub(super) fn endpoint(sa: SocketAddr) -> Option<IpEndpoint> {
    to_smol(sa.ip()).map(|a| IpEndpoint::new(a, sa.port()))
}

/// Feeds `a`'s octets to a hasher.
pub(super) fn hash(h: &mut impl Hasher, a: IpAddress) {
    match IpAddr::from(a) {
        IpAddr::V4(a) => h.write(&a.octets()),
        IpAddr::V6(a) => h.write(&a.octets()),
    }
}
