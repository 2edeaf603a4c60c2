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
//! app never serves part of its content. An app that takes no content
//! turns all this off ([`crate::Options::without_content`]); then a boot
//! module is its own to read, whatever it holds.

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
        if block.is_some() {
            log::info!("content: the boot module comes first; the block device is left to the app");
        }
        return Ok((Some(tar), block));
    }
    let Some(device) = block else {
        log::debug!("content: none (no boot module, no block device); apps use their embedded defaults");
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

#[cfg(all(test, not(target_os = "none")))]
mod tests {
    extern crate std;

    use std::boxed::Box;
    use std::path::PathBuf;
    use std::pin::pin;
    use std::string::ToString;
    use std::task::{Context, Poll, Waker};
    use std::vec::Vec;

    use morgana_kv::KeyValue;

    use super::*;

    /// Polls to completion: the hosted block device never waits.
    fn run<F: core::future::Future>(f: F) -> F::Output {
        let mut f = pin!(f);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    /// An archive of one file `name` holding `text`, by the real `tar`.
    fn archive(tag: &str, name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(std::format!("morgana-discover-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("c")).unwrap();
        std::fs::write(dir.join("c").join(name), text).unwrap();
        let tar = dir.join("c.tar");
        let ok = std::process::Command::new("tar")
            .args(["--format=ustar", "-cf"])
            .arg(&tar)
            .arg("-C")
            .arg(dir.join("c"))
            .arg(".")
            .status()
            .unwrap();
        assert!(ok.success());
        tar
    }

    fn disk(path: &std::path::Path) -> BlockDevice {
        crate::backend::FileBlock::open(path, true).unwrap()
    }

    fn leak(bytes: Vec<u8>) -> &'static [u8] {
        Box::leak(bytes.into_boxed_slice())
    }

    #[test]
    fn a_boot_module_comes_first_and_the_disk_stays_the_apps() {
        let module = leak(std::fs::read(archive("m", "from-module", "m")).unwrap());
        let on_disk = archive("d", "from-disk", "d");
        let (content, block) = run(discover(Some(module), Some(disk(&on_disk)))).unwrap();
        let mut content = content.expect("content from the module");
        assert_eq!(content.source().to_string(), "the boot module");
        assert_eq!(run(content.get("from-module")).unwrap(), b"m");
        assert_eq!(content.get_static("from-module").unwrap(), Some(&b"m"[..]), "served in place");
        assert!(block.is_some(), "the disk is left to the app");
    }

    #[test]
    fn a_disk_with_an_archive_becomes_the_content() {
        let on_disk = archive("d2", "index.html", "hello");
        let (content, block) = run(discover(None, Some(disk(&on_disk)))).unwrap();
        let mut content = content.expect("content from the disk");
        assert_eq!(content.source().to_string(), "the block device");
        assert_eq!(run(content.get("index.html")).unwrap(), b"hello");
        assert!(block.is_none(), "the content owns the disk");
    }

    #[test]
    fn other_disks_are_left_alone_and_bad_archives_refused() {
        let dir = std::env::temp_dir().join(std::format!("morgana-discover-{}-blank", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let blank = dir.join("blank.img");
        std::fs::write(&blank, [0u8; 4096]).unwrap();
        let (content, block) = run(discover(None, Some(disk(&blank)))).unwrap();
        assert!(content.is_none() && block.is_some());
        assert!(run(discover(None, None)).unwrap().0.is_none());

        let mut bad = std::fs::read(archive("bad", "x.zone", "x")).unwrap();
        bad[512 + 2] ^= 1; // the second header (after ./): checksum no longer matches
        let err = run(discover(Some(leak(bad.clone())), None)).err().expect("a bad module is refused");
        assert!(err.to_string().starts_with("content archive in the boot module: tar entry"), "{err}");
        let path = dir.join("bad.tar");
        std::fs::write(&path, &bad).unwrap();
        let err = run(discover(None, Some(disk(&path)))).err().expect("a bad archive on disk is refused");
        assert!(err.to_string().contains("in the block device") && err.to_string().contains("bad header checksum"));
        let err = run(discover(Some(leak(std::vec![7u8; 1024])), None)).err().expect("a module must be an archive");
        assert!(err.to_string().contains("no 'ustar' magic"), "{err}");
    }
}
