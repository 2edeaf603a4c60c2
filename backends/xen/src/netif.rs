//! netfront's data path (`xen/include/public/io/netif.h`) in copy mode: the
//! two shared rings, their buffers and request ids, as a [`Net`] device over
//! any [`EventChannel`]. The backend copies received frames into pages we
//! granted and reads transmitted frames from pages we granted.
//!
//! Setting up the rings with the backend (grants, xenstore) is netfront's
//! part and runs only in a VM; this part is tested on the host against a
//! simulated backend.

use alloc::vec::Vec;
use core::task::{Context, Waker};

use morgana_devices::{LinkState, Net, NetCounters, NetStats, RxToken, TxToken};

use crate::grant::GrantRef;
use crate::page::SharedPage;
use crate::ring::{FrontRing, RingError, Slots};

/// A transmit request.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TxReq {
    /// Grant of the page holding the frame.
    pub gref: u32,
    /// Where the frame starts in the page.
    pub offset: u16,
    /// `NETTXF_*` flags (none used).
    pub flags: u16,
    /// Request id, echoed in the response.
    pub id: u16,
    /// Frame length.
    pub size: u16,
}

/// A transmit response.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TxRsp {
    /// The request's id.
    pub id: u16,
    /// `NETIF_RSP_*`: negative on error.
    pub status: i16,
}

/// A receive request: a page for the backend to copy a frame into.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RxReq {
    /// Request id, echoed in the response.
    pub id: u16,
    /// Padding.
    pub pad: u16,
    /// Grant of the page.
    pub gref: u32,
}

/// A receive response.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RxRsp {
    /// The request's id.
    pub id: u16,
    /// Where the frame starts in the page.
    pub offset: u16,
    /// `NETRXF_*` flags.
    pub flags: u16,
    /// Frame length, or negative on error.
    pub status: i16,
}

const NETRXF_MORE_DATA: u16 = 1 << 2;
const NETRXF_EXTRA_INFO: u16 = 1 << 3;
const MTU: usize = 1500;

/// How the front end and its backend signal each other.
pub trait EventChannel {
    /// Signals the backend.
    fn notify(&self);
    /// Wakes `waker` at the next event from the backend (replacing an
    /// earlier registration).
    fn register(&self, waker: &Waker);
}

struct TxSide<E> {
    ring: FrontRing<TxReq, TxRsp>,
    bufs: Vec<(SharedPage, GrantRef)>,
    ids: Slots,
    port: E,
}

/// The rings and buffers of one Xen virtual network interface.
pub struct NetIf<E> {
    tx: TxSide<E>,
    rx: FrontRing<RxReq, RxRsp>,
    rx_bufs: Vec<(SharedPage, GrantRef)>,
    rx_ids: Slots,
    /// Inside a multi-slot frame being dropped.
    rx_skipping: bool,
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
        let tx_ids = Slots::new(tx_bufs.len() as u16);
        let rx_ids = Slots::new(rx_bufs.len() as u16);
        let mut nf = NetIf {
            tx: TxSide { ring: FrontRing::new(tx_ring), bufs: tx_bufs, ids: tx_ids, port },
            rx: FrontRing::new(rx_ring),
            rx_bufs,
            rx_ids,
            rx_skipping: false,
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
        let mut pushed = false;
        while let Some(id) = self.rx_ids.take() {
            let req = RxReq { id, pad: 0, gref: self.rx_bufs[id as usize].1 };
            if !self.rx.push_request(req) {
                self.rx_ids.untake(id);
                break;
            }
            pushed = true;
        }
        if pushed && self.rx.publish() {
            self.tx.port.notify();
        }
    }

    /// Reclaims sent buffers; whether a transmit slot is free. If none is,
    /// `cx` is woken when the backend answers a transmit request (or at
    /// once if one was answered meanwhile).
    fn tx_slot(&mut self, cx: &mut Context<'_>) -> bool {
        if let Err(e) = self.tx.reclaim(&self.counters) {
            self.fail(&e);
            return false;
        }
        if self.tx.ids.free_count() > 0 && self.tx.ring.free_requests() > 0 {
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

impl<E: EventChannel> TxSide<E> {
    /// Frees buffers whose frames the backend has sent.
    fn reclaim(&mut self, counters: &NetCounters) -> Result<(), RingError> {
        let n = self.ring.responses()?;
        for _ in 0..n {
            let rsp = self.ring.take_response();
            let id = self.ids.answer(rsp.id as u64)?;
            self.ids.release(id);
            if rsp.status < 0 {
                counters.tx_dropped();
            }
        }
        Ok(())
    }
}

/// A received frame, in a receive page.
pub struct Rx<'a> {
    page: SharedPage,
    offset: usize,
    len: usize,
    id: u16,
    ids: &'a mut Slots,
}

/// A transmit slot.
pub struct Tx<'a, E> {
    tx: &'a mut TxSide<E>,
    counters: &'a NetCounters,
}

impl RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, f: F) -> R {
        // SAFETY: the page is one of our receive pages (leaked, never
        // freed); offset + len <= 4096 was checked; the backend is done with
        // it (it answered) and does not get it back until its id is released
        // and reposted after this borrow ends.
        let frame = unsafe { core::slice::from_raw_parts_mut(self.page.ptr().add(self.offset), self.len) };
        f(frame)
    }
}

impl Drop for Rx<'_> {
    fn drop(&mut self) {
        self.ids.release(self.id);
    }
}

impl<E: EventChannel> TxToken for Tx<'_, E> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let Some(id) = (len <= MTU + 14).then(|| self.tx.ids.take()).flatten() else {
            self.counters.tx_dropped();
            let mut scratch = alloc::vec![0u8; len];
            return f(&mut scratch);
        };
        let (page, gref) = self.tx.bufs[id as usize];
        // SAFETY: the page is a transmit page not in flight (its id was
        // free until now), so the backend is not reading it; len <= 1514.
        let buf = unsafe { core::slice::from_raw_parts_mut(page.ptr(), len) };
        let r = f(buf);
        let req = TxReq { gref, offset: 0, flags: 0, id, size: len as u16 };
        if self.tx.ring.push_request(req) {
            self.counters.sent(len);
            if self.tx.ring.publish() {
                self.tx.port.notify();
            }
        } else {
            self.tx.ids.untake(id);
            self.counters.tx_dropped();
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
        loop {
            let ready = match self.rx.responses() {
                Ok(n) => n,
                Err(e) => {
                    self.fail(&e);
                    return None;
                }
            };
            if ready == 0 {
                self.tx.port.register(cx.waker());
                match self.rx.final_check() {
                    Ok(true) => cx.waker().wake_by_ref(),
                    Ok(false) => {}
                    Err(e) => self.fail(&e),
                }
                return None;
            }
            let rsp = self.rx.take_response();
            let id = match self.rx_ids.answer(rsp.id as u64) {
                Ok(id) => id as usize,
                Err(e) => {
                    self.fail(&e);
                    return None;
                }
            };
            if rsp.flags & NETRXF_EXTRA_INFO != 0 {
                // Extra-info slots follow only for features never negotiated
                // (GSO); they carry no id, so the ring cannot be kept in step.
                self.fail(&"backend sent extra-info slots that were not negotiated");
                return None;
            }
            // A frame spread over several slots (scatter-gather, not
            // negotiated) is dropped whole: this slot and its followers.
            let continued = core::mem::replace(&mut self.rx_skipping, rsp.flags & NETRXF_MORE_DATA != 0);
            let (offset, len) = (rsp.offset as usize, rsp.status as isize);
            if continued || self.rx_skipping || len <= 0 || offset + len as usize > 4096 || len as usize > MTU + 14 {
                if !continued {
                    self.counters.rx_dropped();
                }
                self.rx_ids.release(rsp.id);
                continue;
            }
            self.counters.received(len as usize);
            let rx = Rx { page: self.rx_bufs[id].0, offset, len: len as usize, id: rsp.id, ids: &mut self.rx_ids };
            let tx = Tx { tx: &mut self.tx, counters: &self.counters };
            return Some((rx, tx));
        }
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
mod tests {
    use super::*;
    use crate::ring::BackRing;
    use alloc::boxed::Box;
    use alloc::collections::VecDeque;
    use alloc::rc::Rc;
    use alloc::sync::Arc;
    use alloc::task::Wake;
    use core::cell::{Cell, RefCell};
    use core::sync::atomic::{AtomicUsize, Ordering};

    /// The event channel as the front end sees it. `on_register` runs once,
    /// at the next registration: the backend acting just then.
    #[derive(Default)]
    struct Chan {
        notified: Cell<usize>,
        waker: RefCell<Option<Waker>>,
        on_register: RefCell<Option<Box<dyn FnOnce()>>>,
    }

    #[derive(Clone, Default)]
    struct Port(Rc<Chan>);

    impl EventChannel for Port {
        fn notify(&self) {
            self.0.notified.set(self.0.notified.get() + 1);
        }
        fn register(&self, waker: &Waker) {
            *self.0.waker.borrow_mut() = Some(waker.clone());
            let hook = self.0.on_register.borrow_mut().take();
            if let Some(hook) = hook {
                hook();
            }
        }
    }

    impl Port {
        /// An event from the backend: wakes whoever registered.
        fn fire(&self) {
            let waker = self.0.waker.borrow_mut().take();
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting_waker() -> (Waker, Arc<Count>) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (Waker::from(count.clone()), count)
    }

    fn wakes(count: &Count) -> usize {
        count.0.load(Ordering::SeqCst)
    }

    /// A simulated netback.
    struct Backend {
        tx: BackRing<TxReq, TxRsp>,
        rx: BackRing<RxReq, RxRsp>,
        pages: Vec<(GrantRef, SharedPage)>,
        rx_posted: VecDeque<RxReq>,
    }

    impl Backend {
        fn page(&mut self, gref: GrantRef) -> &mut [u8] {
            let page = self.pages.iter().find(|(g, _)| *g == gref).expect("a granted page").1;
            // SAFETY: test pages are leaked, page-sized allocations; the
            // front end does not touch a page while the backend owns it.
            unsafe { core::slice::from_raw_parts_mut(page.ptr(), crate::page::PAGE) }
        }

        /// Copies `frame` into the next posted receive buffer; whether the
        /// front end asked to be notified.
        fn deliver(&mut self, frame: &[u8]) -> bool {
            while let Some(r) = self.rx.take_request() {
                self.rx_posted.push_back(r);
            }
            let req = self.rx_posted.pop_front().expect("a posted receive buffer");
            self.page(req.gref)[..frame.len()].copy_from_slice(frame);
            self.rx.respond_notify(RxRsp { id: req.id, offset: 0, flags: 0, status: frame.len() as i16 })
        }

        /// The next frame the front end queued.
        fn sent(&mut self) -> Option<(TxReq, Vec<u8>)> {
            let req = self.tx.take_request()?;
            let data = self.page(req.gref)[req.offset as usize..][..req.size as usize].to_vec();
            Some((req, data))
        }
    }

    fn setup(n_tx: u32, n_rx: u32) -> (NetIf<Port>, Port, Rc<RefCell<Backend>>) {
        let port = Port::default();
        let (tx_ring, rx_ring) = (SharedPage::new(), SharedPage::new());
        let bufs = |n: u32, first: GrantRef| (0..n).map(|i| (SharedPage::new(), first + i)).collect::<Vec<_>>();
        let (tx_bufs, rx_bufs) = (bufs(n_tx, 1000), bufs(n_rx, 2000));
        let pages = tx_bufs.iter().chain(&rx_bufs).map(|&(p, g)| (g, p)).collect();
        let nf = NetIf::new(port.clone(), [2, 0, 0, 0, 0, 1], tx_ring, rx_ring, tx_bufs, rx_bufs);
        let backend =
            Backend { tx: BackRing::attach(tx_ring), rx: BackRing::attach(rx_ring), pages, rx_posted: VecDeque::new() };
        (nf, port, Rc::new(RefCell::new(backend)))
    }

    fn frame(byte: u8) -> Vec<u8> {
        alloc::vec![byte; 60]
    }

    /// Fills every transmit slot with frames the backend has not sent yet.
    fn fill_tx(nf: &mut NetIf<Port>, be: &RefCell<Backend>, cx: &mut Context<'_>, n: usize) -> Vec<TxReq> {
        for i in 0..n {
            nf.transmit(cx).expect("a free slot").consume(60, |b| b.fill(i as u8));
        }
        assert!(nf.transmit(cx).is_none(), "all {n} slots in flight");
        (0..n).map(|_| be.borrow_mut().sent().expect("queued").0).collect()
    }

    #[test]
    fn receive_waits_for_a_transmit_slot() {
        let (mut nf, port, be) = setup(2, 4);
        let (waker, count) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let in_flight = fill_tx(&mut nf, &be, &mut cx, 2);
        be.borrow_mut().deliver(&frame(0xaa));
        assert!(nf.receive(&mut cx).is_none(), "no transmit slot: the frame must wait");
        assert_eq!(nf.stats().rx_frames, 0);
        let woken = wakes(&count);
        // The backend sends one frame; the front end asked to hear of it.
        assert!(be.borrow_mut().tx.respond_notify(TxRsp { id: in_flight[0].id, status: 0 }));
        port.fire();
        assert_eq!(wakes(&count), woken + 1, "woken when a slot frees");
        let (rx, tx) = nf.receive(&mut cx).expect("the frame, with a slot to answer it");
        assert_eq!(rx.consume(|f| f.to_vec()), frame(0xaa));
        tx.consume(42, |b| b.fill(0x55));
        let (_, reply) = be.borrow_mut().sent().expect("the reply went out");
        assert_eq!(reply, alloc::vec![0x55; 42]);
        let stats = nf.stats();
        assert_eq!((stats.rx_frames, stats.tx_frames, stats.tx_dropped), (1, 3, 0));
    }

    #[test]
    fn a_completion_during_registration_is_not_lost() {
        let (mut nf, port, be) = setup(1, 4);
        let (waker, count) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let in_flight = fill_tx(&mut nf, &be, &mut cx, 1);
        be.borrow_mut().deliver(&frame(0xbb));
        // The backend answers after the front end looked but before it asked
        // for an event, so no event comes.
        let b = be.clone();
        let id = in_flight[0].id;
        *port.0.on_register.borrow_mut() = Some(Box::new(move || b.borrow_mut().tx.respond(TxRsp { id, status: 0 })));
        let woken = wakes(&count);
        if nf.receive(&mut cx).is_none() {
            assert_eq!(wakes(&count), woken + 1, "woken at once: a slot is free");
        }
        let (rx, _tx) = nf.receive(&mut cx).expect("the frame, with a slot");
        assert_eq!(rx.consume(|f| f.to_vec()), frame(0xbb));
    }

    #[test]
    fn an_arriving_frame_wakes_the_receiver() {
        let (mut nf, port, be) = setup(2, 4);
        let (waker, count) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(nf.receive(&mut cx).is_none());
        assert!(be.borrow_mut().deliver(&frame(0xcc)), "the front end asked to hear of the next frame");
        port.fire();
        assert_eq!(wakes(&count), 1);
        let (rx, _tx) = nf.receive(&mut cx).expect("the frame");
        assert_eq!(rx.consume(|f| f.to_vec()), frame(0xcc));
        // Its buffer is posted again at the next call.
        assert!(nf.receive(&mut cx).is_none());
        let mut backend = be.borrow_mut();
        while let Some(r) = backend.rx.take_request() {
            backend.rx_posted.push_back(r);
        }
        assert_eq!(backend.rx_posted.len(), 4);
    }
}
