//! virtio-console as a [`Console`] and virtio-rng as an [`Entropy`] source.

use core::task::{Context, Poll};

use morgana_devices::{Console, ConsoleError, Entropy, EntropyError};
use morgana_x86::IrqLine;
use virtio_drivers::device::console::VirtIOConsole;
use virtio_drivers::device::rng::VirtIORng;

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

/// A virtio-rng device: bytes from the host's entropy source.
pub struct VirtioRng {
    dev: VirtIORng<VirtioHal, Transport>,
}

// SAFETY: Morgana runs one CPU and no threads; the device is used only from
// task context (never from an interrupt handler), so moving it into the
// platform's global entropy source cannot race.
unsafe impl Send for VirtioRng {}

impl VirtioRng {
    /// Negotiates with the device.
    pub fn new(transport: Transport) -> Result<VirtioRng, virtio_drivers::Error> {
        Ok(VirtioRng { dev: VirtIORng::new(transport)? })
    }
}

impl Entropy for VirtioRng {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), EntropyError> {
        let mut done = 0;
        let mut empty_replies = 0;
        while done < buf.len() {
            // The driver waits for the device to answer each request.
            match self.dev.request_entropy(&mut buf[done..]) {
                Ok(0) => {
                    empty_replies += 1;
                    if empty_replies > 100 {
                        return Err(EntropyError::Unavailable);
                    }
                }
                Ok(n) => done += n,
                Err(_) => return Err(EntropyError::Unavailable),
            }
        }
        Ok(())
    }
}
