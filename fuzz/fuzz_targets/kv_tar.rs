//! Arbitrary bytes as a content archive: opening never panics, and an
//! archive that opens can be listed and read whole, in pieces, from memory
//! and from a disk with 4096-byte sectors, with the same answers.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use morgana_devices::{Block, BlockError, BlockInfo};
use morgana_kv::{BlockSource, KeyValue, Kind, Memory, Source, Tar};

fn run<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

struct Disk(Vec<u8>);

impl Block for Disk {
    fn info(&self) -> BlockInfo {
        BlockInfo { sector_size: 4096, sectors: (self.0.len() / 4096) as u64, read_only: true }
    }
    async fn read(&mut self, first: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.info().check(first, buf.len(), false)?;
        let at = first as usize * 4096;
        buf.copy_from_slice(&self.0[at..at + buf.len()]);
        Ok(())
    }
    async fn write(&mut self, _: u64, _: &[u8]) -> Result<(), BlockError> {
        Err(BlockError::ReadOnly)
    }
    async fn flush(&mut self) -> Result<(), BlockError> {
        Err(BlockError::ReadOnly)
    }
}

/// Every file, by walking the directories: (key, bytes).
async fn read_all<S: Source>(store: &mut Tar<S>) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![String::new()];
    while let Some(dir) = dirs.pop() {
        for (name, kind) in store.list(&dir).await.expect("a listed directory lists") {
            let key = if dir.is_empty() { name } else { format!("{dir}/{name}") };
            match kind {
                Kind::Dir => dirs.push(key),
                Kind::File => {
                    let bytes = store.get(&key).await.expect("a listed file reads");
                    assert_eq!(store.size(&key).await, Ok(bytes.len() as u64));
                    let mut piece = [0u8; 700];
                    let n = store.get_partial(&key, 300, &mut piece).await.expect("partial read");
                    assert_eq!(&piece[..n], bytes.get(300..).map_or(&[][..], |b| &b[..b.len().min(700)]));
                    if let Ok(Some(s)) = store.get_static(&key) {
                        assert_eq!(s, &bytes[..]);
                    }
                    out.push((key, bytes));
                }
            }
        }
    }
    out.sort();
    out
}

fuzz_target!(|data: &[u8]| {
    let memory = run(Tar::open(Memory(data)));
    if let Ok(mut store) = memory {
        let files = run(read_all(&mut store));
        assert_eq!(files.len(), store.files());
        // The same archive on a disk (padded to whole sectors) reads the same.
        let mut disk = data.to_vec();
        disk.resize(disk.len().div_ceil(4096) * 4096, 0);
        let mut on_disk = run(Tar::open(BlockSource::new(Disk(disk)))).expect("opens from a disk too");
        assert_eq!(run(read_all(&mut on_disk)), files);
    }
});
