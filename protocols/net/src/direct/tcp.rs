//! TCP connections: the app's stream driver, buffers grown as it moves
//! data, and orphaned sockets the app has dropped.

use alloc::rc::Rc;
use core::cell::RefCell;
use core::net::SocketAddr;
use core::task::{Context, Poll};
use core::time::Duration;

use morgana_devices::{Instant, Net};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;

use super::{Grave, Graves, Inner};
use crate::driver::TcpStreamDriver;
use crate::Error;

/// How long a connection the app has dropped may take to finish closing
/// before it is reset.
pub(super) const ORPHAN_LINGER: Duration = Duration::from_secs(30);

pub(super) struct DirectTcp<D: Net + 'static> {
    inner: Rc<RefCell<Inner<D>>>,
    graves: Rc<Graves>,
    handle: SocketHandle,
    aborted: bool,
}

impl<D: Net + 'static> DirectTcp<D> {
    pub(super) fn new(inner: Rc<RefCell<Inner<D>>>, handle: SocketHandle, graves: Rc<Graves>) -> Self {
        DirectTcp { inner, graves, handle, aborted: false }
    }
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
        let Inner { sockets, tcp, .. } = &mut *i;
        let s = sockets.get_mut::<tcp::Socket>(self.handle);
        // A full buffer means the peer sends faster than it is read: give
        // it a larger window before reading makes room.
        let full = s.recv_queue() == s.recv_capacity();
        match s.recv_slice(buf) {
            Ok(0) => {
                // Waiting for the peer: what was sent need not stay buffered.
                tcp.release_tx(self.handle, s);
                s.register_recv_waker(cx.waker());
                Poll::Pending
            }
            Ok(n) => {
                if full {
                    tcp.grow_rx(s, 0);
                }
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
        let Inner { sockets, tcp, .. } = &mut *i;
        let s = sockets.get_mut::<tcp::Socket>(self.handle);
        if !buf.is_empty() && s.send_capacity() - s.send_queue() == 0 && s.may_send() {
            tcp.grow_tx(self.handle, s, buf.len());
        }
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
        let grave = Grave::Tcp { handle: self.handle, aborted: self.aborted };
        match self.inner.try_borrow_mut() {
            Ok(mut i) => i.bury(grave),
            // The stack is busy: it takes the socket at its next poll.
            Err(_) => self.graves.push(grave),
        }
    }
}

impl<D: Net> Inner<D> {
    /// The app dropped its connection `handle`: close it (unless it was
    /// aborted) and free it once closed, or after [`ORPHAN_LINGER`].
    pub(super) fn orphan(&mut self, handle: SocketHandle, aborted: bool) {
        let s = self.sockets.get_mut::<tcp::Socket>(handle);
        if !aborted {
            s.close();
        }
        self.tcp.forget(handle);
        let deadline = if aborted { Instant::ZERO } else { self.rt.now() + ORPHAN_LINGER };
        self.tcp.orphans.push((handle, deadline));
        self.wake_runner();
    }

    /// Frees sockets the app has dropped once they have closed; resets those
    /// that linger too long. Returns the earliest linger deadline.
    pub(super) fn reap_orphans(&mut self, now: Instant) -> Option<Instant> {
        let sockets = &mut self.sockets;
        // Short of memory, nothing lingers.
        let short = !morgana_runtime::memory::can_spare(0);
        self.tcp.orphans.retain(|&(h, deadline)| {
            let s = sockets.get_mut::<tcp::Socket>(h);
            // Discard what the peer still sends, so its window stays open.
            while let Ok(n) = s.recv(|b| (b.len(), b.len())) {
                if n == 0 {
                    break;
                }
            }
            let done = matches!(s.state(), tcp::State::Closed | tcp::State::TimeWait);
            if done || now >= deadline || short {
                if !done {
                    s.abort();
                }
                sockets.remove(h);
                false
            } else {
                true
            }
        });
        self.tcp.orphans.iter().map(|o| o.1).min()
    }
}
