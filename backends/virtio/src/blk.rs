//! virtio-blk as a [`Block`] device.
//!
//! Requests go through buffers owned by the driver (copied in and out), so a
//! request whose future is dropped midway can still complete safely: the
//! next request first waits for it. Dropping the device resets it before
//! its buffers are freed (field order).

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::future::poll_fn;

use morgana_devices::{Block, BlockError, BlockInfo};
use morgana_x86::IrqLine;
use virtio_drivers::device::blk::{BlkReq, BlkResp, VirtIOBlk, SECTOR_SIZE};

use crate::hal::VirtioHal;
use crate::used::single_completion;
use crate::Transport;

/// Largest transfer per request; longer ones are split.
const CHUNK: usize = 64 * 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    Write,
}

/// A virtio-blk device.
pub struct VirtioBlk {
    // Declared first so it is dropped (and the device reset) first.
    dev: VirtIOBlk<VirtioHal, Transport>,
    irq: Option<IrqLine>,
    info: BlockInfo,
    req: Box<BlkReq>,
    resp: Box<BlkResp>,
    bounce: Vec<u8>,
    /// A request the device may still be working on, with its length.
    in_flight: Option<(u16, Op, usize)>,
    /// The device completed a request that was not in flight: it may still
    /// use the buffers, so no more requests are made.
    broken: bool,
}

impl VirtioBlk {
    /// Negotiates with the device.
    pub fn new(transport: Transport, gsi: Option<u32>) -> Result<VirtioBlk, virtio_drivers::Error> {
        let dev = VirtIOBlk::<VirtioHal, Transport>::new(transport)?;
        let irq = gsi.and_then(|g| IrqLine::route(g, true));
        let info = BlockInfo { sector_size: SECTOR_SIZE, sectors: dev.capacity(), read_only: dev.readonly() };
        Ok(VirtioBlk {
            dev,
            irq,
            info,
            req: Box::default(),
            resp: Box::default(),
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
            if let Some(irq) = self.irq {
                let dev = &mut self.dev;
                irq.acknowledge(|| {
                    dev.ack_interrupt();
                });
                irq.register(cx.waker());
            } else {
                cx.waker().wake_by_ref();
            }
            single_completion(self.dev.peek_used(), token)
        })
        .await;
        if let Err(e) = done {
            // Waiting would never end (the entry stays at the head of the
            // used ring).
            log::error!("virtio-blk: device completed request {} with {} in flight; the disk stops", e.got, e.expected);
            self.broken = true;
            return Err(BlockError::Device);
        }
        self.in_flight = None;
        let buf = &mut self.bounce[..len];
        // SAFETY: `req`, `bounce[..len]` and `resp` are the buffers given to
        // the `*_nb` call that returned `token`; they are owned by `self` and
        // were not touched since.
        let r = unsafe {
            match op {
                Op::Read => self.dev.complete_read_blocks(token, &self.req, buf, &mut self.resp),
                Op::Write => self.dev.complete_write_blocks(token, &self.req, buf, &mut self.resp),
            }
        };
        r.map_err(|_| BlockError::Device)
    }

    async fn transfer(&mut self, op: Op, sector: u64, len: usize) -> Result<(), BlockError> {
        self.complete().await.ok(); // an abandoned earlier request
        if self.broken {
            return Err(BlockError::Device);
        }
        let buf = &mut self.bounce[..len];
        // SAFETY: `req`, `bounce` and `resp` are owned by `self` and stay in
        // place (boxed, or a Vec never resized while a request is in flight)
        // until `complete` hands them back; `in_flight` records the request
        // so nothing else touches them meanwhile.
        let token = unsafe {
            match op {
                Op::Read => self.dev.read_blocks_nb(sector as usize, &mut self.req, buf, &mut self.resp),
                Op::Write => self.dev.write_blocks_nb(sector as usize, &mut self.req, buf, &mut self.resp),
            }
        }
        .map_err(|_| BlockError::Device)?;
        self.in_flight = Some((token, op, len));
        self.complete().await
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
            self.transfer(Op::Read, sector, chunk.len()).await?;
            chunk.copy_from_slice(&self.bounce[..chunk.len()]);
            sector += (chunk.len() / SECTOR_SIZE) as u64;
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
            self.transfer(Op::Write, sector, chunk.len()).await?;
            sector += (chunk.len() / SECTOR_SIZE) as u64;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), BlockError> {
        if self.info.read_only {
            return Err(BlockError::ReadOnly);
        }
        self.complete().await.ok();
        if self.broken {
            return Err(BlockError::Device);
        }
        // virtio-drivers' flush waits for the device by polling the queue;
        // flushes are rare and short.
        self.dev.flush().map_err(|_| BlockError::Device)
    }
}
