//! TCP listeners: a listening socket per port, the handshake and accept
//! queues.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::net::IpAddr;
use core::task::{Context, Poll, Waker};

use morgana_devices::{Instant, Net};
use slab::Slab;
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::IpListenEndpoint;

use super::tcp::{new_tcp_socket, DirectTcp};
use super::Inner;
use crate::driver::{Accepted, TcpListenerDriver};
use crate::{Error, ListenAddr};

/// A listening port: sockets in the handshake and established connections
/// waiting for `accept`.
pub(super) struct Listening {
    pub(super) addr: ListenAddr,
    pub(super) backlog: usize,
    /// Sockets in Listen or SynReceived state.
    pub(super) pending: Vec<SocketHandle>,
    /// Established, not yet accepted.
    pub(super) ready: VecDeque<SocketHandle>,
    pub(super) waker: Option<Waker>,
}

/// Moves established connections to their listener's ready queue and keeps
/// one socket listening on every port while the backlog has room.
pub(super) fn service_listeners(listeners: &mut Slab<Listening>, sockets: &mut SocketSet<'static>, buffer: usize) {
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

pub(super) fn listen_endpoint(ip: Option<IpAddr>, port: u16) -> IpListenEndpoint {
    IpListenEndpoint { addr: ip.map(Into::into), port }
}

pub(super) struct DirectListener<D: Net + 'static> {
    pub(super) inner: Rc<RefCell<Inner<D>>>,
    pub(super) id: usize,
    pub(super) addr: ListenAddr,
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
