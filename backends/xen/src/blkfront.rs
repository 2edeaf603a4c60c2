//! blkfront (`xen/include/public/io/blkif.h`): a [`Block`] device over one
//! shared ring. Transfers go through pages owned by the driver and granted
//! to the backend, so an abandoned request cannot touch freed memory.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::future::poll_fn;

use morgana_devices::{Block, BlockError, BlockInfo};
use morgana_x86::xen::Port;

use crate::blkif::{BlkRing, Segment, MAX_SEGMENTS, OP_FLUSH, OP_READ, OP_WRITE};
use crate::grant::GrantRef;
use crate::page::{SharedPage, PAGE};
use crate::platform::{wait_backend, with_grants, Store};
use crate::XenbusState;

/// Pages per request (of the 11 a request may name).
const PAGES: usize = 8;
const SECTOR: usize = 512;
const VDISK_READONLY: u32 = 4;

/// A Xen virtual block device.
pub struct Blkfront {
    /// Refuses new requests once the backend breaks the protocol: the
    /// pages may still be in use.
    ring: BlkRing,
    port: Port,
    pages: Vec<(SharedPage, GrantRef)>,
    info: BlockInfo,
    flush: bool,
}

fn read(xs: &mut Store, path: &str) -> Result<String, String> {
    xs.read(path).map_err(|e| format!("{path}: {e}"))
}

impl Blkfront {
    /// Connects to the backend of the vbd at `node` (`device/vbd/N`).
    pub fn connect(xs: &mut Store, node: &str) -> Result<Blkfront, String> {
        let backend = read(xs, &format!("{node}/backend"))?;
        let backend_id: u16 = read(xs, &format!("{node}/backend-id"))?.parse().map_err(|_| "bad backend-id")?;
        wait_backend(xs, &backend, XenbusState::InitWait)?;
        let grant = |page: SharedPage| {
            with_grants(|g| g.grant(backend_id, page.gfn(), false)).map_err(|e| format!("granting a page: {e:?}"))
        };
        let ring = BlkRing::new(SharedPage::new());
        let ring_ref = grant(ring.page())?;
        let port = Port::alloc_unbound(backend_id).map_err(|e| format!("event channel: error {e}"))?;
        let mut pages = Vec::with_capacity(PAGES);
        for _ in 0..PAGES {
            let p = SharedPage::new();
            pages.push((p, grant(p)?));
        }
        for (k, v) in [
            ("ring-ref", format!("{ring_ref}")),
            ("event-channel", format!("{}", port.0)),
            ("protocol", "x86_64-abi".into()),
            ("state", "3".into()),
        ] {
            xs.write(0, &format!("{node}/{k}"), &v).map_err(|e| format!("{node}/{k}: {e}"))?;
        }
        port.unmask();
        wait_backend(xs, &backend, XenbusState::Connected)?;
        let sectors: u64 = read(xs, &format!("{backend}/sectors"))?.parse().map_err(|_| "bad sectors")?;
        let sector_size: usize = read(xs, &format!("{backend}/sector-size"))?.parse().map_err(|_| "bad sector-size")?;
        let info: u32 = xs.read(&format!("{backend}/info")).ok().and_then(|v| v.parse().ok()).unwrap_or(0);
        let flush = xs.read(&format!("{backend}/feature-flush-cache")).is_ok_and(|v| v.trim() == "1");
        if sector_size != SECTOR {
            return Err(format!("{node}: sector size {sector_size} is not supported (only 512)"));
        }
        xs.write(0, &format!("{node}/state"), "4").map_err(|e| format!("{e}"))?;
        let read_only = info & VDISK_READONLY != 0;
        log::info!("blkfront {node}: {sectors} sectors{}", if read_only { ", read-only" } else { "" });
        Ok(Blkfront { ring, port, pages, info: BlockInfo { sector_size: SECTOR, sectors, read_only }, flush })
    }

    /// Waits for the response to the request in flight.
    async fn complete(&mut self) -> Result<(), BlockError> {
        poll_fn(|cx| {
            self.port.register(cx.waker());
            self.ring.poll_response()
        })
        .await
    }

    /// One request over the first `n` bytes of the pages (none for a flush).
    async fn request(&mut self, operation: u8, sector: u64, n: usize) -> Result<(), BlockError> {
        self.complete().await.ok();
        let mut seg = [Segment::default(); MAX_SEGMENTS];
        let count = n.div_ceil(PAGE);
        for (i, s) in seg.iter_mut().enumerate().take(count) {
            let bytes = (n - i * PAGE).min(PAGE);
            *s = Segment { gref: self.pages[i].1, first_sect: 0, last_sect: (bytes / SECTOR - 1) as u8, pad: 0 };
        }
        if self.ring.submit(operation, sector, &seg[..count])? {
            self.port.notify();
        }
        self.complete().await
    }

    fn page_bytes(&self, i: usize) -> *mut u8 {
        self.pages[i].0.ptr()
    }
}

impl Block for Blkfront {
    fn info(&self) -> BlockInfo {
        self.info
    }

    async fn read(&mut self, first: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.info.check(first, buf.len(), false)?;
        let mut sector = first;
        for chunk in buf.chunks_mut(PAGES * PAGE) {
            self.request(OP_READ, sector, chunk.len()).await?;
            for (i, part) in chunk.chunks_mut(PAGE).enumerate() {
                // SAFETY: page `i` is ours (leaked), the request is complete
                // so the backend no longer writes it, and part.len() <= 4096.
                let src = unsafe { core::slice::from_raw_parts(self.page_bytes(i), part.len()) };
                part.copy_from_slice(src);
            }
            sector += (chunk.len() / SECTOR) as u64;
        }
        Ok(())
    }

    async fn write(&mut self, first: u64, buf: &[u8]) -> Result<(), BlockError> {
        self.info.check(first, buf.len(), true)?;
        let mut sector = first;
        for chunk in buf.chunks(PAGES * PAGE) {
            self.complete().await.ok();
            if self.ring.broken() {
                return Err(BlockError::Device);
            }
            for (i, part) in chunk.chunks(PAGE).enumerate() {
                // SAFETY: page `i` is ours, no request is in flight (just
                // completed), and part.len() <= 4096.
                let dst = unsafe { core::slice::from_raw_parts_mut(self.page_bytes(i), part.len()) };
                dst.copy_from_slice(part);
            }
            self.request(OP_WRITE, sector, chunk.len()).await?;
            sector += (chunk.len() / SECTOR) as u64;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), BlockError> {
        if self.info.read_only {
            return Err(BlockError::ReadOnly);
        }
        self.complete().await.ok();
        if !self.flush {
            return Ok(()); // the backend writes through
        }
        self.request(OP_FLUSH, 0, 0).await
    }
}
