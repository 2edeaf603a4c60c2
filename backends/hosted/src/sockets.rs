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

struct HostListener {
    reactor: Rc<Reactor>,
    listener: MioListener,
    reg: Registration,
    addr: ListenAddr,
}

impl TcpListenerDriver for HostListener {
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<Result<Accepted, Error>> {
        loop {
            let (mut stream, peer) = match self.reg.poll_io(cx, Direction::Read, || self.listener.accept()) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(x)) => x,
                // The connection went away before we took it, or a transient
                // resource shortage: keep listening.
                Poll::Ready(Err(e)) => {
                    log::warn!("accept on {}: {e}", self.addr);
                    if matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset) {
                        continue;
                    }
                    return Poll::Ready(Err(net_error(e)));
                }
            };
            let _ = stream.set_nodelay(true);
            let reg = match self.reactor.register(&mut stream) {
                Ok(r) => r,
                Err(e) => return Poll::Ready(Err(net_error(e))),
            };
            TCP_ACCEPTED.inc();
            TCP_OPEN.inc();
            let s: Box<dyn TcpStreamDriver> = Box::new(HostTcp { stream, reg, connected: true });
            return Poll::Ready(Ok((s, unmap(peer))));
        }
    }

    fn local_addr(&self) -> ListenAddr {
        self.addr
    }
}

impl Drop for HostListener {
    fn drop(&mut self) {
        self.reg.deregister(&mut self.listener);
    }
}

struct HostTcp {
    stream: MioStream,
    reg: Registration,
    connected: bool,
}

impl TcpStreamDriver for HostTcp {
    fn poll_connect(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.connected {
            return Poll::Ready(Ok(()));
        }
        if let Ok(Some(e)) | Err(e) = self.stream.take_error() {
            return Poll::Ready(Err(net_error(e)));
        }
        match self.stream.peer_addr() {
            Ok(_) => {
                self.connected = true;
                let _ = self.stream.set_nodelay(true);
                Poll::Ready(Ok(()))
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                self.reg.set_waker(cx, Direction::Write);
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(net_error(e))),
        }
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize, Error>> {
        let s = &mut self.stream;
        self.reg.poll_io(cx, Direction::Read, || s.read(buf)).map_err(net_error)
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<Result<usize, Error>> {
        let s = &mut self.stream;
        self.reg.poll_io(cx, Direction::Write, || s.write(buf)).map_err(|e| match e.kind() {
            io::ErrorKind::BrokenPipe => Error::Closed,
            _ => net_error(e),
        })
    }

    fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // Written data is already in the kernel, which delivers it.
        Poll::Ready(Ok(()))
    }

    fn shutdown_write(&mut self) -> Result<(), Error> {
        match self.stream.shutdown(Shutdown::Write) {
            Err(e) if e.kind() != io::ErrorKind::NotConnected => Err(net_error(e)),
            _ => Ok(()),
        }
    }

    fn abort(&mut self) {
        // A zero linger time makes close() send RST.
        let _ = SockRef::from(&self.stream).set_linger(Some(std::time::Duration::ZERO));
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        self.stream.local_addr().ok().map(unmap)
    }

    fn peer_addr(&self) -> Option<SocketAddr> {
        self.stream.peer_addr().ok().map(unmap)
    }
}

impl Drop for HostTcp {
    fn drop(&mut self) {
        TCP_OPEN.dec();
        self.reg.deregister(&mut self.stream);
    }
}

struct HostUdp {
    udp: MioUdp,
    reg: Registration,
    reactor: Rc<Reactor>,
    addr: ListenAddr,
    dual: bool,
    batch: RecvBatch,
    out: Rc<SendQueue>,
}

impl UdpSocketDriver for HostUdp {
    fn poll_recv_from(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<(usize, SocketAddr), Error>> {
        use std::os::fd::AsRawFd;
        let fd = self.udp.as_raw_fd();
        loop {
            if let Some((n, from)) = self.batch.take(buf) {
                match from {
                    Some(from) => return Poll::Ready(Ok((n, from))),
                    None => continue, // an address family we cannot express
                }
            }
            // The batch is used up: the replies to it go out together.
            self.out.flush();
            let batch = &mut self.batch;
            match self.reg.poll_io(cx, Direction::Read, || batch.fill(fd)) {
                Poll::Ready(Ok(())) => continue,
                // ICMP errors for earlier sends surface here; they are not
                // this receive's failure.
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(net_error(e))),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn poll_send_to(&mut self, cx: &mut Context<'_>, buf: &[u8], to: SocketAddr) -> Poll<Result<(), Error>> {
        let to = match to {
            SocketAddr::V4(a) if self.dual => SocketAddr::new(IpAddr::V6(a.ip().to_ipv6_mapped()), a.port()),
            other => other,
        };
        // While received datagrams are still waiting to be read, this is a
        // reply in the middle of a batch: queue it and send the queue with
        // one sendmmsg when the batch is used up, the queue is full, or the
        // executor is about to sleep.
        // The reply to a batch's last datagram joins the queue and sends it.
        // Datagrams still queued because the socket buffer is full are
        // followed by the queue too (or by nothing, when it is full).
        if (self.batch.pending() || self.out.len() > 0) && buf.len() <= MAX_QUEUED {
            if self.out.push(buf, to) == Pushed::NeedsFlush {
                self.reactor.defer(self.out.clone());
            }
            if !self.batch.pending() || self.out.len() >= BATCH {
                self.out.flush();
            }
            return Poll::Ready(Ok(()));
        }
        self.out.flush(); // keep the order of sends
        if self.out.len() > 0 {
            // Queued datagrams wait for room: this one waits behind them.
            self.reg.set_waker(cx, Direction::Write);
            return Poll::Pending;
        }
        let u = &self.udp;
        self.reg.poll_io(cx, Direction::Write, || u.send_to(buf, to)).map(|r| match r {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => Err(Error::TooLarge),
            Err(e) => Err(net_error(e)),
        })
    }

    fn local_addr(&self) -> ListenAddr {
        self.addr
    }
}

impl Drop for HostUdp {
    fn drop(&mut self) {
        self.out.flush();
        self.out.close();
        self.reg.deregister(&mut self.udp);
    }
}

/// Receives up to [`BATCH`] datagrams per system call (`recvmmsg`), so a
/// busy server pays one receive call per batch rather than per datagram.
/// Buffers hold the largest datagram, and are allocated on first use.
struct RecvBatch {
    bufs: Vec<Box<[u8]>>,
    lens: [usize; BATCH],
    from: [Option<SocketAddr>; BATCH],
    count: usize,
    next: usize,
}

const BATCH: usize = 16;
const MAX_DATAGRAM: usize = 65536;

#[allow(unsafe_code)] // recvmmsg(2): see the SAFETY comments
impl RecvBatch {
    fn new() -> RecvBatch {
        RecvBatch { bufs: Vec::new(), lens: [0; BATCH], from: [None; BATCH], count: 0, next: 0 }
    }

    /// Takes the next received datagram into `buf` (truncating).
    fn take(&mut self, buf: &mut [u8]) -> Option<(usize, Option<SocketAddr>)> {
        if self.next == self.count {
            return None;
        }
        let i = self.next;
        self.next += 1;
        let n = self.lens[i].min(buf.len());
        buf[..n].copy_from_slice(&self.bufs[i][..n]);
        Some((n, self.from[i]))
    }

    /// Whether received datagrams wait to be taken.
    fn pending(&self) -> bool {
        self.next < self.count
    }

    /// One `recvmmsg` call on the non-blocking socket `fd`.
    fn fill(&mut self, fd: std::os::fd::RawFd) -> io::Result<()> {
        if self.bufs.is_empty() {
            self.bufs = (0..BATCH).map(|_| vec![0u8; MAX_DATAGRAM].into_boxed_slice()).collect();
        }
        // SAFETY: all-zero bytes are a valid value for these plain C structs.
        let mut addrs: [libc::sockaddr_storage; BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..BATCH {
            iovs[i].iov_base = self.bufs[i].as_mut_ptr().cast();
            iovs[i].iov_len = self.bufs[i].len();
            msgs[i].msg_hdr.msg_name = (&raw mut addrs[i]).cast();
            msgs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            msgs[i].msg_hdr.msg_iov = &raw mut iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `msgs` holds BATCH headers whose name and iovec pointers
        // point into `addrs`, `iovs` and `self.bufs`, all live and unaliased
        // for the duration of the call; the kernel writes only within the
        // lengths given.
        let n = unsafe {
            libc::recvmmsg(fd, msgs.as_mut_ptr(), BATCH as libc::c_uint, libc::MSG_DONTWAIT, std::ptr::null_mut())
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for i in 0..n {
            self.lens[i] = msgs[i].msg_len as usize;
            self.from[i] = sockaddr_to_std(&addrs[i]);
        }
        self.count = n;
        self.next = 0;
        Ok(())
    }
}

/// Largest datagram queued for a batched send; larger ones go out at once
/// so their errors reach the caller.
const MAX_QUEUED: usize = 4096;

/// Datagrams waiting for room in the socket buffer, at most; more are
/// dropped (and counted), as a full socket buffer drops them.
const BACKLOG: usize = 256;

/// Datagrams queued for one `sendmmsg`. Errors of queued sends cannot reach
/// the caller, who has been told the send succeeded (as with any UDP loss):
/// they are logged at debug level.
///
/// When the socket buffer is full the rest stays queued, new datagrams join
/// it (up to [`BACKLOG`]) and the reactor flushes it once the socket is
/// writable again: nothing waits for room.
struct SendQueue {
    fd: std::cell::Cell<std::os::fd::RawFd>,
    queued: std::cell::RefCell<Queued>,
    writable: WritableHook,
    me: std::rc::Weak<SendQueue>,
}

struct Queued {
    bufs: Vec<Vec<u8>>,
    to: Vec<socket2::SockAddr>,
    len: usize,
    /// A flush is already deferred to the reactor.
    deferred: bool,
    /// The socket buffer was full: the reactor flushes when it has room.
    blocked: bool,
    /// Datagrams dropped since the queue was last empty.
    dropped: u64,
}

/// What [`SendQueue::push`] did.
#[derive(Debug, PartialEq, Eq)]
enum Pushed {
    /// Queued; a flush must be deferred to the reactor.
    NeedsFlush,
    /// Queued.
    Queued,
    /// The queue is full: dropped.
    Dropped,
}

/// The reactor's call when the socket is writable again.
struct Writable(Rc<SendQueue>);

impl Deferred for Writable {
    fn flush(&self) {
        self.0.queued.borrow_mut().blocked = false;
        self.0.flush();
    }
}

impl SendQueue {
    fn new(fd: std::os::fd::RawFd, writable: WritableHook) -> Rc<SendQueue> {
        Rc::new_cyclic(|me| SendQueue {
            fd: std::cell::Cell::new(fd),
            queued: std::cell::RefCell::new(Queued {
                bufs: Vec::new(),
                to: Vec::new(),
                len: 0,
                deferred: false,
                blocked: false,
                dropped: 0,
            }),
            writable,
            me: me.clone(),
        })
    }

    /// Queues a copy of `buf` for `to`, unless the queue is full.
    fn push(&self, buf: &[u8], to: SocketAddr) -> Pushed {
        let mut q = self.queued.borrow_mut();
        if q.len >= BACKLOG {
            if q.dropped == 0 {
                log::warn!("UDP send buffer full: dropping datagrams until it drains");
            }
            q.dropped += 1;
            return Pushed::Dropped;
        }
        let i = q.len;
        if i == q.bufs.len() {
            q.bufs.push(Vec::with_capacity(512));
            q.to.push(socket2::SockAddr::from(to));
        } else {
            q.to[i] = socket2::SockAddr::from(to);
        }
        q.bufs[i].clear();
        q.bufs[i].extend_from_slice(buf);
        q.len += 1;
        if std::mem::replace(&mut q.deferred, true) {
            Pushed::Queued
        } else {
            Pushed::NeedsFlush
        }
    }

    fn len(&self) -> usize {
        self.queued.borrow().len
    }

    /// The socket is closing: what is still queued is dropped, and nothing
    /// more is sent.
    fn close(&self) {
        self.fd.set(-1);
        let mut q = self.queued.borrow_mut();
        if q.len > 0 {
            log::debug!("UDP socket closed with {} datagrams unsent", q.len);
        }
        q.len = 0;
    }
}

#[allow(unsafe_code)] // sendmmsg(2): see the SAFETY comment
impl Deferred for SendQueue {
    /// Sends what the socket buffer takes now. If it fills up, the rest
    /// stays queued and is sent when the reactor sees the socket writable.
    fn flush(&self) {
        let mut q = self.queued.borrow_mut();
        q.deferred = false;
        let fd = self.fd.get();
        if q.len == 0 || fd < 0 || q.blocked {
            return;
        }
        let n = q.len;
        // SAFETY: all-zero bytes are a valid value for these plain C structs.
        let mut iovs: Vec<libc::iovec> = vec![unsafe { std::mem::zeroed() }; n];
        // SAFETY: as above.
        let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; n];
        for i in 0..n {
            iovs[i].iov_base = q.bufs[i].as_ptr() as *mut libc::c_void;
            iovs[i].iov_len = q.bufs[i].len();
            msgs[i].msg_hdr.msg_name = q.to[i].as_ptr() as *mut libc::c_void;
            msgs[i].msg_hdr.msg_namelen = q.to[i].len();
            msgs[i].msg_hdr.msg_iov = &raw mut iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        let mut sent = 0;
        while sent < n {
            // SAFETY: `msgs[sent..n]` are headers whose name and iovec
            // pointers point into `q.to`, `iovs` and `q.bufs`, which live and
            // are not touched until this call returns; the kernel only reads
            // them.
            let r = unsafe {
                libc::sendmmsg(fd, msgs[sent..].as_mut_ptr(), (n - sent) as libc::c_uint, libc::MSG_DONTWAIT)
            };
            if r > 0 {
                sent += r as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    q.blocked = true;
                    if let Some(me) = self.me.upgrade() {
                        self.writable.flush_when_writable(Rc::new(Writable(me)));
                    }
                    break;
                }
                _ => {
                    // This datagram fails: skip it.
                    log::debug!("UDP send failed, datagram dropped: {e}");
                    sent += 1;
                }
            }
        }
        // Keep the unsent ones, in order, at the front.
        q.bufs[..n].rotate_left(sent);
        q.to[..n].rotate_left(sent);
        q.len = n - sent;
        if q.len == 0 && q.dropped > 0 {
            log::warn!("UDP send buffer drained; {} datagrams were dropped", q.dropped);
            q.dropped = 0;
        }
    }
}

#[allow(unsafe_code)] // reading the address the kernel wrote
fn sockaddr_to_std(a: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match a.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which
            // is smaller than and alignment-compatible with sockaddr_storage.
            let v4 = unsafe { &*(a as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
            Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be(v4.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let v6 = unsafe { &*(a as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(v6.sin6_addr.s6_addr);
            let port = u16::from_be(v6.sin6_port);
            let addr = std::net::SocketAddrV6::new(ip, port, u32::from_be(v6.sin6_flowinfo), v6.sin6_scope_id);
            Some(unmap(SocketAddr::V6(addr)))
        }
        _ => None,
    }
}
