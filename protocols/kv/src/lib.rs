//! Read-only key-value stores: content given to an image from outside it.
//!
//! * [`KeyValue`]: the interface apps use. Keys are `/`-separated paths
//!   (`about/index.html`); directories hold files and other directories.
//! * [`Tar`]: the implementation over a plain POSIX **ustar** archive, the
//!   format `tar --format=ustar -cf content.tar -C DIR .` writes (MirageOS's
//!   tar key-value store is the model). It opens over a [`Source`]: bytes in
//!   memory ([`Memory`], e.g. a boot module) or a block device
//!   ([`BlockSource`]), read on demand.
//!
//! Opening a [`Tar`] reads only the 512-byte headers and builds an index
//! (name → offset, size, modification time); file data is read when asked
//! for, so a large archive on a disk never has to fit in memory. Every
//! header is checked and a bad archive is refused whole with a [`TarError`]
//! naming the entry and the problem; no input makes the crate panic.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod error;
mod header;
mod source;
mod tar;

pub use error::{KvError, Problem, TarError};
pub use header::{looks_like_ustar, BLOCK};
pub use source::{BlockSource, Memory, Source, Static};
pub use tar::{Limits, Tar};

use alloc::string::String;
use alloc::vec::Vec;

/// What a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file: bytes.
    File,
    /// A directory: names of files and directories.
    Dir,
}

/// What is known about a key without reading its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// File or directory.
    pub kind: Kind,
    /// Bytes in the file; 0 for a directory.
    pub size: u64,
    /// Last modification, Unix seconds (0 when unknown, e.g. for a
    /// directory only implied by the files under it).
    pub modified: u64,
}

/// A read-only store of files under `/`-separated keys.
///
/// Keys name files or directories relative to the store's root, without a
/// leading `/` (one is tolerated) and without `.` or `..` components; the
/// root directory is `""`. Nothing is ever written.
///
/// Ownership: the store owns its source (a device, or memory); the data
/// methods take `&mut self` because reading may use the device, which
/// serves one request at a time. Buffers are borrowed for the call only.
/// Results are owned by the caller.
///
/// The methods are `async`: a store over a block device waits for the
/// device. A future dropped before completing leaves the store usable.
///
/// Failures, for every method: [`KvError::NotFound`] when the key names
/// nothing; [`KvError::IsDir`] / [`KvError::NotDir`] when a file was
/// expected and a directory found, or the reverse; [`KvError::Read`] when
/// the underlying source failed (the store stays usable, a retry may
/// succeed); [`KvError::OutOfMemory`] when a whole-file read cannot get its
/// buffer.
#[allow(async_fn_in_trait)] // single-threaded executor; no `Send` bound wanted
pub trait KeyValue {
    /// Metadata of the file or directory at `key`. Never reads file data.
    async fn stat(&self, key: &str) -> Result<Stat, KvError>;

    /// The size in bytes of the file at `key`. Fails with
    /// [`KvError::IsDir`] for a directory.
    async fn size(&self, key: &str) -> Result<u64, KvError> {
        match self.stat(key).await? {
            Stat { kind: Kind::File, size, .. } => Ok(size),
            Stat { kind: Kind::Dir, .. } => Err(KvError::IsDir(key.into())),
        }
    }

    /// The whole file at `key`, in a buffer allocated for it (fallibly:
    /// [`KvError::OutOfMemory`] rather than an abort for a huge file).
    async fn get(&mut self, key: &str) -> Result<Vec<u8>, KvError>;

    /// Reads the file at `key` from byte `offset` into `buf`; returns the
    /// number of bytes read: `buf.len()`, or fewer at the end of the file
    /// (0 when `offset` is at or past the end).
    async fn get_partial(&mut self, key: &str, offset: u64, buf: &mut [u8]) -> Result<usize, KvError>;

    /// The entries directly inside the directory `dir` (`""` for the root),
    /// sorted by name: (name without the directory part, kind).
    async fn list(&self, dir: &str) -> Result<Vec<(String, Kind)>, KvError>;
}
