//! Helpers for the tar tests: a poll loop, an in-memory disk, real `tar`
//! runs and hand-made headers.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::process::Command;
use std::task::{Context, Poll, Waker};

use morgana_devices::{Block, BlockError, BlockInfo};

/// Runs a future whose sources never wait (memory, [`Disk`]).
pub fn run<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// A disk in memory that counts the bytes read from it.
pub struct Disk {
    pub bytes: Vec<u8>,
    pub sector: usize,
    pub read: std::rc::Rc<std::cell::Cell<usize>>,
}

impl Disk {
    /// `bytes` padded to whole sectors.
    pub fn new(mut bytes: Vec<u8>, sector: usize) -> Disk {
        bytes.resize(bytes.len().div_ceil(sector) * sector, 0);
        Disk { bytes, sector, read: Default::default() }
    }
}

impl Block for Disk {
    fn info(&self) -> BlockInfo {
        BlockInfo { sector_size: self.sector, sectors: (self.bytes.len() / self.sector) as u64, read_only: true }
    }
    async fn read(&mut self, first: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.info().check(first, buf.len(), false)?;
        let at = first as usize * self.sector;
        buf.copy_from_slice(&self.bytes[at..at + buf.len()]);
        self.read.set(self.read.get() + buf.len());
        Ok(())
    }
    async fn write(&mut self, _: u64, _: &[u8]) -> Result<(), BlockError> {
        Err(BlockError::ReadOnly)
    }
    async fn flush(&mut self) -> Result<(), BlockError> {
        Err(BlockError::ReadOnly)
    }
}

/// A fresh temporary directory.
pub fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("morgana-kv-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Runs the real `tar` with `args` in `dir`; returns the archive it wrote
/// to `out.tar` there.
pub fn tar(dir: &Path, args: &[&str]) -> Vec<u8> {
    let status = Command::new("tar").current_dir(dir).args(args).status().expect("the tar program runs");
    assert!(status.success(), "tar {args:?} failed");
    std::fs::read(dir.join("out.tar")).expect("tar wrote out.tar")
}

/// Writes `files` (path, bytes) under `dir/site`.
pub fn populate(dir: &Path, files: &[(&str, &[u8])]) -> PathBuf {
    let site = dir.join("site");
    for (path, bytes) in files {
        let p = site.join(path);
        std::fs::create_dir_all(p.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(&p, bytes).expect("write file");
    }
    site
}

/// Sets a header's checksum field from its bytes.
pub fn fix_checksum(h: &mut [u8]) {
    h[148..156].fill(b' ');
    let sum: u32 = h[..512].iter().map(|b| *b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// A ustar header made by hand.
pub fn header(name: &[u8], typeflag: u8, size: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name);
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"14000000000\0");
    h[156] = typeflag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    fix_checksum(&mut h);
    h
}

/// An archive of hand-made entries: (header, data), then two zero blocks.
pub fn archive(entries: &[([u8; 512], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (h, data) in entries {
        out.extend_from_slice(h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}
