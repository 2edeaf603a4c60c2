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

mod addr;
mod arp;
mod config;
mod conn;
mod device;
#[cfg(feature = "dhcp")]
mod dhcp;
mod isn;
mod listen;
mod metrics;
mod poll;
mod ports;
mod stack;
mod syn;
mod tcp;
mod udp;

use alloc::collections::BTreeSet;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::future::{poll_fn, Future};
use core::net::Ipv4Addr;
#[cfg(feature = "ipv6")]
use core::net::Ipv6Addr;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use morgana_devices::{Instant, LinkState, Net, NetStats};
use morgana_runtime::{Handle, Sleep};
use slab::Slab;
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
#[cfg(feature = "dhcp")]
use smoltcp::socket::dhcpv4;
#[cfg(feature = "ipv6")]
use smoltcp::wire::Ipv6Cidr;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Cidr};

pub use config::{Cidr, Config, Ipv4Mode, Ipv6Mode};
pub use conn::TcpDefenceStats;
use conn::TcpShared;
use device::Adapter;
use listen::Listening;
use ports::EPHEMERAL_PORTS;
use syn::SynQueue;

use crate::Stack;

/// Packets taken from the device per runner poll before other tasks get a
/// turn.
const INGRESS_BATCH: usize = 64;

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
    #[cfg(feature = "dhcp")]
    dhcp: Option<SocketHandle>,
    config: Config,
    runner: Option<Waker>,
    configured_waiters: Vec<Waker>,
    listeners: Slab<Listening>,
    tcp: TcpShared,
    syn: SynQueue,
    /// Sockets dropped while the stack was borrowed.
    graves: Rc<Graves>,
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

#[cfg(feature = "ipv6")]
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
    /// device): its first 16 bytes key the TCP initial sequence numbers
    /// (RFC 6528), the rest seeds ephemeral ports and smoltcp's generator.
    /// Nothing happens until [`DirectStack::runner`] is spawned; [`start`]
    /// does both.
    pub fn new(mut device: D, config: Config, seed: [u8; 32], rt: Handle) -> DirectStack<D> {
        let mac = device.mac_address();
        let mut ic = smoltcp::iface::Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        let (tcp_buffer, syn_backlog) = (config.tcp_buffer, config.syn_backlog);
        let (isn_secret, rest) = seed.split_at(16);
        let isn_secret: [u8; 16] = isn_secret.try_into().unwrap_or_default();
        let seed = u64::from_le_bytes(rest[..8].try_into().unwrap_or_default());
        ic.random_seed = seed;
        #[cfg(feature = "ipv6")]
        {
            ic.slaac = config.ipv6 == Ipv6Mode::Slaac;
        }
        // `Config::from_args` refuses these; a config built in code is told.
        #[cfg(not(feature = "ipv6"))]
        if config.ipv6 != Ipv6Mode::Off || config.ipv6_gateway.is_some() {
            log::error!("IPv6 configured, but morgana-net was built without the `ipv6` feature: IPv6 is off");
        }
        #[cfg(not(feature = "dhcp"))]
        if config.ipv4 == Ipv4Mode::Dhcp {
            log::error!("DHCPv4 configured, but morgana-net was built without the `dhcp` feature: no IPv4 address");
        }
        let now = smol_now(rt.now());
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut iface = Interface::new(ic, &mut Adapter { device: &mut device, cx: &mut cx }, now);
        #[cfg_attr(not(feature = "dhcp"), allow(unused_mut))]
        let mut sockets = SocketSet::new(Vec::new());
        iface.update_ip_addrs(|addrs| {
            // With IPv6 off, not even the link-local address: with no IPv6
            // address smoltcp has no source to send anything IPv6 from.
            #[cfg(feature = "ipv6")]
            if config.ipv6 != Ipv6Mode::Off {
                let _ = addrs.push(IpCidr::Ipv6(Ipv6Cidr::new(link_local(mac), 64)));
            }
            if let Ipv4Mode::Static(c) = config.ipv4 {
                let _ = addrs.push(IpCidr::Ipv4(Ipv4Cidr::new(c.addr, c.prefix)));
            }
            #[cfg(feature = "ipv6")]
            if let Ipv6Mode::Static(c) = config.ipv6 {
                let _ = addrs.push(IpCidr::Ipv6(Ipv6Cidr::new(c.addr, c.prefix)));
            }
        });
        if let Some(gw) = config.ipv4_gateway {
            let _ = iface.routes_mut().add_default_ipv4_route(gw);
        }
        #[cfg(feature = "ipv6")]
        if let Some(gw) = config.ipv6_gateway {
            let _ = iface.routes_mut().add_default_ipv6_route(gw);
        }
        let gateway4 = config.ipv4_gateway;
        #[cfg(feature = "dhcp")]
        let dhcp = (config.ipv4 == Ipv4Mode::Dhcp).then(|| sockets.add(dhcpv4::Socket::new()));
        let span = (EPHEMERAL_PORTS.end() - EPHEMERAL_PORTS.start()) as u64 + 1;
        let next_port = EPHEMERAL_PORTS.start() + (seed % span) as u16;
        DirectStack {
            inner: Rc::new(RefCell::new(Inner {
                device,
                iface,
                sockets,
                #[cfg(feature = "dhcp")]
                dhcp,
                config,
                runner: None,
                configured_waiters: Vec::new(),
                tcp: TcpShared::new(isn::generator(isn_secret), tcp_buffer),
                syn: SynQueue::new(syn_backlog, isn::derive_key(&isn_secret, b"syn queue"), isn_secret),
                graves: Rc::new(Graves::default()),
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

    /// What the TCP defences have done so far.
    pub fn tcp_defence_stats(&self) -> TcpDefenceStats {
        let i = self.inner.borrow();
        let q = i.syn.stats;
        TcpDefenceStats {
            syn_answered: q.answered,
            syn_completed: q.completed,
            half_open_evicted: i.tcp.stats.half_open_evicted + q.evicted,
            syn_cookies_sent: q.cookies_sent,
            syn_cookies_completed: q.cookies_completed,
            ..i.tcp.stats
        }
    }

    /// Runs `f` with the device (for tests and diagnostics).
    pub fn with_device<R>(&self, f: impl FnOnce(&mut D) -> R) -> R {
        f(&mut self.inner.borrow_mut().device)
    }
}

/// Builds a direct stack over `device`, spawns its runner on `rt` and returns
/// the app-facing [`Stack`].
pub fn start<D: Net + 'static>(device: D, config: Config, seed: [u8; 32], rt: &Handle) -> (Stack, DirectStack<D>) {
    let stack = DirectStack::new(device, config, seed, rt.clone());
    rt.spawn(stack.runner());
    (Stack::new(Rc::new(stack.clone()), rt.clone()), stack)
}

/// A socket or listener the app dropped.
enum Grave {
    Listener(usize),
    Tcp { handle: SocketHandle, aborted: bool },
    Udp { handle: SocketHandle, port: u16 },
}

/// Drops that found the stack borrowed, taken at its next poll.
#[derive(Default)]
struct Graves {
    list: RefCell<Vec<Grave>>,
    runner: RefCell<Option<Waker>>,
}

impl Graves {
    fn push(&self, g: Grave) {
        self.list.borrow_mut().push(g);
        if let Some(w) = self.runner.borrow().as_ref() {
            w.wake_by_ref();
        }
    }
}

impl<D: Net> Inner<D> {
    /// Frees what the app dropped.
    fn bury(&mut self, grave: Grave) {
        match grave {
            Grave::Listener(id) => {
                let l = self.listeners.remove(id);
                for h in l.sockets() {
                    self.sockets.get_mut::<smoltcp::socket::tcp::Socket>(h).abort();
                    self.tcp.forget(h);
                    self.tcp.orphans.push((h, Instant::ZERO)); // freed at the next poll
                }
                self.tcp_ports.remove(&l.addr.port);
            }
            Grave::Tcp { handle, aborted } => self.orphan(handle, aborted),
            Grave::Udp { handle, port } => {
                self.sockets.remove(handle);
                self.udp_ports.remove(&port);
            }
        }
        self.wake_runner();
    }

    /// Frees what was dropped while the stack was borrowed.
    fn bury_deferred(&mut self, cx: &Context<'_>) {
        let graves = self.graves.clone();
        let mut runner = graves.runner.borrow_mut();
        if !runner.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *runner = Some(cx.waker().clone());
        }
        drop(runner);
        let list = core::mem::take(&mut *graves.list.borrow_mut());
        for g in list {
            self.bury(g);
        }
    }
}
