//! Frames the direct stack must not pass to smoltcp 0.14, which panics on
//! them. [`Guarded`] wraps a [`Net`] device and disarms such frames (zeroes
//! their EtherType, so smoltcp drops them as an unknown protocol):
//!
//! * an IPv6 Router Advertisement with a Prefix Information option whose
//!   prefix length is over 128 (smoltcp's SLAAC builds an `Ipv6Cidr` from
//!   it, which asserts) or whose prefix is multicast (SLAAC adds an address
//!   in it, and smoltcp panics on a non-unicast interface address).
//!
//! SLAAC is on whenever no static IPv6 address is set: one such packet from
//! anyone on the link would stop the unikernel. Both found by the
//! `direct_stack` fuzz target.

use core::task::Context;

use morgana_devices::{LinkState, Net, NetStats, RxToken};

const ETHERTYPE_IPV6: u16 = 0x86dd;
const ICMPV6: u8 = 58;
const ROUTER_ADVERTISEMENT: u8 = 134;
const PREFIX_INFORMATION: u8 = 3;

/// The ICMPv6 message in an Ethernet frame, past any IPv6 extension headers.
fn icmpv6(frame: &[u8]) -> Option<&[u8]> {
    if u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]) != ETHERTYPE_IPV6 {
        return None;
    }
    let ip = frame.get(14..)?;
    let payload_len = u16::from_be_bytes([*ip.get(4)?, *ip.get(5)?]) as usize;
    let mut next = *ip.get(6)?;
    let mut rest = ip.get(40..)?;
    rest = &rest[..payload_len.min(rest.len())];
    // Hop-by-hop, routing, fragment and destination options headers.
    for _ in 0..8 {
        let len = match next {
            0 | 43 | 60 => (*rest.get(1)? as usize + 1) * 8,
            44 => 8,
            _ => break,
        };
        next = *rest.first()?;
        rest = rest.get(len..)?;
    }
    (next == ICMPV6).then_some(rest)
}

/// Whether smoltcp 0.14 would panic on this frame.
pub fn is_hostile(frame: &[u8]) -> bool {
    let Some(msg) = icmpv6(frame) else { return false };
    if msg.first() != Some(&ROUTER_ADVERTISEMENT) {
        return false;
    }
    // Options follow the 16-byte header, each `len` units of 8 bytes.
    let mut opts = msg.get(16..).unwrap_or(&[]);
    while opts.len() >= 2 && opts[1] != 0 {
        if opts[0] == PREFIX_INFORMATION {
            let too_long = opts.get(2).is_some_and(|&len| len > 128);
            let multicast = opts.get(16) == Some(&0xff);
            if too_long || multicast {
                return true;
            }
        }
        opts = opts.get(opts[1] as usize * 8..).unwrap_or(&[]);
    }
    false
}

/// Makes smoltcp drop the frame if it is one it would panic on.
pub fn disarm(frame: &mut [u8]) {
    if is_hostile(frame) {
        log::debug!("dropped a frame smoltcp cannot handle");
        frame[12..14].fill(0);
    }
}

/// A [`Net`] device whose received frames are [`disarm`]ed: what the
/// direct stack runs over.
pub struct Guarded<D>(pub D);

/// A received frame of a [`Guarded`] device.
pub struct GuardedRx<T>(T);

impl<T: RxToken> RxToken for GuardedRx<T> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, f: F) -> R {
        self.0.consume(|frame| {
            disarm(frame);
            f(frame)
        })
    }
}

impl<D: Net> Net for Guarded<D> {
    type RxToken<'a>
        = GuardedRx<D::RxToken<'a>>
    where
        Self: 'a;
    type TxToken<'a>
        = D::TxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        self.0.receive(cx).map(|(rx, tx)| (GuardedRx(rx), tx))
    }
    fn transmit(&mut self, cx: &mut Context<'_>) -> Option<Self::TxToken<'_>> {
        self.0.transmit(cx)
    }
    fn link_state(&mut self, cx: &mut Context<'_>) -> LinkState {
        self.0.link_state(cx)
    }
    fn mac_address(&self) -> [u8; 6] {
        self.0.mac_address()
    }
    fn mtu(&self) -> usize {
        self.0.mtu()
    }
    fn stats(&self) -> NetStats {
        self.0.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A router advertisement for 2001:db8::/`prefix_len`, optionally
    /// behind a hop-by-hop header.
    fn ra(prefix_len: u8, hop_by_hop: bool) -> Vec<u8> {
        ra_for([0x20, 0x01, 0x0d, 0xb8], prefix_len, hop_by_hop)
    }

    fn ra_for(prefix: [u8; 4], prefix_len: u8, hop_by_hop: bool) -> Vec<u8> {
        let mut icmp = alloc::vec![134, 0, 0, 0, 64, 0, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend([1, 1, 2, 0, 0, 0, 0, 1]); // source link-layer address
        icmp.extend([3, 4, prefix_len, 0xc0, 0, 1, 0x51, 0x80, 0, 0, 0x38, 0x40, 0, 0, 0, 0]);
        icmp.extend(prefix);
        icmp.extend([0; 12]);
        let mut payload = Vec::new();
        if hop_by_hop {
            payload.extend([58, 0, 1, 4, 0, 0, 0, 0]);
        }
        payload.extend(icmp);
        let mut f = alloc::vec![0x33, 0x33, 0, 0, 0, 1, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];
        f.extend([0x60, 0, 0, 0]);
        f.extend((payload.len() as u16).to_be_bytes());
        f.extend([if hop_by_hop { 0 } else { 58 }, 255]);
        f.extend([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend(payload);
        f
    }

    #[test]
    fn rfc4861_4_6_2_prefix_over_128_bits_is_disarmed() {
        for hbh in [false, true] {
            let mut bad = ra(129, hbh);
            assert!(is_hostile(&bad));
            disarm(&mut bad);
            assert_eq!(&bad[12..14], &[0, 0]);
            assert!(!is_hostile(&ra(255, hbh)[..60]), "cut before the option");
            let mut good = ra(64, hbh);
            let copy = good.clone();
            disarm(&mut good);
            assert_eq!(good, copy, "a valid advertisement passes");
            assert!(!is_hostile(&ra(128, hbh)));
        }
        assert!(is_hostile(&ra_for([0xff, 0x02, 0, 0], 64, false)), "a multicast prefix");
        assert!(!is_hostile(&ra_for([0xfd, 0, 0, 0], 64, false)));
        assert!(!is_hostile(&[]));
        assert!(!is_hostile(&[0xff; 13]));
    }

    #[test]
    fn fuzz_crash_frames_are_disarmed() {
        // The frames the direct_stack fuzz target found (their Ethernet
        // destination rewritten by the target's flags).
        let multicast_prefix: &[u8] = &[
            2, 7, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd, 0x60, 0, 0, 0, 0, 0x30, 0x3a, 0xff, 0xfe, 0x80, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x86, 0, 0, 0, 0x40, 0, 0,
            0, 0, 0, 0, 0, 2, 0, 0, 0, 3, 4, 0x40, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        assert!(is_hostile(multicast_prefix));
        let frame: &[u8] = &[
            2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd, 0x60, 0, 0, 0, 0, 0x30, 0x3a, 0xff, 0xfe, 0x80, 0, 0, 0, 0,
            0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 3, 0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x86,
            0, 0, 0, 0x40, 0, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0, 3, 4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 4, 0, 0xc0,
            0, 1, 0x51, 0x80, 0, 0, 0x38, 0x40, 0, 0x24, 0, 0, 0, 0x20, 1, 0xd, 0xb8, 0, 0xfe, 0,
        ];
        assert!(is_hostile(frame));
    }
}
