//! virtio-console as a [`Console`], and virtio-rng.

use alloc::boxed::Box;
use core::task::{Context, Poll};

use morgana_devices::{Console, ConsoleError, EntropyError};
use morgana_x86::IrqLine;
use virtio_drivers::device::common::Feature;
use virtio_drivers::device::console::VirtIOConsole;
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::Transport as _;

use crate::hal::VirtioHal;
use crate::Transport;

/// A virtio-console port.
pub struct VirtioConsole {
    dev: VirtIOConsole<VirtioHal, Transport>,
    irq: Option<IrqLine>,
}

impl VirtioConsole {
    /// Negotiates with the device.
    pub fn new(transport: Transport, gsi: Option<u32>) -> Result<VirtioConsole, virtio_drivers::Error> {
        let dev = VirtIOConsole::new(transport)?;
        Ok(VirtioConsole { dev, irq: gsi.and_then(|g| IrqLine::route(g, true)) })
    }

    /// Acknowledges the device if its line fired (output completions raise
    /// it too), so a shared line is not left asserted.
    fn acknowledge(&mut self) {
        if let Some(irq) = self.irq {
            let dev = &mut self.dev;
            irq.acknowledge(|| {
                let _ = dev.ack_interrupt();
            });
        }
    }
}

impl Console for VirtioConsole {
    fn write(&mut self, bytes: &[u8]) -> Result<(), ConsoleError> {
        // The driver waits for the device to take each chunk.
        let r = self.dev.send_bytes(bytes).map_err(|_| ConsoleError::Device);
        self.acknowledge();
        r
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize, ConsoleError>> {
        self.acknowledge();
        if let Some(irq) = self.irq {
            irq.register(cx.waker());
        }
        let mut n = 0;
        while n < buf.len() {
            match self.dev.recv(true) {
                Ok(Some(b)) => {
                    buf[n] = b;
                    n += 1;
                }
                Ok(None) => break,
                Err(_) => return Poll::Ready(Err(ConsoleError::Device)),
            }
        }
        if n > 0 {
            return Poll::Ready(Ok(n));
        }
        if self.irq.is_none() {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

/// A virtio-rng device: bytes from the host's entropy source, one request
/// of up to [`RNG_BUF`] bytes at a time, through a buffer the driver owns
/// (so an abandoned request can still complete safely).
///
/// [`read_at_boot`](Self::read_at_boot) waits for the device, bounded, and
/// is for boot only; afterwards [`read`](Self::read) waits for the
/// device's interrupt, letting the executor run other tasks.
pub struct VirtioRng {
    queue: VirtQueue<VirtioHal, RNG_QUEUE_SIZE>,
    transport: Transport,
    irq: Option<IrqLine>,
    buf: Box<[u8; RNG_BUF]>,
    /// The token of the request the device may still be working on.
    in_flight: Option<u16>,
    broken: bool,
}

/// Bytes asked for per request.
pub const RNG_BUF: usize = 64;
const RNG_QUEUE_SIZE: usize = 8;

impl VirtioRng {
    /// Negotiates with the device.
    pub fn new(mut transport: Transport, gsi: Option<u32>) -> Result<VirtioRng, virtio_drivers::Error> {
        transport.begin_init(Feature::VERSION_1);
        let queue = VirtQueue::new(&mut transport, 0, false, false)?;
        transport.finish_init();
        let irq = gsi.and_then(|g| IrqLine::route(g, true));
        Ok(VirtioRng { queue, transport, irq, buf: Box::new([0; RNG_BUF]), in_flight: None, broken: false })
    }

    /// Makes sure a request is in flight.
    fn start(&mut self) -> Result<u16, EntropyError> {
        if self.broken {
            return Err(EntropyError::Unavailable);
        }
        if let Some(token) = self.in_flight {
            return Ok(token);
        }
        // SAFETY: `buf` is boxed and owned by `self`; `in_flight` records
        // the request so it is not touched until `finish` takes it back with
        // `pop_used`, and a dropped device leaks it while a request is in
        // flight.
        let token = unsafe { self.queue.add(&[], &mut [&mut self.buf[..]]) }.map_err(|_| EntropyError::Unavailable)?;
        self.in_flight = Some(token);
        if self.queue.should_notify() {
            self.transport.notify(0);
        }
        Ok(token)
    }

    /// If the device answered, copies what it gave into `out`.
    fn finish(&mut self, token: u16, out: &mut [u8]) -> Option<Result<usize, EntropyError>> {
        match self.queue.peek_used()? {
            t if t != token => {
                log::error!("virtio-rng: the device answered a request never made; not using it any more");
                self.broken = true;
                return Some(Err(EntropyError::Unavailable));
            }
            _ => {}
        }
        self.in_flight = None;
        // SAFETY: `buf` is the buffer given to `add` for `token`.
        let len = match unsafe { self.queue.pop_used(token, &[], &mut [&mut self.buf[..]]) } {
            Ok(len) => len as usize,
            Err(_) => return Some(Err(EntropyError::Unavailable)),
        };
        let n = len.min(RNG_BUF).min(out.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        Some(Ok(n))
    }

    /// Reads up to [`RNG_BUF`] bytes, waiting at most `limit` for the
    /// device (polling it). For boot, before the executor runs other tasks.
    pub fn read_at_boot(&mut self, out: &mut [u8], limit: core::time::Duration) -> Result<usize, EntropyError> {
        let token = self.start()?;
        let deadline = morgana_x86::clock::now() + limit;
        loop {
            if let Some(r) = self.finish(token, out) {
                self.acknowledge();
                return r;
            }
            if morgana_x86::clock::now() >= deadline {
                return Err(EntropyError::Unavailable);
            }
            core::hint::spin_loop();
        }
    }

    /// Reads up to [`RNG_BUF`] bytes, waiting for the device's interrupt.
    /// If this future is dropped, the next call waits for the same request.
    pub async fn read(&mut self, out: &mut [u8]) -> Result<usize, EntropyError> {
        let token = self.start()?;
        core::future::poll_fn(|cx| {
            self.acknowledge();
            match self.irq {
                Some(irq) => irq.register(cx.waker()),
                // No interrupt line: poll again after the other tasks.
                None => cx.waker().wake_by_ref(),
            }
            match self.finish(token, out) {
                Some(r) => Poll::Ready(r),
                None => Poll::Pending,
            }
        })
        .await
    }

    fn acknowledge(&mut self) {
        if let Some(irq) = self.irq {
            let transport = &mut self.transport;
            irq.acknowledge(|| {
                transport.ack_interrupt();
            });
        }
    }
}

impl Drop for VirtioRng {
    fn drop(&mut self) {
        self.transport.queue_unset(0);
        if self.in_flight.is_some() {
            // The device may still write it.
            Box::leak(core::mem::replace(&mut self.buf, Box::new([0; RNG_BUF])));
        }
    }
}
