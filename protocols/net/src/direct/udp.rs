//! UDP sockets.

use alloc::rc::Rc;
use core::cell::RefCell;
use core::net::SocketAddr;
use core::task::{Context, Poll};

use morgana_devices::Net;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp;

use super::{Grave, Graves, Inner};
use crate::driver::UdpSocketDriver;
use crate::{Error, ListenAddr};

pub(super) struct DirectUdp<D: Net + 'static> {
    pub(super) inner: Rc<RefCell<Inner<D>>>,
    pub(super) graves: Rc<Graves>,
    pub(super) handle: SocketHandle,
    pub(super) addr: ListenAddr,
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
        // No route to IPv6 in a build without it.
        let Some(to) = super::addr::endpoint(to) else { return Poll::Ready(Err(Error::Unreachable)) };
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
        let grave = Grave::Udp { handle: self.handle, port: self.addr.port };
        match self.inner.try_borrow_mut() {
            Ok(mut i) => i.bury(grave),
            // The stack is busy: it frees the socket at its next poll.
            Err(_) => self.graves.push(grave),
        }
    }
}
