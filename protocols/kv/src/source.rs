//! Where an archive's bytes come from: memory or a block device.

use alloc::vec;
use alloc::vec::Vec;

use morgana_devices::{Block, BlockError};

/// Bytes addressed by offset, read on demand.
///
/// `read_at` fills all of `buf` from `offset` or fails:
/// [`BlockError::OutOfRange`] when the range reaches past [`Source::len`],
/// else whatever the device reports. On error `buf` holds unspecified bytes.
#[allow(async_fn_in_trait)]
pub trait Source {
    /// Length in bytes.
    fn len(&self) -> u64;

    /// Whether the source has no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads `buf.len()` bytes at `offset`.
    async fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError>;

    /// All the bytes, if they are in memory for the life of the program
    /// (a boot module): lets a store hand out file data without copying.
    fn as_static(&self) -> Option<&'static [u8]> {
        None
    }
}

/// Bytes in memory: a boot module (`&'static [u8]`) or a `Vec<u8>`.
#[derive(Debug, Clone)]
pub struct Memory<B>(pub B);

impl<B: AsRef<[u8]>> Source for Memory<B> {
    fn len(&self) -> u64 {
        self.0.as_ref().len() as u64
    }

    async fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let bytes = self.0.as_ref();
        let start = usize::try_from(offset).map_err(|_| BlockError::OutOfRange)?;
        let end = start.checked_add(buf.len()).ok_or(BlockError::OutOfRange)?;
        buf.copy_from_slice(bytes.get(start..end).ok_or(BlockError::OutOfRange)?);
        Ok(())
    }
}

/// Bytes in memory for the life of the program (a boot module): like
/// [`Memory`], and a store over it can hand out file data without copying
/// ([`crate::Tar::get_static`]).
#[derive(Debug, Clone, Copy)]
pub struct Static(pub &'static [u8]);

impl Source for Static {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    async fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        Memory(self.0).read_at(offset, buf).await
    }

    fn as_static(&self) -> Option<&'static [u8]> {
        Some(self.0)
    }
}

/// A block device read through a one-sector buffer: whole sectors go
/// straight into the caller's buffer, partial ones through the buffer,
/// which also keeps the last sector read (headers are read one at a time).
pub struct BlockSource<D> {
    device: D,
    sector: usize,
    len: u64,
    bounce: Vec<u8>,
    /// The sector `bounce` holds.
    cached: Option<u64>,
}

impl<D: Block> BlockSource<D> {
    /// Reads from `device`, the whole of it.
    pub fn new(device: D) -> BlockSource<D> {
        let info = device.info();
        let sector = info.sector_size.max(1);
        BlockSource { device, sector, len: info.capacity(), bounce: vec![0; sector], cached: None }
    }

    /// The device back, for other uses.
    pub fn into_inner(self) -> D {
        self.device
    }

    async fn load(&mut self, sector: u64) -> Result<(), BlockError> {
        if self.cached != Some(sector) {
            self.cached = None;
            self.device.read(sector, &mut self.bounce).await?;
            self.cached = Some(sector);
        }
        Ok(())
    }
}

impl<D: Block> Source for BlockSource<D> {
    fn len(&self) -> u64 {
        self.len
    }

    async fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        match offset.checked_add(buf.len() as u64) {
            Some(end) if end <= self.len => {}
            _ => return Err(BlockError::OutOfRange),
        }
        let size = self.sector as u64;
        let (mut offset, mut done) = (offset, 0);
        while done < buf.len() {
            let (sector, within) = (offset / size, (offset % size) as usize);
            let left = buf.len() - done;
            let n = if within == 0 && left >= self.sector {
                // Whole sectors, straight in.
                let n = left - left % self.sector;
                self.device.read(sector, &mut buf[done..done + n]).await?;
                n
            } else {
                self.load(sector).await?;
                let n = left.min(self.sector - within);
                buf[done..done + n].copy_from_slice(&self.bounce[within..within + n]);
                n
            };
            done += n;
            offset += n as u64;
        }
        Ok(())
    }
}
