//! The SYN queue: handshakes answered before smoltcp sees them.
//!
//! smoltcp has no SYN queue: a listening socket that receives a SYN becomes
//! the half-open connection, buffers and all. Under a spoofed SYN flood that
//! either costs a socket per SYN or, with a bounded number of sockets,
//! evicts a real client's half-open connection before its ACK has crossed
//! the device queue behind thousands of flood packets.
//!
//! So the stack answers a SYN to a listening port itself: it records the
//! handshake in a fixed-size table and sends the SYN-ACK. The table is
//! set-associative: a keyed hash (SipHash, so a peer cannot aim at one
//! bucket) picks a bucket of [`WAYS`] entries (`heapless::Vec`). An entry
//! is about 70 bytes. When the client's ACK arrives, the listening smoltcp
//! socket is handed the SYN it would have seen (with the initial sequence
//! number already sent) and then the ACK, and is established at once.
//!
//! When a SYN's bucket is full of live handshakes (a flood), nothing is
//! evicted: the SYN-ACK carries a SYN cookie (RFC 4987 §3.6) instead, an
//! initial sequence number that encodes a keyed hash of the connection,
//! the client's ISN and a 64-second time slot, and the MSS; the ACK that
//! returns it (up to two slots later) rebuilds the handshake. A cookie
//! handshake offers neither window scaling nor SACK, which it could not
//! remember. So a real client's handshake survives a flood however long its
//! ACK takes, and the table never holds more than its size.
//!
//! Not implemented: SYN-ACK retransmission (a lost SYN-ACK is repeated when
//! the client retransmits its SYN), TCP timestamps (not offered), and SYNs
//! carrying data (the data is dropped and retransmitted by the client).

use alloc::vec::Vec;
use core::hash::Hasher;

use siphasher::sip::SipHasher13;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, IpEndpoint, IpProtocol, Ipv4Packet,
    Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
};

use super::conn::{ESTABLISHED_RX, HANDSHAKE_TIMEOUT};

/// The largest handshake frame: Ethernet, IPv6, TCP with 40 bytes of
/// options.
const FRAME_MAX: usize = 14 + 40 + 60;

/// Entries per bucket.
pub(super) const WAYS: usize = 8;

/// One answered SYN.
#[derive(Clone, Copy)]
struct Entry {
    local: IpEndpoint,
    remote: IpEndpoint,
    peer_mac: [u8; 6],
    /// Our initial sequence number (sent in the SYN-ACK).
    isn: u32,
    /// The client's.
    peer_isn: u32,
    peer_window: u16,
    peer_mss: Option<u16>,
    peer_window_scale: Option<u8>,
    peer_sack: bool,
    born: Instant,
}

/// What a frame is, as far as the SYN queue is concerned.
pub(super) enum Verdict {
    /// Not a handshake the queue handles: smoltcp takes it.
    Pass,
    /// A SYN to a listening port: answer it with this SYN-ACK frame.
    Answer(Frame),
    /// The ACK completing a queued handshake: hand the socket listening on
    /// `local` this SYN (with `isn` as its initial sequence number), then
    /// the frame. `window` is the SYN-ACK's window in the socket's units.
    Complete { syn: Frame, isn: u32, local: IpEndpoint, remote: IpEndpoint, window: u16 },
}

/// A handshake frame built in place: our SYN-ACK, or the client's SYN
/// rebuilt for the listening socket.
pub(super) struct Frame {
    buf: [u8; FRAME_MAX],
    len: usize,
}

impl Frame {
    pub(super) fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// What the stack knows about itself when it looks at a frame.
pub(super) struct Local<'a> {
    pub(super) mac: [u8; 6],
    pub(super) mtu: usize,
    pub(super) now: Instant,
    /// Whether `addr` is one of the interface's addresses.
    pub(super) is_ours: &'a dyn Fn(IpAddress) -> bool,
    /// Whether a listener on this address and port takes new connections.
    pub(super) listening: &'a dyn Fn(IpAddress, u16) -> bool,
    /// The window scale the listening sockets offer.
    pub(super) window_shift: u8,
}

/// Counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SynQueueStats {
    /// SYNs answered from the queue.
    pub answered: u64,
    /// Handshakes completed through the queue.
    pub completed: u64,
    /// Expired handshakes dropped from a full bucket.
    pub evicted: u64,
    /// SYNs answered with a cookie (their bucket was full).
    pub cookies_sent: u64,
    /// Handshakes completed from a cookie.
    pub cookies_completed: u64,
}

/// The MSS values a cookie can carry (2 bits).
const COOKIE_MSS: [u16; 4] = [536, 1220, 1400, 1460];
/// A cookie's time slot, in seconds.
const COOKIE_SLOT_SECS: i64 = 64;

/// The table.
pub(super) struct SynQueue {
    key: [u8; 16],
    isn_key: [u8; 16],
    buckets: Vec<heapless::Vec<Entry, WAYS>>,
    pub(super) stats: SynQueueStats,
}

/// A parsed TCP segment.
struct Segment<'a> {
    src_mac: [u8; 6],
    local: IpEndpoint,
    remote: IpEndpoint,
    tcp: TcpRepr<'a>,
}

impl SynQueue {
    /// A queue of about `capacity` handshakes (rounded up to whole
    /// buckets). `key` keys the bucket hash, `isn_key` the initial
    /// sequence numbers (RFC 6528).
    pub(super) fn new(capacity: usize, key: [u8; 16], isn_key: [u8; 16]) -> SynQueue {
        let n = capacity.div_ceil(WAYS).max(1);
        SynQueue { key, isn_key, buckets: (0..n).map(|_| heapless::Vec::new()).collect(), stats: Default::default() }
    }

    fn bucket(&self, local: IpEndpoint, remote: IpEndpoint) -> usize {
        let mut h = SipHasher13::new_with_key(&self.key);
        for e in [local, remote] {
            super::addr::hash(&mut h, e.addr);
            h.write_u16(e.port);
        }
        (h.finish() % self.buckets.len() as u64) as usize
    }

    /// Looks at an incoming Ethernet frame.
    pub(super) fn inspect(&mut self, frame: &[u8], at: &Local<'_>) -> Verdict {
        let Some(seg) = parse(frame, at) else { return Verdict::Pass };
        let tcp = &seg.tcp;
        match (tcp.control, tcp.ack_number) {
            (TcpControl::Syn, None) => {
                if !(at.listening)(seg.local.addr, seg.local.port) {
                    return Verdict::Pass; // smoltcp refuses it
                }
                self.stats.answered += 1;
                match self.insert(&seg, at.now) {
                    Some(entry) => Verdict::Answer(syn_ack(&entry, at)),
                    None => {
                        self.stats.cookies_sent += 1;
                        Verdict::Answer(syn_ack(&self.cookie_entry(&seg, at.now), at))
                    }
                }
            }
            (TcpControl::None | TcpControl::Psh, Some(ack)) => {
                let b = self.bucket(seg.local, seg.remote);
                let Some(i) = self.buckets[b].iter().position(|e| e.local == seg.local && e.remote == seg.remote)
                else {
                    return match self.check_cookie(&seg, ack, at.now) {
                        Some(e) if (at.listening)(e.local.addr, e.local.port) => {
                            self.stats.cookies_completed += 1;
                            complete(&e, at)
                        }
                        _ => Verdict::Pass,
                    };
                };
                let e = self.buckets[b].swap_remove(i);
                if at.now - e.born > HANDSHAKE_TIMEOUT
                    || ack != TcpSeqNumber(e.isn.wrapping_add(1) as i32)
                    || !(at.listening)(e.local.addr, e.local.port)
                {
                    return Verdict::Pass; // smoltcp resets it
                }
                self.stats.completed += 1;
                complete(&e, at)
            }
            _ => Verdict::Pass,
        }
    }

    /// Records a SYN (or finds its retransmission); `None` if its bucket is
    /// full of live handshakes.
    fn insert(&mut self, seg: &Segment<'_>, now: Instant) -> Option<Entry> {
        let b = self.bucket(seg.local, seg.remote);
        let bucket = &mut self.buckets[b];
        if let Some(e) = bucket.iter().find(|e| e.local == seg.local && e.remote == seg.remote) {
            if e.peer_isn == seg.tcp.seq_number.0 as u32 {
                return Some(*e); // a retransmitted SYN: the same answer
            }
        }
        let before = bucket.len();
        bucket.retain(|e| !(e.local == seg.local && e.remote == seg.remote) && now - e.born <= HANDSHAKE_TIMEOUT);
        self.stats.evicted += (before - bucket.len()) as u64;
        if bucket.is_full() {
            return None;
        }
        let entry = Entry {
            local: seg.local,
            remote: seg.remote,
            peer_mac: seg.src_mac,
            isn: super::isn::isn(&self.isn_key, seg.local, seg.remote, now),
            peer_isn: seg.tcp.seq_number.0 as u32,
            peer_window: seg.tcp.window_len,
            peer_mss: seg.tcp.max_seg_size,
            peer_window_scale: seg.tcp.window_scale,
            peer_sack: seg.tcp.sack_permitted,
            born: now,
        };
        let _ = bucket.push(entry);
        Some(entry)
    }

    /// The cookie's keyed hash of a handshake in time slot `slot`.
    fn cookie_hash(&self, local: IpEndpoint, remote: IpEndpoint, peer_isn: u32, slot: i64) -> u32 {
        let mut h = SipHasher13::new_with_key(&self.isn_key);
        h.write(b"cookie");
        for e in [local, remote] {
            super::addr::hash(&mut h, e.addr);
            h.write_u16(e.port);
        }
        h.write_u32(peer_isn);
        h.write_i64(slot);
        h.finish() as u32
    }

    /// An entry that is not stored: its ISN is a cookie (24 bits of hash, 6
    /// of time slot, 2 of MSS index), and it offers no window scale or SACK.
    fn cookie_entry(&self, seg: &Segment<'_>, now: Instant) -> Entry {
        let peer_isn = seg.tcp.seq_number.0 as u32;
        let slot = now.secs() / COOKIE_SLOT_SECS;
        let peer_mss = seg.tcp.max_seg_size.unwrap_or(536);
        let mss = COOKIE_MSS.iter().rposition(|&m| m <= peer_mss).unwrap_or(0) as u32;
        let hash = self.cookie_hash(seg.local, seg.remote, peer_isn, slot);
        Entry {
            local: seg.local,
            remote: seg.remote,
            peer_mac: seg.src_mac,
            isn: (hash & 0xffff_ff00) | (((slot as u32) & 0x3f) << 2) | mss,
            peer_isn,
            peer_window: seg.tcp.window_len,
            peer_mss: Some(COOKIE_MSS[mss as usize]),
            peer_window_scale: None,
            peer_sack: false,
            born: now,
        }
    }

    /// The handshake an ACK completes if it returns a valid cookie from
    /// this time slot or the one before.
    fn check_cookie(&self, seg: &Segment<'_>, ack: TcpSeqNumber, now: Instant) -> Option<Entry> {
        let cookie = (ack.0 as u32).wrapping_sub(1);
        let peer_isn = (seg.tcp.seq_number.0 as u32).wrapping_sub(1);
        let current = now.secs() / COOKIE_SLOT_SECS;
        let slot = [current, current - 1].into_iter().find(|s| ((*s as u32) & 0x3f) == (cookie >> 2) & 0x3f)?;
        if self.cookie_hash(seg.local, seg.remote, peer_isn, slot) & 0xffff_ff00 != cookie & 0xffff_ff00 {
            return None;
        }
        Some(Entry {
            local: seg.local,
            remote: seg.remote,
            peer_mac: seg.src_mac,
            isn: cookie,
            peer_isn,
            peer_window: seg.tcp.window_len,
            peer_mss: Some(COOKIE_MSS[(cookie & 3) as usize]),
            peer_window_scale: None,
            peer_sack: false,
            born: now,
        })
    }
}

/// Hands the handshake in `e` to the listening socket.
fn complete(e: &Entry, at: &Local<'_>) -> Verdict {
    // Our SYN-ACK offered ESTABLISHED_RX bytes; the socket counts its
    // window in units of its scale, which is 0 unless the peer offered one.
    let shift = if e.peer_window_scale.is_some() { at.window_shift } else { 0 };
    let window = (ESTABLISHED_RX.min(u16::MAX as usize) >> shift) as u16;
    Verdict::Complete { syn: rebuilt_syn(e, at), isn: e.isn, local: e.local, remote: e.remote, window }
}

/// A TCP segment for one of our addresses, with valid checksums, not a
/// fragment; `None` for anything else.
fn parse<'a>(frame: &'a [u8], at: &Local<'_>) -> Option<Segment<'a>> {
    let caps = ChecksumCapabilities::default();
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.dst_addr() != EthernetAddress(at.mac) {
        return None;
    }
    let src_mac = eth.src_addr().0;
    let payload = &frame[EthernetFrame::<&[u8]>::header_len()..];
    let (src, dst, tcp_bytes): (IpAddress, IpAddress, &[u8]) = match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            let p = Ipv4Packet::new_checked(payload).ok()?;
            if p.more_frags() || p.frag_offset() != 0 {
                return None;
            }
            let r = Ipv4Repr::parse(&p, &caps).ok()?;
            if r.next_header != IpProtocol::Tcp {
                return None;
            }
            let start = p.header_len() as usize;
            (r.src_addr.into(), r.dst_addr.into(), payload.get(start..start + r.payload_len)?)
        }
        #[cfg(feature = "ipv6")]
        EthernetProtocol::Ipv6 => {
            use smoltcp::wire::{Ipv6Packet, Ipv6Repr};
            let p = Ipv6Packet::new_checked(payload).ok()?;
            let r = Ipv6Repr::parse(&p).ok()?;
            if r.next_header != IpProtocol::Tcp {
                return None; // extension headers: smoltcp's business
            }
            (r.src_addr.into(), r.dst_addr.into(), payload.get(40..40 + r.payload_len)?)
        }
        _ => return None,
    };
    if !(at.is_ours)(dst) {
        return None;
    }
    let packet = TcpPacket::new_checked(tcp_bytes).ok()?;
    let tcp = TcpRepr::parse(&packet, &src, &dst, &caps).ok()?;
    Some(Segment {
        src_mac,
        local: IpEndpoint::new(dst, tcp.dst_port),
        remote: IpEndpoint::new(src, tcp.src_port),
        tcp,
    })
}

/// Writes Ethernet + IP + `tcp` into `buf`; returns the frame's length.
fn emit(
    buf: &mut [u8],
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: IpAddress,
    dst: IpAddress,
    tcp: &TcpRepr<'_>,
) -> usize {
    let caps = ChecksumCapabilities::default();
    let tcp_len = tcp.buffer_len();
    let (ethertype, ip_len) = match (src, dst) {
        (IpAddress::Ipv4(_), IpAddress::Ipv4(_)) => (EthernetProtocol::Ipv4, 20),
        #[cfg(feature = "ipv6")]
        _ => (EthernetProtocol::Ipv6, 40),
    };
    let eth = EthernetRepr { src_addr: EthernetAddress(src_mac), dst_addr: EthernetAddress(dst_mac), ethertype };
    let total = eth.buffer_len() + ip_len + tcp_len;
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..total]);
    eth.emit(&mut frame);
    let ip = frame.payload_mut();
    match (src, dst) {
        (IpAddress::Ipv4(s), IpAddress::Ipv4(d)) => {
            let r = Ipv4Repr {
                src_addr: s,
                dst_addr: d,
                next_header: IpProtocol::Tcp,
                payload_len: tcp_len,
                hop_limit: 64,
            };
            r.emit(&mut Ipv4Packet::new_unchecked(&mut *ip), &caps);
        }
        #[cfg(feature = "ipv6")]
        (IpAddress::Ipv6(s), IpAddress::Ipv6(d)) => {
            use smoltcp::wire::{Ipv6Packet, Ipv6Repr};
            let r = Ipv6Repr {
                src_addr: s,
                dst_addr: d,
                next_header: IpProtocol::Tcp,
                payload_len: tcp_len,
                hop_limit: 64,
            };
            r.emit(&mut Ipv6Packet::new_unchecked(&mut *ip));
        }
        #[cfg(feature = "ipv6")]
        _ => unreachable!("an endpoint pair has one address family"),
    }
    tcp.emit(&mut TcpPacket::new_unchecked(&mut ip[ip_len..]), &src, &dst, &caps);
    total
}

/// Our answer to the SYN in `e`: the window of an established socket, the
/// window scale the listening socket will use, our MSS, SACK if offered.
fn syn_ack(e: &Entry, at: &Local<'_>) -> Frame {
    let ip_header = if matches!(e.local.addr, IpAddress::Ipv4(_)) { 20 } else { 40 };
    let tcp = TcpRepr {
        src_port: e.local.port,
        dst_port: e.remote.port,
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(e.isn as i32),
        ack_number: Some(TcpSeqNumber(e.peer_isn.wrapping_add(1) as i32)),
        window_len: ESTABLISHED_RX.min(u16::MAX as usize) as u16,
        window_scale: e.peer_window_scale.map(|_| at.window_shift),
        max_seg_size: Some((at.mtu - ip_header - 20).min(u16::MAX as usize) as u16),
        sack_permitted: e.peer_sack,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    let mut out = Frame { buf: [0; FRAME_MAX], len: 0 };
    out.len = emit(&mut out.buf, at.mac, e.peer_mac, e.local.addr, e.remote.addr, &tcp);
    out
}

/// The client's SYN as the listening socket would have received it.
fn rebuilt_syn(e: &Entry, at: &Local<'_>) -> Frame {
    let tcp = TcpRepr {
        src_port: e.remote.port,
        dst_port: e.local.port,
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(e.peer_isn as i32),
        ack_number: None,
        window_len: e.peer_window,
        window_scale: e.peer_window_scale,
        max_seg_size: e.peer_mss,
        sack_permitted: e.peer_sack,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    let mut out = Frame { buf: [0; FRAME_MAX], len: 0 };
    out.len = emit(&mut out.buf, e.peer_mac, at.mac, e.remote.addr, e.local.addr, &tcp);
    out
}
