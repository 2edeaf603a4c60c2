//! The direct stack: smoltcp over any [`Net`] device.
//!
//! One `Rc<RefCell<..>>` holds the device, the smoltcp interface and the
//! socket set. A runner task ([`DirectStack::runner`]) polls the interface
//! whenever the device has frames, a socket has work, or smoltcp's next timer
//! is due; socket operations wake it after changing a socket.
//!
//! Supported: Ethernet, ARP, IPv4 (static or DHCPv4), IPv6 (link-local,
//! static or SLAAC, NDP), ICMP echo replies, TCP and UDP. Not supported:
//! IP fragmentation and reassembly, multicast groups, IPv4 link-local
//! (169.254/16) autoconfiguration, DHCPv6.

mod config;
mod device;

use alloc::boxed::Box;
use alloc::collections::{BTreeSet, VecDeque};
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::future::{poll_fn, Future};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use morgana_devices::{Instant, LinkState, Net, NetStats};
use morgana_runtime::{Handle, Sleep};
use slab::Slab;
use smoltcp::iface::{Interface, PollIngressSingleResult, PollResult, SocketHandle, SocketSet};
use smoltcp::socket::{dhcpv4, tcp, udp};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, IpListenEndpoint, Ipv4Cidr, Ipv6Cidr};

pub use config::{Cidr, Config, Ipv4Mode};
use device::Adapter;

use crate::driver::{Accepted, StackDriver, TcpListenerDriver, TcpStreamDriver, UdpSocketDriver};
use crate::{Error, ListenAddr, Stack};

/// How long a connection the app has dropped may take to finish closing
/// before it is reset.
const ORPHAN_LINGER: Duration = Duration::from_secs(30);
/// Packets taken from the device per runner poll before other tasks get a
/// turn.
const INGRESS_BATCH: usize = 64;
const EPHEMERAL_PORTS: core::ops::RangeInclusive<u16> = 49152..=65535;

fn smol_now(now: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(now.as_micros() as i64)
}

fn from_smol(t: smoltcp::time::Instant) -> Instant {
    Instant::from_nanos((t.total_micros().max(0) as u64).saturating_mul(1_000))
}

/// The smoltcp stack over the device `D`. Clones share the stack.
pub struct DirectStack<D: Net + 'static> {
    inner: Rc<RefCell<Inner<D>>>,
    rt: Handle,
}

impl<D: Net + 'static> Clone for DirectStack<D> {
    fn clone(&self) -> Self {
        DirectStack { inner: self.inner.clone(), rt: self.rt.clone() }
    }
}

struct Inner<D: Net> {
    device: D,
    iface: Interface,
    sockets: SocketSet<'static>,
    dhcp: Option<SocketHandle>,
    config: Config,
    runner: Option<Waker>,
    configured_waiters: Vec<Waker>,
    orphans: Vec<(SocketHandle, Instant)>,
    listeners: Slab<Listening>,
    tcp_ports: BTreeSet<u16>,
    udp_ports: BTreeSet<u16>,
    next_port: u16,
    link: LinkState,
    rt: Handle,
    /// The current IPv4 address has been announced with gratuitous ARP
    /// and the gateway asked for its MAC address.
    announced: bool,
    /// The addresses at the last poll: smoltcp empties its neighbour cache
    /// whenever they change (a DHCP lease, a SLAAC prefix).
    known_addrs: Vec<IpCidr>,
    /// The IPv4 default gateway.
    gateway4: Option<Ipv4Addr>,
}

fn link_local(mac: [u8; 6]) -> Ipv6Addr {
    Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([mac[0] ^ 2, mac[1]]),
        u16::from_be_bytes([mac[2], 0xff]),
        u16::from_be_bytes([0xfe, mac[3]]),
        u16::from_be_bytes([mac[4], mac[5]]),
    )
}

impl<D: Net + 'static> DirectStack<D> {
    /// A stack over `device`. `seed` must be random (from the `Entropy`
    /// device): it picks initial sequence numbers and ephemeral ports.
    /// Nothing happens until [`DirectStack::runner`] is spawned; [`start`]
    /// does both.
    pub fn new(mut device: D, config: Config, seed: u64, rt: Handle) -> DirectStack<D> {
        let mac = device.mac_address();
        let mut ic = smoltcp::iface::Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        ic.random_seed = seed;
        ic.slaac = config.ipv6.is_none();
        let now = smol_now(rt.now());
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut iface = Interface::new(ic, &mut Adapter { device: &mut device, cx: &mut cx }, now);
        let mut sockets = SocketSet::new(Vec::new());
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::Ipv6(Ipv6Cidr::new(link_local(mac), 64)));
            if let Ipv4Mode::Static(c) = config.ipv4 {
                let _ = addrs.push(IpCidr::Ipv4(Ipv4Cidr::new(c.addr, c.prefix)));
            }
            if let Some(c) = config.ipv6 {
                let _ = addrs.push(IpCidr::Ipv6(Ipv6Cidr::new(c.addr, c.prefix)));
            }
        });
        if let Some(gw) = config.ipv4_gateway {
            let _ = iface.routes_mut().add_default_ipv4_route(gw);
        }
        if let Some(gw) = config.ipv6_gateway {
            let _ = iface.routes_mut().add_default_ipv6_route(gw);
        }
        let gateway4 = config.ipv4_gateway;
        let dhcp = (config.ipv4 == Ipv4Mode::Dhcp).then(|| sockets.add(dhcpv4::Socket::new()));
        let span = (EPHEMERAL_PORTS.end() - EPHEMERAL_PORTS.start()) as u64 + 1;
        let next_port = EPHEMERAL_PORTS.start() + (seed % span) as u16;
        DirectStack {
            inner: Rc::new(RefCell::new(Inner {
                device,
                iface,
                sockets,
                dhcp,
                config,
                runner: None,
                configured_waiters: Vec::new(),
                orphans: Vec::new(),
                listeners: Slab::new(),
                tcp_ports: BTreeSet::new(),
                udp_ports: BTreeSet::new(),
                next_port,
                link: LinkState::Up,
                rt: rt.clone(),
                announced: false,
                known_addrs: Vec::new(),
                gateway4,
            })),
            rt,
        }
    }

    /// The task that drives the stack. Spawn it once; it never completes.
    pub fn runner(&self) -> impl Future<Output = ()> + 'static {
        let inner = self.inner.clone();
        let rt = self.rt.clone();
        let mut timer: Option<Sleep> = None;
        poll_fn(move |cx| {
            let now = rt.now();
            let next = inner.borrow_mut().poll(cx, now);
            match next {
                None => timer = None,
                Some(at) => {
                    // smoltcp asks for "now" when it could not finish (device
                    // transmit queue full): the device wakes us for that, so a
                    // short pause avoids spinning.
                    let at = if at <= now { now + Duration::from_micros(200) } else { at };
                    let t = timer.get_or_insert_with(|| rt.sleep_until(at));
                    if t.deadline() != at {
                        t.reset(at);
                    }
                    if Pin::new(t).poll(cx).is_ready() {
                        cx.waker().wake_by_ref();
                    }
                }
            }
            Poll::<()>::Pending
        })
    }

    /// The device's counters.
    pub fn stats(&self) -> NetStats {
        self.inner.borrow().device.stats()
    }

    /// Runs `f` with the device (for tests and diagnostics).
    pub fn with_device<R>(&self, f: impl FnOnce(&mut D) -> R) -> R {
        f(&mut self.inner.borrow_mut().device)
    }
}

/// Builds a direct stack over `device`, spawns its runner on `rt` and returns
/// the app-facing [`Stack`].
pub fn start<D: Net + 'static>(device: D, config: Config, seed: u64, rt: &Handle) -> (Stack, DirectStack<D>) {
    let stack = DirectStack::new(device, config, seed, rt.clone());
    rt.spawn(stack.runner());
    (Stack::new(Rc::new(stack.clone()), rt.clone()), stack)
}

impl<D: Net> Inner<D> {
    /// Polls the interface; returns when it next wants to be polled.
    fn poll(&mut self, cx: &mut Context<'_>, now: Instant) -> Option<Instant> {
        self.runner = Some(cx.waker().clone());
        let link = self.device.link_state(cx);
        if link != self.link {
            log::info!("link {}", if link == LinkState::Up { "up" } else { "down" });
            self.link = link;
        }
        if !self.announced {
            self.announce(cx);
        }
        let ts = smol_now(now);
        let Inner { device, iface, sockets, listeners, config, .. } = self;
        let mut device = Adapter { device, cx };
        iface.poll_maintenance(ts);
        // One packet at a time, refilling listeners in between, so a burst
        // of SYNs finds a listening socket for each (up to the backlog).
        let mut budget = INGRESS_BATCH;
        while budget > 0 {
            if iface.poll_ingress_single(ts, &mut device, sockets) == PollIngressSingleResult::None {
                break;
            }
            service_listeners(listeners, sockets, config.tcp_buffer);
            budget -= 1;
        }
        if iface.ip_addrs() != &self.known_addrs[..] {
            // The neighbour cache was just flushed: ask the gateway again now
            // (our own ARP request, outside smoltcp's one-per-second limit,
            // which an ARP sent just before the flush would otherwise hold).
            self.known_addrs = iface.ip_addrs().to_vec();
            self.announced = false;
            device.cx.waker().wake_by_ref();
        }
        while iface.poll_egress(ts, &mut device, sockets) != PollResult::None {}
        service_listeners(listeners, sockets, config.tcp_buffer);
        if budget == 0 {
            device.cx.waker().wake_by_ref(); // more may be queued
        }
        self.poll_dhcp();
        let orphan_deadline = self.reap_orphans(now);
        if self.is_configured() {
            for w in self.configured_waiters.drain(..) {
                w.wake();
            }
        }
        let next = self.iface.poll_at(ts, &self.sockets).map(from_smol);
        match (next, orphan_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sends a gratuitous ARP request for the IPv4 address (static, or
    /// just leased; RFC 5227 §3), so neighbours (a hypervisor's NAT, a
    /// switch) learn it before the first packet for it arrives, and asks
    /// for the gateway's MAC address, whose answer fills smoltcp's cache.
    fn announce(&mut self, cx: &mut Context<'_>) {
        let Some(addr) = self.iface.ipv4_addr() else {
            self.announced = true;
            return;
        };
        let gateway = self.gateway4.filter(|g| *g != addr);
        if self.device.transmit(cx).is_none() {
            return; // no transmit buffer: retried on the next poll
        }
        self.send_arp_request(cx, addr, addr);
        if let Some(g) = gateway {
            self.send_arp_request(cx, addr, g);
        }
        self.announced = true;
    }

    /// Broadcasts "who has `target`? tell `addr`".
    fn send_arp_request(&mut self, cx: &mut Context<'_>, addr: Ipv4Addr, target: Ipv4Addr) {
        use morgana_devices::TxToken;
        use smoltcp::wire::{ArpOperation, ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, EthernetRepr};
        let mac = EthernetAddress(self.device.mac_address());
        let arp = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: mac,
            source_protocol_addr: addr,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target,
        };
        let eth =
            EthernetRepr { src_addr: mac, dst_addr: EthernetAddress::BROADCAST, ethertype: EthernetProtocol::Arp };
        let Some(token) = self.device.transmit(cx) else { return };
        token.consume(eth.buffer_len() + arp.buffer_len(), |buf| {
            let mut frame = EthernetFrame::new_unchecked(buf);
            eth.emit(&mut frame);
            arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
        });
    }

    fn poll_dhcp(&mut self) {
        let Some(h) = self.dhcp else { return };
        let event = match self.sockets.get_mut::<dhcpv4::Socket>(h).poll() {
            None => return,
            Some(dhcpv4::Event::Configured(c)) => Some((c.address, c.router)),
            Some(dhcpv4::Event::Deconfigured) => None,
        };
        let had_lease = self.iface.ipv4_addr().is_some();
        self.iface.update_ip_addrs(|addrs| addrs.retain(|a| !matches!(a, IpCidr::Ipv4(_))));
        self.iface.routes_mut().remove_default_ipv4_route();
        match event {
            Some((addr, router)) => {
                self.iface.update_ip_addrs(|addrs| {
                    let _ = addrs.push(IpCidr::Ipv4(addr));
                });
                if let Some(r) = router {
                    let _ = self.iface.routes_mut().add_default_ipv4_route(r);
                }
                self.gateway4 = router;
                match router {
                    Some(r) => log::info!("DHCPv4: address {addr}, gateway {r}"),
                    None => log::info!("DHCPv4: address {addr}, no gateway"),
                }
            }
            None if had_lease => log::warn!("DHCPv4: lease lost"),
            None => {}
        }
    }

    fn is_configured(&self) -> bool {
        self.iface.ip_addrs().iter().any(|c| match c.address() {
            smoltcp::wire::IpAddress::Ipv4(_) => true,
            smoltcp::wire::IpAddress::Ipv6(a) => !a.is_unicast_link_local(),
        })
    }

    /// Frees sockets the app has dropped once they have closed; resets those
    /// that linger too long. Returns the earliest linger deadline.
    fn reap_orphans(&mut self, now: Instant) -> Option<Instant> {
        let sockets = &mut self.sockets;
        self.orphans.retain(|&(h, deadline)| {
            let s = sockets.get_mut::<tcp::Socket>(h);
            // Discard what the peer still sends, so its window stays open.
            while let Ok(n) = s.recv(|b| (b.len(), b.len())) {
                if n == 0 {
                    break;
                }
            }
            let done = matches!(s.state(), tcp::State::Closed | tcp::State::TimeWait);
            if done || now >= deadline {
                if !done {
                    s.abort();
                }
                sockets.remove(h);
                false
            } else {
                true
            }
        });
        self.orphans.iter().map(|o| o.1).min()
    }

    fn wake_runner(&self) {
        if let Some(w) = &self.runner {
            w.wake_by_ref();
        }
    }

    fn ephemeral_port(&mut self, in_use: impl Fn(&Self, u16) -> bool) -> Result<u16, Error> {
        for _ in EPHEMERAL_PORTS {
            let p = self.next_port;
            self.next_port = if p == *EPHEMERAL_PORTS.end() { *EPHEMERAL_PORTS.start() } else { p + 1 };
            if !in_use(self, p) {
                return Ok(p);
            }
        }
        Err(Error::NoBuffers)
    }

    fn check_local(&self, addr: &ListenAddr) -> Result<(), Error> {
        match addr.ip {
            Some(ip) if !self.iface.has_ip_addr(ip) => Err(Error::AddrNotAvailable),
            _ => Ok(()),
        }
    }
}

fn new_tcp_socket(buffer: usize) -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(tcp::SocketBuffer::new(vec![0; buffer]), tcp::SocketBuffer::new(vec![0; buffer]));
    s.set_nagle_enabled(false);
    s
}

/// A listening port: sockets in the handshake and established connections
/// waiting for `accept`.
struct Listening {
    addr: ListenAddr,
    backlog: usize,
    /// Sockets in Listen or SynReceived state.
    pending: Vec<SocketHandle>,
    /// Established, not yet accepted.
    ready: VecDeque<SocketHandle>,
    waker: Option<Waker>,
}

/// Moves established connections to their listener's ready queue and keeps
/// one socket listening on every port while the backlog has room.
fn service_listeners(listeners: &mut Slab<Listening>, sockets: &mut SocketSet<'static>, buffer: usize) {
    for (_, l) in listeners.iter_mut() {
        let mut listening = 0;
        let mut i = 0;
        while i < l.pending.len() {
            let s = sockets.get_mut::<tcp::Socket>(l.pending[i]);
            match s.state() {
                tcp::State::Listen => {
                    listening += 1;
                    i += 1;
                }
                tcp::State::SynReceived => i += 1,
                tcp::State::Closed => {
                    // Reset or timed out during the handshake.
                    sockets.remove(l.pending.swap_remove(i));
                }
                _ => {
                    l.ready.push_back(l.pending.swap_remove(i));
                    if let Some(w) = l.waker.take() {
                        w.wake();
                    }
                }
            }
        }
        if listening == 0 && l.pending.len() + l.ready.len() < l.backlog {
            let mut s = new_tcp_socket(buffer);
            if s.listen(listen_endpoint(l.addr.ip, l.addr.port)).is_ok() {
                l.pending.push(sockets.add(s));
            }
        }
    }
}

fn listen_endpoint(ip: Option<IpAddr>, port: u16) -> IpListenEndpoint {
    IpListenEndpoint { addr: ip.map(Into::into), port }
}

impl<D: Net + 'static> StackDriver for DirectStack<D> {
    fn name(&self) -> &'static str {
        "direct (smoltcp)"
    }

    fn addresses(&self) -> Vec<(IpAddr, u8)> {
        let i = self.inner.borrow();
        i.iface.ip_addrs().iter().map(|c| (c.address().into(), c.prefix_len())).collect()
    }

    fn poll_configured(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut i = self.inner.borrow_mut();
        if i.is_configured() {
            Poll::Ready(())
        } else {
            i.configured_waiters.push(cx.waker().clone());
            Poll::Pending
        }
    }

    fn tcp_listen(&self, mut addr: ListenAddr) -> Result<Box<dyn TcpListenerDriver>, Error> {
        let mut i = self.inner.borrow_mut();
        i.check_local(&addr)?;
        if addr.port == 0 {
            addr.port = i.ephemeral_port(|i, p| i.tcp_ports.contains(&p))?;
        }
        if !i.tcp_ports.insert(addr.port) {
            return Err(Error::AddrInUse);
        }
        let backlog = i.config.backlog;
        let id =
            i.listeners.insert(Listening { addr, backlog, pending: Vec::new(), ready: VecDeque::new(), waker: None });
        let Inner { listeners, sockets, config, .. } = &mut *i;
        service_listeners(listeners, sockets, config.tcp_buffer);
        Ok(Box::new(DirectListener { inner: self.inner.clone(), id, addr }))
    }

    fn tcp_connect(&self, remote: SocketAddr) -> Result<Box<dyn TcpStreamDriver>, Error> {
        if remote.port() == 0 || remote.ip().is_unspecified() {
            return Err(Error::InvalidInput("connect needs an address and a non-zero port"));
        }
        let mut i = self.inner.borrow_mut();
        let port = i.ephemeral_port(|i, p| i.tcp_ports.contains(&p))?;
        let mut s = new_tcp_socket(i.config.tcp_buffer);
        s.connect(i.iface.context(), remote, port).map_err(|e| match e {
            tcp::ConnectError::Unaddressable => Error::Unreachable,
            tcp::ConnectError::InvalidState => Error::InvalidInput("socket busy"),
        })?;
        let handle = i.sockets.add(s);
        i.wake_runner();
        Ok(Box::new(DirectTcp { inner: self.inner.clone(), handle, aborted: false }))
    }

    fn udp_bind(&self, mut addr: ListenAddr) -> Result<Box<dyn UdpSocketDriver>, Error> {
        let mut i = self.inner.borrow_mut();
        i.check_local(&addr)?;
        if addr.port == 0 {
            addr.port = i.ephemeral_port(|i, p| i.udp_ports.contains(&p))?;
        }
        if i.udp_ports.contains(&addr.port) {
            return Err(Error::AddrInUse);
        }
        let n = i.config.udp_buffer;
        let packets = (n / 512).clamp(8, 256);
        let buffer = || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; packets], vec![0; n]);
        let mut s = udp::Socket::new(buffer(), buffer());
        s.bind(listen_endpoint(addr.ip, addr.port)).map_err(|_| Error::InvalidInput("cannot bind"))?;
        i.udp_ports.insert(addr.port);
        let handle = i.sockets.add(s);
        Ok(Box::new(DirectUdp { inner: self.inner.clone(), handle, addr }))
    }
}

struct DirectListener<D: Net + 'static> {
    inner: Rc<RefCell<Inner<D>>>,
    id: usize,
    addr: ListenAddr,
}

impl<D: Net + 'static> TcpListenerDriver for DirectListener<D> {
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<Result<Accepted, Error>> {
        let mut i = self.inner.borrow_mut();
        let Inner { listeners, sockets, config, .. } = &mut *i;
        let l = &mut listeners[self.id];
        while let Some(h) = l.ready.pop_front() {
            let Some(peer) = sockets.get::<tcp::Socket>(h).remote_endpoint() else {
                sockets.remove(h); // reset before it was accepted
                continue;
            };
            // Room in the backlog again: listen once more if needed.
            service_listeners(listeners, sockets, config.tcp_buffer);
            i.wake_runner();
            let stream = DirectTcp { inner: self.inner.clone(), handle: h, aborted: false };
            return Poll::Ready(Ok((Box::new(stream), peer.into())));
        }
        l.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn local_addr(&self) -> ListenAddr {
        self.addr
    }
}

impl<D: Net + 'static> Drop for DirectListener<D> {
    fn drop(&mut self) {
        let Ok(mut i) = self.inner.try_borrow_mut() else { return };
        let l = i.listeners.remove(self.id);
        for h in l.pending.into_iter().chain(l.ready) {
            i.sockets.get_mut::<tcp::Socket>(h).abort();
            i.orphans.push((h, Instant::ZERO)); // freed at the next poll
        }
        i.tcp_ports.remove(&self.addr.port);
        i.wake_runner();
    }
}

struct DirectTcp<D: Net + 'static> {
    inner: Rc<RefCell<Inner<D>>>,
    handle: SocketHandle,
    aborted: bool,
}

fn closed_error(s: &tcp::Socket<'_>) -> Error {
    match s.state() {
        tcp::State::Closed => Error::ConnectionReset,
        _ => Error::Closed,
    }
}

impl<D: Net + 'static> TcpStreamDriver for DirectTcp<D> {
    fn poll_connect(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut i = self.inner.borrow_mut();
        let s = i.sockets.get_mut::<tcp::Socket>(self.handle);
        match s.state() {
            tcp::State::SynSent | tcp::State::SynReceived => {
                s.register_send_waker(cx.waker());
                Poll::Pending
            }
            tcp::State::Closed => Poll::Ready(Err(Error::ConnectionRefused)),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize, Error>> {
        let mut i = self.inner.borrow_mut();
        let s = i.sockets.get_mut::<tcp::Socket>(self.handle);
        match s.recv_slice(buf) {
            Ok(0) => {
                s.register_recv_waker(cx.waker());
                Poll::Pending
            }
            Ok(n) => {
                i.wake_runner(); // the window opened: an ACK may be due
                Poll::Ready(Ok(n))
            }
            Err(tcp::RecvError::Finished) => Poll::Ready(Ok(0)),
            Err(tcp::RecvError::InvalidState) => match s.state() {
                tcp::State::SynSent | tcp::State::SynReceived => {
                    s.register_recv_waker(cx.waker());
                    Poll::Pending
                }
                _ => Poll::Ready(Err(Error::ConnectionReset)),
            },
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<Result<usize, Error>> {
        let mut i = self.inner.borrow_mut();
        let s = i.sockets.get_mut::<tcp::Socket>(self.handle);
        match s.send_slice(buf) {
            Ok(0) => {
                if !s.may_send() && !matches!(s.state(), tcp::State::SynSent | tcp::State::SynReceived) {
                    return Poll::Ready(Err(closed_error(s)));
                }
                s.register_send_waker(cx.waker());
                Poll::Pending
            }
            Ok(n) => {
                i.wake_runner();
                Poll::Ready(Ok(n))
            }
            Err(tcp::SendError::InvalidState) => match s.state() {
                tcp::State::SynSent | tcp::State::SynReceived => {
                    s.register_send_waker(cx.waker());
                    Poll::Pending
                }
                _ => Poll::Ready(Err(closed_error(s))),
            },
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut i = self.inner.borrow_mut();
        let s = i.sockets.get_mut::<tcp::Socket>(self.handle);
        if s.send_queue() == 0 {
            return Poll::Ready(Ok(()));
        }
        if s.state() == tcp::State::Closed {
            return Poll::Ready(Err(Error::ConnectionReset));
        }
        s.register_send_waker(cx.waker());
        Poll::Pending
    }

    fn shutdown_write(&mut self) -> Result<(), Error> {
        let mut i = self.inner.borrow_mut();
        i.sockets.get_mut::<tcp::Socket>(self.handle).close();
        i.wake_runner();
        Ok(())
    }

    fn abort(&mut self) {
        let mut i = self.inner.borrow_mut();
        i.sockets.get_mut::<tcp::Socket>(self.handle).abort();
        self.aborted = true;
        i.wake_runner();
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        let i = self.inner.borrow();
        i.sockets.get::<tcp::Socket>(self.handle).local_endpoint().map(Into::into)
    }

    fn peer_addr(&self) -> Option<SocketAddr> {
        let i = self.inner.borrow();
        i.sockets.get::<tcp::Socket>(self.handle).remote_endpoint().map(Into::into)
    }
}

impl<D: Net + 'static> Drop for DirectTcp<D> {
    fn drop(&mut self) {
        let Ok(mut i) = self.inner.try_borrow_mut() else { return };
        let s = i.sockets.get_mut::<tcp::Socket>(self.handle);
        if !self.aborted {
            s.close();
        }
        let deadline = if self.aborted { Instant::ZERO } else { i.rt.now() + ORPHAN_LINGER };
        i.orphans.push((self.handle, deadline));
        i.wake_runner();
    }
}

struct DirectUdp<D: Net + 'static> {
    inner: Rc<RefCell<Inner<D>>>,
    handle: SocketHandle,
    addr: ListenAddr,
}

impl<D: Net + 'static> UdpSocketDriver for DirectUdp<D> {
    fn poll_recv_from(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<(usize, SocketAddr), Error>> {
        let mut i = self.inner.borrow_mut();
        let s = i.sockets.get_mut::<udp::Socket>(self.handle);
        match s.recv() {
            Ok((data, meta)) => {
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                Poll::Ready(Ok((n, meta.endpoint.into())))
            }
            Err(_) => {
                s.register_recv_waker(cx.waker());
                Poll::Pending
            }
        }
    }

    fn poll_send_to(&mut self, cx: &mut Context<'_>, buf: &[u8], to: SocketAddr) -> Poll<Result<(), Error>> {
        let mut i = self.inner.borrow_mut();
        let mtu = i.device.mtu();
        let s = i.sockets.get_mut::<udp::Socket>(self.handle);
        let header = if to.is_ipv4() { 20 + 8 } else { 40 + 8 };
        if buf.len() + header > mtu || buf.len() > s.payload_send_capacity() {
            return Poll::Ready(Err(Error::TooLarge));
        }
        match s.send_slice(buf, to) {
            Ok(()) => {
                i.wake_runner();
                Poll::Ready(Ok(()))
            }
            Err(udp::SendError::BufferFull) => {
                s.register_send_waker(cx.waker());
                Poll::Pending
            }
            Err(udp::SendError::Unaddressable) => Poll::Ready(Err(Error::Unreachable)),
        }
    }

    fn local_addr(&self) -> ListenAddr {
        self.addr
    }
}

impl<D: Net + 'static> Drop for DirectUdp<D> {
    fn drop(&mut self) {
        let Ok(mut i) = self.inner.try_borrow_mut() else { return };
        i.sockets.remove(self.handle);
        i.udp_ports.remove(&self.addr.port);
    }
}
