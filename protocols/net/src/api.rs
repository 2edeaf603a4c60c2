//! The socket types apps use.

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::fmt;
use core::future::poll_fn;
use core::net::{IpAddr, SocketAddr};
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use morgana_runtime::Handle;

use crate::driver::{StackDriver, TcpListenerDriver, TcpStreamDriver, UdpSocketDriver};
use crate::slots::Slot;
use crate::Error;

/// Where to listen: a port on one local address, or on all of the stack's
/// addresses (`ip: None`, written `*:PORT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr {
    /// The local address, or `None` for all.
    pub ip: Option<IpAddr>,
    /// The port; 0 asks the stack to pick one.
    pub port: u16,
}

/// `ADDR:PORT`, `[V6ADDR]:PORT`, or `:PORT` for all addresses (the form
/// apps' `--listen`-style flags take).
impl core::str::FromStr for ListenAddr {
    type Err = alloc::string::String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(port) = s.strip_prefix(':') {
            return port.parse().map(|p: u16| p.into()).map_err(|_| alloc::format!("'{port}' is not a port"));
        }
        let addr: SocketAddr = s.parse().map_err(|_| "expected ADDR:PORT, [V6ADDR]:PORT or :PORT")?;
        Ok(addr.into())
    }
}

impl From<u16> for ListenAddr {
    fn from(port: u16) -> Self {
        ListenAddr { ip: None, port }
    }
}

impl From<SocketAddr> for ListenAddr {
    fn from(a: SocketAddr) -> Self {
        let ip = if a.ip().is_unspecified() { None } else { Some(a.ip()) };
        ListenAddr { ip, port: a.port() }
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            None => write!(f, "*:{}", self.port),
            Some(ip) => write!(f, "{}", SocketAddr::new(ip, self.port)),
        }
    }
}

/// A handle to the network stack the unikernel was booted with. Cheap to
/// clone.
#[derive(Clone)]
pub struct Stack {
    driver: Rc<dyn StackDriver>,
    rt: Handle,
}

impl fmt::Debug for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stack").field("name", &self.driver.name()).finish()
    }
}

impl Stack {
    /// Wraps a stack implementation (backends do this; apps receive a
    /// `Stack`).
    pub fn new(driver: Rc<dyn StackDriver>, rt: Handle) -> Stack {
        Stack { driver, rt }
    }

    /// Which implementation this is, for logs.
    pub fn name(&self) -> &'static str {
        self.driver.name()
    }

    /// The stack's current addresses and prefix lengths.
    pub fn addresses(&self) -> Vec<(IpAddr, u8)> {
        self.driver.addresses()
    }

    /// Writes the stack's counters in the Prometheus text format (frames and
    /// bytes of its device, TCP connections), for a metrics endpoint.
    pub fn write_metrics(&self, enc: &mut morgana_runtime::metrics::Encoder<'_>) {
        self.driver.write_metrics(enc)
    }

    /// Waits until the stack has an address (at once for static addresses and
    /// host sockets; after the DHCP lease otherwise).
    pub async fn wait_configured(&self) {
        poll_fn(|cx| self.driver.poll_configured(cx)).await
    }

    /// Listens for TCP connections on `addr` (a port, or a socket address).
    pub fn tcp_listen(&self, addr: impl Into<ListenAddr>) -> Result<TcpListener, Error> {
        let addr = addr.into();
        let driver = self.driver.tcp_listen(addr)?;
        Ok(TcpListener { driver, rt: self.rt.clone() })
    }

    /// Connects to `remote`, failing with [`Error::TimedOut`] after `timeout`.
    pub async fn tcp_connect(&self, remote: SocketAddr, timeout: Duration) -> Result<TcpStream, Error> {
        let mut driver = self.driver.tcp_connect(remote)?;
        let connect = poll_fn(|cx| driver.poll_connect(cx));
        self.rt.timeout(timeout, connect).await.map_err(|_| Error::TimedOut)??;
        Ok(TcpStream { driver, rt: self.rt.clone(), timeout: None, slot: None })
    }

    /// Opens a UDP socket on `addr` (a port, or a socket address).
    pub fn udp_bind(&self, addr: impl Into<ListenAddr>) -> Result<UdpSocket, Error> {
        let driver = self.driver.udp_bind(addr.into())?;
        Ok(UdpSocket { driver, rt: self.rt.clone(), timeout: None })
    }
}

/// A listening TCP socket.
pub struct TcpListener {
    driver: Box<dyn TcpListenerDriver>,
    rt: Handle,
}

impl TcpListener {
    /// Waits for the next connection; returns it with the peer's address.
    pub async fn accept(&mut self) -> Result<(TcpStream, SocketAddr), Error> {
        let (driver, peer) = poll_fn(|cx| self.driver.poll_accept(cx)).await?;
        Ok((TcpStream { driver, rt: self.rt.clone(), timeout: None, slot: None }, peer))
    }

    /// The address listened on.
    pub fn local_addr(&self) -> ListenAddr {
        self.driver.local_addr()
    }
}

/// A TCP connection. Reads and writes through `embedded_io_async::Read` and
/// `Write` or the inherent methods. Dropping it closes the connection
/// gracefully: queued data is still sent, then FIN.
pub struct TcpStream {
    driver: Box<dyn TcpStreamDriver>,
    rt: Handle,
    timeout: Option<Duration>,
    slot: Option<Slot>,
}

impl TcpStream {
    /// Gives the connection its [`Slot`]: from now on it may be shed (its
    /// reads and writes then fail with [`Error::ConnectionReset`] and the
    /// connection is reset).
    pub fn attach(&mut self, slot: Slot) {
        self.slot = Some(slot);
    }

    /// Fails if the connection was shed (and resets it).
    fn check_shed(driver: &mut Box<dyn TcpStreamDriver>, slot: &Option<Slot>) -> Result<(), Error> {
        match slot {
            Some(s) if s.is_shed() => {
                driver.abort();
                Err(Error::ConnectionReset)
            }
            _ => Ok(()),
        }
    }

    /// Limits every later read, write and flush to `timeout` (each fails with
    /// [`Error::TimedOut`] when it runs out); `None` waits forever.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    async fn with_timeout<T>(
        rt: &Handle,
        timeout: Option<Duration>,
        f: impl FnMut(&mut Context<'_>) -> Poll<Result<T, Error>>,
    ) -> Result<T, Error> {
        match timeout {
            None => poll_fn(f).await,
            Some(d) => rt.timeout(d, poll_fn(f)).await.map_err(|_| Error::TimedOut)?,
        }
    }

    /// Reads some bytes; `Ok(0)` when the peer has finished sending (or
    /// `buf` is empty).
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        let (d, slot) = (&mut self.driver, &self.slot);
        Self::with_timeout(&self.rt, self.timeout, |cx| {
            if let Err(e) = Self::check_shed(d, slot) {
                return Poll::Ready(Err(e));
            }
            if let Some(s) = slot {
                s.waiting(cx.waker());
            }
            d.poll_read(cx, buf)
        })
        .await
    }

    /// Writes some bytes; returns how many were queued (at least one).
    pub async fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        Self::check_shed(&mut self.driver, &self.slot)?;
        let _writing = self.slot.as_ref().map(Slot::writing);
        let d = &mut self.driver;
        Self::with_timeout(&self.rt, self.timeout, |cx| d.poll_write(cx, buf)).await
    }

    /// Queues what the send buffer takes now, without waiting: `Ok(0)` when
    /// it is full (or `buf` is empty).
    pub fn try_write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.driver.poll_write(&mut Context::from_waker(Waker::noop()), buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Ok(0),
        }
    }

    /// Writes all of `buf`.
    pub async fn write_all(&mut self, mut buf: &[u8]) -> Result<(), Error> {
        while !buf.is_empty() {
            let n = self.write(buf).await?;
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Waits until the peer has acknowledged everything written.
    pub async fn flush(&mut self) -> Result<(), Error> {
        let d = &mut self.driver;
        Self::with_timeout(&self.rt, self.timeout, |cx| d.poll_flush(cx)).await
    }

    /// Sends FIN after the data already written: the peer reads end-of-stream.
    /// This side can still read.
    pub fn shutdown_write(&mut self) -> Result<(), Error> {
        self.driver.shutdown_write()
    }

    /// Flushes, then shuts down writing; the connection is released once the
    /// peer closes its side too.
    pub async fn close(mut self) -> Result<(), Error> {
        self.flush().await?;
        self.shutdown_write()
    }

    /// Resets the connection at once, discarding unsent data.
    pub fn abort(mut self) {
        self.driver.abort();
    }

    /// Local address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.driver.local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.driver.peer_addr()
    }
}

impl embedded_io::ErrorType for TcpStream {
    type Error = Error;
}

impl embedded_io_async::Read for TcpStream {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        TcpStream::read(self, buf).await
    }
}

impl embedded_io_async::Write for TcpStream {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        TcpStream::write(self, buf).await
    }
    async fn flush(&mut self) -> Result<(), Error> {
        TcpStream::flush(self).await
    }
}

/// A UDP socket.
pub struct UdpSocket {
    driver: Box<dyn UdpSocketDriver>,
    rt: Handle,
    timeout: Option<Duration>,
}

impl UdpSocket {
    /// Limits every later `recv_from` to `timeout`; `None` waits forever.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// Receives one datagram into `buf` (the rest of a longer one is lost);
    /// returns its length and sender.
    pub async fn recv_from(&mut self, buf: &mut [u8]) -> Result<(usize, SocketAddr), Error> {
        let d = &mut self.driver;
        let f = poll_fn(|cx| d.poll_recv_from(cx, buf));
        match self.timeout {
            None => f.await,
            Some(t) => self.rt.timeout(t, f).await.map_err(|_| Error::TimedOut)?,
        }
    }

    /// Sends one datagram to `to`.
    pub async fn send_to(&mut self, buf: &[u8], to: SocketAddr) -> Result<(), Error> {
        poll_fn(|cx| self.driver.poll_send_to(cx, buf, to)).await
    }

    /// The local address.
    pub fn local_addr(&self) -> ListenAddr {
        self.driver.local_addr()
    }
}
