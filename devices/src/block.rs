//! Block storage devices.

use core::fmt;

/// Geometry and mode of a block device. Constant for the life of the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockInfo {
    /// Bytes per sector: a power of two, at least 512.
    pub sector_size: usize,
    /// Number of sectors.
    pub sectors: u64,
    /// Writes and flushes fail with [`BlockError::ReadOnly`].
    pub read_only: bool,
}

impl BlockInfo {
    /// Capacity in bytes.
    pub fn capacity(&self) -> u64 {
        self.sectors * self.sector_size as u64
    }
}

/// A block device: a virtual disk, a file, a partition.
///
/// All transfers are whole sectors. `buf.len()` must be a non-zero multiple of
/// the sector size; sector `first` and the ones after it must exist.
///
/// The methods are `async`: the request is issued, then the task sleeps until
/// the device completes it. Only one request is in flight per device at a
/// time (`&mut self`). A request that is dropped before completing may or may
/// not have been carried out; for a write, the sectors then hold either the
/// old or the new data, and a later `flush` covers it either way.
///
/// Written data is durable only after [`Block::flush`] returns `Ok`.
#[allow(async_fn_in_trait)] // Morgana's executor is single-threaded; no `Send` bound wanted.
pub trait Block {
    /// Geometry and mode.
    fn info(&self) -> BlockInfo;

    /// Reads `buf.len() / sector_size` sectors starting at sector `first`
    /// into `buf`. On error the contents of `buf` are unspecified.
    async fn read(&mut self, first: u64, buf: &mut [u8]) -> Result<(), BlockError>;

    /// Writes `buf` to the sectors starting at `first`. `buf` is only borrowed
    /// for the duration of the call.
    async fn write(&mut self, first: u64, buf: &[u8]) -> Result<(), BlockError>;

    /// Makes every completed write durable.
    async fn flush(&mut self) -> Result<(), BlockError>;
}

/// Why a block request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockError {
    /// The request reaches past the last sector.
    OutOfRange,
    /// `buf.len()` is zero or not a multiple of the sector size.
    Misaligned,
    /// The device is read-only.
    ReadOnly,
    /// The device reported an I/O error; the request may be partly done.
    Device,
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BlockError::OutOfRange => "request beyond the end of the device",
            BlockError::Misaligned => "buffer is not a whole number of sectors",
            BlockError::ReadOnly => "device is read-only",
            BlockError::Device => "device I/O error",
        })
    }
}

impl core::error::Error for BlockError {}

impl BlockInfo {
    /// Checks a request of `len` bytes at sector `first` against this
    /// geometry, as every implementation must before touching the device.
    pub fn check(&self, first: u64, len: usize, write: bool) -> Result<(), BlockError> {
        if len == 0 || len % self.sector_size != 0 {
            return Err(BlockError::Misaligned);
        }
        if write && self.read_only {
            return Err(BlockError::ReadOnly);
        }
        let count = (len / self.sector_size) as u64;
        match first.checked_add(count) {
            Some(end) if end <= self.sectors => Ok(()),
            _ => Err(BlockError::OutOfRange),
        }
    }
}
