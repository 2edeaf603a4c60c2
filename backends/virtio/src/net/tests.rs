use super::*;
use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::sync::Arc;
use alloc::task::Wake;
use core::cell::{Cell, RefCell};
use core::sync::atomic::{AtomicUsize, Ordering};

const HEADER: usize = 12;

/// A simulated device: descriptor tokens per queue, the buffers it was
/// given, and what it has filled or sent.
#[derive(Default)]
struct Device {
    rx_posted: VecDeque<(u16, *mut u8, usize)>,
    rx_used: VecDeque<(u16, usize)>,
    rx_tokens: Vec<u16>,
    tx_pending: VecDeque<(u16, Vec<u8>)>,
    tx_used: VecDeque<u16>,
    tx_tokens: Vec<u16>,
}

impl Device {
    fn new() -> Device {
        let tokens = || (0..QUEUE as u16).rev().collect();
        Device { rx_tokens: tokens(), tx_tokens: tokens(), ..Default::default() }
    }

    /// A frame arrives in the oldest posted buffer.
    fn deliver(&mut self, frame: &[u8]) {
        let (token, ptr, len) = self.rx_posted.pop_front().expect("a posted receive buffer");
        assert!(HEADER + frame.len() <= len);
        // SAFETY: the driver keeps a posted buffer alive and untouched
        // until it is completed, which has not happened yet.
        let buf = unsafe { core::slice::from_raw_parts_mut(ptr, len) };
        buf[..HEADER].fill(0);
        buf[HEADER..HEADER + frame.len()].copy_from_slice(frame);
        self.rx_used.push_back((token, HEADER + frame.len()));
    }

    /// The device sends the oldest queued frame; returns it.
    fn send_one(&mut self) -> Vec<u8> {
        let (token, data) = self.tx_pending.pop_front().expect("a queued frame");
        self.tx_used.push_back(token);
        data[HEADER..].to_vec()
    }
}

#[derive(Clone)]
struct Queue(Rc<RefCell<Device>>);

impl Queues for Queue {
    unsafe fn receive_begin(&mut self, buf: &mut [u8]) -> Result<u16, Error> {
        let mut d = self.0.borrow_mut();
        let token = d.rx_tokens.pop().ok_or(Error::QueueFull)?;
        d.rx_posted.push_back((token, buf.as_mut_ptr(), buf.len()));
        Ok(token)
    }
    fn poll_receive(&self) -> Option<u16> {
        self.0.borrow().rx_used.front().map(|u| u.0)
    }
    unsafe fn receive_complete(&mut self, token: u16, _buf: &mut [u8]) -> Result<(usize, usize), Error> {
        let mut d = self.0.borrow_mut();
        let (t, len) = d.rx_used.pop_front().ok_or(Error::NotReady)?;
        assert_eq!(t, token);
        d.rx_tokens.push(t);
        Ok((HEADER, len - HEADER))
    }
    fn fill_buffer_header(&self, buf: &mut [u8]) -> Result<usize, Error> {
        buf[..HEADER].fill(0);
        Ok(HEADER)
    }
    unsafe fn transmit_begin(&mut self, buf: &[u8]) -> Result<u16, Error> {
        let mut d = self.0.borrow_mut();
        let token = d.tx_tokens.pop().ok_or(Error::QueueFull)?;
        d.tx_pending.push_back((token, buf.to_vec()));
        Ok(token)
    }
    fn poll_transmit(&mut self) -> Option<u16> {
        self.0.borrow().tx_used.front().copied()
    }
    unsafe fn transmit_complete(&mut self, token: u16, _buf: &[u8]) -> Result<usize, Error> {
        let mut d = self.0.borrow_mut();
        let t = d.tx_used.pop_front().ok_or(Error::NotReady)?;
        assert_eq!(t, token);
        d.tx_tokens.push(t);
        Ok(0)
    }
    fn ack_interrupt(&mut self) {}
}

/// The interrupt line. `on_register` runs once, at the next
/// registration: the device acting just then.
#[derive(Default)]
struct Line {
    waker: RefCell<Option<Waker>>,
    fired: Cell<bool>,
    on_register: RefCell<Option<Box<dyn FnOnce()>>>,
}

#[derive(Clone, Default)]
struct Irq(Rc<Line>);

impl Interrupt for Irq {
    fn register(&self, waker: &Waker) {
        *self.0.waker.borrow_mut() = Some(waker.clone());
        let hook = self.0.on_register.borrow_mut().take();
        if let Some(hook) = hook {
            hook();
        }
    }
    fn acknowledge(&self, device_ack: impl FnOnce()) {
        if self.0.fired.replace(false) {
            device_ack();
        }
    }
}

impl Irq {
    /// The line fires: wakes whoever registered.
    fn fire(&self) {
        self.0.fired.set(true);
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

fn setup() -> (NetDevice<Queue, Irq>, Rc<RefCell<Device>>, Irq) {
    let dev = Rc::new(RefCell::new(Device::new()));
    let irq = Irq::default();
    let net = NetDevice::with_queues(Queue(dev.clone()), Some(irq.clone()), [2, 0, 0, 0, 0, 1]);
    (net, dev, irq)
}

/// Queues a frame in every transmit buffer; the device sends none yet.
fn fill_tx(net: &mut NetDevice<Queue, Irq>, cx: &mut Context<'_>) {
    for i in 0..QUEUE {
        net.transmit(cx).expect("a free buffer").consume(60, |b| b.fill(i as u8));
    }
    assert!(net.transmit(cx).is_none(), "all buffers in flight");
}

#[test]
fn receive_waits_for_a_transmit_buffer() {
    let (mut net, dev, irq) = setup();
    let (waker, count) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    fill_tx(&mut net, &mut cx);
    dev.borrow_mut().deliver(&[0xaa; 60]);
    assert!(net.receive(&mut cx).is_none(), "no transmit buffer: the frame must wait");
    assert_eq!(net.stats().rx_frames, 0);
    let woken = wakes(&count);
    dev.borrow_mut().send_one();
    irq.fire();
    assert_eq!(wakes(&count), woken + 1, "woken when a buffer frees");
    let (rx, tx) = net.receive(&mut cx).expect("the frame, with a buffer to answer it");
    assert_eq!(rx.consume(|f| f.to_vec()), [0xaa; 60]);
    tx.consume(42, |b| b.fill(0x55));
    let stats = net.stats();
    assert_eq!((stats.rx_frames, stats.tx_frames, stats.tx_dropped), (1, QUEUE as u64 + 1, 0));
    // The reply is the newest frame queued.
    let last = dev.borrow().tx_pending.back().map(|(_, d)| d[HEADER..].to_vec());
    assert_eq!(last, Some(alloc::vec![0x55; 42]));
}

#[test]
fn a_completion_during_registration_is_not_lost() {
    let (mut net, dev, irq) = setup();
    let (waker, count) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    fill_tx(&mut net, &mut cx);
    dev.borrow_mut().deliver(&[0xbb; 60]);
    // The device sends a frame while the driver registers; its interrupt
    // went to nobody.
    let d = dev.clone();
    *irq.0.on_register.borrow_mut() = Some(Box::new(move || {
        d.borrow_mut().send_one();
    }));
    let woken = wakes(&count);
    if net.receive(&mut cx).is_none() {
        assert_eq!(wakes(&count), woken + 1, "woken at once: a buffer is free");
    }
    let (rx, _tx) = net.receive(&mut cx).expect("the frame, with a buffer");
    assert_eq!(rx.consume(|f| f.to_vec()), [0xbb; 60]);
}

#[test]
fn an_arriving_frame_wakes_the_receiver_and_buffers_return() {
    let (mut net, dev, irq) = setup();
    let (waker, count) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    for round in 0..3 * QUEUE {
        assert!(net.receive(&mut cx).is_none());
        dev.borrow_mut().deliver(&[round as u8; 60]);
        irq.fire();
        assert_eq!(wakes(&count), round + 1);
        let (rx, tx) = net.receive(&mut cx).expect("the frame");
        assert_eq!(rx.consume(|f| f.to_vec()), [round as u8; 60]);
        tx.consume(60, |b| b.fill(1));
        dev.borrow_mut().send_one();
    }
    assert_eq!(net.stats().tx_dropped, 0);
}
