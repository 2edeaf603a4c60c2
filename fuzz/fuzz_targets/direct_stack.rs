//! Arbitrary Ethernet frames into the direct (smoltcp) stack, through a test
//! `Net` device, with a TCP echo listener, a TCP listener whose connections
//! are dropped at once, and a UDP echo socket open, on the runtime's
//! executor with virtual time. After each frame the executor runs until
//! nothing is ready (bounded: a task that keeps waking without time passing
//! fails the run) and the clock moves on. Nothing may panic or hang.
//!
//! Input: one config byte, then frames, each `[len lo][len hi][flags]` and
//! `len` bytes. Flags help frames reach socket code: bit 0 fixes the IPv4,
//! TCP, UDP, ICMP and ICMPv6 checksums; bit 1 addresses the frame to the
//! stack's MAC; bit 2 sets a TCP segment's sequence and acknowledgement
//! numbers to follow what the stack last sent on that port pair (a SYN's
//! answer comes from the stack's SYN queue, so a following ACK completes
//! the handshake there and reaches an established smoltcp socket); bits 3-7
//! pick how far the clock moves after the frame (2^n microseconds).
#![no_main]

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::rc::Rc;
use std::task::{Context, Waker};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use morgana_devices::{Instant, LinkState, Net, NetCounters, NetStats, RxToken, TxToken};
use morgana_net::direct::{self, Cidr, Config, Ipv4Mode, Ipv6Mode};
use morgana_net::TcpStream;
use morgana_runtime::{Executor, Handle, Platform};
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, Icmpv4Packet, Icmpv6Packet, IpAddress, IpProtocol, Ipv4Packet, Ipv6Packet,
    TcpPacket, TcpSeqNumber, UdpPacket,
};

const MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const MTU: usize = 1500;
const MAX_FRAMES: usize = 64;

#[derive(Default)]
struct VirtualTime {
    now: Cell<u64>,
    busy: Cell<u32>,
}

impl Platform for VirtualTime {
    fn now(&self) -> Instant {
        Instant::from_nanos(self.now.get())
    }
    fn wait(&self, deadline: Option<Instant>) {
        let d = deadline.expect("hang: no task ready and no timer pending");
        if d.as_nanos() > self.now.get() {
            self.now.set(d.as_nanos());
            self.busy.set(0);
        } else {
            self.busy.set(self.busy.get() + 1);
            assert!(self.busy.get() < 100_000, "livelock: tasks keep waking without time passing");
        }
    }
}

/// What the stack last sent on a TCP port pair (its ports): the next
/// sequence number after it, and its acknowledgement number.
type TcpSeen = HashMap<(u16, u16), (u32, u32)>;

#[derive(Default)]
struct Wire {
    rx: VecDeque<Vec<u8>>,
    waker: Option<Waker>,
    tcp: TcpSeen,
    counters: NetCounters,
}

struct Device(Rc<RefCell<Wire>>);
struct Rx(Vec<u8>);
struct Tx(Rc<RefCell<Wire>>);

impl RxToken for Rx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(mut self, f: F) -> R {
        f(&mut self.0)
    }
}

impl TxToken for Tx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        let mut w = self.0.borrow_mut();
        if len > MTU + 14 {
            w.counters.tx_dropped();
        } else {
            w.counters.sent(len);
            note_tcp(&buf, &mut w.tcp);
        }
        r
    }
}

impl Net for Device {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(Rx, Tx)> {
        let mut w = self.0.borrow_mut();
        match w.rx.pop_front() {
            Some(f) => {
                w.counters.received(f.len());
                Some((Rx(f), Tx(self.0.clone())))
            }
            None => {
                w.waker = Some(cx.waker().clone());
                None
            }
        }
    }
    fn transmit(&mut self, _cx: &mut Context<'_>) -> Option<Tx> {
        Some(Tx(self.0.clone()))
    }
    fn link_state(&mut self, _cx: &mut Context<'_>) -> LinkState {
        LinkState::Up
    }
    fn mac_address(&self) -> [u8; 6] {
        MAC
    }
    fn mtu(&self) -> usize {
        MTU
    }
    fn stats(&self) -> NetStats {
        self.0.borrow().counters.stats()
    }
}

/// Where the TCP segment in an Ethernet frame lies.
fn tcp_in(frame: &[u8]) -> Option<Range<usize>> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            (ip.next_header() == IpProtocol::Tcp).then_some(())?;
            let range = 14 + ip.header_len() as usize..14 + ip.total_len() as usize;
            Some(range)
        }
        EthernetProtocol::Ipv6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
            (ip.next_header() == IpProtocol::Tcp).then_some(())?;
            let range = 14 + 40..14 + 40 + ip.payload_len() as usize;
            Some(range)
        }
        _ => None,
    }
}

fn note_tcp(frame: &[u8], seen: &mut TcpSeen) {
    let Some(range) = tcp_in(frame) else { return };
    let Ok(tcp) = TcpPacket::new_checked(&frame[range]) else { return };
    let next = tcp.seq_number() + tcp.segment_len();
    seen.insert((tcp.src_port(), tcp.dst_port()), (next.0 as u32, tcp.ack_number().0 as u32));
}

/// Bit 2: make a segment follow the connection the stack sees.
fn follow_tcp(frame: &mut [u8], seen: &TcpSeen) {
    let Some(range) = tcp_in(frame) else { return };
    let Ok(mut tcp) = TcpPacket::new_checked(&mut frame[range]) else { return };
    if let Some(&(next, ack)) = seen.get(&(tcp.dst_port(), tcp.src_port())) {
        tcp.set_ack_number(TcpSeqNumber(next as i32));
        if !tcp.syn() {
            tcp.set_seq_number(TcpSeqNumber(ack as i32));
        }
    }
}

/// Bit 0: correct every checksum the stack verifies.
fn fix_checksums(frame: &mut [u8]) {
    let Ok(mut eth) = EthernetFrame::new_checked(frame) else { return };
    match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            let Ok(mut ip) = Ipv4Packet::new_checked(eth.payload_mut()) else { return };
            ip.fill_checksum();
            let (src, dst): (IpAddress, IpAddress) = (ip.src_addr().into(), ip.dst_addr().into());
            let proto = ip.next_header();
            let payload = ip.payload_mut();
            match proto {
                IpProtocol::Tcp => {
                    if let Ok(mut p) = TcpPacket::new_checked(payload) {
                        p.fill_checksum(&src, &dst);
                    }
                }
                IpProtocol::Udp => {
                    if let Ok(mut p) = UdpPacket::new_checked(payload) {
                        p.fill_checksum(&src, &dst);
                    }
                }
                IpProtocol::Icmp => {
                    if let Ok(mut p) = Icmpv4Packet::new_checked(payload) {
                        p.fill_checksum();
                    }
                }
                _ => {}
            }
        }
        EthernetProtocol::Ipv6 => {
            let Ok(mut ip) = Ipv6Packet::new_checked(eth.payload_mut()) else { return };
            let (s6, d6) = (ip.src_addr(), ip.dst_addr());
            let (src, dst): (IpAddress, IpAddress) = (s6.into(), d6.into());
            let proto = ip.next_header();
            let payload = ip.payload_mut();
            match proto {
                IpProtocol::Tcp => {
                    if let Ok(mut p) = TcpPacket::new_checked(payload) {
                        p.fill_checksum(&src, &dst);
                    }
                }
                IpProtocol::Udp => {
                    if let Ok(mut p) = UdpPacket::new_checked(payload) {
                        p.fill_checksum(&src, &dst);
                    }
                }
                IpProtocol::Icmpv6 => {
                    if let Ok(mut p) = Icmpv6Packet::new_checked(payload) {
                        p.fill_checksum(&s6, &d6);
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
}

fn config(byte: u8) -> Config {
    let v4 = Cidr { addr: Ipv4Addr::new(10, 0, 0, 2), prefix: 24 };
    let gw = Ipv4Addr::new(10, 0, 0, 1);
    let (ipv4, ipv4_gateway) = match byte & 3 {
        0 => (Ipv4Mode::Static(v4), Some(gw)),
        1 => (Ipv4Mode::Dhcp, None),
        2 => (Ipv4Mode::Off, None),
        _ => (Ipv4Mode::Static(v4), None),
    };
    let ipv6 = match byte & 12 {
        0 | 8 => Ipv6Mode::Static(Cidr { addr: Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2), prefix: 64 }),
        // Both off is refused by the flags.
        12 if ipv4 != Ipv4Mode::Off => Ipv6Mode::Off,
        _ => Ipv6Mode::Slaac,
    };
    Config {
        ipv4,
        ipv4_gateway,
        ipv6,
        ipv6_gateway: None,
        tcp_buffer: 2048,
        backlog: 2,
        syn_backlog: 16,
        udp_buffer: 2048,
    }
}

async fn echo(mut s: TcpStream) {
    s.set_timeout(Some(Duration::from_secs(20)));
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf).await {
            Ok(0) => {
                let _ = s.close().await;
                return;
            }
            Ok(n) => {
                if s.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

async fn app(rt: Handle, stack: morgana_net::Stack) {
    let mut echo_l = stack.tcp_listen(7).expect("listen 7");
    let mut drop_l = stack.tcp_listen(9).expect("listen 9");
    let mut udp = stack.udp_bind(7).expect("bind 7");
    let rt2 = rt.clone();
    rt.spawn(async move {
        while let Ok((s, _)) = echo_l.accept().await {
            rt2.spawn(echo(s));
        }
    });
    rt.spawn(async move {
        while let Ok((s, _)) = drop_l.accept().await {
            drop(s);
        }
    });
    rt.spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = udp.recv_from(&mut buf).await {
            let _ = udp.send_to(&buf[..n], from).await;
        }
    });
}

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, mut rest)) = data.split_first() else { return };
    let mut frames = Vec::new();
    while rest.len() >= 3 && frames.len() < MAX_FRAMES {
        let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        let flags = rest[2];
        let body = &rest[3..];
        let len = len.min(body.len());
        frames.push((flags, body[..len].to_vec()));
        rest = &body[len..];
    }

    let exec = Executor::new(Rc::new(VirtualTime::default()));
    let rt = exec.handle();
    let wire = Rc::new(RefCell::new(Wire::default()));
    let (stack, _direct) = direct::start(Device(wire.clone()), config(cfg), [7; 32], &rt);
    let rt2 = rt.clone();
    exec.block_on(async move {
        app(rt2.clone(), stack).await;
        for (flags, mut frame) in frames {
            if flags & 2 != 0 && frame.len() >= 6 {
                frame[..6].copy_from_slice(&MAC);
            }
            if flags & 4 != 0 {
                follow_tcp(&mut frame, &wire.borrow().tcp);
            }
            if flags & 1 != 0 {
                fix_checksums(&mut frame);
            }
            let waker = {
                let mut w = wire.borrow_mut();
                w.rx.push_back(frame);
                w.waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
            rt2.sleep(Duration::from_micros(1u64 << ((flags >> 3) % 28))).await;
        }
    });
});
