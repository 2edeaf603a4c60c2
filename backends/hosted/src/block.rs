//! A file (or host block device) as a [`Block`] device.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use morgana_devices::{Block, BlockError, BlockInfo};

/// Sector size of file-backed devices.
pub const SECTOR_SIZE: usize = 512;

/// A block device backed by a host file. I/O is synchronous (page cache);
/// `flush` is `fdatasync`.
pub struct FileBlock {
    file: File,
    info: BlockInfo,
}

impl FileBlock {
    /// Opens `path`; its size must be a whole number of 512-byte sectors.
    pub fn open(path: &Path, read_only: bool) -> io::Result<FileBlock> {
        let file = OpenOptions::new().read(true).write(!read_only).open(path)?;
        let len = file.metadata()?.len();
        if len % SECTOR_SIZE as u64 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("size {len} is not a multiple of {SECTOR_SIZE} bytes"),
            ));
        }
        let info = BlockInfo { sector_size: SECTOR_SIZE, sectors: len / SECTOR_SIZE as u64, read_only };
        Ok(FileBlock { file, info })
    }
}

impl Block for FileBlock {
    fn info(&self) -> BlockInfo {
        self.info
    }

    async fn read(&mut self, first: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.info.check(first, buf.len(), false)?;
        self.file.read_exact_at(buf, first * SECTOR_SIZE as u64).map_err(|_| BlockError::Device)
    }

    async fn write(&mut self, first: u64, buf: &[u8]) -> Result<(), BlockError> {
        self.info.check(first, buf.len(), true)?;
        self.file.write_all_at(buf, first * SECTOR_SIZE as u64).map_err(|_| BlockError::Device)
    }

    async fn flush(&mut self) -> Result<(), BlockError> {
        if self.info.read_only {
            return Err(BlockError::ReadOnly);
        }
        self.file.sync_data().map_err(|_| BlockError::Device)
    }
}
