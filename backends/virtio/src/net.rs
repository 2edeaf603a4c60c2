//! virtio-net as a [`Net`] device.
//!
//! Receive buffers are posted to the device ahead of time and handed to the
//! stack in place; transmit buffers come from a fixed pool. Buffers are
//! boxed once at start and recycled, so no frame allocates.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::task::Context;

use morgana_devices::{LinkState, Net, NetCounters, NetStats, RxToken, TxToken};
use morgana_x86::IrqLine;
use virtio_drivers::device::net::VirtIONetRaw;

use crate::hal::VirtioHal;
use crate::used::{rx_frame, Lent};
use crate::Transport;

/// Descriptors per queue, and buffers per direction.
const QUEUE: usize = 32;
/// Buffer size: virtio-net header plus a 1514-byte frame, rounded up.
const BUF: usize = 1536 + 64;
const MTU: usize = 1500;

type Buf = Box<[u8; BUF]>;

struct TxState {
    dev: VirtIONetRaw<VirtioHal, Transport, QUEUE>,
    /// Sent buffers by descriptor token, with the length given to the device.
    in_flight: Lent<(Buf, usize), QUEUE>,
    free: Vec<Buf>,
}

/// A virtio-net device.
pub struct VirtioNet {
    tx: TxState,
    irq: Option<IrqLine>,
    /// Posted receive buffers by descriptor token.
    rx_posted: Lent<Buf, QUEUE>,
    /// Receive buffers the stack has finished with, to post again.
    rx_done: Vec<Buf>,
    mac: [u8; 6],
    counters: NetCounters,
}

/// Why a virtio-net device could not be started.
pub type Error = virtio_drivers::Error;

impl VirtioNet {
    /// Negotiates with the device and posts the receive buffers.
    pub fn new(transport: Transport, gsi: Option<u32>) -> Result<VirtioNet, Error> {
        let dev = VirtIONetRaw::<VirtioHal, Transport, QUEUE>::new(transport)?;
        let irq = gsi.and_then(|g| IrqLine::route(g, true));
        let mac = dev.mac_address();
        let mut net = VirtioNet {
            tx: TxState { dev, in_flight: Lent::default(), free: (0..QUEUE).map(|_| Box::new([0u8; BUF])).collect() },
            irq,
            rx_posted: Lent::default(),
            rx_done: (0..QUEUE).map(|_| Box::new([0u8; BUF])).collect(),
            mac,
            counters: NetCounters::default(),
        };
        net.repost();
        Ok(net)
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
        if let Some(irq) = self.irq {
            let dev = &mut self.tx.dev;
            irq.acknowledge(|| {
                dev.ack_interrupt();
            });
        }
        self.tx.reclaim(&self.counters);
        self.repost();
    }

    fn register(&self, cx: &mut Context<'_>) {
        match self.irq {
            Some(irq) => irq.register(cx.waker()),
            // No interrupt line: ask to be polled again.
            None => cx.waker().wake_by_ref(),
        }
    }
}

impl TxState {
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
pub struct Tx<'a> {
    tx: &'a mut TxState,
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

impl TxToken for Tx<'_> {
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

impl Net for VirtioNet {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(Rx<'_>, Tx<'_>)> {
        self.service();
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

    fn transmit(&mut self, cx: &mut Context<'_>) -> Option<Tx<'_>> {
        self.service();
        if self.tx.free.is_empty() {
            self.register(cx);
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
