//! The host-socket stack: the network API over the Linux kernel's TCP/IP,
//! through non-blocking sockets and epoll. For development: the unikernel
//! runs as a normal process and is reached at the host's addresses.
//!
//! A listener or UDP socket bound to a port only (`*:PORT`) is one
//! dual-stack IPv6 socket (`[::]:PORT` with `IPV6_V6ONLY` off), or IPv4
//! `0.0.0.0:PORT` where the host has no IPv6.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv6Addr, Shutdown, SocketAddr};
use std::rc::Rc;
use std::task::{Context, Poll};

use mio::net::{TcpListener as MioListener, TcpStream as MioStream, UdpSocket as MioUdp};
use morgana_net::driver::{Accepted, StackDriver, TcpListenerDriver, TcpStreamDriver, UdpSocketDriver};
use morgana_net::{Error, ListenAddr};
use morgana_runtime::metrics::{Counter, Encoder, Gauge};
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::reactor::{Deferred, Direction, Reactor, Registration, WritableHook};

/// Converts a host error to the network API's error.
pub fn net_error(e: io::Error) -> Error {
    use io::ErrorKind as K;
    match e.kind() {
        K::AddrInUse => Error::AddrInUse,
        K::AddrNotAvailable => Error::AddrNotAvailable,
        K::PermissionDenied => Error::PermissionDenied,
        K::ConnectionRefused => Error::ConnectionRefused,
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => Error::ConnectionReset,
        K::TimedOut => Error::TimedOut,
        K::HostUnreachable | K::NetworkUnreachable => Error::Unreachable,
        _ => Error::Host(e.to_string()),
    }
}

fn unmap(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
            None => addr,
        },
        v4 => v4,
    }
}

/// Creates a bound socket for `addr`: dual-stack for port-only addresses.
fn bound_socket(addr: ListenAddr, ty: Type, proto: Protocol) -> io::Result<Socket> {
    let (socket, bind_to) = match addr.ip {
        Some(ip) => {
            let s = Socket::new(Domain::for_address(SocketAddr::new(ip, 0)), ty, Some(proto))?;
            if ip.is_ipv6() {
                s.set_only_v6(true)?;
            }
            (s, SocketAddr::new(ip, addr.port))
        }
        None => match Socket::new(Domain::IPV6, ty, Some(proto)) {
            Ok(s) => {
                s.set_only_v6(false)?;
                (s, SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), addr.port))
            }
            Err(_) => (
                Socket::new(Domain::IPV4, ty, Some(proto))?,
                SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), addr.port),
            ),
        },
    };
    socket.set_nonblocking(true)?;
    socket.set_cloexec(true)?;
    if ty == Type::STREAM {
        socket.set_reuse_address(true)?;
    }
    socket.bind(&bind_to.into())?;
    Ok(socket)
}

/// Inside the sandbox no socket may be created: say so instead of dying.
fn no_new_sockets() -> Result<(), Error> {
    if crate::sandbox::sealed() {
        return Err(Error::Host("the sandbox allows no new sockets after start (bind before the first wait)".into()));
    }
    Ok(())
}

/// TCP connections accepted from the host, and held by the app now.
static TCP_ACCEPTED: Counter = Counter::new();
static TCP_OPEN: Gauge = Gauge::new();

/// The host-socket stack.
pub struct HostStack {
    reactor: Rc<Reactor>,
}

impl HostStack {
    /// A stack using `reactor` for readiness.
    pub fn new(reactor: Rc<Reactor>) -> HostStack {
        HostStack { reactor }
    }
}

impl StackDriver for HostStack {
    fn name(&self) -> &'static str {
        "host sockets"
    }

    fn addresses(&self) -> Vec<(IpAddr, u8)> {
        Vec::new()
    }

    fn poll_configured(&self, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Ready(())
    }

    // The host kernel owns the frames and the handshakes; what the process
    // sees is its connections.
    fn write_metrics(&self, enc: &mut Encoder<'_>) {
        enc.gauge("morgana_tcp_connections_open", "TCP connections the app holds now.", TCP_OPEN.get());
        enc.counter("morgana_tcp_connections_accepted_total", "TCP connections handed to the app.", TCP_ACCEPTED.get());
    }

    fn tcp_listen(&self, addr: ListenAddr) -> Result<Box<dyn TcpListenerDriver>, Error> {
        no_new_sockets()?;
        let socket = bound_socket(addr, Type::STREAM, Protocol::TCP).map_err(net_error)?;
        socket.listen(1024).map_err(net_error)?;
        let local = socket.local_addr().ok().and_then(|a| a.as_socket()).map(unmap);
        let mut listener = MioListener::from_std(socket.into());
        let reg = self.reactor.register(&mut listener).map_err(net_error)?;
        let addr = ListenAddr { ip: addr.ip, port: local.map(|a| a.port()).unwrap_or(addr.port) };
        Ok(Box::new(HostListener { reactor: self.reactor.clone(), listener, reg, addr }))
    }

    fn tcp_connect(&self, remote: SocketAddr) -> Result<Box<dyn TcpStreamDriver>, Error> {
        no_new_sockets()?;
        if remote.port() == 0 || remote.ip().is_unspecified() {
            return Err(Error::InvalidInput("connect needs an address and a non-zero port"));
        }
        let mut stream = MioStream::connect(remote).map_err(net_error)?;
        let reg = self.reactor.register(&mut stream).map_err(net_error)?;
        TCP_OPEN.inc();
        Ok(Box::new(HostTcp { stream, reg, connected: false }))
    }

    fn udp_bind(&self, addr: ListenAddr) -> Result<Box<dyn UdpSocketDriver>, Error> {
        no_new_sockets()?;
        let socket = bound_socket(addr, Type::DGRAM, Protocol::UDP).map_err(net_error)?;
        let dual = socket.domain().map(|d| d == Domain::IPV6).unwrap_or(false) && addr.ip.is_none();
        let local = socket.local_addr().ok().and_then(|a| a.as_socket()).map(unmap);
        let mut udp = MioUdp::from_std(socket.into());
        let reg = self.reactor.register(&mut udp).map_err(net_error)?;
        let addr = ListenAddr { ip: addr.ip, port: local.map(|a| a.port()).unwrap_or(addr.port) };
        let out = SendQueue::new(std::os::fd::AsRawFd::as_raw_fd(&udp), reg.writable_hook());
        Ok(Box::new(HostUdp { udp, reg, reactor: self.reactor.clone(), addr, dual, batch: RecvBatch::new(), out }))
    }
}

mod batch;
mod tcp;
mod udp;

use batch::{Pushed, RecvBatch, SendQueue, BATCH, MAX_QUEUED};
use tcp::{HostListener, HostTcp};
use udp::HostUdp;
