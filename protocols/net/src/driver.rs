//! The interface between the network API and a stack implementation.
//!
//! Apps never see these traits. A stack implementation (the direct smoltcp
//! stack, the hosted backend's host sockets) implements them; [`crate::Stack`]
//! and the socket types wrap them in `async` methods. They are poll-based and
//! object safe so that the implementation can be chosen at boot.
//!
//! Every `poll_*` method follows the `Future` contract: `Pending` means the
//! waker in `cx` was registered and will be woken when progress is possible.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};
use core::task::{Context, Poll};

use morgana_runtime::metrics::Encoder;

use crate::{Error, ListenAddr};

/// A network stack.
pub trait StackDriver {
    /// A short description for logs, e.g. `"direct (smoltcp)"`.
    fn name(&self) -> &'static str;

    /// The stack's addresses with prefix lengths (empty until configured).
    fn addresses(&self) -> Vec<(IpAddr, u8)>;

    /// Ready once the stack has at least one usable non-link-local address.
    fn poll_configured(&self, cx: &mut Context<'_>) -> Poll<()>;

    /// Starts listening for TCP connections.
    fn tcp_listen(&self, addr: ListenAddr) -> Result<Box<dyn TcpListenerDriver>, Error>;

    /// Starts connecting; the stream's `poll_connect` reports the outcome.
    fn tcp_connect(&self, remote: SocketAddr) -> Result<Box<dyn TcpStreamDriver>, Error>;

    /// Opens a UDP socket.
    fn udp_bind(&self, addr: ListenAddr) -> Result<Box<dyn UdpSocketDriver>, Error>;

    /// Writes the stack's (and its device's) counters, when scraped.
    fn write_metrics(&self, _enc: &mut Encoder<'_>) {}
}

/// An accepted connection and the peer's address.
pub type Accepted = (Box<dyn TcpStreamDriver>, SocketAddr);

/// A listening TCP socket.
pub trait TcpListenerDriver {
    /// Takes one established connection and the peer's address.
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<Result<Accepted, Error>>;
    /// The address listened on.
    fn local_addr(&self) -> ListenAddr;
}

/// A TCP connection. Dropping it closes the connection gracefully (FIN after
/// the queued data) without waiting.
pub trait TcpStreamDriver {
    /// Ready when the connection is established (at once for accepted ones).
    fn poll_connect(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>>;
    /// Reads into `buf`; `Ok(0)` means the peer has finished sending.
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize, Error>>;
    /// Queues up to `buf.len()` bytes; returns how many (at least one).
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<Result<usize, Error>>;
    /// Ready once everything queued has been acknowledged by the peer.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>>;
    /// Sends FIN after the queued data; reading stays possible.
    fn shutdown_write(&mut self) -> Result<(), Error>;
    /// Resets the connection (RST) at once, discarding queued data.
    fn abort(&mut self);
    /// Local address.
    fn local_addr(&self) -> Option<SocketAddr>;
    /// Remote address.
    fn peer_addr(&self) -> Option<SocketAddr>;
}

/// A UDP socket.
pub trait UdpSocketDriver {
    /// Receives one datagram; returns its length (truncated to `buf.len()`)
    /// and sender.
    fn poll_recv_from(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<(usize, SocketAddr), Error>>;
    /// Sends one datagram.
    fn poll_send_to(&mut self, cx: &mut Context<'_>, buf: &[u8], to: SocketAddr) -> Poll<Result<(), Error>>;
    /// Local address.
    fn local_addr(&self) -> ListenAddr;
}

/// The stack of a machine without a network device: every operation fails
/// with [`Error::NoDevice`].
#[derive(Debug, Default)]
pub struct NoNetwork;

impl StackDriver for NoNetwork {
    fn name(&self) -> &'static str {
        "none (no network device)"
    }

    fn addresses(&self) -> Vec<(IpAddr, u8)> {
        Vec::new()
    }

    fn poll_configured(&self, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Ready(())
    }

    fn tcp_listen(&self, _addr: ListenAddr) -> Result<Box<dyn TcpListenerDriver>, Error> {
        Err(Error::NoDevice)
    }

    fn tcp_connect(&self, _remote: SocketAddr) -> Result<Box<dyn TcpStreamDriver>, Error> {
        Err(Error::NoDevice)
    }

    fn udp_bind(&self, _addr: ListenAddr) -> Result<Box<dyn UdpSocketDriver>, Error> {
        Err(Error::NoDevice)
    }
}
