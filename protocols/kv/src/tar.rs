//! The ustar store: an index of the archive's headers, data read on demand.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::error::{KvError, Problem, TarError};
use crate::header::{self, BLOCK};
use crate::source::Source;
use crate::{KeyValue, Kind, Stat};

/// Bounds on what an archive may hold, so its index has bounded memory:
/// each entry costs its name plus about 64 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Entries (files and directories) at most. Default 16384.
    pub max_entries: usize,
    /// Bytes of (normalised) names in all at most. Default 1 MiB.
    pub max_name_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_entries: 16384, max_name_bytes: 1 << 20 }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    kind: Kind,
    /// Offset of the data in the source.
    offset: u64,
    size: u64,
    mtime: u64,
}

/// A read-only [`KeyValue`] store over a ustar archive in a [`Source`].
///
/// Supported: regular files (type `0` or NUL) and directories (type `5`),
/// names up to 255 bytes through the ustar `prefix` field, leading `./`
/// (as `tar -C DIR .` writes), an end marker of one or two zero blocks
/// (anything after the first is ignored, so a disk may be larger than its
/// archive). Directories need no entry of their own: `a/b` implies `a`.
///
/// Refused when opening, with a [`TarError`]: bad checksums, headers
/// without the `ustar` magic (including the old GNU format), numeric fields
/// that are not octal, names that are absolute, have `..` components, are
/// not UTF-8 or have control characters, any other entry type (links,
/// devices, FIFOs, pax `x`/`g` and GNU `L`/`K` extension headers), data
/// running past the end of the source, an archive that ends without an
/// end-of-archive block, duplicate names, and archives beyond [`Limits`].
pub struct Tar<S> {
    source: S,
    index: BTreeMap<String, Entry>,
    files: usize,
}

impl<S: Source> Tar<S> {
    /// Opens the archive in `source` with the default [`Limits`].
    pub async fn open(source: S) -> Result<Tar<S>, TarError> {
        Tar::open_with(source, Limits::default()).await
    }

    /// Opens the archive in `source`: reads and checks every header.
    pub async fn open_with(mut source: S, limits: Limits) -> Result<Tar<S>, TarError> {
        let len = source.len();
        let mut index: BTreeMap<String, Entry> = BTreeMap::new();
        let (mut offset, mut names, mut files) = (0u64, 0usize, 0usize);
        let mut block = [0u8; BLOCK];
        let fail = |offset, entry, problem| TarError { offset, entry, problem };
        loop {
            if len.saturating_sub(offset) < BLOCK as u64 {
                return Err(fail(offset, None, Problem::Truncated));
            }
            source.read_at(offset, &mut block).await.map_err(|e| fail(offset, None, Problem::Read(e)))?;
            if header::is_zero(&block) {
                break;
            }
            let raw = || header::raw_name(&block);
            // A block without the magic is no header: its "name" is noise.
            let h = header::parse(&block).map_err(|p| match p {
                Problem::NotUstar => fail(offset, None, p),
                p => fail(offset, raw(), p),
            })?;
            let data = offset + BLOCK as u64;
            if h.size > len - data {
                return Err(fail(offset, raw(), Problem::PastEnd(h.size)));
            }
            // Padding to a whole block; `len - data` bounds it, no overflow.
            let next = data + h.size.div_ceil(BLOCK as u64) * BLOCK as u64;
            if index.len() >= limits.max_entries {
                return Err(fail(offset, raw(), Problem::TooManyEntries(limits.max_entries)));
            }
            names += h.name.len();
            if names > limits.max_name_bytes {
                return Err(fail(offset, raw(), Problem::NamesTooLong(limits.max_name_bytes)));
            }
            if !h.name.is_empty() {
                let entry = Entry { kind: h.kind, offset: data, size: h.size, mtime: h.mtime };
                match index.get(&h.name) {
                    Some(e) if e.kind == Kind::Dir && h.kind == Kind::Dir => {} // repeated directory
                    Some(_) => return Err(fail(offset, raw(), Problem::Duplicate)),
                    None if h.kind == Kind::File && has_children(&index, &h.name) => {
                        return Err(fail(offset, raw(), Problem::Duplicate))
                    }
                    None => {
                        files += usize::from(h.kind == Kind::File);
                        index.insert(h.name, entry);
                    }
                }
            }
            offset = next;
        }
        // A file may not also be a directory of a later entry.
        for name in index.keys() {
            let mut dir = name.as_str();
            while let Some((parent, _)) = dir.rsplit_once('/') {
                if index.get(parent).is_some_and(|e| e.kind == Kind::File) {
                    return Err(fail(0, Some(name.clone()), Problem::Duplicate));
                }
                dir = parent;
            }
        }
        Ok(Tar { source, index, files })
    }

    /// Number of regular files.
    pub fn files(&self) -> usize {
        self.files
    }

    /// Total bytes of file data.
    pub fn bytes(&self) -> u64 {
        self.index.values().map(|e| e.size).sum()
    }

    /// The source, e.g. to describe where the content came from.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The file at `key` without copying, when the source is in memory for
    /// the life of the program ([`Source::as_static`]); `Ok(None)` for other
    /// sources.
    pub fn get_static(&self, key: &str) -> Result<Option<&'static [u8]>, KvError> {
        let e = self.file(key)?;
        let Some(bytes) = self.source.as_static() else { return Ok(None) };
        // Checked against the source's length when opening.
        let range = usize::try_from(e.offset).ok().zip(usize::try_from(e.offset + e.size).ok());
        Ok(range.and_then(|(a, b)| bytes.get(a..b)))
    }

    fn lookup(&self, key: &str) -> Result<Stat, KvError> {
        let key = key.trim_start_matches('/').trim_end_matches('/');
        if let Some(e) = self.index.get(key) {
            return Ok(Stat { kind: e.kind, size: e.size, modified: e.mtime });
        }
        if key.is_empty() || has_children(&self.index, key) {
            return Ok(Stat { kind: Kind::Dir, size: 0, modified: 0 });
        }
        Err(KvError::NotFound(key.into()))
    }

    fn file(&self, key: &str) -> Result<Entry, KvError> {
        match self.index.get(key.trim_start_matches('/')) {
            Some(e) if e.kind == Kind::File => Ok(*e),
            _ => match self.lookup(key)? {
                Stat { kind: Kind::Dir, .. } => Err(KvError::IsDir(key.into())),
                _ => Err(KvError::NotFound(key.into())),
            },
        }
    }
}

/// Whether some key lies under `dir/`.
fn has_children(index: &BTreeMap<String, Entry>, dir: &str) -> bool {
    let mut prefix = String::from(dir);
    prefix.push('/');
    index.range(prefix.clone()..).next().is_some_and(|(k, _)| k.starts_with(&prefix))
}

impl<S: Source> KeyValue for Tar<S> {
    async fn stat(&self, key: &str) -> Result<Stat, KvError> {
        self.lookup(key)
    }

    async fn get(&mut self, key: &str) -> Result<Vec<u8>, KvError> {
        let e = self.file(key)?;
        let oom = || KvError::OutOfMemory(key.into(), e.size);
        let n = usize::try_from(e.size).map_err(|_| oom())?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(n).map_err(|_| oom())?;
        buf.resize(n, 0);
        self.source.read_at(e.offset, &mut buf).await.map_err(|err| KvError::Read(key.into(), err))?;
        Ok(buf)
    }

    async fn get_partial(&mut self, key: &str, offset: u64, buf: &mut [u8]) -> Result<usize, KvError> {
        let e = self.file(key)?;
        let n = e.size.saturating_sub(offset).min(buf.len() as u64) as usize;
        if n > 0 {
            self.source
                .read_at(e.offset + offset, &mut buf[..n])
                .await
                .map_err(|err| KvError::Read(key.into(), err))?;
        }
        Ok(n)
    }

    async fn list(&self, dir: &str) -> Result<Vec<(String, Kind)>, KvError> {
        let dir = dir.trim_start_matches('/').trim_end_matches('/');
        if self.lookup(dir)?.kind != Kind::Dir {
            return Err(KvError::NotDir(dir.into()));
        }
        let mut prefix = String::from(dir);
        if !prefix.is_empty() {
            prefix.push('/');
        }
        let mut out: BTreeMap<&str, Kind> = BTreeMap::new();
        for (key, e) in self.index.range(prefix.clone()..).take_while(|(k, _)| k.starts_with(&prefix)) {
            let rest = &key[prefix.len()..];
            match rest.split_once('/') {
                Some((child, _)) => out.insert(child, Kind::Dir),
                None => out.insert(rest, e.kind),
            };
        }
        Ok(out.into_iter().map(|(k, v)| (String::from(k), v)).collect())
    }
}
