//! The app-facing driver: listen, connect, bind.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};
use core::task::{Context, Poll};

use morgana_devices::Net;
use smoltcp::socket::{tcp, udp};

use super::listen::{listen_endpoint, service_listeners, DirectListener, Listening};
use super::tcp::DirectTcp;
use super::udp::DirectUdp;
use super::{DirectStack, Inner};
use crate::driver::{StackDriver, TcpListenerDriver, TcpStreamDriver, UdpSocketDriver};
use crate::{Error, ListenAddr};

impl<D: Net + 'static> StackDriver for DirectStack<D> {
    fn name(&self) -> &'static str {
        "direct (smoltcp)"
    }

    fn write_metrics(&self, enc: &mut morgana_runtime::metrics::Encoder<'_>) {
        self.encode_metrics(enc)
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
        let listening = Listening::new(addr, i.config.backlog, i.config.syn_backlog);
        let id = i.listeners.insert(listening);
        let Inner { listeners, sockets, tcp, .. } = &mut *i;
        service_listeners(listeners, sockets, tcp);
        Ok(Box::new(DirectListener { inner: self.inner.clone(), graves: i.graves.clone(), id, addr }))
    }

    fn tcp_connect(&self, remote: SocketAddr) -> Result<Box<dyn TcpStreamDriver>, Error> {
        if remote.port() == 0 || remote.ip().is_unspecified() {
            return Err(Error::InvalidInput("connect needs an address and a non-zero port"));
        }
        let mut i = self.inner.borrow_mut();
        let port = i.ephemeral_port(|i, p| i.tcp_ports.contains(&p))?;
        let mut s = i.tcp.new_socket();
        // No route to IPv6 in a build without it.
        let remote = super::addr::endpoint(remote).ok_or(Error::Unreachable)?;
        s.connect(i.iface.context(), remote, port).map_err(|e| match e {
            tcp::ConnectError::Unaddressable => Error::Unreachable,
            tcp::ConnectError::InvalidState => Error::InvalidInput("socket busy"),
        })?;
        let handle = i.sockets.add(s);
        i.wake_runner();
        Ok(Box::new(DirectTcp::new(self.inner.clone(), handle, i.graves.clone())))
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
        Ok(Box::new(DirectUdp { inner: self.inner.clone(), graves: i.graves.clone(), handle, addr }))
    }
}
