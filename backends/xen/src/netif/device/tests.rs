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
