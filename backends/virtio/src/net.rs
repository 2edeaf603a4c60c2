//! virtio-net as a [`Net`] device.
//!
//! Receive buffers are posted to the device ahead of time and handed to the
//! stack in place; transmit buffers come from a fixed pool. Buffers are
//! boxed once at start and recycled, so no frame allocates.
//!
//! The driver works over [`Queues`] (virtio-drivers' `VirtIONetRaw` in a
//! VM) and an [`Interrupt`] (an IOAPIC line in a VM), so its bookkeeping and
//! readiness are tested on the host against a simulated device.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::task::{Context, Waker};

use morgana_devices::{LinkState, Net, NetCounters, NetStats, RxToken, TxToken};

use crate::used::{rx_frame, Lent};

/// Descriptors per queue, and buffers per direction.
pub const QUEUE: usize = 32;
/// Buffer size: virtio-net header plus a 1514-byte frame, rounded up.
const BUF: usize = 1536 + 64;
const MTU: usize = 1500;

type Buf = Box<[u8; BUF]>;

/// Why a virtio-net device could not be started or used.
pub type Error = virtio_drivers::Error;

/// The two virtqueues of a virtio-net device, as `VirtIONetRaw` offers them.
pub trait Queues {
    /// Posts `buf` for a received frame; returns its token.
    ///
    /// # Safety
    /// `buf` must stay valid, unmoved and untouched until
    /// [`receive_complete`](Self::receive_complete) returns it.
    unsafe fn receive_begin(&mut self, buf: &mut [u8]) -> Result<u16, Error>;
    /// The token of the next filled receive buffer, if any.
    fn poll_receive(&self) -> Option<u16>;
    /// Takes back the filled buffer of `token`: (header length, frame length).
    ///
    /// # Safety
    /// `buf` must be the buffer posted under `token`.
    unsafe fn receive_complete(&mut self, token: u16, buf: &mut [u8]) -> Result<(usize, usize), Error>;
    /// Writes the virtio-net header at the start of `buf`; returns its length.
    fn fill_buffer_header(&self, buf: &mut [u8]) -> Result<usize, Error>;
    /// Queues `buf` (header and frame) for sending; returns its token.
    ///
    /// # Safety
    /// `buf` must stay valid, unmoved and unmodified until
    /// [`transmit_complete`](Self::transmit_complete) returns it.
    unsafe fn transmit_begin(&mut self, buf: &[u8]) -> Result<u16, Error>;
    /// The token of the next sent buffer, if any.
    fn poll_transmit(&mut self) -> Option<u16>;
    /// Takes back the sent buffer of `token`.
    ///
    /// # Safety
    /// `buf` must be the buffer given to `transmit_begin` for `token`.
    unsafe fn transmit_complete(&mut self, token: u16, buf: &[u8]) -> Result<usize, Error>;
    /// Acknowledges the device's interrupt.
    fn ack_interrupt(&mut self);
}

/// The device's interrupt line.
pub trait Interrupt {
    /// Wakes `waker` the next time the line fires (replacing an earlier
    /// registration).
    fn register(&self, waker: &Waker);
    /// If the line fired, runs `device_ack` and re-enables the line.
    fn acknowledge(&self, device_ack: impl FnOnce());
}

struct TxState<Q> {
    dev: Q,
    /// Sent buffers by descriptor token, with the length given to the device.
    in_flight: Lent<(Buf, usize), QUEUE>,
    free: Vec<Buf>,
}

/// A virtio-net device over queues `Q` and interrupt `I`.
pub struct NetDevice<Q, I> {
    tx: TxState<Q>,
    irq: Option<I>,
    /// Posted receive buffers by descriptor token.
    rx_posted: Lent<Buf, QUEUE>,
    /// Receive buffers the stack has finished with, to post again.
    rx_done: Vec<Buf>,
    mac: [u8; 6],
    counters: NetCounters,
}

impl<Q: Queues, I: Interrupt> NetDevice<Q, I> {
    /// The driver over a negotiated device, with its interrupt line (`None`:
    /// polled); posts the receive buffers.
    pub fn with_queues(dev: Q, irq: Option<I>, mac: [u8; 6]) -> NetDevice<Q, I> {
        let mut net = NetDevice {
            tx: TxState { dev, in_flight: Lent::default(), free: (0..QUEUE).map(|_| Box::new([0u8; BUF])).collect() },
            irq,
            rx_posted: Lent::default(),
            rx_done: (0..QUEUE).map(|_| Box::new([0u8; BUF])).collect(),
            mac,
            counters: NetCounters::default(),
        };
        net.repost();
        net
    }

    fn repost(&mut self) {
        while let Some(mut buf) = self.rx_done.pop() {
            // SAFETY: the buffer is boxed, so it stays at the same address
            // until `receive_complete` returns it, and it is not touched
            // meanwhile: it is parked in `rx_posted` under its token.
            match unsafe { self.tx.dev.receive_begin(&mut buf[..]) } {
                Ok(token) => {
                    if let Err(buf) = self.rx_posted.lend(token, buf) {
                        // A token we cannot track: the device would write into
                        // a buffer we might free. Leak it rather than risk that.
                        log::error!("virtio-net: unexpected receive token {token}");
                        core::mem::forget(buf);
                    }
                }
                Err(_) => {
                    self.rx_done.push(buf);
                    break;
                }
            }
        }
    }

    /// Acknowledges the interrupt, reclaims sent buffers, reposts receive
    /// buffers.
    fn service(&mut self) {
        if let Some(irq) = &self.irq {
            let dev = &mut self.tx.dev;
            irq.acknowledge(|| dev.ack_interrupt());
        }
        self.tx.reclaim(&self.counters);
        self.repost();
    }

    fn register(&self, cx: &mut Context<'_>) {
        match &self.irq {
            Some(irq) => irq.register(cx.waker()),
            // No interrupt line: ask to be polled again.
            None => cx.waker().wake_by_ref(),
        }
    }

    /// Whether a transmit buffer is free. If none is, `cx` is woken when
    /// the device may have sent one (or at once if it did meanwhile).
    fn tx_slot(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.tx.free.is_empty() {
            return true;
        }
        self.register(cx);
        // A completion from before the registration raised its interrupt
        // for an earlier waker: look once more.
        self.tx.reclaim(&self.counters);
        if !self.tx.free.is_empty() {
            cx.waker().wake_by_ref();
        }
        false
    }
}

impl<Q: Queues> TxState<Q> {
    fn reclaim(&mut self, counters: &NetCounters) {
        while let Some(token) = self.dev.poll_transmit() {
            let Some((buf, len)) = self.in_flight.reclaim(token) else {
                log::error!("virtio-net: device completed unknown transmit token {token}");
                return;
            };
            // SAFETY: `buf[..len]` is exactly the slice given to
            // `transmit_begin` for this token.
            if unsafe { self.dev.transmit_complete(token, &buf[..len]) }.is_err() {
                counters.tx_dropped();
            }
            self.free.push(buf);
        }
    }
}

/// A received frame, in a buffer lent by the device.
pub struct Rx<'a> {
    buf: Option<Buf>,
    start: usize,
    len: usize,
    done: &'a mut Vec<Buf>,
}

/// A transmit slot.
pub struct Tx<'a, Q> {
    tx: &'a mut TxState<Q>,
    counters: &'a NetCounters,
}

impl RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(mut self, f: F) -> R {
        let buf = self.buf.as_mut().expect("a token holds its buffer until dropped");
        f(&mut buf[self.start..self.start + self.len])
    }
}

impl Drop for Rx<'_> {
    /// Consumed or not, the buffer goes back to the device.
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            self.done.push(buf);
        }
    }
}

impl<Q: Queues> TxToken for Tx<'_, Q> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let Some(mut buf) = self.tx.free.pop() else {
            self.counters.tx_dropped();
            let mut scratch = alloc::vec![0u8; len];
            return f(&mut scratch);
        };
        let header = self.tx.dev.fill_buffer_header(&mut buf[..]).unwrap_or(12);
        if header + len > BUF {
            self.counters.tx_dropped();
            let mut scratch = alloc::vec![0u8; len];
            self.tx.free.push(buf);
            return f(&mut scratch);
        }
        let r = f(&mut buf[header..header + len]);
        let total = header + len;
        // SAFETY: the buffer is boxed and parked in `in_flight` until the
        // device completes it (`reclaim`), so it is neither moved nor
        // touched while the device reads it.
        match unsafe { self.tx.dev.transmit_begin(&buf[..total]) } {
            Ok(token) => match self.tx.in_flight.lend(token, (buf, total)) {
                Ok(()) => self.counters.sent(len),
                Err((buf, _)) => {
                    log::error!("virtio-net: unexpected transmit token {token}");
                    core::mem::forget(buf);
                }
            },
            Err(_) => {
                self.counters.tx_dropped();
                self.tx.free.push(buf);
            }
        }
        r
    }
}

impl<Q: Queues, I: Interrupt> Net for NetDevice<Q, I> {
    type RxToken<'a>
        = Rx<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = Tx<'a, Q>
    where
        Self: 'a;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(Rx<'_>, Tx<'_, Q>)> {
        self.service();
        // A frame is taken only with a buffer to answer it in; without one,
        // the frame stays in the queue and `cx` is woken when one frees.
        if !self.tx_slot(cx) {
            return None;
        }
        loop {
            let Some(token) = self.tx.dev.poll_receive() else {
                self.register(cx);
                // A frame that arrived before the registration would not
                // raise a new interrupt: look once more.
                if self.tx.dev.poll_receive().is_some() {
                    cx.waker().wake_by_ref();
                }
                return None;
            };
            let Some(mut buf) = self.rx_posted.reclaim(token) else {
                log::error!("virtio-net: device returned unknown receive token {token}");
                return None;
            };
            // SAFETY: `buf` is the buffer posted under `token`.
            let frame = unsafe { self.tx.dev.receive_complete(token, &mut buf[..]) }
                .ok()
                .and_then(|(start, len)| rx_frame(start, len, BUF, MTU + 14));
            match frame {
                Some(frame) => {
                    self.counters.received(frame.len());
                    let rx = Rx { buf: Some(buf), start: frame.start, len: frame.len(), done: &mut self.rx_done };
                    let tx = Tx { tx: &mut self.tx, counters: &self.counters };
                    return Some((rx, tx));
                }
                None => {
                    self.counters.rx_dropped();
                    self.rx_done.push(buf);
                    self.repost();
                }
            }
        }
    }

    fn transmit(&mut self, cx: &mut Context<'_>) -> Option<Tx<'_, Q>> {
        self.service();
        if !self.tx_slot(cx) {
            return None;
        }
        Some(Tx { tx: &mut self.tx, counters: &self.counters })
    }

    fn link_state(&mut self, _cx: &mut Context<'_>) -> LinkState {
        LinkState::Up
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

#[cfg(target_os = "none")]
mod vm {
    use morgana_x86::IrqLine;
    use virtio_drivers::device::net::VirtIONetRaw;

    use super::{Error, Interrupt, NetDevice, Queues, QUEUE};
    use crate::hal::VirtioHal;
    use crate::Transport;

    type Raw = VirtIONetRaw<VirtioHal, Transport, QUEUE>;

    /// A virtio-net device found at boot.
    pub type VirtioNet = NetDevice<Raw, IrqLine>;

    impl VirtioNet {
        /// Negotiates with the device and posts the receive buffers.
        pub fn new(transport: Transport, gsi: Option<u32>) -> Result<VirtioNet, Error> {
            let dev = Raw::new(transport)?;
            let irq = gsi.and_then(|g| IrqLine::route(g, true));
            let mac = dev.mac_address();
            Ok(NetDevice::with_queues(dev, irq, mac))
        }
    }

    impl Interrupt for IrqLine {
        fn register(&self, waker: &core::task::Waker) {
            IrqLine::register(self, waker);
        }
        fn acknowledge(&self, device_ack: impl FnOnce()) {
            IrqLine::acknowledge(self, device_ack);
        }
    }

    impl Queues for Raw {
        unsafe fn receive_begin(&mut self, buf: &mut [u8]) -> Result<u16, Error> {
            // SAFETY: the caller keeps `buf` in place and untouched until
            // `receive_complete`, as this trait method requires.
            unsafe { Raw::receive_begin(self, buf) }
        }
        fn poll_receive(&self) -> Option<u16> {
            Raw::poll_receive(self)
        }
        unsafe fn receive_complete(&mut self, token: u16, buf: &mut [u8]) -> Result<(usize, usize), Error> {
            // SAFETY: the caller passes the buffer posted under `token`.
            unsafe { Raw::receive_complete(self, token, buf) }
        }
        fn fill_buffer_header(&self, buf: &mut [u8]) -> Result<usize, Error> {
            Raw::fill_buffer_header(self, buf)
        }
        unsafe fn transmit_begin(&mut self, buf: &[u8]) -> Result<u16, Error> {
            // SAFETY: the caller keeps `buf` in place and unmodified until
            // `transmit_complete`, as this trait method requires.
            unsafe { Raw::transmit_begin(self, buf) }
        }
        fn poll_transmit(&mut self) -> Option<u16> {
            Raw::poll_transmit(self)
        }
        unsafe fn transmit_complete(&mut self, token: u16, buf: &[u8]) -> Result<usize, Error> {
            // SAFETY: the caller passes the buffer given to `transmit_begin`
            // for `token`.
            unsafe { Raw::transmit_complete(self, token, buf) }
        }
        fn ack_interrupt(&mut self) {
            Raw::ack_interrupt(self);
        }
    }
}

#[cfg(target_os = "none")]
pub use vm::VirtioNet;

#[cfg(test)]
mod tests {
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
}
