//! The netif rings (`xen/include/public/io/netif.h`) as netfront uses them,
//! in copy mode: the layouts, what the front end accepts from the backend
//! ([`RxRing`], [`TxRing`]), and the rings with their buffers as a [`Net`]
//! device over any [`EventChannel`] ([`NetIf`]). The backend copies
//! received frames into pages we granted and reads transmitted frames from
//! pages we granted.
//!
//! Setting up the rings with the backend (grants, xenstore) is netfront's
//! part and runs only in a VM; this part is plain memory logic, tested on
//! the host against a simulated backend and fuzzed.

use alloc::vec::Vec;
use core::task::{Context, Waker};

use morgana_devices::{LinkState, Net, NetCounters, NetStats, RxToken, TxToken};

use crate::grant::GrantRef;
use crate::page::{SharedPage, PAGE};
use crate::ring::{FrontRing, RingError, Slots};

/// A transmit request: `size` bytes at `offset` in the granted page.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct TxReq {
    pub gref: u32,
    pub offset: u16,
    pub flags: u16,
    pub id: u16,
    pub size: u16,
}

/// A transmit response; a negative status is an error.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct TxRsp {
    pub id: u16,
    pub status: i16,
}

/// A receive buffer posted to the backend.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct RxReq {
    pub id: u16,
    pub pad: u16,
    pub gref: u32,
}

/// A received frame: a positive status is its length at `offset`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct RxRsp {
    pub id: u16,
    pub offset: u16,
    pub flags: u16,
    pub status: i16,
}

/// `NETRXF_more_data`: the frame continues in the next slot.
pub const NETRXF_MORE_DATA: u16 = 1 << 2;
/// `NETRXF_extra_info`: an extra-info slot follows.
pub const NETRXF_EXTRA_INFO: u16 = 1 << 3;
/// The largest frame accepted (a 1500-byte MTU).
pub const MAX_FRAME: usize = 1500 + 14;

/// A backend broke the netif protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetifError {
    /// Ring indices or a response id.
    Ring(RingError),
    /// Extra-info slots, which follow only for features never negotiated
    /// (GSO); they carry no id, so the ring cannot be kept in step.
    ExtraInfo,
}

impl From<RingError> for NetifError {
    fn from(e: RingError) -> Self {
        NetifError::Ring(e)
    }
}

impl core::fmt::Display for NetifError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NetifError::Ring(e) => e.fmt(f),
            NetifError::ExtraInfo => f.write_str("backend sent extra-info slots that were not negotiated"),
        }
    }
}

/// A received frame: `len` bytes at `offset` in the page of buffer `id`.
/// The id stays held until [`RxRing::release`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxFrame {
    /// Buffer id.
    pub id: u16,
    /// Start in the page.
    pub offset: usize,
    /// Length, 1..=[`MAX_FRAME`]; `offset + len` is within the page.
    pub len: usize,
}

/// The receive ring: buffers posted by id, responses checked.
pub struct RxRing {
    ring: FrontRing<RxReq, RxRsp>,
    ids: Slots,
    /// Inside a multi-slot frame being dropped.
    skipping: bool,
}

impl RxRing {
    /// A ring in `page` for `buffers` receive buffers (ids `0..buffers`).
    pub fn new(page: SharedPage, buffers: u16) -> RxRing {
        RxRing { ring: FrontRing::new(page), ids: Slots::new(buffers), skipping: false }
    }

    /// The ring's page.
    pub fn page(&self) -> SharedPage {
        self.ring.page()
    }

    /// Posts every free buffer; `gref(id)` is the grant of its page.
    /// Returns whether the backend wants a notification.
    pub fn repost(&mut self, gref: impl Fn(u16) -> GrantRef) -> bool {
        let mut pushed = false;
        while let Some(id) = self.ids.take() {
            if !self.ring.push_request(RxReq { id, pad: 0, gref: gref(id) }) {
                self.ids.untake(id);
                break;
            }
            pushed = true;
        }
        pushed && self.ring.publish()
    }

    /// Publishes posted buffers; whether to notify.
    pub fn publish(&mut self) -> bool {
        self.ring.publish()
    }

    /// The next frame, `None` when no response is waiting. Frames that
    /// cannot be used (empty, too long, outside the page, spread over
    /// several slots) are dropped, counted, and their buffers freed.
    pub fn next(&mut self, counters: &NetCounters) -> Result<Option<RxFrame>, NetifError> {
        while self.ring.responses()? > 0 {
            let rsp = self.ring.take_response();
            let id = self.ids.answer(rsp.id as u64)?;
            if rsp.flags & NETRXF_EXTRA_INFO != 0 {
                return Err(NetifError::ExtraInfo);
            }
            // A frame spread over several slots (scatter-gather, not
            // negotiated) is dropped whole: this slot and its followers.
            let continued = core::mem::replace(&mut self.skipping, rsp.flags & NETRXF_MORE_DATA != 0);
            let (offset, len) = (rsp.offset as usize, rsp.status as isize);
            if continued || self.skipping || len <= 0 || len as usize > MAX_FRAME || offset + len as usize > PAGE {
                if !continued {
                    counters.rx_dropped();
                }
                self.ids.release(id);
                continue;
            }
            counters.received(len as usize);
            return Ok(Some(RxFrame { id, offset, len: len as usize }));
        }
        Ok(None)
    }

    /// Frees a frame's buffer, to be posted again.
    pub fn release(&mut self, id: u16) {
        self.ids.release(id);
    }

    /// Asks to be notified of the next response, then looks again: whether
    /// responses are ready.
    pub fn final_check(&self) -> Result<bool, RingError> {
        self.ring.final_check()
    }
}

/// The transmit ring: buffers sent by id, responses checked.
pub struct TxRing {
    ring: FrontRing<TxReq, TxRsp>,
    ids: Slots,
}

impl TxRing {
    /// A ring in `page` for `buffers` transmit buffers.
    pub fn new(page: SharedPage, buffers: u16) -> TxRing {
        TxRing { ring: FrontRing::new(page), ids: Slots::new(buffers) }
    }

    /// The ring's page.
    pub fn page(&self) -> SharedPage {
        self.ring.page()
    }

    /// Frees the buffers of frames the backend has sent.
    pub fn reclaim(&mut self, counters: &NetCounters) -> Result<(), RingError> {
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

    /// Whether a frame can be sent now.
    pub fn ready(&self) -> bool {
        self.ids.free_count() > 0 && self.ring.free_requests() > 0
    }

    /// A free buffer id for the next frame.
    pub fn take(&mut self) -> Option<u16> {
        self.ids.take()
    }

    /// Sends `len` bytes from buffer `id` (granted as `gref`):
    /// `Some(notify)`, or `None` when the ring is full (the id is free
    /// again).
    pub fn send(&mut self, id: u16, gref: GrantRef, len: usize) -> Option<bool> {
        let req = TxReq { gref, offset: 0, flags: 0, id, size: len as u16 };
        if self.ring.push_request(req) {
            Some(self.ring.publish())
        } else {
            self.ids.untake(id);
            None
        }
    }

    /// Asks to be notified of the next response, then looks again.
    pub fn final_check(&self) -> Result<bool, RingError> {
        self.ring.final_check()
    }
}

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
mod tests {
    use super::*;
    use crate::sim::BackRing;
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

    fn rx() -> (RxRing, BackRing<RxReq, RxRsp>, NetCounters) {
        let page = SharedPage::new();
        let mut ring = RxRing::new(page, 4);
        let back = BackRing::attach(page);
        ring.repost(|id| 100 + id as u32);
        (ring, back, NetCounters::default())
    }

    #[test]
    fn frames_are_checked_against_the_page_and_the_mtu() {
        let (mut ring, mut back, c) = rx();
        let reqs: alloc::vec::Vec<RxReq> = core::iter::from_fn(|| back.take_request()).collect();
        assert_eq!(reqs.len(), 4);
        assert_eq!(reqs[2].gref, 102);
        back.respond(RxRsp { id: 0, offset: 10, flags: 0, status: 60 });
        back.respond(RxRsp { id: 1, offset: 4000, flags: 0, status: 200 }); // past the page
        back.respond(RxRsp { id: 2, offset: 0, flags: 0, status: 1515 }); // over the MTU
        back.respond(RxRsp { id: 3, offset: 0, flags: 0, status: -1 }); // an error
        assert_eq!(ring.next(&c), Ok(Some(RxFrame { id: 0, offset: 10, len: 60 })));
        assert_eq!(ring.next(&c), Ok(None));
        assert_eq!(c.stats().rx_dropped, 3);
        assert_eq!(c.stats().rx_frames, 1);
        // The dropped buffers are free to post again; the held one is not.
        ring.repost(|_| 0);
        assert_eq!(core::iter::from_fn(|| back.take_request()).count(), 3);
        ring.release(0);
        ring.repost(|_| 0);
        assert_eq!(core::iter::from_fn(|| back.take_request()).count(), 1);
    }

    #[test]
    fn a_multi_slot_frame_is_dropped_whole() {
        let (mut ring, mut back, c) = rx();
        back.respond(RxRsp { id: 0, offset: 0, flags: NETRXF_MORE_DATA, status: 100 });
        back.respond(RxRsp { id: 1, offset: 0, flags: NETRXF_MORE_DATA, status: 100 });
        back.respond(RxRsp { id: 2, offset: 0, flags: 0, status: 100 });
        back.respond(RxRsp { id: 3, offset: 0, flags: 0, status: 100 });
        assert_eq!(ring.next(&c), Ok(Some(RxFrame { id: 3, offset: 0, len: 100 })));
        assert_eq!(c.stats().rx_dropped, 1);
    }

    #[test]
    fn duplicate_invented_and_extra_info_responses_are_errors() {
        let (mut ring, mut back, c) = rx();
        back.respond(RxRsp { id: 1, offset: 0, flags: 0, status: 60 });
        back.respond(RxRsp { id: 1, offset: 0, flags: 0, status: 60 });
        assert_eq!(ring.next(&c), Ok(Some(RxFrame { id: 1, offset: 0, len: 60 })));
        assert_eq!(ring.next(&c), Err(NetifError::Ring(RingError::UnknownId(1))));
        let (mut ring, mut back, c) = rx();
        back.respond(RxRsp { id: 9, offset: 0, flags: 0, status: 60 });
        assert_eq!(ring.next(&c), Err(NetifError::Ring(RingError::UnknownId(9))));
        let (mut ring, mut back, c) = rx();
        back.respond(RxRsp { id: 0, offset: 0, flags: NETRXF_EXTRA_INFO, status: 60 });
        assert_eq!(ring.next(&c), Err(NetifError::ExtraInfo));
        let (mut ring, mut back, c) = rx();
        back.force_rsp_prod(5);
        assert!(matches!(ring.next(&c), Err(NetifError::Ring(RingError::ProducerOverrun { .. }))));
    }

    #[test]
    fn transmit_ids_come_back_once() {
        let page = SharedPage::new();
        let mut tx = TxRing::new(page, 2);
        let mut back = BackRing::<TxReq, TxRsp>::attach(page);
        let c = NetCounters::default();
        let a = tx.take().unwrap();
        tx.send(a, 7, 60).unwrap();
        let b = tx.take().unwrap();
        tx.send(b, 8, 61).unwrap();
        assert!(!tx.ready(), "both buffers in flight");
        let req = back.take_request().unwrap();
        assert_eq!((req.gref, req.size), (7, 60));
        back.respond(TxRsp { id: req.id, status: -1 });
        assert_eq!(tx.reclaim(&c), Ok(()));
        assert_eq!(c.stats().tx_dropped, 1);
        assert!(tx.ready());
        back.respond(TxRsp { id: req.id, status: 0 });
        assert_eq!(tx.reclaim(&c), Err(RingError::UnknownId(req.id as u64)));
    }
}
