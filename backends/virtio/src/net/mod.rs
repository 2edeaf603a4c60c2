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
mod vm;
#[cfg(target_os = "none")]
pub use vm::VirtioNet;

#[cfg(test)]
mod tests;
