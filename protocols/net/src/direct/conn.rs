//! TCP sockets sized to use, and shed when memory is short.
//!
//! A socket starts with a small receive buffer (the window its SYN-ACK
//! offers) and no transmit buffer. Once established, the receive buffer
//! grows while the peer keeps filling it and the transmit
//! buffer while the app keeps it full, each by doubling up to the
//! configured maximum and only while `morgana_runtime::memory` can spare
//! it; the transmit buffer is freed again once all it held is
//! acknowledged and the app waits to read. When memory is short, the
//! oldest established connection that has not sent a byte yet (a request
//! head or TLS handshake still arriving) is reset to make room.

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;

use morgana_devices::Instant;
use morgana_runtime::memory;
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Duration;

/// The receive buffer a connection starts with (the window its SYN-ACK
/// offers).
pub(super) const ESTABLISHED_RX: usize = 2048;
/// The smallest transmit buffer given to a connection that writes.
const MIN_TX: usize = 2048;
/// What one more connection costs in the stack, roughly: the socket and
/// its receive buffer.
pub(super) const HANDSHAKE_COST: usize = ESTABLISHED_RX + 1024;
/// A half-open connection that makes no progress for this long is dropped.
/// (The SYN queue's; smoltcp's own handshakes end at `DEAD_PEER`.)
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// An idle established connection is probed this often (RFC 1122 §4.2.3.6
/// keep-alives)...
const KEEPALIVE: Duration = Duration::from_secs(30);
/// ...and reset when its peer has sent nothing for this long, so a peer
/// that vanished cannot hold memory.
const DEAD_PEER: Duration = Duration::from_secs(75);

/// Counters of the defences, for tests and diagnostics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TcpDefenceStats {
    /// SYNs answered by the SYN queue.
    pub syn_answered: u64,
    /// Handshakes completed through the SYN queue.
    pub syn_completed: u64,
    /// Half-open connections dropped (expired, or a smoltcp half-open
    /// socket making room).
    pub half_open_evicted: u64,
    /// SYNs answered with a cookie (the SYN queue's bucket was full).
    pub syn_cookies_sent: u64,
    /// Handshakes completed from a cookie.
    pub syn_cookies_completed: u64,
    /// Connections handed to the app.
    pub accepted: u64,
    /// Connections completed while the accept queue was full, reset.
    pub accept_queue_overflow: u64,
    /// Established connections reset because memory was short.
    pub shed: u64,
    /// Buffer growths refused because memory was short.
    pub growth_refused: u64,
}

/// The stack-wide TCP state behind the sockets.
pub(super) struct TcpShared {
    pub(super) isn: tcp::IsnGenerator,
    /// Largest receive and transmit buffer of one connection.
    pub(super) max_buffer: usize,
    /// Established connections that have sent nothing yet, oldest first.
    pub(super) unanswered: VecDeque<SocketHandle>,
    /// Connections whose transmit buffer is freed once it has drained.
    pub(super) draining: Vec<SocketHandle>,
    /// Sockets no one holds any more, freed once closed or at the deadline.
    pub(super) orphans: Vec<(SocketHandle, Instant)>,
    pub(super) stats: TcpDefenceStats,
}

impl TcpShared {
    pub(super) fn new(isn: tcp::IsnGenerator, max_buffer: usize) -> TcpShared {
        TcpShared {
            isn,
            max_buffer,
            unanswered: VecDeque::new(),
            draining: Vec::new(),
            orphans: Vec::new(),
            stats: TcpDefenceStats::default(),
        }
    }

    /// A socket for `listen` or `connect`: small receive buffer, no
    /// transmit buffer, RFC 6528 sequence numbers, the handshake timeout.
    pub(super) fn new_socket(&self) -> tcp::Socket<'static> {
        let mut s = tcp::Socket::new(tcp::SocketBuffer::new(vec![0; ESTABLISHED_RX]), tcp::SocketBuffer::new(vec![]));
        s.set_nagle_enabled(false);
        s.set_isn_generator(Some(self.isn));
        s.set_rx_capacity_hint(self.max_buffer);
        s.set_keep_alive(Some(KEEPALIVE));
        s.set_timeout(Some(DEAD_PEER));
        s
    }

    /// The window scale (RFC 7323) new sockets offer: smoltcp's choice for
    /// the largest receive buffer.
    pub(super) fn window_shift(&self) -> u8 {
        let largest = self.max_buffer.max(ESTABLISHED_RX);
        let log2 = usize::BITS - largest.leading_zeros();
        log2.saturating_sub(16).min(14) as u8
    }

    /// A connection `h` entered the accept queue: it may be shed until it
    /// sends something.
    pub(super) fn accepted(&mut self, h: SocketHandle) {
        self.unanswered.push_back(h);
    }

    /// Grows the receive buffer to at least `want` bytes (doubling, up to
    /// the maximum) if memory can spare it.
    pub(super) fn grow_rx(&mut self, s: &mut tcp::Socket<'static>, want: usize) {
        let cap = s.recv_capacity();
        let new = want.max(cap * 2).min(self.max_buffer);
        if new <= cap {
            return;
        }
        if !memory::can_spare(new) {
            self.stats.growth_refused += 1;
            return;
        }
        let _ = s.replace_rx_buffer(tcp::SocketBuffer::new(vec![0; new]));
    }

    /// Grows the transmit buffer so at least `want` more bytes fit
    /// (doubling, up to the maximum) if memory can spare it. Returns
    /// whether it grew.
    pub(super) fn grow_tx(&mut self, h: SocketHandle, s: &mut tcp::Socket<'static>, want: usize) -> bool {
        let cap = s.send_capacity();
        let new = (s.send_queue() + want).max(cap * 2).max(MIN_TX).min(self.max_buffer);
        if new <= cap {
            return false;
        }
        if !memory::can_spare(new) {
            self.stats.growth_refused += 1;
            return false;
        }
        if cap == 0 {
            self.forget_unanswered(h);
        }
        s.replace_tx_buffer(tcp::SocketBuffer::new(vec![0; new])).is_ok()
    }

    /// Frees the transmit buffer if everything in it was acknowledged;
    /// otherwise tries again as the peer acknowledges.
    pub(super) fn release_tx(&mut self, h: SocketHandle, s: &mut tcp::Socket<'static>) {
        if s.send_capacity() == 0 {
            return;
        }
        if s.send_queue() == 0 {
            let _ = s.replace_tx_buffer(tcp::SocketBuffer::new(vec![]));
        } else if !self.draining.contains(&h) {
            self.draining.push(h);
        }
    }

    /// Frees the transmit buffers that have drained since `release_tx`.
    pub(super) fn poll_draining(&mut self, sockets: &mut SocketSet<'static>) {
        self.draining.retain(|&h| {
            let s = sockets.get_mut::<tcp::Socket>(h);
            if s.send_queue() == 0 {
                let _ = s.replace_tx_buffer(tcp::SocketBuffer::new(vec![]));
                false
            } else {
                !matches!(s.state(), tcp::State::Closed | tcp::State::TimeWait)
            }
        });
    }

    /// The socket `h` is going away: forget it.
    pub(super) fn forget(&mut self, h: SocketHandle) {
        self.forget_unanswered(h);
        self.draining.retain(|&d| d != h);
    }

    fn forget_unanswered(&mut self, h: SocketHandle) {
        if let Some(i) = self.unanswered.iter().position(|&u| u == h) {
            self.unanswered.remove(i);
        }
    }

    /// Resets the oldest connection that has sent nothing yet. Returns
    /// whether there was one.
    pub(super) fn shed_one(&mut self, sockets: &mut SocketSet<'static>) -> bool {
        while let Some(h) = self.unanswered.pop_front() {
            let s = sockets.get_mut::<tcp::Socket>(h);
            if s.is_active() && s.send_capacity() == 0 {
                s.abort();
                self.stats.shed += 1;
                return true;
            }
        }
        false
    }
}
