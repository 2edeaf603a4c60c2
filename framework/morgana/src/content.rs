//! Content from outside the image: a ustar archive found at boot, served
//! to apps as a read-only key-value store ([`crate::Env::content`]).
//!
//! Where it is looked for, in order:
//! 1. a boot module the backend was given (`backend::boot_module()`: a
//!    PVH or multiboot2 module in a VM, e.g. QEMU `-initrd FILE`); it is
//!    used in place, never copied;
//! 2. else the first block device, if its first sector starts a ustar
//!    archive (the `ustar` magic and a valid header checksum). A disk
//!    that holds anything else stays the app's, in [`crate::Env::block`].
//!
//! An archive that is found but bad (a corrupt header, a truncated file,
//! an unsafe name ...) stops the boot with an error naming the entry: an
//! app never serves part of its content.

use alloc::boxed::Box;
use core::fmt;

use morgana_devices::BlockError;
use morgana_kv::{BlockSource, Source, Static, Tar, TarError};

use crate::BlockDevice;

/// Where the content archive is.
pub enum ContentSource {
    /// A boot module, in memory for the life of the image.
    Module(Static),
    /// The first block device, read on demand.
    Block(Box<BlockSource<BlockDevice>>),
}

impl fmt::Display for ContentSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContentSource::Module(_) => "the boot module",
            ContentSource::Block(_) => "the block device",
        })
    }
}

impl Source for ContentSource {
    fn len(&self) -> u64 {
        match self {
            ContentSource::Module(m) => m.len(),
            ContentSource::Block(b) => b.len(),
        }
    }

    async fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        match self {
            ContentSource::Module(m) => m.read_at(offset, buf).await,
            ContentSource::Block(b) => b.read_at(offset, buf).await,
        }
    }

    fn as_static(&self) -> Option<&'static [u8]> {
        match self {
            ContentSource::Module(m) => m.as_static(),
            ContentSource::Block(_) => None,
        }
    }
}

/// The content archive: a [`morgana_kv::KeyValue`] store.
/// `content.source()` says where it was found (it displays as "the boot
/// module" or "the block device").
pub type Content = Tar<ContentSource>;

/// A content archive was found but refused.
#[derive(Debug)]
pub struct ContentError {
    /// "the boot module" or "the block device".
    pub source: &'static str,
    /// What is wrong with it.
    pub error: TarError,
}

impl fmt::Display for ContentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "content archive in {}: {}", self.source, self.error)
    }
}

impl core::error::Error for ContentError {}

/// Finds the content (see the module docs); returns it and the block
/// device if the content is not on it.
pub(crate) async fn discover(
    module: Option<&'static [u8]>,
    block: Option<BlockDevice>,
) -> Result<(Option<Content>, Option<BlockDevice>), ContentError> {
    if let Some(bytes) = module {
        let source = ContentSource::Module(Static(bytes));
        let tar = Tar::open(source).await.map_err(|error| ContentError { source: "the boot module", error })?;
        report(&tar);
        return Ok((Some(tar), block));
    }
    let Some(device) = block else {
        log::info!("content: none (no boot module, no block device); apps use their embedded defaults");
        return Ok((None, None));
    };
    let mut source = BlockSource::new(device);
    let mut first = [0u8; morgana_kv::BLOCK];
    match source.read_at(0, &mut first).await {
        Ok(()) if morgana_kv::looks_like_ustar(&first) => {}
        Ok(()) => {
            log::info!("content: none (the block device holds no ustar archive); apps use their embedded defaults");
            return Ok((None, Some(source.into_inner())));
        }
        Err(e) => {
            log::warn!("content: cannot read the block device's first sector ({e}); left to the app");
            return Ok((None, Some(source.into_inner())));
        }
    }
    let source = ContentSource::Block(Box::new(source));
    let tar = Tar::open(source).await.map_err(|error| ContentError { source: "the block device", error })?;
    report(&tar);
    Ok((Some(tar), None))
}

fn report(tar: &Content) {
    let s = if tar.files() == 1 { "" } else { "s" };
    log::info!("content: {} file{s}, {} bytes, from {}", tar.files(), tar.bytes(), tar.source());
}
