//! TCP listeners: one socket waiting for a SYN per port, a bounded SYN
//! queue of half-open connections, and the accept queue.
//!
//! Under a SYN flood (spoofed sources that never complete the handshake)
//! the SYN queue fills; each new SYN then evicts the oldest half-open
//! connection, so a real client's handshake, which completes within a
//! round trip, survives unless more than `syn_backlog` SYNs arrive during
//! that round trip. Half-open connections also expire after
//! [`HANDSHAKE_TIMEOUT`](super::conn::HANDSHAKE_TIMEOUT), and the evicted
//! ones are dropped silently (no RST towards a spoofed address). When
//! memory is short the SYN queue gives way first, then the oldest
//! connection that has not sent a byte.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::rc::Rc;
use core::cell::RefCell;
use core::net::IpAddr;
use core::task::{Context, Poll, Waker};

use morgana_devices::Net;
use morgana_runtime::memory;
use slab::Slab;
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::IpListenEndpoint;

use super::conn::{TcpShared, HANDSHAKE_COST};
use super::tcp::DirectTcp;
use super::{Grave, Graves, Inner};
use crate::driver::{Accepted, TcpListenerDriver};
use crate::{Error, ListenAddr};

/// A listening port.
pub(super) struct Listening {
    pub(super) addr: ListenAddr,
    /// Established connections waiting for `accept`, at most.
    pub(super) backlog: usize,
    /// Half-open connections, at most.
    pub(super) syn_backlog: usize,
    /// The socket waiting for the next SYN.
    pub(super) listener: Option<SocketHandle>,
    /// Half-open connections (SYN received, SYN-ACK sent), oldest first.
    pub(super) half_open: VecDeque<SocketHandle>,
    /// Established, not yet accepted.
    pub(super) ready: VecDeque<SocketHandle>,
    pub(super) waker: Option<Waker>,
}

impl Listening {
    pub(super) fn new(addr: ListenAddr, backlog: usize, syn_backlog: usize) -> Listening {
        Listening {
            addr,
            backlog,
            syn_backlog,
            listener: None,
            half_open: VecDeque::new(),
            ready: VecDeque::new(),
            waker: None,
        }
    }

    /// Every socket this listener holds.
    pub(super) fn sockets(&self) -> impl Iterator<Item = SocketHandle> + '_ {
        self.listener.iter().chain(&self.half_open).chain(&self.ready).copied()
    }
}

/// Moves each listener's sockets along: a SYN received joins the SYN queue,
/// a completed handshake the accept queue, a reset or expired one is
/// freed; then makes sure a socket waits for the next SYN, making room for
/// it if needed. Called after every frame taken in.
pub(super) fn service_listeners(
    listeners: &mut Slab<Listening>,
    sockets: &mut SocketSet<'static>,
    tcp: &mut TcpShared,
) {
    for (_, l) in listeners.iter_mut() {
        if let Some(h) = l.listener {
            match sockets.get::<tcp::Socket>(h).state() {
                tcp::State::Listen => {}
                tcp::State::SynReceived => {
                    l.half_open.push_back(h);
                    l.listener = None;
                }
                tcp::State::Closed => {
                    sockets.remove(h);
                    l.listener = None;
                }
                _ => {
                    l.listener = None;
                    admit(l, sockets, tcp, h);
                }
            }
        }
        let mut i = 0;
        while i < l.half_open.len() {
            let h = l.half_open[i];
            match sockets.get::<tcp::Socket>(h).state() {
                tcp::State::SynReceived => i += 1,
                // Reset (smoltcp returns a reset half-open socket to Listen),
                // or timed out.
                tcp::State::Listen | tcp::State::Closed => {
                    l.half_open.remove(i);
                    sockets.remove(h);
                }
                _ => {
                    l.half_open.remove(i);
                    admit(l, sockets, tcp, h);
                }
            }
        }
        if l.listener.is_none() && l.ready.len() < l.backlog {
            while l.half_open.len() >= l.syn_backlog || !memory::can_spare(HANDSHAKE_COST) {
                if let Some(old) = l.half_open.pop_front() {
                    sockets.remove(old);
                    tcp.stats.half_open_evicted += 1;
                } else if !tcp.shed_one(sockets) {
                    break;
                }
            }
            if l.half_open.len() < l.syn_backlog {
                let mut s = tcp.new_socket();
                if s.listen(listen_endpoint(l.addr.ip, l.addr.port)).is_ok() {
                    l.listener = Some(sockets.add(s));
                }
            }
        }
    }
}

/// A handshake completed: into the accept queue, or reset if it is full.
fn admit(l: &mut Listening, sockets: &mut SocketSet<'static>, tcp: &mut TcpShared, h: SocketHandle) {
    let s = sockets.get_mut::<tcp::Socket>(h);
    if l.ready.len() >= l.backlog {
        s.abort();
        tcp.stats.accept_queue_overflow += 1;
        // Freed once the RST is out, like any socket the app dropped.
        tcp.orphans.push((h, morgana_devices::Instant::ZERO));
        return;
    }
    tcp.accepted(h);
    l.ready.push_back(h);
    if let Some(w) = l.waker.take() {
        w.wake();
    }
}

/// The socket waiting for a SYN on `addr`, `port`, if a listener there
/// takes connections now.
pub(super) fn listener_on(listeners: &Slab<Listening>, addr: IpAddr, port: u16) -> Option<SocketHandle> {
    listeners.iter().find(|(_, l)| l.addr.port == port && l.addr.ip.is_none_or(|ip| ip == addr))?.1.listener
}

pub(super) fn listen_endpoint(ip: Option<IpAddr>, port: u16) -> IpListenEndpoint {
    // `check_local` refused an IPv6 address already in a build without IPv6.
    IpListenEndpoint { addr: ip.and_then(super::addr::to_smol), port }
}

pub(super) struct DirectListener<D: Net + 'static> {
    pub(super) inner: Rc<RefCell<Inner<D>>>,
    pub(super) graves: Rc<Graves>,
    pub(super) id: usize,
    pub(super) addr: ListenAddr,
}

impl<D: Net + 'static> TcpListenerDriver for DirectListener<D> {
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<Result<Accepted, Error>> {
        let mut i = self.inner.borrow_mut();
        let Inner { listeners, sockets, tcp, .. } = &mut *i;
        let l = &mut listeners[self.id];
        while let Some(h) = l.ready.pop_front() {
            let Some(peer) = sockets.get::<tcp::Socket>(h).remote_endpoint() else {
                // Reset before it was accepted.
                tcp.forget(h);
                sockets.remove(h);
                continue;
            };
            // Room in the accept queue again: listen once more if needed.
            service_listeners(listeners, sockets, tcp);
            i.wake_runner();
            i.tcp.stats.accepted += 1;
            let stream = DirectTcp::new(self.inner.clone(), h, i.graves.clone());
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
        match self.inner.try_borrow_mut() {
            Ok(mut i) => i.bury(Grave::Listener(self.id)),
            // The stack is busy: it frees the listener at its next poll.
            Err(_) => self.graves.push(Grave::Listener(self.id)),
        }
    }
}
