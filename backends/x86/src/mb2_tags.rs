//! Walking the multiboot2 information's tags, bounds-checked: plain safe
//! code over a byte slice, so it is unit-tested on the host too.

use core::fmt;

const TAG_END: u32 = 0;
const TAG_CMDLINE: u32 = 1;
const TAG_MODULE: u32 = 3;
const TAG_BASIC_MEMINFO: u32 = 4;
const TAG_MMAP: u32 = 6;
const TAG_ACPI_OLD: u32 = 14;
const TAG_ACPI_NEW: u32 = 15;

/// One tag the platform uses.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tag<'a> {
    /// The command line, without its NUL.
    Cmdline(&'a [u8]),
    /// A module: physical start and end (exclusive).
    Module { start: u32, end: u32 },
    /// KiB of RAM below 640 KiB and above 1 MiB.
    BasicMeminfo { lower: u32, upper: u32 },
    /// Memory map entries: `(addr, len, type)`.
    Mmap(MmapEntries<'a>),
    /// A copy of the ACPI RSDP (`new`: the ACPI 2.0 one).
    Acpi { new: bool, rsdp: &'a [u8] },
}

/// The entries of a memory map tag.
#[derive(Debug, PartialEq, Eq, Clone)]
pub(crate) struct MmapEntries<'a> {
    bytes: &'a [u8],
    entry_size: usize,
}

impl Iterator for MmapEntries<'_> {
    type Item = (u64, u64, u32);
    fn next(&mut self) -> Option<Self::Item> {
        if self.bytes.len() < self.entry_size {
            return None;
        }
        let (e, rest) = self.bytes.split_at(self.entry_size);
        self.bytes = rest;
        Some((u64_at(e, 0), u64_at(e, 8), u32_at(e, 16)))
    }
}

/// What is wrong with the information.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Malformed {
    /// The total size is below 16 bytes or above the limit.
    TotalSize(u32),
    /// The tags run to the end without an end tag.
    NoEndTag,
    /// A tag is shorter than 8 bytes or runs past the total size.
    TagSize { kind: u32, offset: usize, size: usize },
    /// A module tag too short for its addresses.
    ModuleTag(usize),
    /// A module ending before it starts.
    ModuleRange { start: u32, end: u32 },
    /// A memory map whose entries are not 24+ bytes, 8-byte multiples.
    MmapEntry { entry_size: usize, tag_size: usize },
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Malformed::TotalSize(n) => write!(f, "multiboot2 information of {n} bytes"),
            Malformed::NoEndTag => write!(f, "multiboot2 information ends without an end tag"),
            Malformed::TagSize { kind, offset, size } => {
                write!(f, "multiboot2 tag {kind} at offset {offset} has size {size}")
            }
            Malformed::ModuleTag(size) => write!(f, "multiboot2 module tag of {size} bytes"),
            Malformed::ModuleRange { start, end } => {
                write!(f, "multiboot2 module {start:#x}..{end:#x} ends before it starts")
            }
            Malformed::MmapEntry { entry_size, tag_size } => {
                write!(f, "multiboot2 memory map with entries of {entry_size} bytes (tag of {tag_size})")
            }
        }
    }
}

/// A larger information structure is taken as corrupt.
pub(crate) const MAX_TOTAL: u32 = 1 << 20;

/// The total size the information's first word claims, if acceptable.
pub(crate) fn total_size(header: &[u8]) -> Result<u32, Malformed> {
    let total = u32_at(header, 0);
    if (16..=MAX_TOTAL).contains(&total) {
        Ok(total)
    } else {
        Err(Malformed::TotalSize(total))
    }
}

/// Calls `f` for each tag the platform uses, in order, up to the end tag.
/// `mbi` is the whole information structure (its total size long).
pub(crate) fn walk<'a>(mbi: &'a [u8], mut f: impl FnMut(Tag<'a>)) -> Result<(), Malformed> {
    let mut off = 8usize;
    loop {
        if off.checked_add(8).is_none_or(|end| end > mbi.len()) {
            return Err(Malformed::NoEndTag);
        }
        let (kind, size) = (u32_at(mbi, off), u32_at(mbi, off + 4) as usize);
        if size < 8 || size > mbi.len() - off {
            return Err(Malformed::TagSize { kind, offset: off, size });
        }
        let tag = &mbi[off..off + size];
        match kind {
            TAG_END => return Ok(()),
            TAG_CMDLINE => {
                let s = &tag[8..];
                f(Tag::Cmdline(&s[..s.iter().position(|&c| c == 0).unwrap_or(s.len())]))
            }
            TAG_MODULE => {
                if size < 16 {
                    return Err(Malformed::ModuleTag(size));
                }
                let (start, end) = (u32_at(tag, 8), u32_at(tag, 12));
                if end < start {
                    return Err(Malformed::ModuleRange { start, end });
                }
                f(Tag::Module { start, end })
            }
            TAG_BASIC_MEMINFO if size >= 16 => f(Tag::BasicMeminfo { lower: u32_at(tag, 8), upper: u32_at(tag, 12) }),
            TAG_MMAP => {
                let entry_size = if size >= 16 { u32_at(tag, 8) as usize } else { 0 };
                if entry_size < 24 || entry_size % 8 != 0 {
                    return Err(Malformed::MmapEntry { entry_size, tag_size: size });
                }
                f(Tag::Mmap(MmapEntries { bytes: &tag[16..], entry_size }))
            }
            TAG_ACPI_OLD | TAG_ACPI_NEW => f(Tag::Acpi { new: kind == TAG_ACPI_NEW, rsdp: &tag[8..] }),
            _ => {}
        }
        // Tags start on 8-byte boundaries.
        off += size.div_ceil(8) * 8;
    }
}

/// GRUB's command line starts with the image's own path
/// (`/boot/echo --flag`, or `(hd0,gpt2)/boot/echo`): drop that word.
pub(crate) fn skip_image_name(cmdline: &[u8]) -> &[u8] {
    let trimmed = cmdline.trim_ascii_start();
    if !matches!(trimmed.first(), Some(b'/' | b'(')) {
        return cmdline;
    }
    let end = trimmed.iter().position(|c| c.is_ascii_whitespace()).unwrap_or(trimmed.len());
    trimmed[end..].trim_ascii_start()
}

/// The little-endian u32 at `off` in `b` (which the caller checked is long
/// enough).
pub(crate) fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// The little-endian u64 at `off` in `b`.
pub(crate) fn u64_at(b: &[u8], off: usize) -> u64 {
    u32_at(b, off) as u64 | (u32_at(b, off + 4) as u64) << 32
}

#[cfg(test)]
mod tests {
    use std::vec::Vec;

    use super::*;

    /// An information structure with these `(type, payload)` tags and an
    /// end tag, sizes and padding filled in.
    fn mbi(tags: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let mut b = std::vec![0u8; 8];
        for (kind, payload) in tags.iter().chain([&(TAG_END, Vec::new())]) {
            b.extend_from_slice(&kind.to_le_bytes());
            b.extend_from_slice(&(8 + payload.len() as u32).to_le_bytes());
            b.extend_from_slice(payload);
            while b.len() % 8 != 0 {
                b.push(0);
            }
        }
        let total = b.len() as u32;
        b[..4].copy_from_slice(&total.to_le_bytes());
        b
    }

    fn words(w: &[u32]) -> Vec<u8> {
        w.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn tags(b: &[u8]) -> Result<Vec<Tag<'_>>, Malformed> {
        let mut v = Vec::new();
        walk(b, |t| v.push(t)).map(|()| v)
    }

    #[test]
    fn reads_what_grub_gives() {
        let mut mmap = words(&[24, 0]);
        mmap.extend(words(&[0, 0, 0x9fc00, 0, 1, 0]));
        mmap.extend(words(&[0x100000, 0, 0x7ee0000, 0, 1, 0]));
        let b = mbi(&[
            (TAG_CMDLINE, b"/boot/morgana --check=boot-module\0".to_vec()),
            (TAG_MODULE, [words(&[0x200000, 0x230d43]), b"/boot/module0\0".to_vec()].concat()),
            (TAG_MMAP, mmap),
            (TAG_ACPI_NEW, std::vec![7; 36]),
            (99, std::vec![1, 2, 3]),
        ]);
        assert_eq!(total_size(&b), Ok(b.len() as u32));
        let t = tags(&b).expect("well formed");
        assert_eq!(t[0], Tag::Cmdline(b"/boot/morgana --check=boot-module"));
        assert_eq!(t[1], Tag::Module { start: 0x200000, end: 0x230d43 });
        let Tag::Mmap(entries) = &t[2] else { panic!("{t:?}") };
        let e: Vec<_> = entries.clone().collect();
        assert_eq!(e, [(0, 0x9fc00, 1), (0x100000, 0x7ee0000, 1)]);
        assert_eq!(t[3], Tag::Acpi { new: true, rsdp: &[7; 36] });
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn image_name_is_dropped() {
        assert_eq!(skip_image_name(b"/boot/morgana --a=1 --b"), b"--a=1 --b");
        assert_eq!(skip_image_name(b"(hd0,gpt2)/boot/x  --a"), b"--a");
        assert_eq!(skip_image_name(b"/boot/morgana"), b"");
        assert_eq!(skip_image_name(b"--a=1"), b"--a=1");
        assert_eq!(skip_image_name(b""), b"");
    }

    #[test]
    fn malformed_information_is_refused() {
        assert_eq!(total_size(&words(&[8, 0])), Err(Malformed::TotalSize(8)));
        assert_eq!(total_size(&words(&[MAX_TOTAL + 1, 0])), Err(Malformed::TotalSize(MAX_TOTAL + 1)));
        // No end tag.
        let mut b = mbi(&[(TAG_CMDLINE, b"x\0".to_vec())]);
        b.truncate(b.len() - 8);
        assert_eq!(tags(&b), Err(Malformed::NoEndTag));
        // A tag claiming more than the structure holds, or less than 8.
        for bad in [4u32, 25, 0xffff_fff8, u32::MAX] {
            let mut b = mbi(&[(TAG_CMDLINE, b"x\0".to_vec())]);
            b[12..16].copy_from_slice(&bad.to_le_bytes());
            assert!(matches!(tags(&b), Err(Malformed::TagSize { kind: 1, offset: 8, .. })), "size {bad}");
        }
        // A size within bounds that skips the end tag.
        let mut b = mbi(&[(TAG_CMDLINE, b"x\0".to_vec())]);
        b[12..16].copy_from_slice(&17u32.to_le_bytes());
        assert_eq!(tags(&b), Err(Malformed::NoEndTag));
        // A module ending before it starts, or a module tag too short.
        let b = mbi(&[(TAG_MODULE, words(&[0x300000, 0x200000]))]);
        assert_eq!(tags(&b), Err(Malformed::ModuleRange { start: 0x300000, end: 0x200000 }));
        let b = mbi(&[(TAG_MODULE, words(&[0x300000]))]);
        assert_eq!(tags(&b), Err(Malformed::ModuleTag(12)));
        // Memory map entries too small, unaligned, or missing entirely.
        for size in [0u32, 8, 20, 28] {
            let b = mbi(&[(TAG_MMAP, words(&[size, 0]))]);
            assert!(matches!(tags(&b), Err(Malformed::MmapEntry { .. })), "entry size {size}");
        }
        let b = mbi(&[(TAG_MMAP, Vec::new())]);
        assert!(matches!(tags(&b), Err(Malformed::MmapEntry { entry_size: 0, .. })));
        // A partial trailing entry is ignored, not read past.
        let mut mmap = words(&[24, 0]);
        mmap.extend(words(&[0, 0, 0x1000, 0, 1, 0]));
        mmap.extend([0u8; 8]);
        let b = mbi(&[(TAG_MMAP, mmap)]);
        let t = tags(&b).expect("well formed");
        let Tag::Mmap(e) = &t[0] else { panic!() };
        assert_eq!(e.clone().count(), 1);
    }

    #[test]
    fn every_truncation_and_corruption_is_handled() {
        // No input panics: every prefix, and every single-byte change.
        let mut mmap = words(&[24, 0]);
        mmap.extend(words(&[0x100000, 0, 0x1000000, 0, 1, 0]));
        let good = mbi(&[
            (TAG_CMDLINE, b"/boot/m --x\0".to_vec()),
            (TAG_MODULE, words(&[0x200000, 0x201000])),
            (TAG_MMAP, mmap),
        ]);
        for n in 0..good.len() {
            let _ = tags(&good[..n]);
        }
        for i in 0..good.len() {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut b = good.clone();
                b[i] = v;
                let _ = tags(&b);
            }
        }
    }
}
