//! virtio-blk as a [`Block`] device, over virtio-drivers' virtqueue.
//!
//! Every request (read, write, flush) is issued and then waited for through
//! the device's interrupt, so the executor runs other tasks meanwhile
//! (virtio-drivers' own `VirtIOBlk::flush` spins on the used ring).
//!
//! Requests go through buffers owned by the driver (copied in and out), so a
//! request whose future is dropped midway can still complete safely: the
//! next request first waits for it. A device that answers with a request
//! that was never made stops the disk (every later request fails).

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::future::poll_fn;

use morgana_devices::{Block, BlockError, BlockInfo};
use morgana_x86::IrqLine;
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::Transport as _;

use crate::hal::VirtioHal;
use crate::used::single_completion;
use crate::Transport;

/// Largest transfer per request; longer ones are split.
const CHUNK: usize = 64 * 1024;
const SECTOR: usize = 512;
const QUEUE: u16 = 0;
const QUEUE_SIZE: usize = 16;

bitflags::bitflags! {
    /// The feature bits this driver knows (virtio 1.2, 5.2.3 and 6).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Features: u64 {
        const RO = 1 << 5;
        const FLUSH = 1 << 9;
        const VERSION_1 = 1 << 32;
    }
}

/// Request types (5.2.6).
const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const S_OK: u8 = 0;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    Write,
    Flush,
}

/// A virtio-blk device.
pub struct VirtioBlk {
    queue: VirtQueue<VirtioHal, QUEUE_SIZE>,
    transport: Transport,
    irq: Option<IrqLine>,
    info: BlockInfo,
    flush: bool,
    /// Request header: type, reserved, sector (little-endian).
    header: Box<[u8; 16]>,
    status: Box<[u8; 1]>,
    bounce: Vec<u8>,
    /// A request the device may still be working on: its token, kind and
    /// data length.
    in_flight: Option<(u16, Op, usize)>,
    /// The device completed a request that was not in flight: it may still
    /// use the buffers, so no more requests are made.
    broken: bool,
}

impl VirtioBlk {
    /// Negotiates with the device.
    pub fn new(mut transport: Transport, gsi: Option<u32>) -> Result<VirtioBlk, virtio_drivers::Error> {
        let features = transport.begin_init(Features::all());
        let sectors = transport.read_consistent(|| {
            let low: u32 = transport.read_config_space(0)?;
            let high: u32 = transport.read_config_space(4)?;
            Ok(u64::from(low) | u64::from(high) << 32)
        })?;
        let queue = VirtQueue::new(&mut transport, QUEUE, false, false)?;
        transport.finish_init();
        let irq = gsi.and_then(|g| IrqLine::route(g, true));
        let read_only = features.contains(Features::RO);
        Ok(VirtioBlk {
            queue,
            transport,
            irq,
            info: BlockInfo { sector_size: SECTOR, sectors, read_only },
            flush: features.contains(Features::FLUSH),
            header: Box::new([0; 16]),
            status: Box::new([0xff]),
            bounce: vec![0; CHUNK],
            in_flight: None,
            broken: false,
        })
    }

    /// Waits for the request in flight, if any; returns its outcome.
    async fn complete(&mut self) -> Result<(), BlockError> {
        if self.broken {
            return Err(BlockError::Device);
        }
        let Some((token, op, len)) = self.in_flight else { return Ok(()) };
        let done = poll_fn(|cx| {
            match self.irq {
                Some(irq) => {
                    let transport = &mut self.transport;
                    irq.acknowledge(|| {
                        transport.ack_interrupt();
                    });
                    irq.register(cx.waker());
                }
                // No interrupt line: poll again after the other tasks.
                None => cx.waker().wake_by_ref(),
            }
            single_completion(self.queue.peek_used(), token)
        })
        .await;
        if let Err(e) = done {
            // Waiting would never end (the entry stays at the head of the
            // used ring), and the device may still use the buffers.
            log::error!("virtio-blk: device completed request {} with {} in flight; the disk stops", e.got, e.expected);
            self.broken = true;
            return Err(BlockError::Device);
        }
        self.in_flight = None;
        let (header, status) = (&self.header[..], &mut self.status[..]);
        // SAFETY: these are the buffers given to `add` for `token` (see
        // `start`), owned by `self` and untouched since.
        let r = unsafe {
            match op {
                Op::Read => self.queue.pop_used(token, &[header], &mut [&mut self.bounce[..len], status]),
                Op::Write => self.queue.pop_used(token, &[header, &self.bounce[..len]], &mut [status]),
                Op::Flush => self.queue.pop_used(token, &[header], &mut [status]),
            }
        };
        match r {
            Ok(_) if self.status[0] == S_OK => Ok(()),
            _ => Err(BlockError::Device),
        }
    }

    /// Issues one request over `bounce[..len]` (nothing for a flush) and
    /// waits for it.
    async fn request(&mut self, op: Op, sector: u64, len: usize) -> Result<(), BlockError> {
        self.complete().await.ok(); // an abandoned earlier request
        if self.broken {
            return Err(BlockError::Device);
        }
        let kind = match op {
            Op::Read => T_IN,
            Op::Write => T_OUT,
            Op::Flush => T_FLUSH,
        };
        self.header[..4].copy_from_slice(&kind.to_le_bytes());
        self.header[4..8].fill(0);
        self.header[8..].copy_from_slice(&sector.to_le_bytes());
        self.status[0] = 0xff;
        let (header, status) = (&self.header[..], &mut self.status[..]);
        // SAFETY: `header`, `bounce[..len]` and `status` are owned by `self`
        // and stay in place (boxed, or a Vec never resized) until `complete`
        // takes them back with `pop_used`; `in_flight` records the request so
        // nothing touches them meanwhile, and a dropped device leaks them
        // while a request is in flight.
        let token = unsafe {
            match op {
                Op::Read => self.queue.add(&[header], &mut [&mut self.bounce[..len], status]),
                Op::Write => self.queue.add(&[header, &self.bounce[..len]], &mut [status]),
                Op::Flush => self.queue.add(&[header], &mut [status]),
            }
        }
        .map_err(|_| BlockError::Device)?;
        self.in_flight = Some((token, op, len));
        if self.queue.should_notify() {
            self.transport.notify(QUEUE);
        }
        self.complete().await
    }
}

impl Drop for VirtioBlk {
    fn drop(&mut self) {
        self.transport.queue_unset(QUEUE);
        if self.in_flight.is_some() {
            // The device may still write them.
            Box::leak(core::mem::take(&mut self.header));
            Box::leak(core::mem::take(&mut self.status));
            core::mem::take(&mut self.bounce).leak();
        }
    }
}

impl Block for VirtioBlk {
    fn info(&self) -> BlockInfo {
        self.info
    }

    async fn read(&mut self, first: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.info.check(first, buf.len(), false)?;
        let mut sector = first;
        for chunk in buf.chunks_mut(CHUNK) {
            self.request(Op::Read, sector, chunk.len()).await?;
            chunk.copy_from_slice(&self.bounce[..chunk.len()]);
            sector += (chunk.len() / SECTOR) as u64;
        }
        Ok(())
    }

    async fn write(&mut self, first: u64, buf: &[u8]) -> Result<(), BlockError> {
        self.info.check(first, buf.len(), true)?;
        let mut sector = first;
        for chunk in buf.chunks(CHUNK) {
            self.complete().await.ok();
            if self.broken {
                return Err(BlockError::Device);
            }
            self.bounce[..chunk.len()].copy_from_slice(chunk);
            self.request(Op::Write, sector, chunk.len()).await?;
            sector += (chunk.len() / SECTOR) as u64;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), BlockError> {
        if self.info.read_only {
            return Err(BlockError::ReadOnly);
        }
        if !self.flush {
            // Without the flush feature the device writes through.
            return self.complete().await;
        }
        self.request(Op::Flush, 0, 0).await
    }
}
