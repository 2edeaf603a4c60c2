//! The rings with their buffers as a `Net` device.

use super::*;

/// How the front end and its backend signal each other.
pub trait EventChannel {
    /// Signals the backend.
    fn notify(&self);
    /// Wakes `waker` at the next event from the backend (replacing an
    /// earlier registration).
    fn register(&self, waker: &Waker);
}

const MTU: usize = MAX_FRAME - 14;

struct TxSide<E> {
    ring: TxRing,
    bufs: Vec<(SharedPage, GrantRef)>,
    port: E,
}

/// The rings and buffers of one Xen virtual network interface.
pub struct NetIf<E> {
    tx: TxSide<E>,
    rx: RxRing,
    rx_bufs: Vec<(SharedPage, GrantRef)>,
    mac: [u8; 6],
    counters: NetCounters,
    broken: bool,
}

impl<E: EventChannel> NetIf<E> {
    /// Sets up the rings on `tx_ring` and `rx_ring` (pages shared with the
    /// backend) with the transmit and receive buffers given (each a page and
    /// its grant), and queues every receive buffer. The requests become
    /// visible to the backend at [`NetIf::kick`].
    pub fn new(
        port: E,
        mac: [u8; 6],
        tx_ring: SharedPage,
        rx_ring: SharedPage,
        tx_bufs: Vec<(SharedPage, GrantRef)>,
        rx_bufs: Vec<(SharedPage, GrantRef)>,
    ) -> NetIf<E> {
        let tx = TxRing::new(tx_ring, tx_bufs.len() as u16);
        let rx = RxRing::new(rx_ring, rx_bufs.len() as u16);
        let mut nf = NetIf {
            tx: TxSide { ring: tx, bufs: tx_bufs, port },
            rx,
            rx_bufs,
            mac,
            counters: NetCounters::default(),
            broken: false,
        };
        nf.repost();
        nf
    }

    /// Publishes queued receive buffers, notifying the backend if it asks.
    pub fn kick(&mut self) {
        if self.rx.publish() {
            self.tx.port.notify();
        }
    }

    fn fail(&mut self, what: &dyn core::fmt::Display) {
        if !self.broken {
            log::error!("netfront: {what}; the interface stops");
            self.broken = true;
        }
    }

    /// Posts finished receive buffers back to the backend.
    fn repost(&mut self) {
        let bufs = &self.rx_bufs;
        if self.rx.repost(|id| bufs[id as usize].1) {
            self.tx.port.notify();
        }
    }

    /// Reclaims sent buffers; whether a transmit slot is free. If none is,
    /// `cx` is woken when the backend answers a transmit request (or at
    /// once if one was answered meanwhile).
    fn tx_slot(&mut self, cx: &mut Context<'_>) -> bool {
        if let Err(e) = self.tx.ring.reclaim(&self.counters) {
            self.fail(&e);
            return false;
        }
        if self.tx.ring.ready() {
            return true;
        }
        self.tx.port.register(cx.waker());
        // Asks for an event at the next response, then looks again: a
        // response that came before the request would raise none.
        match self.tx.ring.final_check() {
            Ok(true) => cx.waker().wake_by_ref(),
            Ok(false) => {}
            Err(e) => self.fail(&e),
        }
        false
    }
}

/// A received frame, in a receive page.
pub struct Rx<'a> {
    page: SharedPage,
    offset: usize,
    len: usize,
    id: u16,
    ring: &'a mut RxRing,
}

/// A transmit slot.
pub struct Tx<'a, E> {
    tx: &'a mut TxSide<E>,
    counters: &'a NetCounters,
}

impl RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, f: F) -> R {
        // SAFETY: the page is one of our receive pages (leaked, never
        // freed); `RxRing::next` checked offset + len <= 4096; the backend
        // is done with it (it answered) and does not get it back until its
        // id is released and reposted after this borrow ends.
        let frame = unsafe { core::slice::from_raw_parts_mut(self.page.ptr().add(self.offset), self.len) };
        f(frame)
    }
}

impl Drop for Rx<'_> {
    fn drop(&mut self) {
        self.ring.release(self.id);
    }
}

impl<E: EventChannel> TxToken for Tx<'_, E> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let Some(id) = (len <= MAX_FRAME).then(|| self.tx.ring.take()).flatten() else {
            self.counters.tx_dropped();
            let mut scratch = alloc::vec![0u8; len];
            return f(&mut scratch);
        };
        let (page, gref) = self.tx.bufs[id as usize];
        // SAFETY: the page is a transmit page not in flight (its id was
        // free until now), so the backend is not reading it; len <= 1514.
        let buf = unsafe { core::slice::from_raw_parts_mut(page.ptr(), len) };
        let r = f(buf);
        match self.tx.ring.send(id, gref, len) {
            Some(notify) => {
                self.counters.sent(len);
                if notify {
                    self.tx.port.notify();
                }
            }
            None => self.counters.tx_dropped(),
        }
        r
    }
}

impl<E: EventChannel> Net for NetIf<E> {
    type RxToken<'a>
        = Rx<'a>
    where
        E: 'a;
    type TxToken<'a>
        = Tx<'a, E>
    where
        E: 'a;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(Rx<'_>, Tx<'_, E>)> {
        if self.broken {
            return None;
        }
        self.repost();
        // A frame is taken only with a slot to answer it in; without one,
        // the frame waits in the ring and `cx` is woken when a slot frees.
        if !self.tx_slot(cx) {
            return None;
        }
        let frame = match self.rx.next(&self.counters) {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                self.tx.port.register(cx.waker());
                match self.rx.final_check() {
                    Ok(true) => cx.waker().wake_by_ref(),
                    Ok(false) => {}
                    Err(e) => self.fail(&e),
                }
                return None;
            }
            Err(e) => {
                self.fail(&e);
                return None;
            }
        };
        let page = self.rx_bufs[frame.id as usize].0;
        let rx = Rx { page, offset: frame.offset, len: frame.len, id: frame.id, ring: &mut self.rx };
        let tx = Tx { tx: &mut self.tx, counters: &self.counters };
        Some((rx, tx))
    }

    fn transmit(&mut self, cx: &mut Context<'_>) -> Option<Tx<'_, E>> {
        if self.broken || !self.tx_slot(cx) {
            return None;
        }
        Some(Tx { tx: &mut self.tx, counters: &self.counters })
    }

    fn link_state(&mut self, _cx: &mut Context<'_>) -> LinkState {
        if self.broken {
            LinkState::Down
        } else {
            LinkState::Up
        }
    }

    fn mac_address(&self) -> [u8; 6] {
        self.mac
    }

    fn mtu(&self) -> usize {
        MTU
    }

    fn stats(&self) -> NetStats {
        self.counters.stats()
    }
}

#[cfg(test)]
mod tests;
